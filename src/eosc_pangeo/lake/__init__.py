"""The data lake: analysis-ready Zarr (grids) and Parquet (in-situ) collections on any fsspec URL.

Writes are atomic per collection: readers see the previous version until an ingest has written
everything, and a failed ingest leaves the lake byte for byte as it was.
"""

from .errors import CollectionNotFound, Finding, IngestError, LakeError, LakeWarning
from .grid import ingest_grid, open_grid
from .manifest import IngestReport, Manifest, read_manifest
from .storage import DOMAINS, Lake

__all__ = [
    "DOMAINS",
    "CollectionNotFound",
    "Finding",
    "IngestError",
    "IngestReport",
    "Lake",
    "LakeError",
    "LakeWarning",
    "Manifest",
    "ingest_grid",
    "open_grid",
    "read_manifest",
]
