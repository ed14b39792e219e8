"""HPC backends: one batch job per Dask worker, through dask-jobqueue (Slurm, PBS).

The site's own settings (queue, account, walltime, network interface, log directory, extra
directives) live in dask-jobqueue's configuration (``/etc/dask/jobqueue.yaml`` or
``~/.config/dask/jobqueue.yaml``, key ``jobqueue.slurm`` or ``jobqueue.pbs``); this module only
maps the options of :func:`~eosc_pangeo.compute.cluster` onto them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

import dask.config
from dask_jobqueue import JobQueueCluster, PBSCluster, SLURMCluster

from ..config import Settings
from .spec import ClusterSpec, ClusterStartError, UnsupportedOption

CLUSTER_CLASSES: dict[str, type[JobQueueCluster]] = {"slurm": SLURMCluster, "pbs": PBSCluster}

# A read-only command that needs the batch server; it tells "down" from "slow" quickly.
HEALTH_COMMANDS = {"slurm": ["sinfo", "--noheader", "--format=%P %a"], "pbs": ["qstat", "-B"]}
HEALTH_TIMEOUT = 20.0


def jobqueue_cluster(system: str, spec: ClusterSpec, settings: Settings) -> JobQueueCluster:
    """Build (without submitting any job) the dask-jobqueue cluster for ``spec``.

    Parameters
    ----------
    system : {"slurm", "pbs"}
        The batch system.
    spec : ClusterSpec
        What the user asked for. ``cores`` and ``memory`` left at None take the site's values.
    settings : Settings
        The lake settings in it are exported to every worker job.

    Returns
    -------
    JobQueueCluster
        A running scheduler with no jobs; ``job_script()`` shows what would be submitted, and
        ``log_directory`` where the workers' logs go (the site's, or
        ``settings.cluster_log_directory``).
    """
    kwargs: dict = {
        "processes": 1,  # one worker per job: cores map to threads, memory to the job's memory
        "job_script_prologue": [
            f"export {name}={shlex.quote(value)}"
            for name, value in spec.worker_env(settings).items()
        ],
    }
    if spec.cores is not None:
        kwargs["cores"] = spec.cores
    if spec.memory is not None:
        kwargs["memory"] = f"{spec.memory // 2**20}MiB"
    if spec.image is not None:
        python = os.path.join(spec.image, "bin", "python")
        if not os.access(python, os.X_OK):
            raise UnsupportedOption(
                f"backend {system!r} runs workers with a Python environment; image={spec.image!r} "
                f"has no {python}. Give the path of a Python environment visible on compute nodes."
            )
        kwargs["python"] = python
    # dask-jobqueue's default writes slurm-<id>.out files into the notebook's working folder.
    log_directory = dask.config.get(f"jobqueue.{system}.log-directory", None) or (
        os.path.expanduser(settings.cluster_log_directory)
    )
    os.makedirs(log_directory, exist_ok=True)
    kwargs["log_directory"] = log_directory
    if spec.idle_timeout is not None:
        # Merged into, not replacing, the site's scheduler options (e.g. its network interface).
        site_options = dask.config.get(f"jobqueue.{system}.scheduler-options", {}) or {}
        kwargs["scheduler_options"] = {**site_options, "idle_timeout": f"{spec.idle_timeout}s"}
    batch_cluster = CLUSTER_CLASSES[system](**kwargs)
    batch_cluster.log_directory = log_directory  # where users find their workers' logs
    return batch_cluster


def check_batch_system(system: str) -> None:
    """Fail fast, with the batch system's own message, if jobs cannot be submitted from here."""
    command = HEALTH_COMMANDS[system]
    if shutil.which(command[0]) is None:
        raise ClusterStartError(
            f"backend {system!r}: {command[0]!r} is not on PATH; this machine is not a {system} "
            "submit host (load the site's module, or choose another backend)."
        )
    try:
        subprocess.run(command, capture_output=True, text=True, check=True, timeout=HEALTH_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ClusterStartError(
            f"backend {system!r}: {' '.join(command)} did not answer within "
            f"{HEALTH_TIMEOUT:.0f} s; the batch server looks down or unreachable."
        ) from None
    except subprocess.CalledProcessError as error:
        raise ClusterStartError(
            f"backend {system!r}: the batch server is not usable: "
            f"{' '.join(command)} said: {error.stderr.strip() or error.stdout.strip()}"
        ) from None


def start_jobqueue(system: str, spec: ClusterSpec, settings: Settings) -> JobQueueCluster:
    """Check the batch system answers, then build its cluster (jobs are submitted on scaling)."""
    check_batch_system(system)
    return jobqueue_cluster(system, spec, settings)
