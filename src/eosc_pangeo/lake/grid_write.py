"""Ingesting gridded data: many NetCDF files in, one analysis-ready Zarr collection out.

An ingest reads every new source file's metadata first and checks the lot (grid, variables,
units, packing, calendar, time axis) against each other and against what the collection already
holds.
Only then does it write, time block by time block, into one or two stores:

``map.zarr``
    few time steps per chunk and whole (or large) fields: fast maps and spatial statistics.
``timeseries.zarr``
    about a year (or ten, for monthly data) per chunk and small spatial tiles: a point time
    series over years reads a handful of chunks instead of one per time step.

The sources are read and checked in :mod:`~eosc_pangeo.lake.grid_sources`, the stores planned
in :mod:`~eosc_pangeo.lake.grid_plan`.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import os
import warnings
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Literal

import dask.array
import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from ..config import get_settings
from .errors import IngestError, LakeWarning
from .grid_plan import (
    TIME_INDEX_CHUNK,
    Chunking,
    codecs_of,
    plan_stores,
    source_codecs_accepted,
    store_source_chunks,
)
from .grid_reference import ReferenceRepository, check_options, folders_of, plan_references
from .grid_sources import (
    SourceGrid,
    bbox_of,
    check_consistent,
    check_time_axis,
    gaps,
    hash_and_read,
    iso,
)
from .hdf5_chunks import ChunkDecoder, DeflateLayout, raw_chunks
from .manifest import (
    Extent,
    IngestReport,
    Manifest,
    Progress,
    Source,
    SourceCheck,
    ZarrStore,
    collection_to_ingest,
    utcnow,
    write_manifest,
)
from .storage import Lake, zarr_store
from .transaction import Transaction

# Blocks written while the next is read, when the memory limit allows two of them.
PIPELINE_BLOCK_BYTES = 128 * 1024**2
# zstd level 1: on packed int16 fields, 2.5x less CPU than level 3, and a year of 0.25-degree SST
# came out 1.5 % smaller (392 MB, 398 MB at level 3).
COMPRESSOR = BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")
# netCDF4/HDF5 storage details that mean nothing in Zarr.
_NETCDF_ENCODING = (
    "zlib",
    "complevel",
    "shuffle",
    "fletcher32",
    "contiguous",
    "chunksizes",
    "source",
    "original_shape",
    "szip",
    "zstd",
    "bzip2",
    "blosc",
    "quantize_mode",
    "significant_digits",
    "endian",
    "least_significant_digit",
    "compression",
    "preferred_chunks",
    "coordinates",
)
#: How a variable is stored when it is not kept packed: decoded to float32, NaN where missing.
DECODED = {"dtype": "float32", "_FillValue": "nan"}
_PACKING = ("dtype", "scale_factor", "add_offset", "_FillValue", "missing_value")
StoredValues = Literal["auto", "packed", "decoded"]

# Per-file attributes that an ingest recomputes for the whole collection.
_PER_FILE_ATTRS = (
    "time_coverage_start",
    "time_coverage_end",
    "date_created",
    "date_modified",
    "date_issued",
    "uuid",
    "tracking_id",
    "creation_date",
    "history",
    "time_coverage_duration",
)


def ingest_grid(
    lake: str | Lake,
    collection: str,
    domain: str,
    files: Sequence[str | os.PathLike],
    *,
    chunking: Chunking = "both",
    values: StoredValues = "auto",
    copy_chunks: bool = True,
    by_reference: bool = False,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest gridded NetCDF files into a Zarr collection of the lake.

    Parameters
    ----------
    lake
        Lake URL (or :class:`~eosc_pangeo.lake.storage.Lake`).
    collection
        Collection id, unique in the lake (e.g. ``"sst-l4"``).
    domain
        One of ``ocean``, ``atmosphere``, ``land``, ``solid-earth``.
    files
        Paths, fsspec URLs or glob patterns of NetCDF files, in any order; they are combined
        along time after the collection's last time step. A file of the name of one the
        collection holds, with other content, is a new version of it: it overwrites the same
        time steps in place.
    chunking
        ``"map"``, ``"timeseries"`` or ``"both"`` (two stores). Fixed when the collection is
        created.
    values
        ``"packed"`` copies the values as the sources store them (e.g. int16 with
        ``scale_factor``/``add_offset``), bit for bit: the sources must share one packing.
        ``"decoded"`` stores float32 (NaN where missing), for sources packed each their own way
        (ERA5 files from the Copernicus CDS are). ``"auto"`` keeps a variable packed when the
        sources of the first ingest share its packing. Fixed when the collection is created.
    copy_chunks
        Whether a new map store takes the sources' chunks and compression (zlib, shuffle) when
        these suit it, so that their compressed chunks are copied unchanged (each is still
        inflated once, to check it): the fastest ingest. Its codecs are numcodecs', which
        zarr-python reads but other Zarr 3 readers may not; False compresses with Blosc-zstd,
        a Zarr 3 codec. Fixed when the collection is created; ``report.chunks`` says how each
        array was written.
    by_reference
        Copy nothing: the map store is an Icechunk repository of references to the sources'
        chunks (see :mod:`~eosc_pangeo.lake.grid_reference`), so the sources must stay where
        they are, unchanged, and readers need the icechunk package. Needs
        ``chunking="map"``, local files that store each variable alike, and the packages of
        the ``references`` extra. Fixed when the collection is created.
    progress
        Called as ``progress(stage, done, total)`` while hashing, checking and writing.

    Returns
    -------
    IngestReport
        ``report.added`` is empty when every file was already in the collection (a no-op);
        ``report.replaced`` names the new versions.

    Raises
    ------
    IngestError
        If a file cannot be read or does not fit the others or the collection; nothing is
        written then.
    CollectionBusy
        If another ingest is writing the collection.
    """
    lake = Lake.from_url(lake)
    with (
        collection_to_ingest(lake, collection, domain, "grid", progress) as (
            collection_path,
            manifest,
            report_progress,
        ),
        ExitStack() as open_sources,
    ):
        check_options(manifest, by_reference, chunking, values, collection)
        check = SourceCheck(lake, manifest, replaces_changed=True)
        sources = hash_and_read(check, [os.fspath(f) for f in files], report_progress, open_sources)
        report = IngestReport(
            collection=collection,
            domain=domain,
            version=manifest.version if manifest else 0,
            skipped=check.skipped,
        )
        if not sources:
            return report
        with source_codecs_accepted():
            _ingest(
                lake,
                collection_path,
                manifest,
                sources,
                chunking,
                values,
                copy_chunks,
                by_reference,
                report,
                report_progress,
            )
    for message in report.warnings:
        warnings.warn(f"{collection}: {message}", LakeWarning, stacklevel=2)
    return report


