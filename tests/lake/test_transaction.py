"""The undo journal of an ingest: every way zarr writes through a store is journaled."""

from __future__ import annotations

import re

import numpy as np
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import LocalStore, WrapperStore

from eosc_pangeo.lake.transaction import JournaledStore, Transaction

# Every method of zarr's WrapperStore whose name says it writes or deletes (set, set_sync,
# _set_many, delete, delete_sync, delete_dir, clear, ...), in the installed zarr.
WRITE_METHODS = sorted(
    name
    for name in dir(WrapperStore)
    if re.match(r"_?(set|delete|clear)", name) and callable(getattr(WrapperStore, name))
)


def test_every_write_method_of_the_installed_zarr_is_journaled():
    # A zarr release adding a write path to WrapperStore fails here before it bypasses the log.
    assert WRITE_METHODS
    not_journaled = [name for name in WRITE_METHODS if name not in vars(JournaledStore)]
    assert not_journaled == []


def buffer(data: bytes):
    return default_buffer_prototype().buffer.from_bytes(data)


def call(store, method: str, key: str) -> None:
    """Write (or delete) ``key`` through one write method of ``store``."""
    function = getattr(store, method)
    arguments = {
        "set": (key, buffer(b"new")),
        "set_sync": (key, buffer(b"new")),
        "set_if_not_exists": (key, buffer(b"new")),
        "_set_many": ([(key, buffer(b"new"))],),
        "delete": (key,),
        "delete_sync": (key,),
        "delete_dir": (key.rsplit("/", 1)[0],),
        "clear": (),
    }[method]
    result = function(*arguments)
    if hasattr(result, "__await__"):
        sync(result)


@pytest.mark.parametrize("method", WRITE_METHODS)
def test_a_rolled_back_write_leaves_the_store_as_it_was(local_lake, tmp_path, method):
    store = LocalStore(tmp_path / "store")
    sync(store.set("a/old", buffer(b"old")))
    with pytest.raises(RuntimeError), Transaction(local_lake) as transaction:
        journaled = transaction.zarr_store(store)
        call(journaled, method, "a/old")
        if method in ("set", "set_sync", "set_if_not_exists", "_set_many"):
            call(journaled, method, "a/created")
        raise RuntimeError("the ingest fails after writing")
    assert sync(store.get("a/old", default_buffer_prototype())).to_bytes() == b"old"
    assert not sync(store.exists("a/created"))


@pytest.mark.parametrize(
    "pipeline",
    [
        "zarr.core.codec_pipeline.BatchedCodecPipeline",
        "zarr.core.codec_pipeline.FusedCodecPipeline",
    ],
)
def test_chunks_overwritten_by_a_failed_ingest_are_restored(local_lake, tmp_path, pipeline):
    module, _, name = pipeline.rpartition(".")
    if not hasattr(__import__(module, fromlist=[name]), name):
        pytest.skip(f"zarr {zarr.__version__} has no {name}")
    store = LocalStore(tmp_path / "store")
    zarr.create_array(store, name="x", data=np.array([1, 2, 3, 4]), chunks=(2,))
    with zarr.config.set({"codec_pipeline.path": pipeline}):
        with pytest.raises(RuntimeError), Transaction(local_lake) as transaction:
            array = zarr.open_array(transaction.zarr_store(store), path="x", mode="r+")
            array[:] = 9
            raise RuntimeError("the ingest fails after writing")
    assert zarr.open_array(store, path="x", mode="r")[:].tolist() == [1, 2, 3, 4]
