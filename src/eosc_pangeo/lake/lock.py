"""One writer per collection: a lock object in the collection that only one ingest can create.

A shared lake has many writers (notebook users, scheduled ingests). Two ingests into the same
collection would each write a new version from the same old one, and the second to commit
would drop the first's files, or delete them as leftovers while it is still writing. So an
ingest first creates ``<collection>/_ingest.lock`` with an exclusive create: ``O_EXCL`` on file
systems, a conditional PUT (``If-None-Match: *``) on object stores. The holder rewrites the lock at
most every :data:`RENEW_EVERY` seconds as it reports progress (every few seconds: each file
hashed or read, each block or month written), so a lock left by an ingest that was killed is
recognised as stale (its process is gone on this host, or it was not renewed for
:data:`STALE_AFTER` seconds) and taken over, and a live ingest elsewhere is not mistaken for a
dead one. Renewing from the ingest's own progress, not from a thread, keeps the process
single-threaded, so that its worker processes can be forked rather than spawned.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from datetime import UTC, datetime

from .errors import CollectionBusy
from .storage import Lake, Progress

LOCK = "_ingest.lock"
RENEW_EVERY = 30.0
STALE_AFTER = 600.0


class CollectionLock:
    """Hold the write lock of the collection at ``collection_path`` (a context manager).

    Parameters
    ----------
    lake
        The lake of the collection.
    collection_path
        The collection's folder; it need not exist yet (folders the lock creates on a file
        system are removed with it when they are left empty, as after a failed first ingest).
    name
        The lock file's name: a sync (:mod:`~eosc_pangeo.lake.sync`) holds its own lock over
        the ingests it runs, which take the ingest lock themselves.

    Raises
    ------
    CollectionBusy
        On entry, when a live ingest holds the lock; the message names it and the lock file.
    """

    def __init__(self, lake: Lake, collection_path: str, name: str = LOCK) -> None:
        self.lake = lake
        self.path = f"{collection_path}/{name}"
        self._created_folders: list[str] = []
        self._renewed = 0.0

    def __enter__(self) -> CollectionLock:
        if self.lake.is_local:
            self._created_folders = _missing_folders(os.path.dirname(self.path))
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if not self._create():
            holder = self._holder()
            if holder is not None and not _is_stale(holder):
                self._remove_created_folders()
                raise CollectionBusy(
                    f"{self.path}: another ingest writes this collection (user "
                    f"{holder.get('user')}, process {holder.get('pid')} on {holder.get('host')}, "
                    f"since {holder.get('started')}); run yours when it has finished. If no "
                    "ingest is running, delete this file."
                )
            # Stale: its holder died. Take it over (if another taker was faster, it is busy).
            self.lake.fs.rm(self.path)
            if not self._create():
                raise CollectionBusy(
                    f"{self.path}: another ingest took over a stale lock of this "
                    "collection just now; run yours when it has finished"
                )
        self._renewed = time.monotonic()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.lake.fs.exists(self.path):  # a failed first ingest removed the folder with it
            self.lake.fs.rm(self.path)
        self._remove_created_folders()

    def _create(self) -> bool:
        """Create the lock if it does not exist; whether this call created it."""
        self._started = _now()
        try:
            if self.lake.is_local:
                # fsspec's local pipe_file(mode="create") checks, then writes; O_EXCL is atomic.
                with open(self.path, "xb") as lock:
                    lock.write(self._content())
            else:
                self.lake.fs.pipe_file(self.path, self._content(), mode="create")
        except FileExistsError:
            return False
        return True

    def _content(self) -> bytes:
        return json.dumps(
            {
                "user": getpass.getuser(),
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started": self._started,
                "renewed": time.time(),
            }
        ).encode()

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.lake.fs.cat_file(self.path))
        except FileNotFoundError:
            return None
        except ValueError:  # a lock being written right now, or damaged: judge it by its age
            return {"renewed": self.lake.fs.modified(self.path).timestamp()}

    def renewing(self, progress: Progress) -> Progress:
        """``progress``, renewing the lock first when it is due."""

        def report(stage: str, done: int, total: int) -> None:
            if time.monotonic() - self._renewed >= RENEW_EVERY:
                try:
                    self.lake.fs.pipe_file(self.path, self._content())
                    self._renewed = time.monotonic()
                except OSError:  # a network hiccup: the next report tries again
                    pass
            progress(stage, done, total)

        return report

    def _remove_created_folders(self) -> None:
        for folder in reversed(self._created_folders):
            try:
                os.rmdir(folder)
            except OSError:  # not empty: something else lives there now
                return


def _missing_folders(folder: str) -> list[str]:
    """The folders ``os.makedirs(folder)`` would create, outermost first."""
    missing = []
    while folder and not os.path.exists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    return list(reversed(missing))


def _is_stale(holder: dict) -> bool:
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        return not _process_exists(holder["pid"])
    return time.time() - float(holder.get("renewed", 0)) > STALE_AFTER


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
