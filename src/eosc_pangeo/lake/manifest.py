"""The manifest: a collection's commit record and provenance.

Each collection has one ``_manifest.json``. Writing it (atomically, see
:func:`~eosc_pangeo.lake.storage.atomic_write`) is the last step of every ingest, so it always
describes complete data: which source files went in (with sizes and checksums), which stores or
Parquet files hold them, and the extents and variables the catalogue publishes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import fsspec
from pydantic import BaseModel, Field

from .errors import IngestError
from .lock import CollectionLock
from .storage import (
    DOMAINS,
    MANIFEST,
    Domain,
    Lake,
    Progress,
    atomic_write,
    expand_sources,
    sha256_of,
    source_fs,
    source_name,
)

FORMAT = "eosc-pangeo/manifest/1"


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


#: The packages whose versions a collection's manifest records: what wrote its data.
WRITERS = ("eosc-pangeo", "xarray", "zarr", "numpy", "pyarrow", "netCDF4", "h5netcdf", "fsspec")


def software_versions(names: Iterable[str] = WRITERS) -> dict[str, str]:
    """Installed versions of the packages ``names`` (those absent left out), for provenance."""
    versions = {name: _installed_version(name) for name in names}
    return {name: version for name, version in versions.items() if version is not None}


@functools.cache
def _installed_version(name: str) -> str | None:
    # Read once a process: reading the metadata of the eight writers took 3 to 7 ms, paid at
    # every new version of a collection, and the code running is the code first imported.
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


class Source(BaseModel):
    """A source file that went into the collection."""

    name: str = Field(description="File name, unique within the collection.")
    url: str = Field(description="Where the file was read from.")
    size: int
    sha256: str
    time_start: str | None = None
    time_end: str | None = None
    rows: int | None = Field(default=None, description="Observations taken from it (in-situ).")
    version: int = Field(description="Collection version that added it.")
    etag: str | None = Field(
        default=None,
        description="The source's ETag (or checksum) when "
        "`lake sync` fetched it: with size and `modified`, how a later "
        "sync knows the file unchanged without downloading it.",
    )
    modified: str | None = Field(
        default=None,
        description="The source's modification time "
        "when `lake sync` fetched it (ISO 8601, or as the server "
        "gave it).",
    )


class Variable(BaseModel):
    """A data variable, as the catalogue publishes it."""

    standard_name: str | None = None
    long_name: str | None = None
    units: str | None = None
    dims: list[str] = Field(default_factory=list)
    dtype: str | None = None
    packing: dict[str, str] = Field(
        default_factory=dict,
        description="How values are stored (dtype, scale_factor, add_offset, _FillValue): the "
        "same in every source of a grid, whose stored values are copied without decoding.",
    )


class Extent(BaseModel):
    bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="west, south, east, north in degrees (CRS84)."
    )
    time: tuple[str, str] | None = Field(default=None, description="First and last time, ISO 8601.")
    calendar: str = "standard"


class ZarrStore(BaseModel):
    """One Zarr store of a gridded collection."""

    path: str = Field(description="Relative to the collection, e.g. 'map.zarr'.")
    chunking: Literal["map", "timeseries"]
    chunks: dict[str, int]
    time_length: int = Field(description="Committed length of the time axis.")
    references: bool = Field(
        default=False,
        description="Whether the store is an Icechunk repository of references to the "
        "sources' chunks instead of data (an ingest by reference): the sources are read in "
        "place, so they must stay at their `url`, unchanged (`size`, `sha256`); `lake "
        "validate` checks that they do.",
    )
    snapshot: str | None = Field(
        default=None,
        description="References: the Icechunk snapshot of this version, which readers open.",
    )
    attribute_types: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="References: the NumPy types of each variable's packing attributes in "
        "the sources (e.g. a float32 `scale_factor`), which JSON attributes lose; values "
        "are decoded with them, as netCDF readers decode the sources.",
    )


class ParquetFile(BaseModel):
    """One Parquet file of an in-situ collection."""

    path: str = Field(description="Relative to the collection.")
    size: int
    sha256: str
    rows: int
    bbox: tuple[float, float, float, float]
    time_start: str
    time_end: str


class Manifest(BaseModel):
    """What a collection holds and where it came from."""

    format: Literal["eosc-pangeo/manifest/1"] = FORMAT
    id: str
    domain: Domain
    kind: Literal["grid", "insitu"]
    version: int = 0
    created: str = Field(default_factory=utcnow)
    updated: str = Field(default_factory=utcnow)
    software: dict[str, str] = Field(default_factory=software_versions)
    attributes: dict[str, object] = Field(
        default_factory=dict, description="Global (ACDD) attributes: title, summary, ..."
    )
    extent: Extent = Field(default_factory=Extent)
    variables: dict[str, Variable] = Field(default_factory=dict)
    sources: list[Source] = Field(default_factory=list)
    stores: dict[str, ZarrStore] = Field(default_factory=dict)
    files: list[ParquetFile] = Field(default_factory=list)

    def source(self, name: str) -> Source | None:
        return next((s for s in self.sources if s.name == name), None)


def read_manifest(lake: Lake, collection_path: str) -> Manifest | None:
    """The committed manifest of a collection, or None if the collection does not exist yet."""
    path = f"{collection_path}/{MANIFEST}"
    try:
        return Manifest.model_validate_json(lake.fs.cat_file(path))
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class SourceFile:
    """A source file an ingest will read: where it is and what it holds."""

    url: str
    fs: fsspec.AbstractFileSystem
    path: str
    size: int
    sha256: str
    #: The collection's record of an earlier version of this file (same name, other content).
    previous: Source | None = None


class SourceCheck:
    """Sorts an ingest's files, one by one: new, already in the collection, or in conflict.

    Parameters
    ----------
    lake
        The lake ingested into; sources on its kind of store are read with its options.
    manifest
        The collection's committed manifest (None for a new collection).
    replaces_changed
        Whether a file the collection holds with other content is a new version of it (data
        centres update files in place, e.g. Argo's multi-profile files) rather than an error.
    """

    def __init__(
        self, lake: Lake, manifest: Manifest | None, *, replaces_changed: bool = False
    ) -> None:
        self.lake = lake
        self.manifest = manifest
        self.replaces_changed = replaces_changed
        self.skipped: list[str] = []
        self._given: dict[str, str] = {}

    def expand(self, urls: Sequence[str]) -> list[str]:
        """``urls`` with their glob patterns expanded (see
        :func:`~eosc_pangeo.lake.storage.expand_sources`); raises if no file is given."""
        urls = expand_sources(self.lake, urls)
        if not urls:
            raise IngestError("FILES", "no source files given", "pass the files to ingest")
        return urls

    def new_files(self, urls: Sequence[str], progress: Progress) -> list[SourceFile]:
        """The files of ``urls`` to ingest, in order, hashed; the others go to ``skipped``.

        ``urls`` may hold glob patterns (``s3://bucket/argo/*.nc``), see
        :func:`~eosc_pangeo.lake.storage.expand_sources`.

        ``progress("hash", done, total)`` is called after each file. Raises as
        :meth:`new_file` and :meth:`expand` do.
        """
        urls = self.expand(urls)
        new = []
        for done, url in enumerate(urls, start=1):
            if source := self.new_file(url):
                new.append(source)
            progress("hash", done, len(urls))
        return new

    def new_file(self, url: str, contents: bytes | None = None) -> SourceFile | None:
        """The file at ``url``, hashed, if it is to be ingested; None if it is already in.
        ``contents``, the file's bytes if the caller has read them, are hashed instead of
        reading the file again.

        Raises
        ------
        IngestError
            If the file does not exist, if two files given share a name but not their content,
            or if the collection holds a file of that name with other content and changed files
            are not replaced.
        """
        fs, path = source_fs(self.lake, url)
        try:
            if contents is None:
                source = SourceFile(url, fs, path, fs.size(path), sha256_of(fs, path))
            else:
                digest = hashlib.sha256(contents).hexdigest()
                source = SourceFile(url, fs, path, len(contents), digest)
        except FileNotFoundError:
            raise IngestError(url, "does not exist", "check the path") from None
        name = source_name(url)
        if name in self._given:
            if self._given[name] != source.sha256:
                raise IngestError(
                    url,
                    f"has the same name as another file given ({name}) but different content",
                    "rename one of them",
                )
            return None
        self._given[name] = source.sha256
        known = self.manifest.source(name) if self.manifest else None
        if known is None:
            return source
        if known.sha256 == source.sha256:
            self.skipped.append(name)
            return None
        if not self.replaces_changed:
            raise IngestError(
                url,
                f"was ingested before (version {known.version}) with other content",
                "a changed source needs a new collection or a new name",
            )
        return dataclasses.replace(source, previous=known)


def check_collection_id(collection: str, domain: str) -> None:
    """Raise :class:`IngestError` unless ``domain`` is a domain and ``collection`` a valid id."""
    if domain not in DOMAINS:
        raise IngestError(
            f"domain {domain!r}", "is not a domain of the lake", f"use one of {', '.join(DOMAINS)}"
        )
    if (
        not collection
        or collection.startswith((".", "_"))
        or not all(c.isalnum() or c in "-_." for c in collection)
    ):
        raise IngestError(
            f"collection {collection!r}",
            "is not a valid collection id",
            "use letters, digits, '-', '_' and '.', not starting with '.' or '_'",
        )


def check_kind(manifest: Manifest | None, collection: str, kind: str) -> None:
    """Raise :class:`IngestError` if the collection holds the other kind of data."""
    if manifest is not None and manifest.kind != kind:
        raise IngestError(
            f"collection {collection!r}",
            f"holds {manifest.kind} data, not {kind}",
            "choose another collection id",
        )


@contextmanager
def collection_to_ingest(
    lake: Lake, collection: str, domain: str, kind: str, progress: Progress | None
) -> Iterator[tuple[str, Manifest | None, Progress]]:
    """Hold the collection's write lock; give its path, its manifest (None if new) and the
    ingest's ``progress`` callback (None for none), which also renews the lock.

    Raises
    ------
    IngestError
        If the domain is unknown, the id invalid, taken in another domain, or the collection
        holds the other kind of data.
    CollectionBusy
        If another ingest is writing the collection.
    """
    check_collection_id(collection, domain)
    path = lake.collection_path(domain, collection)
    with CollectionLock(lake, path) as lock:
        # Read under the lock: the version this ingest builds on cannot change any more.
        manifest = read_manifest(lake, path)
        if manifest is None and collection in lake.collection_ids():
            raise IngestError(
                f"collection {collection!r}",
                "exists in another domain",
                "collection ids are unique across the lake; choose another id",
            )
        check_kind(manifest, collection, kind)
        yield path, manifest, lock.renewing(progress or (lambda stage, done, total: None))


def list_collections(lake: str | Lake | None = None) -> list[Manifest]:
    """The manifests of every committed collection of the lake, sorted by domain and id."""
    lake = Lake.from_url(lake)
    manifests = [
        Manifest.model_validate_json(lake.fs.cat_file(path)) for path in lake.manifest_paths()
    ]
    return sorted(manifests, key=lambda m: (m.domain, m.id))


def write_manifest(lake: Lake, collection_path: str, manifest: Manifest) -> None:
    """Commit ``manifest``: after this call readers and later ingests see the new version."""
    data = manifest.model_dump_json(indent=1).encode()
    atomic_write(lake.fs, f"{collection_path}/{MANIFEST}", data)


class IngestReport(BaseModel):
    """What an ingest did: the CLI prints it, tests and notebooks inspect it."""

    collection: str
    domain: Domain
    version: int = Field(description="Collection version after the ingest (unchanged if no-op).")
    added: list[str] = Field(default_factory=list, description="Source files ingested now.")
    skipped: list[str] = Field(
        default_factory=list, description="Source files already in the collection."
    )
    replaced: list[str] = Field(
        default_factory=list, description="Source files whose earlier version was replaced."
    )
    rows: int | None = Field(default=None, description="Observations added (in-situ).")
    chunks: dict[str, str] = Field(
        default_factory=dict,
        description="How each array was written (grid): "
        "'<store>/<variable>': 'copied' (the sources' compressed chunks, unchanged) or "
        "'encoded: <why not copied>' (decoded and compressed again).",
    )
    warnings: list[str] = Field(default_factory=list)
