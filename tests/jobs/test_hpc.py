"""Batch jobs on HPC: the notebook as a real Slurm job whose workers are further Slurm jobs,
submitted as this process's user (a user's CLI on a login node) or for another Unix account (the
hub's jobs service, run as root); PBS job scripts as qsub receives them (no PBS server installs
here: they are not run)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import dask.config
import dask_jobqueue  # noqa: F401 (its defaults load before a fixture's dask.config.set, not in it)
import nbformat
import pytest

from eosc_pangeo.config import Settings
from eosc_pangeo.jobs import JobStore, State, cancel, get_job, get_results, submit, wait
from eosc_pangeo.jobs.accounts import Account
from eosc_pangeo.jobs.backends import batch_job_name, batch_script, worker_job_name
from eosc_pangeo.jobs.model import Job
from eosc_pangeo.jobs.store import new_job_id

pytestmark = pytest.mark.slow


def queued(name: str, states: str | None = None) -> list[str]:
    """Ids of this test's jobs called ``name`` in the Slurm queue: in ``states`` (Slurm's names,
    comma-separated), else in squeue's default (those not ended, or still completing). Jobs of
    others are never looked at."""
    only = [f"--states={states}"] if states else []
    return subprocess.run(
        ["squeue", "--noheader", f"--name={name}", *only, "--format=%i"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def owners_in_queue(name: str) -> list[str]:
    """The users Slurm runs this test's jobs called ``name`` as."""
    return subprocess.run(
        ["squeue", "--noheader", f"--name={name}", "--format=%u"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


def test_a_notebook_runs_as_a_slurm_job_with_workers_as_slurm_jobs(
    slurm_site, sum_notebook, settings, tmp_path
):
    job = submit(sum_notebook, ["n=20", "label=hpc"], backend="slurm", settings=settings)
    job = wait(job.id, timeout=240, settings=settings)
    assert job.state == State.succeeded, job.reason

    results = get_results(job.id, tmp_path / "out", settings)
    answer = json.loads((results / "results" / "answer.json").read_text())
    assert answer == {"total": 190, "label": "hpc", "cluster": "SLURMCluster"}
    log = (results / "logs" / "job.log").read_text()
    assert f"job {job.id} succeeded" in log
    # The batch job leaves the queue a moment after its runner wrote the result.
    assert wait_until(
        lambda: not queued(batch_job_name(job)) and not queued(worker_job_name(job)), timeout=60
    )


def test_two_slurm_runs_of_one_notebook_at_once_keep_their_own_results(
    slurm_site, settings, tmp_path, make_notebook
):
    notebook = make_notebook(
        tmp_path / "label.ipynb",
        'label = "default"',
        "import json, time\ntime.sleep(5)\njson.dump({'label': label}, open('answer.json', 'w'))",
    )
    first = submit(notebook, ["label=first"], backend="slurm", settings=settings)
    second = submit(notebook, ["label=second"], backend="slurm", settings=settings)
    answers = []
    for job in (first, second):
        assert wait(job.id, timeout=240, settings=settings).state == State.succeeded
        results = get_results(job.id, tmp_path / job.id, settings)
        answers.append(json.loads((results / "results" / "answer.json").read_text()))
    assert answers == [{"label": "first"}, {"label": "second"}]


# --- jobs submitted for a user, as the hub's jobs service does when it runs as root ---------


@pytest.fixture(scope="module")
def unix_user():
    """``unix_user(suffix)``: a new Unix account with a home (as ``eosc-pangeo users add`` makes
    one); each is removed, home included, when the module's tests have run."""
    if os.geteuid() != 0:
        pytest.skip("only root submits jobs that run as other users (the hub's jobs service)")
    from eosc_pangeo.platform.local import ensure_system_user

    prefix = f"sj{uuid.uuid4().hex[:6]}"  # unique: runs never meet each other's accounts
    made = []

    def make(suffix: str) -> str:
        name = prefix + suffix
        ensure_system_user(name, home=True)
        made.append(name)
        return name

    yield make
    for name in made:
        remove_unix_user(name)


def remove_unix_user(name: str) -> None:
    """Remove the account and its home, once its jobs have ended: userdel refuses an account
    that still runs processes."""
    subprocess.run(["scancel", f"--user={name}"], capture_output=True, check=False)
    deadline = time.monotonic() + 60
    while subprocess.run(["userdel", "--remove", name], capture_output=True).returncode not in (
        0,
        6,  # no such user
    ):
        assert time.monotonic() < deadline, f"{name} still runs processes: not removed"
        time.sleep(1)


@pytest.fixture(scope="module")
def scientist(unix_user) -> str:
    return unix_user("sci")


@pytest.fixture(scope="module")
def colleague(unix_user) -> str:
    return unix_user("col")


@pytest.fixture(scope="module")
def users_python() -> str:
    """The users' environment's interpreter, which the hub gives its jobs service (--python)."""
    from eosc_pangeo.platform.environment import user_environment

    return str(Path(user_environment()) / "bin" / "python")


@pytest.fixture
def shared(slurm_site):
    """Job store and lake laid out as on the platform, below a folder every user may cross
    (pytest's tmp_path is root's alone): the lake is root's, readable by all."""
    top = Path(tempfile.mkdtemp(prefix="eosc-hpc-", dir="/tmp"))
    top.chmod(0o711)
    lake = top / "lake"
    lake.mkdir()
    lake.chmod(0o755)
    yield Settings(jobs_dir=str(top / "jobs"), lake=str(lake), cluster_start_timeout=60)
    shutil.rmtree(top, ignore_errors=True)


def submit_for(user: str, python: str, path: Path, parameters=None, **options) -> Job:
    """Submit for ``user`` as the jobs service does (``JobsHandler.submission``): their Unix
    account, the users' Python, an environment of its own (the hub token it adds is not needed
    by a Slurm job)."""
    account = Account.of(user, python)
    return submit(path, parameters, user=user, account=account, environment={}, **options)


HELD_ON_CLUSTER = """\
import json, os, time
from eosc_pangeo import cluster

def account():
    import os, pwd
    return pwd.getpwuid(os.getuid()).pw_name

with cluster() as dask_cluster, dask_cluster.get_client() as client:
    total = client.submit(sum, range(n)).result()
    worker = client.submit(account).result()
    open("computed", "w").close()
    # Held, workers running, until the test has looked at the queue.
    deadline = time.monotonic() + 120
    while not os.path.exists("release") and time.monotonic() < deadline:
        time.sleep(0.5)
json.dump({"total": total, "runner": account(), "worker": worker}, open("answer.json", "w"))
"""


def test_a_slurm_job_submitted_for_a_user_runs_as_them_with_workers_of_theirs(
    shared, scientist, users_python, tmp_path, make_notebook
):
    notebook = make_notebook(tmp_path / "held.ipynb", "n = 10", HELD_ON_CLUSTER)
    job = submit_for(scientist, users_python, notebook, ["n=20"], backend="slurm", settings=shared)
    work = JobStore(shared.jobs_dir, scientist).directory(job.id).work
    assert wait_until((work / "computed").exists, timeout=180), "the job's cluster computed nothing"
    owners = {name: owners_in_queue(name) for name in (batch_job_name(job), worker_job_name(job))}
    (work / "release").touch()
    job = wait(job.id, timeout=120, settings=shared, user=scientist)

    assert job.state == State.succeeded, job.reason
    assert owners == {batch_job_name(job): [scientist], worker_job_name(job): [scientist]}
    answer = work / "answer.json"
    assert json.loads(answer.read_text()) == {
        "total": 190,
        "runner": scientist,
        "worker": scientist,
    }
    assert answer.stat().st_uid == pwd.getpwnam(scientist).pw_uid


# Tries to write into each folder it is given; records which it could.
PROBE = """\
import json, os
from eosc_pangeo.jobs import parameters

written = {}
for name, folder in parameters(lake="", other_users_job="").items():
    try:
        open(os.path.join(folder, "written-by-a-job"), "w").close()
        written[name] = True
    except PermissionError:
        written[name] = False
json.dump(written, open("written.json", "w"))
"""


def test_a_users_slurm_job_can_write_neither_the_lake_nor_another_users_job(
    shared, scientist, colleague, users_python, tmp_path
):
    hello = tmp_path / "hello.py"
    hello.write_text("open('hello.txt', 'w').write('hello')\n")
    theirs = submit_for(colleague, users_python, hello, backend="local", settings=shared)
    assert wait(theirs.id, timeout=120, settings=shared, user=colleague).state == State.succeeded
    their_work = JobStore(shared.jobs_dir, colleague).directory(theirs.id).work
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    folders = {"lake": shared.lake, "other_users_job": str(their_work)}

    job = submit_for(scientist, users_python, probe, folders, backend="slurm", settings=shared)
    job = wait(job.id, timeout=180, settings=shared, user=scientist)

    assert job.state == State.succeeded, job.reason
    written = JobStore(shared.jobs_dir, scientist).directory(job.id).work / "written.json"
    assert json.loads(written.read_text()) == {"lake": False, "other_users_job": False}
    assert sorted(p.name for p in their_work.iterdir()) == ["hello.txt"]


def test_a_notebook_that_raises_on_slurm_fails_keeping_its_traceback_and_wait_exits_1(
    slurm, scientist, users_python, make_notebook
):
    # A user's own CLI on a login node: their notebook, their jobs folder, their uid, and no
    # site configuration but dask-jobqueue's defaults.
    home = Path(pwd.getpwnam(scientist).pw_dir)
    notebook = make_notebook(
        home / "bad.ipynb", "threshold = 1", "raise ValueError(f'threshold {threshold} is low')"
    )
    os.chown(notebook, pwd.getpwnam(scientist).pw_uid, pwd.getpwnam(scientist).pw_gid)
    theirs = Settings(jobs_dir=str(home / "jobs"))
    environment = {
        "HOME": str(home),
        "PATH": f"{Path(users_python).parent}:/usr/bin:/bin",
        "EOSC_PANGEO_JOBS_DIR": theirs.jobs_dir,
    }
    command = [users_python, "-m", "eosc_pangeo", "run", str(notebook), "-p", "threshold=0"]
    run = subprocess.run(
        [*command, "--backend", "slurm", "--wait"],
        user=scientist,
        env=environment,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert run.returncode == 1, run.stderr
    job = get_job(run.stdout.strip(), theirs, user=scientist)
    assert job.state == State.failed and "ValueError: threshold 0 is low" in job.reason
    executed = nbformat.read(
        JobStore(theirs.jobs_dir, scientist).directory(job.id).output_notebook, 4
    )
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors[0].ename == "ValueError" and errors[0].traceback


# Two workers asked for: on a 2-core node (1 core a job) one worker job runs beside the notebook's
# own and the other waits in the queue, so both kinds must be cancelled. Then the kernel kills
# itself, or waits to be stopped.
TWO_WORKER_JOBS = """\
import json, os, signal, time
from eosc_pangeo import cluster

dask_cluster = cluster(workers=1)
dask_cluster.scale(2)
while len(dask_cluster.workers) < 2:  # until the second worker's job is submitted
    time.sleep(0.2)
json.dump([w.job_id for w in dask_cluster.workers.values()], open("worker-jobs.json", "w"))
if end == "kill the kernel":
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(600)
"""


def worker_jobs_left(directory) -> list[str]:
    """The job's worker jobs (as its notebook recorded them) still pending or running."""
    recorded = set(json.loads((directory.work / "worker-jobs.json").read_text()))
    return sorted(recorded & set(queued(worker_job_name(directory.read()), "pending,running")))


@pytest.fixture
def two_worker_jobs(tmp_path, make_notebook) -> Path:
    return make_notebook(tmp_path / "two.ipynb", 'end = "wait"', TWO_WORKER_JOBS)


def test_a_killed_kernel_fails_the_slurm_job_and_cancels_its_worker_jobs_queued_or_running(
    shared, scientist, users_python, two_worker_jobs
):
    job = submit_for(
        scientist,
        users_python,
        two_worker_jobs,
        {"end": "kill the kernel"},
        backend="slurm",
        settings=shared,
    )
    job = wait(job.id, timeout=240, settings=shared, user=scientist, poll=0.2)
    left = worker_jobs_left(JobStore(shared.jobs_dir, scientist).directory(job.id))

    assert job.state == State.failed and "killed by SIGKILL" in job.reason
    assert left == []


def test_cancelling_a_users_slurm_job_leaves_nothing_in_the_queue(
    shared, scientist, users_python, two_worker_jobs
):
    job = submit_for(scientist, users_python, two_worker_jobs, backend="slurm", settings=shared)
    directory = JobStore(shared.jobs_dir, scientist).directory(job.id)
    assert wait_until((directory.work / "worker-jobs.json").exists, timeout=180)

    job = cancel(job.id, shared, user=scientist)

    assert job.state == State.cancelled
    assert wait_until(
        lambda: not queued(batch_job_name(job)) and not queued(worker_job_name(job)), timeout=60
    )


def test_a_slurm_job_that_reaches_its_walltime_is_cancelled_with_its_worker_jobs(
    shared, scientist, users_python, two_worker_jobs
):
    with dask.config.set({"jobqueue.slurm.walltime": "00:01:00"}):
        job = submit_for(scientist, users_python, two_worker_jobs, backend="slurm", settings=shared)
    # Slurm checks time limits every 30 s and sends SIGTERM, then SIGKILL after its KillWait.
    job = wait(job.id, timeout=240, settings=shared, user=scientist, poll=0.2)
    left = worker_jobs_left(JobStore(shared.jobs_dir, scientist).directory(job.id))

    assert job.state == State.cancelled and "SIGTERM" in job.reason
    assert left == []


def kill_batch_job_processes(native_id: str) -> None:
    """SIGKILL the runner and kernel of a batch job at once, as a lost node ends them: neither
    can clean up. (``scancel --signal=KILL`` would not do: Slurm sends SIGTERM first.)"""
    listed = subprocess.run(
        ["scontrol", "listpids", native_id], capture_output=True, text=True, check=True
    )
    for line in listed.stdout.splitlines()[1:]:
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_slurm_job_whose_runner_was_killed_is_failed_and_its_worker_jobs_cancelled(
    shared, scientist, users_python, two_worker_jobs
):
    job = submit_for(scientist, users_python, two_worker_jobs, backend="slurm", settings=shared)
    directory = JobStore(shared.jobs_dir, scientist).directory(job.id)
    assert wait_until((directory.work / "worker-jobs.json").exists, timeout=180)

    kill_batch_job_processes(job.native_id)
    assert wait_until(lambda: get_job(job.id, shared, scientist).state.terminal, timeout=60)

    assert get_job(job.id, shared, scientist).state == State.failed
    assert worker_jobs_left(directory) == []


@pytest.fixture
def pbs_site():
    """A PBS site configuration as an admin writes it in /etc/dask/jobqueue.yaml."""
    site = {
        "jobqueue.pbs.queue": "sequentiel",
        "jobqueue.pbs.walltime": "04:00:00",
        "jobqueue.pbs.account": "eosc",
        "jobqueue.pbs.cores": 2,
        "jobqueue.pbs.memory": "8GiB",
        "jobqueue.pbs.resource-spec": None,
        "jobqueue.pbs.interface": "ib0",
    }
    with dask.config.set(site):
        yield site


def test_a_pbs_job_script_runs_the_notebook_in_its_directory_in_the_sites_queue(
    pbs_site, sum_notebook, settings
):
    job = Job(
        id=new_job_id(),
        user="scientist",
        name=sum_notebook.name,
        kind="notebook",
        source=str(sum_notebook),
        backend="pbs",
    )
    directory = JobStore(settings.jobs_dir, "scientist").create(job)

    script = batch_script(job, directory)

    assert f"#PBS -N eosc-{job.id}" in script
    assert "#PBS -q sequentiel" in script and "#PBS -A eosc" in script
    assert "#PBS -l walltime=04:00:00" in script
    assert "#PBS -l select=1:ncpus=2:mem=8192MB" in script
    assert f"cd {directory.work}" in script
    assert script.rstrip().endswith(
        f"-m eosc_pangeo.jobs.runner {directory.path} >> {directory.log} 2>&1"
    )
    assert "dask_worker" not in script
