"""Tests of the deterministic sample-data generator (small sizes or tiny specs only)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import cftime
import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from eosc_pangeo import demo_data
from eosc_pangeo.demo_data import (
    ArgoSpec,
    ClimateSpec,
    SstSpec,
    StationSpec,
    write_argo,
    write_climate,
    write_sst,
    write_stations,
)

ENGINES = ("netcdf4", "h5netcdf")
TINY_SST = SstSpec(days=3, resolution=2.0)
TINY_ARGO = ArgoSpec(floats=3, profiles=12)
TINY_STATIONS = StationSpec(stations=3, days=5)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict[str, list[Path]]:
    """The ``small`` data set, written once for the read-only tests of this module."""
    return demo_data.write_demo_data(tmp_path_factory.mktemp("small"), "small")


def raw_values(path: Path) -> dict[str, bytes]:
    """Every variable's stored (packed, undecoded) values, as bytes."""
    if path.suffix == ".csv":
        return {"csv": path.read_bytes()}
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        return {name: np.asarray(var[...]).tobytes() for name, var in ds.variables.items()}


# ---- the whole set ------------------------------------------------------------------------------


def test_small_writes_every_kind_with_the_published_names(small):
    assert {kind: len(paths) for kind, paths in small.items()} == {
        "sst": 10,
        "climate": 2,
        "argo": 5,
        "stations": 3,
    }
    assert small["sst"][0].name == "20200101-sst.nc"
    assert small["sst"][0].parent.name == "sst"
    assert small["argo"][0].name == "6900001-prof.nc"
    assert small["stations"][0].suffix == ".csv"
    for paths in small.values():
        assert paths == sorted(paths)


def test_no_temporary_files_are_left(small):
    root = small["sst"][0].parent.parent
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_progress_is_reported_after_each_file(tmp_path):
    calls = []
    demo_data.write_demo_data(
        tmp_path, "small", kinds=("climate", "stations"), progress=lambda *a: calls.append(a)
    )
    assert calls == [("climate", 1, 2), ("climate", 2, 2)] + [("stations", i, 3) for i in (1, 2, 3)]


def test_same_seed_gives_identical_values_in_every_file(tmp_path, small):
    again = demo_data.write_demo_data(tmp_path, "small", seed=0)
    for kind, paths in small.items():
        for first, second in zip(paths, again[kind], strict=True):
            assert raw_values(first) == raw_values(second), first.name


@pytest.mark.parametrize("kind", demo_data.KINDS)
def test_another_seed_gives_other_values(tmp_path, small, kind):
    other = demo_data.write_demo_data(tmp_path, "small", seed=1, kinds=(kind,))[kind]
    assert [p.name for p in other] == [p.name for p in small[kind]]
    assert raw_values(other[0]) != raw_values(small[kind][0])


def test_a_file_does_not_depend_on_the_others(tmp_path):
    whole = write_sst(SstSpec(days=4), tmp_path / "whole")
    alone = write_sst(SstSpec(start=dt.date(2020, 1, 3), days=1), tmp_path / "alone")
    assert raw_values(alone[0]) == raw_values(whole[2])
    floats = write_argo(ArgoSpec(floats=3, profiles=5), tmp_path / "whole")
    first = write_argo(ArgoSpec(floats=1, profiles=5), tmp_path / "alone")
    assert raw_values(first[0]) == raw_values(floats[0])


@pytest.mark.parametrize(
    "other_thread",
    # With another thread running (a progress bar's, say) the pool spawns instead of forking.
    [False, pytest.param(True, marks=pytest.mark.slow)],
    ids=["fork", "spawn"],
)
def test_processes_write_the_same_bytes_as_one(tmp_path, other_thread):
    stop = threading.Event()
    if other_thread:
        threading.Thread(target=stop.wait, daemon=True).start()
    try:
        two = write_argo(TINY_ARGO, tmp_path / "two", workers=2)
    finally:
        stop.set()
    one = write_argo(TINY_ARGO, tmp_path / "one", workers=1)
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]


