"""CF Discrete Sampling Geometry files in the lake: every feature type in every layout ingests to
the observations that plain xarray reads from it, decoded here by hand from the DSG arrays."""

from __future__ import annotations

import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from eosc_pangeo.demo_data import write_dsg
from eosc_pangeo.demo_data.dsg import FEATURE_TYPES, LAYOUTS
from eosc_pangeo.lake.errors import IngestError, LakeWarning
from eosc_pangeo.lake.insitu import ingest_insitu, read_insitu
from eosc_pangeo.lake.insitu_sources import depth_from_pressure

# The lake's flags (Argo reference table 2) for the meanings the samples use: OceanSITES' are
# the lake's own; IOOS QARTOD's "not_evaluated" is 2 in the file but 0 (no QC) in the lake.
LAKE_FLAG = {
    "no_qc_performed": 0, "good_data": 1, "probably_good_data": 2,
    "bad_data_that_are_potentially_correctable": 3, "bad_data": 4, "value_changed": 5,
    "not_used": 6, "nominal_value": 7, "interpolated_value": 8, "missing_value": 9,
    "pass": 1, "not_evaluated": 0, "suspect": 3, "fail": 4, "missing": 9,
}  # fmt: skip
COMPARED = [
    "platform_id",
    "time",
    "lat",
    "lon",
    "depth",
    "pressure",
    "TEMP",
    "TEMP_QC",
    "PSAL",
    "PSAL_QC",
]


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, Path]:
    return {path.stem: path for path in write_dsg(tmp_path_factory.mktemp("dsg"))}


# --- what the files hold, read with plain xarray ----------------------------------------------


def observations(path: Path) -> pd.DataFrame:
    """One row per observation holding a value, decoded from the DSG arrays as CF appendix H
    describes each layout; xarray only decodes times, fill values and strings."""
    feature_type, layout = path.stem.split("-")
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    instance = {
        "timeSeries": "station",
        "timeSeriesProfile": "station",
        "profile": "profile",
        "trajectory": "trajectory",
        "trajectoryProfile": "trajectory",
    }[feature_type]
    ds = ds.rename({f"{instance}_name": "platform_id"})
    ds["platform_id"] = ds.platform_id.astype(str)
    for name in ("temp_qc", "psal_qc"):
        meanings = ds[name].attrs["flag_meanings"].split()
        to_lake = dict(zip(ds[name].attrs["flag_values"].tolist(), meanings, strict=True))
        ds[name] = xr.apply_ufunc(
            np.vectorize(
                lambda v, meaning=to_lake: np.nan if np.isnan(v) else LAKE_FLAG[meaning[int(v)]],
                otypes=[float],
            ),
            ds[name],
        )
    if "pres" not in ds:
        ds["pres"] = np.nan
    names = [
        "platform_id",
        "time",
        "lat",
        "lon",
        "depth",
        "pres",
        "temp",
        "temp_qc",
        "psal",
        "psal_qc",
    ]
    if layout in ("orthogonal", "incomplete", "single"):
        # Every variable broadcast over the instance and element dimensions (a single
        # instance's are scalars), padding dropped.
        frame = ds[names].to_dataframe().reset_index()[names]
    elif layout == "contiguous":
        frame = _contiguous(ds, names, instance)
    else:
        frame = _indexed(ds, names, instance)
    frame = frame[frame.time.notna() & (frame.temp.notna() | frame.psal.notna())]
    return frame.rename(
        columns={
            "pres": "pressure",
            "temp": "TEMP",
            "temp_qc": "TEMP_QC",
            "psal": "PSAL",
            "psal_qc": "PSAL_QC",
        }
    )


def _contiguous(ds: xr.Dataset, names: list[str], instance: str) -> pd.DataFrame:
    """The observations of profile (or instance) i are the row_size[i] after those of i - 1."""
    parent = "profile" if "profile" in ds.row_size.dims and instance != "profile" else instance
    rows, start = [], 0
    for i, count in enumerate(ds.row_size.values):
        for j in range(start, start + int(count)):
            rows.append(_row(ds, names, instance, parent, i, j))
        start += int(count)
    return pd.DataFrame(rows, columns=names)


