"""Keep a collection in step with a remote repository: fetch what is new or changed, nothing else.

A sync lists the source (:mod:`~eosc_pangeo.lake.remote_sources`), compares each file with the
collection's manifest, fetches only the new and changed files into a staging folder (in
parallel; an interrupted file resumes where it stopped; each is checked against the size and
checksum the source publishes), then ingests them with the kind's own ingest, which appends new
time steps or rows and replaces the changed files' ones. Last it records in the manifest where
each file came from with its ETag and modification time, so that the next sync knows an
unchanged file from its listing alone.

A sync holds the collection's sync lock (``_sync.lock``) from listing to the last write, so two
syncs of one collection never interleave; the ingests it runs take the ingest lock as any ingest
does. A file that fails (gone mid-transfer, checksum mismatch, rejected by the ingest as corrupt,
server errors past the retries) is reported by name and left out; the others are synced, and the
lake holds the previous version of that file, or none.

Files the collection synced from the source that the source no longer lists are reported as
``removed``; only with ``prune`` (never by default) are they taken out of the collection, in
one new version that commits whole (in-situ collections only: a grid's time axis cannot lose
steps).
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from .errors import CollectionBusy, IngestError, LakeError
from .lock import CollectionLock
from .manifest import (
    IngestReport,
    Manifest,
    check_collection_id,
    check_kind,
    collection_to_ingest,
    read_manifest,
    write_manifest,
)
from .manifest import Source as HeldSource
from .remote_sources import RemoteFile, RemoteSource, included, is_gone, open_source
from .storage import SYNC_SOURCES, TMP, Lake, Progress, atomic_write

Kind = Literal["grid", "insitu"]
KINDS: tuple[Kind, ...] = ("grid", "insitu")
SYNC_LOCK = "_sync.lock"
#: Tries per file; between them the wait doubles from :data:`RETRY_WAIT` seconds.
ATTEMPTS = 3
RETRY_WAIT = 0.2
#: Bytes read per request (one ranged GET on HTTP and S3), and what a cut transfer loses at most:
#: it resumes after the last whole block written.
BLOCK = 4 * 1024**2


class SyncReport(BaseModel):
    """What a sync did (or, with ``dry_run``, would do)."""

    collection: str
    domain: str
    source: str
    dry_run: bool = False
    new: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    removed: list[str] = Field(
        default_factory=list,
        description="Files the collection synced from the source that it no longer lists "
        "(gone upstream); they stay in the collection unless the sync prunes.",
    )
    pruned: list[str] = Field(
        default_factory=list, description="Of the removed files, those taken out of the lake."
    )
    unverified: list[str] = Field(
        default_factory=list,
        description="Files the manifest holds with no ETag or date of "
        "their source (ingested by hand): a sync fetches them once to compare checksums.",
    )
    failed: dict[str, str] = Field(default_factory=dict, description="File name: why.")
    bytes_transferred: int = 0
    version: int | None = Field(default=None, description="Collection version afterwards.")
    seconds: dict[str, float] = Field(
        default_factory=dict,
        description="Time spent listing, fetching, ingesting, recording the files' origins, "
        "pruning.",
    )

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def ingested(self) -> bool:
        return not self.dry_run and bool(self.new or self.changed or self.pruned)

    def summary(self) -> dict[str, Any]:
        """What ``lake sync --json`` prints."""
        return self.model_dump(
            include={
                "new",
                "changed",
                "unchanged",
                "removed",
                "pruned",
                "failed",
                "bytes_transferred",
            }
        )


@dataclass
class Plan:
    """The source's files sorted against the manifest."""

    new: list[RemoteFile] = field(default_factory=list)
    changed: list[RemoteFile] = field(default_factory=list)
    unchanged: list[RemoteFile] = field(default_factory=list)
    unverified: list[RemoteFile] = field(default_factory=list)
    removed: list[HeldSource] = field(default_factory=list)

    @property
    def to_fetch(self) -> list[RemoteFile]:
        return self.new + self.changed + self.unverified


