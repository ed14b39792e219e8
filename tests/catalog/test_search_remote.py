"""``search(catalog="http://.../")``: a STAC API (ours, served on loopback) searched and opened
like the local index."""

from __future__ import annotations

import time

import pandas as pd
import pytest
import xarray as xr

from eosc_pangeo.catalog import CatalogError, search
from eosc_pangeo.lake import Lake, read_manifest

QUERIES = [
    {"bbox": (-30, 30, 0, 60), "datetime": "2020-01", "variables": ["temperature"]},
    {"variables": "psal", "datetime": "2020-02"},
    {"q": "sst argo"},
    {"domain": "ocean", "bbox": (-180, -90, 180, 90)},
]


def ids(hits) -> list[str]:
    return [h.id for h in hits]


@pytest.mark.parametrize("query", QUERIES)
def test_remote_search_finds_and_ranks_like_the_local_search(demo_lake, stac_api, query):
    local = search(**query, lake=demo_lake)
    remote = search(**query, catalog=stac_api)
    assert ids(local) and ids(remote) == ids(local)
    assert [(h.score, h.matched_items, h.variables) for h in remote] == [
        (h.score, h.matched_items, h.variables) for h in local
    ]
    assert {h.source for h in remote} == {stac_api}


def test_catalog_url_setting_comes_before_the_lake(demo_lake, stac_api, settings_env):
    settings_env(lake="/nonexistent/lake", catalog_url=stac_api)
    hits = search(variables="sst")
    assert ids(hits) == ["sst"] and hits[0].source == stac_api


def test_remote_grid_hit_opens_like_the_local_hit(demo_lake, stac_api):
    query = {"variables": "sst", "bbox": (-30, 30, 0, 50), "datetime": "2020-01-02/2020-01-04"}
    remote = search(**query, catalog=stac_api)[0].open()
    assert remote.analysed_sst.chunks is not None
    xr.testing.assert_identical(remote.load(), search(**query, lake=demo_lake)[0].open().load())


def test_remote_insitu_hit_opens_the_observations_of_the_box_and_period(stac_api):
    df = search(variables="psal", bbox=(-180, -90, 180, 90), datetime="2020-02", catalog=stac_api)[
        0
    ].open()
    assert isinstance(df, pd.DataFrame) and len(df) > 0 and "PSAL" in df
    assert df["time"].min() >= pd.Timestamp("2020-02-01", tz="UTC")
    assert df["time"].max() < pd.Timestamp("2020-03-01", tz="UTC")


def test_remote_hit_lists_its_matching_items(stac_api):
    hit = search(collections=["sst"], datetime="2020-01-02/2020-01-04", catalog=stac_api)[0]
    assert hit.matched_items == 3
    assert len(hit.items()) == 3 and {i["collection"] for i in hit.items()} == {"sst"}


def test_unreachable_stac_api_fails_fast_with_a_clear_error():
    began = time.monotonic()
    with pytest.raises(CatalogError, match="did not answer"):
        search(variables="sst", catalog="http://127.0.0.1:9/stac")
    assert time.monotonic() - began < 5


def test_remote_insitu_hit_opens_like_the_local_hit(demo_lake, stac_api):
    query = {"variables": "temperature", "bbox": (-40, 20, 0, 60), "datetime": "2020-01"}
    remote = search(**query, catalog=stac_api)
    local = search(**query, lake=demo_lake)
    argo = next(h for h in local if h.kind == "insitu")
    pd.testing.assert_frame_equal(next(h for h in remote if h.id == argo.id).open(), argo.open())


def test_remote_insitu_hit_reads_only_the_committed_version(demo_lake, stac_api):
    # A file an ingest under way has written, not yet listed in the manifest.
    lake = Lake.from_url(demo_lake)
    hit = next(
        h
        for h in search(variables="psal", datetime="2020-02", catalog=stac_api)
        if h.kind == "insitu"
    )
    committed = read_manifest(lake, lake.find_collection(hit.id)).files[0]
    folder = f"{lake.find_collection(hit.id)}/{committed.path.rsplit('/', 1)[0]}"
    uncommitted = f"{folder}/part-999999-00000000.parquet"
    lake.fs.cp_file(f"{lake.find_collection(hit.id)}/{committed.path}", uncommitted)
    try:
        df = hit.open()
    finally:
        lake.fs.rm(uncommitted)
    assert not df.duplicated(["platform_id", "time", "pressure", "depth"]).any()
    local = search(variables="psal", datetime="2020-02", lake=demo_lake, collections=[hit.id])
    pd.testing.assert_frame_equal(df, local[0].open())
