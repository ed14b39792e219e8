"""In-situ observations: profile NetCDF and station CSV in, one GeoParquet table out.

A collection is one long table, one row per observation (a level of a profile, a depth of a
station at one time), stored as GeoParquet 1.1 files under Hive partitions::

    <collection>/observations/year=YYYY/month=MM/part-<version>-<uuid8>.parquet

Each month holds one file. Rows inside it are sorted along a Hilbert curve over longitude and
latitude, then by time, and written in row groups of :data:`ROW_GROUP_ROWS` rows: a row group
then covers a compact region, so the min/max statistics of ``lon``/``lat`` (and of the
GeoParquet ``bbox`` covering column) let pyarrow and DuckDB skip every row group outside a query
box, while the month folders (and the manifest's per-file time ranges) skip whole files.

An ingest reads and checks every new source file before it writes anything, spooling the decoded
rows to a local temporary Arrow file per source (one record batch per month), so that it holds
one month of rows in memory at a time, not the whole ingest. It then rewrites the months the new
rows fall in (existing rows + new rows, superseded rows dropped, sorted) under new file names
and commits by writing the manifest, which lists the files of the new version; replaced files
are deleted only after the commit. Readers go through the manifest, never by listing folders, so
a crashed or killed ingest leaves the previous version readable, and the next ingest deletes
what it left behind. One ingest at a time writes a collection (see :mod:`.lock`).

Which rows a collection keeps follows how data centres publish: a source file ingested again
with other content (Argo GDAC files are updated in place) is a new version of it, whose rows
replace every row of the old version; an Argo profile (a float's cycle at one time) comes from
one source only: the one in the best data mode (delayed ``D`` > adjusted ``A`` > real time
``R``), the latest ingested among equals; and a station observation (station, time, depth)
from the latest source that holds it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
import uuid
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs
import pyarrow.parquet as pq

from .._processes import pool_context
from ..geometry import BBox, boxes_overlap, check_bbox, point_in_box
from .errors import Finding, IngestError, LakeError, LakeWarning, SelectionError, UnknownVariable
from .insitu_sources import (
    COLLECTION_ATTRIBUTES,
    OBSERVATION_SCHEMA,
    UTC_MICROSECONDS,
    VARIABLES,
    read_source,
    read_source_bytes,
)
from .manifest import (
    Extent,
    IngestReport,
    Manifest,
    ParquetFile,
    Progress,
    Source,
    SourceCheck,
    SourceFile,
    collection_to_ingest,
    read_manifest,
    utcnow,
    write_manifest,
)
from .storage import OBSERVATIONS, Lake, sha256_of, source_name
from .transaction import Transaction

#: Below this many new files, starting worker processes costs more than decoding in one.
PARALLEL_READ_FROM = 64
#: Sources per spool file: few enough files for the merge to open each once per month.
SPOOL_GROUP = 32
# Smaller groups prune more finely: on 10 million Argo observations a 20-degree, one-year query
# ran 30 % faster with 16k-row groups than with 64k, for 14 % more bytes.
ROW_GROUP_ROWS = 16_384
#: The Hilbert curve runs over a 2**16 x 2**16 grid of the globe (cells of 0.0055 x 0.0027
#: degrees): fixed, so that every file of every collection is sorted the same way.
CURVE_ORDER = 16
GEOPARQUET_VERSION = "1.1.0"
BBOX_TYPE = pa.struct([(name, pa.float64()) for name in ("xmin", "ymin", "xmax", "ymax")])
#: The columns of every Parquet file: the observations, their WKB points and bbox covering.
FILE_SCHEMA = OBSERVATION_SCHEMA.append(pa.field("geometry", pa.binary())).append(
    pa.field("bbox", BBOX_TYPE)
)
#: What identifies an observation: a second row with the same key replaces the first.
#: Profiles are keyed by pressure (what the instrument measured), stations by depth.
KEY_SQL = "platform_id, time, coalesce(pressure, depth)"
#: What identifies an Argo profile, whose rows all come from one source. Station rows have no
#: cycle: each is its own unit, as moorings publish one file per instrument depth.
PROFILE_SQL = (
    "platform_id, coalesce(cycle_number, -1), time, "
    "CASE WHEN cycle_number IS NULL THEN coalesce(pressure, depth) END"
)
#: Argo data modes, worst to best: a delayed-mode profile supersedes its real-time version
#: whatever the order the files arrive in (their pressures differ, so row keys cannot).
MODE_RANK_SQL = "CASE data_mode WHEN 'D' THEN 2 WHEN 'A' THEN 1 ELSE 0 END"
# Columns every read returns, whatever the variables asked for.
OBSERVATION_COLUMNS = [
    name
    for name in OBSERVATION_SCHEMA.names
    if name not in VARIABLES and name.removesuffix("_QC") not in VARIABLES
]


def ingest_insitu(
    lake: str | Lake,
    collection: str,
    domain: str,
    files: Sequence[str],
    *,
    attributes: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest Argo profile NetCDF and station CSV files into an in-situ collection.

    Parameters
    ----------
    lake
        Lake URL (or :class:`~eosc_pangeo.lake.storage.Lake`).
    collection
        Collection id, unique in the lake (e.g. ``"argo-demo"``).
    domain
        One of ``ocean``, ``atmosphere``, ``land``, ``solid-earth``.
    files
        Paths, fsspec URLs or glob patterns of Argo profile files (``*.nc``) and station CSVs
        (``*.csv``). A file already in the collection with the same checksum is skipped, so
        re-running an ingest (also after a crash) adds only what is missing; a file of the same
        name with other content is a new version of it and replaces its rows.
    attributes
        ACDD attributes of the collection (``title``, ``summary``, ``license``,
        ``creator_name``...; see :data:`~.insitu_sources.COLLECTION_ATTRIBUTES`), which the
        catalogue publishes. They win over those the NetCDF sources state, which the collection
        keeps otherwise (the first source that states one gives it). Recorded with the new
        version: an ingest that adds no file changes nothing.
    progress
        Called as ``progress(stage, done, total)`` with stage ``"hash"`` and ``"read"`` (per
        source file) and ``"write"`` (per month written).

    Returns
    -------
    IngestReport
        ``rows`` counts the observations read from the added files, ``replaced`` names the
        files that were new versions. An Argo profile the collection holds from another file
        is replaced if the new one is in a better data mode (D > A > R) or the same; a station
        observation (station, time, depth) is replaced.

    Raises
    ------
    IngestError
        If any file cannot be read or fails a check (structure, units, coordinates, times,
        QC flags), or an attribute is not one the collection keeps; the lake is then left byte
        for byte as it was.
    CollectionBusy
        If another ingest is writing the collection.
    """
    lake = Lake.from_url(lake)
    attributes = checked_attributes(attributes)
    with collection_to_ingest(lake, collection, domain, "insitu", progress) as (
        collection_path,
        manifest,
        progress,
    ):
        report = _ingest(
            lake, collection_path, manifest, collection, domain, files, attributes, progress
        )
    for message in report.warnings:
        warnings.warn(f"{collection}: {message}", LakeWarning, stacklevel=2)
    return report