def _ingest(
    lake,
    collection_path,
    manifest,
    sources,
    chunking,
    values,
    copy_chunks,
    by_reference,
    report,
    progress,
) -> None:
    """Check the opened sources, then write them and commit a new version (told in report).

    New versions of files the collection holds overwrite their time steps in place; other
    files are appended after the collection's last time.
    """
    decoded = (
        set() if by_reference else _decoded_variables(sources, manifest, values, report.collection)
    )
    check_consistent(sources, manifest, decoded)
    sources.sort(key=lambda s: s.times[0])
    renewed = [s for s in sources if s.previous is not None]
    appended = [s for s in sources if s.previous is None]
    if by_reference and renewed:
        raise IngestError(
            renewed[0].url,
            f"is a new version of {renewed[0].name}, which the collection references in place",
            "a collection ingested by reference reads its sources where they were: give the "
            "new version a new name (or ingest the collection by copy)",
        )
    in_place = _steps_of_earlier_versions(lake, collection_path, manifest, renewed)
    times = check_time_axis(appended, manifest) if appended else np.array([])
    report.warnings.extend(gaps(times, appended))

    version = (manifest.version if manifest else 0) + 1
    if manifest is None:
        manifest = Manifest(id=report.collection, domain=report.domain, kind="grid")
        manifest.stores = (
            plan_references(sources[0])
            if by_reference
            else plan_stores(sources[0], times, chunking)
        )
        compressors = store_source_chunks(
            manifest.stores.get("map") if copy_chunks and not by_reference else None,
            sources,
            decoded,
        )
        manifest.variables = {
            name: variable.model_copy(update={"packing": DECODED, "dtype": DECODED["dtype"]})
            if name in decoded
            else variable
            for name, variable in sources[0].variables.items()
        }
    else:
        compressors = {}
    start = next(iter(manifest.stores.values())).time_length
    if by_reference:
        _ingest_references(lake, collection_path, manifest, sources, times, version, progress)
        report.version = version
        report.added = [s.name for s in sources]
        report.chunks = {
            f"{manifest.stores['map'].path}/{name}": "referenced" for name in manifest.variables
        }
        return

    with Transaction(lake) as transaction:
        stores = {
            name: zarr_store(lake, f"{collection_path}/{s.path}")
            for name, s in manifest.stores.items()
        }
        if start == 0:
            # Undoing a new collection is deleting its folder: no need to log (and GET) each key.
            transaction.created_dir(collection_path)
        else:
            stores = {name: transaction.zarr_store(store) for name, store in stores.items()}
        if appended:
            _write(
                appended,
                times,
                _following(appended, start),
                manifest,
                stores,
                decoded,
                progress,
                compressors,
                report.chunks,
                create=start == 0,
            )
        if renewed:
            # One pass for all the new versions, wherever they are: a chunk holding the steps
            # of several of them is read and rewritten once, not once per file.
            _write(
                renewed,
                np.concatenate([source.times for source in renewed]),
                dict(zip(renewed, in_place, strict=True)),
                manifest,
                stores,
                decoded,
                progress,
                compressors,
                report.chunks,
                create=False,
                times_stored=True,
            )
        _update_manifest(manifest, sources, times, version)
        for name, store in stores.items():
            _finish_store(store, manifest, manifest.stores[name])
        write_manifest(lake, collection_path, manifest)
    report.version = version
    report.added = [s.name for s in sources]
    report.replaced = [s.name for s in renewed]


