"""The hub's jobs service (real hub, proxy, gateway): each user's jobs, and only theirs."""

from __future__ import annotations

import io
import json
import os
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
        method, f"{platform.url}/services/jobs/{path}", timeout=60,
        headers={"Authorization": f"token {platform.tokens[user]}"}, **kwargs)


def submit_as(platform, user: str, notebook, parameters: dict) -> requests.Response:
    return call(platform, user, "POST", "api/jobs", json={
        "name": notebook.name, "content": notebook.read_text(), "parameters": parameters})


def wait_for_end(platform, user: str, job_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = call(platform, user, "GET", f"api/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


def test_a_user_submits_a_notebook_and_downloads_its_results_from_the_hub(
        platform, sum_notebook):
    submitted = submit_as(platform, ALICE, sum_notebook, {"n": "40", "label": "hub"})
    assert submitted.status_code == 201, submitted.text
    job = wait_for_end(platform, ALICE, submitted.json()["id"])
    assert job["state"] == "succeeded", job["reason"]
    assert (job["user"], job["backend"]) == (ALICE, "gateway")

    download = call(platform, ALICE, "GET", f"api/jobs/{job['id']}/results")
    assert download.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    assert json.loads(archive.read("results/answer.json")) == {
        "total": 780, "label": "hub", "cluster": "GatewayCluster"}
    assert {"sum.ipynb", "provenance.json", "logs/job.log"} <= set(archive.namelist())
    page = call(platform, ALICE, "GET", "")
    assert job["id"] in page.text and f"api/jobs/{job['id']}/results" in page.text


def test_a_user_neither_sees_nor_cancels_the_jobs_of_another(platform, tmp_path,
                                                             make_notebook):
    notebook = make_notebook(tmp_path / "wait.ipynb", "seconds = 600",
                             "import time\ntime.sleep(seconds)")
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
    assert requests.get(f"{platform.url}/services/jobs/api/jobs", timeout=30,
                        allow_redirects=False).status_code in (302, 403)


def test_the_cli_in_a_notebook_server_runs_jobs_through_the_service(platform, tmp_path):
    script = tmp_path / "hello.py"
    script.write_text("from eosc_pangeo.jobs import parameters\n"
                      "p = parameters(who='nobody')\nopen('hello.txt', 'w').write(p['who'])\n")
    # What every notebook server of the hub has (platform.hub.add_jobs_service).
    env = {**os.environ, "EOSC_PANGEO_JOBS_URL": f"{platform.url}/services/jobs",
           "JUPYTERHUB_API_TOKEN": platform.tokens[BOB],
           "EOSC_PANGEO_JOBS_DIR": str(tmp_path / "not-used")}
    cli = [sys.executable, "-m", "eosc_pangeo"]
    run = subprocess.run([*cli, "run", str(script), "-p", "who=bob", "--backend", "local",
                          "--wait"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    job_id = run.stdout.strip()
    subprocess.run([*cli, "results", "get", job_id, str(tmp_path / "out")], env=env,
                   check=True, timeout=120)
    assert (tmp_path / "out" / "results" / "hello.txt").read_text() == "bob"
    assert not (tmp_path / "not-used").exists(), "the job lives in the service's store"