def plan_sync(manifest: Manifest | None, files: list[RemoteFile], include: str = "*") -> Plan:
    """Sort ``files`` (the source's, matching ``include``) into new, changed, unchanged and
    unverified against ``manifest``, and find the removed ones.

    A file is unchanged when the manifest holds it from the same URL with the same size and the
    same ETag (or, when the source gives none, the same modification time). A file is removed
    when the manifest holds it from a sync (an ETag or date recorded) and the source no longer
    lists it; files ingested by hand never are.
    """
    plan = Plan()
    # By name once: Manifest.source searches the list, which made planning quadratic.
    held = {source.name: source for source in manifest.sources} if manifest else {}
    for file in files:
        known = held.get(file.name)
        if known is None:
            plan.new.append(file)
        elif known.size != file.size:
            plan.changed.append(file)
        elif (known.etag is None and known.modified is None) or known.url != file.url:
            plan.unverified.append(file)  # ingested by hand, or from elsewhere
        elif _same_version(known, file):
            plan.unchanged.append(file)
        else:
            plan.changed.append(file)
    listed = {file.name for file in files}
    plan.removed = [
        source
        for name, source in held.items()
        if name not in listed
        and included(name, include)
        and (source.etag is not None or source.modified is not None)
    ]
    return plan


def _same_version(known, file: RemoteFile) -> bool:
    # An ETag changes with the content; a date alone only where the source has no ETag.
    if file.etag is not None:
        return known.etag == file.etag
    return file.modified is not None and known.modified == file.modified


def sync(
    lake: str | Lake | None,
    source: str,
    collection: str,
    domain: str,
    kind: str,
    *,
    include: str = "*",
    dry_run: bool = False,
    prune: bool = False,
    attributes: Mapping[str, str] | None = None,
    storage_options: dict[str, Any] | None = None,
    workers: int = 4,
    block_size: int = BLOCK,
    wait: float = 0.0,
    progress: Progress | None = None,
) -> SyncReport:
    """Bring the collection up to date with the files of ``source``.

    Parameters
    ----------
    lake
        Lake URL (or :class:`~eosc_pangeo.lake.storage.Lake`); None: the configured lake.
    source
        ``s3://bucket/prefix``, an HTTP(S) directory listing, a THREDDS ``catalog.xml``,
        ``sftp://user@host/path``, ``irods://zone/path`` or a local folder.
    collection, domain, kind
        The collection to keep in sync, its domain, and ``"grid"`` or ``"insitu"``.
    include
        Glob on file names (``*.nc``).
    dry_run
        Only list and compare: nothing is fetched or written, no lock is taken.
    prune
        Take the removed files (synced earlier, no longer listed by the source) out of the
        collection, in one new version. In-situ collections only. Not when the source lists
        no file at all, which is more often an outage or a wrong path than a deletion.
    attributes
        ACDD attributes of an in-situ collection (``license``, ``title``, ``summary``,
        ``creator_name``...), kept with its next version; they win over the sources' own.
    storage_options
        fsspec options of the source (``endpoint_url``, ``key_filename``...); iRODS: session
        options.
    workers
        Files fetched at once.
    block_size
        Bytes per read request; a transfer cut off resumes after its last whole block.
    wait
        Seconds to wait for another sync of the collection to end before raising
        :class:`CollectionBusy`.
    progress
        ``progress(stage, done, total)`` for ``fetch`` and the ingest's stages.

    Returns
    -------
    SyncReport
        ``failed`` names the files left out and why (the others are synced).

    Raises
    ------
    SourceError
        If the source cannot be listed (unknown scheme, unreachable, missing).
    IngestError
        If the kind, domain, id or attributes are wrong, the collection holds the other kind,
        or ``prune`` is asked for a grid.
    CollectionBusy
        If another sync of the collection holds its lock past ``wait``.
    """
    lake = Lake.from_url(lake)
    ingest = _ingest_function(kind, attributes)
    _check_prune(kind, prune)
    check_collection_id(collection, domain)
    remote = open_source(source, storage_options)
    report = SyncReport(collection=collection, domain=domain, source=source, dry_run=dry_run)
    path = lake.collection_path(domain, collection)
    if dry_run:
        manifest = read_manifest(lake, path)
        check_kind(manifest, collection, kind)
        _sort(report, plan_sync(manifest, _timed(report, "list", remote.list, include), include))
        report.version = manifest.version if manifest else None
        return report
    progress = progress or (lambda stage, done, total: None)
    with _sync_lock(lake, path, wait) as lock:
        manifest = read_manifest(lake, path)
        check_kind(manifest, collection, kind)
        plan = plan_sync(manifest, _timed(report, "list", remote.list, include), include)
        staging = _staging(lake, domain, collection)
        wanted = plan.to_fetch
        fetcher = Fetcher(remote, staging, block_size)
        fetched = _timed(
            report, "fetch", fetcher.fetch_all, wanted, workers, lock.renewing(progress), report
        )
        _settle_unverified(plan, fetched, manifest)
        _sort(report, plan, failed=set(report.failed))
        ingested = _timed(
            report,
            "ingest",
            _ingest_valid,
            ingest,
            lake,
            collection,
            domain,
            {f.name: fetched[f.name] for f in plan.new + plan.changed if f.name in fetched},
            report,
            lock.renewing(progress),
        )
        origins = {
            f.name: (f, fetched[f.name].sha256)
            for f in wanted
            if f.name in fetched and f.name not in report.failed
        }
        if origins:
            report.version = _timed(
                report, "record", _record_origins, lake, collection, domain, kind, origins
            )
        elif manifest is not None:
            report.version = manifest.version
        if prune and plan.removed:
            renewing = lock.renewing(progress)
            _timed(report, "prune", _prune, lake, collection, domain, plan, report, renewing)
        for name in ingested:
            fetched[name].path.unlink(missing_ok=True)
        _remove_settled(fetched, report)
    return report


