"""Sources laid out like the first one, described from their HDF5 metadata with h5py alone.

A grid ingest takes files of one product: daily files that differ only in their time step and
their values. Opening each with xarray (netCDF4, CF decoding, indexes) and finding its axes
with cf_xarray costs tens of milliseconds a file, most of a copied-chunk ingest's time. Once
the first file has been opened and checked that way, a later one whose HDF5 objects are the
same (names, dtypes, shapes but along time, every attribute but its own references) needs
none of it: its description is the first one's with its own time steps, coordinates and file
attributes, read with h5py in about a millisecond. Any difference, however small, sends the
file through the full reading, which then reports what is wrong with it.

h5py reads netCDF-4 files as the HDF5 files they are; what netCDF4 adds (dimension names,
hidden attributes) is compared, not interpreted: equal structures mean equal dimensions.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import xarray as xr
from fsspec.implementations.local import LocalFileSystem
from xarray.backends import BackendArray
from xarray.core import indexing

from .errors import IngestError
from .hdf5_chunks import deflate_layout
from .storage import source_name

if TYPE_CHECKING:
    from .grid import SourceGrid
    from .manifest import SourceFile

# Attributes HDF5 dimension scales hold as object references: they differ in every file.
_REFERENCES = ("DIMENSION_LIST", "REFERENCE_LIST")
# File attributes netCDF4 keeps to itself (xarray never sees them).
_HIDDEN = ("_NCProperties", "_Netcdf4Coordinates", "_Netcdf4Dimid", "_nc3_strict",
           "_IsNetcdf4")


def read_like(file: SourceFile, reference: SourceGrid) -> SourceGrid | None:
    """``file`` described as ``reference`` (opened and checked in full) describes its own
    file, if both files hold the same HDF5 objects; None if they differ or ``file`` is not a
    local HDF5 file, for the caller to open it in full.

    Raises
    ------
    IngestError
        If the file repeats a time step (as the full reading would).
    """
    if not (reference.local and isinstance(file.fs, LocalFileSystem)):
        return None
    expected = _structure_of_file(reference.path, reference.sha256)
    if expected is None:
        return None
    try:
        h5 = h5py.File(file.path, "r", locking=False)
    except OSError:
        return None
    with h5:
        if _structure(h5) != expected:
            return None
        dataset = _dataset_like(h5, file.path, reference)
        if dataset is None:
            return None
        layouts = {name: deflate_layout(h5, name) for name in reference.variables}
    times = dataset[reference.time_name].values
    if len(np.unique(times)) != len(times):
        raise IngestError(f"{file.url}:{reference.time_name}", "holds duplicated times",
                          "remove the repeated time steps")
    source = dataclasses.replace(
        reference, url=file.url, name=source_name(file.url), size=file.size, sha256=file.sha256,
        path=file.path, times=times, y=dataset[reference.y_name].values,
        x=dataset[reference.x_name].values, attrs=dict(dataset.attrs), dataset=dataset,
        previous=file.previous)
    source.layouts = layouts  # read already: spares the ingest opening the file for them
    return source


@functools.lru_cache(maxsize=4)
def _structure_of_file(path: str, sha256: str) -> dict | None:
    """The HDF5 structure of the file at ``path`` with this content, read once."""
    try:
        with h5py.File(path, "r", locking=False) as h5:
            return _structure(h5)
    except OSError:
        return None


def _structure(h5: h5py.File) -> dict[str, Any] | None:
    """Every object of the file: its kind, dtype, shape but its first axis (time, in the
    files compared), storage and attributes; None if it holds groups (left to netCDF4)."""
    structure = {}
    for name, item in h5.items():
        if not isinstance(item, h5py.Dataset):
            return None
        plist = item.id.get_create_plist()
        filters = tuple(plist.get_filter(i)[:3] for i in range(plist.get_nfilters()))
        structure[name] = (item.dtype.str, item.shape[1:], item.ndim, item.chunks is None,
                           filters, _comparable(_attributes(item, skip=_REFERENCES)))
    return structure


def _attributes(obj, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The attributes of an HDF5 object as netCDF4 gives them to xarray: text as ``str``,
    a single number as a NumPy scalar."""
    attrs = {}
    for key in obj.attrs:
        if key in skip or key in _HIDDEN:
            continue
        value = obj.attrs[key]
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf":
            value = value.reshape(-1)[0]
        elif isinstance(value, np.ndarray) and value.dtype.kind in "SO":
            value = [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
        attrs[key] = value
    return attrs


def _comparable(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes that compare equal when their bytes do (NaN fill values included)."""
    return {key: (value.dtype.str, np.shape(value), np.asarray(value).tobytes())
            if isinstance(value, np.ndarray | np.generic) else value
            for key, value in attrs.items()}


def _dataset_like(h5: h5py.File, path: str, reference: SourceGrid) -> xr.Dataset | None:
    """The file as ``xr.open_dataset`` opens it for the ingest (values as stored, times
    decoded), its variables' attributes and encodings the reference's (equal, as checked):
    the time-dependent coordinates and the axes read now, the data variables lazily."""
    variables = {}
    for name, ref in reference.dataset.variables.items():
        dset = h5[name]
        if name in reference.variables or dset.ndim and dset.size > 65536:
            data = indexing.LazilyIndexedArray(_Hdf5Array(path, name, dset))
        else:
            data = _decoded(dset[()], ref)
            if data is None:
                return None
        variables[name] = xr.Variable(ref.dims, data, ref.attrs, ref.encoding)
    coords = [name for name in reference.dataset.coords]
    dataset = xr.Dataset(variables, attrs=_attributes(h5))
    return dataset.set_coords(coords)


def _decoded(raw: np.ndarray, ref: xr.Variable) -> np.ndarray | None:
    """``raw`` values of a variable decoded as xarray decoded the reference's; None if this
    module does not know how."""
    if ref.dtype == raw.dtype:
        return raw
    if ref.dtype.kind not in "MO" or "units" not in ref.encoding:
        return None
    encoded = xr.Variable(ref.dims, raw, {key: ref.encoding[key] for key in ("units", "calendar")
                                          if key in ref.encoding})
    decoded = xr.coders.CFDatetimeCoder(use_cftime=None).decode(encoded).values
    return decoded if decoded.dtype == ref.dtype else None


class _Hdf5Array(BackendArray):
    """A variable read with h5py when indexed: the file is opened for each read, so that no
    HDF5 handle stays open beside the ingest's own."""

    def __init__(self, path: str, name: str, dset: h5py.Dataset) -> None:
        self.path, self.name = path, name
        self.shape, self.dtype = dset.shape, dset.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape,
                                                  indexing.IndexingSupport.BASIC, self._read)

    def _read(self, key: tuple) -> np.ndarray:
        with h5py.File(self.path, "r", locking=False) as h5:
            return np.asarray(h5[self.name][key])
