"""A batch job's record: what ran, where, and how it ended."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, Field

BACKENDS = ("local", "gateway", "slurm", "pbs")
Backend = Literal["local", "gateway", "slurm", "pbs"]


class JobError(ValueError):
    """A job request that cannot be honoured; the message says what to do."""


class JobNotFound(JobError):
    """No job of this user has that id."""


class ParameterError(JobError):
    """A parameter the notebook or script does not declare, or a value of the wrong type."""


class State(str, Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (State.succeeded, State.failed, State.cancelled)


# Which state may follow which: a terminal state is final, so a late writer (a runner that
# finishes while its job is being cancelled) can never overwrite how the job ended.
TRANSITIONS = {
    State.queued: {State.running, State.failed, State.cancelled},
    State.running: {State.succeeded, State.failed, State.cancelled},
    State.succeeded: set(),
    State.failed: set(),
    State.cancelled: set(),
}


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Job(BaseModel):
    """One run of a notebook or script; stored as ``job.json`` in the job's directory."""

    id: str
    user: str
    name: str = Field(description="File name of the notebook or script that runs.")
    kind: Literal["notebook", "script"]
    source: str = Field(description="Where the notebook or script was submitted from.")
    rerun_of: str | None = Field(default=None, description="The job this one reruns.")
    parameters: dict[str, Any] = Field(default_factory=dict)
    backend: Backend
    workers: int | None = Field(
        default=None, description="Workers the job's cluster() starts when it gives no number."
    )
    state: State = State.queued
    reason: str | None = Field(default=None, description="Why the job failed or was cancelled.")
    created: str = Field(default_factory=utcnow)
    started: str | None = None
    finished: str | None = None
    native_id: str | None = Field(
        default=None, description="The batch system's job id, or the runner's pid (local)."
    )
    process_start: str | None = Field(
        default=None, description="Start time of the local runner process (guards pid reuse)."
    )
    host: str | None = Field(default=None, description="Where the job runs.")
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="EOSC_PANGEO_* values the job runs with (no secrets: those travel in its "
        "environment only).",
    )
