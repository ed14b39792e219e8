"""The platform on one machine, as processes: behind ``make up``, the tests and the benchmarks.

One state directory holds everything that must survive a restart: ``platform.json`` (ports,
paths, the admin service's token), the hub's database and cookie secret, the user store, the
admin's password file and the logs. It is private (mode 700). What users' processes must reach
(the lake, the clusters' working directories) lives in a *shared* directory: ``shared/`` inside
the state directory when others can traverse it, otherwise ``/srv/eosc-pangeo/<digest>``.

:func:`prepare` writes the configuration (the hub's is built by the same functions a Helm
chart calls: :mod:`.hub`, :mod:`.auth`, :mod:`.gateway`), :func:`start` runs ``jupyterhub``,
which starts its proxy, Dask Gateway, the catalogue and the idle culler as managed services,
:func:`stop` ends them all, :func:`status` says what runs. :func:`run_local_hub` does all
three for a ``with`` block.
"""

from __future__ import annotations

import base64
import ctypes
import grp
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from .auth import UserStore, configure_passwords, new_password
from .catalog_service import SERVICE_NAME as CATALOG_SERVICE
from .environment import PROJECT_DIRECTORY, readable_by_others, user_environment
from .gateway import (
    PROXY_FENCE,
    SERVICE_NAME,
    gateway_config,
    stop_clusters_file,
    write_gateway_config,
)
from .loopback import LoopbackFence, free_ports

ADMIN_SERVICE = "eosc-admin"
#: Unix (and hub) group whose members may write the lake.
INGEST_GROUP = "ingest"
SHARED_ROOT = Path("/srv/eosc-pangeo")
PORT_NAMES = (
    "hub_api",
    "proxy_api",
    "gateway_api",
    "gateway_proxy",
    "scheduler",
    "catalog",
    "jobs",
    "data",
    "dashboards",
)

HUB_CONFIG = """\
# Written by eosc_pangeo.platform.local.prepare; rewritten at every start.
from eosc_pangeo.platform.local import PlatformState, configure_hub

configure_hub(c, PlatformState.load({state!r}))
"""


class PlatformError(RuntimeError):
    """The platform could not be started or reached; the message names the log to read."""


