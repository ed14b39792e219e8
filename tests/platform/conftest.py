"""One running platform (`eosc-pangeo up`'s code path) shared by the platform tests.

Started once per session in a fresh state directory under a ``mktemp -d`` (mode 700, as from a
clone in root's home): the hub, its proxy, Dask Gateway, the catalogue and the idle culler, over
a small demo lake. Starting takes ~20 s on 2 busy cores, the demo lake ~10 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from eosc_pangeo.platform import local
from eosc_pangeo.platform.session import HubSession

#: Prefix of this session's user names: unique, so runs never meet each other's Unix accounts.
PREFIX = "pt" + uuid.uuid4().hex[:6]


class RunningPlatform:
    def __init__(self, state: local.PlatformState):
        self.state = state
        self.url = state.url
        self.hub = local.hub_of(state)
        self.passwords: dict[str, str] = {}
        self.prefix = PREFIX

    def add_user(self, suffix: str, *, groups: tuple[str, ...] = ()) -> str:
        """A new account (and Unix user); its name."""
        name = f"{PREFIX}{suffix}"
        self.passwords[name] = f"pw-{uuid.uuid4().hex}"
        local.add_account(self.state, name, self.passwords[name], groups=groups)
        return name

    def session(self, name: str) -> HubSession:
        """``name`` logged in through the login form."""
        session = HubSession(self.url, name)
        session.login(self.passwords[name])
        return session

    def gateway(self, session: HubSession):
        """``session``'s user's client of the platform's Dask Gateway."""
        from dask_gateway import Gateway, JupyterHubAuth

        return Gateway(
            self.state.gateway_address,
            proxy_address=f"gateway://{self.state.scheduler_address}",
            auth=JupyterHubAuth(api_token=session.token),
        )


@pytest.fixture(scope="session")
def platform():
    if os.geteuid() != 0:
        pytest.skip("servers run as their users' Unix accounts: needs root")
    top = Path(tempfile.mkdtemp(prefix="eosc-platform-"))  # mode 700, like root's home
    # Services polled every 2 s: a killed one is back within seconds, not half a minute.
    state = local.prepare(
        top / "state",
        port=0,
        cull_idle_seconds=600,
        service_poll_seconds=2,
        default_limits={
            "max_clusters": 2,
            "max_user_cores": 2,
            "max_worker_memory": "1GiB",
            "idle_timeout": 300,
        },
    )
    local.ensure_demo_lake(state)
    local.start(state, attached=True)
    running = RunningPlatform(state)
    try:
        yield running
    finally:
        local.stop(state)
        for name in running.passwords:
            subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)
        shutil.rmtree(state.shared_directory, ignore_errors=True)
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="session")
def alice(platform) -> HubSession:
    """A user with a running server."""
    session = platform.session(platform.add_user("alice"))
    session.start_server()
    return session


@pytest.fixture(scope="session")
def bob(platform) -> HubSession:
    """Another user with a running server."""
    session = platform.session(platform.add_user("bob"))
    session.start_server()
    return session


REPO = Path(__file__).resolve().parents[2]
#: Screenshots of the run, kept as test artifacts (docs/images/ holds a few for the user guide).
ARTIFACTS = REPO / "var" / "test-artifacts" / "browser"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    result = subprocess.run(
        [str(REPO / ".ci" / "chromium-up.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode == 2:
        pytest.skip(f"no Chromium on this machine: {result.stderr.strip()}")
    assert result.returncode == 0, f".ci/chromium-up.sh failed:\n{result.stderr}"
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where browser tests keep their screenshots."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def page(chromium, artifacts):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(120_000)
        yield page
        browser.close()
