"""The data lake: analysis-ready Zarr (grids) and Parquet (in-situ) collections on any fsspec URL.

Writes are atomic per collection: readers see the previous version until an ingest has written
everything, and a failed ingest leaves the lake byte for byte as it was.
"""

from typing import TYPE_CHECKING

from .._lazy import export_lazily
from .errors import (
    CollectionBusy,
    CollectionNotFound,
    Finding,
    IngestError,
    LakeError,
    LakeUnreachable,
    LakeWarning,
    NoLakeGiven,
    NotALake,
    SelectionError,
    UnknownVariable,
)
from .storage import DOMAINS, Lake

if TYPE_CHECKING:
    from .demo import build_demo_lake
    from .grid import open_grid
    from .grid_write import ingest_grid
    from .insitu import ingest_insitu, read_insitu
    from .manifest import IngestReport, Manifest, list_collections, read_manifest
    from .validate import validate


def open_dataset(lake_or_collection: str | Lake, collection: str | None = None, **selection):
    """Open a gridded collection as a lazy xarray Dataset.

    ``open_dataset("sst")`` reads the configured lake (``EOSC_PANGEO_LAKE``);
    ``open_dataset("s3://bucket/lake", "sst")`` names the lake. Keyword arguments
    (``bbox``, ``time``, ``variables``, ``chunking``, ``chunks``) are those of
    :func:`open_grid`: by default the arrays are lazily indexed and each read goes to the store
    it touches fewer chunks of (a point series to the time-series store, a map to the map store).
    In-situ collections are tables: read them with :func:`read_insitu`.
    """
    from .grid import open_grid

    lake, collection = (
        (None, lake_or_collection) if collection is None else (lake_or_collection, collection)
    )
    return open_grid(lake, collection, **selection)


__all__ = [
    "DOMAINS",
    "CollectionBusy",
    "CollectionNotFound",
    "Finding",
    "IngestError",
    "IngestReport",
    "Lake",
    "LakeError",
    "LakeUnreachable",
    "LakeWarning",
    "Manifest",
    "NoLakeGiven",
    "NotALake",
    "SelectionError",
    "UnknownVariable",
    "build_demo_lake",
    "ingest_grid",
    "ingest_insitu",
    "list_collections",
    "open_dataset",
    "open_grid",
    "read_insitu",
    "read_manifest",
    "validate",
]

export_lazily(
    __name__,
    {
        "build_demo_lake": "demo",
        "ingest_grid": "grid_write",
        "open_grid": "grid",
        "ingest_insitu": "insitu",
        "read_insitu": "insitu",
        "IngestReport": "manifest",
        "Manifest": "manifest",
        "list_collections": "manifest",
        "read_manifest": "manifest",
        "validate": "validate",
    },
)
