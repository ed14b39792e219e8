"""Time from ``cluster()`` to the first result, per backend, against a LocalCluster.

Each run calls :func:`eosc_pangeo.compute.cluster` with one 1-core worker, computes one small
task, and stops the cluster; the figure is the time until the result is back (closing is not
counted). Backends, in one process so that the baseline shares the machine's state:

* ``local``: a LocalCluster (the baseline of the ratios);
* ``gateway``: Dask Gateway behind JupyterHub (real proxy), started here with
  :func:`eosc_pangeo.platform.local.run_local_hub`; needs root (clusters run as a system user);
* ``slurm``: one Slurm job through dask-jobqueue on the single-node Slurm of ``.ci/slurm-up.sh``.

A backend that cannot run here is reported as skipped, with the reason. Note: LocalCluster
workers are spawned processes that re-import this script's modules (eosc_pangeo and its stack),
which costs about 2 s here; a LocalCluster from a notebook starts in about 1 s.

Run: ``python benchmarks/bench_cluster_startup.py`` (``--quick``: 1 run per backend, else 5).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import dask.config
from common import ROOT, parse_args, report

from eosc_pangeo.compute import cluster
from eosc_pangeo.config import Settings

BENCH_USER = "pgbench"


def time_to_first_result(settings: Settings, backend: str) -> float:
    started = time.perf_counter()
    dask_cluster = cluster(workers=1, cores=1, memory="1GiB", backend=backend, settings=settings)
    with dask_cluster.get_client() as client:
        assert client.submit(sum, [1, 2]).result() == 3
        seconds = time.perf_counter() - started
    dask_cluster.close()
    return seconds


def median_of(runs: int, settings: Settings, backend: str) -> float:
    return statistics.median(time_to_first_result(settings, backend) for _ in range(runs))


def gateway_median(runs: int) -> float | str:
    """Median over ``runs``, or why the gateway cannot run here."""
    if os.geteuid() != 0:
        return "needs root (the gateway runs clusters as the hub user's system user)"
    from eosc_pangeo.platform.local import ensure_system_user, run_local_hub

    ensure_system_user(BENCH_USER)
    state = Path(tempfile.mkdtemp(prefix="eosc-bench-hub-", dir="/tmp"))
    try:
        with run_local_hub(state) as hub:
            token = hub.add_user(BENCH_USER)
            os.environ["JUPYTERHUB_API_TOKEN"] = token  # read by dask-gateway's JupyterHubAuth
            settings = Settings(
                gateway_address=hub.gateway_address,
                gateway_proxy_address=f"gateway://{hub.scheduler_address}",
                gateway_auth="jupyterhub",
            )
            return median_of(runs, settings, "gateway")
    finally:
        shutil.rmtree(state, ignore_errors=True)


def slurm_median(runs: int) -> float | str:
    """Median over ``runs``, or why Slurm cannot run here."""
    setup = subprocess.run(
        [str(ROOT / ".ci" / "slurm-up.sh")], capture_output=True, text=True, check=False
    )
    if setup.returncode != 0:
        return f"Slurm is not available: {setup.stderr.strip()}"
    with (
        tempfile.TemporaryDirectory(prefix="eosc-bench-slurm-") as logs,
        dask.config.set(
            {
                "jobqueue.slurm.walltime": "00:10:00",
                "jobqueue.slurm.log-directory": logs,
                "jobqueue.slurm.interface": None,
                "jobqueue.slurm.scheduler-options": {"host": "127.0.0.1"},
            }
        ),
    ):
        return median_of(runs, Settings(), "slurm")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    runs = 1 if args.quick else 5
    time_to_first_result(Settings(), "local")  # warm imports and the disk cache, untimed
    local = median_of(runs, Settings(), "local")
    report("cluster() to first result, local", local, "s")
    for backend, measure in (("gateway", gateway_median), ("slurm", slurm_median)):
        seconds = measure(runs)
        if isinstance(seconds, str):
            print(f"cluster() to first result, {backend}: skipped: {seconds}", flush=True)
        else:
            report(f"cluster() to first result, {backend}", seconds, "s", baseline=local)


if __name__ == "__main__":
    main()
