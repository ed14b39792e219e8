"""Fixtures shared by the whole suite: sample data, a real S3-protocol server on loopback, and
the real services of the compute and jobs tests: a JupyterHub (real proxy) with Dask Gateway, and
Slurm. Those are started once per test session and shared: the hub with its gateway takes ~5 s,
Slurm ~10 s the first time on a fresh machine (apt install) and ~1 s after."""

from __future__ import annotations

import gc
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from eosc_pangeo.config import Settings, get_settings
from eosc_pangeo.lake.storage import Lake

if TYPE_CHECKING:
    from eosc_pangeo.platform.local import LocalHub

REPO = Path(__file__).resolve().parents[1]


#: Test folders whose tests make Dask Gateway clients.
GATEWAY_CLIENTS = {"platform", "compute", "jobs", "deploy", "notebooks"}


@pytest.fixture(autouse=True)
def collect_closed_gateway_clients(request):
    """Garbage-collect after each test that may have made Dask Gateway clients.

    dask-gateway 2026.3's ``Gateway.__del__`` closes a closed client again, which raises
    (distributed's loop runner is stopped). Raised while Debian's Python 3.11.2 builds an AST,
    as pytest does when it rewrites a module imported later, that corrupts the interpreter
    ("AST constructor recursion depth mismatch") and kills the test process. Collected here,
    between tests, it is only an unraisable-exception warning.
    """
    yield
    if "dask_gateway" in sys.modules and request.path.parent.name in GATEWAY_CLIENTS:
        gc.collect()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server in its own process (as s3fs's own suite does), on loopback."""
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"moto_server did not start on {endpoint}")
            time.sleep(0.1)
    yield {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def s3_lake(s3_server) -> Lake:
    """An empty lake in a fresh bucket of the S3 server."""
    import s3fs

    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(**s3_server).mkdir(bucket)
    return Lake(f"s3://{bucket}/lake", dict(s3_server))


@pytest.fixture
def local_lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


@pytest.fixture
def settings_env(monkeypatch):
    """Set EOSC_PANGEO_* variables for one test, with the cached settings re-read around it."""

    def set_env(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(f"EOSC_PANGEO_{name.upper()}", value)
        get_settings.cache_clear()

    yield set_env
    get_settings.cache_clear()


# Hub users, with system users of the same name (the gateway runs clusters as them); carol is staff.
# test_gateway.py spells out the same names and limits, as its specification.
ALICE, BOB, CAROL = "pgalice", "pgbob", "pgcarol"
STAFF = "staff"
# Small limits so that tests reach them with a few 1-core workers.
DEFAULT_LIMITS = {
    "max_clusters": 2,
    "max_user_cores": 3,
    "max_worker_cores": 2,
    "max_worker_memory": "2GiB",
    "idle_timeout": 600,
}
STAFF_LIMITS = {"max_clusters": 3, "max_user_cores": 6}


class Platform:
    """The running hub + gateway, and what tests need to act as its users."""

    def __init__(self, hub: LocalHub):
        self.hub = hub
        self.url = hub.url
        self.gateway_address = hub.gateway_address
        self.scheduler_address = hub.scheduler_address
        self.api = hub.api
        self.tokens: dict[str, str] = {}

    def settings(self, **overrides) -> Settings:
        """What a notebook of this hub has (see eosc_pangeo.platform.hub.notebook_environment)."""
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


@pytest.fixture(scope="session")
def platform():
    """JupyterHub (pure-Python configurable-http-proxy) with Dask Gateway as a managed service."""
    # Imported here: the Python 3.12 run of the lake and catalogue tests has no hub installed.
    from eosc_pangeo.platform.local import ensure_system_user, run_local_hub

    if os.geteuid() != 0:
        pytest.skip("the gateway's LocalBackend runs clusters as other users: needs root")
    for name in (ALICE, BOB, CAROL):
        ensure_system_user(name)
    state = Path(tempfile.mkdtemp(prefix="eosc-hub-", dir="/tmp"))
    try:
        with run_local_hub(
            state, default_limits=DEFAULT_LIMITS, group_limits={STAFF: STAFF_LIMITS}
        ) as hub:
            running = Platform(hub)
            for name in (ALICE, BOB, CAROL):
                running.tokens[name] = hub.add_user(name, groups=(STAFF,) if name == CAROL else ())
            yield running
    finally:
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A single-node Slurm (slurm-wlm + munge), installed and started by .ci/slurm-up.sh."""
    result = subprocess.run(
        [str(REPO / ".ci" / "slurm-up.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
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


@contextmanager
def served(app) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port; yields its URL."""
    import uvicorn

    # Port 0: the kernel picks a free port, so parallel runs never race for one.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the app's server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def serve():
    """Serve an ASGI app on loopback: ``with serve(create_app(...)) as url: ...``."""
    return served


# The suite runs in parallel processes (pytest-xdist, `--dist loadgroup`; see the Makefile). Each
# test file stays in one process, so that its module fixtures are made once. Two machine-wide
# services are each used from one process only: the single-node Slurm (2 CPUs: jobs of two
# processes at once queue behind each other until their tests time out) and the platform of
# tests/platform/conftest.py (one hub for the session). A test that uses both goes with Slurm.
SHARED_FIXTURES = {"slurm": "slurm", "slurm_site": "slurm", "platform": "platform"}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    shared: dict[Path, set[str]] = {}  # per file: the shared services any of its tests uses
    for item in items:
        uses = SHARED_FIXTURES.keys() & set(item.fixturenames)
        shared.setdefault(item.path, set()).update(SHARED_FIXTURES[name] for name in uses)
    for item in items:
        services = shared[item.path]
        group = (
            "slurm"
            if "slurm" in services
            else "platform"
            if services
            else str(Path(str(item.path)).relative_to(REPO / "tests"))
        )
        item.add_marker(pytest.mark.xdist_group(group))
