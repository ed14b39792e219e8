"""The hub's jobs service (real hub, proxy, gateway): each user's jobs, and only theirs."""

from __future__ import annotations

import io
import json
import os
import pwd
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import requests

pytestmark = pytest.mark.slow
ALICE, BOB = "pgalice", "pgbob"  # users of the `platform` fixture (tests/conftest.py)


def call(platform, user: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(
        method,
        f"{platform.url}/services/jobs/{path}",
        timeout=60,
        headers={"Authorization": f"token {platform.tokens[user]}"},
        **kwargs,
    )


def submit_as(platform, user: str, notebook, parameters: dict, **fields) -> requests.Response:
    return call(
        platform,
        user,
        "POST",
        "api/jobs",
        json={
            "name": notebook.name,
            "content": notebook.read_text(),
            "parameters": parameters,
            **fields,
        },
    )


def wait_for_end(platform, user: str, job_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = call(platform, user, "GET", f"api/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


def test_a_user_submits_a_notebook_and_downloads_its_results_from_the_hub(platform, sum_notebook):
    submitted = submit_as(platform, ALICE, sum_notebook, {"n": "40", "label": "hub"})
    assert submitted.status_code == 201, submitted.text
    job = wait_for_end(platform, ALICE, submitted.json()["id"])
    assert job["state"] == "succeeded", job["reason"]
    assert (job["user"], job["backend"]) == (ALICE, "gateway")

    download = call(platform, ALICE, "GET", f"api/jobs/{job['id']}/results")
    assert download.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    assert json.loads(archive.read("results/answer.json")) == {
        "total": 780,
        "label": "hub",
        "cluster": "GatewayCluster",
    }
    assert {"sum.ipynb", "provenance.json", "logs/job.log"} <= set(archive.namelist())
    page = call(platform, ALICE, "GET", "")
    assert job["id"] in page.text and f"api/jobs/{job['id']}/results" in page.text


def test_a_user_neither_sees_nor_cancels_the_jobs_of_another(platform, tmp_path, make_notebook):
    notebook = make_notebook(
        tmp_path / "wait.ipynb", "seconds = 600", "import time\ntime.sleep(seconds)"
    )
    job_id = submit_as(platform, ALICE, notebook, {}).json()["id"]

    assert call(platform, BOB, "GET", f"api/jobs/{job_id}").status_code == 404
    assert call(platform, BOB, "POST", f"api/jobs/{job_id}/cancel").status_code == 404
    assert job_id not in [j["id"] for j in call(platform, BOB, "GET", "api/jobs").json()["jobs"]]
    assert call(platform, ALICE, "GET", f"api/jobs/{job_id}").json()["state"] != "cancelled"

    cancelled = call(platform, ALICE, "POST", f"api/jobs/{job_id}/cancel").json()
    assert cancelled["state"] == "cancelled"


def test_a_bad_parameter_is_refused_by_the_service_naming_it(platform, sum_notebook):
    refused = submit_as(platform, BOB, sum_notebook, {"nn": "1"})
    assert refused.status_code == 400
    assert "no parameter 'nn'" in refused.json()["message"]


def test_the_service_refuses_requests_without_a_hub_token(platform):
    assert requests.get(
        f"{platform.url}/services/jobs/api/jobs", timeout=30, allow_redirects=False
    ).status_code in (302, 403)


def test_the_cli_in_a_notebook_server_runs_jobs_through_the_service(platform, tmp_path):
    script = tmp_path / "hello.py"
    script.write_text(
        "from eosc_pangeo.jobs import parameters\n"
        "p = parameters(who='nobody')\nopen('hello.txt', 'w').write(p['who'])\n"
    )
    # What every notebook server of the hub has (platform.hub.add_jobs_service).
    env = {
        **os.environ,
        "EOSC_PANGEO_JOBS_URL": f"{platform.url}/services/jobs",
        "JUPYTERHUB_API_TOKEN": platform.tokens[BOB],
        "EOSC_PANGEO_JOBS_DIR": str(tmp_path / "not-used"),
    }
    cli = [sys.executable, "-m", "eosc_pangeo"]
    run = subprocess.run(
        [*cli, "run", str(script), "-p", "who=bob", "--backend", "local", "--wait"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    job_id = run.stdout.strip()
    subprocess.run(
        [*cli, "results", "get", job_id, str(tmp_path / "out")], env=env, check=True, timeout=120
    )
    assert (tmp_path / "out" / "results" / "hello.txt").read_text() == "bob"
    assert not (tmp_path / "not-used").exists(), "the job lives in the service's store"


# Tries to write into two folders; records who it ran as, in which Python, and what it could.
PROBE = """\
import json, os, pwd, sys
from eosc_pangeo.jobs import parameters

folders = parameters(lake="", other_user="")
written = {}
for name, folder in folders.items():
    try:
        open(os.path.join(folder, "written-by-a-job"), "w").close()
        written[name] = True
    except PermissionError:
        written[name] = False
json.dump({"user": pwd.getpwuid(os.getuid()).pw_name, "prefix": sys.prefix,
           "written": written}, open("probe.json", "w"))
"""

HELLO = (
    "from eosc_pangeo.jobs import parameters\np = parameters(who='nobody')\n"
    "open('hello.txt', 'w').write(p['who'])\n"
)


def results_of(platform, user: str, job_id: str) -> zipfile.ZipFile:
    download = call(platform, user, "GET", f"api/jobs/{job_id}/results")
    assert download.status_code == 200, download.text
    return zipfile.ZipFile(io.BytesIO(download.content))


def test_a_job_runs_as_its_users_account_and_can_write_only_what_they_can(platform, tmp_path):
    state = platform.hub.platform
    hello = tmp_path / "hello.py"
    hello.write_text(HELLO)
    bobs = submit_as(platform, BOB, hello, {}, backend="local").json()
    bobs_store = state.jobs_directory / BOB  # another user's private folder
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    submitted = submit_as(
        platform, ALICE, probe, {"lake": state.lake, "other_user": str(bobs_store)}, backend="local"
    )
    job = wait_for_end(platform, ALICE, submitted.json()["id"])

    assert job["state"] == "succeeded", job["reason"]
    found = json.loads(results_of(platform, ALICE, job["id"]).read("results/probe.json"))
    assert found == {
        "user": ALICE,
        "prefix": state.environment,
        "written": {"lake": False, "other_user": False},
    }
    result = state.jobs_directory / ALICE / job["id"] / "work" / "probe.json"
    assert result.stat().st_uid == pwd.getpwnam(ALICE).pw_uid
    assert not (bobs_store / "written-by-a-job").exists()
    assert wait_for_end(platform, BOB, bobs["id"])["state"] == "succeeded"


def test_a_rerun_through_the_service_is_a_new_job_of_its_user_only(platform, tmp_path):
    hello = tmp_path / "hello.py"
    hello.write_text(HELLO)
    first = submit_as(platform, BOB, hello, {"who": "bob"}, backend="local").json()
    assert call(platform, ALICE, "POST", f"api/jobs/{first['id']}/rerun").status_code == 404
    again = call(
        platform,
        BOB,
        "POST",
        f"api/jobs/{first['id']}/rerun",
        json={"parameters": {"who": "bob again"}},
    )
    assert again.status_code == 201, again.text

    said = {}
    for job_id in (first["id"], again.json()["id"]):
        assert wait_for_end(platform, BOB, job_id)["state"] == "succeeded"
        said[job_id] = results_of(platform, BOB, job_id).read("results/hello.txt").decode()
    assert said == {first["id"]: "bob", again.json()["id"]: "bob again"}
    assert again.json()["rerun_of"] == first["id"]


def jobs_service_pid(platform) -> int:
    """The jobs service of this test's hub (other hubs may run on the machine)."""
    port = str(platform.hub.platform.ports["jobs"])
    for entry in os.listdir("/proc"):
        try:
            command = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"eosc_pangeo.jobs.service" in command and port.encode() in command:
            return int(entry)
    raise AssertionError("the jobs service does not run")


def test_jobs_outlive_a_restart_of_the_jobs_service(platform, tmp_path):
    hello = tmp_path / "hello.py"
    hello.write_text(HELLO)
    ended = submit_as(platform, ALICE, hello, {"who": "before"}, backend="local").json()
    wait_for_end(platform, ALICE, ended["id"])
    slow = tmp_path / "slow.py"
    slow.write_text(
        "import time\nfrom eosc_pangeo.jobs import parameters\n"
        "seconds = parameters(seconds=1)['seconds']\ntime.sleep(seconds)\n"
        "open('slept.txt', 'w').write(str(seconds))\n"
    )
    running = submit_as(platform, ALICE, slow, {"seconds": 8}, backend="local").json()
    deadline = time.monotonic() + 60
    while call(platform, ALICE, "GET", f"api/jobs/{running['id']}").json()["state"] != "running":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.5)

    killed = jobs_service_pid(platform)
    os.kill(killed, signal.SIGKILL)  # the worst case: no chance to clean up
    deadline = time.monotonic() + 120  # the hub polls its managed services every 30 s
    while True:
        assert time.monotonic() < deadline, "the hub did not restart the jobs service"
        try:
            listed = call(platform, ALICE, "GET", "api/jobs")
            if listed.status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(1)

    assert jobs_service_pid(platform) != killed
    assert {ended["id"], running["id"]} <= {job["id"] for job in listed.json()["jobs"]}
    job = wait_for_end(platform, ALICE, running["id"])
    assert job["state"] == "succeeded", job["reason"]
    assert results_of(platform, ALICE, running["id"]).read("results/slept.txt") == b"8"


# The known answer, computed by a worker of the job's own Slurm cluster, with the account that
# worker runs as. cores and memory are given: the hub's service holds no site configuration of
# dask-jobqueue here (/etc/dask is machine-wide, and the test's Slurm has none), whose defaults
# leave both unset.
SUM_ON_SLURM = """\
import json, os, pwd
from eosc_pangeo import cluster

def account():
    return pwd.getpwuid(os.getuid()).pw_name

with cluster(cores=1, memory="1GiB") as dask_cluster, dask_cluster.get_client() as client:
    total = client.submit(sum, range(n)).result()
    worker = client.submit(account).result()
    kind = type(dask_cluster).__name__
with open("answer.json", "w") as answer:
    json.dump({"total": total, "label": label, "cluster": kind, "worker": worker}, answer)
"""


def slurm_job_owner(native_id: str) -> str:
    """The user Slurm ran a batch job as (``scontrol`` keeps ended jobs for ``MinJobAge``)."""
    shown = subprocess.run(
        ["scontrol", "show", "job", native_id], capture_output=True, text=True, check=True
    ).stdout
    return next(field for field in shown.split() if field.startswith("UserId=")).split("=")[1]


def test_a_users_slurm_job_submitted_through_the_service_runs_as_them_and_comes_back(
    platform, slurm, tmp_path, make_notebook
):
    notebook = make_notebook(tmp_path / "sum.ipynb", 'n = 10\nlabel = "default"', SUM_ON_SLURM)
    submitted = submit_as(platform, ALICE, notebook, {"n": "20", "label": "hpc"}, backend="slurm")
    assert submitted.status_code == 201, submitted.text
    job = wait_for_end(platform, ALICE, submitted.json()["id"])

    assert job["state"] == "succeeded", job["reason"]
    assert (job["user"], job["backend"]) == (ALICE, "slurm")
    assert slurm_job_owner(job["native_id"]).startswith(f"{ALICE}(")
    archive = results_of(platform, ALICE, job["id"])
    assert json.loads(archive.read("results/answer.json")) == {
        "total": 190,
        "label": "hpc",
        "cluster": "SLURMCluster",
        "worker": ALICE,
    }


# Reads the lake of its settings (EOSC_PANGEO_LAKE, no storage options) as a notebook does.
READS_THE_LAKE = """\
import json, os
from eosc_pangeo.lake import Lake, read_insitu

lake = Lake.from_url()
json.dump({"collections": lake.collection_ids(), "rows": len(read_insitu(lake, "stations")),
           "hub_token": os.environ["JUPYTERHUB_API_TOKEN"]}, open("read.json", "w"))
"""


@pytest.fixture
def stations_on_s3(s3_lake, tmp_path):
    """A lake on the S3 server holding one in-situ collection, ``stations``."""
    from eosc_pangeo.demo_data.stations import StationSpec, write_stations
    from eosc_pangeo.lake import ingest_insitu

    files = write_stations(StationSpec(stations=2, days=3), tmp_path / "stations")
    ingest_insitu(s3_lake, "stations", "ocean", [str(path) for path in files])
    return s3_lake


def test_a_job_for_a_user_reads_an_s3_lake_with_the_lake_keys_but_not_the_services_token(
    platform, stations_on_s3, s3_server, monkeypatch, tmp_path
):
    from eosc_pangeo.config import Settings
    from eosc_pangeo.jobs import api
    from eosc_pangeo.jobs.accounts import Account
    from eosc_pangeo.lake import read_insitu

    state = platform.hub.platform
    # The jobs service's environment on a deployment whose lake is on S3 (the chart's).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server["secret"])
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server["endpoint_url"])
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "the service's own token")
    script = tmp_path / "read.py"
    script.write_text(READS_THE_LAKE)

    # As JobsHandler.submission submits for a user.
    job = api.submit(
        script,
        backend="local",
        settings=Settings(lake=stations_on_s3.url, jobs_dir=str(state.jobs_directory)),
        user=ALICE,
        account=Account.of(ALICE, os.path.join(state.environment, "bin", "python")),
        environment={"JUPYTERHUB_API_TOKEN": "a token of the user's"},
    )
    job = wait_for_end(platform, ALICE, job.id)

    assert job["state"] == "succeeded", job["reason"]
    read = json.loads(results_of(platform, ALICE, job["id"]).read("results/read.json"))
    assert read == {
        "collections": ["stations"],
        "rows": len(read_insitu(stations_on_s3, "stations")),
        "hub_token": "a token of the user's",
    }