def _ingest_references(
    lake: Lake, collection_path: str, manifest: Manifest, sources, times, version, progress
) -> None:
    """Commit the references of the new ``sources`` (appended at ``times``) as a new
    Icechunk snapshot, then the manifest that names it: all or nothing."""
    info = manifest.stores["map"]
    start = info.time_length
    folders = folders_of(manifest) + [os.path.dirname(s.path) for s in sources]
    with Transaction(lake) as transaction:
        if start == 0:
            transaction.created_dir(collection_path)
        with ReferenceRepository(lake, collection_path, info, folders) as repository:
            repository.write(sources, times, start, progress)
            history = repository.history()
            _update_manifest(manifest, sources, times, version)
            attributes, line = _store_attributes(manifest, info, history)
            info.snapshot = repository.commit(attributes, line)
            write_manifest(lake, collection_path, manifest)


def _decoded_variables(
    sources: list[SourceGrid], manifest: Manifest | None, values: StoredValues, collection: str
) -> set[str]:
    """The variables the collection stores decoded: fixed at its creation by ``values``."""
    if manifest is not None:
        decoded = {name for name, v in manifest.variables.items() if v.packing == DECODED}
        if values != "auto" and (values == "decoded") != bool(decoded):
            raise IngestError(
                f"collection {collection!r}",
                f"stores its values {'decoded' if decoded else 'packed'}, not {values}",
                "this is chosen when a collection is created; ingest into a new "
                "collection to choose otherwise",
            )
        return decoded
    names = sources[0].variables
    if values == "packed":
        return set()
    if values == "decoded":
        return set(names)
    return {
        name
        for name in names
        if len({str(s.variables[name].packing) for s in sources if name in s.variables}) > 1
    }


def _following(sources: list[SourceGrid], start: int) -> dict[SourceGrid, int]:
    """The first step of each of ``sources`` (in time order) appended from step ``start``."""
    lengths = [len(source.times) for source in sources]
    return dict(zip(sources, start + np.cumsum([0] + lengths[:-1]), strict=True))


