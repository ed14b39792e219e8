"""The job store: one directory per job, its record written atomically, one store per user.

Layout (the store is plain files, so it survives restarts of the hub, the CLI or the machine,
and a job on a batch node updates it over the shared file system)::

    <jobs_dir>/<user>/<job id>/
        job.json            the record (Job), replaced whole via a temporary file + rename
        input/<name>        the notebook or script exactly as submitted
        work/               the job's working directory: every file it writes is a result
        output.ipynb        the executed notebook (cells, outputs, tracebacks)
        logs/job.log        the runner's, kernel's or script's output
        provenance.json     inputs, parameters, software and lake versions
        dask/               dask configuration snapshot for batch jobs (site jobqueue settings)

Updates are read-modify-write under an exclusive ``flock`` of the job's lock file, so the runner
and a ``cancel`` never interleave; :data:`~eosc_pangeo.jobs.model.TRANSITIONS` decides which state
change is allowed.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from .accounts import Account
from .model import TRANSITIONS, Job, JobError, JobNotFound, State, utcnow

RECORD = "job.json"
LOCK = ".lock"
JOB_ID = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{6}$")


def new_job_id() -> str:
    """Sortable by submission time, unique without coordination: ``20261201T211500-3f2a9c``."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def give_to_folder_owner(fd: int, folder: Path) -> None:
    """As root (the jobs service acting for a user), make a new file of a job the job's user's,
    so that the job, which runs as that user, can go on updating it."""
    if os.geteuid() == 0:
        owner = folder.stat()
        os.fchown(fd, owner.st_uid, owner.st_gid)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: readers see the old or the new file, never a part."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        give_to_folder_owner(fd, path.parent)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class JobDirectory:
    """The files of one job (see the module docstring for the layout)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    record = property(lambda self: self.path / RECORD)
    input = property(lambda self: self.path / "input")
    work = property(lambda self: self.path / "work")
    logs = property(lambda self: self.path / "logs")
    log = property(lambda self: self.path / "logs" / "job.log")
    output_notebook = property(lambda self: self.path / "output.ipynb")
    provenance = property(lambda self: self.path / "provenance.json")
    dask_config = property(lambda self: self.path / "dask")

    def read(self) -> Job:
        return Job.model_validate_json(self.record.read_text())

    @contextmanager
    def locked(self) -> Iterator[None]:
        with open(self.path / LOCK, "a") as lock:
            give_to_folder_owner(lock.fileno(), self.path)
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def write(self, job: Job) -> None:
        atomic_write_text(self.record, job.model_dump_json(indent=1))

    def update(self, **changes) -> Job:
        """Change fields of the record; ``state`` only along an allowed transition.

        Returns the record as stored: when a state change is not allowed (the job already
        ended), the other changes are not applied either and the stored record is returned.
        """
        with self.locked():
            job = self.read()
            new_state = changes.get("state")
            if new_state is not None and new_state != job.state:
                if State(new_state) not in TRANSITIONS[job.state]:
                    return job
                if State(new_state).terminal:
                    changes.setdefault("finished", utcnow())
            job = job.model_copy(update=changes)
            self.write(job)
            return job


class JobStore:
    """The jobs of one user, under ``root/<user>``.

    Parameters
    ----------
    root : str or Path
        The store of all users (``Settings.jobs_dir``); on HPC a file system the batch nodes see.
    user : str, optional
        Whose jobs; default: the user running this process.
    account : Account, optional
        The user's Unix account, when a root process acts for them: their store and jobs are
        theirs (mode 700), below a ``root`` that others may cross but not list.
    """

    def __init__(self, root: str | Path, user: str | None = None, account: Account | None = None):
        self.user = user or getpass.getuser()
        if not self.user or "/" in self.user or self.user.startswith("."):
            raise JobError(f"{self.user!r} is not a user name a job store can hold")
        self.root = Path(root).expanduser() / self.user
        self.account = account

    def directory(self, job_id: str) -> JobDirectory:
        if not JOB_ID.match(job_id):
            raise JobNotFound(
                f"{job_id!r} is not a job id (they look like 20261201T211500-3f2a9c); "
                "`eosc-pangeo jobs list` shows yours"
            )
        directory = JobDirectory(self.root / job_id)
        if not directory.record.exists():
            raise JobNotFound(
                f"user {self.user} has no job {job_id}; `eosc-pangeo jobs list` shows yours"
            )
        return directory

    def create(self, job: Job) -> JobDirectory:
        """Make the job's directory with its record; the id must be new."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.account is not None:
            self.root.parent.chmod(0o711)
            os.chown(self.root, self.account.uid, self.account.gid)
        directory = JobDirectory(self.root / job.id)
        directory.path.mkdir(mode=0o700)  # fails if the id exists: never reuse a directory
        for sub in (directory.input, directory.work, directory.logs):
            sub.mkdir()
        directory.log.touch()
        if self.account is not None:
            self.account.own(directory.path)
        directory.write(job)
        return directory

    def get(self, job_id: str) -> Job:
        return self.directory(job_id).read()

    def list(self) -> list[Job]:
        """Every job of the user, newest first (ids sort by submission time)."""
        if not self.root.is_dir():
            return []
        jobs = []
        for path in sorted(self.root.iterdir(), reverse=True):
            if JOB_ID.match(path.name) and (path / RECORD).exists():
                jobs.append(JobDirectory(path).read())
        return jobs
