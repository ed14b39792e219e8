"""Fuzz the STAC API from its own OpenAPI document with schemathesis: never a 5xx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCHEMATHESIS = Path(sys.executable).with_name("st")


@pytest.mark.slow
@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis (test extra) not installed")
def test_fuzzed_requests_never_get_a_server_error(stac_api):
    run = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{stac_api}/api",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:]