def _indexed(ds: xr.Dataset, names: list[str], instance: str) -> pd.DataFrame:
    """Observation j belongs to profile (or instance) <parent>_index[j]."""
    parent = "profile" if "profile_index" in ds else instance
    rows = [
        _row(ds, names, instance, parent, int(i), j)
        for j, i in enumerate(ds[f"{parent}_index"].values)
    ]
    return pd.DataFrame(rows, columns=names)


def _row(ds, names, instance, parent, i, j) -> list:
    """The values of observation j of profile (or instance) i; a profile's station or
    trajectory is <instance>_index[i] (CF H.5.3, H.6.2)."""
    where = {"obs": j, parent: i}
    if parent != instance:
        where[instance] = int(ds[f"{instance}_index"].values[i])
    return [ds[name].isel({d: where[d] for d in ds[name].dims}).item() for name in names]


def lake_rows(lake, collection: str) -> pd.DataFrame:
    return read_insitu(lake, collection)[COMPARED]


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[COMPARED].astype(
        {
            "TEMP": np.float32,
            "PSAL": np.float32,
            "pressure": np.float32,
            "depth": np.float32,
            "lat": np.float64,
            "lon": np.float64,
            "TEMP_QC": float,
            "PSAL_QC": float,
        }
    )
    frame["time"] = pd.to_datetime(frame.time, utc=True).astype("datetime64[us, UTC]")
    frame["lat"] = frame.lat.astype(np.float32).astype(np.float64)
    frame["lon"] = frame.lon.astype(np.float32).astype(np.float64)
    frame["platform_id"] = frame.platform_id.astype(str)
    return frame.sort_values(["platform_id", "time", "depth"]).reset_index(drop=True)


# --- specifications ---------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("feature_type", FEATURE_TYPES)
def test_every_feature_type_in_every_layout_ingests_to_what_xarray_reads(
    local_lake, samples, feature_type, layout
):
    path = samples[f"{feature_type}-{layout}"]
    report = ingest_insitu(local_lake, "dsg", "ocean", [str(path)])
    expected = observations(path)
    assert report.rows == len(expected) > 0
    pd.testing.assert_frame_equal(
        comparable(lake_rows(local_lake, "dsg")), comparable(expected), check_dtype=False
    )


def test_layouts_of_one_feature_type_hold_the_same_observations(samples):
    for feature_type in FEATURE_TYPES:
        frames = [
            comparable(observations(samples[f"{feature_type}-{layout}"]))
            for layout in ("incomplete", "contiguous", "indexed", "single")
        ]
        pd.testing.assert_frame_equal(frames[0], frames[1])
        pd.testing.assert_frame_equal(frames[0], frames[2])
        first = frames[3].platform_id.iloc[0]
        alone = frames[0][frames[0].platform_id == first].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone, frames[3])


def test_qartod_flags_are_translated_by_their_meanings(local_lake, samples):
    path = samples["trajectory-contiguous"]
    ingest_insitu(local_lake, "ship", "ocean", [str(path)])
    with xr.open_dataset(path) as ds:
        assert ds.temp_qc.attrs["flag_meanings"].split()[1] == "not_evaluated"
        not_evaluated = int((ds.temp_qc == 2).sum())
    lake = read_insitu(local_lake, "ship")
    assert not_evaluated and (lake.TEMP_QC == 0).sum() == not_evaluated
    assert (lake.TEMP_QC == 2).sum() == 0


def test_glider_pressure_is_kept_beside_depth(local_lake, samples):
    ingest_insitu(local_lake, "gliders", "ocean", [str(samples["trajectoryProfile-indexed"])])
    rows = read_insitu(local_lake, "gliders")
    assert rows.pressure.notna().all() and (rows.pressure > rows.depth).all()
    assert set(rows.platform_type) == {"trajectory_profile"}


