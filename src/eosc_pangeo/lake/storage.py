"""Where the lake lives: an fsspec file system, its layout, and atomic writes on it.

The layout of a lake::

    <lake>/<domain>/<collection>/_manifest.json      commit record: sources, stores, extents
    <lake>/<domain>/<collection>/map.zarr            gridded data chunked for maps
    <lake>/<domain>/<collection>/timeseries.zarr     the same data chunked for time series
    <lake>/<domain>/<collection>/map.icechunk        or: references to the sources' chunks
    <lake>/<domain>/<collection>/observations/       in-situ data: year=YYYY/month=MM/*.parquet
    <lake>/_sync/sources.json                        sources registered for `lake sync --all`
    <lake>/_tmp/sync/<domain>/<collection>/          files a sync is fetching (local lakes)

A collection exists once its ``_manifest.json`` does; stores and files that no manifest names are
leftovers of an interrupted ingest and are never read.
"""

from __future__ import annotations

import hashlib
import posixpath
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from .errors import CollectionNotFound, IngestError, LakeUnreachable, NoLakeGiven, NotALake

if TYPE_CHECKING:
    import fsspec

# fsspec is imported where a file system is first needed: the command line's --help needs none.

Domain = Literal["ocean", "atmosphere", "land", "solid-earth"]
DOMAINS: tuple[Domain, ...] = ("ocean", "atmosphere", "land", "solid-earth")
MANIFEST = "_manifest.json"
#: A grid's map store when ingested by reference: an Icechunk repository of references to the
#: sources' chunks (the sources stay where they are).
MAP_REFERENCES = "map.icechunk"
#: The folder of an in-situ collection's Parquet files.
OBSERVATIONS = "observations"
#: Registered sources of ``lake sync --all``, one file for the lake.
SYNC_SOURCES = "_sync/sources.json"
#: The lake's own scratch space (never read as data): sync's staging folders.
TMP = "_tmp"


@dataclass(frozen=True)
class Lake:
    """A data lake at an fsspec URL.

    Parameters
    ----------
    url
        Local path or fsspec URL (``/data/lake``, ``file:///data/lake``, ``s3://bucket/lake``).
    storage_options
        Passed to fsspec (credentials, ``endpoint_url``, ...).
    """

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_url(cls, url: str | Lake | None = None, storage_options: dict | None = None) -> Lake:
        """Return a :class:`Lake`, taking what is not given from the settings."""
        if isinstance(url, Lake):
            return url
        from ..config import get_settings

        settings = get_settings()
        url = url or settings.lake
        if not url:
            raise NoLakeGiven("no lake given: pass a lake URL or set EOSC_PANGEO_LAKE")
        options = settings.storage_options if storage_options is None else storage_options
        return cls(str(url).rstrip("/") or "/", dict(options))

    @cached_property
    def _fs_and_root(self) -> tuple[fsspec.AbstractFileSystem, str]:
        # Every path of the lake goes through these: resolve the URL once, not per call.
        import fsspec

        return fsspec.core.url_to_fs(self.url, **self.storage_options)

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return self._fs_and_root[0]

    @property
    def root(self) -> str:
        """The lake's path as the file system names it (no protocol)."""
        return self._fs_and_root[1]

    @property
    def is_local(self) -> bool:
        return is_local_fs(self.fs)

    def path(self, *parts: str) -> str:
        """File-system path of ``parts`` under the lake."""
        return posixpath.join(self.root, *parts)

    def uri(self, *parts: str) -> str:
        """Full URL of ``parts`` under the lake, with the protocol, for readers such as xarray."""
        return self.fs.unstrip_protocol(self.path(*parts))

    def collection_path(self, domain: str, collection: str) -> str:
        return self.path(domain, collection)

    def find_collection(self, collection: str) -> str:
        """Path of the collection ``collection`` whatever its domain.

        Raises
        ------
        CollectionNotFound
            If no domain holds a committed collection of that id.
        """
        with self.reaching():
            for domain in DOMAINS:
                if self.fs.exists(self.path(domain, collection, MANIFEST)):
                    return self.path(domain, collection)
        known = ", ".join(sorted(self.collection_ids())) or "none"
        raise CollectionNotFound(
            f"no collection {collection!r} in the lake {self.url} (collections: {known})"
        )

    def collection_ids(self) -> list[str]:
        """Ids of every committed collection."""
        return sorted(posixpath.basename(posixpath.dirname(m)) for m in self.manifest_paths())

    def manifest_paths(self) -> list[str]:
        """The ``_manifest.json`` of every committed collection, in no particular order."""
        with self.reaching():
            return self.fs.glob(self.path("*", "*", MANIFEST))

    def not_a_lake(self) -> NotALake:
        """The error for a command that needs collections where this URL holds none."""
        with self.reaching():
            exists = self.fs.exists(self.root)
        if not exists:
            return NotALake(
                f"no lake at {self.url}: the folder does not exist (check the URL, "
                "or EOSC_PANGEO_LAKE)"
            )
        return NotALake(
            f"{self.url} is not a lake, or an empty one: it holds no collection "
            f"(no <domain>/<collection>/{MANIFEST}). Give the lake's root folder, or "
            "ingest a collection first (eosc-pangeo lake ingest-grid, ingest-insitu)"
        )

    @contextmanager
    def reaching(self) -> Iterator[None]:
        """Turn the store's refusals (no credentials, access denied) into
        :class:`LakeUnreachable`."""
        try:
            yield
        except PermissionError as error:
            raise LakeUnreachable(
                f"{self.url}: access denied ({error}); check the credentials "
                "in EOSC_PANGEO_STORAGE_OPTIONS, or the folder's permissions"
            ) from error
        except Exception as error:
            botocore = sys.modules.get("botocore.exceptions")
            if botocore is None or not isinstance(error, botocore.NoCredentialsError):
                raise
            raise LakeUnreachable(
                f"{self.url}: no credentials to reach the object store. Give them in "
                'EOSC_PANGEO_STORAGE_OPTIONS (\'{"key": ..., "secret": ...}\', or '
                "'{\"anon\": true}' for a public bucket), the AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY variables or ~/.aws/credentials"
            ) from None


