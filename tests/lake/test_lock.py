"""One ingest at a time per collection, on disk and on S3; locks of dead ingests are taken over."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from eosc_pangeo.demo_data import StationSpec, write_stations
from eosc_pangeo.lake import CollectionBusy, ingest_insitu, lock, read_insitu, validate
from eosc_pangeo.lake.lock import LOCK, STALE_AFTER
from eosc_pangeo.lake.storage import Lake

COLLECTION = "stations"


@pytest.fixture(scope="module")
def stations(tmp_path_factory) -> list[str]:
    out = tmp_path_factory.mktemp("stations")
    return [str(p) for p in write_stations(StationSpec(stations=4, days=20), out)]


def lock_path(lake: Lake) -> str:
    return f"{lake.collection_path('ocean', COLLECTION)}/{LOCK}"


def hold_lock_elsewhere(lake: Lake, renewed: float) -> None:
    """The lock as an ingest on another machine writes it, last renewed at ``renewed``."""
    holder = {
        "user": "alice",
        "host": "another-node",
        "pid": 4242,
        "started": "2026-11-25T08:00:00+00:00",
        "renewed": renewed,
    }
    lake.fs.makedirs(lake.collection_path("ocean", COLLECTION), exist_ok=True)
    lake.fs.pipe_file(lock_path(lake), json.dumps(holder).encode())


# The child pauses in its progress callback once it writes, until the test lets it go, so that
# the test's own ingest runs while the child holds the lock.
PAUSED_INGEST = textwrap.dedent("""
    import os, sys, time
    from eosc_pangeo.lake import ingest_insitu

    go = sys.argv[3]
    def wait_for_go(stage, done, total):
        while stage == "write" and not os.path.exists(go):
            time.sleep(0.05)

    ingest_insitu(sys.argv[1], sys.argv[2], "ocean", sys.argv[4:], progress=wait_for_go)
""")


def test_a_second_ingest_is_refused_while_one_writes_and_the_first_completes(
    local_lake, stations, tmp_path
):
    go = tmp_path / "go"
    child = subprocess.Popen(
        [sys.executable, "-c", PAUSED_INGEST, local_lake.url, COLLECTION, str(go), *stations[:2]]
    )
    try:
        deadline = time.monotonic() + 60
        while not local_lake.fs.exists(lock_path(local_lake)):
            assert child.poll() is None and time.monotonic() < deadline, "no lock was taken"
            time.sleep(0.05)

        with pytest.raises(CollectionBusy, match=rf"process {child.pid} on {socket.gethostname()}"):
            ingest_insitu(local_lake, COLLECTION, "ocean", stations[2:])
    finally:
        go.touch()
        assert child.wait(timeout=120) == 0

    assert not local_lake.fs.exists(lock_path(local_lake))
    assert all(finding.ok for finding in validate(local_lake, COLLECTION))
    assert set(read_insitu(local_lake, COLLECTION)["source"]) == {
        Path(p).name for p in stations[:2]
    }


@pytest.mark.parametrize("lake_fixture", ["local_lake", "s3_lake"])
def test_a_live_ingest_on_another_machine_keeps_the_collection(lake_fixture, stations, request):
    lake = request.getfixturevalue(lake_fixture)
    hold_lock_elsewhere(lake, renewed=time.time())

    with pytest.raises(CollectionBusy, match="alice, process 4242 on another-node") as busy:
        ingest_insitu(lake, COLLECTION, "ocean", stations)

    assert LOCK in str(busy.value) and "delete this file" in str(busy.value)
    assert lake.fs.exists(lock_path(lake))


@pytest.mark.parametrize("lake_fixture", ["local_lake", "s3_lake"])
def test_a_lock_no_longer_renewed_is_taken_over(lake_fixture, stations, request):
    lake = request.getfixturevalue(lake_fixture)
    hold_lock_elsewhere(lake, renewed=time.time() - STALE_AFTER - 1)

    report = ingest_insitu(lake, COLLECTION, "ocean", stations)

    assert report.version == 1 and not lake.fs.exists(lock_path(lake))


def test_a_lock_of_a_dead_process_on_this_machine_is_taken_over(local_lake, stations):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    hold_lock_elsewhere(local_lake, renewed=time.time())
    holder = json.loads(local_lake.fs.cat_file(lock_path(local_lake)))
    holder.update(host=socket.gethostname(), pid=int(dead.stdout))
    local_lake.fs.pipe_file(lock_path(local_lake), json.dumps(holder).encode())

    assert ingest_insitu(local_lake, COLLECTION, "ocean", stations).version == 1


def test_an_ingest_renews_its_lock_as_it_reports_progress(local_lake, stations, monkeypatch):
    monkeypatch.setattr(lock, "RENEW_EVERY", 0.0)
    renewals = []

    def record_renewal(stage, done, total):
        renewals.append(json.loads(local_lake.fs.cat_file(lock_path(local_lake)))["renewed"])

    ingest_insitu(local_lake, COLLECTION, "ocean", stations, progress=record_renewal)

    assert len(renewals) > 2 and renewals == sorted(renewals) and renewals[0] < renewals[-1]