def checked_attributes(attributes: Mapping[str, str] | None) -> dict[str, str]:
    """``attributes`` as a dict, once each is known to be an ACDD attribute a collection keeps.

    Raises
    ------
    IngestError
        If a name is not one of :data:`~.insitu_sources.COLLECTION_ATTRIBUTES` (``licence``
        for ``license``...).
    """
    attributes = dict(attributes or {})
    for name in attributes:
        if name not in COLLECTION_ATTRIBUTES:
            raise IngestError(
                f"attribute {name!r}",
                "is not an ACDD attribute an in-situ collection keeps",
                f"use one of {', '.join(COLLECTION_ATTRIBUTES)}",
            )
    return attributes


def _ingest(
    lake, collection_path, manifest, collection, domain, files, attributes, progress
) -> IngestReport:
    check = SourceCheck(lake, manifest, replaces_changed=True)
    files_to_read = check.new_files(files, progress)
    report = IngestReport(
        collection=collection,
        domain=domain,
        version=manifest.version if manifest else 0,
        skipped=check.skipped,
    )
    if not files_to_read:
        return report

    with tempfile.TemporaryDirectory(prefix="eosc-pangeo-ingest-") as spool:
        sources = _spool_all(files_to_read, spool, progress)
        is_new = manifest is None
        manifest = manifest or Manifest(id=collection, domain=domain, kind="insitu")
        manifest.attributes = _collection_attributes(manifest.attributes, sources, attributes)
        version = _commit_version(
            lake,
            collection_path,
            manifest,
            sources,
            [s.file.previous for s in sources if s.file.previous],
            is_new,
            progress,
        )

    report.warnings = [note for source in sources for note in source.warnings]
    report.version = version
    report.added = [source.name for source in sources]
    report.replaced = [source.name for source in sources if source.file.previous]
    report.rows = sum(source.rows for source in sources)
    return report


