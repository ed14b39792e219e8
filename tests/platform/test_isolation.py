"""On one machine, another user's Dask dashboard is out of reach on loopback too.

Every local account may open any loopback port, and a scheduler's dashboard (like the gateway's
HTTP proxy, which routes ``/clusters/<name>/`` to it) answers whoever connects. The platform
keeps those ports for root, which runs the gateway and the dashboards' gate
(:mod:`eosc_pangeo.platform.loopback`): here another user's processes try them, as that user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import requests

from eosc_pangeo.platform import local
from eosc_pangeo.platform.gateway import PROXY_FENCE
from eosc_pangeo.platform.loopback import LoopbackFence

#: Prints ``connected`` or the error of a TCP connection to loopback port ``argv[1]``.
CONNECT = textwrap.dedent(
    """
    import socket, sys
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10).close()
    except OSError as error:
        print(type(error).__name__)
    else:
        print("connected")
    """
)


def run_as(user: str, python: str, script: str, *arguments: str) -> str:
    """What Python ``script`` prints, run by Unix user ``user``."""
    result = subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
        + [python, "-c", script, *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def connect_as(user: str, port: int, python: str) -> str:
    """What a process of Unix user ``user`` gets when it connects to loopback ``port``."""
    return run_as(user, python, CONNECT, str(port))


@pytest.fixture(scope="module")
def users_python(platform) -> str:
    return str(Path(platform.state.environment) / "bin" / "python")


@pytest.fixture
def fence():
    fence = LoopbackFence("test-of-the-fence")
    yield fence
    fence.sweep()


@pytest.fixture
def listening_port():
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_a_kept_port_refuses_other_accounts_and_takes_its_owners(
    fence, listening_port, bob, users_python
):
    fence.keep("a-port", listening_port)
    assert connect_as(bob.name, listening_port, users_python) == "ConnectionRefusedError"
    socket.create_connection(("127.0.0.1", listening_port), timeout=10).close()  # root's


def test_a_released_port_takes_every_account_again(fence, listening_port, bob, users_python):
    fence.keep("a-port", listening_port)
    fence.release("a-port")
    assert connect_as(bob.name, listening_port, users_python) == "connected"


def test_keeping_a_port_twice_makes_one_rule(fence, listening_port):
    fence.keep("a-port", listening_port)
    fence.keep("a-port", listening_port)
    assert fence.kept() == {"a-port": [listening_port]}


def test_without_root_nothing_is_fenced_and_the_reason_is_given(bob, users_python):
    # What a platform started without root (SingleAccountLocalBackend) logs, and its `down`.
    script = (
        "from eosc_pangeo.platform.loopback import LoopbackFence\n"
        "fence = LoopbackFence('test-of-the-fence')\n"
        "print(fence.unavailable(), fence.sweep())"
    )
    assert run_as(bob.name, users_python, script) == "not running as root []"


@pytest.fixture(scope="module")
def carols_cluster(platform):
    """A cluster of a user of this module, with one worker."""
    carol = platform.session(platform.add_user("carol"))
    gateway = platform.gateway(carol)
    cluster = gateway.new_cluster()
    try:
        cluster.scale(1)
        client = cluster.get_client()
        client.wait_for_workers(1, timeout=180)
        yield carol, cluster, client.scheduler_info()
        client.close()
    finally:
        cluster.shutdown()
        gateway.close()


@pytest.fixture(scope="module")
def dashboard_port(carols_cluster) -> int:
    _, _, scheduler = carols_cluster
    return scheduler["services"]["dashboard"]


def test_another_user_cannot_open_a_schedulers_dashboard_port(
    carols_cluster, dashboard_port, bob, users_python
):
    assert connect_as(bob.name, dashboard_port, users_python) == "ConnectionRefusedError"


def test_the_dashboard_port_answers_root_which_runs_the_gate(carols_cluster, dashboard_port):
    response = requests.get(f"http://127.0.0.1:{dashboard_port}/status", timeout=30)
    assert response.status_code == 200 and "bokeh" in response.text.lower()


def test_another_user_cannot_open_the_gateways_proxy_port(platform, bob, users_python):
    port = platform.state.ports["gateway_proxy"]
    assert connect_as(bob.name, port, users_python) == "ConnectionRefusedError"


@pytest.mark.parametrize("port", ["gateway_api", "scheduler"])
def test_users_still_reach_the_gateways_api_server_and_scheduler_proxy(
    platform, bob, users_python, port
):
    # The API server, which schedulers call; the TLS proxy, where clients reach schedulers.
    assert connect_as(bob.name, platform.state.ports[port], users_python) == "connected"


def test_the_owner_sees_the_fenced_dashboard_through_the_hub(carols_cluster):
    carol, cluster, _ = carols_cluster
    response = requests.get(cluster.dashboard_link, headers=carol.headers, timeout=30)
    assert response.status_code == 200
    assert "Dask" in response.text and "bokeh" in response.text.lower()


@pytest.mark.parametrize("page", ["status", "metrics", "health"])
def test_workers_serve_no_pages_of_their_own(carols_cluster, page):
    # A worker's HTTP server listens all the same (its port is the scheduler's "dashboard"
    # service of the worker): asked as root, whom no fence stops, it has nothing to show.
    _, _, scheduler = carols_cluster
    (worker,) = scheduler["workers"].values()
    port = worker["services"]["dashboard"]
    assert requests.get(f"http://127.0.0.1:{port}/{page}", timeout=30).status_code == 404


def test_the_platform_keeps_exactly_the_proxy_and_the_running_dashboards(
    platform, carols_cluster, dashboard_port
):
    _, cluster, _ = carols_cluster
    kept = platform.state.loopback_fence.kept()
    assert kept[PROXY_FENCE] == [platform.state.ports["gateway_proxy"]]
    assert kept[cluster.name] == [dashboard_port]


def test_status_says_the_dashboards_are_for_root_only(platform):
    from typer.testing import CliRunner

    from eosc_pangeo.cli import app

    result = CliRunner().invoke(app, ["status", "--state", str(platform.state.state)])
    assert result.exit_code == 0, result.output
    assert "dashboards   for root only on loopback" in result.output


def gateway_pid(platform) -> int | None:
    """The process of this platform's gateway (its command names the platform's config)."""
    config = str(platform.state.state / "gateway.json")
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if "eosc_pangeo.platform.gateway" in command and config in command:
            return process.pid
    return None


def test_a_restarted_gateway_fences_its_proxy_again_and_keeps_its_clusters_fenced(
    platform, carols_cluster, dashboard_port, bob, users_python
):
    _, cluster, _ = carols_cluster
    old = gateway_pid(platform)
    os.kill(old, signal.SIGTERM)  # it opens its proxy's port as it stops; its clusters run on
    deadline = time.monotonic() + 120
    while not (gateway_pid(platform) not in (None, old) and gateway_answers(platform)):
        assert time.monotonic() < deadline, "the hub did not restart the gateway within 120 s"
        time.sleep(0.5)
    kept = platform.state.loopback_fence.kept()
    assert kept[PROXY_FENCE] == [platform.state.ports["gateway_proxy"]]
    assert kept[cluster.name] == [dashboard_port]
    assert connect_as(bob.name, dashboard_port, users_python) == "ConnectionRefusedError"


def gateway_answers(platform) -> bool:
    try:
        url = f"{platform.state.gateway_address}/api/health"
        return requests.get(url, timeout=10).status_code == 200
    except requests.RequestException:
        return False


def test_a_stopped_clusters_port_is_open_again(platform):
    from dask_gateway.client import ClusterStatus

    dave = platform.session(platform.add_user("dave"))
    with platform.gateway(dave) as gateway:
        cluster = gateway.new_cluster()
        assert cluster.name in platform.state.loopback_fence.kept()
        cluster.shutdown()  # returns once the gateway is told, not once it has stopped
        deadline = time.monotonic() + 120
        while gateway.get_cluster(cluster.name).status is not ClusterStatus.STOPPED:
            assert time.monotonic() < deadline, "the cluster did not stop within 120 s"
            time.sleep(0.5)
    assert cluster.name not in platform.state.loopback_fence.kept()


@pytest.mark.skipif(os.geteuid() != 0, reason="fences are root's")
def test_stopping_a_platform_opens_every_port_it_kept_even_after_a_crash(tmp_path):
    # A gateway killed outright leaves its fences: `eosc-pangeo down` still sweeps them.
    platform = local.prepare(tmp_path / "state", port=0)
    neighbour = LoopbackFence("neighbour-of-the-test")
    try:
        platform.loopback_fence.keep(PROXY_FENCE, platform.ports["gateway_proxy"])
        platform.loopback_fence.keep("a-cluster", local.free_ports(1)[0])
        neighbour.keep("its-cluster", local.free_ports(1)[0])

        assert local.stop(platform) is False  # it was not running
        assert platform.loopback_fence.kept() == {}
        assert "its-cluster" in neighbour.kept()
    finally:
        platform.loopback_fence.sweep()
        neighbour.sweep()
        shutil.rmtree(platform.shared_directory, ignore_errors=True)
