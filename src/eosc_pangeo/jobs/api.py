"""Submit, follow, cancel and collect batch jobs: what ``eosc-pangeo run`` and ``jobs`` call."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import Settings, get_settings
from . import backends
from .accounts import Account
from .model import BACKENDS, Job, JobError, State
from .parameters import parse_assignments, validate_parameters
from .store import JobDirectory, JobStore, new_job_id

# Settings a job takes from the submitting session, whatever its backend.
COMMON_SETTINGS = (
    "lake",
    "storage_options",
    "catalog_url",
    "notebook_image",
    "cluster_start_timeout",
    "jobs_dir",
)
GATEWAY_SETTINGS = ("gateway_address", "gateway_proxy_address", "gateway_auth")


def store_for(
    settings: Settings | None = None, user: str | None = None, account: Account | None = None
) -> JobStore:
    settings = settings or get_settings()
    return JobStore(settings.jobs_dir, user, account)


def default_backend(settings: Settings) -> str:
    """Like ``cluster(backend="auto")``: the gateway if configured, else the site's batch
    system, else local."""
    if settings.gateway_address:
        return "gateway"
    return settings.jobqueue or "local"


def job_settings(backend: str, settings: Settings) -> dict[str, Any]:
    """The settings the job runs with: ``cluster()`` inside it then picks ``backend``."""
    values = {name: getattr(settings, name) for name in COMMON_SETTINGS}
    if backend == "gateway":
        if not settings.gateway_address:
            raise JobError(
                "backend 'gateway' needs the Dask Gateway's address (EOSC_PANGEO_GATEWAY_ADDRESS); "
                "inside the hub it is set for you"
            )
        values.update({name: getattr(settings, name) for name in GATEWAY_SETTINGS})
    if backend in backends.BATCH_SYSTEMS:
        values["jobqueue"] = backend
    return {name: value for name, value in values.items() if value not in (None, {})}


# What a runner keeps of a service's environment (the service's own credentials stay behind).
BASE_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "HOME")
# The lake's object-store access, as the platform gives it to notebooks and to the jobs service
# (the chart: from the lake's Secret and ConfigMap): what botocore, under s3fs, reads. A job of
# the service reads the lake as a notebook does, so it gets them too.
LAKE_ENVIRONMENT = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION",
    "AWS_CA_BUNDLE",
)


def runner_environment(
    job: Job,
    directory: JobDirectory,
    environment: dict[str, str] | None = None,
    account: Account | None = None,
) -> dict[str, str]:
    """The runner's environment: credentials such as the hub token travel here, never in the
    record; plus the frozen dask configuration of batch jobs.

    Without ``environment``, this process's (a user's shell or notebook); with it, only
    ``environment`` over the basics of :data:`BASE_ENVIRONMENT` and the lake's credentials of
    :data:`LAKE_ENVIRONMENT` (a service submitting for a user: its own hub token and other
    secrets stay behind), whose home and ``PATH`` are ``account``'s if given.
    """
    if environment is None:
        env = dict(os.environ)
    else:
        kept = BASE_ENVIRONMENT + LAKE_ENVIRONMENT
        env = {name: os.environ[name] for name in kept if name in os.environ}
        if account is not None:
            env.update(account.environment(fallback_home=directory.path))
        env.update(environment)
    if job.backend in backends.BATCH_SYSTEMS:
        env["DASK_CONFIG"] = str(directory.dask_config)
    return env


def submit(
    path: str | Path,
    parameters: dict[str, Any] | list[str] | None = None,
    *,
    backend: str | None = None,
    workers: int | None = None,
    settings: Settings | None = None,
    user: str | None = None,
    environment: dict[str, str] | None = None,
    account: Account | None = None,
    rerun_of: Job | None = None,
) -> Job:
    """Run a notebook or script as a batch job; return its record (state ``queued``).

    Parameters
    ----------
    path : str or Path
        A notebook (``.ipynb``, parameters in its cell tagged ``parameters``) or a Python script
        (parameters from its ``eosc_pangeo.jobs.parameters(...)`` call).
    parameters : dict or list of "NAME=VALUE", optional
        Values for declared parameters; strings are converted to the type of the default.
    backend : {"local", "gateway", "slurm", "pbs"}, optional
        Where the job and its ``cluster()`` run; default as ``cluster(backend="auto")``.
    workers : int, optional
        Workers of the job's ``cluster()`` calls that give no number.
    settings : Settings, optional
        Lake, gateway and job store settings; default: :func:`~eosc_pangeo.config.get_settings`.
    user : str, optional
        Owner of the job (the hub's jobs service passes it); default: this process's user.
    environment : dict, optional
        The runner's environment (credentials), instead of this process's; see
        :func:`runner_environment`.
    account : Account, optional
        The Unix account the job runs as (a root service acting for ``user``); default: this
        process's.
    rerun_of : Job, optional
        The job this one reruns (see :func:`rerun`): its ``source`` is kept.

    Raises
    ------
    ParameterError
        An undeclared parameter or a value of the wrong type; nothing was submitted.
    JobError
        A missing file, an unknown backend, or a backend this machine cannot submit to.
    """
    settings = settings or get_settings()
    source = Path(path).expanduser().resolve()
    if not source.is_file():
        raise JobError(f"{path}: no such notebook or script")
    if source.suffix not in (".ipynb", ".py"):
        raise JobError(f"{path}: give a notebook (.ipynb) or a Python script (.py)")
    backend = backend or default_backend(settings)
    if backend not in BACKENDS:
        raise JobError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if workers is not None and workers < 0:
        raise JobError(f"--workers must be 0 or more, not {workers}")
    if isinstance(parameters, list):
        parameters = parse_assignments(parameters)
    values = validate_parameters(source, parameters or {})
    store = store_for(settings, user, account)
    job = Job(
        id=new_job_id(),
        user=store.user,
        name=source.name,
        kind="notebook" if source.suffix == ".ipynb" else "script",
        source=rerun_of.source if rerun_of else str(source),
        rerun_of=rerun_of.id if rerun_of else None,
        parameters=values,
        backend=backend,
        workers=workers,
        settings=job_settings(backend, settings),
    )
    directory = store.create(job)
    shutil.copy2(source, directory.input / source.name)
    if account is not None:
        account.own(directory.path)
    try:
        found = backends.launch(
            job, directory, runner_environment(job, directory, environment, account), account
        )
    except Exception as error:
        directory.update(state=State.failed, reason=f"submission failed: {error}")
        raise
    return directory.update(**found)


def rerun(
    job_id: str,
    parameters: dict[str, Any] | list[str] | None = None,
    *,
    settings: Settings | None = None,
    user: str | None = None,
    environment: dict[str, str] | None = None,
    account: Account | None = None,
) -> Job:
    """Run a job's notebook or script again, as submitted, as a new job.

    The new job has its own id and directory (the first one's results stay as they are), the
    same backend and workers, and the first one's parameters with ``parameters`` over them;
    it runs with this session's settings (lake, gateway), like any new submission. Other
    arguments as :func:`submit`.
    """
    first_directory = store_for(settings, user).directory(job_id)
    first = first_directory.read()
    if isinstance(parameters, list):
        parameters = parse_assignments(parameters)
    return submit(
        first_directory.input / first.name,
        {**first.parameters, **(parameters or {})},
        backend=first.backend,
        workers=first.workers,
        settings=settings,
        user=user,
        environment=environment,
        account=account,
        rerun_of=first,
    )


def reconcile(directory: JobDirectory) -> Job:
    """The job's record, marked failed if its runner vanished without saying how it ended
    (killed with SIGKILL, node lost): such a job would otherwise stay 'running' for ever.

    The worker jobs of such a batch job are cancelled then, by name: otherwise they would wait
    for their scheduler until dask's ``death-timeout``. (Stopping a gateway cluster needs its
    user's token, which only the runner and ``cancel`` hold.)
    """
    job = directory.read()
    if job.state.terminal or backends.runner_alive(job) is not False:
        return job
    job = directory.read()  # the runner may have finished between the two reads
    if job.state.terminal:
        return job
    where = (
        f"batch job {job.native_id}"
        if job.backend in backends.BATCH_SYSTEMS
        else (f"process {job.native_id}")
    )
    job = directory.update(
        state=State.failed,
        reason=f"the job's runner ({where}) ended without recording a result: killed, or its "
        "node was lost; see the log",
    )
    if job.backend in backends.BATCH_SYSTEMS:
        backends.cancel_batch_workers(job)
    return job


def get_job(job_id: str, settings: Settings | None = None, user: str | None = None) -> Job:
    return reconcile(store_for(settings, user).directory(job_id))


def list_jobs(settings: Settings | None = None, user: str | None = None) -> list[Job]:
    store = store_for(settings, user)
    return [reconcile(store.directory(job.id)) for job in store.list()]


def wait(
    job_id: str,
    timeout: float | None = None,
    settings: Settings | None = None,
    user: str | None = None,
    poll: float = 0.5,
) -> Job:
    """Block until the job has ended; return its final record."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        job = get_job(job_id, settings, user)
        if job.state.terminal:
            return job
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} is still {job.state.value} after {timeout} s")
        time.sleep(poll)


def cancel(
    job_id: str,
    settings: Settings | None = None,
    user: str | None = None,
    hub_token: str | None = None,
) -> Job:
    """Cancel the job: record it cancelled, stop its runner, then its clusters.

    The clusters are stopped here as well as by the runner, since a runner killed outright
    cannot (``hub_token``: the user's, when this process holds another token, as the jobs
    service does). Cancelling a job that has ended changes nothing and returns its record.
    """
    settings = settings or get_settings()
    directory = store_for(settings, user).directory(job_id)
    job = directory.read()
    if job.state.terminal:
        return job
    job = directory.update(state=State.cancelled, reason="cancelled by its user")
    backends.stop_runner(job)
    backends.close_job_clusters(job, Settings(**job.settings), hub_token)
    return directory.read()


def follow_log(
    job_id: str, follow: bool = False, settings: Settings | None = None, user: str | None = None
) -> Iterator[str]:
    """The job's log, chunk by chunk; with ``follow``, until the job has ended."""
    directory = store_for(settings, user).directory(job_id)
    with open(directory.log, errors="replace") as log:
        while True:
            chunk = log.read()
            if chunk:
                yield chunk
            elif not follow or reconcile(directory).state.terminal:
                rest = log.read()
                if rest:
                    yield rest
                return
            else:
                time.sleep(0.3)


def get_results(
    job_id: str,
    destination: str | Path,
    settings: Settings | None = None,
    user: str | None = None,
) -> Path:
    """Copy an ended job's executed notebook, result files, logs and provenance to
    ``destination`` (a new or empty directory)::

        destination/
            <name>.ipynb       the executed notebook (a script's job has none)
            results/           every file the job wrote in its working directory
            logs/              the job's log (and the batch system's)
            input/<name>       what was submitted
            provenance.json    inputs, parameters, software and lake versions, result checksums
            job.json           the job's record: state, reason, times
    """
    directory = store_for(settings, user).directory(job_id)
    job = reconcile(directory)
    if not job.state.terminal:
        raise JobError(
            f"job {job_id} is still {job.state.value}; wait for it (jobs logs "
            f"{job_id} --follow) or cancel it"
        )
    destination = Path(destination).expanduser()
    if destination.exists() and any(destination.iterdir()):
        raise JobError(f"{destination} is not empty: results are never copied over other files")
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copytree(directory.work, destination / "results")
    shutil.copytree(directory.logs, destination / "logs")
    shutil.copytree(directory.input, destination / "input")
    if directory.output_notebook.exists():
        shutil.copy2(directory.output_notebook, destination / job.name)
    for path in (directory.provenance, directory.record):
        if path.exists():
            shutil.copy2(path, destination / path.name)
    return destination