def test_dsg_and_argo_files_share_one_collection(local_lake, samples, tmp_path):
    from eosc_pangeo.demo_data import ArgoSpec, write_argo

    argo = write_argo(ArgoSpec(floats=1, profiles=3), tmp_path)
    ingest_insitu(local_lake, "mixed", "ocean", [str(argo[0]), str(samples["profile-indexed"])])
    rows = read_insitu(local_lake, "mixed")
    assert set(rows.platform_type) == {"argo_float", "profile"}


def test_samples_are_the_same_for_a_seed_and_differ_for_another(samples, tmp_path):
    again = {p.stem: p for p in write_dsg(tmp_path / "again")}
    other = {p.stem: p for p in write_dsg(tmp_path / "other", seed=1)}
    assert (
        sorted(again)
        == sorted(samples)
        == sorted(
            f"{feature_type}-{layout}" for feature_type in FEATURE_TYPES for layout in LAYOUTS
        )
    )
    for name, path in samples.items():
        with (
            xr.open_dataset(path) as first,
            xr.open_dataset(again[name]) as second,
            xr.open_dataset(other[name]) as third,
        ):
            xr.testing.assert_identical(first, second)
            assert not first.temp.equals(third.temp), name


# --- refusals ---------------------------------------------------------------------------------


def _copy(source: Path, target: Path, edit) -> Path:
    shutil.copy(source, target)
    with netCDF4.Dataset(target, "a") as nc:
        edit(nc)
    return target


def test_a_netcdf_that_is_no_dsg_says_which_feature_types_are_read(local_lake, samples, tmp_path):
    path = _copy(
        samples["timeSeries-indexed"], tmp_path / "plain.nc", lambda nc: nc.delncattr("featureType")
    )
    with pytest.raises(IngestError) as error:
        ingest_insitu(local_lake, "dsg", "ocean", [str(path)])
    message = str(error.value)
    assert "plain.nc" in message and "no featureType" in message
    for feature_type in FEATURE_TYPES:
        assert feature_type in message
    assert "Argo profile files" in message and "station CSVs" in message
    assert not local_lake.fs.exists(local_lake.path("ocean", "dsg"))


def test_a_feature_type_the_lake_does_not_read_is_named(local_lake, samples, tmp_path):
    path = _copy(
        samples["timeSeries-indexed"],
        tmp_path / "points.nc",
        lambda nc: nc.setncattr("featureType", "point"),
    )
    with pytest.raises(IngestError, match="featureType 'point'.*timeSeries, trajectory"):
        ingest_insitu(local_lake, "dsg", "ocean", [str(path)])


def test_flags_of_unknown_meaning_are_refused_with_the_variable(local_lake, samples, tmp_path):
    def rename_meaning(nc):
        var = nc.variables["temp_qc"]
        var.flag_meanings = var.flag_meanings.replace("suspect", "dubious")

    path = _copy(samples["trajectory-indexed"], tmp_path / "odd.nc", rename_meaning)
    with pytest.raises(IngestError, match=r"odd.nc:temp_qc.*dubious"):
        ingest_insitu(local_lake, "dsg", "ocean", [str(path)])


def test_counts_that_do_not_add_up_are_refused(local_lake, samples, tmp_path):
    def miscount(nc):
        nc.variables["row_size"][0] = nc.variables["row_size"][0] + 1

    path = _copy(samples["timeSeries-contiguous"], tmp_path / "miscounted.nc", miscount)
    with pytest.raises(IngestError, match="miscounted.nc:row_size.*add up"):
        ingest_insitu(local_lake, "dsg", "ocean", [str(path)])


def test_temperature_in_kelvin_is_refused(local_lake, samples, tmp_path):
    def kelvin(nc):
        nc.variables["temp"].units = "K"

    path = _copy(samples["profile-contiguous"], tmp_path / "kelvin.nc", kelvin)
    with pytest.raises(IngestError, match="kelvin.nc:temp.*units 'K'"):
        ingest_insitu(local_lake, "dsg", "ocean", [str(path)])


