"""Raw HDF5 chunks, copied as they are or inflated in threads: the fast paths of reading
NetCDF-4 sources.

netCDF4 decodes a variable's chunks one after the other, holding the GIL. Deflate-compressed
chunks (with or without shuffle), the layout of most NetCDF-4 files data centres publish, can be
read as stored with h5py and inflated in a thread pool instead, as zlib-ng and numcodecs' shuffle
release the GIL: a grid ingest reads its sources about twice as fast. When a Zarr array has the
source's chunks and the same filters as codecs (shuffle, zlib), the stored bytes are even copied
unchanged: they are only inflated to check them. Any other layout (other filters, unwritten
chunks, another dtype, files that are not local) is left to netCDF4.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import h5py
import numpy as np
from numcodecs import Shuffle
from zlib_ng import zlib_ng

from .errors import IngestError


@contextmanager
def raw_chunks(path: str, local: bool) -> Iterator[h5py.File | None]:
    """The HDF5 file at ``path`` opened with h5py, for reading its compressed chunks as they
    are stored; None if it is not a local HDF5 file."""
    if not local:
        yield None
        return
    try:
        h5 = h5py.File(path, "r", locking=False)
    except OSError:
        yield None
        return
    with h5:
        yield h5


#: Receives a checked chunk as stored: ``sink(index in the source's chunk grid, bytes)``.
ChunkSink = Callable[[tuple[int, ...], bytes], None]

_H5Z_FILTER_DEFLATE = 1
_H5Z_FILTER_SHUFFLE = 2


class ChunkDecoder:
    """Inflates raw HDF5 chunks into their place in a block, in worker threads.

    Reading stays in the calling thread (HDF5 is not thread-safe); only zlib-ng and the unshuffle,
    which release the GIL, run in the pool. At most a few chunks wait at once, so the compressed
    bytes in flight stay small next to the block.
    """

    def __init__(self) -> None:
        self.workers = max(1, os.cpu_count() or 1)
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="grid-inflate")
        self.pending: deque[tuple[str, Future]] = deque()

    def __enter__(self) -> ChunkDecoder:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if kind is None:
                while self.pending:
                    self._wait_oldest()
        finally:
            for _, future in self.pending:
                future.cancel()
            self.pool.shutdown(wait=True)

    def submit(
        self,
        url: str,
        h5,
        name: str,
        layout: DeflateLayout | None,
        first: int,
        steps: int,
        out: np.ndarray | None = None,
        copy: ChunkSink | None = None,
    ) -> bool:
        """Queue the steps ``first: first + steps`` of variable ``name``, stored with
        ``layout`` (its :func:`deflate_layout`), to be decoded into ``out`` and/or, each chunk
        once checked, handed as stored to ``copy(index, bytes)`` (``index`` in the source's
        chunk grid; called from the pool's threads); False (nothing queued) if its layout
        needs the generic reader."""
        dset = None if layout is None or h5 is None else h5[name]
        if (
            dset is None
            or out is not None
            and (layout.dtype != out.dtype or dset.shape[1:] != out.shape[1:])
        ):
            return False
        shuffle, chunks = layout.shuffle, layout.chunks
        grids = [range(0, n, c) for n, c in zip(dset.shape[1:], chunks[1:], strict=True)]
        for t0 in range(first // chunks[0] * chunks[0], first + steps, chunks[0]):
            for corner in itertools.product(*grids):
                offset = (t0, *corner)
                mask, raw = dset.id.read_direct_chunk(offset)
                if mask:
                    raise ValueError(f"chunk {offset} of {name} skipped a filter")
                while len(self.pending) >= 2 * self.workers:
                    self._wait_oldest()
                self.pending.append(
                    (
                        url,
                        self.pool.submit(
                            _inflate_into,
                            raw,
                            dset.dtype,
                            chunks,
                            shuffle,
                            offset,
                            first,
                            out,
                            copy,
                        ),
                    )
                )
        return True

    def _wait_oldest(self) -> None:
        url, future = self.pending.popleft()
        try:
            future.result()
        except (ValueError, zlib_ng.error) as error:
            raise IngestError(
                url, f"cannot be read ({error})", "the file is corrupt; fetch it again"
            ) from None


@dataclass(frozen=True)
class DeflateLayout:
    """How an HDF5 dataset stores its chunks, when it is a layout this module reads raw."""

    chunks: tuple[int, ...]
    dtype: np.dtype
    shuffle: bool
    level: int


def deflate_layout(h5, name: str) -> DeflateLayout | None:
    """The layout of variable ``name`` if it is chunked, every chunk written, and compressed
    with deflate alone or after shuffle; None otherwise (or if ``h5`` is None)."""
    if h5 is None or name not in h5:
        return None
    dset = h5[name]
    if not isinstance(dset, h5py.Dataset) or dset.chunks is None:
        return None
    plist = dset.id.get_create_plist()
    filters = [plist.get_filter(i) for i in range(plist.get_nfilters())]
    codes = [f[0] for f in filters]
    if codes not in ([_H5Z_FILTER_DEFLATE], [_H5Z_FILTER_SHUFFLE, _H5Z_FILTER_DEFLATE]):
        return None
    chunks_per_step = math.prod(
        math.ceil(n / c) for n, c in zip(dset.shape[1:], dset.chunks[1:], strict=True)
    )
    if dset.id.get_num_chunks() != math.ceil(dset.shape[0] / dset.chunks[0]) * chunks_per_step:
        return None  # unwritten chunks read as fill values: leave them to netCDF4
    level = int(filters[-1][2][0]) if filters[-1][2] else 6
    return DeflateLayout(tuple(dset.chunks), dset.dtype, codes[0] == _H5Z_FILTER_SHUFFLE, level)


def _inflate_into(
    raw: bytes,
    dtype: np.dtype,
    chunks: tuple[int, ...],
    shuffle: bool,
    offset: tuple[int, ...],
    first: int,
    out: np.ndarray | None,
    copy: ChunkSink | None,
) -> None:
    """Decode one raw chunk (starting at ``offset`` in the source) into the part of ``out``
    (steps ``first:`` of the source) that it covers; hand it, checked, to ``copy``."""
    # zlib-ng inflates the same streams 1.5x faster than zlib (and also releases the GIL);
    # it checks the stream's Adler-32 checksum as zlib does.
    data = zlib_ng.decompress(raw)
    count = math.prod(chunks)
    if len(data) != count * dtype.itemsize:
        raise ValueError(f"a chunk inflates to {len(data)} bytes, not {count * dtype.itemsize}")
    if copy is not None:
        copy(tuple(o // c for o, c in zip(offset, chunks, strict=True)), raw)
    if out is None:
        return
    flat = np.frombuffer(data, dtype=np.uint8)
    if shuffle and dtype.itemsize > 1:
        flat = Shuffle(dtype.itemsize).decode(flat)
    chunk = flat.view(dtype).reshape(chunks)
    source = []
    target = []
    for axis, (start, size) in enumerate(zip(offset, chunks, strict=True)):
        base = first if axis == 0 else 0
        length = out.shape[0] + first if axis == 0 else out.shape[axis]
        lo, hi = max(start, base), min(start + size, length)
        source.append(slice(lo - start, hi - start))
        target.append(slice(lo - base, hi - base))
    out[tuple(target)] = chunk[tuple(source)]
