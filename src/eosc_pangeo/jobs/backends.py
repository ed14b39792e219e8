"""Where a job's runner process lives, and how it is started, watched, stopped and cleaned up.

- ``local`` and ``gateway``: the runner is a detached process on this machine (its cluster is a
  LocalCluster, or clusters of the Dask Gateway); it outlives the command that started it.
- ``slurm`` and ``pbs``: the runner is itself a batch job, whose script is written by
  dask-jobqueue's job classes, so that the site's queue, account, walltime and directives
  (``jobqueue.slurm`` / ``jobqueue.pbs`` in dask's configuration) apply to it as to its workers.
  Its workers are further batch jobs, named ``<job name>-w`` so that they can be found and
  cancelled however the job ends.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask.config
import yaml

from .accounts import Account
from .model import Job, JobError
from .store import JobDirectory

BATCH_SYSTEMS = ("slurm", "pbs")
COMMAND_TIMEOUT = 30.0


def batch_job_name(job: Job) -> str:
    return f"eosc-{job.id}"


def worker_job_name(job: Job) -> str:
    return f"{batch_job_name(job)}-w"


def runner_command(directory: JobDirectory, account: Account | None = None) -> list[str]:
    python = account.python if account is not None else sys.executable
    return [python, "-m", "eosc_pangeo.jobs.runner", str(directory.path)]


def as_account(account: Account | None) -> dict:
    """Popen options that run a command as ``account`` (none: as this process's user)."""
    return account.process_options() if account is not None else {}


# --- local processes -------------------------------------------------------------------------


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), None if it does not run.

    Stored with the pid, it tells a job's runner from a later process that reuses its pid. A
    zombie (exited, not yet reaped by its parent) counts as not running.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def launch_local(
    job: Job, directory: JobDirectory, env: dict[str, str], account: Account | None = None
) -> dict[str, str]:
    """Start the runner detached (own session: it survives this command, the terminal and a
    restart of the jobs service), as ``account`` if given."""
    with open(directory.log, "ab") as log:
        process = subprocess.Popen(
            runner_command(directory, account),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory.work,
            env=env,
            start_new_session=True,
            **as_account(account),
        )
    return {"native_id": str(process.pid), "process_start": process_start_time(process.pid)}


def local_runner_alive(job: Job) -> bool:
    pid = int(job.native_id)
    return process_start_time(pid) == job.process_start and job.process_start is not None


# --- batch systems ---------------------------------------------------------------------------


def site_jobqueue_config(system: str) -> dict:
    """The site's ``jobqueue.<system>`` settings over dask-jobqueue's defaults.

    dask-jobqueue adds its defaults to dask's configuration when imported: without the import,
    a fresh process (the CLI on a login node) would find no ``jobqueue`` section at all.
    """
    import dask_jobqueue  # noqa: F401

    return dict(dask.config.get(f"jobqueue.{system}"))


def batch_job(job: Job, directory: JobDirectory, account: Account | None = None):
    """dask-jobqueue's job object for the runner of ``job``, with the site's settings."""
    from dask_jobqueue.pbs import PBSJob
    from dask_jobqueue.slurm import SLURMJob

    system = job.backend
    job_class = {"slurm": SLURMJob, "pbs": PBSJob}[system]
    config = site_jobqueue_config(system)
    batch = job_class(
        scheduler="tcp://unused:0",  # this job runs the notebook, not a worker: see below
        name="runner",
        cores=config.get("cores") or 1,
        memory=config.get("memory") or "2GiB",
        processes=1,
        job_name=batch_job_name(job),
        log_directory=str(directory.logs),
        job_script_prologue=[f"cd {shlex.quote(str(directory.work))}"],
    )
    # dask-jobqueue writes scripts that start a worker; its header, prologue and submission are
    # what we want, its command is not, and it has no public way to change it.
    batch._command_template = (
        "exec "
        + shlex.join(runner_command(directory, account))
        + (f" >> {shlex.quote(str(directory.log))} 2>&1")
    )
    return batch


def batch_script(job: Job, directory: JobDirectory) -> str:
    """The batch script (``#SBATCH`` / ``#PBS`` header, then the runner) of ``job``."""
    return batch_job(job, directory).job_script()


def snapshot_jobqueue_config(job: Job, directory: JobDirectory) -> None:
    """Freeze the site's jobqueue settings (as seen at submission) for the job and its workers.

    The batch node reads them from ``DASK_CONFIG`` (see
    :func:`eosc_pangeo.jobs.api.runner_environment`): workers get the queue, interface and
    scheduler options the user saw, a name that finds them, and the job's ``logs/`` for their
    batch logs. The site's log directory is for interactive clusters:
    the job's user may not be able to write it (the batch system would then fail the worker
    jobs), and logs there would not come back with the results.
    """
    system = job.backend
    config = site_jobqueue_config(system)
    config["name"] = worker_job_name(job)
    config["log-directory"] = str(directory.logs)
    directory.dask_config.mkdir(exist_ok=True)
    (directory.dask_config / "jobqueue.yaml").write_text(
        yaml.safe_dump({"jobqueue": {system: config}})
    )


