"""The jobs of the hub's jobs service, with the same functions as :mod:`eosc_pangeo.jobs.api`.

Inside the hub (``EOSC_PANGEO_JOBS_URL`` is set in every notebook server), ``eosc-pangeo run`` and
``jobs ...`` act through the service, so that jobs outlive the notebook server and appear on the
service's page; elsewhere they act on the local job store.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from ..config import Settings, get_settings
from .model import Job, JobError, JobNotFound, ParameterError


def call(settings: Settings, method: str, path: str, **kwargs) -> requests.Response:
    if not settings.hub_api_token:
        raise JobError(
            "the jobs service needs your hub token (JUPYTERHUB_API_TOKEN); it is set "
            "in notebook servers of the hub"
        )
    response = requests.request(
        method,
        f"{settings.jobs_url.rstrip('/')}/{path}",
        timeout=120,
        headers={"Authorization": f"token {settings.hub_api_token}"},
        **kwargs,
    )
    if response.status_code >= 400:
        try:
            message = response.json()["message"]
        except (ValueError, KeyError):
            message = response.text[:500]
        error = {400: ParameterError if "parameter" in message else JobError, 404: JobNotFound}.get(
            response.status_code, JobError
        )
        raise error(f"jobs service: {message}")
    return response


def submit(
    path: str | Path,
    parameters: dict[str, Any] | list[str] | None = None,
    *,
    backend: str | None = None,
    workers: int | None = None,
    settings: Settings | None = None,
) -> Job:
    from .parameters import parse_assignments

    settings = settings or get_settings()
    source = Path(path).expanduser()
    if not source.is_file():
        raise JobError(f"{path}: no such notebook or script")
    if isinstance(parameters, list):
        parameters = parse_assignments(parameters)
    body = {
        "name": source.name,
        "content": source.read_text(),
        "parameters": parameters or {},
        "backend": backend,
        "workers": workers,
    }
    return Job.model_validate(call(settings, "POST", "api/jobs", json=body).json())


def rerun(
    job_id: str,
    parameters: dict[str, Any] | list[str] | None = None,
    *,
    settings: Settings | None = None,
) -> Job:
    from .parameters import parse_assignments

    if isinstance(parameters, list):
        parameters = parse_assignments(parameters)
    response = call(
        settings or get_settings(),
        "POST",
        f"api/jobs/{job_id}/rerun",
        json={"parameters": parameters or {}},
    )
    return Job.model_validate(response.json())


def get_job(job_id: str, settings: Settings | None = None) -> Job:
    return Job.model_validate(call(settings or get_settings(), "GET", f"api/jobs/{job_id}").json())


def list_jobs(settings: Settings | None = None) -> list[Job]:
    jobs = call(settings or get_settings(), "GET", "api/jobs").json()["jobs"]
    return [Job.model_validate(job) for job in jobs]


def cancel(job_id: str, settings: Settings | None = None) -> Job:
    response = call(settings or get_settings(), "POST", f"api/jobs/{job_id}/cancel")
    return Job.model_validate(response.json())


def wait(
    job_id: str, timeout: float | None = None, settings: Settings | None = None, poll: float = 2.0
) -> Job:
    deadline = None if timeout is None else time.monotonic() + timeout
    while not (job := get_job(job_id, settings)).state.terminal:
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} is still {job.state.value} after {timeout} s")
        time.sleep(poll)
    return job


def follow_log(
    job_id: str, follow: bool = False, settings: Settings | None = None
) -> Iterator[str]:
    """The job's log; with ``follow``, the new part of it every few seconds until it ends."""
    settings = settings or get_settings()
    seen = 0
    while True:
        ended = get_job(job_id, settings).state.terminal
        text = call(settings, "GET", f"api/jobs/{job_id}/log").text
        if len(text) > seen:
            yield text[seen:]
            seen = len(text)
        if not follow or ended:
            return
        time.sleep(2.0)


def get_results(job_id: str, destination: str | Path, settings: Settings | None = None) -> Path:
    destination = Path(destination).expanduser()
    if destination.exists() and any(destination.iterdir()):
        raise JobError(f"{destination} is not empty: results are never copied over other files")
    archive = call(settings or get_settings(), "GET", f"api/jobs/{job_id}/results").content
    destination.mkdir(parents=True, exist_ok=True)
    zipfile.ZipFile(io.BytesIO(archive)).extractall(destination)
    return destination
