"""Batch jobs whose clusters run on the platform's Dask Gateway (real hub, proxy and gateway)."""

from __future__ import annotations

import json

import pytest

from eosc_pangeo.jobs import State, get_results, submit, wait

pytestmark = pytest.mark.slow
ALICE = "pgalice"  # a user of the `platform` fixture (tests/conftest.py)


def test_a_notebook_job_computes_on_the_gateway_as_its_user(
    platform, sum_notebook, settings, tmp_path
):
    gateway = platform.settings(jobs_dir=settings.jobs_dir)
    with platform.as_user(ALICE):
        job = submit(sum_notebook, ["n=30", "label=gw"], backend="gateway", settings=gateway)
        job = wait(job.id, timeout=240, settings=gateway)
    assert job.state == State.succeeded, job.reason
    answer = json.loads(
        (get_results(job.id, tmp_path / "out", gateway) / "results" / "answer.json").read_text()
    )
    assert answer == {"total": 435, "label": "gw", "cluster": "GatewayCluster"}


def test_a_gateway_cluster_the_notebook_left_open_is_stopped_when_the_job_fails(
    platform, settings, tmp_path, make_notebook
):
    notebook = make_notebook(
        tmp_path / "leaky.ipynb",
        "x = 1",
        "from eosc_pangeo import cluster\nleft_open = cluster(workers=1)",
        "raise RuntimeError('analysis failed')",
    )
    gateway = platform.settings(jobs_dir=settings.jobs_dir)
    with platform.as_user(ALICE):
        job = submit(notebook, backend="gateway", settings=gateway)
        job = wait(job.id, timeout=240, settings=gateway)
    assert job.state == State.failed and "analysis failed" in job.reason
    with platform.gateway(ALICE) as alice:
        assert alice.list_clusters() == []
    assert (
        "stopped the job's clusters"
        in (get_results(job.id, tmp_path / "out", gateway) / "logs" / "job.log").read_text()
    )