def port_is_free(port: int, ip: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        # As servers bind (connections of the previous run in TIME_WAIT do not count).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError:
            return False
    return True


def ensure_system_user(name: str, *, home: bool = False, groups: tuple[str, ...] = ()) -> None:
    """Create system user ``name`` if missing (the hub runs their server, the gateway their
    clusters, as it) and add it to the existing Unix groups among ``groups``."""
    if subprocess.run(["id", "-u", name], capture_output=True, check=False).returncode != 0:
        options = (
            ["--create-home", "--shell", "/bin/bash"]
            if home
            else ["--no-create-home", "--shell", "/usr/sbin/nologin"]
        )
        subprocess.run(["useradd", *options, name], check=True, capture_output=True)
    for group in groups:
        if _group_exists(group):
            subprocess.run(
                ["usermod", "--append", "--groups", group, name], check=True, capture_output=True
            )


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


@dataclass
class PlatformState:
    """What ``platform.json`` records: kept from one ``make up`` to the next."""

    state_directory: str
    shared_directory: str
    ip: str
    port: int
    ports: dict[str, int]
    admin_token: str
    admin_name: str
    lake: str
    environment: str
    notebooks: str | None = None
    default_limits: dict[str, Any] = field(default_factory=dict)
    group_limits: dict[str, dict[str, Any]] = field(default_factory=dict)
    cull_idle_seconds: int = 3600
    #: How often the hub checks that its managed services still run (and restarts them).
    service_poll_seconds: int = 10
    #: OpenID Connect login instead of passwords: arguments of :func:`.auth.configure_oidc`
    #: (``callback_url`` defaults to this hub's).
    oidc: dict[str, Any] | None = None
    #: Encrypts the hub's auth state (the provider's tokens, kept to refresh them).
    crypt_key: str = field(default_factory=lambda: secrets.token_hex(32))
    #: Encrypts the clusters' TLS credentials in the gateway's database (a Fernet key).
    gateway_key: str = field(
        default_factory=lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    )

    @classmethod
    def load(cls, state_directory: str | os.PathLike) -> PlatformState:
        path = Path(state_directory) / "platform.json"
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise PlatformError(
                f"{state_directory} holds no platform (no platform.json): run `eosc-pangeo up`"
            ) from None

    def save(self) -> None:
        path = Path(self.state_directory) / "platform.json"
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.ip in ("", "0.0.0.0") else self.ip
        return f"http://{host}:{self.port}"

    @property
    def state(self) -> Path:
        return Path(self.state_directory)

    @property
    def log(self) -> Path:
        return self.state / "jupyterhub.log"

    @property
    def users(self) -> UserStore:
        return UserStore(self.state / "users.json")

    @property
    def admin_password_file(self) -> Path:
        return self.state / "admin-password"

    @property
    def gateway_database(self) -> Path:
        """Dask Gateway's clusters, kept over a restart of the hub."""
        return self.state / "gateway.sqlite"

    @property
    def stop_clusters_flag(self) -> Path:
        """While it exists, a gateway that stops stops every cluster too (``make down``)."""
        return Path(stop_clusters_file(str(self.gateway_database)))

    @property
    def loopback_fence(self) -> LoopbackFence:
        """The loopback ports kept for root: the clusters' dashboards, the gateway's proxy."""
        return LoopbackFence(state_digest(self.state))

    @property
    def pid_file(self) -> Path:
        return self.state / "jupyterhub.pid"

    @property
    def catalog_url(self) -> str:
        return f"{self.url}/services/{CATALOG_SERVICE}/"

    @property
    def data_url(self) -> str:
        """The data service (Zarr over HTTP, OPeNDAP, EDR) as clients reach it."""
        return f"{self.url}/services/eosc-data"

    @property
    def jobs_directory(self) -> Path:
        """The job store: where users' jobs, which run as them, can reach their own folder."""
        return Path(self.shared_directory) / "jobs"

    @property
    def data_policy(self) -> Path:
        return self.state / "data-policy.yaml"

    @property
    def gateway_address(self) -> str:
        return f"{self.url}/services/{SERVICE_NAME}"

    @property
    def scheduler_address(self) -> str:
        return f"127.0.0.1:{self.ports['scheduler']}"


def load_oidc_settings(path: str | os.PathLike) -> dict[str, Any]:
    """OpenID Connect settings from a JSON file: the arguments of :func:`.auth.configure_oidc`."""
    import inspect

    from .auth import configure_oidc

    try:
        settings = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise PlatformError(
            f"{path}: not a readable JSON file of OIDC settings ({error})"
        ) from None
    known = set(inspect.signature(configure_oidc).parameters) - {"c"}
    required = {"issuer_url", "client_id", "client_secret"}
    if not isinstance(settings, dict) or set(settings) - known or required - set(settings):
        given = set(settings) if isinstance(settings, dict) else set()
        raise PlatformError(
            f"{path}: OIDC settings need {', '.join(sorted(required))} and may have "
            f"{', '.join(sorted(known - required))}; unknown: "
            f"{', '.join(sorted(given - known)) or '-'}, missing: "
            f"{', '.join(sorted(required - given)) or '-'}"
        )
    return settings


def state_digest(state_directory: Path) -> str:
    """Names the platform of ``state_directory`` among others on the machine."""
    return hashlib.sha256(str(state_directory.resolve()).encode()).hexdigest()[:12]


def shared_directory_for(state_directory: Path) -> Path:
    """Where users' processes find the lake and clusters' working directories."""
    if readable_by_others(state_directory):
        return state_directory / "shared"
    return SHARED_ROOT / state_digest(state_directory)


def prepare(
    state_directory: str | os.PathLike,
    *,
    ip: str = "127.0.0.1",
    port: int = 8000,
    admin_name: str = "admin",
    lake: str | None = None,
    default_limits: dict[str, Any] | None = None,
    group_limits: dict[str, dict[str, Any]] | None = None,
    cull_idle_seconds: int = 3600,
    service_poll_seconds: int | None = None,
    oidc: dict[str, Any] | None = None,
) -> PlatformState:
    """Create the platform's state (first run) or reuse it, and write its configuration.

    Ports recorded by an earlier run are kept unless another process took them; ``port=0``
    picks a free public port. The first run creates the admin account with a random password
    in ``<state>/admin-password`` (mode 600).
    """
    state = Path(state_directory).resolve()
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)
    platform_json = state / "platform.json"
    if platform_json.exists():
        platform = PlatformState.load(state)
        # A service added since the state was written gets a port; taken ones get new ones.
        busy = [
            name
            for name in PORT_NAMES
            if name not in platform.ports or not port_is_free(platform.ports[name])
        ]
        for name, new in zip(busy, free_ports(len(busy)), strict=True):
            platform.ports[name] = new
    else:
        shared = shared_directory_for(state)
        platform = PlatformState(
            state_directory=str(state),
            shared_directory=str(shared),
            ip=ip,
            port=port or free_ports(1)[0],
            ports=dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True)),
            admin_token=secrets.token_hex(32),
            admin_name=admin_name,
            lake=lake or str(shared / "lake"),
            environment="",
            notebooks=str(PROJECT_DIRECTORY / "notebooks") if PROJECT_DIRECTORY else None,
            default_limits=default_limits or {},
            group_limits=group_limits or {},
            cull_idle_seconds=cull_idle_seconds,
        )
    if service_poll_seconds is not None:
        platform.service_poll_seconds = service_poll_seconds
    if oidc is not None:
        platform.oidc = oidc
    # Re-checked at every start: the source (hence the users' environment) may have changed.
    platform.environment = user_environment()
    platform.save()
    shared = Path(platform.shared_directory)
    (shared / "clusters").mkdir(parents=True, exist_ok=True)
    for path in (shared, shared / "clusters"):
        path.chmod(0o755)
    if os.geteuid() == 0 and not _group_exists(INGEST_GROUP):
        subprocess.run(["groupadd", "--system", INGEST_GROUP], check=True, capture_output=True)
    if not platform.users.path.exists():
        password = new_password()
        add_account(platform, admin_name, password, admin=True)
        platform.admin_password_file.write_text(password + "\n")
        platform.admin_password_file.chmod(0o600)
    write_gateway_config(
        gateway_config(
            api_address=f"127.0.0.1:{platform.ports['gateway_api']}",
            proxy_address=f"127.0.0.1:{platform.ports['gateway_proxy']}",
            scheduler_address=platform.scheduler_address,
            state_directory=str(shared),
            default_limits=platform.default_limits,
            group_limits=platform.group_limits,
            environments=[platform.environment],
            backend="PlatformLocalBackend" if os.geteuid() == 0 else "SingleAccountLocalBackend",
            database=str(platform.gateway_database),
            database_key=platform.gateway_key,
            fence_label=platform.loopback_fence.label,
        ),
        str(state / "gateway.json"),
    )
    if not platform.data_policy.exists():
        # Nothing public until an admin says so; hub users read with their tokens.
        platform.data_policy.write_text(
            "# Access policy of the data service: see docs/remote-access.md\npublic: []\nhub: {}\n"
        )
    (state / "jupyterhub_config.py").write_text(HUB_CONFIG.format(state=str(state)))
    return platform


