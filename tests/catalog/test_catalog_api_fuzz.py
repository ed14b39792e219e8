"""Fuzz the STAC API from its own OpenAPI document with schemathesis: never a 5xx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_catalog_api import start_server

from eosc_pangeo.catalog.api import create_app

SCHEMATHESIS = Path(sys.executable).with_name("st")


@pytest.mark.slow
@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis (test extra) not installed")
def test_fuzzed_requests_never_get_a_server_error(demo_lake):
    server, thread, url = start_server(create_app(demo_lake))
    try:
        run = subprocess.run(
            [str(SCHEMATHESIS), "run", f"{url}/api", "--checks", "not_a_server_error",
             "--max-examples", "25", "--seed", "1", "--no-color"],
            capture_output=True, text=True, timeout=300, check=False)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert run.returncode == 0, run.stdout[-3000:]
