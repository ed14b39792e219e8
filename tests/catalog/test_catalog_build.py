"""`catalog build`: STAC, Intake and index describe every collection of the lake."""

from __future__ import annotations

import json

import intake
import pystac
import pytest
import xarray as xr
from pystac.extensions.datacube import DatacubeExtension
from pystac.extensions.table import TableExtension
from pystac.validation import validate_dict

from eosc_pangeo.catalog import CatalogIndex, build_catalog
from eosc_pangeo.lake.manifest import list_collections


def stac_root(lake) -> pystac.Catalog:
    return pystac.Catalog.from_file(f"{lake.url}/_catalog/stac/catalog.json")


def test_every_lake_collection_becomes_a_stac_collection_under_its_domain(demo_lake):
    root = stac_root(demo_lake)
    found = {c.id: c.get_parent().id for c in root.get_all_collections()}
    assert found == {m.id: m.domain for m in list_collections(demo_lake)}


def test_static_catalog_is_valid_against_the_stac_core_schemas(demo_lake):
    # pystac ships the core schemas; extension schemas would be fetched online (not here).
    checked = 0
    for catalog, _, items in stac_root(demo_lake).walk():
        validate_dict(catalog.to_dict(), extensions=[])
        for item in items:
            validate_dict(item.to_dict(), extensions=[])
            checked += 1
    assert checked > 10


def test_grid_collection_has_datacube_dimensions_and_cf_variables(demo_lake):
    sst = stac_root(demo_lake).get_child("ocean").get_child("sst")
    manifest = next(m for m in list_collections(demo_lake) if m.id == "sst")
    cube = DatacubeExtension.ext(sst)
    assert {d.dim_type for d in cube.dimensions.values()} == {"spatial", "temporal"}
    assert cube.variables["analysed_sst"].properties["standard_name"] == (
        "sea_surface_foundation_temperature"
    )
    assert cube.variables["analysed_sst"].unit == manifest.variables["analysed_sst"].units
    assert sst.extent.spatial.bboxes[0] == list(manifest.extent.bbox)
    assert [p.name for p in sst.providers][-1] == "ODATIS"


def test_zarr_assets_open_with_their_own_keyword_arguments(demo_lake):
    sst = stac_root(demo_lake).get_child("ocean").get_child("sst")
    for asset in sst.assets.values():
        ds = xr.open_dataset(asset.href, **asset.extra_fields["xarray:open_kwargs"])
        assert "analysed_sst" in ds and ds.chunks  # lazy, dask-backed


def test_insitu_collection_has_table_columns_and_one_item_per_platform(demo_lake):
    argo = stac_root(demo_lake).get_child("ocean").get_child("argo")
    table = TableExtension.ext(argo)
    columns = {c.name: c for c in table.columns}
    assert columns["TEMP"].properties["standard_name"] == "sea_water_temperature"
    assert table.row_count == sum(
        f.rows for m in list_collections(demo_lake) if m.id == "argo" for f in m.files
    )
    platforms = {item.properties["platform"] for item in argo.get_items()}
    assert len(platforms) == 5  # the small demo has five floats
    assert argo.assets["observations"].media_type == "application/vnd.apache.parquet"


def test_atmosphere_collection_gets_the_aeris_data_pole(demo_lake):
    tas = stac_root(demo_lake).get_child("atmosphere").get_child("tas")
    assert "AERIS" in [p.name for p in tas.providers]


def test_every_intake_entry_opens_with_plain_intake(demo_lake):
    root = intake.open_catalog(f"{demo_lake.url}/_catalog/intake/catalog.yaml")
    opened = {}
    for domain in root:
        for name in root[domain]:
            opened[name] = type(root[domain][name].to_dask()).__name__
    assert opened["sst"] == opened["sst_timeseries"] == opened["tas"] == "Dataset"
    assert opened["argo"] == opened["stations"] == "DataFrame"


def test_index_holds_every_collection_and_item_in_stac_geoparquet(demo_lake):
    index = CatalogIndex.of_lake(demo_lake)
    collections = {c.id: c for c in index.collections()}
    assert set(collections) == {"sst", "tas", "argo", "stations"}
    files = sorted(demo_lake.fs.glob(f"{demo_lake.url}/_catalog/index/items/lake/*.parquet"))
    import pyarrow.parquet as pq

    metadata = json.loads(pq.read_schema(files[0]).metadata[b"stac-geoparquet"])
    assert set(metadata["collections"]) <= set(collections)
    assert sum(c.item_count for c in collections.values()) == sum(
        pq.read_metadata(f).num_rows for f in files
    )


def test_rebuild_of_an_unchanged_lake_rewrites_nothing(lake_copy):
    stac_files = lake_copy.fs.glob(f"{lake_copy.url}/_catalog/stac/**/*.json")
    before = {
        f: lake_copy.fs.modified(f) for f in stac_files if "/ocean/sst/" in f or "/ocean/argo/" in f
    }
    report = build_catalog(lake_copy)
    assert report.described == [] and sorted(report.unchanged) == ["argo", "sst", "stations", "tas"]
    assert before == {f: lake_copy.fs.modified(f) for f in before}


def test_rebuild_after_removing_a_collection_drops_it(lake_copy):
    lake_copy.fs.rm(lake_copy.path("ocean", "stations"), recursive=True)
    report = build_catalog(lake_copy)
    assert report.removed == ["stations"]
    assert "stations" not in {c.id for c in CatalogIndex.of_lake(lake_copy).collections()}
    assert "stations" not in {c.id for c in stac_root(lake_copy).get_all_collections()}


@pytest.mark.parametrize("domain", ["ocean", "atmosphere"])
def test_domain_catalogs_hold_only_their_domain(demo_lake, domain):
    child = stac_root(demo_lake).get_child(domain)
    assert {c.extra_fields["eosc:domain"] for c in child.get_collections()} == {domain}


def test_open_catalog_gives_the_lakes_intake_root(demo_lake):
    from eosc_pangeo.catalog import open_catalog

    ds = open_catalog(demo_lake.url).atmosphere.tas.to_dask()
    assert "tas" in ds and ds.chunks


def test_repository_root_catalog_nests_the_configured_lake(demo_lake, monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("EOSC_PANGEO_LAKE", demo_lake.url)
    root = intake.open_catalog(str(Path(__file__).parents[2] / "catalogs" / "catalog.yaml"))
    assert set(root.lake) == {"ocean", "atmosphere"}
    assert len(root.lake.ocean.argo.to_dask().compute()) > 0
    # Public entries are listed and documented, never opened here (no internet in CI).
    public = {name: entry.describe()["metadata"] for name, entry in root.public._entries.items()}
    assert public and all(meta["tested_offline"] is False for meta in public.values())
