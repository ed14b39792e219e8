"""`eosc-pangeo lake sync` and `lake sources`: the command, its output, registered sources,
two syncs at once, and bad input (one line naming what is wrong)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sync_servers import file_server  # noqa: F401 - a fixture
from typer.testing import CliRunner

from eosc_pangeo import demo_data
from eosc_pangeo.cli import app
from eosc_pangeo.lake import read_manifest

runner = CliRunner()


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    return demo_data.write_sst(
        demo_data.SstSpec(days=3, resolution=10.0), tmp_path_factory.mktemp("sst")
    )


@pytest.fixture(scope="module")
def stations(tmp_path_factory):
    return demo_data.write_stations(
        demo_data.StationSpec(stations=2, days=3), tmp_path_factory.mktemp("stations")
    )


@pytest.fixture
def served(file_server, days):  # noqa: F811
    (file_server.root / "sst").mkdir()
    for path in days:
        shutil.copy(path, file_server.root / "sst")
    return file_server


def lake_sync(lake, source, *extra, kind="grid", collection="sst"):
    return runner.invoke(
        app,
        [
            "lake",
            "sync",
            source,
            "--lake",
            lake.url,
            "--collection",
            collection,
            "--domain",
            "ocean",
            "--kind",
            kind,
            *extra,
        ],
    )


def test_json_output_gives_what_moved(local_lake, served, days):
    result = lake_sync(local_lake, f"{served.url}/sst/", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == {
        "new": [p.name for p in days],
        "changed": [],
        "unchanged": [],
        "removed": [],
        "pruned": [],
        "failed": {},
        "bytes_transferred": sum(p.stat().st_size for p in days),
    }


def test_json_output_names_the_files_gone_from_the_source_as_removed(local_lake, served, days):
    lake_sync(local_lake, f"{served.url}/sst/")
    (served.root / "sst" / days[2].name).unlink()
    result = lake_sync(local_lake, f"{served.url}/sst/", "--json")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert (summary["removed"], summary["pruned"]) == ([days[2].name], [])


def test_plain_output_is_a_table(local_lake, served):
    result = lake_sync(local_lake, f"{served.url}/sst/")
    assert result.exit_code == 0
    assert "new" in result.stdout and "bytes" in result.stdout and "sst" in result.stdout


def test_a_failed_file_gives_exit_code_1_and_names_it(local_lake, served, days):
    served.faults.server_error[days[2].name] = 99
    result = lake_sync(local_lake, f"{served.url}/sst/", "--json")
    assert result.exit_code == 1
    assert list(json.loads(result.stdout)["failed"]) == [days[2].name]


def test_dry_run_writes_nothing(local_lake, served):
    result = lake_sync(local_lake, f"{served.url}/sst/", "--dry-run", "--json")
    assert result.exit_code == 0 and len(json.loads(result.stdout)["new"]) == 3
    assert not local_lake.fs.exists(local_lake.collection_path("ocean", "sst"))


def test_sources_add_list_remove(local_lake, served):
    source = f"{served.url}/sst/"
    add = runner.invoke(
        app,
        [
            "lake",
            "sources",
            "add",
            source,
            "--lake",
            local_lake.url,
            "--collection",
            "sst",
            "--domain",
            "ocean",
            "--kind",
            "grid",
            "--include",
            "*.nc",
        ],
    )
    assert add.exit_code == 0, add.output
    listed = runner.invoke(app, ["lake", "sources", "list", "--lake", local_lake.url, "--json"])
    assert [(e["collection"], e["source"], e["include"]) for e in json.loads(listed.stdout)] == [
        ("sst", source, "*.nc")
    ]
    removed = runner.invoke(app, ["lake", "sources", "remove", "sst", "--lake", local_lake.url])
    assert removed.exit_code == 0
    listed = runner.invoke(app, ["lake", "sources", "list", "--lake", local_lake.url, "--json"])
    assert json.loads(listed.stdout) == []


def test_sync_all_syncs_every_registered_source_and_rebuilds_the_catalogue(
    local_lake, served, stations
):
    (served.root / "stations").mkdir()
    for path in stations:
        shutil.copy(path, served.root / "stations")
    for args in (
        ["sst", "--kind", "grid", f"{served.url}/sst/"],
        ["coast", "--kind", "insitu", f"{served.url}/stations/"],
    ):
        runner.invoke(
            app,
            [
                "lake",
                "sources",
                "add",
                args[3],
                "--lake",
                local_lake.url,
                "--collection",
                args[0],
                "--domain",
                "ocean",
                *args[1:3],
            ],
        )
    result = runner.invoke(app, ["lake", "sync", "--all", "--lake", local_lake.url, "--json"])
    assert result.exit_code == 0, result.output
    assert [len(r["new"]) for r in json.loads(result.stdout)] == [len(stations), 3]
    assert local_lake.fs.exists(local_lake.path("_catalog"))
    again = runner.invoke(app, ["lake", "sync", "--all", "--lake", local_lake.url, "--json"])
    assert [r["bytes_transferred"] for r in json.loads(again.stdout)] == [0, 0]


def test_a_source_registered_with_prune_removes_files_gone_upstream_on_sync_all(
    local_lake, served, stations
):
    (served.root / "stations").mkdir()
    for path in stations:
        shutil.copy(path, served.root / "stations")
    add = runner.invoke(
        app,
        [
            "lake",
            "sources",
            "add",
            f"{served.url}/stations/",
            "--lake",
            local_lake.url,
            "--collection",
            "coast",
            "--domain",
            "ocean",
            "--kind",
            "insitu",
            "--prune",
            "--attribute",
            "license=CC-BY-4.0",
        ],
    )
    assert add.exit_code == 0, add.output
    runner.invoke(app, ["lake", "sync", "--all", "--lake", local_lake.url])
    (served.root / "stations" / stations[0].name).unlink()
    result = runner.invoke(app, ["lake", "sync", "--all", "--lake", local_lake.url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pruned"] == [stations[0].name]
    manifest = read_manifest(local_lake, local_lake.collection_path("ocean", "coast"))
    assert [s.name for s in manifest.sources] == [p.name for p in stations[1:]]
    assert manifest.attributes == {"license": "CC-BY-4.0"}


def test_an_attribute_without_a_value_gives_one_line(local_lake, served):
    result = lake_sync(local_lake, f"{served.url}/sst/", "--attribute", "license", kind="insitu")
    assert result.exit_code == 1
    assert "--attribute 'license': give NAME=VALUE" in result.stderr


def test_two_syncs_of_one_collection_at_once_take_turns(local_lake, served, days):
    command = [
        str(Path(sys.executable).with_name("eosc-pangeo")),
        "lake",
        "sync",
        f"{served.url}/sst/",
        "--lake",
        local_lake.url,
        "--collection",
        "sst",
        "--domain",
        "ocean",
        "--kind",
        "grid",
        "--wait",
        "120",
        "--json",
    ]
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outcomes = [(run.wait(timeout=300), run.communicate()) for run in runs]
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    summaries = sorted(
        (json.loads(out) for _, (out, _) in outcomes), key=lambda s: s["bytes_transferred"]
    )
    assert summaries[0]["bytes_transferred"] == 0 and len(summaries[0]["unchanged"]) == 3
    assert summaries[1]["bytes_transferred"] == sum(p.stat().st_size for p in days)
    manifest = read_manifest(local_lake, local_lake.collection_path("ocean", "sst"))
    assert manifest.version == 1


def test_a_second_sync_without_wait_says_the_collection_is_busy(local_lake, served):
    from eosc_pangeo.lake.lock import CollectionLock
    from eosc_pangeo.lake.sync import SYNC_LOCK

    with CollectionLock(local_lake, local_lake.collection_path("ocean", "sst"), SYNC_LOCK):
        result = lake_sync(local_lake, f"{served.url}/sst/")
    assert result.exit_code == 1
    assert "another ingest writes this collection" in result.stderr


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("gopher://host/sst", "unknown scheme 'gopher'"),
        ("http://127.0.0.1:9/sst/", "cannot be reached"),
    ],
)
def test_a_bad_source_gives_one_line(local_lake, source, message):
    result = lake_sync(local_lake, source)
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_missing_folder_gives_one_line(local_lake, tmp_path):
    result = lake_sync(local_lake, str(tmp_path / "nowhere"))
    assert result.exit_code == 1 and "does not exist" in result.stderr


def test_the_wrong_kind_for_a_collection_gives_one_line(local_lake, served):
    assert lake_sync(local_lake, f"{served.url}/sst/").exit_code == 0
    result = lake_sync(local_lake, f"{served.url}/sst/", kind="insitu")
    assert result.exit_code == 1
    assert "holds grid data, not insitu" in result.stderr


def test_irods_without_an_environment_file_gives_one_line(local_lake, tmp_path, monkeypatch):
    monkeypatch.setenv("IRODS_ENVIRONMENT_FILE", str(tmp_path / "irods_environment.json"))
    result = lake_sync(local_lake, "irods://tempZone/home/partner/sst")
    assert result.exit_code == 1
    assert "no iRODS environment file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