def remove_insitu_sources(
    lake: str | Lake,
    collection: str,
    domain: str,
    names: Sequence[str],
    *,
    progress: Progress | None = None,
) -> int:
    """Take every row of the source files ``names`` out of an in-situ collection, in one new
    version (what ``lake sync --prune`` does with files gone from their source).

    The months holding their rows are rewritten without them, as for a new version of a file,
    and the manifest forgets the files; the new version commits whole, or nothing changes.

    Returns
    -------
    int
        The collection's version afterwards (unchanged when ``names`` is empty).

    Raises
    ------
    IngestError
        If the collection does not exist or holds no source file of one of the names.
    CollectionBusy
        If another ingest is writing the collection.
    """
    lake = Lake.from_url(lake)
    with collection_to_ingest(lake, collection, domain, "insitu", progress) as (
        collection_path,
        manifest,
        progress,
    ):
        held = {source.name: source for source in manifest.sources} if manifest else {}
        if unknown := [name for name in names if name not in held]:
            raise IngestError(
                f"collection {collection!r}",
                f"holds no source file {', '.join(unknown)}",
                "the collection's _manifest.json lists its source files",
            )
        if not names:
            return manifest.version
        return _commit_version(
            lake, collection_path, manifest, [], [held[name] for name in names], False, progress
        )


def _commit_version(
    lake: Lake,
    collection_path: str,
    manifest: Manifest,
    sources: list[SpooledSource],
    outdated: list[Source],
    is_new: bool,
    progress: Progress,
) -> int:
    """Write and commit the next version: the spooled ``sources`` added, every row of the
    ``outdated`` source records (earlier versions of files, or files removed) taken out."""
    version = manifest.version + 1
    _remove_uncommitted_files(lake, collection_path, manifest)
    with Transaction(lake) as transaction:
        if is_new:
            transaction.created_dir(collection_path)
        written, replaced = _write_months(
            lake, collection_path, manifest, sources, outdated, version, transaction, progress
        )
        _record(manifest, sources, written, replaced, version, [s.name for s in outdated])
        write_manifest(lake, collection_path, manifest)
    # Committed: the replaced files are unreachable. Should this fail or be killed, the next
    # ingest deletes them as leftovers.
    for file in replaced:
        lake.fs.rm(f"{collection_path}/{file.path}")
    return version


