"""Sources laid out like the first one, described from their NetCDF metadata alone.

A grid ingest takes files of one product: daily files that differ only in their time step and
their values. Opening each with ``xr.open_dataset`` (netCDF4, CF decoding, indexes) and finding
its axes with cf_xarray costs about 8 ms of CPU a file and many more on a busy machine, most of
a copied-chunk ingest's time. Once the first file has been opened and checked that way, a
later one whose variables are the same (names, dimensions, dtypes, shapes but along time,
storage, every attribute) needs none of it: its description is the first one's with its own
time steps and coordinates, read with netCDF4 directly (:func:`read_like`, about 1.3 ms of CPU
a file), the times of all such files then decoded in one call (:func:`described_like`). Any
difference, however small, sends the file through the full reading, which then reports what is
wrong with it. Its xarray Dataset is made from what was read only when an ingest reads its data
(an ingest by reference needs none), and its global attributes are read only if the collection
takes them from it (it is the earliest file).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import netCDF4
import numpy as np
import xarray as xr
from fsspec.implementations.local import LocalFileSystem
from xarray.backends import BackendArray
from xarray.coding.times import decode_cf_datetime
from xarray.core import indexing

from .errors import IngestError
from .storage import source_name

if TYPE_CHECKING:
    from .grid import SourceGrid
    from .manifest import SourceFile

# Variables larger than this are read when indexed, not when the file is described.
_EAGER_VALUES = 65536


class Sibling(NamedTuple):
    """A later file found laid out like the reference, its small variables read as stored:
    :func:`described_like` decodes them with every other such file's."""

    file: SourceFile
    #: The values of its small variables (times, bounds, axes), as stored.
    stored: dict[str, np.ndarray]


def read_like(
    file: SourceFile, reference: SourceGrid, contents: bytes | None = None
) -> Sibling | None:
    """``file``, if it holds the same variables as ``reference`` (opened and checked in
    full): its small variables (times, bounds, axes) as stored, for :func:`described_like`
    to describe it as ``reference`` describes its own file. None if the files differ or
    ``file`` is not a local file, for the caller to open it in full. ``contents``, the file's
    bytes if the caller has them, are opened in memory.
    """
    if not (reference.local and isinstance(file.fs, LocalFileSystem)):
        return None
    expected = _expectations(reference)
    if expected is None:
        return None
    try:
        nc = netCDF4.Dataset(file.path, memory=contents)
    except OSError:
        return None
    with nc:
        nc.set_auto_maskandscale(False)
        if _structure(nc, reference.time_name) != expected.structure:
            return None
        return Sibling(file, {name: np.asarray(nc.variables[name][...]) for name in expected.eager})


def described_like(
    sources: list[SourceGrid | Sibling], read_in_full: Callable[[SourceFile], SourceGrid]
) -> list[SourceGrid]:
    """``sources`` in order, each :class:`Sibling` described as the first source, a
    :class:`SourceGrid`, describes its own file (``read_in_full`` reads a sibling whose times
    this module cannot decode as the first's).

    The times of all siblings are decoded at once: xarray's decoding takes about 0.1 ms a
    call, whatever the number of values. A sibling's Dataset is made from what was read only
    if the ingest reads its data (:attr:`SourceGrid.dataset`), and its global attributes are
    read only if the collection takes them from it (:attr:`SourceGrid.attrs`).

    Raises
    ------
    IngestError
        If a sibling repeats a time step (as the full reading would).
    """
    siblings = [source for source in sources if isinstance(source, Sibling)]
    if not siblings:
        return sources
    reference = sources[0]
    expected = _expectations(reference)
    values = {
        name: _decoded_together([sibling.stored[name] for sibling in siblings], ref)
        for name, ref in expected.eager.items()
    }
    described = iter(
        _described(sibling.file, reference, {name: v[index] for name, v in values.items()})
        for index, sibling in enumerate(siblings)
    )
    return [
        (next(described) or read_in_full(source.file)) if isinstance(source, Sibling) else source
        for source in sources
    ]


def _described(
    file: SourceFile, reference: SourceGrid, values: dict[str, np.ndarray | None]
) -> SourceGrid | None:
    """``file`` described as ``reference`` with its own decoded ``values``; None if one
    could not be decoded as the reference's."""
    if any(value is None for value in values.values()):
        return None
    times = values[reference.time_name]
    if len(np.unique(times)) != len(times):
        raise IngestError(
            f"{file.url}:{reference.time_name}",
            "holds duplicated times",
            "remove the repeated time steps",
        )
    steps = len(times)
    lazy = {
        name: (tuple(steps if dim == reference.time_name else size for dim, size in shape), dtype)
        for name, (shape, dtype) in _expectations(reference).lazy.items()
    }
    return dataclasses.replace(
        reference,
        url=file.url,
        name=source_name(file.url),
        size=file.size,
        sha256=file.sha256,
        path=file.path,
        times=times,
        y=values[reference.y_name],
        x=values[reference.x_name],
        time_values={name: values[name] for name in reference.time_values},
        open_dataset=functools.partial(_dataset_like, file.path, values, lazy, reference),
        read_attrs=functools.partial(_global_attributes, file.path),
        previous=file.previous,
    )


