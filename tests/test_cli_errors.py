"""Mistakes a new user makes first: each ends in one line naming the thing and what to do, never
in a quiet wrong answer; a bug of the library still shows its traceback."""

from __future__ import annotations

import json
import uuid

import pytest
import s3fs
import typer
from typer.testing import CliRunner

from eosc_pangeo.catalog import CatalogError
from eosc_pangeo.cli import app, failures_as_exit
from eosc_pangeo.config import get_settings
from eosc_pangeo.lake import LakeError, ingest_grid
from eosc_pangeo.lake.storage import Lake

runner = CliRunner()


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


@pytest.fixture
def not_a_lake(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("not a lake")
    return folder


def test_validating_an_empty_or_non_lake_folder_fails(not_a_lake):
    message = one_line_error(runner.invoke(app, ["lake", "validate", "--lake", str(not_a_lake)]))
    assert "holds no collection" in message and "ingest" in message


def test_validating_a_folder_that_does_not_exist_fails(tmp_path):
    result = runner.invoke(app, ["lake", "validate", "--lake", str(tmp_path / "typo")])
    assert f"no lake at {tmp_path / 'typo'}" in one_line_error(result)


def test_searching_a_path_with_no_lake_fails(not_a_lake):
    result = runner.invoke(app, ["catalog", "search", "--lake", str(not_a_lake), "-v", "sst"])
    assert "holds no collection" in one_line_error(result)


@pytest.fixture(scope="module")
def uncatalogued_lake(tmp_path_factory) -> Lake:
    from eosc_pangeo import demo_data

    sources = demo_data.write_sst(
        demo_data.SstSpec(days=2, resolution=5.0), tmp_path_factory.mktemp("sst")
    )
    lake = Lake(str(tmp_path_factory.mktemp("lake") / "lake"))
    ingest_grid(lake, "sst", "ocean", sources)
    return lake


def test_searching_a_lake_whose_catalogue_was_never_built_says_how_to_build_it(uncatalogued_lake):
    result = runner.invoke(app, ["catalog", "search", "--lake", uncatalogued_lake.url])
    assert f"catalog build --lake {uncatalogued_lake.url}" in one_line_error(result)


def test_serving_a_lake_whose_catalogue_was_never_built_fails(uncatalogued_lake):
    result = runner.invoke(
        app, ["catalog", "serve", "--lake", uncatalogued_lake.url, "--port", "0"]
    )
    assert "was never built" in one_line_error(result)


def test_listing_an_s3_lake_without_credentials_says_where_to_give_them(
    s3_server, settings_env, monkeypatch, tmp_path
):
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(**s3_server).mkdir(bucket)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings_env(storage_options=json.dumps({"endpoint_url": s3_server["endpoint_url"]}))
    result = runner.invoke(app, ["lake", "list", "--lake", f"s3://{bucket}/lake"])
    message = one_line_error(result)
    assert "no credentials" in message and "EOSC_PANGEO_STORAGE_OPTIONS" in message
    get_settings.cache_clear()


@pytest.mark.parametrize("error", [LakeError("lake at fault"), CatalogError("query at fault")])
def test_deliberate_errors_end_the_command_with_exit_code_1(error):
    with pytest.raises(typer.Exit) as exit_info, failures_as_exit():
        raise error
    assert exit_info.value.exit_code == 1


@pytest.mark.parametrize("bug", [ValueError("a bug"), KeyError("a bug"), TypeError("a bug")])
def test_a_library_bug_is_not_disguised_as_a_one_line_error(bug):
    with pytest.raises(type(bug)), failures_as_exit():
        raise bug