def ensure_demo_lake(platform: PlatformState, size: str = "small", progress=None) -> bool:
    """Build the demo lake and its catalogue if the platform's lake has no catalogue yet, and
    share it: readable by everyone, writable by the ``ingest`` group only. True if built."""
    from ..catalog import build_catalog
    from ..lake import build_demo_lake

    lake = Path(platform.lake)
    built = not (lake / "_catalog").exists()
    if built:
        build_demo_lake(str(lake), size, progress=progress)
        build_catalog(str(lake), progress=progress, data_url=platform.data_url)
    share_lake(lake)
    return built


def share_lake(lake: Path) -> None:
    """Lake permissions: others read, the ``ingest`` group (as root) writes; new entries keep
    the group (setgid directories)."""
    group = grp.getgrnam(INGEST_GROUP).gr_gid if os.geteuid() == 0 else -1
    for root, _, files in os.walk(lake):
        os.chown(root, -1, group)
        os.chmod(root, 0o2775 if group != -1 else 0o755)
        for name in files:
            path = os.path.join(root, name)
            os.chown(path, -1, group)
            os.chmod(path, 0o664 if group != -1 else 0o644)


def add_account(
    platform: PlatformState,
    name: str,
    password: str,
    *,
    admin: bool = False,
    groups: tuple[str, ...] = (),
) -> None:
    """Add an account to the platform's store and, as root, its Unix account with a home."""
    platform.users.add(name, password, admin=admin, groups=groups)
    if os.geteuid() == 0:
        ensure_system_user(name, home=True, groups=groups)


