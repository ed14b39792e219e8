"""Sources laid out like the first one, described from their NetCDF metadata alone.

A grid ingest takes files of one product: daily files that differ only in their time step and
their values. Opening each with ``xr.open_dataset`` (netCDF4, CF decoding, indexes) and finding
its axes with cf_xarray costs about 8 ms of CPU a file and many more on a busy machine, most of
a copied-chunk ingest's time. Once the first file has been opened and checked that way, a
later one whose variables are the same (names, dimensions, dtypes, shapes but along time,
storage, every attribute) needs none of it: its description is the first one's with its own
time steps, coordinates and file attributes, read with netCDF4 directly in about 2 ms. Any
difference, however small, sends the file through the full reading, which then reports what is
wrong with it.

The netCDF4 reading (:func:`read_metadata`) runs in a thread ahead of the description
(:func:`read_like`): netCDF-C releases the GIL while it parses a file's HDF5 metadata, so that
it overlaps the building of the previous file's Dataset. netCDF-C is not thread-safe, so every
netCDF4 call the ingest makes while that thread runs holds :data:`NETCDF_LOCK`.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from typing import TYPE_CHECKING, Any

import netCDF4
import numpy as np
import xarray as xr
from fsspec.implementations.local import LocalFileSystem
from xarray.backends import BackendArray
from xarray.core import indexing

from .errors import IngestError
from .storage import source_name

if TYPE_CHECKING:
    from .grid import SourceGrid
    from .manifest import SourceFile

# Variables larger than this are read when indexed, not when the file is described.
_EAGER_VALUES = 65536
# Nor are variables of this many dimensions or more, as data variables on (time, y, x) are:
# the ingest checks their values when it reads them.
_GRID_DIMENSIONS = 3


#: netCDF-C is not thread-safe: while files' metadata are read in a thread (see
#: :func:`~eosc_pangeo.lake.grid_sources.hash_and_read`), every netCDF4 call made meanwhile
#: holds this lock.
NETCDF_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class Metadata:
    """What netCDF4 reads of a local file without its data: its structure (see
    :func:`_structure`), the values of its small variables but data variables, as stored, the
    shape and dtype of every variable, and its global attributes."""

    path: str
    structure: dict[str, Any]
    values: dict[str, np.ndarray]
    shapes: dict[str, tuple[tuple[int, ...], Any]]
    attrs: dict[str, Any]


def read_metadata(fs, path: str) -> Metadata | None:
    """The metadata of the file at ``path`` on ``fs``; None if it is not a local NetCDF-4
    file, has groups or cannot be read (all left to the full reading).

    Holds :data:`NETCDF_LOCK`: it may run in a thread beside the ingest's own netCDF4 calls.
    """
    if not isinstance(fs, LocalFileSystem):
        return None
    with NETCDF_LOCK:
        try:
            with netCDF4.Dataset(path) as nc:
                nc.set_auto_maskandscale(False)
                structure = _structure(nc)
                if structure is None:
                    return None
                return Metadata(
                    path=path,
                    structure=structure,
                    values={
                        name: np.asarray(var[...])
                        for name, var in nc.variables.items()
                        if var.size <= _EAGER_VALUES and var.ndim < _GRID_DIMENSIONS
                    },
                    shapes={name: (var.shape, var.dtype) for name, var in nc.variables.items()},
                    attrs=nc.__dict__,
                )
        except (OSError, RuntimeError):
            # Not NetCDF-4, or damaged: the full reading says what is wrong with it.
            return None


def read_like(
    file: SourceFile, reference: SourceGrid, metadata: Metadata | None = None
) -> SourceGrid | None:
    """``file`` described as ``reference`` (opened and checked in full) describes its own
    file, if both files hold the same variables; None if they differ or ``file`` is not a
    local file, for the caller to open it in full.

    ``metadata`` is the file's (:func:`read_metadata`) if read already, else it is read now.

    Raises
    ------
    IngestError
        If the file repeats a time step (as the full reading would).
    """
    if not reference.local:
        return None
    metadata = metadata or read_metadata(file.fs, file.path)
    expected = _structure_of_file(reference.path, reference.sha256)
    if (
        metadata is None
        or expected is None
        or _along_time(metadata.structure, reference.time_name)
        != _along_time(expected, reference.time_name)
    ):
        return None
    dataset = _dataset_like(metadata, reference)
    if dataset is None:
        return None
    times = dataset[reference.time_name].values
    if len(np.unique(times)) != len(times):
        raise IngestError(
            f"{file.url}:{reference.time_name}",
            "holds duplicated times",
            "remove the repeated time steps",
        )
    return dataclasses.replace(
        reference,
        url=file.url,
        name=source_name(file.url),
        size=file.size,
        sha256=file.sha256,
        path=file.path,
        times=times,
        y=dataset[reference.y_name].values,
        x=dataset[reference.x_name].values,
        attrs=dict(dataset.attrs),
        dataset=dataset,
        previous=file.previous,
    )


@functools.lru_cache(maxsize=4)
def _structure_of_file(path: str, sha256: str) -> dict | None:
    """The structure of the file at ``path`` with this content, read once."""
    try:
        with NETCDF_LOCK, netCDF4.Dataset(path) as nc:
            return _structure(nc)
    except OSError:
        return None


def _structure(nc: netCDF4.Dataset) -> dict[str, Any] | None:
    """Every dimension and variable of the file: lengths, dtype, storage and attributes; None
    if it has groups (left to the full reading)."""
    if nc.groups:
        return None
    dims = {name: (len(dim), dim.isunlimited()) for name, dim in nc.dimensions.items()}
    variables = {}
    for name, var in nc.variables.items():
        variables[name] = (
            var.dtype.str if isinstance(var.dtype, np.dtype) else str(var.dtype),
            var.dimensions,
            var.chunking(),
            var.filters(),
            var.endian(),
            _comparable(var.__dict__),
        )
    return {"dimensions": dims, "variables": variables}


def _along_time(structure: dict[str, Any] | None, time_name: str) -> dict[str, Any] | None:
    """``structure`` without the length of the time dimension: what files of one product
    share."""
    if structure is None:
        return None
    dims = {
        name: (None if name == time_name else length, unlimited)
        for name, (length, unlimited) in structure["dimensions"].items()
    }
    return {**structure, "dimensions": dims}


def _comparable(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes that compare equal when their bytes do (NaN fill values included)."""
    return {
        key: (value.dtype.str, np.shape(value), np.asarray(value).tobytes())
        if isinstance(value, np.ndarray | np.generic)
        else value
        for key, value in attrs.items()
    }