def test_an_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    def fail(path, *args):
        Path(path).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_data.argo, "_write_argo_netcdf", fail)
    with pytest.raises(KeyboardInterrupt):
        write_argo(TINY_ARGO, tmp_path)
    assert list((tmp_path / "argo").iterdir()) == []


def test_unknown_size_or_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown size"):
        demo_data.write_demo_data(tmp_path, "huge")
    with pytest.raises(ValueError, match="unknown kinds"):
        demo_data.write_demo_data(tmp_path, "small", kinds=("sst", "ice"))


def test_large_specs_hold_at_least_ten_million_observations():
    specs = demo_data.specs_for_size("large")
    total = specs["argo"].n_observations(seed=0) + specs["stations"].n_observations(seed=0)
    assert total >= 10_000_000
    assert specs["sst"].days == 366 and specs["sst"].resolution == 0.25
    assert (specs["climate"].start_year, specs["climate"].end_year) == (1850, 2019)


def test_observation_counts_match_the_files(small):
    specs = demo_data.specs_for_size("small")
    levels = 0
    for path in small["argo"]:
        with xr.open_dataset(path) as ds:
            levels += int(ds.PRES.notnull().sum())
    rows = sum(len(pd.read_csv(path)) for path in small["stations"])
    assert levels == specs["argo"].n_observations()
    assert rows == specs["stations"].n_observations()


# ---- sst -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sst_files(tmp_path_factory) -> list[Path]:
    return write_sst(TINY_SST, tmp_path_factory.mktemp("sst"))


@pytest.mark.parametrize("engine", ENGINES)
def test_sst_opens_with_both_engines(sst_files, engine):
    with xr.open_dataset(sst_files[0], engine=engine) as ds:
        assert ds.analysed_sst.dims == ("time", "lat", "lon")
        assert ds.analysed_sst.shape == (1, 90, 180)
        assert ds.time.values[0] == np.datetime64("2020-01-01T12:00")
        assert np.all(np.diff(ds.lat) > 0)
        assert ds.lon.min() > -180 and ds.lon.max() < 180


def test_sst_has_cf_and_acdd_attributes(sst_files):
    with xr.open_dataset(sst_files[0]) as ds:
        for name in (
            "Conventions",
            "title",
            "summary",
            "institution",
            "source",
            "id",
            "naming_authority",
            "platform",
            "processing_level",
            "license",
            "creator_name",
            "time_coverage_start",
            "time_coverage_end",
            "geospatial_lat_min",
            "geospatial_lat_max",
            "geospatial_lon_min",
            "geospatial_lon_max",
        ):
            assert ds.attrs.get(name) not in (None, ""), name
        assert ds.attrs["Conventions"] == "CF-1.8, ACDD-1.3"
        assert ds.attrs["processing_level"] == "L4"
        assert ds.time.encoding["units"] == "seconds since 1981-01-01 00:00:00"
        assert ds.time.encoding["calendar"] == "standard"
        assert [ds[c].attrs["axis"] for c in ("time", "lat", "lon")] == ["T", "Y", "X"]
        sst, error = ds.analysed_sst, ds.analysis_error
        assert sst.attrs["standard_name"] == "sea_surface_foundation_temperature"
        assert error.attrs["standard_name"] == "sea_surface_foundation_temperature standard_error"
        assert sst.attrs["units"] == error.attrs["units"] == "kelvin"
        assert sst.encoding["dtype"] == np.int16
        assert sst.encoding["scale_factor"] == pytest.approx(0.01)
        assert sst.encoding["add_offset"] == pytest.approx(273.15)
        assert sst.encoding["_FillValue"] == -32768
        assert sst.encoding["zlib"] and sst.encoding["complevel"] == 4
        assert sst.encoding["chunksizes"] == (1, 90, 180)


