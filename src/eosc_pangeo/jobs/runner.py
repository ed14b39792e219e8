"""The process that runs one job: ``python -m eosc_pangeo.jobs.runner <job directory>``.

It runs on the machine or batch node the job was given, executes the notebook (papermill) or
script in the job's working directory, and always ends by

1. stopping the clusters the job started (gateway clusters tagged with the job's id, batch
   worker jobs by name) and every process left from the job (it is the *subreaper* of its
   process tree, so a kernel's orphaned workers come back to it);
2. writing the provenance record;
3. writing the final state with its reason.

A kernel that dies (SIGKILL, out of memory) ends the execution at once with nbclient's
``DeadKernelError``: the job fails with the signal as its reason instead of hanging. SIGTERM
(``jobs cancel``, ``scancel``, a batch system's walltime) cancels the job.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

from ..config import Settings
from .backends import close_job_clusters
from .model import Job, State, utcnow
from .provenance import lake_versions, write_provenance
from .store import JobDirectory

PR_SET_CHILD_SUBREAPER = 36


class Cancelled(BaseException):
    """SIGTERM reached the runner: the job is being cancelled."""


def on_sigterm(signum, frame) -> None:
    raise Cancelled()


class WatchedKernelManager(AsyncKernelManager):
    """A kernel manager that remembers how its kernel ended (nbclient only says it died)."""

    exit_status: int | None = None

    async def _async_is_alive(self) -> bool:
        alive = await super()._async_is_alive()
        if not alive and self.provisioner is not None and self.exit_status is None:
            self.exit_status = await self.provisioner.poll()
        return alive

    is_alive = _async_is_alive


def death_reason(exit_status: int | None) -> str:
    if exit_status is not None and exit_status < 0:
        name = signal.Signals(-exit_status).name
        hint = " (out of memory, or killed)" if -exit_status == signal.SIGKILL else ""
        return f"the kernel was killed by {name}{hint}; output.ipynb shows the last cell run"
    if exit_status is not None:
        return f"the kernel exited with status {exit_status}; output.ipynb shows the last cell run"
    return "the kernel died (killed, or out of memory); output.ipynb shows the last cell run"


def kernel_environment(job: Job, directory: JobDirectory) -> dict[str, str]:
    """The notebook's or script's environment: the job's settings, so that cluster() picks the
    job's backend and workers read the same lake."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("EOSC_PANGEO_")}
    for name, value in job.settings.items():
        if value is not None:
            env[f"EOSC_PANGEO_{name.upper()}"] = (
                json.dumps(value) if isinstance(value, dict) else str(value)
            )
    env["EOSC_PANGEO_JOB_ID"] = job.id
    if job.workers is not None:
        env["EOSC_PANGEO_CLUSTER_WORKERS"] = str(job.workers)
    if job.kind == "script":
        env["EOSC_PANGEO_JOB_PARAMETERS"] = json.dumps(job.parameters)
    return env


def execute(job: Job, directory: JobDirectory) -> tuple[State, str | None]:
    """Run the notebook or script; return how it ended."""
    source = directory.input / job.name
    if job.kind == "script":
        status = subprocess.run([sys.executable, str(source)], cwd=directory.work, check=False)
        if status.returncode == 0:
            return State.succeeded, None
        if status.returncode < 0:
            name = signal.Signals(-status.returncode).name
            return State.failed, f"the script was killed by {name}"
        return State.failed, f"the script exited with status {status.returncode}; see its log"
    import nbformat
    import papermill
    from nbclient.exceptions import DeadKernelError

    kernel_name = (
        nbformat.read(source, as_version=4).metadata.get("kernelspec", {}).get("name", "python3")
    )
    kernel = WatchedKernelManager(kernel_name=kernel_name)
    try:
        papermill.execute_notebook(
            str(source),
            str(directory.output_notebook),
            parameters=job.parameters,
            cwd=str(directory.work),
            kernel_name=kernel_name,
            km=kernel,
            log_output=True,
            progress_bar=False,
        )
    except papermill.PapermillExecutionError as error:
        return State.failed, (
            f"cell {error.exec_count} raised {error.ename}: {error.evalue}; output.ipynb keeps "
            "the traceback"
        )
    except DeadKernelError:
        return State.failed, death_reason(kernel.exit_status)
    return State.succeeded, None


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children first found, then theirs), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def kill_descendants(grace: float = 5.0) -> None:
    """End every process the job left (kernels, LocalCluster workers): SIGTERM, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        remaining = descendants(os.getpid())
        for pid in remaining:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while remaining and time.monotonic() < deadline:
            try:
                while os.waitpid(-1, os.WNOHANG)[0] > 0:
                    pass
            except ChildProcessError:
                pass
            remaining = descendants(os.getpid())
            time.sleep(0.1)
        if not remaining:
            return


def run(path: Path) -> int:
    directory = JobDirectory(path)
    job = directory.read()
    signal.signal(signal.SIGTERM, on_sigterm)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
    job = directory.update(state=State.running, started=utcnow(), host=socket.getfqdn())
    if job.state != State.running:
        print(f"job {job.id} is {job.state.value} already: not run", flush=True)
        return 0
    settings = Settings(**job.settings)
    environment = kernel_environment(job, directory)
    os.environ.clear()
    os.environ.update(environment)
    lake_before = lake_versions(settings)
    state, reason = State.failed, "the runner stopped unexpectedly"
    try:
        state, reason = execute(job, directory)
    except Cancelled:
        state, reason = State.cancelled, "cancelled (SIGTERM: jobs cancel, or the batch system)"
    except Exception as error:
        traceback.print_exc()
        state, reason = State.failed, f"the runner failed: {type(error).__name__}: {error}"
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the clean-up is not interrupted
        try:
            stopped = close_job_clusters(job, settings)
            if stopped:
                print(f"stopped the job's clusters: {', '.join(stopped)}", flush=True)
        except Exception:
            traceback.print_exc()
        kill_descendants()
        write_provenance(directory, directory.read(), state, reason, settings, lake_before)
        final = directory.update(state=state, reason=reason)
        print(
            f"job {job.id} {final.state.value}" + (f": {final.reason}" if final.reason else ""),
            flush=True,
        )
    return 0 if state == State.succeeded else 1


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
