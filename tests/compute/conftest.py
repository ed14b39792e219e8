"""Real services for the compute tests: a JupyterHub (real proxy) with Dask Gateway, and Slurm.

Both are started once per test session and shared: the hub with its gateway takes ~5 s, Slurm
~10 s the first time on a fresh machine (apt install) and ~1 s after.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from eosc_pangeo.config import Settings
from eosc_pangeo.platform.local import LocalHub, ensure_system_user, run_local_hub

REPO = Path(__file__).resolve().parents[2]

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
