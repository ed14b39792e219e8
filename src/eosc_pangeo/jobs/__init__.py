"""Batch jobs: run a parameterised notebook or script headless, locally, on the platform's
Dask Gateway or as a Slurm/PBS job, and collect its results with their provenance."""

from .api import cancel, get_job, get_results, list_jobs, submit, wait
from .model import Job, JobError, JobNotFound, ParameterError, State
from .parameters import parameters
from .store import JobStore

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
    "list_jobs",
    "parameters",
    "submit",
    "wait",
]
