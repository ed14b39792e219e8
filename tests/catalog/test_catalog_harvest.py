"""Harvest a STAC API (started here on loopback), a static STAC catalog and an Intake catalog."""

from __future__ import annotations

import pytest

from eosc_pangeo.catalog import CatalogIndex, search
from eosc_pangeo.catalog.harvest import harvest


@pytest.fixture
def index(tmp_path) -> CatalogIndex:
    return CatalogIndex(str(tmp_path / "index"))


def index_bytes(index: CatalogIndex) -> dict[str, bytes]:
    return {path: index.fs.cat_file(path) for path in index.fs.find(index.root)}


def test_stac_api_harvest_indexes_every_collection_and_item(stac_api, demo_lake, index):
    report = harvest(stac_api, index=index)
    assert report.ok and report.kind == "stac-api"
    assert sorted(report.added) == ["argo", "sst", "stations", "tas"]
    original = CatalogIndex.of_lake(demo_lake)
    assert report.items == sum(c.item_count for c in original.collections())
    hits = search(variables="sst", catalog=index)
    assert [h.id for h in hits] == ["sst"] and hits[0].source != "lake"


def test_reharvest_is_incremental(stac_api, index):
    harvest(stac_api, index=index)
    before = index_bytes(index)
    report = harvest(stac_api, index=index)
    assert report.added == report.updated == [] and len(report.unchanged) == 4
    assert index_bytes(index) == before


def test_static_catalog_harvest(demo_lake, index):
    report = harvest(f"{demo_lake.url}/_catalog/stac/catalog.json", index=index)
    assert report.ok and report.kind == "stac-static" and len(report.added) == 4
    assert search(variables="salinity", datetime="2020-02", catalog=index)


def test_intake_catalog_harvest_nests_domains(demo_lake, index):
    report = harvest(f"{demo_lake.url}/_catalog/intake/catalog.yaml", index=index)
    assert report.ok and report.kind == "intake"
    assert "ocean.sst" in report.added and "atmosphere.tas" in report.added
    assert {h.id for h in search(variables="tas", catalog=index)} == {
        "atmosphere.tas",
        "atmosphere.tas_timeseries",
    }


@pytest.mark.parametrize("source", ["http://127.0.0.1:9/", "/nonexistent/catalog.json", "broken"])
def test_broken_or_unreachable_source_is_reported_and_changes_nothing(
    stac_api, index, tmp_path, source
):
    harvest(stac_api, index=index)
    if source == "broken":
        source = str(tmp_path / "catalog.json")
        (tmp_path / "catalog.json").write_text('{"type": "Catalog", "id": ')
    before = index_bytes(index)
    report = harvest(source, index=index)
    assert not report.ok and report.error
    assert index_bytes(index) == before


def test_collection_ids_clashing_with_another_source_are_skipped(stac_api, demo_lake, lake_copy):
    report = harvest(stac_api, lake=lake_copy)
    assert report.ok and set(report.skipped) == {"sst", "tas", "argo", "stations"}
    assert {c.source for c in CatalogIndex.of_lake(lake_copy).collections()} == {"lake"}
