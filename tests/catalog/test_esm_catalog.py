"""The intake-esm catalogue: climate model output in the lake opens with plain intake-esm."""

from __future__ import annotations

from pathlib import Path

import intake
import netCDF4
import pytest
import xarray as xr
from upstream_known import INTAKE_ESM_LOCAL

from eosc_pangeo.catalog import CatalogError, build_catalog, open_esm_catalog
from eosc_pangeo.catalog.esm import esm_rows, member_id
from eosc_pangeo.demo_data import ClimateSpec, StationSpec, write_climate, write_stations
from eosc_pangeo.lake.grid import ingest_grid
from eosc_pangeo.lake.insitu import ingest_insitu
from eosc_pangeo.lake.manifest import list_collections


def open_esm(lake):
    """The lake's intake-esm catalogue, opened by intake-esm alone."""
    return intake.open_esm_datastore(lake.uri("_catalog", "esm", "collection.json"))


def test_the_demo_climate_run_is_catalogued_once_per_store(demo_lake):
    frame = open_esm(demo_lake).df
    assert sorted(frame.chunking) == ["map", "timeseries"]
    assert set(frame.collection) == {"tas"}  # the SST analysis and in-situ data are no model run
    row = frame.iloc[0]
    assert (
        row.source_id,
        row.experiment_id,
        row.member_id,
        row.table_id,
        row.variable_id,
        row.grid_label,
    ) == ("EOSC-ESM", "historical", "r1i1p1f1", "Amon", "tas", "gn")


@INTAKE_ESM_LOCAL
def test_search_and_to_dataset_dict_open_the_lake_store(demo_lake):
    found = open_esm(demo_lake).search(variable_id="tas", chunking="map")
    datasets = found.to_dataset_dict(progressbar=False)
    assert list(datasets) == ["CMIP.EOSC.EOSC-ESM.historical.Amon.gn.map"]
    opened = datasets["CMIP.EOSC.EOSC-ESM.historical.Amon.gn.map"]
    assert opened.tas.dims == ("member_id", "time", "lat", "lon")
    store = found.df.path.iloc[0]
    with xr.open_zarr(store) as direct:
        xr.testing.assert_identical(
            opened.tas.isel(member_id=0, drop=True).compute(), direct.tas.compute()
        )


def _second_member(tmp_path: Path) -> list[str]:
    files = write_climate(ClimateSpec(2000, 2019, 5.0), tmp_path, seed=7)
    for path in files:
        with netCDF4.Dataset(path, "a") as nc:
            nc.variant_label, nc.realization_index = "r2i1p1f1", 2
    return [str(p) for p in files]


@INTAKE_ESM_LOCAL
def test_members_of_one_experiment_are_joined_along_member_id(lake_copy, tmp_path):
    first = next(m for m in list_collections(lake_copy) if m.id == "tas")
    ingest_grid(lake_copy, "tas-r2", "atmosphere", _second_member(tmp_path), chunking="map")
    build_catalog(lake_copy)
    datasets = (
        open_esm(lake_copy)
        .search(variable_id="tas", chunking="map")
        .to_dataset_dict(progressbar=False)
    )
    (opened,) = datasets.values()
    assert list(opened.member_id.values) == ["r1i1p1f1", "r2i1p1f1"]
    assert opened.time.size == first.stores["map"].time_length
    r1, r2 = (opened.tas.sel(member_id=m).isel(time=0).compute() for m in opened.member_id)
    assert not r1.equals(r2)


def test_member_id_follows_the_cmip6_reference_syntax():
    assert member_id({"variant_label": "r1i1p1f1", "sub_experiment_id": "none"}) == "r1i1p1f1"
    assert (
        member_id({"variant_label": "r1i1p1f1", "sub_experiment_id": "s1960"}) == "s1960-r1i1p1f1"
    )
    assert member_id({"member_id": "r3i1p1f2", "variant_label": "r1i1p1f1"}) == "r3i1p1f2"
    assert member_id({"source_id": "X"}) is None


def test_a_grid_without_cmip_attributes_is_left_out(demo_lake):
    sst = next(m for m in list_collections(demo_lake) if m.id == "sst")
    assert "source_id" not in sst.attributes and esm_rows(demo_lake, sst) == []


def test_a_lake_without_model_output_has_no_esm_catalogue(local_lake, tmp_path):
    files = write_stations(StationSpec(stations=1, days=2), tmp_path)
    ingest_insitu(local_lake, "stations", "ocean", [str(p) for p in files])
    report = build_catalog(local_lake)
    assert report.esm is None
    assert not local_lake.fs.exists(local_lake.path("_catalog", "esm", "collection.json"))


def test_the_catalogue_of_a_lake_on_s3_opens_with_storage_options(s3_lake, tmp_path):
    files = write_climate(ClimateSpec(2000, 2009, 5.0), tmp_path)
    ingest_grid(s3_lake, "tas", "atmosphere", [str(p) for p in files], chunking="map")
    report = build_catalog(s3_lake)
    assert report.esm.startswith("s3://")
    options = s3_lake.storage_options
    cat = intake.open_esm_datastore(report.esm, storage_options=options)
    (opened,) = (
        cat.search(variable_id="tas")
        .to_dataset_dict(storage_options=options, progressbar=False)
        .values()
    )
    assert opened.tas.sizes["time"] == 120
    with xr.open_zarr(cat.df.path.iloc[0], storage_options=options) as direct:
        xr.testing.assert_identical(
            opened.tas.isel(member_id=0, drop=True).compute(), direct.tas.compute()
        )


def test_open_esm_catalog_finds_the_lakes_or_says_how_to_build_it(demo_lake, local_lake):
    assert set(open_esm_catalog(demo_lake).df.collection) == {"tas"}
    with pytest.raises(CatalogError, match="no intake-esm catalogue.*catalog build"):
        open_esm_catalog(local_lake)