def _dataset_like(metadata: Metadata, reference: SourceGrid) -> xr.Dataset | None:
    """The file as the full reading opens it (values as stored, times decoded), its
    variables' attributes and encodings the reference's (equal, as checked): the small
    variables' values as read, the data variables read when indexed."""
    variables = {}
    for name, ref in reference.dataset.variables.items():
        if name in reference.variables or name not in metadata.values:
            shape, dtype = metadata.shapes[name]
            data = indexing.LazilyIndexedArray(_NetcdfArray(metadata.path, name, shape, dtype))
        else:
            data = _decoded(metadata.values[name], ref)
            if data is None:
                return None
        variables[name] = xr.Variable(ref.dims, data, ref.attrs, ref.encoding)
    dataset = xr.Dataset(variables, attrs=metadata.attrs)
    return dataset.set_coords(list(reference.dataset.coords))


def _decoded(raw: np.ndarray, ref: xr.Variable) -> np.ndarray | None:
    """``raw`` values of a variable decoded as xarray decoded the reference's; None if this
    module does not know how."""
    if ref.dtype == raw.dtype:
        return raw
    if ref.dtype.kind not in "MO" or "units" not in ref.encoding:
        return None
    encoded = xr.Variable(
        ref.dims,
        raw,
        {key: ref.encoding[key] for key in ("units", "calendar") if key in ref.encoding},
    )
    decoded = xr.coders.CFDatetimeCoder(use_cftime=None).decode(encoded).values
    return decoded if decoded.dtype == ref.dtype else None


class _NetcdfArray(BackendArray):
    """A variable read with netCDF4 when indexed, values as stored; the file is opened for
    each read, so that no handle stays open beside the ingest's own."""

    def __init__(self, path: str, name: str, shape: tuple[int, ...], dtype) -> None:
        self.path, self.name = path, name
        self.shape, self.dtype = shape, dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._read
        )

    def _read(self, key: tuple) -> np.ndarray:
        with NETCDF_LOCK, netCDF4.Dataset(self.path) as nc:
            nc.set_auto_maskandscale(False)
            return np.asarray(nc.variables[self.name][key])
