"""The platform on one machine, as its users meet it: through the login form, the hub's REST
API, their servers' kernels, the catalogue and Dask Gateway (all real processes)."""

from __future__ import annotations

import json
import os
import pwd
import signal
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from eosc_pangeo.cli import app
from eosc_pangeo.platform import local
from eosc_pangeo.platform.session import HubError, HubSession

CLUSTER_SUM = """
import eosc_pangeo
cluster = eosc_pangeo.cluster(workers=1)
client = cluster.get_client()
print(client.submit(sum, range(101)).result())
cluster.shutdown()
"""


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout} s")


def test_the_admin_logs_in_with_the_password_from_a_private_file(platform):
    password_file = platform.state.admin_password_file
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    session = HubSession(platform.url, platform.state.admin_name)
    session.login(password_file.read_text().strip())
    assert session.api("GET", "/user").json()["admin"] is True


def test_a_wrong_password_is_refused(platform):
    name = platform.add_user("wrongpw")
    with pytest.raises(HubError, match="refused"):
        HubSession(platform.url, name).login("not-the-password")


def test_users_are_added_listed_and_removed_with_the_cli(platform, tmp_path):
    state = ["--state", platform.state.state_directory]
    name = f"{platform.prefix}cli"
    password_file = tmp_path / "password"
    password_file.write_text("a-long-cli-password\n")
    runner = CliRunner()
    added = runner.invoke(
        app,
        ["users", "add", name, "--group", "ocean", "--password-file", str(password_file), *state],
    )
    assert added.exit_code == 0, added.output
    platform.passwords[name] = "a-long-cli-password"  # the fixture removes its Unix account
    listed = json.loads(runner.invoke(app, ["users", "list", "--json", *state]).output)
    assert {"name": name, "admin": False, "groups": ["ocean"]} in listed
    session = platform.session(name)
    assert "ocean" in session.api("GET", "/user").json()["groups"]
    assert runner.invoke(app, ["users", "remove", name, *state]).exit_code == 0
    with pytest.raises(HubError, match="refused"):
        platform.session(name)


def test_a_bad_user_name_is_refused_with_what_to_do(platform):
    result = CliRunner().invoke(
        app, ["users", "add", "Not A Name", "--state", platform.state.state_directory]
    )
    assert result.exit_code == 1
    assert "lower-case letters" in result.output


def test_a_server_runs_as_its_users_unix_account_with_the_example_notebooks(alice):
    output = alice.run(
        "import os, pwd; print(pwd.getpwuid(os.getuid()).pw_name); "
        "print(sorted(os.listdir(os.path.expanduser('~/notebooks'))))"
    )
    user, notebooks = output.splitlines()
    assert user == alice.name
    assert "01-discover-data.ipynb" in notebooks


def test_a_server_is_forked_from_the_fork_server_with_its_users_ids_only(platform):
    session = platform.session(platform.add_user("forked"))
    session.start_server()
    try:
        pid = _server_pid(platform, session.name)
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
        user = pwd.getpwnam(session.name)
        assert status["Uid"].split() == [str(user.pw_uid)] * 4
        assert status["Gid"].split() == [str(user.pw_gid)] * 4
        groups = os.getgrouplist(session.name, user.pw_gid)
        assert sorted(map(int, status["Groups"].split())) == sorted(groups)
        parent = Path(f"/proc/{status['PPid'].strip()}/cmdline").read_bytes()
        assert b"eosc_pangeo.platform.forkserver" in parent
        assert session.run("print(1 + 1)").strip() == "2"
    finally:
        session.stop_server()


def test_search_open_and_cluster_need_no_arguments_in_a_notebook(alice):
    output = alice.run(
        "import eosc_pangeo\n"
        "hits = eosc_pangeo.search(variables=['sst'])\n"
        "ds = hits[0].open()\n"
        "print(len(hits) > 0, len(ds.data_vars) > 0)\n" + CLUSTER_SUM
    )
    assert output.split() == ["True", "True", "5050"]