def read_insitu(
    lake: str | Lake,
    collection: str,
    *,
    bbox: BBox | None = None,
    time: tuple[object, object] | None = None,
    variables: Sequence[str] | None = None,
    platforms: Sequence[str] | None = None,
    qc: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Read observations of an in-situ collection, reading only the data the query needs.

    Files are chosen from the manifest (their time range and bbox), row groups by their
    statistics, columns by ``variables``; the filters run inside the Parquet scan.

    Parameters
    ----------
    lake, collection
        Where to read.
    bbox
        ``(west, south, east, north)`` in degrees, edges included; ``west > east`` crosses the
        antimeridian.
    time
        ``(start, end)``, both included, anything :class:`pandas.Timestamp` accepts (naive
        times are UTC); either may be None for an open end.
    variables
        Variables to return (default: all, see ``Manifest.variables``); rows where none of them
        has a value (with an accepted flag) are left out.
    platforms
        Platform ids (Argo WMO numbers, station ids) to keep.
    qc
        Accepted QC flags, e.g. ``(1, 2)``: values of the requested variables with another flag
        are returned as missing.

    Returns
    -------
    pandas.DataFrame
        One row per observation: platform, time (UTC), position, depth and pressure, the
        requested variables with their ``<VAR>_QC`` flags (nullable ``Int8``) and the Argo
        profile fields (``position_qc``, ``time_qc``, ``cycle_number``, ``data_mode``), in
        storage order (by region, then time).
    """
    if bbox is not None:
        bbox = check_bbox(bbox, SelectionError)
    lake = Lake.from_url(lake)
    collection_path = lake.find_collection(collection)
    manifest = read_manifest(lake, collection_path)
    if manifest.kind != "insitu":
        raise LakeError(
            f"collection {collection!r} is a grid, not in-situ observations: open "
            f"it with eosc_pangeo.open_dataset(lake, {collection!r}, ...)"
        )
    chosen = _chosen_variables(manifest, variables)
    start, end = (_utc(t) for t in (time or (None, None)))
    files = [
        f
        for f in manifest.files
        if (bbox is None or boxes_overlap(f.bbox, bbox)) and _time_overlaps(f, start, end)
    ]
    columns = OBSERVATION_COLUMNS + [c for name in chosen for c in (name, f"{name}_QC")]
    if files:
        dataset = ds.dataset(
            [f"{collection_path}/{f.path}" for f in files],
            schema=FILE_SCHEMA,
            format="parquet",
            filesystem=_arrow_filesystem(lake),
        )
        table = dataset.to_table(
            columns=columns, filter=_row_filter(bbox, start, end, platforms, chosen, qc)
        )
    else:
        table = FILE_SCHEMA.empty_table().select(columns)
    if qc is not None:
        table = _mask_rejected_values(table, chosen, qc)
    nullable_integers = {pa.int8(): pd.Int8Dtype(), pa.int32(): pd.Int32Dtype()}
    return table.to_pandas(types_mapper=nullable_integers.get)


def check_insitu(lake: Lake, collection_path: str, manifest: Manifest) -> list[Finding]:
    """Check every Parquet file of an in-situ collection against the manifest and the layout.

    Checks, per file: present with the recorded size and SHA-256 (``checksum``); GeoParquet 1.1
    ``geo`` metadata with the bbox covering (``geoparquet``); the expected columns and types
    (``schema``); the recorded row count and times inside the file's month folder
    (``partition``); rows in Hilbert-curve then time order (``sorted``); no observation key
    twice, and the rows of an Argo profile from one source file (``unique-observations``).
    """
    findings = []
    for file in manifest.files:
        path = f"{collection_path}/{file.path}"

        def finding(check: str, ok: bool, message: str, target: str = file.path) -> None:
            findings.append(Finding(manifest.id, check, ok, message, target))

        if not lake.fs.exists(path):
            finding("checksum", False, "missing")
            continue
        size, digest = lake.fs.size(path), sha256_of(lake.fs, path)
        if (size, digest) != (file.size, file.sha256):
            finding(
                "checksum",
                False,
                f"size {size} and sha256 {digest[:12]}... differ from the "
                f"manifest's {file.size} and {file.sha256[:12]}...",
            )
            continue
        finding("checksum", True, "size and sha256 as in the manifest")
        with lake.fs.open(path, "rb") as f:
            parquet = pq.ParquetFile(f)
            problems = _geo_metadata_problems(parquet.schema_arrow.metadata or {})
            finding(
                "geoparquet", not problems, "; ".join(problems) or "GeoParquet 1.1, bbox covering"
            )
            actual = pa.schema([pa.field(f.name, f.type) for f in parquet.schema_arrow])
            expected = pa.schema([pa.field(f.name, f.type) for f in FILE_SCHEMA])
            finding(
                "schema",
                actual.equals(expected),
                "columns and types as expected"
                if actual.equals(expected)
                else f"schema is {actual}, expected {expected}",
            )
            table = parquet.read(
                columns=[
                    "platform_id",
                    "time",
                    "lon",
                    "lat",
                    "depth",
                    "pressure",
                    "cycle_number",
                    "source",
                ]
            )
        finding("partition", *_partition_state(file, table))
        finding("sorted", *_sort_state(table))
        finding("unique-observations", *_uniqueness_state(table))
    return findings


# --- ingest ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpooledSource:
    """A source file read and checked, its rows in a local Arrow IPC file (``spool``, shared by a
    group of sources) as one record batch per month, in time order (a stable sort: rows of equal
    times keep their order in the file)."""

    file: SourceFile
    spool: str
    #: Month folder -> index of the record batch of its rows in ``spool``.
    months: dict[str, int]
    rows: int
    time_start: str | None
    time_end: str | None
    warnings: list[str] = field(default_factory=list)
    attributes: dict[str, object] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return source_name(self.file.url)


def _spool_all(files: list[SourceFile], spool_dir: str, progress) -> list[SpooledSource]:
    """Decode the files into spool files of :data:`SPOOL_GROUP` sources each, in worker
    processes when there are many (netCDF4 holds the GIL); workers send back descriptions,
    not rows."""
    groups = [
        (files[first : first + SPOOL_GROUP], os.path.join(spool_dir, f"{first:06d}.arrow"))
        for first in range(0, len(files), SPOOL_GROUP)
    ]
    workers = os.cpu_count() or 1
    if len(files) < PARALLEL_READ_FROM or workers < 2:
        spooled = map(_spool_group, groups)
        return _reporting(spooled, len(files), progress)
    pool = ProcessPoolExecutor(workers, mp_context=pool_context())
    try:
        return _reporting(pool.map(_spool_group, groups), len(files), progress)
    finally:
        pool.shutdown(cancel_futures=True)


def _reporting(spooled_groups, total: int, progress) -> list[SpooledSource]:
    sources = []
    for group in spooled_groups:
        sources.extend(group)
        progress("read", len(sources), total)
    return sources


def _spool_group(group: tuple[list[SourceFile], str]) -> list[SpooledSource]:
    files, spool = group
    spooled = []
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with pa.ipc.new_file(spool, OBSERVATION_SCHEMA, options=options) as writer:
        batches = 0
        for file in files:
            source = read_source(file.url, read_source_bytes(file.url, file.fs, file.path))
            table = source.table.take(pc.sort_indices(source.table["time"]))
            months = {}
            for month_dir, rows in _by_month(table).items():
                writer.write_batch(rows.combine_chunks().to_batches()[0])
                months[month_dir] = batches
                batches += 1
            times = table["time"]
            spooled.append(
                SpooledSource(
                    file=file,
                    spool=spool,
                    months=months,
                    rows=table.num_rows,
                    time_start=_iso(pc.min(times)) if table.num_rows else None,
                    time_end=_iso(pc.max(times)) if table.num_rows else None,
                    warnings=source.warnings,
                    attributes=source.attributes,
                )
            )
    return spooled


def _arriving(sources: list[SpooledSource], month_dir: str) -> pa.Table:
    """The spooled rows of one month, source after source; each spool file is opened once."""
    batches = []
    for spool, group in itertools.groupby(sources, key=lambda source: source.spool):
        wanted = [source.months[month_dir] for source in group if month_dir in source.months]
        if wanted:
            # Read, not memory-mapped: the batches outlive the open file.
            with pa.OSFile(spool) as stream:
                reader = pa.ipc.open_file(stream)
                batches.extend(reader.get_batch(index) for index in wanted)
    return pa.Table.from_batches(batches, OBSERVATION_SCHEMA)


def _remove_uncommitted_files(lake: Lake, collection_path: str, manifest: Manifest) -> None:
    """Delete Parquet files no manifest lists: what a killed ingest wrote before its commit."""
    committed = {f"{collection_path}/{f.path}" for f in manifest.files}
    for path in lake.fs.find(f"{collection_path}/{OBSERVATIONS}"):
        if path not in committed:
            lake.fs.rm(path)


def _month_dir(year: int, month: int) -> str:
    return f"{OBSERVATIONS}/year={year:04d}/month={month:02d}"


def _by_month(table: pa.Table) -> dict[str, pa.Table]:
    """Rows split by the month folder they belong to, in time order of the months."""
    year, month = pc.year(table["time"]), pc.month(table["time"])
    key = pc.add(pc.multiply(year, 100), month).to_numpy()
    return {_month_dir(k // 100, k % 100): table.filter(pa.array(key == k)) for k in np.unique(key)}


def _write_months(
    lake,
    collection_path,
    manifest,
    sources: list[SpooledSource],
    outdated: list[Source],
    version,
    transaction,
    progress,
):
    """Rewrite every month with arriving rows or rows of an ``outdated`` source, under new
    names: the month's rows less those of outdated sources, merged with the arriving ones.

    Returns the new files and the files they replace; nothing is visible before the commit.
    """
    months = {month for source in sources for month in source.months}
    months |= {
        f.path.rsplit("/", 1)[0]
        for f in manifest.files
        if any(_holds_rows_of(f, earlier) for earlier in outdated)
    }
    written, replaced = [], []
    for done, month_dir in enumerate(sorted(months), start=1):
        previous = [f for f in manifest.files if f.path.startswith(f"{month_dir}/")]
        relative = f"{month_dir}/part-{version:06d}-{uuid.uuid4().hex[:8]}.parquet"
        transaction.created_file(f"{collection_path}/{relative}")
        if file := _write_month(
            lake,
            collection_path,
            relative,
            previous,
            _arriving(sources, month_dir),
            outdated=[source.name for source in outdated],
        ):
            written.append(file)
        replaced.extend(previous)
        # Arrow keeps freed buffers for reuse; the next month may need less: give them back.
        pa.default_memory_pool().release_unused()
        progress("write", done, len(months))
    return written, replaced


def _write_month(
    lake,
    collection_path,
    relative,
    previous: list[ParquetFile],
    arriving: pa.Table,
    outdated: list[str],
) -> ParquetFile | None:
    """Write one month's merged rows at ``relative``; None if no row is left."""
    existing = _read_files(lake, collection_path, previous)
    if existing is not None and outdated:
        existing = existing.filter(pc.invert(pc.is_in(existing["source"], pa.array(outdated))))
    merged = _merge(existing, arriving)
    if not merged.num_rows:
        return None
    return _write_observations(lake, collection_path, relative, merged)


def _holds_rows_of(file: ParquetFile, source: Source) -> bool:
    """Whether ``file`` may hold rows of ``source`` (their time ranges overlap)."""
    return (
        source.time_start is not None
        and file.time_start <= source.time_end
        and source.time_start <= file.time_end
    )


def _read_files(lake: Lake, collection_path: str, files: list[ParquetFile]) -> pa.Table | None:
    if not files:
        return None
    tables = [
        pq.read_table(
            f"{collection_path}/{f.path}",
            filesystem=lake.fs,
            columns=OBSERVATION_SCHEMA.names,
            partitioning=None,
        )
        for f in files
    ]
    return pa.concat_tables(tables)


def _merge(existing: pa.Table | None, arriving: pa.Table) -> pa.Table:
    """Existing then arriving rows, reduced to one source per profile (the best data mode, the
    latest among equals) and one row per observation key (the latest), sorted."""
    rows = arriving if existing is None else pa.concat_tables([existing, arriving])
    # Only the keys go through DuckDB; it returns which rows to keep, in which order.
    keys = (
        rows.select(
            ["platform_id", "time", "pressure", "depth", "cycle_number", "source", "data_mode"]
        )
        .append_column("arrival", pa.array(np.arange(rows.num_rows)))
        .append_column(
            "curve", pa.array(hilbert_index(rows["lon"].to_numpy(), rows["lat"].to_numpy()))
        )
    )
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")  # slow merges would draw bars on stdout
        con.register("keys", keys)
        kept = con.sql(f"""
            WITH ranked AS (
                SELECT *, arg_max(source, ({MODE_RANK_SQL}, arrival))
                          OVER (PARTITION BY {PROFILE_SQL}) AS profile_source
                FROM keys
            )
            SELECT max(arrival) AS arrival FROM ranked WHERE source = profile_source
            GROUP BY {KEY_SQL}
            ORDER BY arg_max(curve, arrival), time, {KEY_SQL}
        """).to_arrow_table()
    return rows.take(kept["arrival"])


def hilbert_index(lon: np.ndarray, lat: np.ndarray, order: int = CURVE_ORDER) -> np.ndarray:
    """Position of each point along a Hilbert curve over the globe (``2**order`` cells a side).

    Points close along the curve are close on the globe, so consecutive rows sorted by it
    (hence each row group) cover small regions. The curve is the classic one (Hilbert 1891),
    computed for all points at once.
    """
    side = 1 << order
    x = np.clip((np.asarray(lon) + 180.0) / 360.0 * side, 0, side - 1).astype(np.uint32)
    y = np.clip((np.asarray(lat) + 90.0) / 180.0 * side, 0, side - 1).astype(np.uint32)
    index = np.zeros(x.shape, dtype=np.uint64)
    step = side // 2
    while step > 0:
        right = (x & step) > 0
        upper = (y & step) > 0
        index += np.uint64(step * step) * ((3 * right) ^ upper).astype(np.uint64)
        # Turn the lower quadrants so the curve inside them runs the way the next level expects.
        flip = ~upper & right
        x, y = np.where(flip, side - 1 - x, x), np.where(flip, side - 1 - y, y)
        x, y = np.where(upper, x, y), np.where(upper, y, x)
        step //= 2
    return index


def _points_wkb(lon: np.ndarray, lat: np.ndarray) -> pa.Array:
    """WKB points (little endian, type 1, x then y), straight from the coordinate arrays.

    The layout is fixed (21 bytes a point), so it is written with numpy: shapely.to_wkb
    takes 70 times longer (15 s for 10 million points).
    """
    layout = np.dtype([("byte_order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")])
    points = np.empty(len(lon), dtype=layout)
    points["byte_order"], points["type"], points["x"], points["y"] = 1, 1, lon, lat
    offsets = np.arange(0, layout.itemsize * (len(lon) + 1), layout.itemsize, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.binary(), len(lon), [None, pa.py_buffer(offsets), pa.py_buffer(points)]
    )


def _geo_metadata(bbox: BBox) -> bytes:
    """The ``geo`` file metadata of GeoParquet 1.1 (CRS omitted: OGC:CRS84)."""
    return json.dumps(
        {
            "version": GEOPARQUET_VERSION,
            "primary_column": "geometry",
            "columns": {
                "geometry": {
                    "encoding": "WKB",
                    "geometry_types": ["Point"],
                    "bbox": list(bbox),
                    "covering": {
                        "bbox": {
                            corner: ["bbox", corner] for corner in ("xmin", "ymin", "xmax", "ymax")
                        }
                    },
                }
            },
        }
    ).encode()


def _write_observations(
    lake: Lake, collection_path: str, relative: str, table: pa.Table
) -> ParquetFile:
    """Write sorted observations as one GeoParquet file; return its manifest entry."""
    lon, lat = table["lon"].to_numpy(), table["lat"].to_numpy()
    bbox = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
    point_bbox = pa.StructArray.from_arrays([lon, lat, lon, lat], fields=list(BBOX_TYPE))
    table = table.append_column(FILE_SCHEMA.field("geometry"), _points_wkb(lon, lat))
    table = table.append_column(FILE_SCHEMA.field("bbox"), point_bbox)
    table = table.replace_schema_metadata({b"geo": _geo_metadata(bbox)})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=ROW_GROUP_ROWS, compression="zstd")
    data = sink.getvalue().to_pybytes()
    path = f"{collection_path}/{relative}"
    lake.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    lake.fs.pipe_file(path, data)
    times = table["time"]
    return ParquetFile(
        path=relative,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        rows=table.num_rows,
        bbox=bbox,
        time_start=_iso(pc.min(times)),
        time_end=_iso(pc.max(times)),
    )