def remove_account(platform: PlatformState, name: str) -> None:
    """Close account ``name``; if the hub runs, its hub user (and running server) goes too."""
    platform.users.remove(name)
    if running_pid(platform) is not None:
        try:
            hub_of(platform).api("DELETE", f"/users/{name}")
        except requests.HTTPError as error:
            if error.response.status_code != 404:  # never logged in: no hub user
                raise


def with_unix_account(hook):
    """A ``pre_spawn_hook`` that first creates the user's Unix account (with a home) if
    missing, then runs ``hook``: for users who log in through an OpenID provider."""

    def make_account(spawner) -> None:
        ensure_system_user(spawner.user.name, home=True)
        if hook:
            hook(spawner)

    return make_account


def configure_hub(c, platform: PlatformState) -> None:
    """The hub's whole configuration for ``platform`` (what ``jupyterhub_config.py`` runs)."""
    from .forkserver import fork_server
    from .hub import (
        add_catalog,
        add_dask_gateway,
        add_data_service,
        add_idle_culler,
        add_jobs_service,
        local_hub,
        notebook_environment,
        poll_services,
        user_servers,
    )

    state = platform.state
    local_hub(
        c,
        ip=platform.ip,
        port=platform.port,
        hub_port=platform.ports["hub_api"],
        proxy_api_port=platform.ports["proxy_api"],
        state_directory=str(state),
        user_environment=platform.environment,
        homes_directory=os.path.join(platform.shared_directory, "homes"),
    )
    if platform.oidc:
        from .auth import configure_oidc

        configure_oidc(c, **{"callback_url": f"{platform.url}/hub/oauth_callback", **platform.oidc})
        c.CryptKeeper.keys = [platform.crypt_key]
    else:
        configure_passwords(c, users_file=str(platform.users.path))
    add_dask_gateway(
        c,
        gateway_url=f"http://127.0.0.1:{platform.ports['gateway_proxy']}",
        public_gateway_url=platform.gateway_address,
        scheduler_address=platform.scheduler_address,
        command=[
            sys.executable,
            "-m",
            "eosc_pangeo.platform.gateway",
            "-f",
            str(state / "gateway.json"),
        ],
        notebook_image=platform.environment,
        front_url=f"http://127.0.0.1:{platform.ports['dashboards']}",
        front_command=[
            sys.executable,
            "-m",
            "eosc_pangeo.platform.dashboards",
            "--port",
            str(platform.ports["dashboards"]),
            "--upstream",
            f"http://127.0.0.1:{platform.ports['gateway_proxy']}",
        ],
    )
    add_catalog(
        c,
        url=f"http://127.0.0.1:{platform.ports['catalog']}",
        command=[
            sys.executable,
            "-m",
            "eosc_pangeo.platform.catalog_service",
            "--lake",
            platform.lake,
            "--port",
            str(platform.ports["catalog"]),
        ],
    )
    add_data_service(
        c,
        url=f"http://127.0.0.1:{platform.ports['data']}",
        command=[
            sys.executable,
            "-m",
            "eosc_pangeo",
            "serve-data",
            "--lake",
            platform.lake,
            "--port",
            str(platform.ports["data"]),
            "--prefix",
            "/services/eosc-data",
            "--policy",
            str(platform.data_policy),
            # One process per core, up to 4: requests decode and encode in Python.
            "--workers",
            str(min(os.cpu_count() or 1, 4)),
        ],
    )
    add_jobs_service(
        c,
        url=f"http://127.0.0.1:{platform.ports['jobs']}",
        public_url=f"{platform.url}/services/jobs",
        command=[
            sys.executable,
            "-m",
            "eosc_pangeo.jobs.service",
            "--port",
            str(platform.ports["jobs"]),
            "--jobs-dir",
            str(platform.jobs_directory),
            "--python",
            os.path.join(platform.environment, "bin", "python"),
        ],
        user_environment=platform.environment,
        # Jobs submitted in the hub read its lake and start their clusters on its gateway.
        environment={
            "EOSC_PANGEO_LAKE": platform.lake,
            **notebook_environment(
                platform.gateway_address, platform.scheduler_address, platform.environment
            ),
        },
    )
    add_idle_culler(c, timeout=platform.cull_idle_seconds)
    poll_services(platform.service_poll_seconds)
    user_servers(
        c, lake=platform.lake, catalog_url=platform.catalog_url, notebooks=platform.notebooks
    )
    # The fork server imports JupyterLab as the hub starts: the first login need not wait.
    fork_server(c.Spawner.cmd)
    if platform.oidc and os.geteuid() == 0:
        # Users come from the provider: their Unix account is made at their first start.
        c.Spawner.pre_spawn_hook = with_unix_account(c.Spawner.pre_spawn_hook)
    # A service with the admin token: the CLI and tests manage users, tokens and servers with it.
    c.JupyterHub.services.append({"name": ADMIN_SERVICE, "api_token": platform.admin_token})
    c.JupyterHub.load_roles.append(
        {
            "name": ADMIN_SERVICE,
            "scopes": [
                "admin:users",
                "admin:servers",
                "admin:groups",
                "tokens",
                "admin:server_state",
                "admin:auth_state",
                "read:services",
            ],
            "services": [ADMIN_SERVICE],
        }
    )


