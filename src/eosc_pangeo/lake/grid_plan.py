"""How a new gridded collection is chunked: one plan per store, within the bounds the validator
checks.

Chunks aim at about 1 MiB of decoded data, as the Copernicus Marine ARCO products do. A new map
store takes the sources' own chunks instead when they can be copied into it unchanged.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import numpy as np
import zarr
from zarr.codecs import numcodecs

from .grid_sources import SourceGrid, seconds
from .hdf5_chunks import DeflateLayout
from .manifest import ZarrStore

Chunking = Literal["map", "timeseries", "both"]

TARGET_CHUNK_BYTES = 1024**2
#: The time coordinate is read whole at every open: one chunk holds it for decades.
TIME_INDEX_CHUNK = 65536
# The chunk sizes `lake validate` accepts; plan_stores keeps within them for every grid size.
CHUNK_BYTES_BOUNDS = (16 * 1024, 64 * 1024**2)


def plan_stores(source: SourceGrid, times: np.ndarray, chunking: Chunking) -> dict[str, ZarrStore]:
    """The stores of a new collection and their chunks, from its first source."""
    ny, nx = len(source.y), len(source.x)
    itemsize = max(
        np.dtype(np.float32).itemsize,
        max(np.dtype(v.dtype).itemsize for v in source.variables.values()),
    )
    # Other dimensions (pressure levels, depths) are kept whole in every chunk.
    axes = (source.time_name, source.y_name, source.x_name)
    levels = max(
        math.prod(source.dataset.sizes[d] for d in v.dims if d not in axes)
        for v in source.variables.values()
    )
    cell_bytes = levels * itemsize
    field_bytes = ny * nx * cell_bytes
    steps_per_year = _steps_per_year(times)
    plans = {}
    if chunking in ("map", "both"):
        tiles = max(1, math.ceil(field_bytes / (4 * TARGET_CHUNK_BYTES)))
        split = math.ceil(math.sqrt(tiles))
        plans["map"] = {
            source.time_name: max(1, TARGET_CHUNK_BYTES // field_bytes),
            source.y_name: math.ceil(ny / split),
            source.x_name: math.ceil(nx / split),
        }
    if chunking in ("timeseries", "both"):
        # A year per chunk (ten for monthly and coarser data): a multi-year point series reads
        # one chunk per year, and appending a day rewrites only the current year's chunks.
        time_chunk = max(steps_per_year, 120)
        tile = max(1, int(math.sqrt(TARGET_CHUNK_BYTES / (time_chunk * cell_bytes))))
        ty, tx = min(ny, tile), min(nx, tile)
        # A grid too small to fill the smallest chunk gets more years per chunk instead.
        time_chunk = max(time_chunk, math.ceil(CHUNK_BYTES_BOUNDS[0] / (ty * tx * cell_bytes)))
        plans["timeseries"] = {source.time_name: time_chunk, source.y_name: ty, source.x_name: tx}
    return {
        name: ZarrStore(path=f"{name}.zarr", chunking=name, chunks=chunks, time_length=0)
        for name, chunks in plans.items()
    }


def _steps_per_year(times: np.ndarray) -> int:
    if len(times) > 1:
        step = float(np.median(seconds(times)))
    else:
        step = 86400.0  # a single time step: daily files are by far the most common
    return max(1, round(365.25 * 86400 / step))


def store_source_chunks(
    store: ZarrStore | None, sources: list[SourceGrid], decoded: set[str]
) -> dict[str, list]:
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
    return {name: codecs_of(sources[0].layouts[name]) for name in packed}


def codecs_of(layout: DeflateLayout) -> list:
    """The Zarr codecs that decode chunks stored with ``layout``'s HDF5 filters."""
    shuffle = [numcodecs.Shuffle(elementsize=layout.dtype.itemsize)] if layout.shuffle else []
    return [*shuffle, numcodecs.Zlib(level=layout.level)]


@contextmanager
def source_codecs_accepted() -> Iterator[None]:
    """Silence zarr's note that numcodecs' codecs are not in the Zarr 3 specification: map
    stores use its zlib and shuffle on purpose, to hold the sources' chunks unchanged
    (zarr-python reads them; other Zarr 3 readers may not)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "Numcodecs codecs are not in the Zarr", zarr.errors.ZarrUserWarning
        )
        yield