def _steps_of_earlier_versions(
    lake: Lake, collection_path: str, manifest: Manifest | None, renewed: list[SourceGrid]
) -> list[int]:
    """The first time step each new version overwrites: where its earlier version's are.

    Raises
    ------
    IngestError
        If a new version does not hold exactly the time steps of the earlier one (a Zarr time
        axis cannot lose or gain steps in its middle).
    """
    if not renewed:
        return []
    stored = _stored_times(lake, collection_path, manifest, renewed[0].time_name)
    first_steps = []
    for source in renewed:
        # The stored axis increases (every ingest checks it): the earlier version's steps are
        # found by bisection, turning a few of the stored times into ISO strings, not all.
        first = bisect.bisect_left(stored, source.previous.time_start, key=iso)
        last = bisect.bisect_right(stored, source.previous.time_end, key=iso)
        new = [iso(t) for t in source.times]
        if [iso(t) for t in stored[first:last]] != new:
            raise IngestError(
                source.url,
                f"is a new version of {source.name} but holds other "
                f"times ({new[0]}..{new[-1]}, {len(new)} steps) than the earlier "
                f"one ({source.previous.time_start}..{source.previous.time_end}, "
                f"{last - first} steps)",
                "a new version must keep the time steps "
                "of the file it replaces; other periods need files of new names",
            )
        first_steps.append(first)
    return first_steps


def _stored_times(
    lake: Lake, collection_path: str, manifest: Manifest, time_name: str
) -> np.ndarray:
    """The collection's time steps, read from its first store's time array alone: opening
    the collection would open and decode every variable of its stores."""
    info = next(iter(manifest.stores.values()))
    store = zarr_store(lake, f"{collection_path}/{info.path}")
    array = zarr.open_array(store, path=time_name, mode="r", zarr_format=3)
    encoded = xr.Variable((time_name,), array[:], dict(array.attrs))
    return xr.coders.CFDatetimeCoder().decode(encoded).values


