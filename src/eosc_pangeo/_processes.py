"""Worker processes for CPU-bound work that holds the GIL (HDF5 decoding, NetCDF writing)."""

from __future__ import annotations

import multiprocessing
import threading


def pool_context() -> multiprocessing.context.BaseContext:
    """Fork while this process runs a single thread, else spawn.

    Forking is fast and, unlike spawning, does not re-run an unguarded ``__main__`` script; but
    forking a process in which other threads run (a progress bar's, a Dask client's) can deadlock.
    """
    single = threading.active_count() == 1
    fork = single and "fork" in multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if fork else "spawn")