def test_sst_values_are_plausible(sst_files):
    with xr.open_mfdataset(sst_files) as ds:
        sst = ds.analysed_sst.load()
    assert float(sst.min()) >= 271.35 - 1e-3
    assert float(sst.max()) <= 305.0
    tropics = sst.sel(lat=slice(-10, 10)).mean()
    polar = sst.sel(lat=slice(60, 90)).mean()
    assert 298 < tropics < 304 and polar < 277


def test_sst_land_is_nan_and_the_same_every_day(sst_files):
    with xr.open_mfdataset(sst_files) as ds:
        land = ds.analysed_sst.isnull().load()
        error_land = ds.analysis_error.isnull().load()
    assert (land == land.isel(time=0)).all()
    assert (error_land == land).all()
    weights = np.cos(np.radians(land.lat))
    share = float(land.isel(time=0).weighted(weights).mean())
    assert 0.2 < share < 0.4


def test_sst_mask_is_the_same_at_every_size_of_a_resolution(sst_files, tmp_path):
    region = write_sst(SstSpec(days=1, bbox=(-60, 0, 30, 60)), tmp_path)
    with xr.open_dataset(sst_files[0]) as world, xr.open_dataset(region[0]) as part:
        inside = world.sel(lat=part.lat, lon=part.lon)
        xr.testing.assert_equal(inside.analysed_sst, part.analysed_sst)


def test_sst_evolves_smoothly_from_day_to_day(sst_files):
    with xr.open_mfdataset(sst_files) as ds:
        sst = ds.analysed_sst.load()
    day_to_day = float(abs(sst.diff("time")).mean())
    assert 0 < day_to_day < 0.3


# ---- climate -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def climate_files(tmp_path_factory) -> list[Path]:
    return write_climate(ClimateSpec(1995, 2012, 10.0), tmp_path_factory.mktemp("climate"))


def test_climate_files_split_by_natural_decade(climate_files):
    assert [p.name for p in climate_files] == [
        f"tas_Amon_EOSC-ESM_historical_r1i1p1f1_gn_{years}.nc"
        for years in ("199501-199912", "200001-200912", "201001-201212")
    ]
    with xr.open_dataset(climate_files[1], engine="h5netcdf") as ds:
        assert ds.time.size == 120
        assert (ds.time.dt.year.min(), ds.time.dt.year.max()) == (2000, 2009)


@pytest.mark.parametrize("engine", ENGINES)
def test_climate_time_decodes_to_noleap_dates(climate_files, engine):
    with xr.open_dataset(climate_files[0], engine=engine) as ds:
        first = ds.time.values[0]
        assert isinstance(first, cftime.DatetimeNoLeap)
        assert first == cftime.DatetimeNoLeap(1995, 1, 16, 12)
        assert ds.time.encoding["units"] == "days since 1850-01-01"
        bounds = ds.time_bnds.values
        assert bounds[1, 0] == cftime.DatetimeNoLeap(1995, 2, 1)
        assert bounds[1, 1] == cftime.DatetimeNoLeap(1995, 3, 1)


def test_climate_has_cmip_attributes_and_coordinates(climate_files):
    with xr.open_dataset(climate_files[0]) as ds:
        assert ds.tas.dtype == np.float32
        assert ds.tas.attrs["standard_name"] == "air_temperature"
        assert ds.tas.attrs["units"] == "K"
        assert float(ds.height) == 2.0 and ds.height.attrs["units"] == "m"
        assert "height" in ds.tas.coords
        assert ds.lat.attrs["bounds"] == "lat_bnds" and ds.lon.attrs["bounds"] == "lon_bnds"
        assert ds.lat_bnds.shape == (18, 2)
        assert not ds.tas.isnull().any()
        for name, value in {
            "frequency": "mon",
            "table_id": "Amon",
            "realm": "atmos",
            "variable_id": "tas",
            "source_id": "EOSC-ESM",
            "experiment_id": "historical",
        }.items():
            assert ds.attrs[name] == value
        assert ds.attrs["Conventions"].startswith("CF-1.7")


def global_mean(path: Path) -> float:
    with xr.open_dataset(path) as ds:
        return float(ds.tas.weighted(np.cos(np.radians(ds.lat))).mean())


