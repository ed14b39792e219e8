"""Batch jobs on the local backend: real runner processes, kernels and LocalClusters."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import time

import nbformat
import pytest

from eosc_pangeo.jobs import (
    Job,
    JobNotFound,
    JobStore,
    ParameterError,
    State,
    cancel,
    get_results,
    submit,
    wait,
)
from eosc_pangeo.jobs.api import get_job
from eosc_pangeo.jobs.backends import process_start_time
from eosc_pangeo.jobs.store import JobDirectory, new_job_id

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "eosc_pangeo"]


def cli(*args: str, settings, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "EOSC_PANGEO_JOBS_DIR": settings.jobs_dir}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env, check=check, timeout=300
    )


def wait_until(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_a_notebook_run_with_parameters_comes_back_with_its_results(
    sum_notebook, settings, tmp_path
):
    run = cli(
        "run",
        str(sum_notebook),
        "-p",
        "n=100",
        "-p",
        "label=first",
        "--backend",
        "local",
        "--wait",
        settings=settings,
    )
    job_id = run.stdout.strip()
    cli("results", "get", job_id, str(tmp_path / "out"), settings=settings)

    out = tmp_path / "out"
    answer = json.loads((out / "results" / "answer.json").read_text())
    assert answer == {"total": 4950, "label": "first", "cluster": "LocalCluster"}
    executed = nbformat.read(out / "sum.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["parameters"] == {"n": 100, "label": "first"}
    assert provenance["state"] == "succeeded"
    assert provenance["software"]["packages"]["papermill"]
    assert provenance["results"][0]["path"] == "answer.json"
    assert f"job {job_id} succeeded" in (out / "logs" / "job.log").read_text()


def test_two_runs_of_one_notebook_keep_their_own_results(sum_notebook, settings, tmp_path):
    first = submit(sum_notebook, {"n": 3, "label": "a"}, backend="local", settings=settings)
    second = submit(sum_notebook, {"n": 4, "label": "b"}, backend="local", settings=settings)
    for job in (first, second):
        assert wait(job.id, timeout=180, settings=settings).state == State.succeeded
    answers = [
        json.loads(
            (
                get_results(job.id, tmp_path / job.id, settings) / "results" / "answer.json"
            ).read_text()
        )
        for job in (first, second)
    ]
    assert [(a["total"], a["label"]) for a in answers] == [(3, "a"), (6, "b")]


def test_a_notebook_that_raises_fails_and_its_executed_notebook_keeps_the_traceback(
    tmp_path, settings, make_notebook
):
    notebook = make_notebook(
        tmp_path / "bad.ipynb",
        "threshold = 1",
        "raise ValueError(f'threshold {threshold} is too low')",
    )
    run = cli("run", str(notebook), "-p", "threshold=0", "--wait", settings=settings, check=False)
    assert run.returncode == 1
    job = get_job(run.stdout.strip(), settings)
    assert job.state == State.failed
    assert "ValueError: threshold 0 is too low" in job.reason
    executed = nbformat.read(get_results(job.id, tmp_path / "out", settings) / "bad.ipynb", 4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors[0].ename == "ValueError" and errors[0].traceback


def test_a_killed_kernel_fails_the_job_with_the_signal_instead_of_hanging(
    tmp_path, settings, make_notebook
):
    notebook = make_notebook(
        tmp_path / "oom.ipynb",
        "x = 1",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
        "print('never')",
    )
    job = submit(notebook, backend="local", settings=settings)
    job = wait(job.id, timeout=180, settings=settings)
    assert job.state == State.failed
    assert "killed by SIGKILL" in job.reason


def test_cancel_stops_the_job_and_the_workers_of_its_cluster(tmp_path, settings, make_notebook):
    notebook = make_notebook(
        tmp_path / "long.ipynb",
        "minutes = 10",
        "import json, os, time\nfrom eosc_pangeo import cluster\n"
        "c = cluster(workers=1)\nclient = c.get_client()\n"
        "pids = list(client.run(os.getpid).values())\n"
        "open('pids.json', 'w').write(json.dumps(pids))\ntime.sleep(minutes * 60)",
    )
    job = submit(notebook, backend="local", settings=settings)
    pids_file = JobStore(settings.jobs_dir).directory(job.id).work / "pids.json"
    assert wait_until(pids_file.exists, timeout=120)
    worker_pids = json.loads(pids_file.read_text())

    job = cancel(job.id, settings)

    assert job.state == State.cancelled
    assert process_start_time(int(job.native_id)) is None, "the runner must be gone"
    assert all(process_start_time(pid) is None for pid in worker_pids), "workers must be gone"


def test_a_script_gets_its_parameters_and_its_files_are_results(tmp_path, settings):
    script = tmp_path / "count.py"
    script.write_text(
        "from eosc_pangeo.jobs import parameters\n"
        "p = parameters(n=2, word='x')\n"
        "open('out.txt', 'w').write(p['word'] * p['n'])\n"
    )
    job = submit(script, ["n=3", "word=ab"], backend="local", settings=settings)
    assert wait(job.id, timeout=120, settings=settings).state == State.succeeded
    results = get_results(job.id, tmp_path / "out", settings)
    assert (results / "results" / "out.txt").read_text() == "ababab"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (["treshold=2"], "no parameter 'treshold' in its `parameters` cell (it has: label, n)"),
        (["n=ten"], "parameter 'n' of sum.ipynb takes a int (its default is 10); 'ten' is not"),
        (["n"], "give parameters as NAME=VALUE"),
    ],
)
def test_a_bad_parameter_is_refused_before_anything_is_submitted(
    sum_notebook, settings, given, message
):
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        submit(sum_notebook, given, backend="local", settings=settings)
    assert JobStore(settings.jobs_dir).list() == []


def test_a_bad_parameter_is_refused_by_the_cli_naming_it(sum_notebook, settings):
    run = cli("run", str(sum_notebook), "-p", "lable=x", settings=settings, check=False)
    assert run.returncode == 1 and "'lable'" in run.stderr and not run.stdout


def test_a_job_whose_runner_was_killed_is_failed_not_running_for_ever(
    tmp_path, settings, make_notebook
):
    notebook = make_notebook(tmp_path / "slow.ipynb", "s = 600", "import time\ntime.sleep(s)")
    job = submit(notebook, backend="local", settings=settings)
    assert wait_until(lambda: get_job(job.id, settings).state == State.running)
    os.killpg(int(job.native_id), 9)  # the runner and its kernel, as a lost node would

    assert wait_until(lambda: get_job(job.id, settings).state == State.failed, timeout=20)
    assert "ended without recording a result" in get_job(job.id, settings).reason


def stored_job(settings, **fields) -> JobDirectory:
    """A job record in the store, as submit() writes it, with no runner."""
    job = Job(
        id=new_job_id(),
        user=getpass.getuser(),
        name="sum.ipynb",
        kind="notebook",
        source="/tmp/sum.ipynb",
        backend="local",
        **fields,
    )
    return JobStore(settings.jobs_dir).create(job)


def test_an_ended_job_keeps_its_state_whatever_comes_late(settings):
    directory = stored_job(settings, state=State.running)
    directory.update(state=State.cancelled, reason="cancelled by its user")
    # The runner finishing afterwards must not turn the cancelled job into a success.
    late = directory.update(state=State.succeeded, reason=None)
    assert (late.state, late.reason) == (State.cancelled, "cancelled by its user")
    assert directory.read() == late


def test_a_record_is_never_half_written(settings, monkeypatch):
    directory = stored_job(settings)
    before = directory.record.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        directory.update(state=State.running, reason="x" * 100_000)
    assert directory.record.read_bytes() == before
    assert sorted(p.name for p in directory.path.glob(".job.json*")) == []


def test_the_job_store_is_read_back_by_a_new_process(settings):
    # What a restarted hub, CLI or machine does: nothing but the files carries the jobs over.
    job = stored_job(settings, parameters={"n": 2}).update(state=State.running)
    JobStore(settings.jobs_dir).directory(job.id).update(state=State.failed, reason="lost")
    listed = json.loads(cli("jobs", "list", "--json", settings=settings).stdout)
    assert [(j["id"], j["state"], j["reason"], j["parameters"]) for j in listed] == [
        (job.id, "failed", "lost", {"n": 2})
    ]


def test_jobs_of_one_user_are_not_in_the_store_of_another(settings):
    mine = stored_job(settings)
    other = JobStore(settings.jobs_dir, user="someone-else")
    assert other.list() == []
    with pytest.raises(JobNotFound, match="user someone-else has no job"):
        other.get(mine.read().id)


# A script job: no cluster, so that a rerun test costs seconds.
GREETING = (
    "from eosc_pangeo.jobs import parameters\n"
    "p = parameters(who='nobody', times=1)\n"
    "open('greeting.txt', 'w').write(' '.join(['hello ' + p['who']] * p['times']))\n"
)


def test_a_rerun_is_a_new_job_with_the_first_input_and_the_parameters_given(settings, tmp_path):
    script = tmp_path / "greet.py"
    script.write_text(GREETING)
    first = cli(
        "run",
        str(script),
        "-p",
        "who=ann",
        "-p",
        "times=2",
        "--backend",
        "local",
        "--wait",
        settings=settings,
    ).stdout.strip()
    script.write_text("raise SystemExit('edited after the run: not what reruns')\n")
    again = cli("jobs", "rerun", first, "-p", "who=bo", settings=settings).stdout.strip()
    assert wait(again, timeout=180, settings=settings).state == State.succeeded

    greetings = {
        job_id: (
            get_results(job_id, tmp_path / job_id, settings) / "results" / "greeting.txt"
        ).read_text()
        for job_id in (first, again)
    }
    assert greetings == {first: "hello ann hello ann", again: "hello bo hello bo"}
    rerun = get_job(again, settings)
    assert (rerun.rerun_of, rerun.parameters) == (first, {"who": "bo", "times": 2})


def test_a_rerun_with_a_bad_parameter_is_refused_naming_it(settings, tmp_path):
    script = tmp_path / "greet.py"
    script.write_text(GREETING)
    first = submit(script, {"times": 2}, backend="local", settings=settings)
    refused = cli("jobs", "rerun", first.id, "-p", "times=many", settings=settings, check=False)
    assert refused.returncode != 0 and "'times'" in refused.stderr
    assert [job.id for job in JobStore(settings.jobs_dir).list()] == [first.id]
    wait(first.id, timeout=180, settings=settings)
