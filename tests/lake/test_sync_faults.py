"""lake sync when the source misbehaves: each fault is reported by file, retried within bounds,
the other files are synced and the lake stays consistent.

The faults come from a real HTTP server told to fail as servers do (sync_servers.py).
"""

from __future__ import annotations

import hashlib
import shutil

import pytest
from sync_servers import file_server  # noqa: F401 - a fixture

from eosc_pangeo import demo_data
from eosc_pangeo.lake import read_manifest, validate
from eosc_pangeo.lake.sync import ATTEMPTS, sync


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    return demo_data.write_sst(
        demo_data.SstSpec(days=3, resolution=10.0), tmp_path_factory.mktemp("sst")
    )


@pytest.fixture
def served(file_server, days):  # noqa: F811
    (file_server.root / "sst").mkdir()
    for path in days:
        shutil.copy(path, file_server.root / "sst" / path.name)
    return file_server


# A file left out is the last day: a grid's days must stay a series without gaps (the later
# days are appended after it, see ingest_grid).


def run(lake, server):
    return sync(lake, f"{server.url}/sst/", "sst", "ocean", "grid", include="*.nc")


def ingested(lake) -> list[str]:
    manifest = read_manifest(lake, lake.collection_path("ocean", "sst"))
    return [s.name for s in manifest.sources] if manifest else []


def gets(server, name) -> list[str | None]:
    return [r for method, path, r in server.requests if method == "GET" and path.endswith(name)]


def consistent(lake) -> bool:
    return all(f.ok for f in validate(lake))


def test_a_server_error_is_retried_and_the_file_synced(local_lake, served, days):
    served.faults.server_error[days[1].name] = ATTEMPTS - 1
    report = run(local_lake, served)
    assert report.failed == {} and ingested(local_lake) == [p.name for p in days]
    assert len(gets(served, days[1].name)) == ATTEMPTS


def test_a_lasting_server_error_fails_that_file_only(local_lake, served, days):
    served.faults.server_error[days[2].name] = 99
    report = run(local_lake, served)
    assert list(report.failed) == [days[2].name]
    assert (
        "500" in report.failed[days[2].name]
        and f"after {ATTEMPTS} tries" in report.failed[days[2].name]
    )
    assert report.new == [days[0].name, days[1].name]
    assert ingested(local_lake) == report.new and consistent(local_lake)


def test_the_failed_file_is_synced_by_the_next_run(local_lake, served, days):
    served.faults.server_error[days[2].name] = 99
    run(local_lake, served)
    served.faults.server_error.clear()
    report = run(local_lake, served)
    assert report.new == [days[2].name] and report.failed == {}
    assert sorted(ingested(local_lake)) == [p.name for p in days]


def test_an_interrupted_transfer_resumes_after_the_last_block_received(local_lake, served, days):
    served.faults.cut[days[0].name] = 1
    block = 4096
    report = sync(
        local_lake, f"{served.url}/sst/", "sst", "ocean", "grid", include="*.nc", block_size=block
    )
    assert report.failed == {}
    starts = [int(r.removeprefix("bytes=").split("-")[0]) for r in gets(served, days[0].name)]
    cut_at = days[0].stat().st_size // 2 // block * block
    # The block cut half-way is asked again, from its start; the file never from byte 0 again.
    assert starts.count(0) == 1 and starts.count(cut_at) == 2
    assert report.bytes_transferred == sum(p.stat().st_size for p in days)


def test_corrupted_bytes_fail_the_checksum_and_are_fetched_again(local_lake, served, days):
    served.faults.corrupt[days[2].name] = 1
    report = run(local_lake, served)
    assert report.failed == {} and len(gets(served, days[2].name)) == 2
    manifest = read_manifest(local_lake, local_lake.collection_path("ocean", "sst"))
    assert manifest.source(days[2].name).sha256 == hashlib.sha256(days[2].read_bytes()).hexdigest()


def test_bytes_corrupted_every_time_fail_that_file_with_the_checksum(local_lake, served, days):
    served.faults.corrupt[days[2].name] = 99
    report = run(local_lake, served)
    assert list(report.failed) == [days[2].name]
    assert "checksum mismatch" in report.failed[days[2].name]
    assert ingested(local_lake) == [days[0].name, days[1].name] and consistent(local_lake)


def test_a_file_that_vanishes_mid_transfer_is_reported_and_the_rest_synced(
    local_lake, served, days
):
    served.faults.vanish.add(days[2].name)
    report = run(local_lake, served)
    assert report.failed == {days[2].name: "vanished from the source during the sync"}
    assert ingested(local_lake) == [days[0].name, days[1].name] and consistent(local_lake)


def test_a_corrupt_file_upstream_is_rejected_and_the_rest_synced(local_lake, served, days):
    (served.root / "sst" / days[2].name).write_bytes(b"CDF\x01" + b"\x00" * 500)
    report = run(local_lake, served)
    assert list(report.failed) == [days[2].name]
    assert report.failed[days[2].name].startswith("rejected by the ingest")
    assert report.new == [days[0].name, days[1].name]
    assert ingested(local_lake) == report.new and consistent(local_lake)