@dataclass
class LocalHub:
    """A running platform, and an admin client of the hub's API."""

    url: str
    scheduler_address: str
    admin_token: str
    log: Path
    platform: PlatformState | None = None

    @property
    def gateway_address(self) -> str:
        return f"{self.url}/services/{SERVICE_NAME}"

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the hub's REST API (``path`` below ``/hub/api``) as the admin service."""
        response = requests.request(
            method,
            f"{self.url}/hub/api{path}",
            timeout=30,
            headers={"Authorization": f"token {self.admin_token}"},
            **kwargs,
        )
        response.raise_for_status()
        return response

    def add_user(self, name: str, groups: tuple[str, ...] = ()) -> str:
        """Create hub user ``name`` (and its groups) and return a new API token of that user."""
        self.api("POST", "/users", json={"usernames": [name]})
        for group in groups:
            self.api("POST", "/groups", json={"groups": [group]})
            self.api("POST", f"/groups/{group}/users", json={"users": [name]})
        return self.api("POST", f"/users/{name}/tokens", json={"note": "local"}).json()["token"]


def hub_of(platform: PlatformState) -> LocalHub:
    return LocalHub(
        platform.url, platform.scheduler_address, platform.admin_token, platform.log, platform
    )


# Looked up once in the parent: the child between fork and exec must not load libraries.
PRCTL = ctypes.CDLL(None, use_errno=True).prctl
PR_SET_PDEATHSIG = 1