def _ingest_function(
    kind: str, attributes: Mapping[str, str] | None = None
) -> Callable[..., IngestReport]:
    """The ingest of ``kind``, given the collection's ``attributes`` (in-situ only).

    Raises
    ------
    IngestError
        If the kind is unknown, or attributes are given for a grid or are not ACDD ones.
    """
    if kind == "grid":
        if attributes:
            raise IngestError(
                "attributes",
                "are given to in-situ collections only",
                "a grid keeps the ACDD attributes of its sources (title, summary, license...)",
            )
        from .grid import ingest_grid

        return ingest_grid
    if kind == "insitu":
        from .insitu import checked_attributes, ingest_insitu

        return partial(ingest_insitu, attributes=checked_attributes(attributes))
    raise IngestError(
        f"kind {kind!r}", "is not a kind of collection", f"use one of {', '.join(KINDS)}"
    )


def _check_prune(kind: str, prune: bool) -> None:
    if prune and kind != "insitu":
        raise IngestError(
            "prune",
            "removes files from in-situ collections only",
            "a grid's time axis cannot lose steps in place; a grid whose source lost files "
            "is ingested again into a new collection",
        )


def _prune(
    lake: Lake, collection: str, domain: str, plan: Plan, report: SyncReport, progress: Progress
) -> None:
    """Take the removed files out of the collection, unless the source listed nothing."""
    from .insitu import remove_insitu_sources

    if not (plan.new or plan.changed or plan.unchanged or plan.unverified):
        report.failed["*"] = (
            "the source lists no file: nothing pruned (an empty listing is more often an "
            "outage or a wrong path than a deletion)"
        )
        return
    names = [source.name for source in plan.removed]
    try:
        report.version = remove_insitu_sources(lake, collection, domain, names, progress=progress)
    except LakeError as error:  # e.g. busy past the wait: the files stay, the next sync retries
        report.failed.update({name: f"not pruned: {error}" for name in names})
        return
    report.pruned = names


