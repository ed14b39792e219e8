"""The meta-catalogue: STAC, Intake and DCAT-AP descriptions of the lake, one search index
across every domain (and harvested catalogues), and a STAC API serving it.

Only describes and finds the lake: nothing here writes into its collections. Each export loads
its libraries (DuckDB, pystac, rdflib...) when first used.
"""

from typing import TYPE_CHECKING

from .._lazy import export_lazily
from .errors import CatalogError, CatalogNotBuilt, UnknownCollection

if TYPE_CHECKING:
    from .build import BuildReport, build_catalog
    from .dcat import export_dcat
    from .esm import open_esm_catalog
    from .harvest import HarvestReport, harvest
    from .index import CatalogIndex
    from .intake import open_catalog
    from .search import Hit, SearchResults, search

__all__ = [
    "BuildReport",
    "CatalogError",
    "CatalogIndex",
    "CatalogNotBuilt",
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

export_lazily(
    __name__,
    {
        "BuildReport": "build",
        "build_catalog": "build",
        "export_dcat": "dcat",
        "HarvestReport": "harvest",
        "harvest": "harvest",
        "CatalogIndex": "index",
        "open_catalog": "intake",
        "open_esm_catalog": "esm",
        "Hit": "search",
        "SearchResults": "search",
        "search": "search",
    },
)
