"""Real services for the compute tests: a JupyterHub (real proxy) with Dask Gateway, and Slurm.

Both are started once per test session and shared: the hub with its gateway takes ~5 s, Slurm
~10 s the first time on a fresh machine (apt install) and ~1 s after.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from eosc_pangeo.config import Settings
from eosc_pangeo.platform.gateway import gateway_config, write_gateway_config

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# Hub users, with system users of the same name (the gateway runs clusters as them); carol is staff.
# test_gateway.py spells out the same names and limits, as its specification.
ALICE, BOB, CAROL = "pgalice", "pgbob", "pgcarol"
STAFF = "staff"
# Small limits so that tests reach them with a few 1-core workers.
DEFAULT_LIMITS = {"max_clusters": 2, "max_user_cores": 3, "max_worker_cores": 2,
                  "max_worker_memory": "2GiB", "idle_timeout": 600}
STAFF_LIMITS = {"max_clusters": 3, "max_user_cores": 6}


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def wait_for_http(url: str, timeout: float, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def ensure_system_user(name: str) -> None:
    """The gateway's LocalBackend runs a hub user's clusters as the system user of that name."""
    if subprocess.run(["id", "-u", name], capture_output=True).returncode != 0:
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True
        )


class Platform:
    """A running hub + gateway, and what tests need to act as its users."""

    def __init__(self, url: str, scheduler_address: str, admin_token: str, log: Path):
        self.url = url
        self.gateway_address = f"{url}/services/dask-gateway"
        self.scheduler_address = scheduler_address
        self.admin_token = admin_token
        self.log = log
        self.tokens: dict[str, str] = {}

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        response = requests.request(
            method, f"{self.url}/hub/api{path}", timeout=30,
            headers={"Authorization": f"token {self.admin_token}"}, **kwargs,
        )
        response.raise_for_status()
        return response

    def settings(self, **overrides) -> Settings:
        return Settings(
            gateway_address=self.gateway_address,
            gateway_proxy_address=f"gateway://{self.scheduler_address}",
            gateway_auth="jupyterhub",
            cluster_start_timeout=60,
            **overrides,
        )

    @contextmanager
    def as_user(self, name: str):
        """Act as hub user ``name``: dask-gateway's JupyterHubAuth reads this variable."""
        previous = os.environ.get("JUPYTERHUB_API_TOKEN")
        os.environ["JUPYTERHUB_API_TOKEN"] = self.tokens[name]
        try:
            yield
        finally:
            if previous is None:
                del os.environ["JUPYTERHUB_API_TOKEN"]
            else:
                os.environ["JUPYTERHUB_API_TOKEN"] = previous

    def gateway(self, name: str):
        from dask_gateway import Gateway, JupyterHubAuth

        return Gateway(
            self.gateway_address,
            proxy_address=f"gateway://{self.scheduler_address}",
            auth=JupyterHubAuth(api_token=self.tokens[name]),
        )


HUB_CONFIG = """\
import json
from eosc_pangeo.platform.hub import add_dask_gateway, local_hub

params = json.loads({params!r})
local_hub(c, **params["hub"])
add_dask_gateway(c, **params["gateway"])
# A service the tests use to manage users, groups, tokens and servers.
c.JupyterHub.services.append({{"name": "eosc-test-admin", "api_token": params["admin_token"]}})
c.JupyterHub.load_roles.append({{
    "name": "eosc-test-admin",
    "scopes": ["admin:users", "admin:servers", "admin:groups", "tokens"],
    "services": ["eosc-test-admin"],
}})
"""


