"""lake sync, what it moves: only the new and changed files of a source, ingested incrementally.

The source is a real HTTP server with a directory listing (see sync_servers.py); the files are
the demo generator's daily SST analyses; the lake is on disk.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr
from sync_servers import file_server  # noqa: F401 - a fixture

from eosc_pangeo import demo_data
from eosc_pangeo.lake import read_manifest, validate
from eosc_pangeo.lake.sync import sync

SPEC = demo_data.SstSpec(days=4, resolution=10.0)


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    """Four daily files, and other versions of the same days (another seed)."""
    folder = tmp_path_factory.mktemp("sst")
    first = demo_data.write_sst(SPEC, folder / "v1")
    second = demo_data.write_sst(demo_data.SstSpec(days=5, resolution=10.0), folder / "v2", seed=7)
    return first, second


@pytest.fixture
def served(file_server, days):  # noqa: F811
    """The server holds the first three days under /sst/."""
    (file_server.root / "sst").mkdir()
    for path in days[0][:3]:
        shutil.copy(path, file_server.root / "sst" / path.name)
    return file_server


def run(lake, server, **kwargs):
    return sync(lake, f"{server.url}/sst/", "sst", "ocean", "grid", include="*.nc", **kwargs)


def stored_values(lake):
    """The values as stored (packed), which the ingest copies bit for bit from the sources."""
    return xr.open_zarr(
        lake.path("ocean", "sst", "map.zarr"), mask_and_scale=False
    ).analysed_sst.values


def source_values(paths):
    with xr.open_mfdataset(paths, mask_and_scale=False) as ds:
        return ds.analysed_sst.values


def test_first_sync_ingests_every_file_of_the_source(local_lake, served, days):
    report = run(local_lake, served)
    assert report.new == [p.name for p in days[0][:3]]
    assert report.failed == {} and report.version == 1
    np.testing.assert_array_equal(stored_values(local_lake), source_values(days[0][:3]))


def test_the_manifest_records_where_each_file_came_from(local_lake, served):
    run(local_lake, served)
    manifest = read_manifest(local_lake, local_lake.collection_path("ocean", "sst"))
    for source in manifest.sources:
        assert source.url == f"{served.url}/sst/{source.name}"
        assert source.etag and source.modified


def test_second_sync_of_an_unchanged_source_transfers_nothing(local_lake, served):
    run(local_lake, served)
    sent = served.bytes_sent
    report = run(local_lake, served)
    assert (report.new, report.changed, report.bytes_transferred) == ([], [], 0)
    assert len(report.unchanged) == 3
    assert served.bytes_sent == sent


def test_one_changed_and_one_new_file_are_all_that_is_transferred(local_lake, served, days):
    run(local_lake, served)
    changed, new = days[1][1], days[1][3]
    for path in (changed, new):
        shutil.copy(path, served.root / "sst" / path.name)
    sent = served.bytes_sent
    report = run(local_lake, served)
    assert (report.changed, report.new) == ([changed.name], [new.name])
    assert report.bytes_transferred == changed.stat().st_size + new.stat().st_size
    assert served.bytes_sent - sent == report.bytes_transferred
    expected = source_values([days[0][0], changed, days[0][2], new])
    np.testing.assert_array_equal(stored_values(local_lake), expected)


def test_a_changed_first_day_replaces_its_own_step_and_keeps_the_others(local_lake, served, days):
    run(local_lake, served)
    changed = days[1][0]
    shutil.copy(changed, served.root / "sst" / changed.name)
    report = run(local_lake, served)
    assert report.changed == [changed.name]
    expected = source_values([changed, *days[0][1:3]])
    np.testing.assert_array_equal(stored_values(local_lake), expected)
    assert all(f.ok for f in validate(local_lake))


def test_a_reprocessed_period_and_a_lone_day_replace_exactly_their_steps(local_lake, served, days):
    shutil.copy(days[0][3], served.root / "sst" / days[0][3].name)
    run(local_lake, served)
    period, lone = days[1][0:2], days[1][3]
    for path in (*period, lone):
        shutil.copy(path, served.root / "sst" / path.name)
    report = run(local_lake, served)
    assert report.changed == [p.name for p in (*period, lone)]
    np.testing.assert_array_equal(
        stored_values(local_lake), source_values([*period, days[0][2], lone])
    )
    assert all(f.ok for f in validate(local_lake))


def test_dry_run_prints_the_plan_and_changes_nothing(local_lake, served, days):
    run(local_lake, served)
    shutil.copy(days[1][3], served.root / "sst" / days[1][3].name)
    before = {p: p.read_bytes() for p in local_lake_files(local_lake)}
    sent = served.bytes_sent
    report = run(local_lake, served, dry_run=True)
    assert report.new == [days[1][3].name] and len(report.unchanged) == 3
    assert report.bytes_transferred == 0 and served.bytes_sent == sent
    assert {p: p.read_bytes() for p in local_lake_files(local_lake)} == before


def test_a_file_ingested_by_hand_is_fetched_once_and_found_unchanged(local_lake, served):
    from eosc_pangeo.lake import ingest_grid

    ingest_grid(local_lake, "sst", "ocean", sorted((served.root / "sst").iterdir()))
    report = run(local_lake, served)
    assert report.new == report.changed == [] and len(report.unchanged) == 3
    assert run(local_lake, served).bytes_transferred == 0
    assert all(f.ok for f in validate(local_lake))


def local_lake_files(lake):
    from pathlib import Path

    return sorted(p for p in Path(lake.root).rglob("*") if p.is_file())
