"""Gridded sources: what an ingest reads of each NetCDF file, and the checks they must pass.

Every new file's metadata is read (grid, variables, units, packing, calendar, times) and the
files are checked against each other and against what the collection holds before anything is
written (:mod:`~eosc_pangeo.lake.grid_write`).
"""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field

import cf_xarray  # noqa: F401  (registers the .cf accessor used to find axes)
import numpy as np
import xarray as xr
from fsspec.implementations.local import LocalFileSystem

from ..geometry import wrap_longitude
from .errors import IngestError
from .hdf5_chunks import DeflateLayout, deflate_layout, raw_chunks
from .manifest import Manifest, Progress, Source, SourceCheck, SourceFile, Variable
from .sibling_sources import Sibling, described_like, read_like
from .storage import source_fs, source_name

#: How many files ahead of the hashing the kernel is asked to read. A SHA-256 loop over the
#: benchmark's 92 daily files (98 MB) on a cold disk took 0.27 to 0.61 s reading one file at a
#: time, 0.13 to 0.15 s asking 8 ahead (2026-12-06, ``benchmarks/README.md``).
_READ_AHEAD = 8
#: Files up to this size are handed to netCDF4 in memory (at most ``_READ_AHEAD`` at once).
_IN_MEMORY = 16 * 1024**2


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
    #: The decoded values of the coordinates and bounds along time (the times included), as
    #: :attr:`dataset` holds them.
    time_values: dict[str, np.ndarray] = field(repr=False)
    #: Makes :attr:`dataset` when it is first used.
    open_dataset: Callable[[], xr.Dataset] = field(repr=False)
    #: Reads :attr:`attrs` when they are first used.
    read_attrs: Callable[[], dict] = field(repr=False)
    #: The data variables and their bounds, as the collection's template is made of them.
    template_names: list[str] = field(repr=False)
    #: The collection's record of the earlier version this file replaces, if it is a new one.
    previous: Source | None = None

    @functools.cached_property
    def dataset(self) -> xr.Dataset:
        """The file as a lazy Dataset (values as stored, times decoded), as
        ``xr.open_dataset`` gives it. A later file laid out like the first is described
        without one (:mod:`~eosc_pangeo.lake.sibling_sources`): it is made only for an ingest
        that reads its data, and without the file's global attributes (:attr:`attrs`)."""
        return self.open_dataset()

    @functools.cached_property
    def attrs(self) -> dict:
        """The file's global attributes. The collection takes them from its earliest file
        only: a later file laid out like the first reads them only if it is that one."""
        return self.read_attrs()

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


def hash_and_read(
    check: SourceCheck, urls: list[str], progress: Progress, open_sources: ExitStack
) -> list[SourceGrid]:
    """Hash the files (skipping those the collection holds) and open the new ones, in order.

    A thread hashes the files one after another, up to ``_READ_AHEAD`` ahead of the opening:
    hashing reads the whole file (and leaves it in the page cache for the opening) while the
    opening parses metadata. The kernel is asked to read the local files a few ahead of the
    hashing, so that their reads from disk overlap. The thread also hands over the bytes of
    small local files, which netCDF4 then opens from memory (:func:`_contents`). Files laid
    out like the first are described from their netCDF4 metadata
    (:mod:`~eosc_pangeo.lake.sibling_sources`).
    """
    urls = check.expand(urls)
    sources: list[SourceGrid | Sibling] = []
    for url in urls[:_READ_AHEAD]:
        _read_ahead(check, url)

    def hash_file(index: int) -> tuple[SourceFile | None, bytes | None]:
        if index + _READ_AHEAD < len(urls):
            _read_ahead(check, urls[index + _READ_AHEAD])
        contents = _contents(check, urls[index])
        new_file = check.new_file(urls[index], contents)
        return new_file, new_file and contents

    with ThreadPoolExecutor(1, thread_name_prefix="grid-hash") as hasher:
        ahead = range(min(_READ_AHEAD, len(urls)))
        hashed = deque(hasher.submit(hash_file, index) for index in ahead)
        try:
            for done in range(1, len(urls) + 1):
                new_file, contents = hashed.popleft().result()
                if done + _READ_AHEAD <= len(urls):
                    hashed.append(hasher.submit(hash_file, done + _READ_AHEAD - 1))
                progress("hash", done, len(urls))
                if new_file is not None:
                    sources.append(
                        sources
                        and read_like(new_file, sources[0], contents)
                        or _read_source(new_file, open_sources)
                    )
        finally:
            for future in hashed:
                future.cancel()
    return described_like(sources, lambda file: _read_source(file, open_sources))


def _contents(check: SourceCheck, url: str) -> bytes | None:
    """The bytes of the local file at ``url`` if it has at most ``_IN_MEMORY``, None for the
    others.

    Read once for both the hashing and the opening: netCDF4 opens a file from memory in
    0.7 ms where it takes 1.0 ms from disk (the 1 MB benchmark files, 2026-12-06: about 40
    reads of the file saved), and the read costs the hashing thread, not the opening.
    """
    fs, path = source_fs(check.lake, url)
    if not isinstance(fs, LocalFileSystem):
        return None
    try:
        if os.path.getsize(path) > _IN_MEMORY:
            return None
        with open(path, "rb") as reader:
            return reader.read()
    except OSError:
        return None  # the hashing says what is wrong with the file