def test_a_notebook_ingests_and_reads_a_grid_by_reference(alice):
    """The users' environment has what collections ingested by reference need (icechunk)."""
    output = alice.run(
        "import pathlib, tempfile\n"
        "from eosc_pangeo import demo_data, lake\n"
        "root = pathlib.Path(tempfile.mkdtemp())\n"
        "files = demo_data.write_sst(demo_data.SstSpec(days=3, resolution=5.0), root)\n"
        "lake.ingest_grid(str(root / 'lake'), 'sst', 'ocean', files, by_reference=True,\n"
        "                 chunking='map')\n"
        "ds = lake.open_dataset(str(root / 'lake'), 'sst')\n"
        "print(ds.sizes['time'], bool(ds.analysed_sst.notnull().any().item()))\n"
    )
    assert output.split() == ["3", "True"]


def test_a_notebook_cannot_write_the_lake(alice):
    output = alice.run(
        "import os\n"
        "try:\n"
        "    open(os.path.join(os.environ['EOSC_PANGEO_LAKE'], 'x'), 'w')\n"
        "    print('written')\n"
        "except PermissionError:\n"
        "    print('refused')\n"
    )
    assert output.strip() == "refused"


def test_members_of_the_ingest_group_may_write_the_lake(platform):
    writer = platform.session(platform.add_user("ingester", groups=(local.INGEST_GROUP,)))
    writer.start_server()
    try:
        output = writer.run(
            "import os\n"
            "path = os.path.join(os.environ['EOSC_PANGEO_LAKE'], 'ingest-check')\n"
            "open(path, 'w').close(); os.remove(path); print('written')"
        )
    finally:
        writer.stop_server()
    assert output.strip() == "written"


def test_a_user_cannot_reach_another_users_server_or_account(alice, bob):
    as_bob = {"Authorization": f"token {bob.token}"}
    server = requests.get(
        f"{alice.url}/user/{alice.name}/api/contents",
        headers=as_bob,
        allow_redirects=False,
        timeout=30,
    )
    assert server.status_code in (302, 403, 404)
    account = requests.get(f"{alice.url}/hub/api/users/{alice.name}", headers=as_bob, timeout=30)
    assert account.status_code in (403, 404)
    start = requests.post(
        f"{alice.url}/hub/api/users/{alice.name}/server", headers=as_bob, timeout=30
    )
    assert start.status_code in (403, 404)


def test_a_user_cannot_see_or_stop_another_users_cluster(platform, alice, bob):
    with platform.gateway(alice) as alices, platform.gateway(bob) as bobs:
        cluster = alices.new_cluster()
        try:
            assert bobs.list_clusters() == []
            with pytest.raises(Exception, match="403|Forbidden|not found|404"):
                bobs.connect(cluster.name)
        finally:
            cluster.shutdown()


def test_an_expired_or_revoked_token_is_refused(alice):
    def whoami(token):
        return requests.get(
            f"{alice.url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=30
        )

    short = alice.api("POST", f"/users/{alice.name}/tokens", json={"expires_in": 1}).json()
    revoked = alice.api("POST", f"/users/{alice.name}/tokens", json={}).json()
    assert whoami(revoked["token"]).status_code == 200
    alice.api("DELETE", f"/users/{alice.name}/tokens/{revoked['id']}")
    time.sleep(1.5)
    assert whoami(short["token"]).status_code == 403
    assert whoami(revoked["token"]).status_code == 403


def test_the_catalogue_answers_hub_users_only(platform, alice):
    assert requests.get(platform.state.catalog_url, timeout=30).status_code == 401
    bad = requests.get(
        platform.state.catalog_url, headers={"Authorization": "token nope"}, timeout=30
    )
    assert bad.status_code == 401
    landing = requests.get(platform.state.catalog_url, headers=alice.headers, timeout=30)
    assert landing.status_code == 200
    assert all(
        link["href"].startswith(platform.state.catalog_url)
        for link in landing.json()["links"]
        if link["rel"] in ("self", "root", "data")
    )


def test_later_starts_keep_a_users_edits_to_the_notebooks(platform):
    session = platform.session(platform.add_user("editor"))
    session.start_server()
    notebook = "notebooks/01-discover-data.ipynb"
    session.server_api(
        "PUT",
        f"/contents/{notebook}",
        json={"type": "file", "format": "text", "content": "my edits"},
    )
    session.server_api("DELETE", "/contents/notebooks/gone.txt")
    session.stop_server()
    wait_until(
        lambda: not session.api("GET", f"/users/{session.name}").json()["servers"],
        60,
        "server stopped",
    )
    session.start_server()
    kept = session.server_api(
        "GET", f"/contents/{notebook}", params={"format": "text", "type": "file"}
    )
    assert kept.json()["content"] == "my edits"
    session.stop_server()