def test_climate_warms_about_one_kelvin_per_century(tmp_path):
    files = write_climate(ClimateSpec(1850, 2019, 10.0), tmp_path)
    first, last = global_mean(files[0]), global_mean(files[-1])  # 1850s and 2010s
    assert 1.0 < last - first < 2.5
    assert 284 < first < 290


# ---- argo ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def argo_files(tmp_path_factory) -> list[Path]:
    return write_argo(TINY_ARGO, tmp_path_factory.mktemp("argo"))


@pytest.mark.parametrize("engine", ENGINES)
def test_argo_juld_decodes(argo_files, engine):
    with xr.open_dataset(argo_files[0], engine=engine) as ds:
        juld = ds.JULD.values
        assert juld.dtype.kind == "M"
        assert np.datetime64("2020-01-01") <= juld[0] < np.datetime64("2020-01-12")
        assert np.all(np.diff(juld) > np.timedelta64(9, "D"))
        assert ds.JULD.encoding["units"] == "days since 1950-01-01 00:00:00 UTC"


def test_argo_qc_variables_are_char_arrays(argo_files):
    with netCDF4.Dataset(argo_files[0]) as ds:
        for name in ("TEMP_QC", "PSAL_QC", "PRES_QC", "TEMP_ADJUSTED_QC"):
            var = ds[name]
            assert var.dtype == np.dtype("S1") and var.dimensions == ("N_PROF", "N_LEVELS")
            assert set(np.unique(var[:].filled(b" "))) <= {b"1", b"2", b"3", b"4", b" "}
        for name in ("DATA_MODE", "JULD_QC", "POSITION_QC", "DIRECTION"):
            assert ds[name].dtype == np.dtype("S1") and ds[name].dimensions == ("N_PROF",)
        assert ds["PLATFORM_NUMBER"].dimensions == ("N_PROF", "STRING8")
        assert bytes(ds["PLATFORM_NUMBER"][0].tobytes()).strip() == b"6900001"


def test_argo_variables_follow_the_format(argo_files):
    with xr.open_dataset(argo_files[0], concat_characters=False) as ds:
        assert ds.sizes["N_PROF"] == 12 and 60 <= ds.sizes["N_LEVELS"] <= 100
        for name, units, standard_name in (
            ("PRES", "decibar", "sea_water_pressure"),
            ("TEMP", "degree_Celsius", "sea_water_temperature"),
            ("PSAL", "psu", "sea_water_salinity"),
        ):
            for variable in (name, f"{name}_ADJUSTED"):
                assert ds[variable].dtype == np.float32
                assert ds[variable].attrs["units"] == units
                assert ds[variable].attrs["standard_name"] == standard_name
                assert ds[variable].encoding["_FillValue"] == 99999.0
        assert ds.LATITUDE.encoding["_FillValue"] == 99999.0
        assert set(ds.DATA_MODE.values.astype(str)) <= {"R", "D"}


def test_argo_profiles_are_plausible(argo_files):
    for path in argo_files:
        with xr.open_dataset(path, concat_characters=False) as ds:
            temp = ds.TEMP.where(ds.TEMP_QC == b"1")
            psal = ds.PSAL.where(ds.PSAL_QC == b"1")
            assert -2 < float(temp.min()) and float(temp.max()) < 32
            assert 0 < float(temp.where(ds.PRES > 1900).mean()) < 5
            assert float(ds.PRES.max("N_LEVELS").median()) > 1900
            assert 32 < float(psal.min()) and float(psal.max()) < 38


def test_argo_shallow_profiles_are_padded_with_fill(tmp_path):
    path = write_argo(ArgoSpec(floats=1, profiles=36), tmp_path)[0]
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        pres, qc = ds["PRES"][:], ds["PRES_QC"][:]
    filled = pres == np.float32(99999.0)
    assert filled.any(axis=1).any(), "no shallow profile among 36"
    assert np.all(qc[filled] == b" ") and np.all(qc[~filled] != b" ")
    # Fill only ever follows the data, at the bottom of a profile.
    assert np.all(np.diff(filled.astype(int), axis=1) >= 0)