def test_variables_the_lake_does_not_store_are_left_out_with_a_warning(
    local_lake, samples, tmp_path
):
    def add_oxygen(nc):
        var = nc.createVariable("doxy", "f4", ("obs",))
        var.setncatts(
            {
                "standard_name": "moles_of_oxygen_per_unit_mass_in_sea_water",
                "units": "umol kg-1",
                "coordinates": "time lat lon depth",
            }
        )
        var[:] = 250.0

    path = _copy(samples["trajectory-indexed"], tmp_path / "oxygen.nc", add_oxygen)
    with pytest.warns(LakeWarning, match="oxygen.nc: doxy"):
        report = ingest_insitu(local_lake, "dsg", "ocean", [str(path)])
    assert report.rows == len(observations(samples["trajectory-indexed"]))


# --- files shaped as data centres publish them ------------------------------------------------

NGDAC_FLAGS = (
    "no_qc_performed good_data probably_good_data "
    "bad_data_that_are_potentially_correctable bad_data value_changed not_used "
    "not_used interpolated_value missing_value"
)


def write_glider_dac_profile(path: Path) -> Path:
    """One profile file as the IOOS Glider DAC (NGDAC NetCDF format 2) specifies it: variables
    along ``time`` naming no coordinates, QC flags as ancillary variables, a scalar position
    of the profile and of the depth-averaged current beside the per-observation one."""
    n = 40
    rng = np.random.default_rng(3)
    with netCDF4.Dataset(path, "w") as nc:
        nc.setncatts(
            {
                "Conventions": "CF-1.6",
                "featureType": "trajectory",
                "format_version": "IOOS_Glider_NetCDF_v2.0.nc",
                "platform_type": "Slocum Glider",
            }
        )
        nc.createDimension("time", n)
        nc.createDimension("traj_strlen", 18)
        trajectory = nc.createVariable("trajectory", "S1", ("traj_strlen",))
        trajectory.cf_role = "trajectory_id"
        trajectory[:] = netCDF4.stringtochar(np.array("ru30-20200101T0000", dtype="S18"))

        def variable(name, values, attrs, dims=("time",), dtype="f8", fill=-999.0):
            var = nc.createVariable(name, dtype, dims, fill_value=fill)
            var.setncatts(attrs)
            var[:] = values
            if dims and name not in ("time",) and not name.endswith("_qc"):
                flags = np.where(
                    np.ma.getmaskarray(np.ma.masked_invalid(values)),
                    9,
                    rng.choice([1, 1, 1, 2, 3, 4], n),
                )
                variable(
                    f"{name}_qc",
                    flags,
                    {
                        "flag_values": np.arange(10, dtype="i1"),
                        "flag_meanings": NGDAC_FLAGS,
                        "standard_name": f"{attrs['standard_name']} status_flag",
                    },
                    dtype="i1",
                    fill=np.int8(-127),
                )
                var.ancillary_variables = f"{name}_qc"

        nc.createVariable("time", "f8", ("time",)).setncatts(
            {
                "standard_name": "time",
                "units": "seconds since 1970-01-01T00:00:00Z",
                "calendar": "gregorian",
                "ancillary_variables": "time_qc",
            }
        )
        nc["time"][:] = 1.5778368e9 + 10.0 * np.arange(n)
        variable(
            "time_qc",
            np.ones(n),
            {"flag_values": np.arange(10, dtype="i1"), "flag_meanings": NGDAC_FLAGS},
            dtype="i1",
            fill=np.int8(-127),
        )
        depth = np.linspace(2, 80, n)
        variable(
            "lat",
            39.5 + 1e-4 * np.arange(n),
            {"standard_name": "latitude", "units": "degrees_north"},
        )
        variable(
            "lon",
            -72.1 + 1e-4 * np.arange(n),
            {"standard_name": "longitude", "units": "degrees_east"},
        )
        variable("depth", depth, {"standard_name": "depth", "units": "m", "positive": "down"})
        variable(
            "pressure",
            depth * 1.007,
            {"standard_name": "sea_water_pressure", "units": "dbar", "positive": "down"},
        )
        temperature = 18 - depth / 10
        temperature[5] = np.nan
        variable(
            "temperature",
            temperature,
            {"standard_name": "sea_water_temperature", "units": "Celsius"},
        )
        variable(
            "salinity",
            35 + depth / 100,
            {"standard_name": "sea_water_practical_salinity", "units": "1"},
        )
        variable(
            "conductivity",
            4 + depth / 100,
            {"standard_name": "sea_water_electrical_conductivity", "units": "S m-1"},
        )
        for name, standard_name, value in (
            ("profile_time", "time", 1.5778368e9 + 200),
            ("profile_lat", "latitude", 39.5),
            ("profile_lon", "longitude", -72.1),
            ("lat_uv", "latitude", 39.6),
            ("lon_uv", "longitude", -72.0),
            ("time_uv", "time", 1.5778368e9 + 200),
        ):
            units = {
                "time": "seconds since 1970-01-01T00:00:00Z",
                "latitude": "degrees_north",
                "longitude": "degrees_east",
            }[standard_name]
            variable(name, value, {"standard_name": standard_name, "units": units}, dims=())
        profile = nc.createVariable("profile_id", "i4", ())
        profile.cf_role = "profile_id"
        profile.assignValue(1)
    return path