def test_ten_users_compute_on_the_gateway_at_the_same_time(platform):
    names = [platform.add_user(f"many{i}") for i in range(10)]

    def compute(name):
        session = platform.session(name)
        session.start_server(timeout=300)
        try:
            return session.run(CLUSTER_SUM, timeout=300).strip()
        finally:
            session.stop_server()

    with ThreadPoolExecutor(10) as pool:
        assert list(pool.map(compute, names)) == ["5050"] * 10


def test_a_killed_catalogue_is_restarted_by_the_hub(platform, alice):
    pid = int(wait_until(lambda: _service_pid("catalog_service", platform), 10, "pid"))
    os.kill(pid, signal.SIGKILL)
    # The fixture's platform polls its services every 2 s (PlatformState.service_poll_seconds);
    # the new process needs its imports first, which take long on a loaded 2-core machine.
    wait_until(
        lambda: _service_pid("catalog_service", platform) not in (None, pid),
        60,
        "catalogue restarted",
    )
    wait_until(
        lambda: (
            requests.get(platform.state.catalog_url, headers=alice.headers, timeout=10).status_code
            == 200
        ),
        30,
        "catalogue answers",
    )
    assert "True" in alice.run("import eosc_pangeo; print(len(eosc_pangeo.search()) > 0)")


def test_a_killed_gateway_is_restarted_by_the_hub(platform, alice):
    pid = int(wait_until(lambda: _service_pid("gateway", platform), 10, "pid"))
    os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: _service_pid("gateway", platform) not in (None, pid), 60, "gateway restarted"
    )
    wait_until(
        lambda: (
            requests.get(f"{platform.state.gateway_address}/api/health", timeout=10).status_code
            == 200
        ),
        30,
        "gateway answers",
    )
    assert alice.run(CLUSTER_SUM, timeout=180).strip() == "5050"


def test_a_server_killed_with_sigkill_is_shown_stopped_its_clusters_stopped_and_starts_again(
    platform,
):
    session = platform.session(platform.add_user("killed"))
    session.start_server()
    with platform.gateway(session) as gateway:
        scheduler = _scheduler_pid(gateway.new_cluster().name)
        os.kill(_server_pid(platform, session.name), signal.SIGKILL)
        wait_until(
            lambda: not session.api("GET", f"/users/{session.name}").json()["servers"],
            60,
            "server shown stopped",
        )
        wait_until(lambda: not _alive(scheduler), 60, "its cluster's scheduler gone")
        assert gateway.list_clusters() == []
    session.start_server()
    assert session.run("print(1 + 1)").strip() == "2"
    session.stop_server()


def test_servers_survive_a_hub_restart(platform, alice):
    local.stop_hub_only(platform.state)
    local.start(platform.state, attached=True)
    assert alice.run("print('still here')").strip() == "still here"


def test_a_users_dask_cluster_and_its_workers_survive_a_hub_restart(platform, alice):
    with platform.gateway(alice) as gateway:
        cluster = gateway.new_cluster()
        try:
            cluster.scale(1)
            with cluster.get_client() as client:
                client.wait_for_workers(1, timeout=120)
                workers = set(client.scheduler_info()["workers"])
            local.stop_hub_only(platform.state)
            local.start(platform.state, attached=True)
            assert [c.name for c in gateway.list_clusters()] == [cluster.name]
            with gateway.connect(cluster.name) as again, again.get_client() as client:
                assert set(client.scheduler_info()["workers"]) == workers
                assert client.submit(sum, range(101)).result(timeout=120) == 5050
        finally:
            cluster.shutdown()


def test_the_platform_going_down_stops_every_dask_cluster(platform):
    """``eosc-pangeo down`` stops clusters even of users whose server is not running: it tells
    the gateway so (``local.stop`` then stops the hub as ``stop_hub_only`` does, after the
    servers, which the other tests of this session still use)."""
    session = platform.session(platform.add_user("noserver"))
    with platform.gateway(session) as gateway:
        cluster = gateway.new_cluster()
        scheduler = _scheduler_pid(cluster.name)
        platform.state.stop_clusters_flag.touch()
        local.stop_hub_only(platform.state)
        try:
            assert not _alive(scheduler)
        finally:
            local.start(platform.state, attached=True)
    with platform.gateway(session) as gateway:
        assert gateway.list_clusters() == []


