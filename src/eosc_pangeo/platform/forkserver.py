"""Single-user servers forked from a process that has already imported JupyterLab.

A ``jupyterhub-singleuser`` with JupyterLab and the platform's server extensions spends about
2 s of CPU importing modules before it answers (2.2 to 2.6 s a start on the 2-core machine,
2026-12-06); forked from a process that holds those modules, the same server answers after
0.14 to 0.21 s of CPU. When ten users log in at once on two cores, the imports are most of
their wait. So the hub starts one *fork server* per users' environment: a process of that
environment's Python, run as the hub's account, that imports the server's modules once and
then forks a server for each spawn. The child drops to the user's account as
``LocalProcessSpawner`` does before it executes the server (the same function), takes the
environment the spawner computed, and runs ``jupyterhub-singleuser``'s ``main``. The fork
server never runs user code and holds nothing of any user.

It is the "forkserver" of :mod:`multiprocessing` (and gunicorn's preloading) applied to a
spawner; no JupyterHub spawner does it, hence this module. A request it cannot serve from what
it imported (another program, an environment variable that its imports read) is served by the
child executing the command instead, exactly as ``Popen`` would; a fork server that cannot
start makes the spawner fall back to ``Popen``.

The hub and the fork server speak JSON lines over a socket pair that only they hold; the fork
server exits when the hub's end closes. Servers it forked keep running (they are in sessions
of their own), and a restarted hub finds them by their pids as it finds ``Popen``'s.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import traceback
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner
from jupyterhub.utils import random_port

#: What every single-user server imports before it answers, beyond the server extensions'
#: packages (found in the environment's Jupyter configuration) and jupyter-server's own
#: handlers: the modules that JupyterLab and the extensions import only once they load
#: (listed from ``sys.modules`` of a forked server, 2026-12-06).
PRELOAD = (
    "jupyterhub.singleuser",
    "jupyter_server.serverapp",
    "jupyterlab.labapp",
    "jupyterlab.handlers.announcements",
    "dask_labextension.clusterhandler",
    "dask_labextension.dashboardhandler",
    "jupytext.reraise",
    "IPython",
    "httpcore",
)

#: Environment variables read when ``jupyterhub.singleuser`` is imported (they choose the
#: server application): a request that sets them otherwise than the fork server had them is
#: executed, not forked.
READ_AT_IMPORT = ("JUPYTERHUB_SINGLEUSER_EXTENSION", "JUPYTERHUB_SINGLEUSER_APP")


class ForkServerError(RuntimeError):
    """The fork server could not start a server; the spawner starts it with ``Popen``."""


# --- the fork server's side (runs in the users' environment) ----------------------------------


def _enabled_server_extensions() -> list[str]:
    from jupyter_core.paths import jupyter_config_path
    from jupyter_server.extension.config import ExtensionConfigManager

    manager = ExtensionConfigManager(read_config_path=jupyter_config_path())
    return [name for name, on in manager.get_jpserver_extensions().items() if on]


def _preload() -> list[str]:
    """Import what a server imports; return the names imported (a missing one is skipped)."""
    from jupyter_server.serverapp import JUPYTER_SERVICE_HANDLERS

    handlers = [name for names in JUPYTER_SERVICE_HANDLERS.values() for name in names or ()]
    loaded = []
    for name in (*PRELOAD, *handlers, *_enabled_server_extensions()):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001  (an extension that fails is the server's to report)
            continue
        loaded.append(name)
    return loaded


def _reap(*_: Any) -> None:
    """Collect every exited child: an unreaped one would still answer the hub's signal 0."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _send(channel: socket.socket, message: dict) -> None:
    channel.sendall(json.dumps(message).encode() + b"\n")


def serve(channel: socket.socket) -> None:
    """Preload, then fork a server for each request read from ``channel`` until it closes."""
    preloaded = _preload()
    if threading.active_count() > 1:
        # Forking a process with threads copies their locks in whatever state they were.
        _send(channel, {"error": "a preloaded module started a thread: forking is unsafe"})
        return
    import_time_environment = {name: os.environ.get(name) for name in READ_AT_IMPORT}
    signal.signal(signal.SIGCHLD, _reap)
    _send(channel, {"ready": True, "preloaded": preloaded})
    for line in channel.makefile("rb"):
        request = json.loads(line)
        same_imports = all(
            request["env"].get(name) == value for name, value in import_time_environment.items()
        )
        pid = os.fork()
        if pid == 0:
            _become_server(request, channel, execute=not same_imports)
        _send(channel, {"pid": pid})


def _become_server(request: dict, channel: socket.socket, *, execute: bool) -> None:
    """In the forked child: become the user's server; never returns."""
    code = 1
    try:
        channel.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        if request["user"]:
            from jupyterhub.spawner import set_user_setuid

            set_user_setuid(request["user"])()
        else:
            os.makedirs(request["home"], 0o755, exist_ok=True)
            os.chdir(request["home"])
        if execute:
            os.execve(request["argv"][0], request["argv"], request["env"])
        os.environ.clear()
        os.environ.update(request["env"])
        _forget_the_fork_servers_state()
        sys.argv = list(request["argv"])
        from jupyterhub.singleuser import main

        code = main() or 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    except BaseException:  # noqa: BLE001  (reported on the hub's log, then the child exits)
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _forget_the_fork_servers_state() -> None:
    """What the preloaded modules took from the fork server's process at import, taken anew
    from the user's: dask's configuration (read from the environment and the home
    directory) and NumPy's global random state (else every server would draw the same
    numbers; Python's own ``random`` is reseeded by the fork itself)."""
    if "dask.config" in sys.modules:
        sys.modules["dask.config"].refresh()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()