#: How ingests report progress: ``progress(stage, done, total)``.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CollectionPart:
    """A part of a collection's folder (a Zarr store, the observations folder), located."""

    lake: Lake
    domain: str
    collection: str
    part: str


def locate(url: str, storage_options: dict | None = None) -> CollectionPart | None:
    """Which lake, domain, collection and part ``url`` is, as the layout
    ``<lake>/<domain>/<collection>/<part>`` places it; None if it is not of that shape. Whether
    that collection exists is for its manifest to say."""
    head, sep, part = url.rstrip("/").rpartition("/")
    lake_url, domain, collection = ([""] * 3 + head.rsplit("/", 2))[-3:]
    if not sep or not lake_url or domain not in DOMAINS or not collection:
        return None
    return CollectionPart(Lake(lake_url, dict(storage_options or {})), domain, collection, part)


def zarr_store(lake: Lake, path: str):
    """The zarr store at ``path`` of the lake (a path of ``lake.fs``, e.g. a collection's
    ``map.zarr``): a local store on this machine's disks, an fsspec store elsewhere."""
    from zarr.storage import FsspecStore, LocalStore

    if lake.is_local:
        return LocalStore(path)
    return FsspecStore.from_url(
        lake.fs.unstrip_protocol(path), storage_options=lake.storage_options
    )


def source_name(url: str) -> str:
    """The name a source file is known by in a collection: its file name."""
    return url.rstrip("/").rsplit("/", 1)[-1]


def source_fs(lake: Lake, url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """File system and path of a source file (local path or fsspec URL).

    Sources on the lake's kind of store (e.g. ``s3://`` next to an ``s3://`` lake) are read with
    the lake's storage options, so that one endpoint and one set of credentials serve both.
    """
    import fsspec

    protocol = fsspec.core.split_protocol(url)[0] or "file"
    lake_protocols = (
        lake.fs.protocol if isinstance(lake.fs.protocol, tuple) else (lake.fs.protocol,)
    )
    options = lake.storage_options if protocol in lake_protocols else {}
    return fsspec.core.url_to_fs(url, **options)


def expand_sources(lake: Lake, urls: Sequence[str]) -> list[str]:
    """The source URLs with glob patterns (``s3://bucket/argo/*.nc``) replaced by the files they
    match, in name order; a URL without ``*``, ``?`` or ``[`` is kept as it is.

    Raises
    ------
    IngestError
        If a pattern matches no file.
    """
    expanded = []
    for url in urls:
        if not any(magic in url for magic in "*?["):
            expanded.append(url)
            continue
        fs, pattern = source_fs(lake, url)
        matches = sorted(fs.glob(pattern))
        if not matches:
            raise IngestError(url, "matches no file", "check the pattern and the storage options")
        # Remote matches keep their protocol so that they are read (and recorded) as URLs.
        expanded += [m if is_local_fs(fs) else fs.unstrip_protocol(m) for m in matches]
    return expanded


def is_local_fs(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether ``fs`` is this machine's own disk (fsspec's LocalFileSystem)."""
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def atomic_write(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new content, never a mix.

    Object stores make a single PUT visible at once; on file systems the data goes to a
    temporary sibling that is then renamed over the target (rename is atomic on POSIX).
    """
    if is_local_fs(fs):
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with fs.open(tmp, "wb") as f:
            f.write(data)
        fs.mv(tmp, path)
    else:
        fs.pipe_file(path, data)


def sha256_of(fs: fsspec.AbstractFileSystem, path: str, block_size: int = 8 * 1024**2) -> str:
    """SHA-256 hex digest of a file, read in blocks."""
    digest = hashlib.sha256()
    with fs.open(path, "rb") as f:
        while block := f.read(block_size):
            digest.update(block)
    return digest.hexdigest()