def stop_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies (Linux), so that a killed
    test run leaves no hub behind; the hub then stops its proxy and services (Dask clusters
    then stop at their idle timeout)."""
    PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


def _log_tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


def wait_for_http(
    url: str, timeout: float, process: subprocess.Popen | None, log: Path, what: str
) -> None:
    """Wait until ``url`` answers 200; fail early, naming ``log`` and its end, if ``process``
    exits or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise PlatformError(
                f"jupyterhub exited ({process.returncode}) before {what} "
                f"answered; from {log}:\n{_log_tail(log)}"
            )
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # not up yet, or (a loaded machine) slow to answer its first request
        time.sleep(0.2)
    raise PlatformError(
        f"{what} ({url}) did not answer within {timeout:g} s; from {log}:\n{_log_tail(log)}"
    )


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs. An exited child of ours (an attached hub) is reaped
    first: unreaped, it is a zombie, which answers signal 0 as if it ran."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: its parent reaps it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def running_pid(platform: PlatformState) -> int | None:
    """The hub's process id if it runs, else None."""
    try:
        pid = int(platform.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def start(
    platform: PlatformState, *, attached: bool = False, timeout: float = 90.0
) -> subprocess.Popen:
    """Start the hub (and through it every service) and wait until all of them answer.

    ``attached``: the hub stops when this process dies (tests); otherwise it runs on until
    :func:`stop` (``make up``).
    """
    if running_pid(platform) is not None:
        raise PlatformError(
            f"the platform of {platform.state} already runs at {platform.url} "
            "(`eosc-pangeo down` stops it)"
        )
    if not port_is_free(platform.port, platform.ip or "0.0.0.0"):
        raise PlatformError(
            f"port {platform.port} is taken: stop what uses it, or start with "
            "another --port on a new --state directory"
        )
    platform.stop_clusters_flag.unlink(missing_ok=True)
    with open(platform.log, "a") as log_file:
        hub = subprocess.Popen(
            [
                os.path.join(os.path.dirname(sys.executable), "jupyterhub"),
                "-f",
                str(platform.state / "jupyterhub_config.py"),
            ],
            cwd=platform.state,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=stop_with_parent if attached else None,  # noqa: PLW1509
        )
    try:
        wait_for_http(f"{platform.url}/hub/api/", timeout, hub, platform.log, "the hub")
        wait_for_http(
            f"{platform.gateway_address}/api/health", timeout, hub, platform.log, "Dask Gateway"
        )
        wait_for_http(f"{platform.catalog_url}_health", timeout, hub, platform.log, "the catalogue")
        wait_for_http(
            f"{platform.url}/services/jobs/api/health",
            timeout,
            hub,
            platform.log,
            "the jobs service",
        )
        wait_for_http(
            f"{platform.data_url}/openapi.json", timeout, hub, platform.log, "the data service"
        )
    except PlatformError:
        _terminate(hub.pid)
        raise
    return hub


#: How long a hub may take to stop. It stops its managed services one after another, giving
#: each up to 15 s (SIGINT, then SIGTERM after 10 s, SIGKILL after 5 more); killed sooner, it
#: leaves the services it had not reached yet running, without a hub.
HUB_STOP_SECONDS = 120.0


def _terminate(pid: int, timeout: float = HUB_STOP_SECONDS) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.2)
    logging.getLogger(__name__).warning(
        "the hub (pid %d) did not stop within %g s of SIGTERM: killed", pid, timeout
    )
    os.killpg(pid, signal.SIGKILL)
    while _alive(pid):
        time.sleep(0.1)


def stop_servers(hub: LocalHub) -> list[str]:
    """Stop every user's server (their clusters stop with them); the names stopped."""
    stopped = []
    for user in hub.api("GET", "/users").json():
        for server_name, server in (user.get("servers") or {}).items():
            if server.get("ready") or server.get("pending"):
                path = (
                    f"/users/{user['name']}/servers/{server_name}"
                    if server_name
                    else f"/users/{user['name']}/server"
                )
                hub.api("DELETE", path, json={"remove": False})
                stopped.append(user["name"])
    return stopped


