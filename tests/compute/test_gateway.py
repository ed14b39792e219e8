"""cluster() on Dask Gateway behind a real JupyterHub (real proxy, JupyterHub authentication)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from dask_gateway import GatewayClusterError

from eosc_pangeo.compute import ClusterStartError, cluster
from eosc_pangeo.config import Settings
from eosc_pangeo.platform.session import HubSession

pytestmark = pytest.mark.slow
# Users and limits of the `platform` fixture (tests/conftest.py).
ALICE, BOB, CAROL = "pgalice", "pgbob", "pgcarol"
MAX_WORKER_CORES, MAX_USER_CORES, MAX_CLUSTERS, STAFF_MAX_CLUSTERS = 2, 3, 2, 3


def wait_until(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.3)
    return False


def test_cluster_computes_as_the_hub_user_with_the_lake_settings(platform):
    def worker_identity():  # defined here to be pickled by value: workers cannot import tests
        import os
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name, os.environ.get("EOSC_PANGEO_LAKE")

    settings = platform.settings(lake="/data/lake")
    with (
        platform.as_user(ALICE),
        cluster(workers=1, cores=1, memory="1GiB", settings=settings) as dask_cluster,
        dask_cluster.get_client() as client,
    ):
        assert client.submit(worker_identity, pure=False).result() == (ALICE, "/data/lake")
    # The stock LocalBackend would have given / to the cluster's user (see test_local_backend).
    assert os.stat("/").st_uid == 0


def test_cluster_scales_up_and_down(platform):
    with (
        platform.as_user(ALICE),
        cluster(workers=1, settings=platform.settings()) as dask_cluster,
        dask_cluster.get_client() as client,
    ):
        dask_cluster.scale(2)
        client.wait_for_workers(2, timeout=30)
        dask_cluster.scale(1)
        assert wait_until(lambda: len(client.scheduler_info()["workers"]) == 1)


def test_a_worker_killed_mid_computation_does_not_change_the_result(platform):
    def slow_square(x):
        import time

        time.sleep(0.1)
        return x * x

    with (
        platform.as_user(ALICE),
        cluster(workers=2, settings=platform.settings()) as dask_cluster,
        dask_cluster.get_client() as client,
    ):
        futures = client.map(slow_square, range(60))
        assert wait_until(lambda: sum(f.done() for f in futures) >= 5)
        victim = next(iter(client.run(os.getpid).values()))
        os.kill(victim, signal.SIGKILL)
        assert sum(client.gather(futures)) == sum(x * x for x in range(60))


def test_worker_options_beyond_the_users_limits_are_refused_with_a_message(platform):
    with platform.as_user(ALICE), pytest.raises(ValueError, match="worker_cores"):
        cluster(workers=1, cores=MAX_WORKER_CORES + 1, settings=platform.settings())


def test_an_image_that_is_not_a_platform_environment_is_refused(platform):
    with platform.as_user(ALICE), pytest.raises(ValueError, match="not one of this platform"):
        cluster(workers=0, image="/opt/elsewhere", settings=platform.settings())


def test_the_number_of_clusters_per_user_is_limited(platform):
    with platform.as_user(BOB):
        first = cluster(workers=0, settings=platform.settings())
        second = cluster(workers=0, settings=platform.settings())
        try:
            with pytest.raises(
                ValueError, match=f"may run {MAX_CLUSTERS} clusters at once and has {MAX_CLUSTERS}"
            ):
                cluster(workers=0, settings=platform.settings())
        finally:
            first.shutdown()
            second.shutdown()


def test_group_limits_apply_to_members(platform):
    with platform.as_user(CAROL):
        clusters = [
            cluster(workers=0, settings=platform.settings()) for _ in range(STAFF_MAX_CLUSTERS)
        ]
        try:
            with pytest.raises(ValueError, match=f"may run {STAFF_MAX_CLUSTERS} clusters"):
                cluster(workers=0, settings=platform.settings())
        finally:
            for dask_cluster in clusters:
                dask_cluster.shutdown()


def test_scaling_beyond_the_users_core_quota_across_clusters_is_refused(platform):
    quota = MAX_USER_CORES
    with (
        platform.as_user(BOB),
        cluster(workers=2, cores=1, settings=platform.settings()) as first,
        cluster(workers=0, cores=1, settings=platform.settings()) as second,
    ):
        with pytest.raises(GatewayClusterError, match=f"may use {quota} cores") as refused:
            second.scale(quota)
        assert "at most 1 worker(s)" in str(refused.value)
        with pytest.raises(GatewayClusterError, match="Quota exceeded"):
            second.adapt(minimum=0, maximum=quota)
        second.scale(1)  # what is left of the quota is usable
        with second.get_client() as client:
            client.wait_for_workers(1, timeout=30)
        with first.get_client() as client:
            assert len(client.scheduler_info()["workers"]) == 2


def test_adaptive_clusters_do_not_grow_past_the_users_quota(platform):
    def busy(x):
        import time

        time.sleep(1)
        return x

    with (
        platform.as_user(ALICE),
        cluster(adaptive=(0, MAX_USER_CORES), cores=1, settings=platform.settings()) as adaptive,
        cluster(workers=0, cores=1, settings=platform.settings()) as fixed,
    ):
        fixed.scale(2)  # allowed: the adaptive cluster has no workers yet
        with fixed.get_client() as client:
            client.wait_for_workers(2, timeout=30)
        with adaptive.get_client() as client:
            futures = client.map(busy, range(40))
            assert wait_until(lambda: len(client.scheduler_info()["workers"]) >= 1)
            time.sleep(8)  # a few adaptive periods: it asks for more workers than the quota leaves
            assert len(client.scheduler_info()["workers"]) == MAX_USER_CORES - 2
            client.cancel(futures)


def test_another_user_cannot_list_connect_to_or_stop_your_cluster(platform):
    def as_bob(method, path=""):
        return requests.request(
            method,
            f"{platform.gateway_address}/api/v1/clusters/{path}",
            timeout=10,
            headers={"Authorization": f"jupyterhub {platform.tokens[BOB]}"},
        )

    with platform.as_user(ALICE), cluster(workers=0, settings=platform.settings()) as mine:
        assert as_bob("GET").json() == {}
        # Connecting starts by reading the cluster's address and credentials.
        assert as_bob("GET", mine.name).status_code == 403
        assert as_bob("DELETE", mine.name).status_code == 403
        with platform.gateway(ALICE) as owner:
            assert [c.name for c in owner.list_clusters()] == [mine.name]


def notebook_server_environment(platform, user: str) -> dict[str, str]:
    """Start ``user``'s notebook server and return its process environment (as a kernel has it)."""
    platform.api("POST", f"/users/{user}/server")

    def server():
        return platform.api("GET", f"/users/{user}").json()["servers"].get("", {})

    assert wait_until(lambda: server().get("ready"), timeout=60), "the server did not start"
    # Asked of a kernel: the server is forked, so its /proc/<pid>/environ is its fork server's.
    session = HubSession(platform.url, user)
    session.token = platform.tokens[user]
    return json.loads(session.run("import json, os; print(json.dumps(dict(os.environ)))"))