def _record(
    manifest: Manifest,
    sources: list[SpooledSource],
    written,
    replaced,
    version: int,
    outdated: Sequence[str],
) -> None:
    """Update ``manifest`` in place to describe the new version: ``sources`` in, the source
    files named ``outdated`` (earlier versions, or removed) out."""
    gone = {file.path for file in replaced}
    manifest.files = sorted(
        [f for f in manifest.files if f.path not in gone] + written, key=lambda f: f.path
    )
    dropped = set(outdated) | {source.name for source in sources}
    manifest.sources = [s for s in manifest.sources if s.name not in dropped]
    for source in sources:
        manifest.sources.append(
            Source(
                name=source.name,
                url=source.file.url,
                size=source.file.size,
                sha256=source.file.sha256,
                time_start=source.time_start,
                time_end=source.time_end,
                rows=source.rows,
                version=version,
            )
        )
    if manifest.files:  # sources whose every row was empty add no file
        boxes = np.array([f.bbox for f in manifest.files])
        manifest.extent = Extent(
            bbox=(*boxes[:, :2].min(axis=0).tolist(), *boxes[:, 2:].max(axis=0).tolist()),
            time=(
                min(f.time_start for f in manifest.files),
                max(f.time_end for f in manifest.files),
            ),
        )
    else:  # every row removed
        manifest.extent = Extent()
    manifest.variables = dict(VARIABLES)
    manifest.version = version
    manifest.updated = utcnow()


