"""What a user waits for on the single-machine platform, alone and with 9 others at once.

* login-to-kernel-ready: login form posted -> server started (through the hub's REST API) ->
  a kernel has run its first cell;
* cluster-to-first-result: inside that kernel, ``eosc_pangeo.cluster(workers=1)`` -> the first
  task's result (measured in the kernel, no network hop to the test).

With 10 users, all log in at once; once all have a kernel, all start a cluster at once (so the
first users' schedulers and workers do not start while the last ones log in, which the
login-to-kernel figure would otherwise carry).

The platform is the one ``make up`` runs (hub, real proxy, Dask Gateway, catalogue), started
here in a temporary state directory; p50 and p95 over the users (and runs), for 1 user (the
baseline of the ratios) and for 10 concurrent users. Needs root (servers run as their users).

Run: ``python benchmarks/bench_platform.py`` (``--quick``: 1 and 3 users, one run each).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import parse_args, report

from eosc_pangeo.platform import local
from eosc_pangeo.platform.session import HubSession

CLUSTER_TIMING = """
import time, eosc_pangeo
started = time.perf_counter()
cluster = eosc_pangeo.cluster(workers=1)
cluster.get_client().submit(sum, range(10)).result()
print(time.perf_counter() - started)
cluster.shutdown()
"""


def one_user(
    platform: local.PlatformState, name: str, password: str, barrier: threading.Barrier
) -> tuple[float, float]:
    """Login-to-kernel-ready, then (once every user of the run is ready: the two phases are
    measured apart, each with every user in it) cluster-to-first-result, in seconds."""
    started = time.perf_counter()
    session = HubSession(platform.url, name)
    try:
        session.login(password)
        session.start_server(timeout=600)
        session.run("1", timeout=600)
        ready = time.perf_counter() - started
        barrier.wait()
        first_result = float(session.run(CLUSTER_TIMING, timeout=600).strip())
    except BaseException:
        barrier.abort()
        raise
    finally:
        session.stop_server()
    return ready, first_result


def percentile(values: list[float], q: int) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1]
        if len(values) > 1
        else values[0]
    )


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    if os.geteuid() != 0:
        print("platform: skipped (needs root: servers run as their users)")
        return
    crowd = 3 if args.quick else 10
    runs = 1 if args.quick else 3
    top = Path(tempfile.mkdtemp(prefix="eosc-bench-platform-"))
    prefix = "pb" + uuid.uuid4().hex[:5]
    names = [f"{prefix}{i}" for i in range(crowd)]
    platform = local.prepare(top / "state", port=0, cull_idle_seconds=3600)
    local.ensure_demo_lake(platform)
    for name in names:
        local.add_account(platform, name, f"pw-{name}")
    local.start(platform, attached=True)
    try:
        results = {}
        for users in (1, crowd):
            timings = []
            for _ in range(runs):
                barrier = threading.Barrier(users)
                with ThreadPoolExecutor(users) as pool:
                    timings += list(
                        pool.map(
                            lambda n, b=barrier: one_user(platform, n, f"pw-{n}", b),
                            names[:users],
                        )
                    )
            results[users] = timings
        for index, label in ((0, "login-to-kernel-ready"), (1, "cluster-to-first-result")):
            alone = [t[index] for t in results[1]]
            for q in (50, 95):
                base = percentile(alone, q)
                report(f"platform {label} p{q}, 1 user", base, "s")
                report(
                    f"platform {label} p{q}, {crowd} concurrent users",
                    percentile([t[index] for t in results[crowd]], q),
                    "s",
                    baseline=base,
                    target="p95 < 10 s" if (index, q) == (0, 95) else "",
                )
    finally:
        local.stop(platform)
        for name in names:
            subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)
        shutil.rmtree(platform.shared_directory, ignore_errors=True)
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
