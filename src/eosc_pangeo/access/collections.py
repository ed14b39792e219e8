"""The lake as the data service sees it: committed collections, their files, one version at a time.

The service only reads. Every path it serves is resolved here, from a collection id and a key
relative to one of the collection's stores, and checked to stay inside that store: a key with
``..``, a leading ``/``, a backslash or a NUL byte is refused before any file system call.

Readers must see one version of a collection, never a mix. Zarr readers already do for appends,
because the consolidated metadata names the committed shape and is rewritten last. The subsets
the service computes itself (OPeNDAP, EDR) and each file of a Zarr store it sends are read by
:meth:`LakeCollections.consistent` between two looks at the manifest and the collection's write
lock, and read again when an ingest committed or was running in between (a sequence lock:
readers never block the writer).
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import xarray as xr

from ..lake import Lake, Manifest, open_grid, read_manifest
from ..lake.errors import CollectionNotFound
from ..lake.lock import LOCK
from ..lake.storage import MANIFEST
from .errors import NotFound, Unavailable

T = TypeVar("T")

#: The URL name of each store of a grid collection; ``zarr`` is the one maps are read from.
STORE_ROUTES = {"zarr": "map", "zarr-timeseries": "timeseries"}


@dataclass(frozen=True)
class Served:
    """A committed collection as of one manifest version."""

    manifest: Manifest
    path: str

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def kind(self) -> str:
        return self.manifest.kind


def safe_key(key: str) -> str:
    """``key`` if it names a file below a store's root, else :class:`NotFound`.

    Written by hand: the check must hold for every fsspec file system, so it works on the key's
    text, not on a local ``realpath``.
    """
    if (
        not key
        or "\\" in key
        or "\x00" in key
        or key.startswith("/")
        or any(part in ("", ".", "..") for part in key.split("/"))
    ):
        raise NotFound(
            f"no such file {key!r}: keys are paths below the collection's store, "
            "without '.', '..' or empty parts"
        )
    return key


class LakeCollections:
    """Read-only access to a lake's collections, with datasets cached per manifest version.

    Parameters
    ----------
    lake
        The lake to serve.
    """

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._datasets: dict[tuple[str, int, str, bool], xr.Dataset] = {}
        self._lock = threading.Lock()

    def ids(self) -> list[str]:
        return self.lake.collection_ids()

    def get(self, collection: str) -> Served:
        """The committed collection ``collection``, or :class:`NotFound`."""
        path = self._path(collection)
        manifest = read_manifest(self.lake, path)
        if manifest is None:  # removed between the two reads
            raise NotFound(f"no collection {collection!r} in the lake")
        return Served(manifest, path)

    def store_file(self, collection: str, route: str, key: str) -> str:
        """File-system path of ``key`` in the store that ``route`` names (see STORE_ROUTES)."""
        served = self.get(collection)
        store = STORE_ROUTES[route]
        if served.kind != "grid":
            raise NotFound(
                f"collection {collection!r} holds in-situ observations, not a grid: "
                f"read it as GeoParquet below /parquet/{collection}/"
            )
        if store not in served.manifest.stores:
            fallback = next(iter(served.manifest.stores))
            if route == "zarr":  # a collection stored for time series only
                store = fallback
            else:
                raise NotFound(
                    f"collection {collection!r} has no time-series store; read /zarr/{collection}"
                )
        root = posixpath.join(served.path, served.manifest.stores[store].path)
        return posixpath.join(root, safe_key(key))

    def parquet_file(self, collection: str, key: str) -> tuple[str, int]:
        """Path and size of one Parquet file the manifest of ``collection`` names."""
        served = self.get(collection)
        if served.kind != "insitu":
            raise NotFound(
                f"collection {collection!r} is a grid: read it as Zarr at /zarr/{collection}"
            )
        key = safe_key(key)
        for file in served.manifest.files:
            if file.path == key:
                return posixpath.join(served.path, key), file.size
        raise NotFound(
            f"collection {collection!r} has no file {key!r}; /parquet/{collection}/ lists its files"
        )

    def dataset(self, collection: str, *, packed: bool = False) -> xr.Dataset:
        """The grid ``collection`` as a lazy Dataset, opened once per manifest version.

        ``packed=True`` keeps packed variables as stored (integers with ``scale_factor``,
        ``add_offset`` and ``_FillValue``), for OPeNDAP clients to decode themselves.
        """
        served = self.get(collection)
        if served.kind != "grid":
            raise NotFound(
                f"collection {collection!r} holds in-situ observations: query it "
                f"at /edr/{collection}/area or /edr/{collection}/position"
            )
        key = (served.id, served.manifest.version, served.manifest.updated, packed)
        with self._lock:
            ds = self._datasets.get(key)
        if ds is None:
            ds = open_grid(self.lake, collection, mask_and_scale=not packed)
            with self._lock:
                # Earlier versions of this collection are never read again.
                for old in [k for k in self._datasets if k[0] == served.id and k[1:3] != key[1:3]]:
                    del self._datasets[old]
                self._datasets[key] = ds
        return ds

    def _path(self, collection: str) -> str:
        try:
            return self.lake.find_collection(collection)
        except CollectionNotFound as error:
            raise NotFound(str(error)) from None

    def _state(self, path: str) -> tuple[bytes, bool]:
        """The collection's manifest as stored, and whether an ingest holds its lock.

        The bytes, not the parsed manifest: every commit rewrites them, and comparing them
        costs microseconds where parsing a year's manifest costs milliseconds, twice for
        every file of a Zarr store the service sends.
        """
        try:
            manifest = self.lake.fs.cat_file(posixpath.join(path, MANIFEST))
        except FileNotFoundError:
            manifest = b""
        return manifest, self.lake.fs.exists(posixpath.join(path, LOCK))

    def consistent(self, collection: str, read: Callable[[], T], attempts: int = 5) -> T:
        """``read()``, retried until no ingest of ``collection`` committed or ran meanwhile."""
        path = self._path(collection)
        for _ in range(attempts):
            before = self._state(path)
            if not before[1]:
                result = read()
                if self._state(path) == before:
                    return result
            threading.Event().wait(0.5)
        raise Unavailable(
            f"collection {collection!r} is being ingested; retry in a minute", retry_after=60
        )