def stop(platform: PlatformState) -> bool:
    """Stop the users' servers, then the hub with its proxy and services, and the gateway with
    every Dask cluster, and open the loopback ports kept for them; False if not running."""
    pid = running_pid(platform)
    if pid is not None:
        try:
            stop_servers(hub_of(platform))
        except requests.RequestException:
            pass  # a hub that does not answer is stopped all the same
        platform.stop_clusters_flag.touch()
        _terminate(pid)
    # Also after a crash: a gateway killed outright has not opened its ports.
    platform.loopback_fence.sweep()
    return pid is not None


def stop_hub_only(platform: PlatformState) -> bool:
    """Stop the hub (its proxy and services too) but leave users' servers and their Dask
    clusters running: the next :func:`start` finds them again (an upgrade or a configuration
    change)."""
    pid = running_pid(platform)
    if pid is None:
        return False
    _terminate(pid)
    return True


def status(platform: PlatformState) -> dict[str, Any]:
    """What runs and where: the hub, each service, the servers."""
    pid = running_pid(platform)
    report: dict[str, Any] = {
        "url": platform.url,
        "state": platform.state_directory,
        "lake": platform.lake,
        "log": str(platform.log),
        "hub": {"running": pid is not None, "pid": pid},
    }
    if pid is None:
        return report
    hub = hub_of(platform)
    services = {}
    for name, url in (
        (SERVICE_NAME, f"{platform.gateway_address}/api/health"),
        (CATALOG_SERVICE, f"{platform.catalog_url}_health"),
    ):
        try:
            services[name] = requests.get(url, timeout=5).status_code == 200
        except requests.RequestException:
            services[name] = False
    report["services"] = services
    report["dashboards"] = dashboards_exposure(platform)
    try:
        users = hub.api("GET", "/users").json()
        report["servers"] = sorted(u["name"] for u in users if u.get("servers"))
    except requests.RequestException as error:
        report["servers"] = f"hub API did not answer: {error}"
    return report


def dashboards_exposure(platform: PlatformState) -> str:
    """Who may open the Dask dashboards of a running platform on loopback, and why."""
    fence = platform.loopback_fence
    reason = fence.unavailable()
    if reason is None and PROXY_FENCE not in fence.kept():
        reason = f"the gateway could not fence them: see {platform.log}"
    if reason:
        return f"open to every local account on loopback ({reason})"
    return "for root only on loopback (users reach their own through the hub)"


@contextmanager
def run_local_hub(
    state_directory: Path,
    *,
    default_limits: dict[str, Any] | None = None,
    group_limits: dict[str, dict[str, Any]] | None = None,
    start_timeout: float = 90.0,
) -> Iterator[LocalHub]:
    """Run the platform on loopback (free ports) until the ``with`` block ends.

    Parameters
    ----------
    state_directory : Path
        New directory for the platform's state (see :func:`prepare`); an empty lake is served.
        The shared directory made for it is removed at the end.
    default_limits, group_limits : dict, optional
        Fair-use limits, see :class:`eosc_pangeo.platform.gateway.FairUsePolicy`.
    start_timeout : float
        Seconds to wait for each service to answer.
    """
    platform = prepare(
        state_directory, port=0, default_limits=default_limits, group_limits=group_limits
    )
    Path(platform.lake).mkdir(parents=True, exist_ok=True)
    hub = start(platform, attached=True, timeout=start_timeout)
    try:
        yield hub_of(platform)
    finally:
        try:
            stop_servers(hub_of(platform))
        except requests.RequestException:
            pass
        _terminate(hub.pid)
        platform.loopback_fence.sweep()
        shutil.rmtree(platform.shared_directory, ignore_errors=True)
