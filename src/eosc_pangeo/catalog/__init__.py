"""The meta-catalogue: STAC, Intake and DCAT-AP descriptions of the lake, one search index
across every domain (and harvested catalogues), and a STAC API serving it.

Only describes and finds the lake: nothing here writes into its collections.
"""

from .build import BuildReport, build_catalog
from .dcat import export_dcat
from .esm import open_esm_catalog
from .harvest import HarvestReport, harvest
from .index import CatalogError, CatalogIndex, UnknownCollection
from .intake import open_catalog
from .search import Hit, SearchResults, search

__all__ = [
    "BuildReport",
    "CatalogError",
    "CatalogIndex",
    "HarvestReport",
    "Hit",
    "SearchResults",
    "UnknownCollection",
    "build_catalog",
    "export_dcat",
    "harvest",
    "open_catalog",
    "open_esm_catalog",
    "search",
]
