"""Settings come from EOSC_PANGEO_* settings_env variables, and every entry point uses them."""

from __future__ import annotations

import json

import pytest

from eosc_pangeo import demo_data, open_dataset
from eosc_pangeo.config import get_settings
from eosc_pangeo.lake import Lake, ingest_grid


def test_dict_settings_are_read_as_json(settings_env):
    settings_env(storage_options='{"endpoint_url": "http://127.0.0.1:9000", "anon": true}')
    assert get_settings().storage_options == {"endpoint_url": "http://127.0.0.1:9000", "anon": True}


def test_a_lake_without_arguments_is_the_configured_one(settings_env, tmp_path):
    settings_env(lake=str(tmp_path))
    assert Lake.from_url().url == str(tmp_path)


def test_no_lake_configured_is_a_clear_error(settings_env, monkeypatch):
    monkeypatch.delenv("EOSC_PANGEO_LAKE", raising=False)
    settings_env()
    with pytest.raises(ValueError, match="set EOSC_PANGEO_LAKE"):
        Lake.from_url()


def test_a_notebook_opens_an_s3_collection_by_id_alone(settings_env, s3_lake, tmp_path):
    files = demo_data.write_sst(demo_data.SstSpec(days=2), tmp_path)
    ingest_grid(s3_lake, "sst", "ocean", files)
    settings_env(lake=s3_lake.url, storage_options=json.dumps(s3_lake.storage_options))
    assert open_dataset("sst").sizes["time"] == 2
