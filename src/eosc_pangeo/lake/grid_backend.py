"""An xarray backend that reads each request from the store it touches fewer chunks of.

A gridded collection may hold its data twice (see :mod:`eosc_pangeo.lake.grid`): ``map.zarr``
(whole fields, a time step or a few per chunk) and ``timeseries.zarr`` (a year per chunk, small
tiles). Copernicus Marine's ARCO client picks one of its two copies per request; here the choice
is made later, per read, so that the natural call needs no hint::

    ds = eosc_pangeo.open_dataset(lake, "sst")
    ds.analysed_sst.sel(lat=43.3, lon=-8.4, method="nearest").load()   # timeseries.zarr
    ds.analysed_sst.sel(time="2020-03-01").load()                       # map.zarr

Every data variable held by both stores is a :class:`RoutedArray`: xarray's lazy indexing
composes the user's ``.sel``/``.isel`` into one key, and only when values are needed (``.load()``,
``.values``, plotting) does the array count, for that key, the chunks each store would read and
read the one that reads fewer (ties go to the map store, listed first). Both stores hold the same
stored values, so the result is the same, bit for bit, whichever is read. With ``chunks=``
(dask), each task reads one chunk of the store whose layout the dask chunks follow (the map
store's by default), which is what whole-array computations want.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

#: Store names in order of preference when two would read as many chunks.
STORE_ORDER = ("map", "timeseries")


def chunks_read(key: tuple, shape: tuple[int, ...], chunks: tuple[int, ...]) -> int:
    """How many chunks of an array of ``shape`` split in ``chunks`` an outer-indexing ``key``
    (ints, slices, integer arrays, one per axis) reads."""
    total = 1
    for k, size, chunk in zip(key, shape, chunks, strict=True):
        if isinstance(k, slice):
            positions = range(*k.indices(size))
            if not positions:
                return 0
            if abs(positions.step) >= chunk:
                touched = len(positions)  # every position in a chunk of its own
            else:
                first, last = sorted((positions[0], positions[-1]))
                touched = last // chunk - first // chunk + 1
        elif isinstance(k, (int, np.integer)):
            touched = 1
        else:
            positions = np.asarray(k)
            if positions.size == 0:
                return 0
            touched = np.unique(positions // chunk).size
        total *= touched
    return total


class RoutedArray(BackendArray):
    """One variable stored in several Zarr arrays of the same shape, dtype and stored values,
    each chunked its own way; each read goes to the array it touches fewer chunks of.

    Parameters
    ----------
    arrays
        ``{store name: zarr.Array}``, in order of preference for ties.
    """

    def __init__(self, arrays: Mapping[str, object]) -> None:
        self.arrays = dict(arrays)
        first = next(iter(self.arrays.values()))
        self.shape = first.shape
        self.dtype = first.dtype

    def store_for(self, key: tuple) -> str:
        """The store that reads ``key`` (an outer-indexing tuple) in the fewest chunks; of two
        that read as many, the one that decompresses fewer bytes."""

        def cost(name: str) -> tuple[int, int]:
            chunks = self.arrays[name].chunks
            touched = chunks_read(key, self.shape, chunks)
            return touched, touched * math.prod(chunks)

        return min(self.arrays, key=cost)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._read
        )

    def _read(self, key: tuple) -> np.ndarray:
        array = self.arrays[self.store_for(key)]
        if all(isinstance(k, (int, np.integer, slice)) for k in key):
            return np.asarray(array[key])
        return np.asarray(array.oindex[key])


class GridBackend(BackendEntrypoint):
    """Opens the Zarr stores of one gridded collection as one Dataset whose reads are routed.

    ``filename_or_obj`` is ``{store name: zarr store}`` (the collection's ``map`` and/or
    ``timeseries`` stores, as :func:`~eosc_pangeo.lake.grid.open_grid` finds them from the
    manifest). Coordinates, attributes and encodings come from the first store in
    :data:`STORE_ORDER`; its chunks are the ``preferred_chunks`` that ``chunks={}`` follows.
    """

    description = (
        "A gridded collection of an eosc-pangeo lake, read from its map or "
        "time-series store, whichever a read touches fewer chunks of"
    )
    open_dataset_parameters = (
        "filename_or_obj",
        "drop_variables",
        "mask_and_scale",
        "decode_times",
        "decode_timedelta",
        "use_cftime",
        "concat_characters",
        "decode_coords",
    )

    def open_dataset(
        self,
        filename_or_obj,
        *,
        drop_variables: str | Iterable[str] | None = None,
        mask_and_scale: bool = True,
        decode_times=True,
        decode_timedelta=None,
        use_cftime=None,
        concat_characters: bool = True,
        decode_coords=True,
    ) -> xr.Dataset:
        import zarr

        stores = dict(sorted(filename_or_obj.items(), key=lambda item: STORE_ORDER.index(item[0])))
        groups = {
            name: zarr.open_group(store, mode="r", use_consolidated=True)
            for name, store in stores.items()
        }
        first = next(iter(stores))
        # xarray makes the indexes of what this returns: none needed here.
        raw = xr.open_dataset(
            stores[first],
            engine="zarr",
            consolidated=True,
            chunks=None,
            decode_cf=False,
            drop_variables=drop_variables,
            create_default_indexes=False,
        )
        routed = {}
        for name, variable in raw.data_vars.items():
            arrays = {
                store: group[name]
                for store, group in groups.items()
                if name in group and _is_data_array(group[name], variable)
            }
            if len(arrays) > 1:
                data = indexing.LazilyIndexedArray(RoutedArray(arrays))
                routed[name] = xr.Variable(variable.dims, data, variable.attrs, variable.encoding)
        ds = raw.assign(routed) if routed else raw
        decoded = xr.decode_cf(
            ds,
            mask_and_scale=mask_and_scale,
            decode_times=decode_times,
            decode_timedelta=decode_timedelta,
            use_cftime=use_cftime,
            concat_characters=concat_characters,
            decode_coords=decode_coords,
        )
        decoded.set_close(raw.close)
        return decoded

    def guess_can_open(self, filename_or_obj) -> bool:
        return False  # only opened by name (engine=GridBackend), from a collection's manifest


def _is_data_array(array, variable: xr.Variable) -> bool:
    """Whether a Zarr array holds ``variable``'s values in the same stored form."""
    return array.shape == variable.shape and array.dtype == variable.dtype
