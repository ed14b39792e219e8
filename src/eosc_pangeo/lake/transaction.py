"""Undo logs for ingests: a failed ingest leaves the lake byte for byte as it was.

Readers never see a half-written version anyway: Zarr readers go through consolidated metadata,
which an ingest rewrites only after every chunk is in place, and in-situ readers go through the
manifest, written last. The undo log is for the bytes: when an ingest fails half-way (bad data found
late, disk full, a lost connection) it deletes what it created and puts back what it overwrote.

A process killed outright cannot run its undo log; what it wrote is then invisible to readers and
the next ingest of the same files writes over it (or deletes it, for Parquet files).
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from zarr.abc.store import Store
from zarr.core.buffer import Buffer, default_buffer_prototype
from zarr.storage import LocalStore, WrapperStore

from .storage import Lake


class Transaction:
    """What an ingest created and overwrote in the lake, to undo it on failure.

    Use as a context manager: leaving it with an exception rolls back, leaving it normally
    forgets the log. Overwritten bytes are spilled to a local temporary folder, not kept in memory.
    """

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._spill = tempfile.TemporaryDirectory(prefix="eosc-pangeo-undo-")
        self._counter = itertools.count()
        self._zarr_log: list[tuple[Store, str, Path | None]] = []
        self._seen: set[tuple[int, str]] = set()
        self._lock = threading.Lock()
        self._created_files: list[str] = []
        self._created_dirs: list[str] = []

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None:
                self.rollback()
        finally:
            self._spill.cleanup()

    def zarr_store(self, store: Store) -> JournaledStore:
        """Wrap a Zarr store so that every write to it is logged."""
        return JournaledStore(store, self)

    def created_file(self, path: str) -> None:
        """Log a file (e.g. a Parquet file) that this ingest writes under a new name."""
        self._created_files.append(path)

    def created_dir(self, path: str) -> None:
        """Log a folder this ingest creates; it is removed, with all it holds, on rollback."""
        self._created_dirs.append(path)

    def _first_write(self, store: Store, key: str) -> bool:
        marker = (id(store), key)
        with self._lock:  # zarr's synchronous write path runs in worker threads
            if marker in self._seen:
                return False
            self._seen.add(marker)
            return True

    def _log(self, store: Store, key: str, old: Buffer | None) -> None:
        saved = None
        if old is not None:
            saved = Path(self._spill.name) / str(next(self._counter))
            saved.write_bytes(old.to_bytes())
        with self._lock:
            self._zarr_log.append((store, key, saved))

    async def _remember(self, store: Store, key: str) -> None:
        if self._first_write(store, key):
            self._log(store, key, await store.get(key, default_buffer_prototype()))

    def _remember_sync(self, store: Store, key: str) -> None:
        # Only stores with a synchronous write path (zarr >= 3.2) call this, and they read
        # synchronously too.
        if self._first_write(store, key):
            self._log(store, key, store.get_sync(key, prototype=default_buffer_prototype()))

    def rollback(self) -> None:
        """Delete what was created and restore what was overwritten, newest first."""
        from zarr.core.sync import sync

        fs = self.lake.fs
        emptied = set()
        for path in reversed(self._created_files):
            if fs.exists(path):
                fs.rm(path)
            emptied.add(path.rsplit("/", 1)[0])
        for store, key, saved in reversed(self._zarr_log):
            if saved is None:
                sync(store.delete(key))
                if isinstance(store, LocalStore):
                    emptied.add(str((store.root / key).parent))
            else:
                buffer = default_buffer_prototype().buffer.from_bytes(saved.read_bytes())
                sync(store.set(key, buffer))
        for path in reversed(self._created_dirs):
            if fs.exists(path):
                fs.rm(path, recursive=True)
        if self.lake.is_local:
            _remove_empty_dirs(fs, emptied)


def _remove_empty_dirs(fs, paths) -> None:
    # Deleting a file on a local disk leaves its folder behind; object stores have no folders.
    for path in sorted(paths, key=len, reverse=True):
        while fs.exists(path) and not fs.ls(path):
            fs.rmdir(path)
            path = path.rsplit("/", 1)[0]


class JournaledStore(WrapperStore):
    """A Zarr store whose writes and deletes are logged in a :class:`Transaction` first.

    Every write path of zarr's ``WrapperStore`` is overridden, the synchronous ones of zarr >= 3.2
    (``set_sync``, ``delete_sync``, used by its ``FusedCodecPipeline``) included: one left to
    the wrapper would write past the log. ``tests/lake/test_transaction.py`` fails when a zarr
    release adds a write method this class does not journal.
    """

    def __init__(self, store: Store, transaction: Transaction) -> None:
        super().__init__(store)
        self._transaction = transaction

    def _with_store(self, store: Store) -> JournaledStore:
        return type(self)(store, self._transaction)

    async def set(self, key: str, value: Buffer) -> None:
        await self._transaction._remember(self._store, key)
        await self._store.set(key, value)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        await self._transaction._remember(self._store, key)
        await self._store.set_if_not_exists(key, value)

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        await asyncio.gather(*(self.set(key, value) for key, value in values))

    async def delete(self, key: str) -> None:
        await self._transaction._remember(self._store, key)
        await self._store.delete(key)

    async def delete_dir(self, prefix: str) -> None:
        keys = [key async for key in self._store.list_prefix(prefix)]
        await asyncio.gather(*(self.delete(key) for key in keys))

    async def clear(self) -> None:
        await self.delete_dir("")

    def set_sync(self, key: str, value: Buffer) -> None:
        self._transaction._remember_sync(self._store, key)
        self._store.set_sync(key, value)

    def delete_sync(self, key: str) -> None:
        self._transaction._remember_sync(self._store, key)
        self._store.delete_sync(key)
