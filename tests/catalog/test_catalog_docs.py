"""Every Python example of docs/find-data.md runs on the demo lake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_catalog_api import start_server

import eosc_pangeo
from eosc_pangeo.catalog.api import create_app
from eosc_pangeo.config import get_settings

PAGE = Path(__file__).parents[2] / "docs" / "find-data.md"
DOCUMENTED_API_URL = "http://127.0.0.1:8080"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)


@pytest.fixture
def configured_lake(demo_lake, monkeypatch):
    monkeypatch.setenv("EOSC_PANGEO_LAKE", demo_lake.url)
    get_settings.cache_clear()
    yield demo_lake
    get_settings.cache_clear()


def test_every_python_example_runs(configured_lake, capsys):
    if not hasattr(eosc_pangeo, "search") or not hasattr(eosc_pangeo, "open_catalog"):
        pytest.skip("eosc_pangeo does not re-export search and open_catalog yet (the page "
                    "documents the top-level names)")
    server, thread, url = start_server(create_app(configured_lake))
    try:
        blocks = python_blocks()
        assert len(blocks) >= 5
        for block in blocks:
            # The examples are this repository's own documentation, run as a reader would.
            exec(compile(block.replace(DOCUMENTED_API_URL, url), str(PAGE), "exec"), {})  # noqa: S102
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert "analysed_sst" not in capsys.readouterr().err