def run_command(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a batch system's command; a missing command is a clear error."""
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
            **kwargs,
        )
    except FileNotFoundError:
        raise JobError(
            f"{command[0]!r} is not on PATH: this machine is not a submit host"
        ) from None


def submit_batch(
    job: Job, directory: JobDirectory, env: dict[str, str], account: Account | None = None
) -> dict[str, str]:
    """Submit the runner's batch script, as ``account`` if given (the batch system then runs
    the job as that user)."""
    snapshot_jobqueue_config(job, directory)
    batch = batch_job(job, directory, account)
    script = directory.path / "batch.sh"
    script.write_text(batch.job_script())
    if account is not None:
        account.own(directory.path)
    command = shlex.split(batch.submit_command) + [str(script)]
    result = run_command(command, env=env, cwd=directory.work, **as_account(account))
    if result.returncode != 0:
        raise JobError(f"{command[0]} refused the job: {result.stderr.strip() or result.stdout}")
    return {"native_id": batch._job_id_from_submit_output(result.stdout)}


def batch_job_alive(job: Job) -> bool | None:
    """Whether the batch system still holds the job; None if it cannot tell (server down)."""
    if job.backend == "slurm":
        result = run_command(["squeue", "--noheader", "--jobs", job.native_id, "--format=%T"])
        if result.returncode == 0:
            return bool(result.stdout.strip())
        return False if "Invalid job id" in result.stderr else None
    result = run_command(["qstat", job.native_id])
    if result.returncode == 0:
        return True
    return False if "Unknown Job" in result.stderr else None


def cancel_batch_workers(job: Job) -> None:
    """Cancel the worker jobs the job's clusters submitted (by their name)."""
    if job.backend == "slurm":
        run_command(["scancel", f"--name={worker_job_name(job)}"])
    else:
        listed = run_command(["qselect", "-N", worker_job_name(job)])
        if listed.returncode == 0 and listed.stdout.split():
            run_command(["qdel", *listed.stdout.split()])


def batch_worker_jobs(job: Job) -> list[str]:
    """Ids of the job's worker jobs still in the queue (Slurm)."""
    result = run_command(["squeue", "--noheader", f"--name={worker_job_name(job)}", "--format=%i"])
    return result.stdout.split()


# --- one interface over both -----------------------------------------------------------------


def launch(
    job: Job, directory: JobDirectory, env: dict[str, str], account: Account | None = None
) -> dict[str, str]:
    """Start the job's runner (as ``account`` if given); returns the record fields that find
    it again."""
    if job.backend in BATCH_SYSTEMS:
        return submit_batch(job, directory, env, account)
    return launch_local(job, directory, env, account)


def runner_alive(job: Job) -> bool | None:
    """Whether the job's runner still exists (True/False), None if that cannot be known."""
    if job.native_id is None:
        return None
    if job.backend in BATCH_SYSTEMS:
        return batch_job_alive(job)
    return local_runner_alive(job)


def stop_runner(job: Job, grace: float = 20.0) -> None:
    """Ask the runner to stop (SIGTERM: it cleans up), and kill it after ``grace`` seconds."""
    if job.native_id is None:
        return
    if job.backend in BATCH_SYSTEMS:
        # The batch system signals the job (SIGTERM, then SIGKILL after its KillWait).
        run_command(["scancel" if job.backend == "slurm" else "qdel", job.native_id])
    elif local_runner_alive(job):
        signal_group(int(job.native_id), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while runner_alive(job) and time.monotonic() < deadline:
        time.sleep(0.2)
    if job.backend not in BATCH_SYSTEMS and local_runner_alive(job):
        signal_group(int(job.native_id), signal.SIGKILL)


def signal_group(pid: int, sig: int) -> None:
    """Signal the runner's process group (it leads its own session); it may just have ended."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def close_job_clusters(job: Job, settings, hub_token: str | None = None) -> list[str]:
    """Stop every cluster ``job`` started that may still run; returns what was stopped.

    ``hub_token``: the job's user's token for the gateway, when this process holds another
    (the jobs service); default: the settings' authentication.

    Called by the runner when the job ends (however it ends) and again by ``cancel``: a runner
    killed outright cannot clean up after itself. Local clusters die with the runner's
    process tree (see :func:`eosc_pangeo.jobs.runner.kill_descendants`).
    """
    if job.backend in BATCH_SYSTEMS:
        cancel_batch_workers(job)
        return [worker_job_name(job)]
    if job.backend == "gateway" and settings.gateway_address:
        return asyncio.run(stop_gateway_clusters(job, settings, hub_token))
    return []


async def stop_gateway_clusters(job: Job, settings, hub_token: str | None) -> list[str]:
    from dask_gateway import Gateway, JupyterHubAuth

    stopped = []
    async with Gateway(
        settings.gateway_address,
        proxy_address=settings.gateway_proxy_address,
        auth=JupyterHubAuth(api_token=hub_token) if hub_token else settings.gateway_auth,
        asynchronous=True,
    ) as gateway:
        for report in await gateway.list_clusters():
            environment = (report.options or {}).get("environment") or {}
            if environment.get("EOSC_PANGEO_JOB_ID") == job.id:
                await gateway.stop_cluster(report.name)
                stopped.append(report.name)
    return stopped
