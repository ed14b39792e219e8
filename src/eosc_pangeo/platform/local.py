"""JupyterHub with Dask Gateway on one machine, as processes: for ``make up``, tests and benchmarks.

:func:`run_local_hub` writes the hub's and the gateway's configuration into a state directory
(built with :func:`~eosc_pangeo.platform.hub.local_hub`,
:func:`~eosc_pangeo.platform.hub.add_dask_gateway` and
:func:`~eosc_pangeo.platform.gateway.gateway_config`, as a Helm chart would), starts
``jupyterhub`` (which starts its proxy and the gateway as a managed service), and waits until
both answer.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .gateway import SERVICE_NAME, gateway_config, write_gateway_config
from .hub import notebook_environment

ADMIN_SERVICE = "eosc-admin"

HUB_CONFIG = """\
# Written by eosc_pangeo.platform.local.run_local_hub.
import ctypes
import json
from eosc_pangeo.platform.hub import add_dask_gateway, add_jobs_service, local_hub

params = json.loads({params!r})
local_hub(c, **params["hub"])
add_dask_gateway(c, **params["gateway"])
add_jobs_service(c, **params["jobs"])
# A service with the admin token, to manage users, groups, tokens and servers over the API.
c.JupyterHub.services.append({{"name": "{admin}", "api_token": params["admin_token"]}})
c.JupyterHub.load_roles.append({{
    "name": "{admin}",
    "scopes": ["admin:users", "admin:servers", "admin:groups", "tokens",
               "admin:server_state"],
    "services": ["{admin}"],
}})
"""


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on loopback now."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def ensure_system_user(name: str) -> None:
    """Create system user ``name`` if missing: the gateway runs a hub user's clusters as it."""
    if subprocess.run(["id", "-u", name], capture_output=True, check=False).returncode != 0:
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True
        )


@dataclass
class LocalHub:
    """A running hub with its gateway, and an admin client of the hub's API."""

    url: str
    scheduler_address: str
    admin_token: str
    log: Path

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


# Looked up once in the parent: the child between fork and exec must not load libraries.
PRCTL = ctypes.CDLL(None, use_errno=True).prctl
PR_SET_PDEATHSIG = 1


def stop_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies (Linux), so that a killed
    test run or runner leaves no hub behind; the hub then stops its proxy, gateway and clusters."""
    PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_for_http(url: str, timeout: float, process: subprocess.Popen, log: Path) -> None:
    """Wait until ``url`` answers 200, failing early (with the log's end) if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"jupyterhub exited ({process.returncode}):\n{log.read_text()[-3000:]}"
            )
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


@contextmanager
def run_local_hub(
    state_directory: Path,
    *,
    default_limits: dict[str, Any] | None = None,
    group_limits: dict[str, dict[str, Any]] | None = None,
    start_timeout: float = 60.0,
) -> Iterator[LocalHub]:
    """Run JupyterHub + Dask Gateway on loopback until the ``with`` block ends.

    Parameters
    ----------
    state_directory : Path
        Empty directory for configuration, logs and clusters' working directories; it is made
        world-traversable, as the clusters of every user work below it.
    default_limits, group_limits : dict, optional
        Fair-use limits, see :class:`eosc_pangeo.platform.gateway.FairUsePolicy`.
    start_timeout : float
        Seconds to wait for the hub and then the gateway to answer.
    """
    clusters = state_directory / "clusters"
    clusters.mkdir(parents=True)
    for path in (state_directory, clusters):
        path.chmod(0o755)
    ports = free_ports(7)
    hub_port, hub_api_port, proxy_api_port, api_port, gateway_port, scheduler_port = ports[:6]
    jobs_port = ports[6]
    scheduler_address = f"127.0.0.1:{scheduler_port}"
    gateway_json = write_gateway_config(
        gateway_config(
            api_address=f"127.0.0.1:{api_port}",
            proxy_address=f"127.0.0.1:{gateway_port}",
            scheduler_address=scheduler_address,
            state_directory=str(state_directory),
            default_limits=default_limits,
            group_limits=group_limits,
        ),
        str(state_directory / "gateway.json"),
    )
    url = f"http://127.0.0.1:{hub_port}"
    params = {
        "hub": {
            "ip": "127.0.0.1",
            "port": hub_port,
            "hub_port": hub_api_port,
            "proxy_api_port": proxy_api_port,
            "state_directory": str(state_directory),
        },
        "gateway": {
            "gateway_url": f"http://127.0.0.1:{gateway_port}",
            "public_gateway_url": f"{url}/services/{SERVICE_NAME}",
            "scheduler_address": scheduler_address,
            "command": [sys.executable, "-m", "eosc_pangeo.platform.gateway", "-f", gateway_json],
            "notebook_image": sys.prefix,
        },
        "jobs": {
            "url": f"http://127.0.0.1:{jobs_port}",
            "public_url": f"{url}/services/jobs",
            "command": [sys.executable, "-m", "eosc_pangeo.jobs.service", "--port",
                        str(jobs_port), "--jobs-dir", str(state_directory / "jobs")],
            # Jobs submitted in the hub start their clusters on its gateway.
            "environment": notebook_environment(
                f"{url}/services/{SERVICE_NAME}", scheduler_address, sys.prefix),
        },
        "admin_token": secrets.token_hex(16),
    }
    config_file = state_directory / "jupyterhub_config.py"
    config_file.write_text(HUB_CONFIG.format(params=json.dumps(params), admin=ADMIN_SERVICE))
    log = state_directory / "jupyterhub.log"
    with open(log, "w") as log_file:
        hub = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "jupyterhub"), "-f", str(config_file)],
            cwd=state_directory,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=stop_with_parent,  # noqa: PLW1509 (one foreign call, no locks taken)
        )
    try:
        running = LocalHub(url, scheduler_address, params["admin_token"], log)
        wait_for_http(f"{url}/hub/api/", start_timeout, hub, log)
        wait_for_http(f"{running.gateway_address}/api/health", start_timeout, hub, log)
        wait_for_http(f"{url}/services/jobs/api/health", start_timeout, hub, log)
        yield running
    finally:
        hub.terminate()  # the hub stops its proxy and the gateway, which stops its clusters
        try:
            hub.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(hub.pid, signal.SIGKILL)
