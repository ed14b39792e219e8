"""LocalCluster backend: worker processes on this machine (a laptop, a notebook server)."""

from __future__ import annotations

import os
import sys

from distributed import LocalCluster

from ..config import Settings
from .spec import ClusterSpec, UnsupportedOption


def start_local(spec: ClusterSpec, settings: Settings) -> LocalCluster:
    """Start a LocalCluster with no workers yet; :func:`~eosc_pangeo.compute.cluster` scales it."""
    if spec.image is not None and os.path.realpath(spec.image) != os.path.realpath(sys.prefix):
        raise UnsupportedOption(
            f"backend 'local' runs workers in this notebook's Python environment ({sys.prefix}); "
            f"it cannot use image={spec.image!r}. Use backend='gateway', 'slurm' or 'pbs' for "
            "another image or environment."
        )
    scheduler_kwargs = {}
    if spec.idle_timeout is not None:
        scheduler_kwargs["idle_timeout"] = f"{spec.idle_timeout}s"
    return LocalCluster(
        n_workers=0,
        processes=True,
        threads_per_worker=spec.cores or 1,
        # "auto" splits the machine's memory between workers, as LocalCluster does by default.
        memory_limit=spec.memory if spec.memory is not None else "auto",
        host="127.0.0.1",
        # A random port: several clusters (tests, notebooks of one server) coexist.
        dashboard_address="127.0.0.1:0",
        scheduler_kwargs=scheduler_kwargs,
        # Passed to each Nanny, which starts its worker process with these variables.
        env=spec.worker_env(settings),
    )
