"""The fork server that starts single-user servers: a real one, in the project's environment,
serving requests the way the hub's spawner sends them. (That a user's whole server is forked
from it is tested with the platform, in test_platform.py.)"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from eosc_pangeo.platform.forkserver import ForkServer

PYTHON = str(Path(sys.prefix) / "bin" / "python")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="drops to other accounts: needs root")


@pytest.fixture
def server():
    server = ForkServer(PYTHON, {"PATH": os.environ["PATH"]})
    yield server
    server.channel.close()
    server.process.wait(timeout=60)


def shell(command: str, **env: str) -> dict:
    """A request the fork server's imports cannot serve (another server application is asked
    for), so that its child executes ``command`` as ``Popen`` would."""
    return {
        "argv": ["/bin/sh", "-c", command],
        "env": {"JUPYTERHUB_SINGLEUSER_APP": "another.App", "PATH": "/usr/bin:/bin", **env},
        "user": None,
        "home": "/",
    }


def gone(pid: int, timeout: float = 30) -> bool:
    """Whether process ``pid`` is gone (reaped, not a zombie) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_a_child_runs_as_the_user_with_the_environment_given_and_no_group_of_root(server):
    shared = Path(tempfile.mkdtemp())  # pytest's own folders are root's alone
    shared.chmod(0o777)
    out = shared / "out"
    request = shell('echo "$(id -u) $(id -G) $GREETING" > "$OUT"', GREETING="hi", OUT=str(out))
    request["user"] = "nobody"
    pid = asyncio.run(server.fork(request))
    assert gone(pid)
    nobody = pwd.getpwnam("nobody")
    try:
        assert out.read_text().split() == [str(nobody.pw_uid), str(nobody.pw_gid), "hi"]
    finally:
        shutil.rmtree(shared)


def test_an_exited_child_is_reaped_at_once_so_the_hub_sees_it_gone(server):
    pid = asyncio.run(server.fork(shell("exit 3")))
    assert gone(pid)


def test_the_fork_server_exits_with_the_hub_and_leaves_its_servers_running(server):
    async def fork_a_sleeper() -> int:
        return await server.fork(shell("sleep 120"))

    pid = asyncio.run(fork_a_sleeper())
    server.channel.close()
    server.process.wait(timeout=60)
    try:
        os.kill(pid, 0)  # still running
    finally:
        os.kill(pid, 9)


def test_the_fork_server_imported_jupyterlab_before_its_first_child(server):
    asyncio.run(server.fork(shell("true")))
    assert {"jupyterhub.singleuser", "jupyterlab.labapp", "dask_labextension"} <= set(
        server.preloaded
    )
