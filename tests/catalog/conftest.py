"""A demo lake (sst, tas, argo, stations) described once for the whole catalogue suite."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn

from eosc_pangeo.catalog import build_catalog
from eosc_pangeo.catalog.api import create_app
from eosc_pangeo.lake.demo import build_demo_lake
from eosc_pangeo.lake.storage import Lake


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory) -> Lake:
    """The demo lake, catalogued; tests must not change it (copy it with ``lake_copy``)."""
    lake = Lake(build_demo_lake(str(tmp_path_factory.mktemp("catalog") / "lake"), "small"))
    build_catalog(lake)
    return lake


@pytest.fixture
def lake_copy(demo_lake, tmp_path) -> Lake:
    """A catalogued copy of the demo lake that a test may change."""
    shutil.copytree(demo_lake.url, tmp_path / "lake")
    return Lake(str(tmp_path / "lake"))


@contextmanager
def served(app) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port; yields its URL."""
    # Port 0: the kernel picks a free port, so parallel runs never race for one.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the STAC API server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def serve():
    """Serve a STAC API app on loopback: ``with serve(create_app(...)) as url: ...``."""
    return served


@pytest.fixture(scope="session")
def stac_api(demo_lake):
    """The demo lake's STAC API, served on a free loopback port; yields its URL."""
    with served(create_app(demo_lake)) as url:
        yield url