def _collection_attributes(
    kept: dict[str, object], sources: list[SpooledSource], given: dict[str, str]
) -> dict[str, object]:
    """The collection's ACDD attributes: those it has, completed from its new sources' (the
    first to state one gives it), then those given to the ingest, which win."""
    merged = dict(kept)
    for source in sources:
        for name, value in source.attributes.items():
            merged.setdefault(name, value)
    return {**merged, **given}


def _iso(value: pa.Scalar) -> str:
    """ISO 8601 UTC to the microsecond, so that time ranges compare exactly as strings."""
    return value.as_py().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- read ------------------------------------------------------------------------------------


def _chosen_variables(manifest: Manifest, variables: Sequence[str] | None) -> list[str]:
    if variables is None:
        return list(manifest.variables)
    unknown = sorted(set(variables) - set(manifest.variables))
    if unknown:
        raise UnknownVariable(
            f"{manifest.id} has no variable {', '.join(unknown)} "
            f"(variables: {', '.join(manifest.variables)})"
        )
    return list(dict.fromkeys(variables))


def _utc(value) -> pd.Timestamp | None:
    if value is None:
        return None
    timestamp = pd.Timestamp(value)
    return timestamp.tz_localize("UTC") if timestamp.tzinfo is None else timestamp.tz_convert("UTC")