def test_a_stopped_hub_leaves_no_service_behind(platform):
    """The hub stops its services one after another: stopped before it reaches the last (the
    data service once took 30 s), it left the jobs service and the idle culler running."""
    services = _service_pids(platform)
    local.stop_hub_only(platform.state)
    try:
        assert services and not [pid for pid in services if _alive(pid)]
    finally:
        local.start(platform.state, attached=True)


def test_a_kernel_speaks_jupyterlabs_binary_protocol_through_the_hubs_proxy(alice):
    """JupyterLab offers the subprotocol ``v1.kernel.websocket.jupyter.org`` and then sends
    binary frames: the proxy must pass the server's choice back and keep the frames binary."""
    import asyncio
    import uuid

    from jupyter_server.services.kernels.connection.base import (
        deserialize_msg_from_ws_v1,
        serialize_msg_to_ws_v1,
    )
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    kernel_id = alice.server_api("POST", "/kernels", json={"name": "python3"}).json()["id"]
    url = f"{alice.url}/user/{alice.name}/api/kernels/{kernel_id}/channels"
    request = {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "username": alice.name,
            "session": uuid.uuid4().hex,
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {"code": "print(6 * 7)", "silent": False, "allow_stdin": False},
    }

    async def execute() -> str:
        socket = await websocket_connect(
            HTTPRequest(url.replace("http", "ws", 1), headers=alice.headers),
            subprotocols=["v1.kernel.websocket.jupyter.org"],
        )
        assert socket.selected_subprotocol == "v1.kernel.websocket.jupyter.org"
        socket.write_message(
            serialize_msg_to_ws_v1(request, "shell", pack=lambda part: json.dumps(part).encode()),
            binary=True,
        )
        try:
            while True:
                frame = await asyncio.wait_for(socket.read_message(), 120)
                assert isinstance(frame, bytes), f"a text frame in the binary protocol: {frame}"
                header, parent, _, content = (
                    json.loads(part) for part in deserialize_msg_from_ws_v1(frame)[1][:4]
                )
                if parent.get("msg_id") == request["header"]["msg_id"]:
                    if header["msg_type"] == "stream":
                        return content["text"]
        finally:
            socket.close()

    try:
        assert asyncio.run(execute()).strip() == "42"
    finally:
        alice.server_api("DELETE", f"/kernels/{kernel_id}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as file:
        return file.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def _scheduler_pid(cluster_name: str) -> int:
    """The process of the scheduler of Dask Gateway's cluster ``cluster_name``."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as file:
                    environment = file.read().split(b"\0")
                with open(f"/proc/{entry}/cmdline", "rb") as file:
                    command = file.read()
            except OSError:
                continue
            name = f"DASK_GATEWAY_CLUSTER_NAME={cluster_name}".encode()
            if name in environment and b"scheduler" in command:
                return int(entry)
    raise AssertionError(f"no scheduler process of cluster {cluster_name}")


def _service_pids(platform) -> list[int]:
    """The processes the hub started, but for the users' servers (which outlive it)."""
    hub = local.running_pid(platform.state)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as file:
                    parent = int(file.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as file:
                    command = file.read()
            except OSError:
                continue
            if parent == hub and b"jupyterhub-singleuser" not in command:
                found.append(int(entry))
    return found


def _service_pid(module: str, platform) -> int | None:
    """The process of this platform's service ``module`` (by an argument only it has)."""
    marker = (
        str(platform.state.ports["catalog"])
        if module == "catalog_service"
        else str(platform.state.state / "gateway.json")
    )
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as file:
                    command = file.read().split(b"\0")
            except OSError:
                continue
            if f"eosc_pangeo.platform.{module}".encode() in command and marker.encode() in command:
                return int(entry)
    return None


def _server_pid(platform, name: str) -> int:
    """The pid of ``name``'s server as the hub records it, checked to run as that account."""
    pid = platform.hub.api("GET", f"/users/{name}").json()["servers"][""]["state"]["pid"]
    assert pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name == name
    return pid