def test_an_ioos_glider_dac_profile_file_ingests_with_its_flags(local_lake, tmp_path):
    path = write_glider_dac_profile(tmp_path / "ru30_20200101T000000Z_delayed.nc")
    with pytest.warns(LakeWarning, match="conductivity left out"):
        ingest_insitu(local_lake, "gliders", "ocean", [str(path)])
    with xr.open_dataset(path) as ds:
        expected = pd.DataFrame(
            {
                "platform_id": "ru30-20200101T0000",
                "time": ds.time.values,
                "lat": ds.lat.values,
                "lon": ds.lon.values,
                "depth": ds.depth.values,
                "pressure": ds.pressure.values,
                "TEMP": ds.temperature.values,
                "TEMP_QC": ds.temperature_qc.values,
                "PSAL": ds.salinity.values,
                "PSAL_QC": ds.salinity_qc.values,
            }
        )
        position_qc = ds.lat_qc.values
    # The Glider DAC's flags are the lake's own (Argo reference table 2).
    pd.testing.assert_frame_equal(
        comparable(lake_rows(local_lake, "gliders")), comparable(expected), check_dtype=False
    )
    rows = read_insitu(local_lake, "gliders").sort_values("time")
    assert (rows.time_qc == 1).all()
    np.testing.assert_array_equal(rows.position_qc.to_numpy(dtype=float), position_qc)