def _time_overlaps(file: ParquetFile, start, end) -> bool:
    return (start is None or pd.Timestamp(file.time_end) >= start) and (
        end is None or pd.Timestamp(file.time_start) <= end
    )


def _arrow_filesystem(lake: Lake) -> pyarrow.fs.FileSystem:
    # pyarrow's own local file system reads faster than going through fsspec.
    if lake.is_local:
        return pyarrow.fs.LocalFileSystem()
    return pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(lake.fs))


def _row_filter(bbox, start, end, platforms, variables, qc) -> ds.Expression:
    conditions = []
    if bbox is not None:
        conditions.append(point_in_box(ds.field("lon"), ds.field("lat"), bbox))
    if start is not None:
        conditions.append(ds.field("time") >= pa.scalar(start, UTC_MICROSECONDS))
    if end is not None:
        conditions.append(ds.field("time") <= pa.scalar(end, UTC_MICROSECONDS))
    if platforms is not None:
        conditions.append(ds.field("platform_id").isin(list(platforms)))
    measured = [_accepted(name, qc) for name in variables]
    conditions.append(_any(measured))
    return _all(conditions)


def _accepted(name: str, qc: Sequence[int] | None) -> ds.Expression:
    """A value of ``name`` is there and, if flags are asked for, has one of them."""
    present = ds.field(name).is_valid()
    if qc is None:
        return present
    return present & ds.field(f"{name}_QC").isin(pa.array(qc, pa.int8()))


