"""`eosc_pangeo.search`: across domains by place, time, variable and words; hits open."""

from __future__ import annotations

import pandas as pd
import pytest
import xarray as xr

from eosc_pangeo.catalog import CatalogError, search


def ids(hits) -> list[str]:
    return [h.id for h in hits]


def test_alias_sst_finds_the_sst_analysis_only(demo_lake):
    hits = search(variables="sst", lake=demo_lake)
    assert ids(hits) == ["sst"]
    assert hits[0].variables == ["analysed_sst"]


def test_a_word_of_standard_names_finds_collections_in_several_domains(demo_lake):
    hits = search(variables="temperature", lake=demo_lake)
    assert set(ids(hits)) == {"sst", "tas", "argo", "stations"}
    assert {h.domain for h in hits} == {"ocean", "atmosphere"}


def test_an_exact_standard_name_ranks_above_a_word_match(demo_lake):
    hits = search(variables="air_temperature", lake=demo_lake)
    assert ids(hits) == ["tas"]
    hits = search(variables=["temperature"], q="air", lake=demo_lake)
    assert ids(hits)[0] == "tas"


def test_every_requested_variable_must_be_present(demo_lake):
    assert set(ids(search(variables=["temperature", "salinity"], lake=demo_lake))) <= {
        "argo",
        "stations",
    }


def test_domain_filter(demo_lake):
    assert ids(search(domain="atmosphere", lake=demo_lake)) == ["tas"]


def test_time_filter_uses_the_items_of_each_collection(demo_lake):
    argo = search(collections=["argo"], lake=demo_lake)[0]
    first_month = search(collections=["argo"], datetime="2020-01", lake=demo_lake)[0]
    assert 0 < first_month.matched_items <= argo.matched_items
    assert search(datetime="1900-01-01/1900-12-31", lake=demo_lake) == []


def test_bbox_filter_keeps_only_platforms_inside(demo_lake):
    everything = search(collections=["argo"], lake=demo_lake)[0]
    platform = everything.items(limit=1)[0]
    west, south, east, north = platform["bbox"]
    hit = search(collections=["argo"], bbox=(west, south, east, north), lake=demo_lake)[0]
    assert platform["id"] in {i["id"] for i in hit.items()}
    assert hit.matched_items < everything.matched_items


def test_free_text_terms_are_ored_and_ranked(demo_lake):
    hits = search(q="sst argo", lake=demo_lake)
    assert set(ids(hits)) == {"sst", "argo"}
    assert search(q="nonexistentword", lake=demo_lake) == []


def test_grid_hit_opens_lazily_for_the_queried_box_and_period_only(demo_lake):
    hit = search(
        variables="sst", bbox=(-30, 30, 0, 50), datetime="2020-01-02/2020-01-04", lake=demo_lake
    )[0]
    ds = hit.open()
    assert isinstance(ds, xr.Dataset) and list(ds.data_vars) == ["analysed_sst"]
    assert not ds.analysed_sst.variable._in_memory
    assert float(ds.lon.min()) >= -30 and float(ds.lon.max()) <= 0
    assert float(ds.lat.min()) >= 30 and float(ds.lat.max()) <= 50
    assert ds.time.size == 3


def test_insitu_hit_opens_as_a_dataframe_of_the_box_and_period(demo_lake):
    hit = search(variables="psal", datetime="2020-02", lake=demo_lake)[0]
    df = hit.open()
    assert isinstance(df, pd.DataFrame) and len(df) > 0
    assert df["time"].min() >= pd.Timestamp("2020-02-01", tz="UTC")
    assert df["time"].max() < pd.Timestamp("2020-03-01", tz="UTC")
    assert "PSAL" in df


def test_noleap_climate_hit_opens_for_a_period(demo_lake):
    ds = search(variables="tas", datetime="2005-03/2005-05", lake=demo_lake)[0].open()
    assert ds.sizes["time"] == 3


def test_search_uses_the_configured_lake(demo_lake, monkeypatch):
    from eosc_pangeo.config import get_settings

    monkeypatch.setenv("EOSC_PANGEO_LAKE", demo_lake.url)
    get_settings.cache_clear()
    try:
        assert ids(search(variables="sst")) == ["sst"]
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"bbox": (0, 0, 1)}, "4 numbers"),
        ({"bbox": (0, 10, 1, 5)}, "north"),
        ({"datetime": "2020-02-01/2020-01-01"}, "reversed"),
        ({"datetime": "yesterday"}, "RFC 3339"),
        ({"limit": 0}, "limit"),
    ],
)
def test_bad_queries_raise_a_clear_error(demo_lake, arguments, message):
    with pytest.raises(CatalogError, match=message):
        search(lake=demo_lake, **arguments)