def test_argo_floats_stay_in_the_ocean(tmp_path):
    files = write_argo(ArgoSpec(floats=20, profiles=36), tmp_path)
    lat, lon = [], []
    for path in files:
        with xr.open_dataset(path) as ds:
            lat.extend(ds.LATITUDE.values)
            lon.extend(ds.LONGITUDE.values)
    lat, lon = np.array(lat), np.array(lon)
    assert lat.min() >= -65 and lat.max() <= 70 and np.all(np.abs(lon) <= 180)
    for resolution in (2.0, 0.5, 0.25):  # the sst grids of the three sizes
        land = demo_data._common._global_land(resolution)
        rows = ((lat + 90) // resolution).astype(int)
        cols = ((lon + 180) // resolution).astype(int)
        assert not land[rows, cols].any(), resolution


def test_sst_land_is_the_shared_land_mask(sst_files):
    with xr.open_dataset(sst_files[0]) as ds:
        land = ds.analysed_sst.isel(time=0).isnull().values
    np.testing.assert_array_equal(land, demo_data._common._global_land(TINY_SST.resolution))


# ---- stations ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def station_files(tmp_path_factory) -> list[Path]:
    return write_stations(TINY_STATIONS, tmp_path_factory.mktemp("stations"))


def test_station_csv_has_the_header_and_parses(station_files):
    for path in station_files:
        assert path.read_text().splitlines()[0] == (
            "station_id,time,lon,lat,depth,TEMP,TEMP_QC,PSAL,PSAL_QC"
        )
        frame = pd.read_csv(path)
        assert (frame.station_id == path.stem).all()
        times = pd.to_datetime(frame.time, format="%Y-%m-%dT%H:%M:%SZ", utc=True)
        assert times.min() >= pd.Timestamp("2020-01-01", tz="UTC")
        assert times.max() < pd.Timestamp("2020-01-06", tz="UTC")
        assert frame.depth.nunique() >= 2 and (frame.depth > 0).all()
        assert frame.lon.nunique() == 1 and frame.lat.nunique() == 1


def test_station_ids_look_like_the_network(station_files):
    assert [p.stem for p in station_files] == sorted(p.stem for p in station_files)
    assert "FR-BREST-01" in [p.stem for p in station_files]


def test_station_qc_flags_and_missing_values(station_files):
    frames = [pd.read_csv(path) for path in station_files]
    for frame in frames:
        for name in ("TEMP", "PSAL"):
            assert set(frame[f"{name}_QC"]) <= {1, 2, 3, 4, 9}
            assert (frame[name].isna() == (frame[f"{name}_QC"] == 9)).all()
        good = frame.TEMP[frame.TEMP_QC == 1]
        assert -2 < good.min() and good.max() < 35
    without_salinity = [f for f in frames if f.PSAL.isna().all()]
    assert without_salinity and len(without_salinity) < len(frames)


def test_stations_sit_on_coastal_ocean_cells(station_files):
    land = demo_data._common._global_land(0.25)
    for path in station_files:
        frame = pd.read_csv(path, nrows=1)
        row = int((frame.lat[0] + 90) / 0.25)
        col = int((frame.lon[0] + 180) / 0.25)
        assert not land[row, col]
        assert land[row - 1 : row + 2, col - 1 : col + 2].any()


def test_stations_are_hourly_with_occasional_gaps(tmp_path):
    path = write_stations(StationSpec(stations=1, days=366), tmp_path)[0]
    frame = pd.read_csv(path)
    times = pd.to_datetime(frame.time.unique(), utc=True)
    steps = pd.Series(times).diff().dropna()
    assert steps.min() == pd.Timedelta(hours=1)
    assert (steps == pd.Timedelta(hours=1)).mean() > 0.99
    assert steps.max() > pd.Timedelta(hours=1)
    assert len(times) <= 366 * 24