def _timed(report: SyncReport, stage: str, function: Callable, *args):
    start = time.perf_counter()
    try:
        return function(*args)
    finally:
        report.seconds[stage] = round(time.perf_counter() - start, 3)


def _sort(report: SyncReport, plan: Plan, failed: set[str] = frozenset()) -> None:
    report.new = [f.name for f in plan.new if f.name not in failed]
    report.changed = [f.name for f in plan.changed if f.name not in failed]
    report.unchanged = [f.name for f in plan.unchanged]
    report.removed = [source.name for source in plan.removed]
    report.unverified = [f.name for f in plan.unverified if f.name not in failed]


@contextmanager
def _sync_lock(lake: Lake, path: str, wait: float) -> Iterator[CollectionLock]:
    deadline = time.monotonic() + wait
    while True:
        try:
            with CollectionLock(lake, path, SYNC_LOCK) as lock:
                yield lock
            return
        except CollectionBusy:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def _staging(lake: Lake, domain: str, collection: str) -> Path:
    """Where a sync's files wait for the ingest: the lake's own scratch space on a local lake
    (same disk, so resuming finds them), the machine's temporary folder for a remote one."""
    if lake.is_local:
        folder = Path(lake.path(TMP, "sync", domain, collection))
    else:
        key = hashlib.sha256(lake.url.encode()).hexdigest()[:16]
        folder = Path(tempfile.gettempdir()) / "eosc-pangeo-sync" / key / domain / collection
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str


class FetchFailed(Exception):
    """A file that could not be fetched; the message says why."""


class ChecksumMismatch(Exception):
    pass


class Fetcher:
    """Fetches a source's files into a staging folder, ``block_size`` bytes per request."""

    def __init__(self, remote: RemoteSource, staging: Path, block_size: int) -> None:
        self.remote = remote
        self.staging = staging
        self.block_size = block_size

    def fetch_all(
        self, files: list[RemoteFile], workers: int, progress: Progress, report: SyncReport
    ) -> dict[str, Fetched]:
        """Fetch ``files`` in parallel; failures go to ``report.failed``, bytes read to
        ``report.bytes_transferred``."""
        fetched: dict[str, Fetched] = {}
        counters = {f.name: [0] for f in files}
        progress("fetch", 0, len(files))
        with ThreadPoolExecutor(max(1, workers)) as pool:
            futures = {pool.submit(self.fetch, f, counters[f.name]): f for f in files}
            for done, future in enumerate(as_completed(futures), start=1):
                file = futures[future]
                try:
                    fetched[file.name] = future.result()
                except FetchFailed as error:
                    report.failed[file.name] = str(error)
                progress("fetch", done, len(files))
        report.bytes_transferred = sum(c[0] for c in counters.values())
        return fetched

    def fetch(self, file: RemoteFile, counter: list[int]) -> Fetched:
        """Fetch ``file``, resuming a partial copy, retrying within bounds.

        Raises
        ------
        FetchFailed
            If the file is gone, or every try failed (the last reason is given).
        """
        part = self.staging / f"{file.name}.part"
        problem = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(RETRY_WAIT * 2 ** (attempt - 1))
            try:
                return self._fetch_once(file, part, counter)
            except ChecksumMismatch as error:
                part.unlink(missing_ok=True)  # corrupt bytes: the next try starts afresh
                problem = str(error)
            # Transport errors come from many libraries (aiohttp, botocore, paramiko, irods)
            # and servers; each is this file's fault to report, not the sync's to crash on.
            except Exception as error:  # noqa: BLE001
                if is_gone(error):
                    part.unlink(missing_ok=True)
                    raise FetchFailed("vanished from the source during the sync") from None
                problem = f"{type(error).__name__}: {error}".replace("\n", " ")
        raise FetchFailed(f"{problem} (after {ATTEMPTS} tries)")

    def _fetch_once(self, file: RemoteFile, part: Path, counter: list[int]) -> Fetched:
        offset = part.stat().st_size if part.exists() else 0
        if offset > file.size:  # a stale partial copy of an earlier, longer version
            part.unlink()
            offset = 0
        if offset < file.size:
            with self.remote.open(file, offset) as source, part.open("ab") as out:
                while offset < file.size:
                    block = source.read(min(self.block_size, file.size - offset))
                    if not block:
                        raise OSError(f"the transfer ended at byte {offset} of {file.size}")
                    out.write(block)
                    out.flush()  # what was received survives a cut further on
                    offset += len(block)
                    counter[0] += len(block)
        return _verified(file, part)