@pytest.fixture(scope="session")
def platform():
    """JupyterHub (pure-Python configurable-http-proxy) with Dask Gateway as a managed service."""
    if os.geteuid() != 0:
        pytest.skip("the gateway's LocalBackend runs clusters as other users: needs root")
    for name in (ALICE, BOB, CAROL):
        ensure_system_user(name)
    # Cluster working directories live below: the users must be able to traverse it.
    state = Path(tempfile.mkdtemp(prefix="eosc-hub-", dir="/tmp"))
    (state / "clusters").mkdir()
    for path in (state, state / "clusters"):
        path.chmod(0o755)
    hub_port, hub_api_port, proxy_api_port, api_port, gw_port, sched_port = free_ports(6)
    gateway_json = write_gateway_config(
        gateway_config(
            api_address=f"127.0.0.1:{api_port}",
            proxy_address=f"127.0.0.1:{gw_port}",
            scheduler_address=f"127.0.0.1:{sched_port}",
            state_directory=str(state),
            default_limits=DEFAULT_LIMITS,
            group_limits={STAFF: STAFF_LIMITS},
        ),
        str(state / "gateway.json"),
    )
    admin_token = secrets.token_hex(16)
    url = f"http://127.0.0.1:{hub_port}"
    params = {
        "hub": {"ip": "127.0.0.1", "port": hub_port, "hub_port": hub_api_port,
                "proxy_api_port": proxy_api_port, "state_directory": str(state)},
        "gateway": {
            "gateway_url": f"http://127.0.0.1:{gw_port}",
            "public_gateway_url": f"{url}/services/dask-gateway",
            "scheduler_address": f"127.0.0.1:{sched_port}",
            "command": [sys.executable, "-m", "eosc_pangeo.platform.gateway", "-f", gateway_json],
            "notebook_image": sys.prefix,
        },
        "admin_token": admin_token,
    }
    (state / "jupyterhub_config.py").write_text(HUB_CONFIG.format(params=json.dumps(params)))
    log = state / "jupyterhub.log"
    with open(log, "w") as log_file:
        hub = subprocess.Popen(
            [str(BIN / "jupyterhub"), "-f", str(state / "jupyterhub_config.py")],
            cwd=state, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        running = Platform(url, f"127.0.0.1:{sched_port}", admin_token, log)
        wait_for_http(f"{url}/hub/api/", 60, hub, log)
        wait_for_http(f"{running.gateway_address}/api/health", 60, hub, log)
        running.api("POST", "/users", json={"usernames": [ALICE, BOB, CAROL]})
        running.api("POST", "/groups", json={"groups": [STAFF]})
        running.api("POST", f"/groups/{STAFF}/users", json={"users": [CAROL]})
        for name in (ALICE, BOB, CAROL):
            running.tokens[name] = running.api(
                "POST", f"/users/{name}/tokens", json={"note": "tests"}
            ).json()["token"]
        yield running
    finally:
        hub.terminate()  # the hub stops its proxy and managed gateway, which stops its clusters
        try:
            hub.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(hub.pid, 9)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A single-node Slurm (slurm-wlm + munge), installed and started by .ci/slurm-up.sh."""
    result = subprocess.run(
        [str(REPO / ".ci" / "slurm-up.sh")], capture_output=True, text=True, timeout=600
    )
    if result.returncode == 2:
        pytest.skip(f"Slurm cannot be set up on this machine: {result.stderr.strip()}")
    assert result.returncode == 0, f".ci/slurm-up.sh failed:\n{result.stderr}"
    return tmp_path_factory.mktemp("slurm-logs")


@pytest.fixture
def slurm_site(slurm):
    """The site configuration an HPC admin writes in /etc/dask/jobqueue.yaml, for this node."""
    import dask.config

    site = {
        "jobqueue.slurm.cores": 1,
        "jobqueue.slurm.memory": "1GiB",
        "jobqueue.slurm.walltime": "00:10:00",
        "jobqueue.slurm.log-directory": str(slurm),
        # One node: jobs run here, so the scheduler listens on loopback.
        "jobqueue.slurm.interface": None,
        "jobqueue.slurm.scheduler-options": {"host": "127.0.0.1"},
    }
    with dask.config.set(site):
        yield site
