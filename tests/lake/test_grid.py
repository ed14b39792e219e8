"""Gridded ingest: NetCDF files in, analysis-ready Zarr out; bad input never harms the lake."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cftime
import h5py
import netCDF4
import numpy as np
import pytest
import xarray as xr
import zarr

from eosc_pangeo import demo_data
from eosc_pangeo.lake import (
    IngestError,
    Lake,
    LakeWarning,
    SelectionError,
    UnknownVariable,
    ingest_grid,
    open_dataset,
    read_manifest,
    validate,
)


def snapshot(lake: Lake) -> dict[str, bytes]:
    """Every file of the lake with its bytes, to compare before and after a failed ingest."""
    fs = lake.fs
    return {path: fs.cat_file(path) for path in fs.find(lake.root)}


def source_dataset(files) -> xr.Dataset:
    return xr.open_mfdataset(
        sorted(map(str, files)),
        engine="netcdf4",
        combine="by_coords",
        data_vars="all",
        decode_times=xr.coders.CFDatetimeCoder(use_cftime=None),
    ).load()


def assert_same_values(lake_values: xr.DataArray, source_values: xr.DataArray) -> None:
    # JSON stores scale_factor as float64, so the lake decodes in float64 where netCDF4 decodes
    # in the float32 of the source's attributes: the two differ by float32 rounding only.
    xr.testing.assert_allclose(lake_values.load(), source_values, rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def sst_files(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("sources")
    return demo_data.write_sst(demo_data.SstSpec(days=8, resolution=1.0), out)


@pytest.fixture(scope="module")
def climate_files(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("climate")
    return demo_data.write_climate(demo_data.ClimateSpec(2000, 2019, 10.0), out)


@pytest.fixture
def sst_lake(local_lake, sst_files) -> Lake:
    """A lake holding the first six days of SST."""
    ingest_grid(local_lake, "sst", "ocean", sst_files[:6])
    return local_lake


def copy_with(source: Path, target: Path, change) -> Path:
    """A copy of a NetCDF source with ``change(ds)`` applied, written as a new file."""
    with xr.open_dataset(source, decode_times=False) as ds:
        changed = change(ds.load())
    changed.to_netcdf(target)
    return target


def test_ingest_copies_every_stored_value_of_the_sources_exactly(sst_lake, sst_files):
    stored = xr.open_zarr(sst_lake.path("ocean", "sst", "map.zarr"), mask_and_scale=False)
    source = xr.open_mfdataset(sst_files[:6], mask_and_scale=False)
    np.testing.assert_array_equal(stored.analysed_sst.values, source.analysed_sst.values)


def test_decoded_values_match_the_sources(sst_lake, sst_files):
    ds = open_dataset(sst_lake.url, "sst")
    expected = source_dataset(sst_files[:6])
    assert_same_values(ds.analysed_sst, expected.analysed_sst)


def test_opened_dataset_is_lazy(sst_lake):
    ds = open_dataset(sst_lake.url, "sst")
    assert not ds.analysed_sst.variable._in_memory


def test_opened_with_chunks_is_dask_backed_in_the_map_store_layout(sst_lake):
    ds = open_dataset(sst_lake.url, "sst", chunks={})
    map_chunks = read_manifest(sst_lake, sst_lake.path("ocean", "sst")).stores["map"].chunks
    assert ds.analysed_sst.chunksizes["time"][0] == map_chunks["time"]
    xr.testing.assert_identical(ds.load(), open_dataset(sst_lake.url, "sst", chunking="map").load())


def test_packed_sources_stay_packed(sst_lake):
    encoding = open_dataset(sst_lake.url, "sst").analysed_sst.encoding
    assert (encoding["dtype"], encoding["scale_factor"]) == (np.dtype("int16"), 0.01)


def test_timeseries_store_holds_a_year_per_chunk_in_small_tiles(sst_lake):
    chunks = open_dataset(sst_lake.url, "sst", chunking="timeseries").analysed_sst.encoding[
        "chunks"
    ]
    assert chunks[0] >= 365 and chunks[1] * chunks[2] * chunks[0] * 2 <= 2 * 1024**2


def without_chunks(lake: Lake, store: str) -> None:
    """Delete the data chunks of a store: reading them now gives fill values, not the data."""
    for folder in Path(lake.path("ocean", "sst", store)).glob("analys*/c"):
        shutil.rmtree(folder)


SELECTIONS = {
    "a point, nearest": lambda da: da.sel(lat=41.3, lon=-29.6, method="nearest"),
    "a point by position": lambda da: da.isel(lat=130, lon=150),
    "a small box": lambda da: da.isel(lat=slice(100, 103), lon=slice(10, 12)),
    "a day's map": lambda da: da.sel(time="2020-01-02"),
    "two days by list": lambda da: da.isel(time=[4, 1]),
    "every third row, reversed": lambda da: da.isel(lat=slice(None, None, -3)),
    "scattered cells": lambda da: da.isel(lat=[5, 170, 90], lon=[300, 2]),
    "everything": lambda da: da,
}


@pytest.mark.parametrize("select", SELECTIONS.values(), ids=SELECTIONS.keys())
def test_every_selection_reads_exactly_the_values_of_the_map_store(sst_lake, select):
    routed = open_dataset(sst_lake.url, "sst").analysed_sst
    stored = xr.open_zarr(sst_lake.path("ocean", "sst", "map.zarr")).analysed_sst
    expected = select(stored).load()
    got = select(routed).load()
    xr.testing.assert_identical(got, expected)
    np.testing.assert_array_equal(got.values.view(np.uint64), expected.values.view(np.uint64))


def test_a_point_series_after_opening_reads_the_timeseries_store_only(sst_lake):
    expected = (
        open_dataset(sst_lake.url, "sst", chunking="timeseries")
        .analysed_sst.sel(lat=41.3, lon=-29.6, method="nearest")
        .load()
    )
    ds = open_dataset(sst_lake.url, "sst")
    without_chunks(sst_lake, "map.zarr")
    series = ds.analysed_sst.sel(lat=41.3, lon=-29.6, method="nearest").load()
    xr.testing.assert_identical(series, expected)


def test_a_map_after_opening_reads_the_map_store_only(sst_lake):
    expected = (
        open_dataset(sst_lake.url, "sst", chunking="map").analysed_sst.sel(time="2020-01-02").load()
    )
    ds = open_dataset(sst_lake.url, "sst")
    without_chunks(sst_lake, "timeseries.zarr")
    xr.testing.assert_identical(ds.analysed_sst.sel(time="2020-01-02").load(), expected)


def test_a_one_cell_bbox_reads_the_timeseries_store_only(sst_lake):
    bbox = (-30, 40, -29, 41)
    expected = open_dataset(sst_lake.url, "sst", chunking="timeseries", bbox=bbox).load()
    ds = open_dataset(sst_lake.url, "sst", bbox=bbox)
    without_chunks(sst_lake, "map.zarr")
    xr.testing.assert_equal(ds.load(), expected)


def test_selection_returns_only_the_requested_region_and_period(sst_lake):
    ds = open_dataset(sst_lake.url, "sst", bbox=(0, 0, 10, 10), time=("2020-01-02", "2020-01-03"))
    assert ds.sizes["time"] == 2
    assert float(ds.lat.min()) >= 0 and float(ds.lat.max()) <= 10
    assert float(ds.lon.min()) >= 0 and float(ds.lon.max()) <= 10


def test_a_box_whose_south_is_north_of_its_north_is_refused(sst_lake):
    with pytest.raises(SelectionError, match=r"south \(50.0\) is north of its north \(0.0\)"):
        open_dataset(sst_lake, "sst", bbox=(10, 50, 0, 0))


def test_an_unknown_variable_is_the_same_error_as_for_in_situ_collections(sst_lake):
    with pytest.raises(UnknownVariable, match="no variable chlorophyll .variables: "):
        open_dataset(sst_lake, "sst", variables=["chlorophyll"])


@pytest.mark.parametrize("chunking", ["map", "timeseries"])
def test_a_box_crossing_the_antimeridian_gives_both_sides_contiguous(sst_lake, sst_files, chunking):
    ds = open_dataset(sst_lake, "sst", bbox=(170, -10, -170, 10), chunking=chunking)

    assert np.all(np.diff(ds.lon.values) > 0)
    assert ds.lon.values[0] > 170 and ds.lon.values[-1] < 190
    source = source_dataset(sst_files[:6]).analysed_sst.sel(lat=slice(-10, 10))
    assert_same_values(
        ds.analysed_sst.sel(lon=slice(180, 190)),
        source.sel(lon=slice(-180, -170)).assign_coords(lon=lambda d: d.lon + 360),
    )


@pytest.mark.parametrize(
    "bbox", [(-10, 40, 10, 50), (-60, -10, -50, 0)], ids=["across Greenwich", "west of Greenwich"]
)
def test_a_0_to_360_grid_is_cut_by_a_box_in_degrees_east_and_west(local_lake, climate_files, bbox):
    ingest_grid(local_lake, "tas", "atmosphere", climate_files)
    west, _, east, _ = bbox

    ds = open_dataset(local_lake, "tas", bbox=bbox)

    assert west < ds.lon.values[0] and ds.lon.values[-1] < east  # labelled as the box is
    source = source_dataset(climate_files).tas.sel(lat=slice(bbox[1], bbox[3]))
    expected = source.sel(lon=(ds.lon.values % 360)).assign_coords(lon=ds.lon.values)
    xr.testing.assert_equal(ds.tas.load(), expected)


def test_stores_have_consolidated_metadata(sst_lake):
    path = sst_lake.path("ocean", "sst", "map.zarr")
    assert zarr.open_group(path, mode="r", use_consolidated=True).metadata.consolidated_metadata


def test_cf_and_acdd_attributes_describe_the_collection(sst_lake):
    ds = open_dataset(sst_lake.url, "sst")
    assert ds.analysed_sst.attrs["standard_name"] == "sea_surface_foundation_temperature"
    assert ds.attrs["Conventions"] == "CF-1.10, ACDD-1.3"
    assert ds.attrs["time_coverage_start"].startswith("2020-01-01")
    assert ds.attrs["time_coverage_end"].startswith("2020-01-06")
    assert ds.attrs["geospatial_lat_min"] == -90 and ds.attrs["geospatial_lon_max"] == 180
    assert "ingest-grid" in ds.attrs["history"]


def test_manifest_records_provenance_of_every_source(sst_lake, sst_files):
    manifest = read_manifest(sst_lake, sst_lake.find_collection("sst"))
    recorded = {s.name: (s.size, s.sha256) for s in manifest.sources}
    expected = {
        f.name: (f.stat().st_size, hashlib.sha256(f.read_bytes()).hexdigest())
        for f in sst_files[:6]
    }
    assert recorded == expected
    assert manifest.software["eosc-pangeo"] and manifest.software["zarr"]


def test_ingesting_the_same_files_again_changes_nothing(sst_lake, sst_files):
    before = snapshot(sst_lake)
    report = ingest_grid(sst_lake, "sst", "ocean", sst_files[:6])
    assert not report.added and len(report.skipped) == 6
    assert snapshot(sst_lake) == before


def test_new_days_are_appended(sst_lake, sst_files):
    report = ingest_grid(sst_lake, "sst", "ocean", sst_files)
    assert report.added == [f.name for f in sst_files[6:]] and report.version == 2
    for chunking in ("map", "timeseries"):
        ds = open_dataset(sst_lake.url, "sst", chunking=chunking)
        assert_same_values(ds.analysed_sst, source_dataset(sst_files).analysed_sst)


def test_noleap_calendar_and_bounds_survive_the_round_trip(local_lake, climate_files):
    ingest_grid(local_lake, "tas", "atmosphere", climate_files)
    ds = open_dataset(local_lake.url, "tas")
    assert isinstance(ds.time.values[0], cftime.DatetimeNoLeap)
    assert ds.time.encoding["calendar"] == "noleap"
    assert ds.sizes["time"] == 240
    assert "lat_bnds" in ds and ds.lat.attrs["bounds"] == "lat_bnds"
    xr.testing.assert_equal(ds.tas.load(), source_dataset(climate_files).tas)


def test_coordinates_known_only_by_their_standard_names_are_found(local_lake, sst_files, tmp_path):
    def without_axis_attributes(ds):
        for name in ("time", "lat", "lon"):
            ds[name].attrs.pop("axis", None)
        return ds

    plain = [copy_with(f, tmp_path / f.name, without_axis_attributes) for f in sst_files[:2]]

    ingest_grid(local_lake, "sst", "ocean", plain)

    assert_same_values(
        open_dataset(local_lake, "sst").analysed_sst, source_dataset(sst_files[:2]).analysed_sst
    )


def hdf5_layout(
    source: Path,
    target: Path,
    chunks: tuple[int, int, int],
    shuffle: bool,
    contiguous: bool = False,
) -> Path:
    """The source rewritten with another HDF5 layout of ``analysed_sst``."""

    def relayout(ds):
        encoding = ds["analysed_sst"].encoding
        for key in ("chunksizes", "zlib", "shuffle", "complevel", "contiguous"):
            encoding.pop(key, None)
        encoding.update(
            {"contiguous": True}
            if contiguous
            else {"chunksizes": chunks, "zlib": True, "complevel": 4, "shuffle": shuffle}
        )
        return ds

    return copy_with(source, target, relayout)


LAYOUTS = {
    "odd chunks, shuffled": dict(chunks=(1, 7, 13), shuffle=True),
    "odd chunks, not shuffled": dict(chunks=(1, 7, 13), shuffle=False),
    "two days a chunk": dict(chunks=(2, 90, 90), shuffle=True),
    "contiguous": dict(chunks=(1, 1, 1), shuffle=False, contiguous=True),
}


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_every_hdf5_layout_is_copied_exactly(local_lake, sst_files, tmp_path, layout):
    files = [hdf5_layout(f, tmp_path / f.name, **layout) for f in sst_files[:3]]

    ingest_grid(local_lake, "sst", "ocean", files, chunking="map")

    stored = xr.open_zarr(local_lake.path("ocean", "sst", "map.zarr"), mask_and_scale=False)
    with xr.open_mfdataset(files, mask_and_scale=False) as source:
        np.testing.assert_array_equal(stored.analysed_sst.values, source.analysed_sst.values)


def test_sources_chunked_as_the_map_store_have_their_chunks_copied_unchanged(local_lake, sst_files):
    report = ingest_grid(local_lake, "sst", "ocean", sst_files[:3], chunking="map")

    assert report.chunks == {"map.zarr/analysed_sst": "copied", "map.zarr/analysis_error": "copied"}
    with h5py.File(sst_files[2]) as source:
        _, stored = source["analysed_sst"].id.read_direct_chunk((0, 0, 0))
    chunk = Path(local_lake.path("ocean", "sst", "map.zarr", "analysed_sst", "c", "2", "0", "0"))
    assert chunk.read_bytes() == stored


def test_copied_chunks_read_exactly_as_the_decoded_path_writes_them(
    local_lake, sst_files, tmp_path
):
    recompressed = [
        hdf5_layout(f, tmp_path / f.name, **LAYOUTS["odd chunks, shuffled"]) for f in sst_files[:3]
    ]
    copied = ingest_grid(local_lake, "copied", "ocean", sst_files[:3], chunking="map")
    encoded = ingest_grid(local_lake, "encoded", "ocean", recompressed, chunking="map")

    assert copied.chunks["map.zarr/analysed_sst"] == "copied"
    assert encoded.chunks["map.zarr/analysed_sst"].startswith("encoded: ")
    xr.testing.assert_identical(
        open_dataset(local_lake, "copied").analysed_sst.load(),
        open_dataset(local_lake, "encoded").analysed_sst.load(),
    )


def test_a_layout_that_cannot_be_copied_is_encoded_and_the_report_says_why(
    local_lake, sst_files, tmp_path
):
    ingest_grid(local_lake, "sst", "ocean", sst_files[:2], chunking="map")
    other = hdf5_layout(
        sst_files[2], tmp_path / sst_files[2].name, chunks=(1, 90, 90), shuffle=True
    )

    report = ingest_grid(local_lake, "sst", "ocean", [other], chunking="map")

    assert report.chunks["map.zarr/analysed_sst"] == (
        f"encoded: {other.name}: chunks (1, 90, 90), the store's (1, 180, 360)"
    )
    stored = xr.open_zarr(local_lake.path("ocean", "sst", "map.zarr"), mask_and_scale=False)
    with xr.open_mfdataset(sst_files[:3], mask_and_scale=False) as source:
        np.testing.assert_array_equal(stored.analysed_sst.values, source.analysed_sst.values)


def packed_with(scale_factor: float):
    """A source repacked with its own scale factor, as CDS downloads of ERA5 are."""

    def repack(ds):
        ds["analysed_sst"].encoding["scale_factor"] = np.float32(scale_factor)
        return ds

    return repack


def test_sources_packed_each_their_own_way_are_stored_decoded(local_lake, sst_files, tmp_path):
    files = [
        copy_with(f, tmp_path / f.name, packed_with(scale))
        for f, scale in zip(sst_files[:3], (0.01, 0.02, 0.005), strict=True)
    ]

    ingest_grid(local_lake, "sst", "ocean", files[:2])  # auto: their packings differ
    ingest_grid(local_lake, "sst", "ocean", files[2:])

    ds = open_dataset(local_lake, "sst")
    assert ds.analysed_sst.dtype == np.float32
    with xr.open_mfdataset(files) as source:
        xr.testing.assert_equal(ds.analysed_sst.load(), source.analysed_sst.astype(np.float32))
    assert [f for f in validate(local_lake) if not f.ok] == []


def test_a_packed_collection_refuses_a_source_packed_otherwise(sst_lake, sst_files, tmp_path):
    other = copy_with(sst_files[6], tmp_path / sst_files[6].name, packed_with(0.02))
    before = snapshot(sst_lake)
    with pytest.raises(IngestError, match="values='decoded'"):
        ingest_grid(sst_lake, "sst", "ocean", [other])
    assert snapshot(sst_lake) == before


def test_a_gap_in_time_is_ingested_with_a_warning(local_lake, sst_files):
    with pytest.warns(LakeWarning, match="gap in time between 2020-01-03"):
        report = ingest_grid(local_lake, "sst", "ocean", sst_files[:3] + sst_files[4:6])
    assert report.warnings


def test_validate_passes_on_a_fresh_collection(sst_lake):
    failed = [f for f in validate(sst_lake) if not f.ok]
    assert failed == []


def regional_ta(target: Path, steps: int, levels: int, ny: int, nx: int) -> Path:
    """A small regional subset of CMIP6 ``ta`` (Amon): monthly air temperature on pressure
    levels, as users cut them from ESGF."""
    times = [cftime.DatetimeNoLeap(2000 + m // 12, m % 12 + 1, 16) for m in range(steps)]
    plev = np.linspace(100000.0, 10000.0, levels)
    values = (
        288.0
        - 60.0 * np.log(100000.0 / plev)[None, :, None, None]
        + np.zeros((steps, levels, ny, nx))
    )
    ds = xr.Dataset(
        {
            "ta": (
                ("time", "plev", "lat", "lon"),
                values.astype("float32"),
                {"standard_name": "air_temperature", "units": "K"},
            )
        },
        coords={
            "time": ("time", times, {"standard_name": "time", "axis": "T"}),
            "plev": (
                "plev",
                plev,
                {"standard_name": "air_pressure", "units": "Pa", "axis": "Z", "positive": "down"},
            ),
            "lat": (
                "lat",
                np.linspace(40.0, 42.5, ny),
                {"standard_name": "latitude", "units": "degrees_north"},
            ),
            "lon": (
                "lon",
                np.linspace(0.0, 2.5, nx),
                {"standard_name": "longitude", "units": "degrees_east"},
            ),
        },
        attrs={"source_id": "EOSC-ESM", "table_id": "Amon", "variable_id": "ta"},
    )
    ds.to_netcdf(target)
    return target


@pytest.mark.parametrize(
    "steps, levels, ny, nx",
    [(12, 1, 3, 4), (24, 2, 2, 2), (1, 8, 3, 3)],
    ids=["one-level", "two-levels-2x2", "one-month"],
)
def test_validate_passes_on_a_small_4d_grid_chunked_both_ways(
    local_lake, tmp_path, steps, levels, ny, nx
):
    source = regional_ta(
        tmp_path / "ta_Amon_EOSC-ESM_historical_r1i1p1f1_gn.nc", steps, levels, ny, nx
    )
    ingest_grid(local_lake, "ta", "atmosphere", [source], chunking="both")
    assert [f for f in validate(local_lake) if not f.ok] == []
    xr.testing.assert_equal(
        open_dataset(local_lake, "ta", chunking="timeseries").ta.load(), xr.open_dataset(source).ta
    )


def test_map_chunks_of_a_grid_on_pressure_levels_count_the_levels(local_lake, tmp_path):
    source = regional_ta(tmp_path / "ta.nc", steps=12, levels=19, ny=8, nx=8)
    ingest_grid(local_lake, "ta", "atmosphere", [source], chunking="map")
    array = zarr.open_group(local_lake.path("atmosphere", "ta", "map.zarr"), mode="r")["ta"]
    assert array.chunks[1] == 19  # levels are kept whole
    assert np.prod(array.chunks) * array.dtype.itemsize <= 2 * 1024**2  # about the 1 MiB target


def test_validate_reports_a_store_that_lost_its_consolidated_metadata(sst_lake):
    root = Path(sst_lake.path("ocean", "sst", "timeseries.zarr", "zarr.json"))
    group = zarr.open_group(root.parent, mode="r+", use_consolidated=False)
    group.attrs["touched"] = True  # rewriting the root document drops consolidated metadata
    failed = [f for f in validate(sst_lake) if not f.ok]
    assert [f.check for f in failed] == ["consolidated-metadata"]


def test_lake_on_s3_ingests_appends_and_reads(s3_lake, sst_files):
    ingest_grid(s3_lake, "sst", "ocean", sst_files[:4])
    ingest_grid(s3_lake, "sst", "ocean", sst_files[:6])
    ds = open_dataset(s3_lake, "sst")
    assert_same_values(ds.analysed_sst, source_dataset(sst_files[:6]).analysed_sst)
    assert [f for f in validate(s3_lake) if not f.ok] == []


def test_sources_on_the_object_store_are_read_with_the_lake_credentials(s3_lake, sst_files):
    fs = s3_lake.fs
    sources = []
    for file in sst_files[:3]:
        fs.put_file(str(file), s3_lake.path("incoming", file.name))
        sources.append(s3_lake.uri("incoming", file.name))
    ingest_grid(s3_lake, "sst", "ocean", sources)
    ds = open_dataset(s3_lake, "sst")
    assert_same_values(ds.analysed_sst, source_dataset(sst_files[:3]).analysed_sst)


def test_rerunning_an_ingest_on_a_source_folder_appends_its_new_days(s3_lake, sst_files):
    folder = s3_lake.url.rsplit("/", 1)[0] + "/incoming"
    s3_lake.fs.put([str(f) for f in sst_files[:3]], folder + "/")
    ingest_grid(s3_lake, "sst", "ocean", [f"{folder}/*.nc"])
    s3_lake.fs.put([str(f) for f in sst_files[3:5]], folder + "/")

    report = ingest_grid(s3_lake, "sst", "ocean", [f"{folder}/*.nc"])

    assert report.added == [f.name for f in sst_files[3:5]]
    assert report.skipped == [f.name for f in sst_files[:3]]
    ds = open_dataset(s3_lake, "sst")
    assert_same_values(ds.analysed_sst, source_dataset(sst_files[:5]).analysed_sst)


# --- bad input: a clear error naming the file, and the lake byte for byte as it was --------


def truncated(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def garbage(source: Path, target: Path) -> Path:
    target.write_bytes(np.random.default_rng(0).bytes(source.stat().st_size))
    return target


def other_grid(source: Path, target: Path) -> Path:
    return copy_with(source, target, lambda ds: ds.isel(lat=slice(1, None)))


def without_latitude(source: Path, target: Path) -> Path:
    def drop(ds):
        ds = ds.drop_vars("lat").rename_dims(lat="y")
        return ds

    return copy_with(source, target, drop)


def in_celsius(source: Path, target: Path) -> Path:
    def celsius(ds):
        ds.analysed_sst.attrs["units"] = "degC"
        return ds

    return copy_with(source, target, celsius)


def duplicated_time(source: Path, target: Path) -> Path:
    return copy_with(source, target, lambda ds: xr.concat([ds, ds], dim="time"))


def without_units(source: Path, target: Path) -> Path:
    def drop_units(ds):
        del ds.analysed_sst.attrs["units"]
        return ds

    return copy_with(source, target, drop_units)


@pytest.mark.parametrize(
    ("make_bad", "problem"),
    [
        (truncated, "cannot be read as NetCDF"),
        (garbage, "cannot be read as NetCDF"),
        (other_grid, "is on another grid"),
        (without_latitude, "has no latitude coordinate"),
        (in_celsius, "has units 'degC', the collection 'kelvin'"),
        (without_units, "has no units attribute"),
        (duplicated_time, "holds duplicated times"),
    ],
)
def test_bad_file_is_refused_and_the_lake_is_untouched(
    sst_lake, sst_files, tmp_path, make_bad, problem
):
    bad = make_bad(sst_files[6], tmp_path / "20200107-sst.nc")
    before = snapshot(sst_lake)
    with pytest.raises(IngestError, match=problem) as error:
        ingest_grid(sst_lake, "sst", "ocean", [sst_files[7], bad])
    assert "20200107-sst.nc" in str(error.value)
    assert snapshot(sst_lake) == before


def test_a_day_the_collection_already_holds_is_refused(sst_lake, sst_files, tmp_path):
    again = shutil.copy(sst_files[2], tmp_path / "20200103-sst-reprocessed.nc")
    before = snapshot(sst_lake)
    with pytest.raises(IngestError, match="not after the end of the collection"):
        ingest_grid(sst_lake, "sst", "ocean", [again])
    assert snapshot(sst_lake) == before


def warmer(ds: xr.Dataset) -> xr.Dataset:
    """A reprocessed field: the analysis half a kelvin warmer (packing kept)."""
    ds["analysed_sst"].values[...] += 0.5
    return ds


def test_a_reprocessed_file_replaces_its_days_in_place_while_new_days_are_appended(
    sst_lake, sst_files, tmp_path
):
    reprocessed = copy_with(sst_files[2], tmp_path / sst_files[2].name, warmer)

    report = ingest_grid(sst_lake, "sst", "ocean", [reprocessed, sst_files[6]])

    assert report.replaced == [reprocessed.name] and report.version == 2
    assert sorted(report.added) == sorted([reprocessed.name, sst_files[6].name])
    expected = source_dataset([*sst_files[:2], reprocessed, *sst_files[3:7]]).analysed_sst
    for chunking in ("map", "timeseries"):
        assert_same_values(open_dataset(sst_lake, "sst", chunking=chunking).analysed_sst, expected)
    assert [f for f in validate(sst_lake) if not f.ok] == []
    manifest = read_manifest(sst_lake, sst_lake.find_collection("sst"))
    assert [s.sha256 for s in manifest.sources if s.name == reprocessed.name] == [
        hashlib.sha256(reprocessed.read_bytes()).hexdigest()
    ]


def test_a_new_version_holding_other_days_is_refused(sst_lake, sst_files, tmp_path):
    other_day = shutil.copy(sst_files[7], tmp_path / sst_files[2].name)
    before = snapshot(sst_lake)
    with pytest.raises(
        IngestError, match=f"new version of {sst_files[2].name} but holds other times"
    ):
        ingest_grid(sst_lake, "sst", "ocean", [other_day])
    assert snapshot(sst_lake) == before


def test_overlapping_files_are_refused(local_lake, sst_files, tmp_path):
    copy = shutil.copy(sst_files[1], tmp_path / "copy-of-day-2.nc")
    with pytest.raises(IngestError, match="overlaps"):
        ingest_grid(local_lake, "sst", "ocean", [sst_files[0], sst_files[1], copy])
    assert not local_lake.fs.exists(local_lake.root) or not local_lake.fs.find(local_lake.root)


def test_data_found_unreadable_while_writing_is_rolled_back(sst_lake, sst_files, tmp_path):
    """The header reads but the compressed data does not: found late, undone byte for byte."""
    bad = Path(shutil.copy(sst_files[7], tmp_path / "20200108-sst.nc"))
    with h5py.File(bad, "r") as f:
        chunk = f["analysed_sst"].id.get_chunk_info(0)
    with bad.open("r+b") as f:
        f.seek(chunk.byte_offset)
        f.write(b"\xff" * chunk.size)
    with xr.open_dataset(bad) as ds:  # the metadata still reads: the problem shows only later
        assert "analysed_sst" in ds
    before = snapshot(sst_lake)
    with pytest.raises(IngestError, match="20200108-sst.nc"):
        ingest_grid(sst_lake, "sst", "ocean", [sst_files[6], bad])
    assert snapshot(sst_lake) == before


def test_a_corrupt_chunk_is_refused_even_where_chunks_are_copied(local_lake, sst_files, tmp_path):
    ingest_grid(local_lake, "sst", "ocean", sst_files[:2], chunking="map")
    bad = Path(shutil.copy(sst_files[2], tmp_path / sst_files[2].name))
    with h5py.File(bad, "r") as f:
        chunk = f["analysed_sst"].id.get_chunk_info(0)
    with bad.open("r+b") as f:
        f.seek(chunk.byte_offset + chunk.size // 2)
        f.write(b"\x00" * 64)
    before = snapshot(local_lake)
    with pytest.raises(IngestError, match=bad.name):
        ingest_grid(local_lake, "sst", "ocean", [bad], chunking="map")
    assert snapshot(local_lake) == before


def test_ingest_killed_mid_write_leaves_the_previous_version_and_rerun_completes(
    local_lake, tmp_path
):
    files = demo_data.write_sst(demo_data.SstSpec(days=60, resolution=1.0), tmp_path / "src")
    ingest_grid(local_lake, "sst", "ocean", files[:2])
    previous = open_dataset(local_lake.url, "sst").load()
    chunk_dir = Path(local_lake.path("ocean", "sst", "map.zarr", "analysed_sst", "c"))
    chunks_before = sum(1 for _ in chunk_dir.rglob("*"))
    script = (
        "import sys; from eosc_pangeo.lake import ingest_grid; "
        "ingest_grid(sys.argv[1], 'sst', 'ocean', sys.argv[2:])"
    )
    env = {**os.environ, "EOSC_PANGEO_INGEST_MEMORY_LIMIT": str(2 * 180 * 360 * 8)}
    process = subprocess.Popen(
        [sys.executable, "-c", script, local_lake.url, *map(str, files)], env=env
    )
    deadline = time.monotonic() + 60
    while sum(1 for _ in chunk_dir.rglob("*")) <= chunks_before + 2:
        assert process.poll() is None, "the ingest ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()

    xr.testing.assert_identical(open_dataset(local_lake.url, "sst").load(), previous)
    report = ingest_grid(local_lake, "sst", "ocean", files)
    assert len(report.added) == 58
    ds = open_dataset(local_lake.url, "sst", chunking="timeseries")
    assert_same_values(ds.analysed_sst, source_dataset(files).analysed_sst)
    assert [f for f in validate(local_lake) if not f.ok] == []


def test_times_are_sorted_whatever_the_order_of_the_files(local_lake, sst_files):
    ingest_grid(local_lake, "sst", "ocean", list(reversed(sst_files[:4])))
    times = open_dataset(local_lake.url, "sst").time.values
    assert list(times) == sorted(times) and times[0] == np.datetime64(dt.datetime(2020, 1, 1, 12))


def stored(lake: Lake, collection: str, chunking: str, variable: str) -> np.ndarray:
    """A variable's values as a store holds them (packed: bit for bit the sources')."""
    ds = open_dataset(lake.url, collection, chunking=chunking, mask_and_scale=False)
    return ds[variable].values


def values_of(files, variable: str) -> np.ndarray:
    with xr.open_mfdataset(sorted(map(str, files)), mask_and_scale=False) as ds:
        return ds[variable].values


@pytest.mark.parametrize("chunking", ["both", "map"])
def test_new_versions_of_days_apart_replace_exactly_their_steps_in_every_store(
    local_lake, sst_files, tmp_path, chunking
):
    ingest_grid(local_lake, "sst", "ocean", sst_files[:6], chunking=chunking)
    renewed = [copy_with(sst_files[i], tmp_path / sst_files[i].name, warmer) for i in (1, 4)]

    report = ingest_grid(local_lake, "sst", "ocean", renewed)

    assert report.replaced == [p.name for p in renewed] and report.version == 2
    expected = values_of(
        [sst_files[0], renewed[0], *sst_files[2:4], renewed[1], sst_files[5]], "analysed_sst"
    )
    for store in ("map", "timeseries") if chunking == "both" else ("map",):
        np.testing.assert_array_equal(stored(local_lake, "sst", store, "analysed_sst"), expected)
    assert [f for f in validate(local_lake) if not f.ok] == []


def test_new_versions_apart_on_a_noleap_axis_write_their_values_and_time_bounds(
    local_lake, tmp_path
):
    spec = demo_data.ClimateSpec(2000, 2029, 10.0)
    first = demo_data.write_climate(spec, tmp_path / "v1")
    ingest_grid(local_lake, "tas", "atmosphere", first)
    renewed = demo_data.write_climate(spec, tmp_path / "v2", seed=1)[::2]
    for path in renewed:  # reprocessed with bounds that end a day earlier
        with netCDF4.Dataset(path, "r+") as nc:
            nc["time_bnds"][:, 1] = nc["time_bnds"][:, 1] - 1

    report = ingest_grid(local_lake, "tas", "atmosphere", renewed)

    assert report.replaced == [p.name for p in renewed]
    ds = open_dataset(local_lake.url, "tas").load()
    expected = source_dataset([renewed[0], first[1], renewed[1]])
    assert isinstance(ds.time.values[0], cftime.DatetimeNoLeap)
    xr.testing.assert_equal(ds.tas, expected.tas)
    xr.testing.assert_equal(ds.time_bnds, expected.time_bnds)


def test_a_new_version_found_corrupt_while_writing_undoes_the_days_appended_with_it(
    sst_lake, sst_files, tmp_path
):
    bad = Path(shutil.copy(sst_files[2], tmp_path / sst_files[2].name))
    with h5py.File(bad, "r") as f:
        chunk = f["analysed_sst"].id.get_chunk_info(0)
    with bad.open("r+b") as f:
        f.seek(chunk.byte_offset)
        f.write(b"\xff" * chunk.size)
    before = snapshot(sst_lake)
    with pytest.raises(IngestError, match=bad.name):
        ingest_grid(sst_lake, "sst", "ocean", [sst_files[6], bad])
    assert snapshot(sst_lake) == before


def test_new_versions_on_a_lake_on_s3_replace_their_days(s3_lake, sst_files, tmp_path):
    ingest_grid(s3_lake, "sst", "ocean", sst_files[:6])
    renewed = [copy_with(sst_files[i], tmp_path / sst_files[i].name, warmer) for i in (1, 4)]

    report = ingest_grid(s3_lake, "sst", "ocean", renewed)

    assert report.replaced == [p.name for p in renewed]
    expected = [sst_files[0], renewed[0], *sst_files[2:4], renewed[1], sst_files[5]]
    ds = open_dataset(s3_lake, "sst", chunking="timeseries")
    assert_same_values(ds.analysed_sst, source_dataset(expected).analysed_sst)