def write_ego_glider(path: Path) -> Path:
    """An EGO-style glider file: Argo-like names along N_MEASUREMENT, pressure but no depth,
    character QC flags found by their ``<name>_QC`` names, GPS fixes on a dimension of their
    own, no cf_role id."""
    n, fixes = 30, 2
    with netCDF4.Dataset(path, "w") as nc:
        nc.setncatts({"Conventions": "CF-1.6 EGO-1.2", "featureType": "trajectory"})
        nc.createDimension("N_MEASUREMENT", n)
        nc.createDimension("N_POSITION", fixes)
        specs = {
            "TIME": (
                "N_MEASUREMENT",
                25567.0 + np.arange(n) / 1440,
                {"standard_name": "time", "units": "days since 1950-01-01T00:00:00Z", "axis": "T"},
            ),
            "LATITUDE": (
                "N_MEASUREMENT",
                np.linspace(43.0, 43.01, n),
                {"standard_name": "latitude", "units": "degree_north", "axis": "Y"},
            ),
            "LONGITUDE": (
                "N_MEASUREMENT",
                np.linspace(7.5, 7.52, n),
                {"standard_name": "longitude", "units": "degree_east", "axis": "X"},
            ),
            "LATITUDE_GPS": (
                "N_POSITION",
                [43.0, 43.01],
                {"standard_name": "latitude", "units": "degree_north"},
            ),
            "LONGITUDE_GPS": (
                "N_POSITION",
                [7.5, 7.52],
                {"standard_name": "longitude", "units": "degree_east"},
            ),
            "PRES": (
                "N_MEASUREMENT",
                np.linspace(5, 300, n),
                {"standard_name": "sea_water_pressure", "units": "decibar"},
            ),
            "TEMP": (
                "N_MEASUREMENT",
                np.linspace(14, 13, n),
                {"standard_name": "sea_water_temperature", "units": "degree_Celsius"},
            ),
        }
        for name, (dim, values, attrs) in specs.items():
            var = nc.createVariable(name, "f8", (dim,), fill_value=99999.0)
            var.setncatts(attrs)
            var[:] = values
        qc = nc.createVariable("TEMP_QC", "S1", ("N_MEASUREMENT",), fill_value=b" ")
        qc.conventions = "EGO reference table 2"
        qc[:] = np.array([b"1", b"4", b" "] * (n // 3), dtype="S1")
    return path


def test_an_ego_glider_file_with_character_flags_ingests(local_lake, tmp_path):
    path = write_ego_glider(tmp_path / "ego_glider.nc")
    ingest_insitu(local_lake, "ego", "ocean", [str(path)])
    with xr.open_dataset(path) as ds:
        flags = [float(c) if c.strip() else np.nan for c in ds.TEMP_QC.values.astype(str)]
        expected = pd.DataFrame(
            {
                "platform_id": "ego_glider",
                "time": ds.TIME.values,
                "lat": ds.LATITUDE.values,
                "lon": ds.LONGITUDE.values,
                "pressure": ds.PRES.values,
                "depth": depth_from_pressure(ds.PRES.values, ds.LATITUDE.values),
                "TEMP": ds.TEMP.values,
                "TEMP_QC": flags,
                "PSAL": np.nan,
                "PSAL_QC": np.nan,
            }
        )
    pd.testing.assert_frame_equal(
        comparable(lake_rows(local_lake, "ego")), comparable(expected), check_dtype=False
    )


def test_positions_on_a_dimension_of_their_own_are_refused(local_lake, tmp_path):
    """Positions along a LATITUDE dimension as long as TIME are no DSG: pairing them with the
    times by position would be a guess, and broadcasting them a silent wrong answer."""
    path = tmp_path / "own-dimension.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.featureType = "trajectory"
        for name in ("TIME", "DEPTH", "LATITUDE", "LONGITUDE"):
            nc.createDimension(name, 1 if name == "DEPTH" else 3)
        for name, dims, attrs in (
            ("TIME", ("TIME",), {"standard_name": "time", "units": "days since 1950-01-01"}),
            ("LATITUDE", ("LATITUDE",), {"standard_name": "latitude", "units": "degrees_north"}),
            ("LONGITUDE", ("LONGITUDE",), {"standard_name": "longitude", "units": "degrees_east"}),
            ("DEPH", ("TIME", "DEPTH"), {"standard_name": "depth", "units": "m"}),
            (
                "TEMP",
                ("TIME", "DEPTH"),
                {"standard_name": "sea_water_temperature", "units": "degrees_C"},
            ),
        ):
            var = nc.createVariable(name, "f8", dims)
            var.setncatts(attrs)
            var[:] = np.arange(3).reshape(var.shape) + 1.0
    with pytest.raises(IngestError, match="own-dimension.nc:LATITUDE.*varies along LATITUDE"):
        ingest_insitu(local_lake, "cmems", "ocean", [str(path)])
