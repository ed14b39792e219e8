"""Gridded data: many NetCDF files in, one analysis-ready Zarr collection out.

An ingest reads every new source file's metadata first and checks the lot (grid, variables,
units, packing, calendar, time axis) against each other and against what the collection already
holds.
Only then does it write, time block by time block, into one or two stores:

``map.zarr``
    few time steps per chunk and whole (or large) fields: fast maps and spatial statistics.
``timeseries.zarr``
    about a year (or ten, for monthly data) per chunk and small spatial tiles: a point time
    series over years reads a handful of chunks instead of one per time step.

Chunks aim at about 1 MiB of decoded data, as the Copernicus Marine ARCO products do.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import warnings
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Literal

import cf_xarray  # noqa: F401  (registers the .cf accessor used to find axes)
import dask.array
import numpy as np
import xarray as xr
import zarr
from fsspec.implementations.local import LocalFileSystem
from zarr.codecs import BloscCodec, numcodecs
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import FsspecStore, LocalStore

from ..config import get_settings
from ..geometry import check_bbox
from .errors import (
    Finding,
    IngestError,
    LakeError,
    LakeWarning,
    SelectionError,
    UnknownVariable,
)
from .grid_backend import GridBackend
from .hdf5_chunks import ChunkDecoder, DeflateLayout, deflate_layout, raw_chunks
from .manifest import (
    Extent,
    IngestReport,
    Manifest,
    Progress,
    Source,
    SourceCheck,
    SourceFile,
    Variable,
    ZarrStore,
    collection_to_ingest,
    read_manifest,
    utcnow,
    write_manifest,
)
from .sibling_sources import read_like
from .storage import Lake, source_name
from .transaction import Transaction

Chunking = Literal["map", "timeseries", "both"]

TARGET_CHUNK_BYTES = 1024**2
# Blocks written while the next is read, when the memory limit allows two of them.
PIPELINE_BLOCK_BYTES = 128 * 1024**2
TIME_INDEX_CHUNK = 65536
# The chunk sizes `lake validate` accepts; _plan_stores keeps within them for every grid size.
CHUNK_BYTES_BOUNDS = (16 * 1024, 64 * 1024**2)
# zstd level 1: on packed int16 fields, 2.5x less CPU than level 3, and a year of 0.25-degree SST
# came out 1.5 % smaller (392 MB, 398 MB at level 3).
COMPRESSOR = BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")
# netCDF4/HDF5 storage details that mean nothing in Zarr.
_NETCDF_ENCODING = ("zlib", "complevel", "shuffle", "fletcher32", "contiguous", "chunksizes",
                    "source", "original_shape", "szip", "zstd", "bzip2", "blosc", "quantize_mode",
                    "significant_digits", "endian", "least_significant_digit", "compression",
                    "preferred_chunks", "coordinates")
# Per-file attributes that an ingest recomputes for the whole collection.
#: How a variable is stored when it is not kept packed: decoded to float32, NaN where missing.
DECODED = {"dtype": "float32", "_FillValue": "nan"}
_PACKING = ("dtype", "scale_factor", "add_offset", "_FillValue", "missing_value")
StoredValues = Literal["auto", "packed", "decoded"]

_PER_FILE_ATTRS = ("time_coverage_start", "time_coverage_end", "date_created", "date_modified",
                   "date_issued", "uuid", "tracking_id", "creation_date", "history",
                   "time_coverage_duration")


@dataclass(eq=False)
class SourceGrid:
    """What an ingest needs to know of one source file, read from its metadata."""

    url: str
    name: str
    size: int
    sha256: str
    #: Where the file is on its filesystem, and whether that is this machine's (then its raw
    #: HDF5 chunks can be read directly).
    path: str
    local: bool
    time_name: str
    y_name: str
    x_name: str
    times: np.ndarray
    calendar: str
    y: np.ndarray
    x: np.ndarray
    variables: dict[str, Variable]
    attrs: dict
    dataset: xr.Dataset = field(repr=False)
    #: The data variables and their bounds, as the collection's template is made of them.
    template_names: list[str] = field(repr=False)
    #: The collection's record of the earlier version this file replaces, if it is a new one.
    previous: Source | None = None

    @functools.cached_property
    def layouts(self) -> dict[str, DeflateLayout | None]:
        """How the file stores each data variable's chunks, where they can be read raw."""
        with raw_chunks(self.path, self.local) as h5:
            return {name: deflate_layout(h5, name) for name in self.variables}

    @functools.cached_property
    def template(self) -> xr.Dataset:
        """The first time step of the data variables (and bounds), decoded, so that its
        encoding carries the packing to the new stores. Only the reference's is ever made."""
        ds = self.dataset[self.template_names].isel({self.time_name: slice(0, 1)})
        return xr.decode_cf(ds, decode_times=False)