def _write(
    sources,
    times,
    first_steps: dict[SourceGrid, int],
    manifest,
    stores,
    decoded: set[str],
    progress,
    compressors: dict[str, list],
    paths: dict[str, str],
    *,
    create: bool,
    times_stored: bool = False,
) -> None:
    """Write the time steps ``times`` of ``sources`` (in time order) into every store, each
    source's from its step in ``first_steps`` on: one run of steps when appending, steps
    anywhere in the stores for new versions of files. The variables in ``decoded`` are written
    decoded to float32, the others as the sources store them, their compressed chunks copied
    unchanged where the store allows it. A new map store compresses the variables of
    ``compressors`` with these codecs. ``paths`` is told how each store's variables were
    written. ``create``: the stores are new. ``times_stored``: the stores hold these times
    already (new versions of files keep their times), so the time coordinate is not written."""
    reference = sources[0]
    located = [(source, i) for source in sources for i in range(len(source.times))]
    steps = np.array([first_steps[source] + i for source, i in located])
    end = int(steps[-1]) + 1
    template = _template(reference, times, decoded) if create else None
    for name, store in stores.items():
        if create:
            template.to_zarr(
                store,
                mode="w",
                compute=False,
                consolidated=False,
                encoding=_encoding(
                    template, manifest.stores[name], compressors if name == "map" else {}
                ),
                zarr_format=3,
                safe_chunks=False,
            )
        elif end > manifest.stores[name].time_length:  # new versions stay inside the axis
            _extend_time(store, reference.time_name, end)

    # Opened once: each opening reads the array's metadata.
    arrays = {}
    for store_name, store in stores.items():
        group = zarr.open_group(store, mode="r+", use_consolidated=False, zarr_format=3)
        arrays[store_name] = {name: group[name] for name in reference.variables}
    copies = _chunk_copies(sources, first_steps, arrays, manifest.stores, decoded, paths)
    time_chunk = max(s.chunks[reference.time_name] for s in manifest.stores.values())
    step_bytes = sum(
        np.dtype(v.dtype).itemsize * math.prod(reference.template[name].shape[1:])
        for name, v in reference.variables.items()
    )
    # As many steps as memory allows, in whole chunks of the longest time chunk when it fits,
    # so that a time-series chunk is written once rather than read back and rewritten. When two
    # such blocks fit, one is written while the next is read, in blocks of about
    # PIPELINE_BLOCK_BYTES: decoding the sources and compressing the chunks then overlap.
    affordable = max(1, get_settings().ingest_memory_limit // step_bytes)
    overlap = affordable >= 2 * time_chunk
    if overlap:
        wanted = max(1, PIPELINE_BLOCK_BYTES // step_bytes)
        block = min(affordable // 2, max(wanted, time_chunk)) // time_chunk * time_chunk
    else:
        block = affordable // time_chunk * time_chunk if affordable >= time_chunk else affordable
    boundaries = list(range(0, len(located), block))
    writing = None
    with ThreadPoolExecutor(1, thread_name_prefix="grid-write") as writer:
        for done, block_start in enumerate(boundaries, start=1):
            block_end = min(block_start + block, len(located))
            if writing is not None and not overlap:
                writing.result()  # one block in memory at a time
            loaded = _load(
                located[block_start:block_end],
                reference,
                decoded,
                copies,
                first_steps,
                times_stored,
            )
            if writing is not None:
                writing.result()
                progress("write", done - 1, len(boundaries))
            writing = writer.submit(
                _write_block,
                arrays,
                stores,
                loaded,
                copies,
                reference.time_name,
                steps[block_start:block_end],
            )
        writing.result()
        progress("write", len(boundaries), len(boundaries))


def _chunk_copies(
    sources: list[SourceGrid],
    first_steps: dict[SourceGrid, int],
    arrays: dict[str, dict[str, zarr.Array]],
    stores: dict[str, ZarrStore],
    decoded: set[str],
    paths: dict[str, str],
) -> dict[str, dict[str, zarr.Array]]:
    """The ``arrays`` (of each store, by variable) that every source's compressed chunks are
    copied into, unchanged; the others are encoded from the decoded values. ``paths`` is told
    which (``"<store>/<variable>"``: ``"copied"`` or ``"encoded: <why>"``)."""
    copies = {}
    for store_name, by_name in arrays.items():
        copies[store_name] = {}
        for name, array in by_name.items():
            why = (
                "stored decoded"
                if name in decoded
                else next(
                    (
                        f"{source.name}: {problem}"
                        for source in sources
                        if (problem := _copy_problem(source, name, array, first_steps[source]))
                    ),
                    None,
                )
            )
            path = f"{stores[store_name].path}/{name}"
            if why is None:
                copies[store_name][name] = array
                paths.setdefault(path, "copied")
            else:
                paths[path] = f"encoded: {why}"
    return copies


def _copy_problem(source: SourceGrid, name: str, array: zarr.Array, first_step: int) -> str | None:
    """Why the stored chunks of variable ``name`` of ``source``, to be written from step
    ``first_step`` on, cannot be copied into ``array`` unchanged; None if they can."""
    layout = source.layouts[name]
    if layout is None:
        return "not a local HDF5 file with written chunks of deflate(+shuffle)"
    if layout.chunks != array.chunks:
        return f"chunks {layout.chunks}, the store's {array.chunks}"
    if layout.dtype != array.dtype or layout.dtype.byteorder == ">":
        return f"stored as {layout.dtype.str}, the store as {array.dtype}"
    expected = [(type(c), c.codec_config.get("elementsize")) for c in codecs_of(layout)]
    codecs = [
        (type(c), getattr(c, "codec_config", {}).get("elementsize")) for c in array.compressors
    ]
    if array.filters or codecs != expected:
        return "compressed otherwise than the store"
    if first_step % layout.chunks[0] or len(source.times) % layout.chunks[0]:
        return "its time steps do not fill whole chunks of the store"
    return None


def _write_block(
    arrays: dict[str, dict[str, zarr.Array]],
    stores,
    loaded,
    copies: dict[str, dict[str, zarr.Array]],
    time_name: str,
    steps: np.ndarray,
) -> None:
    """Write one block's values, copied chunks and time variables (if any: see :func:`_load`)
    at the (ascending) ``steps`` of every store."""
    stored, time_variables, copied = loaded
    runs = _runs(steps)
    # Zarr reads and rewrites each chunk the steps touch once, however scattered they are.
    selection = runs[0][1] if len(runs) == 1 else steps
    for store_name, store in stores.items():
        for name, values in stored.items():
            if name not in copies[store_name]:
                arrays[store_name][name].oindex[selection] = values
        if copied[store_name]:
            sync(_set_all(store, copied[store_name]))
        if time_variables is not None:
            # An xarray region write opens and decodes the store: most of the time of writing
            # a new version of one file, when it was made for the times alone.
            for positions, region in runs:  # region writes take a slice each
                time_variables.isel({time_name: positions}).to_zarr(
                    store, region={time_name: region}, consolidated=False, zarr_format=3
                )


def _runs(steps: np.ndarray) -> list[tuple[slice, slice]]:
    """The runs of consecutive ``steps``: where each is in ``steps``, and which steps it is."""
    starts = [0, *(np.flatnonzero(np.diff(steps) != 1) + 1).tolist()]
    ends = [*starts[1:], len(steps)]
    return [
        (slice(first, last), slice(int(steps[first]), int(steps[last - 1]) + 1))
        for first, last in zip(starts, ends, strict=True)
    ]


async def _set_all(store, chunks: list[tuple[str, bytes]]) -> None:
    """Write chunks as they are, under their keys, concurrently."""
    prototype = default_buffer_prototype()
    await asyncio.gather(
        *(store.set(key, prototype.buffer.from_bytes(data)) for key, data in chunks)
    )


def _template(reference: SourceGrid, times: np.ndarray, decoded: set[str]) -> xr.Dataset:
    """A lazy dataset of the full new shape, with the reference's attributes and encodings
    (without the packing of the variables stored ``decoded``)."""
    t = reference.time_name
    ds = reference.template
    variables = {}
    for name, var in ds.variables.items():
        if t in var.dims and name != t:
            shape = (len(times),) + var.shape[1:]
            if var.dtype.kind in "OM":
                # Time bounds: placeholders of the right type, so that CF encoding applies.
                data = np.broadcast_to(times.reshape((-1,) + (1,) * (var.ndim - 1)), shape)
            else:
                data = dask.array.zeros(shape, dtype=var.dtype, chunks=(1,) + var.shape[1:])
            encoding = _zarr_encoding(var.encoding)
            if name in decoded:
                encoding = {k: v for k, v in encoding.items() if k not in _PACKING} | {
                    "dtype": "float32",
                    "_FillValue": np.float32(np.nan),
                }
            variables[name] = xr.Variable(var.dims, data, var.attrs, encoding)
        elif name != t:
            variables[name] = xr.Variable(
                var.dims, var.values, var.attrs, _zarr_encoding(var.encoding)
            )
    out = xr.Dataset(variables, attrs=_collection_attrs(reference.attrs))
    out[t] = xr.Variable((t,), times, ds[t].attrs, _zarr_encoding(ds[t].encoding))
    # CF axis attributes, whatever the sources said: readers (cf_xarray among them) then find
    # the axes of every store the same way.
    for name, axis in ((t, "T"), (reference.y_name, "Y"), (reference.x_name, "X")):
        out[name].attrs.setdefault("axis", axis)
    return out.set_coords([c for c in ds.coords if c in out.variables])


def _encoding(template: xr.Dataset, store: ZarrStore, compressors: dict[str, list]) -> dict:
    """The template's CF encoding (units, packing) plus the store's chunks and compression
    (that of ``compressors`` for the variables it names)."""
    time_name = template.cf["T"].name
    encoding = {}
    for name, var in template.variables.items():
        if name == time_name:
            # The time index is read whole at every open: keep it in one chunk for decades.
            encoding[name] = {**var.encoding, "chunks": (TIME_INDEX_CHUNK,)}
        elif name in template.data_vars and var.dims[0] == time_name:
            chunks = tuple(
                store.chunks[d] if d == time_name else min(store.chunks.get(d, n), n)
                for d, n in zip(var.dims, var.shape, strict=True)
            )
            encoding[name] = {
                **var.encoding,
                "chunks": chunks,
                "compressors": compressors.get(name, [COMPRESSOR]),
            }
    return encoding


def _zarr_encoding(encoding: dict) -> dict:
    """The source's CF encoding, without the storage details of NetCDF/HDF5."""
    kept = {k: v for k, v in encoding.items() if k not in _NETCDF_ENCODING}
    for key in ("scale_factor", "add_offset"):
        if isinstance(kept.get(key), np.floating):
            # JSON has no float32: keep the value as written (0.01), not its binary expansion.
            kept[key] = float(str(kept[key]))
    return kept


def _extend_time(store, time_name: str, length: int) -> None:
    """Grow the time dimension of every array of the store to ``length`` steps."""
    group = zarr.open_group(store, mode="r+", use_consolidated=False, zarr_format=3)
    for _, array in group.arrays():
        dims = array.metadata.dimension_names or ()
        if dims and dims[0] == time_name and array.shape[0] < length:
            array.resize((length,) + array.shape[1:])


def _load(
    located: list[tuple[SourceGrid, int]],
    reference: SourceGrid,
    decoded: set[str],
    copies: dict[str, dict[str, zarr.Array]],
    first_steps: dict[SourceGrid, int],
    times_stored: bool,
) -> tuple[dict[str, np.ndarray], xr.Dataset | None, dict[str, list[tuple[str, bytes]]]]:
    """Read the time steps of one block: the data variables as stored (packed, fill values and
    all: the sources share the collection's packing, so nothing needs decoding) or, those in
    ``decoded``, decoded to float32; the compressed chunks of the variables that ``copies``
    copies into a store (``{store name: [(key, bytes)]}``); and the small time variables (time,
    its bounds) decoded, for xarray to encode like the store's: None when there are none to
    write (``times_stored``: the stores hold these times, and the sources have no bounds).
    ``first_steps`` tells where each source's first step is in the stores.

    HDF5 chunks compressed with deflate (and shuffle) are read raw and inflated in a thread pool
    (zlib releases the GIL); other layouts are read through netCDF4.
    """
    t = reference.time_name
    # Filled in place, file by file: a block can be most of the memory limit, no second copy.
    # A variable copied into every store is not decoded at all (its chunks are still inflated
    # once, to check them).
    stored = {
        name: np.empty(
            (len(located),) + reference.template[name].shape[1:],
            dtype=DECODED["dtype"] if name in decoded else variable.packing["dtype"],
        )
        for name, variable in reference.variables.items()
        if not all(name in names for names in copies.values())
    }
    copied = {store: [] for store in copies}
    time_names = [
        v
        for v in reference.template.variables
        if t in reference.template[v].dims and v not in reference.variables
    ]
    if times_stored and time_names == [t]:
        time_names = []  # bounds, where there are, are not known to be unchanged: written
    time_variables = []
    filled = 0
    with ChunkDecoder() as decoder:
        for source in dict.fromkeys(s for s, _ in located):
            indices = [i for s, i in located if s is source]
            steps = {t: slice(indices[0], indices[-1] + 1)}
            try:
                with raw_chunks(source.path, source.local) as h5:
                    for name in reference.variables:
                        out = (
                            stored[name][filled : filled + len(indices)] if name in stored else None
                        )
                        targets = [store for store, names in copies.items() if name in names]
                        if targets:
                            sink = _chunk_sink(
                                first_steps[source],
                                source.layouts[name],
                                [(copies[store][name], copied[store]) for store in targets],
                            )
                            decoder.submit(
                                source.url,
                                h5,
                                name,
                                source.layouts[name],
                                indices[0],
                                len(indices),
                                out,
                                sink,
                            )
                        elif name in decoded:
                            # Each source by its own scale_factor, add_offset and _FillValue.
                            raw = source.dataset[[name]].isel(steps)
                            out[...] = xr.decode_cf(raw, decode_times=False)[name].values
                        elif not decoder.submit(
                            source.url,
                            h5,
                            name,
                            source.layouts[name],
                            indices[0],
                            len(indices),
                            out,
                        ):
                            out[...] = source.dataset[name].isel(steps).values
                if time_names:
                    time_variables.append(source.dataset[time_names].isel(steps).load())
                filled += len(indices)
            except (OSError, RuntimeError, ValueError, zlib.error) as error:
                raise IngestError(
                    source.url, f"cannot be read ({error})", "the file is corrupt; fetch it again"
                ) from None
    if not time_variables:
        return stored, None, copied
    times = xr.concat(
        time_variables, dim=t, data_vars="all", coords="minimal", compat="override", join="override"
    )
    drop = [v for v in times.variables if t not in times[v].dims]
    # Region writes skip indexed coordinates, and the new time values must be written too.
    return stored, times.drop_vars(drop).drop_indexes(t), copied


def _chunk_sink(
    first_step: int,
    layout: DeflateLayout,
    targets: list[tuple[zarr.Array, list[tuple[str, bytes]]]],
):
    """Where the checked chunks of a source variable whose first step is ``first_step`` in the
    stores go: for each ``(array, chunks)`` of ``targets``, into ``chunks`` under the key of
    the same chunk of ``array``."""
    shift = first_step // layout.chunks[0]

    def sink(index: tuple[int, ...], data: bytes) -> None:
        for array, chunks in targets:
            key = array.metadata.encode_chunk_key((index[0] + shift, *index[1:]))
            # list.append is atomic: the decoder's threads share the lists.
            chunks.append((f"{array.path}/{key}", data))

    return sink


def _update_manifest(manifest: Manifest, sources, appended_times, version: int) -> None:
    reference = sources[0]
    first = manifest.extent.time[0] if manifest.extent.time else iso(appended_times[0])
    last = iso(appended_times[-1]) if len(appended_times) else manifest.extent.time[1]
    manifest.version = version
    manifest.updated = utcnow()
    manifest.software = Manifest.model_fields["software"].default_factory()
    manifest.variables = manifest.variables or reference.variables
    manifest.extent = Extent(
        bbox=bbox_of(reference), time=(first, last), calendar=reference.calendar
    )
    if not manifest.attributes:
        manifest.attributes = _collection_attrs(reference.attrs)
    renewed = {source.name for source in sources}
    manifest.sources = [s for s in manifest.sources if s.name not in renewed]
    for source in sources:
        manifest.sources.append(
            Source(
                name=source.name,
                url=source.url,
                size=source.size,
                sha256=source.sha256,
                time_start=iso(source.times[0]),
                time_end=iso(source.times[-1]),
                version=version,
            )
        )
    for store in manifest.stores.values():
        store.time_length += len(appended_times)


def _finish_store(store, manifest: Manifest, info: ZarrStore) -> None:
    """Set the collection-wide ACDD attributes, then consolidate: readers see the new data now."""
    group = zarr.open_group(store, mode="r+", use_consolidated=False, zarr_format=3)
    attributes, _ = _store_attributes(manifest, info, group.attrs.get("history", ""))
    # At once: attrs.update writes the group's metadata again for each attribute.
    group.update_attributes(attributes)
    with warnings.catch_warnings():
        # Consolidated metadata is not in the Zarr 3 spec yet, but zarr-python and xarray read
        # it, and it is what makes the new version visible at once.
        warnings.simplefilter("ignore", category=zarr.errors.ZarrUserWarning)
        zarr.consolidate_metadata(store, zarr_format=3)


def _store_attributes(manifest: Manifest, info: ZarrStore, history: str) -> tuple[dict, str]:
    """The collection-wide CF and ACDD attributes of a store after this version, and the line
    this version adds to its ``history``."""
    west, south, east, north = manifest.extent.bbox
    added = [s.name for s in manifest.sources if s.version == manifest.version]
    line = (
        f"{manifest.updated} eosc-pangeo {manifest.software.get('eosc-pangeo')} ingest-grid: "
        f"{len(added)} file(s) {added[0]}..{added[-1]} -> {info.path} (version "
        f"{manifest.version})"
    )
    attributes = {
        **manifest.attributes,
        "Conventions": "CF-1.10, ACDD-1.3",
        "id": manifest.id,
        "time_coverage_start": manifest.extent.time[0],
        "time_coverage_end": manifest.extent.time[1],
        "geospatial_lat_min": south,
        "geospatial_lat_max": north,
        "geospatial_lon_min": west,
        "geospatial_lon_max": east,
        "geospatial_lat_units": "degrees_north",
        "geospatial_lon_units": "degrees_east",
        "date_created": manifest.created,
        "date_modified": manifest.updated,
        "product_version": str(manifest.version),
        "history": f"{history}\n{line}".strip(),
    }
    return attributes, line


def _collection_attrs(attrs: dict) -> dict:
    kept = {k: v for k, v in attrs.items() if k not in _PER_FILE_ATTRS}
    kept.setdefault("title", kept.get("id", "untitled"))
    kept.setdefault("summary", kept["title"])
    return {
        k: (
            v.item()
            if isinstance(v, np.generic)
            else v.tolist()
            if isinstance(v, np.ndarray)
            else v
        )
        for k, v in kept.items()
    }