def _read_ahead(check: SourceCheck, url: str) -> None:
    """Ask the kernel to start reading the local file at ``url`` into the page cache, without
    waiting for it; nothing for files elsewhere."""
    fs, path = source_fs(check.lake, url)
    if not isinstance(fs, LocalFileSystem) or not hasattr(os, "posix_fadvise"):
        return
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return  # the hashing says what is wrong with the file
    try:
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_WILLNEED)
    finally:
        os.close(descriptor)


def _open_source(fs, path: str, **kwargs) -> xr.Dataset:
    if isinstance(fs, LocalFileSystem):
        return xr.open_dataset(path, engine="netcdf4", **kwargs)
    # netCDF4 reads only local files; h5netcdf reads any file-like object fsspec opens.
    return xr.open_dataset(fs.open(path, "rb"), engine="h5netcdf", **kwargs)


def _read_source(file: SourceFile, open_sources: ExitStack) -> SourceGrid:
    """Open a source (values as stored, times decoded) and read what the checks need.

    The file stays open for the write, until ``open_sources`` closes.
    """
    url = file.url
    try:
        ds = _open_source(
            file.fs,
            file.path,
            mask_and_scale=False,
            chunks=None,
            decode_times=xr.coders.CFDatetimeCoder(use_cftime=None),
        )
    except Exception as error:  # noqa: BLE001  (netCDF4/HDF5 raise many kinds)
        raise IngestError(
            url,
            f"cannot be read as NetCDF ({type(error).__name__}: {error})",
            "the file is truncated or corrupt; fetch it again",
        ) from None
    open_sources.callback(ds.close)
    return _describe_source(file, ds)


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
            raise IngestError(
                url,
                f"has no {what} coordinate (no variable with axis={axis} or standard_name {what})",
                "add the coordinate or its CF attributes",
            )
        axes[axis] = found[0]
    t, y, x = axes["T"], axes["Y"], axes["X"]
    data_vars = [v for v in ds.data_vars if {t, y, x} <= set(ds[v].dims)]
    if not data_vars:
        raise IngestError(url, f"has no variable on ({t}, {y}, {x})", "is it a gridded file?")
    variables = {}
    for v in data_vars:
        attrs = ds[v].attrs
        if not attrs.get("units"):
            raise IngestError(
                f"{url}:{v}", "has no units attribute", "add CF units (e.g. 'K') to the source"
            )
        if ds[v].dims[0] != t:
            raise IngestError(
                f"{url}:{v}",
                f"has dimensions {ds[v].dims}, time not first",
                "transpose the variable so that time comes first",
            )
        variables[v] = Variable(
            standard_name=attrs.get("standard_name"),
            long_name=attrs.get("long_name"),
            units=attrs["units"],
            dims=list(ds[v].dims),
            dtype=str(ds[v].dtype),
            packing=_packing(ds[v]),
        )
    times = ds[t].values
    if len(np.unique(times)) != len(times):
        raise IngestError(f"{url}:{t}", "holds duplicated times", "remove the repeated time steps")
    bounds = [ds[c].attrs["bounds"] for c in ds.coords if ds[c].attrs.get("bounds") in ds]
    return SourceGrid(
        url=url,
        name=source_name(url),
        size=file.size,
        sha256=file.sha256,
        path=file.path,
        local=isinstance(file.fs, LocalFileSystem),
        time_name=t,
        y_name=y,
        x_name=x,
        times=times,
        calendar=ds[t].encoding.get("calendar", "standard"),
        y=ds[y].values,
        x=ds[x].values,
        variables=variables,
        time_values={name: ds[name].values for name in [*ds.coords, *bounds] if t in ds[name].dims},
        open_dataset=lambda: ds,
        read_attrs=lambda: dict(ds.attrs),
        template_names=data_vars + bounds,
        previous=file.previous,
    )