def main(argv: list[str] | None = None) -> None:
    """``python -m eosc_pangeo.platform.forkserver FD``: serve on the inherited socket FD,
    then exit at once."""
    [fd] = argv if argv is not None else sys.argv[1:]
    code = 0
    try:
        serve(socket.socket(fileno=int(fd)))
    except BaseException:  # noqa: BLE001  (reported on the hub's log)
        traceback.print_exc()
        code = 1
    finally:
        # Without the interpreter's exit: the preloaded modules' exit handlers (found waiting
        # on an event loop of theirs after a hub restart) have nothing of the fork server's
        # to clean up, and must not keep it running once the hub is gone.
        sys.stderr.flush()
        os._exit(code)


# --- the hub's side ---------------------------------------------------------------------------


class ForkServer:
    """One fork server of the hub, for the users' environment of ``python``."""

    def __init__(self, python: str, environment: dict[str, str]) -> None:
        hub_end, server_end = socket.socketpair()
        self.process = subprocess.Popen(
            # -s: not root's own site-packages; -P: not the hub's working directory on the path.
            [python, "-s", "-P", "-m", __name__, str(server_end.fileno())],
            pass_fds=[server_end.fileno()],
            stdin=subprocess.DEVNULL,
            env=environment,
        )
        server_end.close()
        self.channel = hub_end
        self.channel.setblocking(False)
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock: asyncio.Lock | None = None
        self.preloaded: list[str] | None = None
        #: Why it failed once: the hub then starts every server with ``Popen``.
        self.broken: str | None = None

    async def _exchange(self, message: dict | None, timeout: float) -> dict:
        if self._streams is None:
            self._streams = await asyncio.open_unix_connection(sock=self.channel)
        reader, writer = self._streams
        if message is not None:
            writer.write(json.dumps(message).encode() + b"\n")
            await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            raise ForkServerError(f"the fork server exited (code {self.process.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise ForkServerError(answer["error"])
        return answer

    async def fork(self, request: dict, timeout: float = 60) -> int:
        """The pid of a new server for ``request`` (argv, env, user, home)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.preloaded is None:
                self.preloaded = (await self._exchange(None, timeout=120))["preloaded"]
            return (await self._exchange(request, timeout))["pid"]


_fork_servers: dict[str, ForkServer] = {}


def _environment_python(cmd: list[str]) -> str | None:
    """The Python of the environment whose ``jupyterhub-singleuser`` ``cmd`` runs, if any."""
    if len(cmd) != 1 or os.path.basename(cmd[0]) != "jupyterhub-singleuser":
        return None
    python = os.path.join(os.path.dirname(cmd[0]), "python")
    return python if os.access(python, os.X_OK) else None


def fork_server(cmd: list[str]) -> ForkServer | None:
    """The hub's fork server for the environment of ``cmd``, started if need be (its imports
    then go on in the background); None if ``cmd`` is not such an environment's server or its
    fork server failed."""
    python = _environment_python(cmd)
    if python is None:
        return None
    server = _fork_servers.get(python)
    if server is not None and server.broken:
        return None
    if server is None:
        # What LocalProcessSpawner passes on from the hub's environment (PATH, LANG, ...).
        keep = LocalProcessSpawner._env_keep_default(None)
        server = _fork_servers[python] = ForkServer(
            python, {name: os.environ[name] for name in keep if name in os.environ}
        )
    return server


class ForkedServers:
    """Starts a spawner's server from the fork server of its environment, if it can.

    Mixed into :class:`~jupyterhub.spawner.LocalProcessSpawner` and its simple variant: the
    server runs the same command with the same environment and account, and is polled,
    signalled and stopped by its pid as theirs are.
    """

    async def start(self):
        server = None if self.shell_cmd else fork_server(self.cmd)
        if server is None:
            return await super().start()
        if self.port == 0:
            self.port = random_port()
        request = {
            "argv": [*self.cmd, *self.get_args()],
            "env": self.get_env(),
            "user": self.user.name if self._runs_as_the_user else None,
            "home": getattr(self, "home_dir", None),
        }
        try:
            self.pid = await server.fork(request)
        except (ForkServerError, OSError, TimeoutError) as error:
            server.broken = str(error) or type(error).__name__
            self.log.warning(
                "The fork server failed (%s): servers are started with Popen", server.broken
            )
            return await super().start()
        self.log.info("Forked the server of %s: pid %d", self.user.name, self.pid)
        return (self.ip or "127.0.0.1", self.port)


class ForkingLocalProcessSpawner(ForkedServers, LocalProcessSpawner):
    """``LocalProcessSpawner`` whose servers are forked from their environment's fork server."""

    _runs_as_the_user = True


class ForkingSimpleLocalProcessSpawner(ForkedServers, SimpleLocalProcessSpawner):
    """``SimpleLocalProcessSpawner`` whose servers are forked from their environment's fork
    server (every server runs as the hub's account, in its own home directory)."""

    _runs_as_the_user = False


if __name__ == "__main__":
    main()
