"""Batch jobs on HPC: the notebook as a real Slurm job whose workers are further Slurm jobs;
PBS job scripts as qsub receives them (no PBS server installs here: they are not run)."""

from __future__ import annotations

import json
import subprocess
import time

import dask.config
import dask_jobqueue  # noqa: F401 (its defaults load before a fixture's dask.config.set, not in it)
import pytest

from eosc_pangeo.jobs import JobStore, State, cancel, get_results, submit, wait
from eosc_pangeo.jobs.backends import batch_job_name, batch_script, worker_job_name
from eosc_pangeo.jobs.model import Job
from eosc_pangeo.jobs.store import new_job_id

pytestmark = pytest.mark.slow


def queued(name: str) -> list[str]:
    """Ids of this test's jobs still in the Slurm queue (jobs of others are never looked at)."""
    return subprocess.run(
        ["squeue", "--noheader", f"--name={name}", "--format=%i"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


def test_a_notebook_runs_as_a_slurm_job_with_workers_as_slurm_jobs(
    slurm_site, sum_notebook, settings, tmp_path
):
    job = submit(sum_notebook, ["n=20", "label=hpc"], backend="slurm", settings=settings)
    job = wait(job.id, timeout=240, settings=settings)
    assert job.state == State.succeeded, job.reason

    results = get_results(job.id, tmp_path / "out", settings)
    answer = json.loads((results / "results" / "answer.json").read_text())
    assert answer == {"total": 190, "label": "hpc", "cluster": "SLURMCluster"}
    log = (results / "logs" / "job.log").read_text()
    assert f"job {job.id} succeeded" in log
    # The batch job leaves the queue a moment after its runner wrote the result.
    assert wait_until(
        lambda: not queued(batch_job_name(job)) and not queued(worker_job_name(job)), timeout=60
    )


def test_cancelling_a_slurm_job_leaves_nothing_in_the_queue(
    slurm_site, settings, tmp_path, make_notebook
):
    notebook = make_notebook(
        tmp_path / "long.ipynb",
        "minutes = 10",
        "import time\nfrom eosc_pangeo import cluster\n"
        "c = cluster(workers=1)\nopen('started', 'w').close()\ntime.sleep(minutes * 60)",
    )
    job = submit(notebook, backend="slurm", settings=settings)
    started = JobStore(settings.jobs_dir).directory(job.id).work / "started"
    assert wait_until(started.exists, timeout=180), "the job's cluster did not start"
    assert queued(worker_job_name(job)), "its worker runs as a Slurm job"

    job = cancel(job.id, settings)

    assert job.state == State.cancelled
    assert wait_until(
        lambda: not queued(batch_job_name(job)) and not queued(worker_job_name(job)), timeout=60
    )


@pytest.fixture
def pbs_site():
    """A PBS site configuration as an admin writes it in /etc/dask/jobqueue.yaml."""
    site = {
        "jobqueue.pbs.queue": "sequentiel",
        "jobqueue.pbs.walltime": "04:00:00",
        "jobqueue.pbs.account": "eosc",
        "jobqueue.pbs.cores": 2,
        "jobqueue.pbs.memory": "8GiB",
        "jobqueue.pbs.resource-spec": None,
        "jobqueue.pbs.interface": "ib0",
    }
    with dask.config.set(site):
        yield site


def test_a_pbs_job_script_runs_the_notebook_in_its_directory_in_the_sites_queue(
    pbs_site, sum_notebook, settings
):
    job = Job(
        id=new_job_id(),
        user="scientist",
        name=sum_notebook.name,
        kind="notebook",
        source=str(sum_notebook),
        backend="pbs",
    )
    directory = JobStore(settings.jobs_dir, "scientist").create(job)

    script = batch_script(job, directory)

    assert f"#PBS -N eosc-{job.id}" in script
    assert "#PBS -q sequentiel" in script and "#PBS -A eosc" in script
    assert "#PBS -l walltime=04:00:00" in script
    assert "#PBS -l select=1:ncpus=2:mem=8192MB" in script
    assert f"cd {directory.work}" in script
    assert script.rstrip().endswith(
        f"-m eosc_pangeo.jobs.runner {directory.path} >> {directory.log} 2>&1"
    )
    assert "dask_worker" not in script