def _verified(file: RemoteFile, part: Path) -> Fetched:
    """``part`` renamed to the file's name once its checksum matches the source's.

    Raises
    ------
    ChecksumMismatch
        If the source publishes a checksum that the bytes fetched do not have.
    """
    digests = {"sha256": hashlib.sha256(), "md5": hashlib.md5(usedforsecurity=False)}
    with part.open("rb") as f:
        while block := f.read(BLOCK):
            for digest in digests.values():
                digest.update(block)
    if file.checksum and digests[file.checksum[0]].hexdigest() != file.checksum[1]:
        raise ChecksumMismatch(
            f"checksum mismatch: {file.checksum[0]} of the bytes fetched is "
            f"not the {file.checksum[1]} the source gives"
        )
    done = part.with_name(file.name)
    part.replace(done)
    return Fetched(done, digests["sha256"].hexdigest())


def _settle_unverified(plan: Plan, fetched: dict[str, Fetched], manifest: Manifest | None) -> None:
    """Move the files fetched to compare into unchanged (same checksum) or changed."""
    for file in plan.unverified:
        if file.name not in fetched:
            continue
        known = manifest.source(file.name) if manifest else None
        same = known is not None and known.sha256 == fetched[file.name].sha256
        (plan.unchanged if same else plan.changed).append(file)
    plan.unverified = [f for f in plan.unverified if f.name not in fetched]


def _ingest_valid(
    ingest: Callable[..., IngestReport],
    lake: Lake,
    collection: str,
    domain: str,
    files: dict[str, Fetched],
    report: SyncReport,
    progress: Progress,
) -> list[str]:
    """Ingest ``files``; a file the ingest rejects is reported failed and the rest ingested
    again (an ingest writes all its files or none). The names ingested."""
    remaining = dict(files)
    while remaining:
        try:
            ingest(
                lake,
                collection,
                domain,
                [str(f.path) for f in remaining.values()],
                progress=progress,
            )
            return list(remaining)
        except IngestError as error:
            name = next(
                (
                    n
                    for n, f in remaining.items()
                    if str(f.path) in error.source or error.source == n
                ),
                None,
            )
            if name is None:  # the collection's fault, not one file's: nothing to leave out
                raise
            report.failed[name] = f"rejected by the ingest: {error.problem}" + (
                f" ({error.hint})" if error.hint else ""
            )
            remaining.pop(name).path.unlink(missing_ok=True)
            for kept in (report.new, report.changed):
                if name in kept:
                    kept.remove(name)
    return []


def _record_origins(
    lake: Lake, collection: str, domain: str, kind: str, origins: dict[str, tuple[RemoteFile, str]]
) -> int | None:
    """Note in the manifest each synced file's URL, ETag and date (the ingest recorded the
    staging copy); the collection's version, or None if it holds nothing yet."""
    with collection_to_ingest(lake, collection, domain, kind, None) as (path, manifest, _):
        if manifest is None:
            return None
        sources = []
        for source in manifest.sources:
            origin = origins.get(source.name)
            if origin is not None and origin[1] == source.sha256:
                file = origin[0]
                source = source.model_copy(
                    update={"url": file.url, "etag": file.etag, "modified": file.modified}
                )
            sources.append(source)
        write_manifest(lake, path, manifest.model_copy(update={"sources": sources}))
        return manifest.version


