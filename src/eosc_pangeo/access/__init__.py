"""The data service: subsets of the lake over HTTP for clients outside the hub.

Grids as Zarr over HTTP, OPeNDAP and OGC API - EDR; in-situ collections as GeoParquet files with
range requests and EDR. Anonymous for public collections, API keys or hub tokens for the others,
with per-client rate and size limits. It only reads the lake (see :mod:`.app`).
"""

from .app import create_app
from .policy import AccessPolicy

__all__ = ["AccessPolicy", "create_app"]
