"""The Unix account a job runs as, when a root process (the hub's jobs service) submits it for a
user: the job's runner, kernel or script and everything they write are that user's, and the job
can change only what the user could.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from .model import JobError


@dataclass(frozen=True)
class Account:
    """A user's Unix account, and the Python environment their jobs run in.

    Parameters
    ----------
    name, uid, gid, groups, home
        The account as the system knows it (``groups``: every group it is in).
    python : str
        Interpreter of the users' environment (:func:`eosc_pangeo.platform.environment.
        user_environment`): the service's own may sit where the user cannot read.
    """

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str
    python: str

    @classmethod
    def of(cls, name: str, python: str) -> Account:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise JobError(
                f"user {name!r} has no Unix account on this machine, and jobs run as their "
                "user: create it (`eosc-pangeo users add`)"
            ) from None
        return cls(
            name,
            entry.pw_uid,
            entry.pw_gid,
            tuple(os.getgrouplist(name, entry.pw_gid)),
            entry.pw_dir,
            python,
        )

    def process_options(self) -> dict:
        """``subprocess.Popen`` arguments that start a process as this account."""
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}

    def environment(self, fallback_home: Path) -> dict[str, str]:
        """Who the process is, and the users' environment first on ``PATH``.

        An account without a home directory (a system account) gets ``fallback_home`` (the
        job's directory), so that Jupyter and IPython can keep their state somewhere.
        """
        home = self.home if os.path.isdir(self.home) else str(fallback_home)
        path = os.pathsep.join([os.path.dirname(self.python), "/usr/local/bin", "/usr/bin", "/bin"])
        return {"HOME": home, "USER": self.name, "LOGNAME": self.name, "PATH": path}

    def own(self, top: Path) -> None:
        """Give ``top`` and everything below it to this account."""
        os.chown(top, self.uid, self.gid)
        for root, directories, files in os.walk(top):
            for name in directories + files:
                os.chown(os.path.join(root, name), self.uid, self.gid, follow_symlinks=False)
