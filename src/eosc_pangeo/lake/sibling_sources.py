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
"""

from __future__ import annotations

import dataclasses
import functools
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


def read_like(file: SourceFile, reference: SourceGrid) -> SourceGrid | None:
    """``file`` described as ``reference`` (opened and checked in full) describes its own
    file, if both files hold the same variables; None if they differ or ``file`` is not a
    local file, for the caller to open it in full.

    Raises
    ------
    IngestError
        If the file repeats a time step (as the full reading would).
    """
    if not (reference.local and isinstance(file.fs, LocalFileSystem)):
        return None
    expected = _structure_of_file(reference.path, reference.sha256, reference.time_name)
    if expected is None:
        return None
    try:
        nc = netCDF4.Dataset(file.path)
    except OSError:
        return None
    with nc:
        nc.set_auto_maskandscale(False)
        if _structure(nc, reference.time_name) != expected:
            return None
        dataset = _dataset_like(nc, file.path, reference)
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
def _structure_of_file(path: str, sha256: str, time_name: str) -> dict | None:
    """The structure of the file at ``path`` with this content, read once."""
    try:
        with netCDF4.Dataset(path) as nc:
            return _structure(nc, time_name)
    except OSError:
        return None


def _structure(nc: netCDF4.Dataset, time_name: str) -> dict[str, Any] | None:
    """Every dimension and variable of the file: lengths (but along time), dtype, storage
    and attributes; None if it has groups (left to the full reading)."""
    if nc.groups:
        return None
    dims = {
        name: (None if name == time_name else len(dim), dim.isunlimited())
        for name, dim in nc.dimensions.items()
    }
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


def _comparable(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes that compare equal when their bytes do (NaN fill values included)."""
    return {
        key: (value.dtype.str, np.shape(value), np.asarray(value).tobytes())
        if isinstance(value, np.ndarray | np.generic)
        else value
        for key, value in attrs.items()
    }


def _dataset_like(nc: netCDF4.Dataset, path: str, reference: SourceGrid) -> xr.Dataset | None:
    """The file as the full reading opens it (values as stored, times decoded), its
    variables' attributes and encodings the reference's (equal, as checked): the small
    variables read now, the data variables when indexed."""
    variables = {}
    for name, ref in reference.dataset.variables.items():
        var = nc.variables[name]
        if name in reference.variables or var.size > _EAGER_VALUES:
            data = indexing.LazilyIndexedArray(_NetcdfArray(path, name, var))
        else:
            data = _decoded(np.asarray(var[...]), ref)
            if data is None:
                return None
        variables[name] = xr.Variable(ref.dims, data, ref.attrs, ref.encoding)
    dataset = xr.Dataset(variables, attrs=nc.__dict__)
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

    def __init__(self, path: str, name: str, var: netCDF4.Variable) -> None:
        self.path, self.name = path, name
        self.shape, self.dtype = var.shape, var.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._read
        )

    def _read(self, key: tuple) -> np.ndarray:
        with netCDF4.Dataset(self.path) as nc:
            nc.set_auto_maskandscale(False)
            return np.asarray(nc.variables[self.name][key])
