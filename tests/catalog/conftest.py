"""A demo lake (sst, tas, argo, stations) described once for the whole catalogue suite."""

from __future__ import annotations

import shutil

import pytest

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


@pytest.fixture(scope="session")
def stac_api(demo_lake, serve):
    """The demo lake's STAC API, served on a free loopback port; yields its URL."""
    with serve(create_app(demo_lake)) as url:
        yield url
