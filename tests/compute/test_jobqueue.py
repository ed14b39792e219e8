"""cluster() on HPC: real Slurm jobs through dask-jobqueue; PBS job scripts (no PBS server here)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dask.config
import pytest

from eosc_pangeo.compute import ClusterSpec, ClusterStartError, UnsupportedOption, cluster
from eosc_pangeo.compute.jobqueue import jobqueue_cluster
from eosc_pangeo.config import Settings

LAKE = Settings(lake="/data/lake", storage_options={"anon": True})


@pytest.mark.slow
def test_slurm_jobs_compute_with_the_lake_settings(slurm_site):
    def job_facts():
        import os

        return os.environ.get("SLURM_JOB_ID") is not None, os.environ.get("EOSC_PANGEO_LAKE")

    with (
        cluster(workers=1, cores=1, memory="1GiB", backend="slurm", settings=LAKE) as hpc,
        hpc.get_client() as client,
    ):
        assert client.submit(job_facts, pure=False).result() == (True, "/data/lake")


@pytest.mark.slow
def test_auto_submits_to_slurm_on_a_slurm_site(slurm_site):
    with cluster(workers=1, settings=Settings(jobqueue="slurm")) as hpc:
        assert type(hpc).__name__ == "SLURMCluster"
        with hpc.get_client() as client:
            assert client.submit(sum, [1, 2]).result() == 3


def test_slurm_down_is_a_clear_error_within_a_bounded_time(slurm, tmp_path, monkeypatch):
    # A client configuration whose controller does not listen: to this client, Slurm is down.
    conf = tmp_path / "slurm.conf"
    conf.write_text(
        Path("/etc/slurm/slurm.conf").read_text() + "SlurmctldPort=9\nMessageTimeout=2\n"
    )
    monkeypatch.setenv("SLURM_CONF", str(conf))
    started = time.monotonic()
    with pytest.raises(ClusterStartError, match="backend 'slurm'"):
        cluster(workers=1, backend="slurm", settings=Settings())
    assert time.monotonic() - started < 30


def test_a_machine_without_the_batch_commands_is_told_so(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ClusterStartError, match="'qstat' is not on PATH"):
        cluster(backend="pbs", settings=Settings())


def test_workers_that_never_start_are_a_clear_error_within_the_start_timeout(slurm_site):
    # A held job stays pending, as in a full queue: no worker ever starts. Its name is unique, as
    # slurmctld restores from its saved state the jobs of runs that were killed before cleanup.
    job_name = f"held-{uuid.uuid4().hex[:8]}"
    held = {"jobqueue.slurm.job-extra-directives": ["--hold"], "jobqueue.slurm.name": job_name}
    started = time.monotonic()
    with (
        dask.config.set(held),
        pytest.raises(ClusterStartError, match="0 of 1 workers started"),
    ):
        cluster(workers=1, backend="slurm", settings=Settings(cluster_start_timeout=5))
    assert time.monotonic() - started < 20
    assert wait_until_gone(job_name), "the pending job must be cancelled with the cluster"


def wait_until_gone(job_name: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queue = subprocess.run(
            ["squeue", "--noheader", f"--name={job_name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if not queue.strip():
            return True
        time.sleep(0.5)
    return False


@pytest.fixture
def pbs_site():
    """A PBS site configuration as an admin writes it in /etc/dask/jobqueue.yaml."""
    site = {
        "jobqueue.pbs.queue": "sequentiel",
        "jobqueue.pbs.walltime": "02:00:00",
        "jobqueue.pbs.account": "eosc",
        "jobqueue.pbs.resource-spec": None,
        "jobqueue.pbs.interface": None,
    }
    with dask.config.set(site):
        yield site


def test_a_pbs_job_asks_for_the_users_cores_and_memory_in_the_sites_queue(pbs_site):
    spec = ClusterSpec.from_user(cores=4, memory="16GiB", env={"OMP_NUM_THREADS": "1"})
    with jobqueue_cluster("pbs", spec, LAKE) as pbs:
        script = pbs.job_script()
    assert "#PBS -q sequentiel" in script
    assert "#PBS -A eosc" in script
    assert "#PBS -l walltime=02:00:00" in script
    assert "#PBS -l select=1:ncpus=4:mem=16GB" in script
    assert "--nthreads 4" in script and "--memory-limit 16.00GiB" in script
    assert "export EOSC_PANGEO_LAKE=/data/lake" in script
    assert """export EOSC_PANGEO_STORAGE_OPTIONS='{"anon": true}'""" in script
    assert "export OMP_NUM_THREADS=1" in script


def test_a_pbs_job_runs_the_chosen_python_environment(pbs_site):
    spec = ClusterSpec.from_user(cores=1, memory="1GiB", image=sys.prefix)
    with jobqueue_cluster("pbs", spec, Settings()) as pbs:
        assert f"{os.path.join(sys.prefix, 'bin', 'python')} -m distributed.cli.dask_worker" in (
            pbs.job_script()
        )


def test_an_image_that_is_not_a_python_environment_is_refused_on_hpc(pbs_site):
    spec = ClusterSpec.from_user(cores=1, memory="1GiB", image="ghcr.io/pangeo-data/pangeo")
    with pytest.raises(UnsupportedOption, match="has no ghcr.io/pangeo-data/pangeo/bin/python"):
        jobqueue_cluster("pbs", spec, Settings())


@pytest.mark.slow
def test_worker_logs_go_to_the_users_log_folder_not_the_working_folder(
    slurm_site, tmp_path, monkeypatch
):
    notebook_folder = tmp_path / "notebooks"
    notebook_folder.mkdir()
    monkeypatch.chdir(notebook_folder)
    logs = tmp_path / "logs"
    settings = Settings(cluster_log_directory=str(logs))
    with dask.config.set({"jobqueue.slurm.log-directory": None}):
        with cluster(workers=1, backend="slurm", settings=settings) as hpc:
            assert hpc.log_directory == str(logs)
            with hpc.get_client() as client:
                assert client.submit(sum, [1, 2]).result() == 3
    assert list(notebook_folder.iterdir()) == []
    assert list(logs.glob("*.out")) or list(logs.glob("*.err"))