def _remove_settled(fetched: dict[str, Fetched], report: SyncReport) -> None:
    """Drop the staged copies of files found unchanged (fetched only to compare)."""
    for name in report.unchanged:
        if name in fetched:
            fetched[name].path.unlink(missing_ok=True)


# --- registered sources -----------------------------------------------------------------------


class RegisteredSource(BaseModel):
    """A collection's source, kept in the lake for ``lake sync --all``."""

    collection: str
    source: str
    domain: str
    kind: Kind
    include: str = "*"
    prune: bool = Field(
        default=False, description="Take files gone from the source out of the collection."
    )
    attributes: dict[str, str] = Field(
        default_factory=dict, description="ACDD attributes of an in-situ collection."
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Stored in the lake as given: name key files or "
        "endpoints here, keep secrets in the environment (AWS_*, ~/.ssh, ~/.irods).",
    )


class _Registry(BaseModel):
    sources: dict[str, RegisteredSource] = Field(default_factory=dict)


def list_sources(lake: str | Lake | None = None) -> list[RegisteredSource]:
    """The registered sources of the lake, by collection id."""
    return sorted(_read_registry(Lake.from_url(lake)).sources.values(), key=lambda s: s.collection)


def add_source(lake: str | Lake | None, source: RegisteredSource) -> None:
    """Register (or replace) the source of ``source.collection``.

    Raises
    ------
    SourceError, IngestError
        If the scheme, kind, domain or id are wrong (the source is not contacted).
    """
    lake = Lake.from_url(lake)
    _ingest_function(source.kind, source.attributes)
    _check_prune(source.kind, source.prune)
    check_collection_id(source.collection, source.domain)
    open_source(source.source, source.storage_options)
    with _registry(lake) as registry:
        registry.sources[source.collection] = source


def remove_source(lake: str | Lake | None, collection: str) -> None:
    """Forget the source of ``collection`` (its data stays in the lake).

    Raises
    ------
    IngestError
        If no source is registered for it.
    """
    lake = Lake.from_url(lake)
    with _registry(lake) as registry:
        if registry.sources.pop(collection, None) is None:
            known = ", ".join(sorted(registry.sources)) or "none"
            raise IngestError(
                f"collection {collection!r}", "has no registered source", f"registered: {known}"
            )


def sync_all(
    lake: str | Lake | None = None,
    *,
    dry_run: bool = False,
    wait: float = 0.0,
    progress: Progress | None = None,
) -> list[SyncReport]:
    """Sync every registered source; a source that cannot be synced at all (unreachable,
    busy) is reported with the reason under ``failed["*"]`` and the others still run."""
    lake = Lake.from_url(lake)
    reports = []
    for entry in list_sources(lake):
        try:
            reports.append(
                sync(
                    lake,
                    entry.source,
                    entry.collection,
                    entry.domain,
                    entry.kind,
                    include=entry.include,
                    dry_run=dry_run,
                    prune=entry.prune,
                    attributes=entry.attributes,
                    wait=wait,
                    storage_options=entry.storage_options,
                    progress=progress,
                )
            )
        except LakeError as error:
            reports.append(
                SyncReport(
                    collection=entry.collection,
                    domain=entry.domain,
                    source=entry.source,
                    dry_run=dry_run,
                    failed={"*": str(error)},
                )
            )
    return reports


def _read_registry(lake: Lake) -> _Registry:
    try:
        return _Registry.model_validate_json(lake.fs.cat_file(lake.path(SYNC_SOURCES)))
    except FileNotFoundError:
        return _Registry()


@contextmanager
def _registry(lake: Lake) -> Iterator[_Registry]:
    """The registry to change, written back atomically under its own lock."""
    folder = lake.path(SYNC_SOURCES.rsplit("/", 1)[0])
    with CollectionLock(lake, folder, "sources.lock"):
        registry = _read_registry(lake)
        yield registry
        atomic_write(lake.fs, lake.path(SYNC_SOURCES), registry.model_dump_json(indent=1).encode())