def ingest_grid(
    lake: str | Lake,
    collection: str,
    domain: str,
    files: Sequence[str | os.PathLike],
    *,
    chunking: Chunking = "both",
    values: StoredValues = "auto",
    copy_chunks: bool = True,
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
    with (collection_to_ingest(lake, collection, domain, "grid", progress) as (
              collection_path, manifest, report_progress),
          ExitStack() as open_sources):
        check = SourceCheck(lake, manifest, replaces_changed=True)
        sources = _hash_and_read(check, [os.fspath(f) for f in files], report_progress,
                                 open_sources)
        report = IngestReport(collection=collection, domain=domain,
                              version=manifest.version if manifest else 0, skipped=check.skipped)
        if not sources:
            return report
        with source_codecs_accepted():
            _ingest(lake, collection_path, manifest, sources, chunking, values, copy_chunks,
                    report, report_progress)
    for message in report.warnings:
        warnings.warn(f"{collection}: {message}", LakeWarning, stacklevel=2)
    return report


def _hash_and_read(check: SourceCheck, urls: list[str], progress: Progress,
                   open_sources: ExitStack) -> list[SourceGrid]:
    """Hash the files (skipping those the collection holds) and open the new ones, in order.

    A thread hashes the files one after another, ahead of the opening: hashing reads the whole
    file (and leaves it in the page cache for the opening) while the opening parses metadata.
    """
    urls = check.expand(urls)
    sources = []
    with ThreadPoolExecutor(1, thread_name_prefix="grid-hash") as hasher:
        hashed = [hasher.submit(check.new_file, url) for url in urls]
        try:
            for done, future in enumerate(hashed, start=1):
                new_file = future.result()
                progress("hash", done, len(urls))
                if new_file is not None:
                    # A file laid out like the first is described from its HDF5 metadata.
                    sources.append(sources and read_like(new_file, sources[0])
                                   or _read_source(new_file))
                    open_sources.callback(sources[-1].dataset.close)
        finally:
            for future in hashed:
                future.cancel()
    return sources


def _ingest(lake, collection_path, manifest, sources, chunking, values, copy_chunks, report,
            progress) -> None:
    """Check the opened sources, then write them and commit a new version (told in report).

    New versions of files the collection holds overwrite their time steps in place; other
    files are appended after the collection's last time.
    """
    decoded = _decoded_variables(sources, manifest, values, report.collection)
    _check_consistent(sources, manifest, decoded)
    sources.sort(key=lambda s: s.times[0])
    renewed = [s for s in sources if s.previous is not None]
    appended = [s for s in sources if s.previous is None]
    in_place = _steps_of_earlier_versions(lake, manifest, renewed)
    times = _check_time_axis(appended, manifest) if appended else np.array([])
    report.warnings.extend(_gaps(times, appended))

    version = (manifest.version if manifest else 0) + 1
    if manifest is None:
        manifest = Manifest(id=report.collection, domain=report.domain, kind="grid")
        manifest.stores = _plan_stores(sources[0], times, chunking)
        compressors = _store_source_chunks(manifest.stores.get("map") if copy_chunks else None,
                                           sources, decoded)
        manifest.variables = {
            name: variable.model_copy(update={"packing": DECODED, "dtype": DECODED["dtype"]})
            if name in decoded
            else variable for name, variable in sources[0].variables.items()}
    else:
        compressors = {}
    start = next(iter(manifest.stores.values())).time_length

    with Transaction(lake) as transaction:
        stores = {name: _zarr_store(lake, f"{collection_path}/{s.path}")
                  for name, s in manifest.stores.items()}
        if start == 0:
            # Undoing a new collection is deleting its folder: no need to log (and GET) each key.
            transaction.created_dir(collection_path)
        else:
            stores = {name: transaction.zarr_store(store) for name, store in stores.items()}
        if appended:
            _write(appended, times, start, manifest, stores, decoded, progress,
                   compressors, report.chunks)
        for source, first_step in zip(renewed, in_place, strict=True):
            _write([source], source.times, first_step, manifest, stores, decoded, progress,
                   compressors, report.chunks)
        _update_manifest(manifest, sources, times, version)
        for name, store in stores.items():
            _finish_store(store, manifest, manifest.stores[name])
        write_manifest(lake, collection_path, manifest)
    report.version = version
    report.added = [s.name for s in sources]
    report.replaced = [s.name for s in renewed]


def _decoded_variables(sources: list[SourceGrid], manifest: Manifest | None,
                       values: StoredValues, collection: str) -> set[str]:
    """The variables the collection stores decoded: fixed at its creation by ``values``."""
    if manifest is not None:
        decoded = {name for name, v in manifest.variables.items() if v.packing == DECODED}
        if values != "auto" and (values == "decoded") != bool(decoded):
            raise IngestError(f"collection {collection!r}", f"stores its values "
                              f"{'decoded' if decoded else 'packed'}, not {values}",
                              "this is chosen when a collection is created; ingest into a new "
                              "collection to choose otherwise")
        return decoded
    names = sources[0].variables
    if values == "packed":
        return set()
    if values == "decoded":
        return set(names)
    return {name for name in names
            if len({str(s.variables[name].packing) for s in sources if name in s.variables}) > 1}


def _steps_of_earlier_versions(lake: Lake, manifest: Manifest | None,
                               renewed: list[SourceGrid]) -> list[int]:
    """The first time step each new version overwrites: where its earlier version's are.

    Raises
    ------
    IngestError
        If a new version does not hold exactly the time steps of the earlier one (a Zarr time
        axis cannot lose or gain steps in its middle).
    """
    if not renewed:
        return []
    stored = [_iso(t) for t in open_grid(lake, manifest.id)[renewed[0].time_name].values]
    first_steps = []
    for source in renewed:
        earlier = [i for i, t in enumerate(stored)
                   if source.previous.time_start <= t <= source.previous.time_end]
        new = [_iso(t) for t in source.times]
        if [stored[i] for i in earlier] != new:
            raise IngestError(source.url, f"is a new version of {source.name} but holds other "
                              f"times ({new[0]}..{new[-1]}, {len(new)} steps) than the earlier "
                              f"one ({source.previous.time_start}..{source.previous.time_end}, "
                              f"{len(earlier)} steps)", "a new version must keep the time steps "
                              "of the file it replaces; other periods need files of new names")
        first_steps.append(earlier[0])
    return first_steps


def open_grid(
    lake: str | Lake,
    collection: str,
    *,
    chunking: Literal["auto", "map", "timeseries"] = "auto",
    bbox: tuple[float, float, float, float] | None = None,
    time: tuple[object, object] | None = None,
    variables: Sequence[str] | None = None,
    chunks: int | str | dict | None = None,
) -> xr.Dataset:
    """Open a gridded collection as a lazy :class:`xarray.Dataset`.

    Parameters
    ----------
    lake, collection
        Where to read.
    chunking
        Which store to read when the collection has both. ``"auto"`` reads each request
        (what ``.sel``/``.isel`` and ``bbox``/``time`` select, once loaded) from the store it
        touches fewer chunks of: a point or small-box series from the time-series store, a map
        from the map store (see :mod:`~eosc_pangeo.lake.grid_backend`). The values are the
        same, bit for bit, whichever store is read.
    bbox
        ``(west, south, east, north)`` in degrees: only this region is returned; ``west > east``
        crosses the antimeridian.
    time
        ``(start, end)``: only this period is returned (either end may be None).
    variables
        Data variables to keep (default: all).
    chunks
        As for :func:`xarray.open_dataset`: None (the default) gives lazily indexed arrays,
        read when their values are needed; ``{}`` gives dask arrays chunked as the map store
        (the store read, if ``chunking`` names one), for computations over whole arrays.

    Raises
    ------
    SelectionError
        For a bad ``bbox``, a store the collection does not have, or (:class:`UnknownVariable`)
        a variable it does not hold.
    """
    if bbox is not None:
        bbox = check_bbox(bbox, SelectionError)
    lake = Lake.from_url(lake)
    collection_path = lake.find_collection(collection)
    manifest = read_manifest(lake, collection_path)
    if manifest.kind != "grid":
        raise LakeError(f"collection {collection!r} holds in-situ observations, not a grid: "
                        f"read it with eosc_pangeo.lake.read_insitu(lake, {collection!r}, ...)")
    if chunking != "auto" and chunking not in manifest.stores:
        raise SelectionError(f"collection {manifest.id!r} has no {chunking!r} store "
                         f"(it has {', '.join(manifest.stores)})")
    names = list(manifest.stores) if chunking == "auto" else [chunking]
    stores = {name: _zarr_store(lake, f"{collection_path}/{manifest.stores[name].path}")
              for name in names}
    with source_codecs_accepted():
        if len(stores) == 1:
            ds = xr.open_zarr(next(iter(stores.values())), consolidated=True, chunks=chunks)
        else:
            ds = xr.open_dataset(stores, engine=GridBackend, chunks=chunks)
    return select(ds, bbox, time, variables)


@contextmanager
def source_codecs_accepted() -> Iterator[None]:
    """Silence zarr's note that numcodecs' codecs are not in the Zarr 3 specification: map
    stores use its zlib and shuffle on purpose, to hold the sources' chunks unchanged
    (zarr-python reads them; other Zarr 3 readers may not)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Numcodecs codecs are not in the Zarr",
                                zarr.errors.ZarrUserWarning)
        yield


def check_grid(lake: Lake, collection_path: str, manifest: Manifest) -> list[Finding]:
    """Check every store of a gridded collection: consolidated metadata, CF attributes,
    monotonic coordinates, unique times, chunk sizes, and agreement with the manifest."""
    findings = []
    for info in manifest.stores.values():
        try:
            with source_codecs_accepted():
                checks = list(_store_checks(lake, collection_path, info))
            for check, ok, message, target in checks:
                findings.append(Finding(manifest.id, check, ok, message, target))
        except Exception as error:  # noqa: BLE001  (a store too broken to check is the finding)
            findings.append(Finding(manifest.id, "readable", False,
                                    f"{type(error).__name__}: {error}", info.path))
    return findings


def _store_checks(lake: Lake, collection_path: str, info: ZarrStore):
    """Yield (check, ok, message, target) for one Zarr store."""
    store = _zarr_store(lake, f"{collection_path}/{info.path}")
    try:
        group = zarr.open_group(store, mode="r", use_consolidated=True)
    except ValueError as error:
        yield "consolidated-metadata", False, f"no consolidated metadata ({error})", info.path
        return
    yield "consolidated-metadata", True, "opens from consolidated metadata", info.path
    ds = xr.open_zarr(store, consolidated=True, chunks=None)
    time_name = ds.cf["T"].name
    yield ("manifest", ds.sizes[time_name] == info.time_length,
           f"time length {ds.sizes[time_name]}, manifest says {info.time_length}", info.path)
    bounds = {ds[c].attrs.get("bounds") for c in ds.coords}
    for name in sorted(set(ds.data_vars) - bounds):
        missing = [a for a in ("units", "standard_name") if a not in ds[name].attrs]
        yield ("cf-attributes", not missing, f"missing {', '.join(missing)}" if missing
               else "units and standard_name set", f"{info.path}:{name}")
    for axis in ("T", "Y", "X"):
        values = ds.cf[axis].values
        steps = np.diff(values) if values.dtype.kind in "fiu" else _seconds(values)
        monotonic = bool(np.all(steps > 0) or np.all(steps < 0))
        yield ("monotonic", monotonic, f"{axis} axis {'is' if monotonic else 'is not'} strictly "
               "monotonic", f"{info.path}:{ds.cf[axis].name}")
    duplicates = int(ds.indexes[time_name].duplicated().sum())
    yield "unique-times", duplicates == 0, f"{duplicates} duplicated times", info.path
    low, high = CHUNK_BYTES_BOUNDS
    for name, array in group.arrays():
        if array.ndim >= 3:
            nbytes = math.prod(array.chunks) * array.dtype.itemsize
            yield ("chunk-size", low <= nbytes <= high, f"chunks of {nbytes / 1024:.0f} KiB "
                   f"(bounds {low // 1024} KiB..{high // 1024**2} MiB)", f"{info.path}:{name}")


# --- sources -------------------------------------------------------------------------------


def _open_source(fs, path: str, **kwargs) -> xr.Dataset:
    if isinstance(fs, LocalFileSystem):
        return xr.open_dataset(path, engine="netcdf4", **kwargs)
    # netCDF4 reads only local files; h5netcdf reads any file-like object fsspec opens.
    return xr.open_dataset(fs.open(path, "rb"), engine="h5netcdf", **kwargs)


def _read_source(file: SourceFile) -> SourceGrid:
    """Open a source (values as stored, times decoded) and read what the checks need.

    The file stays open for the write: the caller closes ``source.dataset``.
    """
    url = file.url
    try:
        ds = _open_source(file.fs, file.path, mask_and_scale=False, chunks=None,
                          decode_times=xr.coders.CFDatetimeCoder(use_cftime=None))
    except Exception as error:  # noqa: BLE001  (netCDF4/HDF5 raise many kinds)
        raise IngestError(url, f"cannot be read as NetCDF ({type(error).__name__}: {error})",
                          "the file is truncated or corrupt; fetch it again") from None
    try:
        return _describe_source(file, ds)
    except BaseException:
        ds.close()
        raise


def _describe_source(file: SourceFile, ds: xr.Dataset) -> SourceGrid:
    url = file.url
    axes = {}
    # cf_xarray knows an axis by its ``axis`` attribute, a coordinate by its standard name or
    # units: CF files may carry either. (Each of these looks at every variable: ask once.)
    by_axis, by_name = ds.cf.axes, ds.cf.coordinates
    for axis, what in (("T", "time"), ("Y", "latitude"), ("X", "longitude")):
        candidates = by_axis.get(axis, []) + by_name.get(what, [])
        found = [name for name in candidates if name in ds.dims]
        if not found:
            raise IngestError(url, f"has no {what} coordinate (no variable with axis={axis} "
                              f"or standard_name {what})",
                              "add the coordinate or its CF attributes")
        axes[axis] = found[0]
    t, y, x = axes["T"], axes["Y"], axes["X"]
    data_vars = [v for v in ds.data_vars if {t, y, x} <= set(ds[v].dims)]
    if not data_vars:
        raise IngestError(url, f"has no variable on ({t}, {y}, {x})", "is it a gridded file?")
    variables = {}
    for v in data_vars:
        attrs = ds[v].attrs
        if not attrs.get("units"):
            raise IngestError(f"{url}:{v}", "has no units attribute",
                              "add CF units (e.g. 'K') to the source")
        if ds[v].dims[0] != t:
            raise IngestError(f"{url}:{v}", f"has dimensions {ds[v].dims}, time not first",
                              "transpose the variable so that time comes first")
        variables[v] = Variable(standard_name=attrs.get("standard_name"),
                                long_name=attrs.get("long_name"), units=attrs["units"],
                                dims=list(ds[v].dims), dtype=str(ds[v].dtype),
                                packing=_packing(ds[v]))
    times = ds[t].values
    if len(np.unique(times)) != len(times):
        raise IngestError(f"{url}:{t}", "holds duplicated times", "remove the repeated time steps")
    bounds = [ds[c].attrs["bounds"] for c in ds.coords if ds[c].attrs.get("bounds") in ds]
    return SourceGrid(url=url, name=source_name(url), size=file.size, sha256=file.sha256,
                      path=file.path, local=isinstance(file.fs, LocalFileSystem),
                      time_name=t, y_name=y, x_name=x, times=times,
                      calendar=ds[t].encoding.get("calendar", "standard"), y=ds[y].values,
                      x=ds[x].values, variables=variables, attrs=dict(ds.attrs),
                      dataset=ds, template_names=data_vars + bounds, previous=file.previous)


def _check_consistent(sources: list[SourceGrid], manifest: Manifest | None,
                      decoded: set[str]) -> None:
    """Every source must have the grid, variables, units and calendar of the reference, and
    the packing of the variables kept packed."""
    reference = sources[0]
    if manifest is not None:
        reference_vars = manifest.variables
        reference_calendar = manifest.extent.calendar
    else:
        reference_vars, reference_calendar = reference.variables, reference.calendar
    for source in sources:
        if source.calendar != reference_calendar:
            raise IngestError(f"{source.url}:{source.time_name}",
                              f"uses the {source.calendar!r} calendar, the collection "
                              f"{reference_calendar!r}", "convert it or use another collection")
        missing = set(reference_vars) - set(source.variables)
        extra = set(source.variables) - set(reference_vars)
        if missing or extra:
            raise IngestError(source.url, "has other variables than the collection ("
                              + ", ".join([f"missing {sorted(missing)}"] * bool(missing)
                                          + [f"unexpected {sorted(extra)}"] * bool(extra)) + ")",
                              "ingest it into its own collection")
        for name, variable in source.variables.items():
            expected = reference_vars[name]
            if variable.units != expected.units:
                raise IngestError(f"{source.url}:{name}", f"has units {variable.units!r}, the "
                                  f"collection {expected.units!r}",
                                  f"convert the file to {expected.units!r}")
            if name not in decoded and variable.packing != expected.packing:
                raise IngestError(f"{source.url}:{name}", f"is stored as {variable.packing}, the "
                                  f"collection as {expected.packing}",
                                  "the collection keeps its sources' packed values; sources "
                                  "packed each their own way need a collection created with "
                                  "values='decoded' (--values decoded)")
        for axis, values, ref in ((source.y_name, source.y, reference.y),
                                  (source.x_name, source.x, reference.x)):
            if values.shape != ref.shape or not np.allclose(values, ref, atol=1e-6):
                raise IngestError(f"{source.url}:{axis}", f"is on another grid ({len(values)} "
                                  f"points from {values[0]:g} to {values[-1]:g}, the collection "
                                  f"has {len(ref)} from {ref[0]:g} to {ref[-1]:g})",
                                  "regrid it first or ingest it into its own collection")
    if manifest is not None:
        _check_grid_matches_store(sources[0], manifest)


def _check_grid_matches_store(source: SourceGrid, manifest: Manifest) -> None:
    bbox = manifest.extent.bbox
    west, south, east, north = _bbox_of(source)
    if bbox and not np.allclose((west, south, east, north), bbox, atol=1e-6):
        raise IngestError(f"{source.url}:{source.y_name}", f"covers {west:g},{south:g},"
                          f"{east:g},{north:g}; the collection {','.join(f'{b:g}' for b in bbox)}",
                          "regrid it first or ingest it into its own collection")


def _check_time_axis(sources: list[SourceGrid], manifest: Manifest | None) -> np.ndarray:
    """Concatenate the sources' times; refuse overlaps and steps back in time."""
    for before, after in zip(sources[:-1], sources[1:], strict=True):
        if after.times[0] <= before.times[-1]:
            raise IngestError(after.url, f"overlaps {before.name} in time (starts "
                              f"{_iso(after.times[0])}, {before.name} ends "
                              f"{_iso(before.times[-1])})", "remove one of the two files")
    times = np.concatenate([s.times for s in sources])
    if manifest is not None and manifest.extent.time is not None:
        last = manifest.extent.time[1]
        if _iso(times[0]) <= last:
            raise IngestError(sources[0].url, f"starts at {_iso(times[0])}, not after the end of "
                              f"the collection ({last})", "only later times can be appended; a "
                              "reprocessed file replaces its earlier version if it keeps its name")
    return times


def _gaps(times: np.ndarray, sources: list[SourceGrid]) -> list[str]:
    if len(times) < 3:
        return []
    steps = _seconds(times)
    typical = np.median(steps)
    big = np.flatnonzero(steps > 1.5 * typical)
    return [f"gap in time between {_iso(times[i])} and {_iso(times[i + 1])} "
            f"(typical step {typical / 86400:g} days)" for i in big]


# --- planning ------------------------------------------------------------------------------


def _plan_stores(source: SourceGrid, times: np.ndarray, chunking: Chunking
                 ) -> dict[str, ZarrStore]:
    ny, nx = len(source.y), len(source.x)
    itemsize = max(np.dtype(np.float32).itemsize,
                   max(np.dtype(v.dtype).itemsize for v in source.variables.values()))
    # Other dimensions (pressure levels, depths) are kept whole in every chunk.
    axes = (source.time_name, source.y_name, source.x_name)
    levels = max(math.prod(source.dataset.sizes[d] for d in v.dims if d not in axes)
                 for v in source.variables.values())
    cell_bytes = levels * itemsize
    field_bytes = ny * nx * cell_bytes
    steps_per_year = _steps_per_year(times)
    plans = {}
    if chunking in ("map", "both"):
        tiles = max(1, math.ceil(field_bytes / (4 * TARGET_CHUNK_BYTES)))
        split = math.ceil(math.sqrt(tiles))
        plans["map"] = {source.time_name: max(1, TARGET_CHUNK_BYTES // field_bytes),
                        source.y_name: math.ceil(ny / split), source.x_name: math.ceil(nx / split)}
    if chunking in ("timeseries", "both"):
        # A year per chunk (ten for monthly and coarser data): a multi-year point series reads
        # one chunk per year, and appending a day rewrites only the current year's chunks.
        time_chunk = max(steps_per_year, 120)
        tile = max(1, int(math.sqrt(TARGET_CHUNK_BYTES / (time_chunk * cell_bytes))))
        ty, tx = min(ny, tile), min(nx, tile)
        # A grid too small to fill the smallest chunk gets more years per chunk instead.
        time_chunk = max(time_chunk, math.ceil(CHUNK_BYTES_BOUNDS[0] / (ty * tx * cell_bytes)))
        plans["timeseries"] = {source.time_name: time_chunk, source.y_name: ty,
                               source.x_name: tx}
    return {name: ZarrStore(path=f"{name}.zarr", chunking=name, chunks=chunks, time_length=0)
            for name, chunks in plans.items()}


def _steps_per_year(times: np.ndarray) -> int:
    if len(times) > 1:
        step = float(np.median(_seconds(times)))
    else:
        step = 86400.0  # a single time step: daily files are by far the most common
    return max(1, round(365.25 * 86400 / step))


# --- writing -------------------------------------------------------------------------------


def _zarr_store(lake: Lake, path: str):
    if lake.is_local:
        return LocalStore(path)
    return FsspecStore.from_url(lake.fs.unstrip_protocol(path),
                                storage_options=lake.storage_options)


def _write(sources, times, start, manifest, stores, decoded: set[str], progress,
           compressors: dict[str, list], paths: dict[str, str]) -> None:
    """Write the time steps ``start: start + len(times)`` into every store (the variables in
    ``decoded`` decoded to float32, the others as the sources store them, their compressed
    chunks copied unchanged where the store allows it). A new map store compresses the
    variables of ``compressors`` with these codecs. ``paths`` is told how each store's
    variables were written."""
    reference = sources[0]
    end = start + len(times)
    template = _template(reference, times, decoded)
    encodings = {name: _encoding(template, manifest.stores[name],
                                 compressors if name == "map" else {}) for name in stores}
    for name, store in stores.items():
        if start == 0:
            template.to_zarr(store, mode="w", compute=False, consolidated=False,
                             encoding=encodings[name], zarr_format=3, safe_chunks=False)
        else:
            _extend_time(store, reference.time_name, end)

    groups = [zarr.open_group(store, mode="r+", use_consolidated=False, zarr_format=3)
              for store in stores.values()]
    first_steps = dict(zip(sources, start + np.cumsum([0] + [len(s.times) for s in sources]),
                           strict=False))
    copies = _chunk_copies(sources, first_steps, dict(zip(stores, groups, strict=True)),
                           manifest.stores, decoded, paths)
    time_chunk = max(s.chunks[reference.time_name] for s in manifest.stores.values())
    step_bytes = sum(np.dtype(v.dtype).itemsize * math.prod(template[name].shape[1:])
                     for name, v in reference.variables.items())
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
    located = [(source, i) for source in sources for i in range(len(source.times))]
    boundaries = list(range(start, end, block))
    writing = None
    with ThreadPoolExecutor(1, thread_name_prefix="grid-write") as writer:
        for done, block_start in enumerate(boundaries, start=1):
            block_end = min(block_start + block, end)
            if writing is not None and not overlap:
                writing.result()  # one block in memory at a time
            loaded = _load(located[block_start - start:block_end - start], reference,
                           decoded, copies, first_steps)
            if writing is not None:
                writing.result()
                progress("write", done - 1, len(boundaries))
            writing = writer.submit(_write_block, groups, stores, loaded, copies,
                                    reference.time_name, slice(block_start, block_end))
        writing.result()
        progress("write", len(boundaries), len(boundaries))


def _store_source_chunks(store: ZarrStore | None, sources: list[SourceGrid],
                         decoded: set[str]) -> dict[str, list]:
    """Give a new map ``store`` the sources' own chunks when they can be copied into it
    unchanged; return the codecs (equal to the sources' HDF5 filters) of its variables then.

    They can when every source stores each variable kept packed in the same chunks of
    deflate(+shuffle), whole time chunks per file, of a size within ``CHUNK_BYTES_BOUNDS``:
    the layout of daily files of one field each, as most data centres publish them.
    """
    packed = [name for name in sources[0].variables if name not in decoded]
    if store is None or not packed:
        return {}
    layouts = [source.layouts[name] for source in sources for name in packed]
    if None in layouts or len({layout.chunks for layout in layouts}) > 1:
        return {}
    chunks = layouts[0].chunks
    nbytes = math.prod(chunks) * max(layout.dtype.itemsize for layout in layouts)
    low, high = CHUNK_BYTES_BOUNDS
    if not low <= nbytes <= high or any(len(s.times) % chunks[0] for s in sources):
        return {}
    store.chunks = dict(zip(sources[0].variables[packed[0]].dims, chunks, strict=True))
    return {name: _codecs_of(sources[0].layouts[name]) for name in packed}


def _codecs_of(layout: DeflateLayout) -> list:
    """The Zarr codecs that decode chunks stored with ``layout``'s HDF5 filters."""
    shuffle = [numcodecs.Shuffle(elementsize=layout.dtype.itemsize)] if layout.shuffle else []
    return [*shuffle, numcodecs.Zlib(level=layout.level)]


def _chunk_copies(sources: list[SourceGrid], first_steps: dict[SourceGrid, int],
                  groups: dict[str, zarr.Group], stores: dict[str, ZarrStore],
                  decoded: set[str], paths: dict[str, str]) -> dict[str, dict[str, zarr.Array]]:
    """The arrays of each store that every source's compressed chunks are copied into,
    unchanged; the others are encoded from the decoded values. ``paths`` is told which
    (``"<store>/<variable>"``: ``"copied"`` or ``"encoded: <why>"``)."""
    copies = {}
    for store_name, group in groups.items():
        copies[store_name] = {}
        for name in sources[0].variables:
            array = group[name]
            why = "stored decoded" if name in decoded else next(
                (f"{source.name}: {problem}" for source in sources
                 if (problem := _copy_problem(source, name, array, first_steps[source]))),
                None)
            path = f"{stores[store_name].path}/{name}"
            if why is None:
                copies[store_name][name] = array
                paths.setdefault(path, "copied")
            else:
                paths[path] = f"encoded: {why}"
    return copies


def _copy_problem(source: SourceGrid, name: str, array: zarr.Array, first_step: int
                  ) -> str | None:
    """Why the stored chunks of variable ``name`` of ``source``, to be written from step
    ``first_step`` on, cannot be copied into ``array`` unchanged; None if they can."""
    layout = source.layouts[name]
    if layout is None:
        return "not a local HDF5 file with written chunks of deflate(+shuffle)"
    if layout.chunks != array.chunks:
        return f"chunks {layout.chunks}, the store's {array.chunks}"
    if layout.dtype != array.dtype or layout.dtype.byteorder == ">":
        return f"stored as {layout.dtype.str}, the store as {array.dtype}"
    expected = [(type(c), c.codec_config.get("elementsize")) for c in _codecs_of(layout)]
    codecs = [(type(c), getattr(c, "codec_config", {}).get("elementsize"))
              for c in array.compressors]
    if array.filters or codecs != expected:
        return "compressed otherwise than the store"
    if first_step % layout.chunks[0] or len(source.times) % layout.chunks[0]:
        return "its time steps do not fill whole chunks of the store"
    return None


def _write_block(groups, stores, loaded, copies: dict[str, dict[str, zarr.Array]],
                 time_name: str,
                 steps: slice) -> None:
    """Write one block's values, copied chunks and time variables into every store."""
    stored, time_variables, copied = loaded
    for group, (store_name, store) in zip(groups, stores.items(), strict=True):
        for name, values in stored.items():
            if name not in copies[store_name]:
                group[name][steps] = values
        if copied[store_name]:
            sync(_set_all(store, copied[store_name]))
        time_variables.to_zarr(store, region={time_name: steps}, consolidated=False,
                               zarr_format=3)


async def _set_all(store, chunks: list[tuple[str, bytes]]) -> None:
    """Write chunks as they are, under their keys, concurrently."""
    prototype = default_buffer_prototype()
    await asyncio.gather(*(store.set(key, prototype.buffer.from_bytes(data))
                           for key, data in chunks))


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
                    "dtype": "float32", "_FillValue": np.float32(np.nan)}
            variables[name] = xr.Variable(var.dims, data, var.attrs, encoding)
        elif name != t:
            variables[name] = xr.Variable(var.dims, var.values, var.attrs,
                                          _zarr_encoding(var.encoding))
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
            chunks = tuple(store.chunks[d] if d == time_name else min(store.chunks.get(d, n), n)
                           for d, n in zip(var.dims, var.shape, strict=True))
            encoding[name] = {**var.encoding, "chunks": chunks,
                              "compressors": compressors.get(name, [COMPRESSOR])}
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


def _load(located: list[tuple[SourceGrid, int]], reference: SourceGrid, decoded: set[str],
          copies: dict[str, dict[str, zarr.Array]], first_steps: dict[SourceGrid, int]
          ) -> tuple[dict[str, np.ndarray], xr.Dataset, dict[str, list[tuple[str, bytes]]]]:
    """Read the time steps of one block: the data variables as stored (packed, fill values and
    all: the sources share the collection's packing, so nothing needs decoding) or, those in
    ``decoded``, decoded to float32; the compressed chunks of the variables that ``copies``
    copies into a store (``{store name: [(key, bytes)]}``); and the small time variables (time,
    its bounds) decoded, for xarray to encode like the store's. ``first_steps`` tells where
    each source's first step is in the stores.

    HDF5 chunks compressed with deflate (and shuffle) are read raw and inflated in a thread pool
    (zlib releases the GIL); other layouts are read through netCDF4.
    """
    t = reference.time_name
    # Filled in place, file by file: a block can be most of the memory limit, no second copy.
    # A variable copied into every store is not decoded at all (its chunks are still inflated
    # once, to check them).
    stored = {name: np.empty((len(located),) + reference.template[name].shape[1:],
                             dtype=DECODED["dtype"] if name in decoded
                             else variable.packing["dtype"])
              for name, variable in reference.variables.items()
              if not all(name in names for names in copies.values())}
    copied = {store: [] for store in copies}
    time_variables = []
    filled = 0
    with ChunkDecoder() as decoder:
        for source in dict.fromkeys(s for s, _ in located):
            indices = [i for s, i in located if s is source]
            steps = {t: slice(indices[0], indices[-1] + 1)}
            ds = source.dataset
            try:
                with raw_chunks(source.path, source.local) as h5:
                    for name in reference.variables:
                        out = (stored[name][filled:filled + len(indices)] if name in stored
                               else None)
                        targets = [store for store, names in copies.items() if name in names]
                        if targets:
                            sink = _chunk_sink(first_steps[source], source.layouts[name],
                                               [(copies[store][name], copied[store])
                                                for store in targets])
                            decoder.submit(source.url, h5, name, source.layouts[name],
                                           indices[0], len(indices), out, sink)
                        elif name in decoded:
                            # Each source by its own scale_factor, add_offset and _FillValue.
                            raw = ds[[name]].isel(steps)
                            out[...] = xr.decode_cf(raw, decode_times=False)[name].values
                        elif not decoder.submit(source.url, h5, name, source.layouts[name],
                                                indices[0], len(indices), out):
                            out[...] = ds[name].isel(steps).values
                names = [v for v in reference.template.variables
                         if t in ds[v].dims and v not in reference.variables]
                time_variables.append(ds[names].isel(steps).load())
                filled += len(indices)
            except (OSError, RuntimeError, ValueError, zlib.error) as error:
                raise IngestError(source.url, f"cannot be read ({error})",
                                  "the file is corrupt; fetch it again") from None
    times = xr.concat(time_variables, dim=t, data_vars="all", coords="minimal",
                      compat="override", join="override")
    drop = [v for v in times.variables if t not in times[v].dims]
    # Region writes skip indexed coordinates, and the new time values must be written too.
    return stored, times.drop_vars(drop).drop_indexes(t), copied


def _chunk_sink(first_step: int, layout: DeflateLayout,
                targets: list[tuple[zarr.Array, list[tuple[str, bytes]]]]):
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


def _packing(variable: xr.DataArray) -> dict[str, str]:
    """How a variable's values are stored, as comparable strings (numpy prints a float32 0.01
    as "0.01", where a JSON round trip would give 0.009999999776482582)."""
    packing = {"dtype": str(variable.dtype)}
    for key in ("scale_factor", "add_offset", "_FillValue", "missing_value"):
        if key in variable.attrs:
            packing[key] = str(np.asarray(variable.attrs[key]).reshape(-1)[0])
    return packing


def _update_manifest(manifest: Manifest, sources, appended_times, version: int) -> None:
    reference = sources[0]
    first = manifest.extent.time[0] if manifest.extent.time else _iso(appended_times[0])
    last = _iso(appended_times[-1]) if len(appended_times) else manifest.extent.time[1]
    manifest.version = version
    manifest.updated = utcnow()
    manifest.software = Manifest.model_fields["software"].default_factory()
    manifest.variables = manifest.variables or reference.variables
    manifest.extent = Extent(bbox=_bbox_of(reference), time=(first, last),
                             calendar=reference.calendar)
    if not manifest.attributes:
        manifest.attributes = _collection_attrs(reference.attrs)
    renewed = {source.name for source in sources}
    manifest.sources = [s for s in manifest.sources if s.name not in renewed]
    for source in sources:
        manifest.sources.append(Source(name=source.name, url=source.url, size=source.size,
                                       sha256=source.sha256, time_start=_iso(source.times[0]),
                                       time_end=_iso(source.times[-1]), version=version))
    for store in manifest.stores.values():
        store.time_length += len(appended_times)


def _finish_store(store, manifest: Manifest, info: ZarrStore) -> None:
    """Set the collection-wide ACDD attributes, then consolidate: readers see the new data now."""
    group = zarr.open_group(store, mode="r+", use_consolidated=False, zarr_format=3)
    west, south, east, north = manifest.extent.bbox
    history = group.attrs.get("history", "")
    added = [s.name for s in manifest.sources if s.version == manifest.version]
    line = (f"{manifest.updated} eosc-pangeo {manifest.software.get('eosc-pangeo')} ingest-grid: "
            f"{len(added)} file(s) {added[0]}..{added[-1]} -> {info.path} (version "
            f"{manifest.version})")
    group.attrs.update({
        **manifest.attributes,
        "Conventions": "CF-1.10, ACDD-1.3",
        "id": manifest.id,
        "time_coverage_start": manifest.extent.time[0],
        "time_coverage_end": manifest.extent.time[1],
        "geospatial_lat_min": south, "geospatial_lat_max": north,
        "geospatial_lon_min": west, "geospatial_lon_max": east,
        "geospatial_lat_units": "degrees_north", "geospatial_lon_units": "degrees_east",
        "date_created": manifest.created, "date_modified": manifest.updated,
        "product_version": str(manifest.version),
        "history": f"{history}\n{line}".strip(),
    })
    with warnings.catch_warnings():
        # Consolidated metadata is not in the Zarr 3 spec yet, but zarr-python and xarray read
        # it, and it is what makes the new version visible at once.
        warnings.simplefilter("ignore", category=zarr.errors.ZarrUserWarning)
        zarr.consolidate_metadata(store, zarr_format=3)


def _collection_attrs(attrs: dict) -> dict:
    kept = {k: v for k, v in attrs.items() if k not in _PER_FILE_ATTRS}
    kept.setdefault("title", kept.get("id", "untitled"))
    kept.setdefault("summary", kept["title"])
    return {k: (v.item() if isinstance(v, np.generic) else
                v.tolist() if isinstance(v, np.ndarray) else v) for k, v in kept.items()}


# --- reading -------------------------------------------------------------------------------


def select(ds: xr.Dataset, bbox, time, variables) -> xr.Dataset:
    """The part of a gridded Dataset in ``bbox`` and the ``time`` period, with ``variables``
    only (each may be None for all), as :func:`open_grid` selects it."""
    if variables is not None:
        unknown = set(variables) - set(ds.data_vars)
        if unknown:
            raise UnknownVariable(f"no variable {', '.join(sorted(unknown))} (variables: "
                                  f"{', '.join(sorted(ds.data_vars))})")
        ds = ds[list(variables)]
    if time is not None:
        ds = ds.cf.sel(T=slice(*time))
    if bbox is not None:
        west, south, east, north = bbox
        lat = ds.cf["Y"]
        ds = ds.cf.sel(Y=slice(north, south) if lat[0] > lat[-1] else slice(south, north))
        ds = _select_longitudes(ds, west, east)
    return ds


def _select_longitudes(ds: xr.Dataset, west: float, east: float) -> xr.Dataset:
    """The longitudes from ``west`` to ``east`` (west > east crosses the antimeridian), on a grid
    in either convention (-180..180 or 0..360), labelled in the box's own convention and
    contiguous: ``(-10, 10)`` on a 0..360 grid gives -10..10, ``(170, -170)`` gives 170..190."""
    x = ds.cf["X"].name
    parts = []
    for start, stop, shift in _longitude_ranges(ds[x].values, west, east):
        part = ds.sel({x: slice(start, stop)})
        parts.append(part.assign_coords({x: part[x] + shift}) if shift else part)
    if len(parts) == 1:
        return parts[0]
    return xr.concat(parts, dim=x, data_vars="minimal", coords="minimal", compat="override",
                     join="override")


def _longitude_ranges(lon: np.ndarray, west: float, east: float
                      ) -> list[tuple[float, float, float]]:
    """The ``(start, stop, shift)`` ranges of a grid's ascending longitudes ``lon`` that cover
    ``west``..``east``; ``lon + shift`` labels them in the box's convention."""
    if east - west >= 360:
        return [(lon[0], lon[-1], 0.0)]
    base = 0.0 if lon[-1] > 180 else -180.0  # the grid's convention
    start = base + (west - base) % 360
    stop = start + (east - west) % 360
    shift = west - start  # a multiple of 360
    if stop <= base + 360:
        return [(start, stop, shift)]
    return [(start, base + 360, shift), (base, stop - 360, shift + 360)]


# --- helpers -------------------------------------------------------------------------------


def _bbox_of(source: SourceGrid) -> tuple[float, float, float, float]:
    """(west, south, east, north) of the grid's cells, longitudes in -180..180 as STAC wants."""
    dx = abs(float(source.x[1] - source.x[0])) / 2 if len(source.x) > 1 else 0.0
    dy = abs(float(source.y[1] - source.y[0])) / 2 if len(source.y) > 1 else 0.0
    south = max(-90.0, float(source.y.min()) - dy)
    north = min(90.0, float(source.y.max()) + dy)
    west, east = float(source.x.min()) - dx, float(source.x.max()) + dx
    if east - west >= 360.0 - 1e-6:
        return (-180.0, south, 180.0, north)
    # Grids on 0..360 longitudes; a west > east box crosses the antimeridian (allowed by STAC).
    west, east = ((west + 180.0) % 360.0) - 180.0, ((east + 180.0) % 360.0) - 180.0
    return (west, south, east if east != -180.0 else 180.0, north)


def _iso(value) -> str:
    if isinstance(value, np.datetime64):
        return np.datetime_as_string(value, unit="s") + "Z"
    return value.isoformat()


def _seconds(times: np.ndarray) -> np.ndarray:
    if times.dtype.kind == "M":
        return np.diff(times).astype("timedelta64[s]").astype(float)
    return np.array([(b - a).total_seconds() for a, b in zip(times[:-1], times[1:], strict=True)])