def check_consistent(
    sources: list[SourceGrid], manifest: Manifest | None, decoded: set[str]
) -> None:
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
            raise IngestError(
                f"{source.url}:{source.time_name}",
                f"uses the {source.calendar!r} calendar, the collection {reference_calendar!r}",
                "convert it or use another collection",
            )
        missing = set(reference_vars) - set(source.variables)
        extra = set(source.variables) - set(reference_vars)
        if missing or extra:
            raise IngestError(
                source.url,
                "has other variables than the collection ("
                + ", ".join(
                    [f"missing {sorted(missing)}"] * bool(missing)
                    + [f"unexpected {sorted(extra)}"] * bool(extra)
                )
                + ")",
                "ingest it into its own collection",
            )
        for name, variable in source.variables.items():
            expected = reference_vars[name]
            if variable.units != expected.units:
                raise IngestError(
                    f"{source.url}:{name}",
                    f"has units {variable.units!r}, the collection {expected.units!r}",
                    f"convert the file to {expected.units!r}",
                )
            if name not in decoded and variable.packing != expected.packing:
                raise IngestError(
                    f"{source.url}:{name}",
                    f"is stored as {variable.packing}, the collection as {expected.packing}",
                    "the collection keeps its sources' packed values; sources "
                    "packed each their own way need a collection created with "
                    "values='decoded' (--values decoded)",
                )
        for axis, values, ref in (
            (source.y_name, source.y, reference.y),
            (source.x_name, source.x, reference.x),
        ):
            if values.shape != ref.shape or not (
                # Equal in most products: 2 us to tell for 1,440 longitudes, 58 with allclose.
                np.array_equal(values, ref) or np.allclose(values, ref, atol=1e-6)
            ):
                raise IngestError(
                    f"{source.url}:{axis}",
                    f"is on another grid ({len(values)} "
                    f"points from {values[0]:g} to {values[-1]:g}, the collection "
                    f"has {len(ref)} from {ref[0]:g} to {ref[-1]:g})",
                    "regrid it first or ingest it into its own collection",
                )
    if manifest is not None:
        _check_grid_matches_store(sources[0], manifest)


def _check_grid_matches_store(source: SourceGrid, manifest: Manifest) -> None:
    bbox = manifest.extent.bbox
    west, south, east, north = bbox_of(source)
    if bbox and not np.allclose((west, south, east, north), bbox, atol=1e-6):
        raise IngestError(
            f"{source.url}:{source.y_name}",
            f"covers {west:g},{south:g},"
            f"{east:g},{north:g}; the collection {','.join(f'{b:g}' for b in bbox)}",
            "regrid it first or ingest it into its own collection",
        )


def check_time_axis(sources: list[SourceGrid], manifest: Manifest | None) -> np.ndarray:
    """Concatenate the sources' times; refuse overlaps and steps back in time."""
    for before, after in zip(sources[:-1], sources[1:], strict=True):
        if after.times[0] <= before.times[-1]:
            raise IngestError(
                after.url,
                f"overlaps {before.name} in time (starts "
                f"{iso(after.times[0])}, {before.name} ends "
                f"{iso(before.times[-1])})",
                "remove one of the two files",
            )
    times = np.concatenate([s.times for s in sources])
    if manifest is not None and manifest.extent.time is not None:
        last = manifest.extent.time[1]
        if iso(times[0]) <= last:
            raise IngestError(
                sources[0].url,
                f"starts at {iso(times[0])}, not after the end of the collection ({last})",
                "only later times can be appended; a "
                "reprocessed file replaces its earlier version if it keeps its name",
            )
    return times


def gaps(times: np.ndarray, sources: list[SourceGrid]) -> list[str]:
    if len(times) < 3:
        return []
    steps = seconds(times)
    typical = np.median(steps)
    big = np.flatnonzero(steps > 1.5 * typical)
    return [
        f"gap in time between {iso(times[i])} and {iso(times[i + 1])} "
        f"(typical step {typical / 86400:g} days)"
        for i in big
    ]


def _packing(variable: xr.DataArray) -> dict[str, str]:
    """How a variable's values are stored, as comparable strings (numpy prints a float32 0.01
    as "0.01", where a JSON round trip would give 0.009999999776482582)."""
    packing = {"dtype": str(variable.dtype)}
    for key in ("scale_factor", "add_offset", "_FillValue", "missing_value"):
        if key in variable.attrs:
            packing[key] = str(np.asarray(variable.attrs[key]).reshape(-1)[0])
    return packing


def bbox_of(source: SourceGrid) -> tuple[float, float, float, float]:
    """(west, south, east, north) of the grid's cells, longitudes in -180..180 as STAC wants."""
    dx = abs(float(source.x[1] - source.x[0])) / 2 if len(source.x) > 1 else 0.0
    dy = abs(float(source.y[1] - source.y[0])) / 2 if len(source.y) > 1 else 0.0
    south = max(-90.0, float(source.y.min()) - dy)
    north = min(90.0, float(source.y.max()) + dy)
    west, east = float(source.x.min()) - dx, float(source.x.max()) + dx
    if east - west >= 360.0 - 1e-6:
        return (-180.0, south, 180.0, north)
    # Grids on 0..360 longitudes; a west > east box crosses the antimeridian (allowed by STAC).
    west, east = wrap_longitude(west), wrap_longitude(east)
    return (west, south, east if east != -180.0 else 180.0, north)


def iso(value) -> str:
    if isinstance(value, np.datetime64):
        return np.datetime_as_string(value, unit="s") + "Z"
    return value.isoformat()


def seconds(times: np.ndarray) -> np.ndarray:
    if times.dtype.kind == "M":
        return np.diff(times).astype("timedelta64[s]").astype(float)
    return np.array([(b - a).total_seconds() for a, b in zip(times[:-1], times[1:], strict=True)])
