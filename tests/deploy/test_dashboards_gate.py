"""The dashboards' gate as traefik's ForwardAuth on Kubernetes, asked as traefik asks it.

Inside the cluster, notebooks reach the gateway's proxy (traefik) directly; the chart's
``eosc-pangeo-dashboards`` middleware makes traefik ask the gate (``.../_forward_auth``) about
every request first. Here the gate and a real Dask Gateway run as the hub's managed services,
configured by ``platform.hub.add_dask_gateway`` as on Kubernetes and on one machine, and each
request is put to the gate with the headers traefik sends (``X-Forwarded-Uri``, the client's
own headers). Users log in through a real JupyterHub (its dummy authenticator: passwords are not
what is tested here).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
from traitlets.config import Config

from eosc_pangeo.platform.dashboards import (
    FORWARD_AUTH_PATH,
    GATE_HEADER,
    SERVICE_PREFIX,
    GateSettings,
    gate_secret,
)
from eosc_pangeo.platform.gateway import gateway_config, write_gateway_config
from eosc_pangeo.platform.hub import add_dask_gateway, add_service
from eosc_pangeo.platform.local import free_ports
from eosc_pangeo.platform.session import HubSession

#: The gate's hub token, fixed here so that the test can make the gate's stamps.
GATE_TOKEN = "gate-token-of-the-test-0123456789abcdef"
STARTUP_SECONDS = 120


def wait_for(url: str, timeout: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def hub_configuration(directory: Path, ports: dict[str, int]) -> Config:
    """A hub on loopback with the gate and the gateway as its managed services."""
    c = Config()
    c.JupyterHub.ip = "127.0.0.1"
    c.JupyterHub.port = ports["hub"]
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = ports["hub_api"]
    c.JupyterHub.authenticator_class = "dummy"
    c.JupyterHub.db_url = f"sqlite:///{directory / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(directory / "cookie_secret")
    c.ConfigurableHTTPProxy.command = [sys.executable, "-m", "eosc_pangeo.platform.proxy"]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{ports['proxy_api']}"
    gateway_proxy = f"http://127.0.0.1:{ports['gateway_proxy']}"
    write_gateway_config(
        gateway_config(
            api_address=f"127.0.0.1:{ports['gateway_api']}",
            proxy_address=f"127.0.0.1:{ports['gateway_proxy']}",
            scheduler_address=f"127.0.0.1:{ports['scheduler']}",
            state_directory=str(directory),
            # Clusters run as the test's account: no Unix users are needed here.
            backend="SingleAccountLocalBackend",
        ),
        str(directory / "gateway.json"),
    )
    add_dask_gateway(
        c,
        gateway_url=gateway_proxy,
        public_gateway_url=f"{gateway_proxy}{SERVICE_PREFIX}",
        scheduler_address=f"127.0.0.1:{ports['scheduler']}",
        command=[
            sys.executable,
            "-m",
            "eosc_pangeo.platform.gateway",
            "-f",
            str(directory / "gateway.json"),
        ],
        front_url=f"http://127.0.0.1:{ports['gate']}",
        front_command=[
            sys.executable,
            "-m",
            "eosc_pangeo.platform.dashboards",
            "--port",
            str(ports["gate"]),
            "--upstream",
            gateway_proxy,
        ],
    )
    # As zero-to-jupyterhub gives the service its token from the hub's Secret.
    add_service(c, {"name": "dask-gateway", "api_token": GATE_TOKEN})
    return c


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A running hub, its gate and gateway; yields the ports."""
    directory = tmp_path_factory.mktemp("gate")
    names = ("hub", "hub_api", "proxy_api", "gateway_api", "gateway_proxy", "scheduler", "gate")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    config = directory / "jupyterhub_config.py"
    # The hub process builds its configuration with this module's function, as a
    # jupyterhub_config.py of the chart or of `make up` calls the platform's.
    config.write_text(
        f"import sys\nsys.path.insert(0, {str(Path(__file__).parents[2])!r})\n"
        "from pathlib import Path\n"
        "from tests.deploy.test_dashboards_gate import hub_configuration\n"
        f"c.merge(hub_configuration(Path({str(directory)!r}), {ports!r}))\n"
    )
    log = open(directory / "hub.log", "wb")  # noqa: SIM115 (closed at teardown)
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("jupyterhub")), "-f", str(config)],
        cwd=directory,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    services: list[psutil.Process] = []
    try:
        wait_for(f"http://127.0.0.1:{ports['hub']}/hub/api/")  # through the hub's proxy
        wait_for(f"http://127.0.0.1:{ports['gate']}{SERVICE_PREFIX}/")
        wait_for(f"http://127.0.0.1:{ports['gateway_proxy']}{SERVICE_PREFIX}/api/health")
        # The hub starts its proxy and services in sessions of their own: known by pid here,
        # so that none outlives the test if the hub does not stop them.
        services = psutil.Process(process.pid).children(recursive=True)
        yield ports
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for service in services:
            with contextlib.suppress(psutil.NoSuchProcess):
                service.terminate()
        psutil.wait_procs(services, timeout=30)
        log.close()


def logged_in(ports: dict[str, int], name: str) -> HubSession:
    session = HubSession(f"http://127.0.0.1:{ports['hub']}", name)
    session.login("any password: the dummy authenticator")
    return session


@pytest.fixture(scope="module")
def alice(hub) -> HubSession:
    return logged_in(hub, "alice")