def _any(expressions: list[ds.Expression]) -> ds.Expression:
    combined = expressions[0]
    for expression in expressions[1:]:
        combined = combined | expression
    return combined


def _all(expressions: list[ds.Expression]) -> ds.Expression:
    combined = expressions[0]
    for expression in expressions[1:]:
        combined = combined & expression
    return combined


def _mask_rejected_values(table: pa.Table, variables: list[str], qc: Sequence[int]) -> pa.Table:
    accepted = pa.array(qc, pa.int8())
    for name in variables:
        keep = pc.fill_null(pc.is_in(table[f"{name}_QC"], value_set=accepted), False)
        index = table.schema.get_field_index(name)
        table = table.set_column(
            index, table.schema.field(name), pc.if_else(keep, table[name], None)
        )
    return table


# --- checks ----------------------------------------------------------------------------------


def _geo_metadata_problems(metadata: dict[bytes, bytes]) -> list[str]:
    if b"geo" not in metadata:
        return ["no 'geo' metadata"]
    geo = json.loads(metadata[b"geo"])
    column = geo.get("columns", {}).get(geo.get("primary_column"), {})
    expected = {
        "version": (geo.get("version"), GEOPARQUET_VERSION),
        "primary_column": (geo.get("primary_column"), "geometry"),
        "encoding": (column.get("encoding"), "WKB"),
        "geometry_types": (column.get("geometry_types"), ["Point"]),
        "covering": (
            column.get("covering", {}).get("bbox"),
            {c: ["bbox", c] for c in ("xmin", "ymin", "xmax", "ymax")},
        ),
    }
    problems = [
        f"{key} is {actual!r}, expected {wanted!r}"
        for key, (actual, wanted) in expected.items()
        if actual != wanted
    ]
    if len(column.get("bbox", [])) != 4:
        problems.append("no bbox of the geometry column")
    return problems


def _partition_state(file: ParquetFile, table: pa.Table) -> tuple[bool, str]:
    times = table["time"]
    months = {_month_dir(t.year, t.month) for t in (pc.min(times).as_py(), pc.max(times).as_py())}
    folder = file.path.rsplit("/", 1)[0]
    if table.num_rows != file.rows:
        return False, f"{table.num_rows} rows, the manifest says {file.rows}"
    if months != {folder}:
        return (
            False,
            f"times from {_iso(pc.min(times))} to {_iso(pc.max(times))} are not all in {folder}",
        )
    return True, f"{file.rows} rows, all in {folder}"


def _sort_state(table: pa.Table) -> tuple[bool, str]:
    curve = hilbert_index(table["lon"].to_numpy(), table["lat"].to_numpy())
    time = table["time"].to_numpy()
    curve_step = np.diff(curve.astype(np.int64))
    backwards = np.diff(time) < np.timedelta64(0, "us")
    out_of_order = (curve_step < 0) | ((curve_step == 0) & backwards)
    if out_of_order.any():
        return (
            False,
            f"row {int(np.argmax(out_of_order)) + 1} breaks the (Hilbert curve, time) order",
        )
    return True, "rows in (Hilbert curve, time) order"


def _uniqueness_state(table: pa.Table) -> tuple[bool, str]:
    with duckdb.connect() as con:
        con.register("rows", table)
        duplicated = con.execute(
            f"SELECT count(*) FROM (SELECT {KEY_SQL} FROM rows GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()[0]
        mixed = con.execute(
            f"SELECT count(*) FROM (SELECT {PROFILE_SQL} FROM rows "
            "GROUP BY ALL HAVING count(DISTINCT source) > 1)"
        ).fetchone()[0]
    if duplicated or mixed:
        return False, (
            f"{duplicated} observation keys appear more than once, {mixed} profiles "
            "mix rows of several source files"
        )
    return True, "every observation once, every profile from one source file"
