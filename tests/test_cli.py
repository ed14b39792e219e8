"""The ``eosc-pangeo`` command: help everywhere, progress on stderr, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from eosc_pangeo import demo_data
from eosc_pangeo.cli import app

runner = CliRunner()
EOSC_PANGEO = [sys.executable, "-m", "eosc_pangeo"]


def all_command_paths(command=None, path=()):
    command = command or get_command(app)
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from all_command_paths(sub, (*path, name))


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, list[Path]]:
    return demo_data.write_demo_data(
        tmp_path_factory.mktemp("sources"), "small", kinds=("sst", "argo")
    )


@pytest.mark.parametrize("path", list(all_command_paths()), ids=" ".join)
def test_every_command_has_help(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_ingest_then_list_shows_the_collection(tmp_path, sources):
    lake = str(tmp_path / "lake")
    files = [str(f) for f in sources["sst"]]
    ingested = runner.invoke(
        app,
        ["lake", "ingest-grid", "--lake", lake, "--collection", "sst", "--domain", "ocean", *files],
    )
    assert ingested.exit_code == 0, ingested.output
    listed = runner.invoke(app, ["lake", "list", "--lake", lake, "--json"])
    assert [c["id"] for c in json.loads(listed.stdout)] == ["sst"]


def test_validate_exits_zero_on_a_good_lake_and_prints_json(tmp_path, sources):
    lake = str(tmp_path / "lake")
    runner.invoke(
        app,
        [
            "lake",
            "ingest-insitu",
            "--lake",
            lake,
            "--collection",
            "argo",
            "--domain",
            "ocean",
            *map(str, sources["argo"]),
        ],
    )
    result = runner.invoke(app, ["lake", "validate", "--lake", lake, "--json"])
    assert result.exit_code == 0, result.output
    assert all(finding["ok"] for finding in json.loads(result.stdout))


def test_failure_is_one_line_on_stderr_with_exit_code_1(tmp_path, sources):
    bad = tmp_path / "20200111-sst.nc"
    bad.write_bytes(b"not a netcdf file")
    result = subprocess.run(
        [
            *EOSC_PANGEO,
            "lake",
            "ingest-grid",
            "--lake",
            str(tmp_path / "lake"),
            "--collection",
            "sst",
            "--domain",
            "ocean",
            str(sources["sst"][0]),
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    message = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(message) == 1 and "20200111-sst.nc: cannot be read as NetCDF" in message[0]
    assert "Traceback" not in result.stderr


def test_validate_exits_non_zero_when_a_collection_is_broken(tmp_path, sources):
    lake = tmp_path / "lake"
    runner.invoke(
        app,
        [
            "lake",
            "ingest-grid",
            "--lake",
            str(lake),
            "--collection",
            "sst",
            "--domain",
            "ocean",
            *map(str, sources["sst"]),
        ],
    )
    (lake / "ocean" / "sst" / "map.zarr" / "zarr.json").write_text("{}")
    result = runner.invoke(app, ["lake", "validate", "--lake", str(lake)])
    assert result.exit_code == 1
    assert "FAIL" in result.stdout


def test_unknown_collection_is_a_one_line_error(tmp_path):
    result = runner.invoke(app, ["lake", "validate", "missing", "--lake", str(tmp_path)])
    assert result.exit_code == 1
    assert "no collection 'missing'" in result.stderr


def test_demo_data_writes_the_sources(tmp_path):
    result = runner.invoke(app, ["demo-data", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["argo", "climate", "sst", "stations"]
