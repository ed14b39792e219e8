"""Every Python example of docs/find-data.md runs on the demo lake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from upstream_known import intake_esm_refused_by_zarr

import eosc_pangeo

PAGE = Path(__file__).parents[2] / "docs" / "find-data.md"
DOCUMENTED_API_URL = "http://127.0.0.1:8080"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)


@pytest.fixture
def configured_lake(demo_lake, settings_env):
    settings_env(lake=demo_lake.url)
    return demo_lake


def test_every_python_example_runs(configured_lake, stac_api, capsys):
    if not hasattr(eosc_pangeo, "search") or not hasattr(eosc_pangeo, "open_catalog"):
        pytest.skip(
            "eosc_pangeo does not re-export search and open_catalog yet (the page "
            "documents the top-level names)"
        )
    blocks = python_blocks()
    assert len(blocks) >= 5
    for block in blocks:
        if "open_esm_catalog" in block and intake_esm_refused_by_zarr():
            continue  # test_esm_catalog.py holds that example's known failure (strict xfail)
        # The examples are this repository's own documentation, run as a reader would.
        exec(compile(block.replace(DOCUMENTED_API_URL, stac_api), str(PAGE), "exec"), {})  # noqa: S102
    assert "analysed_sst" not in capsys.readouterr().err
