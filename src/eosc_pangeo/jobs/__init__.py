"""Batch jobs: run a parameterised notebook or script headless, locally, on the platform's
Dask Gateway or as a Slurm/PBS job, and collect its results with their provenance."""

from .api import cancel, get_job, get_results, list_jobs, rerun, submit, wait
from .model import Job, JobError, JobNotFound, ParameterError, State
from .parameters import parameters
from .store import JobStore


def jobs_backend(settings=None):
    """The module that holds the user's jobs: the hub's jobs service if configured
    (``EOSC_PANGEO_JOBS_URL``), else the local store; both offer submit, rerun, list_jobs, get_job,
    wait, cancel, follow_log and get_results."""
    from ..config import get_settings

    if (settings or get_settings()).jobs_url:
        from . import client

        return client
    from . import api

    return api


__all__ = [
    "Job",
    "JobError",
    "JobNotFound",
    "JobStore",
    "ParameterError",
    "State",
    "cancel",
    "get_job",
    "get_results",
    "jobs_backend",
    "list_jobs",
    "parameters",
    "rerun",
    "submit",
    "wait",
]