def test_a_notebook_creates_clusters_with_only_what_the_hub_gave_its_server(platform):
    env = notebook_server_environment(platform, BOB)
    try:
        notebook = (
            "from eosc_pangeo import compute\n"
            "c = compute.cluster(workers=1)\n"
            "assert c.get_client().submit(sum, [1, 2]).result() == 3\n"
            "print(c.name)\n"
            "c.close(shutdown=False)  # the kernel dies, the cluster is left running\n"
        )
        run = subprocess.run(
            [sys.executable, "-c", notebook],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        with platform.gateway(BOB) as owner:
            assert [c.name for c in owner.list_clusters()] == [run.stdout.split()[-1]]

            platform.api("DELETE", f"/users/{BOB}/server")

            assert wait_until(lambda: owner.list_clusters() == [], timeout=30)
    finally:
        platform.api("DELETE", f"/users/{BOB}/server")


def test_an_idle_cluster_stops_itself(platform):
    with platform.as_user(ALICE):
        idle = cluster(workers=0, idle_timeout=10, settings=platform.settings())
    with platform.gateway(ALICE) as owner:
        assert [c.name for c in owner.list_clusters()] == [idle.name]
        assert wait_until(lambda: owner.list_clusters() == [], timeout=40)


def test_an_unreachable_gateway_fails_fast_with_a_clear_error():
    closed_port = "http://127.0.0.1:9"  # discard port: nothing listens
    started = time.monotonic()
    with pytest.raises(ClusterStartError, match="no Dask Gateway answers"):
        cluster(backend="gateway", settings=Settings(gateway_address=closed_port))
    assert time.monotonic() - started < 15


def test_the_gateway_backend_needs_an_address():
    with pytest.raises(ClusterStartError, match="EOSC_PANGEO_GATEWAY_ADDRESS"):
        cluster(backend="gateway", settings=Settings())