class _Expectations(NamedTuple):
    """What a later file holds if it is laid out like the reference, and how to read it."""

    #: Its every dimension and variable (:func:`_structure`).
    structure: dict[str, Any]
    #: The variables read now, by the reference's variable they decode like.
    eager: dict[str, xr.Variable]
    #: The variables read when indexed: their dimensions with the reference's sizes, and
    #: their dtype as stored.
    lazy: dict[str, tuple[tuple[tuple[str, int], ...], np.dtype]]


#: The expectations of each reference, for as long as it is in use.
_EXPECTATIONS: weakref.WeakKeyDictionary[SourceGrid, _Expectations | None] = (
    weakref.WeakKeyDictionary()
)


def _expectations(reference: SourceGrid) -> _Expectations | None:
    """What every later file of an ingest is compared with, read once from ``reference``;
    None if it has groups."""
    if reference not in _EXPECTATIONS:
        _EXPECTATIONS[reference] = _read_expectations(reference)
    return _EXPECTATIONS[reference]


def _read_expectations(reference: SourceGrid) -> _Expectations | None:
    try:
        with netCDF4.Dataset(reference.path) as nc:
            structure = _structure(nc, reference.time_name)
            stored = {name: var.dtype for name, var in nc.variables.items()}
    except OSError:
        return None
    if structure is None:
        return None
    eager, lazy = {}, {}
    for name, ref in reference.dataset.variables.items():
        if name in reference.variables or (
            ref.size > _EAGER_VALUES and name not in reference.time_values
        ):
            lazy[name] = (tuple(ref.sizes.items()), stored[name])
        else:
            eager[name] = ref
    return _Expectations(structure, eager, lazy)


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


def _global_attributes(path: str) -> dict:
    with netCDF4.Dataset(path) as nc:
        return nc.__dict__


def _dataset_like(
    path: str,
    values: dict[str, np.ndarray],
    lazy: dict[str, tuple],
    reference: SourceGrid,
) -> xr.Dataset:
    """The file as the full reading opens it (values as stored, times decoded) but for its
    global attributes, its variables' attributes and encodings the reference's (equal, as
    checked): ``values`` already read, the ``lazy`` variables read when indexed."""
    variables = {}
    for name, ref in reference.dataset.variables.items():
        if name in lazy:
            data = indexing.LazilyIndexedArray(_NetcdfArray(path, name, *lazy[name]))
        else:
            data = values[name]
        variables[name] = xr.Variable(ref.dims, data, ref.attrs, ref.encoding)
    return xr.Dataset(variables).set_coords(list(reference.dataset.coords))


def _decoded_together(stored: list[np.ndarray], ref: xr.Variable) -> list[np.ndarray | None]:
    """The ``stored`` values of one variable in several files, each decoded as xarray decoded
    the reference's ``ref`` (None for values this module does not know how to decode): in
    one call when all decode to the reference's dtype, file by file otherwise."""
    if all(values.dtype == ref.dtype for values in stored):
        return stored
    with warnings.catch_warnings():
        # Said again, of the file it concerns, when the files are decoded one by one.
        warnings.simplefilter("ignore", xr.SerializationWarning)
        together = _decoded(np.concatenate([values.ravel() for values in stored]), ref)
    if together is None:
        return [_decoded(values, ref) for values in stored]
    ends = np.cumsum([values.size for values in stored])
    return [
        part.reshape(values.shape)
        for part, values in zip(np.split(together, ends[:-1]), stored, strict=True)
    ]


def _decoded(raw: np.ndarray, ref: xr.Variable) -> np.ndarray | None:
    """``raw`` values of a variable decoded as xarray decoded the reference's; None if this
    module does not know how."""
    if ref.dtype == raw.dtype:
        return raw
    if ref.dtype.kind not in "MO" or "units" not in ref.encoding:
        return None
    # What xr.coders.CFDatetimeCoder(use_cftime=None).decode does to the values, without its
    # lazy wrapping: that decodes the first and last values again to learn the dtype, 0.4 ms
    # a call where this takes 0.08.
    decoded = decode_cf_datetime(raw, ref.encoding["units"], ref.encoding.get("calendar"))
    return decoded if decoded.dtype == ref.dtype else None


class _NetcdfArray(BackendArray):
    """A variable read with netCDF4 when indexed, values as stored; the file is opened for
    each read, so that no handle stays open beside the ingest's own."""

    def __init__(self, path: str, name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path, self.name = path, name
        self.shape, self.dtype = shape, dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._read
        )

    def _read(self, key: tuple) -> np.ndarray:
        with netCDF4.Dataset(self.path) as nc:
            nc.set_auto_maskandscale(False)
            return np.asarray(nc.variables[self.name][key])