@pytest.fixture(scope="module")
def bob(hub) -> HubSession:
    return logged_in(hub, "bob")


@pytest.fixture(scope="module")
def alices_cluster(hub, alice):
    """A cluster of alice's on the real gateway: its name, as in its dashboard route."""
    from dask_gateway import Gateway, JupyterHubAuth

    gateway = Gateway(
        f"http://127.0.0.1:{hub['gateway_proxy']}{SERVICE_PREFIX}",
        proxy_address=f"gateway://127.0.0.1:{hub['scheduler']}",
        auth=JupyterHubAuth(api_token=alice.token),
    )
    with gateway, gateway.new_cluster() as cluster:  # shut down when closed
        yield cluster.name


def ask_the_gate(ports, uri: str, headers: dict[str, str] | None = None) -> requests.Response:
    """What traefik asks about a request for ``uri`` that came with ``headers``."""
    return requests.get(
        f"http://127.0.0.1:{ports['gate']}{SERVICE_PREFIX}{FORWARD_AUTH_PATH}",
        headers={"X-Forwarded-Method": "GET", "X-Forwarded-Uri": uri, **(headers or {})},
        allow_redirects=False,
        timeout=60,
    )


def dashboard(cluster: str) -> str:
    return f"{SERVICE_PREFIX}/clusters/{cluster}/status"


def token_header(session: HubSession) -> dict[str, str]:
    return {"Authorization": f"token {session.token}"}


def test_the_owner_passes_to_the_dashboard_without_credentials(hub, alice, alices_cluster):
    answer = ask_the_gate(hub, dashboard(alices_cluster), token_header(alice))
    assert answer.status_code == 200
    # traefik takes the answer's Authorization and Cookie (none) in place of the request's.
    assert "Authorization" not in answer.headers and "Cookie" not in answer.headers


def test_another_user_is_refused_the_dashboard(hub, bob, alices_cluster):
    answer = ask_the_gate(hub, dashboard(alices_cluster), token_header(bob))
    assert answer.status_code == 403
    assert "bob" in answer.reason


def test_an_anonymous_request_for_a_dashboard_is_refused(hub, alices_cluster):
    assert ask_the_gate(hub, dashboard(alices_cluster)).status_code == 401


def test_a_dashboard_websocket_is_checked_as_its_page_is(hub, bob, alices_cluster):
    uri = f"{SERVICE_PREFIX}/clusters/{alices_cluster}/status/ws"
    headers = {**token_header(bob), "Upgrade": "websocket", "Connection": "Upgrade"}
    assert ask_the_gate(hub, uri, headers).status_code == 403


def test_a_cluster_that_does_not_exist_is_not_found(hub, alice):
    assert ask_the_gate(hub, dashboard("nosuchcluster"), token_header(alice)).status_code == 404


def test_gateway_api_calls_pass_with_their_credentials_given_back(hub):
    # The gateway checks the token itself: the gate only gives it back for traefik to keep.
    headers = {"Authorization": "jupyterhub not-checked-here", "Cookie": "dask-gateway=x"}
    answer = ask_the_gate(hub, f"{SERVICE_PREFIX}/api/v1/clusters/", headers)
    assert answer.status_code == 200
    assert answer.headers["Authorization"] == headers["Authorization"]
    assert answer.headers["Cookie"] == headers["Cookie"]


def test_a_request_the_gate_let_through_passes_by_its_stamp(hub, alices_cluster, monkeypatch):
    # The gate strips credentials from the dashboard requests it forwards and stamps them.
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", GATE_TOKEN)
    stamp = GateSettings("", SERVICE_PREFIX, gate_secret()).stamp(alices_cluster)
    answer = ask_the_gate(hub, dashboard(alices_cluster), {GATE_HEADER: stamp})
    assert answer.status_code == 200


def test_a_stamp_opens_only_its_own_cluster(hub, alices_cluster, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", GATE_TOKEN)
    stamp = GateSettings("", SERVICE_PREFIX, gate_secret()).stamp("another-cluster")
    assert ask_the_gate(hub, dashboard(alices_cluster), {GATE_HEADER: stamp}).status_code == 401


def test_a_made_up_stamp_is_refused(hub, alices_cluster):
    answer = ask_the_gate(hub, dashboard(alices_cluster), {GATE_HEADER: "0" * 64})
    assert answer.status_code == 401


@pytest.mark.parametrize(
    "uri",
    [
        f"{SERVICE_PREFIX}/api/../clusters/NAME/status",
        f"{SERVICE_PREFIX}/api/%2e%2e/clusters/NAME/status",
        f"{SERVICE_PREFIX}//clusters/NAME/status",
    ],
)
def test_a_path_that_would_route_elsewhere_once_cleaned_is_refused(hub, alices_cluster, uri):
    answer = ask_the_gate(hub, uri.replace("NAME", alices_cluster))
    assert answer.status_code == 400


def test_through_the_hub_the_owner_still_sees_the_dashboard(hub, alice, alices_cluster):
    # The gate's own proxy path, now stamping what it forwards, still serves the owner.
    answer = requests.get(
        f"http://127.0.0.1:{hub['gate']}{dashboard(alices_cluster)}",
        headers=token_header(alice),
        timeout=60,
    )
    assert answer.status_code == 200
    assert "bokeh" in answer.text.lower()
