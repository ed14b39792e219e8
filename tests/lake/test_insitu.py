"""In-situ ingest and read: Argo profiles and station CSVs from the demo generator, on disk and
on a real S3 server (moto), checked against values read straight from the source files."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import duckdb
import geopandas
import netCDF4
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import shapely

from eosc_pangeo.demo_data import ArgoSpec, StationSpec, write_argo, write_stations
from eosc_pangeo.lake.errors import IngestError, SelectionError, UnknownVariable
from eosc_pangeo.lake.insitu import (
    PARALLEL_READ_FROM,
    check_insitu,
    hilbert_index,
    ingest_insitu,
    read_insitu,
)
from eosc_pangeo.lake.insitu_sources import depth_from_pressure
from eosc_pangeo.lake.manifest import read_manifest
from eosc_pangeo.lake.storage import Lake, sha256_of

COLLECTION = "insitu-demo"
COMPARED = ["platform_id", "time", "lon", "lat", "vertical", "TEMP", "TEMP_QC", "PSAL", "PSAL_QC"]


# --- sources and what they hold, read without the lake's code ---------------------------------


@pytest.fixture(scope="module")
def first_batch(tmp_path_factory) -> list[str]:
    """Three floats of eight profiles (Jan-Mar 2020) and three stations over 40 days."""
    out = tmp_path_factory.mktemp("first")
    argo = write_argo(ArgoSpec(floats=3, profiles=8), out)
    stations = write_stations(StationSpec(stations=3, days=40), out)
    return [str(p) for p in argo + stations]


@pytest.fixture(scope="module")
def second_batch(tmp_path_factory) -> list[str]:
    """Two more floats, from March 2020: they share the month of March with the first batch."""
    out = tmp_path_factory.mktemp("second")
    spec = ArgoSpec(floats=2, profiles=8, start=dt.date(2020, 3, 10), first_wmo=6900101)
    return [str(p) for p in write_argo(spec, out)]


def argo_rows(path: str) -> pd.DataFrame:
    """Every level holding data, adjusted values for delayed-mode profiles, via netCDF4."""
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_chartostring(False)
        var = nc.variables

        def numbers(name):  # missing means the fill value; netCDF4 would also mask by valid_max
            var[name].set_auto_mask(False)
            values = var[name][:].astype(float)
            return np.where(values == var[name]._FillValue, np.nan, values)

        def flags(name):
            var[name].set_auto_mask(False)
            chars = np.asarray(var[name][:]).astype(str)
            return np.vectorize(lambda c: float(c) if c.strip() else np.nan)(chars)

        platform = netCDF4.chartostring(np.asarray(var["PLATFORM_NUMBER"][:]))
        modes = np.asarray(var["DATA_MODE"][:]).astype(str)
        juld, lat, lon = numbers("JULD"), numbers("LATITUDE"), numbers("LONGITUDE")
        fields = {}
        for name in ("PRES", "TEMP", "PSAL"):
            fields[name] = (
                numbers(name),
                flags(f"{name}_QC"),
                numbers(f"{name}_ADJUSTED"),
                flags(f"{name}_ADJUSTED_QC"),
            )
    rows = []
    for p in range(len(juld)):
        adjusted = 2 if modes[p] in ("A", "D") else 0
        when = pd.Timestamp("1950-01-01", tz="UTC") + pd.to_timedelta(juld[p], unit="D")
        for level in range(fields["PRES"][0].shape[1]):
            pressure = fields["PRES"][adjusted][p, level]
            temp, psal = (fields[n][adjusted][p, level] for n in ("TEMP", "PSAL"))
            if np.isnan(pressure) or (np.isnan(temp) and np.isnan(psal)):
                continue
            rows.append(
                (
                    platform[p].strip(),
                    when,
                    lon[p],
                    lat[p],
                    pressure,
                    temp,
                    fields["TEMP"][adjusted + 1][p, level],
                    psal,
                    fields["PSAL"][adjusted + 1][p, level],
                )
            )
    return pd.DataFrame(rows, columns=COMPARED)


def station_rows(path: str) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame = frame[frame["TEMP"].notna() | frame["PSAL"].notna()]
    frame = frame.rename(columns={"station_id": "platform_id", "depth": "vertical"})
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame[COMPARED].astype({"TEMP_QC": float, "PSAL_QC": float})


def source_rows(paths: list[str]) -> pd.DataFrame:
    frames = [argo_rows(p) if p.endswith(".nc") else station_rows(p) for p in paths]
    return pd.concat(frames, ignore_index=True)


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """A lake read in the shape of :func:`source_rows`, rows in a fixed order."""
    if "vertical" not in frame:
        frame = frame.assign(vertical=frame["pressure"].astype(float).fillna(frame["depth"]))
    columns = [c for c in COMPARED if c in frame]
    frame = frame[columns].astype({c: float for c in columns if c not in ("platform_id", "time")})
    frame["platform_id"] = frame["platform_id"].astype(str)
    frame["time"] = frame["time"].astype("datetime64[us, UTC]")
    return frame.sort_values(["platform_id", "time", "vertical"], ignore_index=True)


def assert_same_observations(lake_frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    got, want = comparable(lake_frame), comparable(expected)
    assert len(got) == len(want)
    # The lake keeps times to the microsecond; pandas' float-day arithmetic may differ by one.
    assert (got["time"] - want["time"]).abs().max() <= pd.Timedelta("1ms")
    pd.testing.assert_frame_equal(
        got.drop(columns="time"), want.drop(columns="time"), check_dtype=False, rtol=1e-6
    )


def lake_bytes(lake: Lake) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder under a local lake."""
    state = {}
    for folder, _, files in os.walk(lake.url):
        state[folder] = None
        for name in files:
            state[os.path.join(folder, name)] = Path(folder, name).read_bytes()
    return state


@pytest.fixture
def ingested(local_lake, first_batch) -> Lake:
    ingest_insitu(local_lake, COLLECTION, "ocean", first_batch)
    return local_lake


# --- ingest and read -------------------------------------------------------------------------


def test_ingest_then_read_gives_every_observation_of_the_sources(local_lake, first_batch):
    calls = []
    report = ingest_insitu(
        local_lake, COLLECTION, "ocean", first_batch, progress=lambda *call: calls.append(call)
    )

    expected = source_rows(first_batch)
    assert calls[-1] == ("write", 3, 3) and ("read", len(first_batch), len(first_batch)) in calls
    assert report.version == 1
    assert report.added == [Path(p).name for p in first_batch]
    assert report.rows == len(expected)
    assert_same_observations(read_insitu(local_lake, COLLECTION), expected)


def test_files_are_month_partitioned_and_pass_the_checks(ingested):
    path = ingested.find_collection(COLLECTION)
    manifest = read_manifest(ingested, path)

    assert [f.path.rsplit("/", 1)[0] for f in manifest.files] == [
        f"observations/year=2020/month={m:02d}" for m in (1, 2, 3)
    ]
    assert set(manifest.variables) == {"TEMP", "PSAL"}
    assert manifest.variables["TEMP"].units == "degree_Celsius"
    findings = check_insitu(ingested, path, manifest)
    assert {f.check for f in findings} == {
        "checksum",
        "geoparquet",
        "schema",
        "partition",
        "sorted",
        "unique-observations",
    }
    assert all(f.ok for f in findings), [f for f in findings if not f.ok]


@pytest.mark.s3
def test_ingest_and_read_on_s3(s3_lake, first_batch):
    ingest_insitu(s3_lake, COLLECTION, "ocean", first_batch)

    assert s3_lake.fs.exists(s3_lake.path("ocean", COLLECTION, "_manifest.json"))
    assert_same_observations(read_insitu(s3_lake, COLLECTION), source_rows(first_batch))
    path = s3_lake.find_collection(COLLECTION)
    assert all(f.ok for f in check_insitu(s3_lake, path, read_manifest(s3_lake, path)))


def test_rerunning_an_ingest_on_a_source_folder_syncs_the_collection_with_it(
    s3_lake, first_batch, second_batch, tmp_path
):
    """A glob over an object store folder, ingested again after the data centre published new
    files and updated one: the new are added, the updated replaced, the rest skipped."""
    folder = s3_lake.url.rsplit("/", 1)[0] + "/sources"
    s3_lake.fs.put(first_batch, folder + "/")
    ingest_insitu(s3_lake, COLLECTION, "ocean", [f"{folder}/*"])
    argo = _float_file(first_batch)
    updated = _updated_version(argo, tmp_path / Path(argo).name)
    s3_lake.fs.put([*second_batch, str(updated)], folder + "/")

    with pytest.warns(UserWarning, match="have no"):
        report = ingest_insitu(s3_lake, COLLECTION, "ocean", [f"{folder}/*"])

    assert sorted(report.added) == sorted(Path(p).name for p in [*second_batch, argo])
    assert report.replaced == [updated.name]
    assert sorted(report.skipped) == sorted(Path(p).name for p in _others(first_batch, argo))
    expected = _placed(source_rows([*_others(first_batch, argo), *second_batch, str(updated)]))
    assert_same_observations(read_insitu(s3_lake, COLLECTION), expected)


def test_a_pattern_that_matches_no_file_is_named(local_lake, tmp_path):
    with pytest.raises(IngestError, match=r"argo/\*\.nc: matches no file"):
        ingest_insitu(local_lake, COLLECTION, "ocean", [str(tmp_path / "argo" / "*.nc")])
    assert not Path(local_lake.url).exists()


QUERIES = {
    "bbox": dict(bbox=(-30.0, 20.0, 40.0, 70.0)),
    "time": dict(time=("2020-01-05", "2020-01-20T12:00:00")),
    "open-ended time": dict(time=("2020-02-01T00:00:00Z", None)),
    "variables": dict(variables=["PSAL"]),
    "platforms": dict(platforms=["6900002", "ES-VIGO-01"]),
    "qc": dict(variables=["TEMP", "PSAL"], qc=[1, 2]),
    "everything": dict(
        bbox=(-180.0, -60.0, 180.0, 60.0),
        time=("2020-01-10", "2020-03-01"),
        variables=["TEMP"],
        platforms=["6900001", "6900003", "FR-BREST-01"],
        qc=[1],
    ),
}


def select_expected(
    expected: pd.DataFrame, bbox=None, time=None, variables=None, platforms=None, qc=None
) -> pd.DataFrame:
    """What a query should return, computed with pandas from the source rows."""
    rows = expected.copy()
    if bbox is not None:
        west, south, east, north = bbox
        rows = rows[rows["lon"].between(west, east) & rows["lat"].between(south, north)]
    if time is not None:
        start, end = (pd.Timestamp(t).tz_localize(None) if t else None for t in time)
        naive_times = rows["time"].dt.tz_localize(None)
        rows = rows[naive_times.between(start or naive_times.min(), end or naive_times.max())]
    if platforms is not None:
        rows = rows[rows["platform_id"].isin(platforms)]
    variables = variables or ["TEMP", "PSAL"]
    for name in variables:
        if qc is not None:
            rows[name] = rows[name].where(rows[f"{name}_QC"].isin(qc))
    rows = rows[rows[variables].notna().any(axis=1)]
    dropped = [c for n in {"TEMP", "PSAL"} - set(variables) for c in (n, f"{n}_QC")]
    return rows.drop(columns=dropped)


@pytest.mark.parametrize("query", QUERIES.values(), ids=QUERIES.keys())
def test_read_filters_give_exactly_the_expected_rows(ingested, first_batch, query):
    expected = select_expected(source_rows(first_batch), **query)
    assert len(expected) > 0  # the query must select something to be a test

    got = read_insitu(ingested, COLLECTION, **query)

    assert_same_observations(got, expected)
    wanted = query.get("variables", ["TEMP", "PSAL"])
    assert {"TEMP", "PSAL"} & set(got.columns) == set(wanted)


def test_read_outside_the_data_returns_an_empty_frame_with_the_columns(ingested):
    got = read_insitu(ingested, COLLECTION, time=("1990-01-01", "1990-12-31"), variables=["TEMP"])

    assert got.empty
    assert {"platform_id", "time", "lon", "lat", "depth", "TEMP", "TEMP_QC"} <= set(got.columns)


def test_read_refuses_an_unknown_variable(ingested):
    with pytest.raises(UnknownVariable, match="DOXY"):
        read_insitu(ingested, COLLECTION, variables=["DOXY"])


def test_read_refuses_a_box_whose_south_is_north_of_its_north(ingested):
    with pytest.raises(SelectionError, match=r"south \(50.0\) is north of its north \(40.0\)"):
        read_insitu(ingested, COLLECTION, bbox=(-30, 50, 0, 40))


# --- appends and idempotence -----------------------------------------------------------------


def test_ingesting_the_same_files_again_changes_nothing(ingested, first_batch):
    before = lake_bytes(ingested)

    report = ingest_insitu(ingested, COLLECTION, "ocean", first_batch)

    assert report.version == 1 and not report.added and report.rows is None
    assert report.skipped == [Path(p).name for p in first_batch]
    assert lake_bytes(ingested) == before


def test_the_same_observations_under_another_name_are_not_duplicated(
    ingested, first_batch, tmp_path
):
    station = next(p for p in first_batch if p.endswith(".csv"))
    renamed = tmp_path / "copy-of-station.csv"
    shutil.copy(station, renamed)

    report = ingest_insitu(ingested, COLLECTION, "ocean", [str(renamed)])

    assert report.added == ["copy-of-station.csv"] and report.version == 2
    got = read_insitu(ingested, COLLECTION)
    assert_same_observations(got, source_rows(first_batch))
    # The newest copy of an observation wins.
    assert set(got.loc[got["platform_id"] == Path(station).stem, "source"]) == {renamed.name}


def test_appending_files_rewrites_only_the_months_they_touch(ingested, first_batch, second_batch):
    path = ingested.find_collection(COLLECTION)
    before = {f.path.split("/")[2]: f for f in read_manifest(ingested, path).files}

    report = ingest_insitu(ingested, COLLECTION, "ocean", second_batch)

    after = {f.path.split("/")[2]: f for f in read_manifest(ingested, path).files}
    assert report.version == 2 and report.rows == len(source_rows(second_batch))
    assert after["month=01"] == before["month=01"] and after["month=02"] == before["month=02"]
    assert after["month=03"] != before["month=03"] and "month=04" in after
    assert not ingested.fs.exists(f"{path}/{before['month=03'].path}")
    assert_same_observations(
        read_insitu(ingested, COLLECTION), source_rows(first_batch + second_batch)
    )


# --- new versions of sources ----------------------------------------------------------------


def _float_file(batch: list[str]) -> str:
    return next(p for p in batch if p.endswith(".nc"))


def _others(batch: list[str], path: str) -> list[str]:
    return [p for p in batch if Path(p).name != Path(path).name]


def _updated_version(source: str, target: Path) -> Path:
    """The file as a data centre republishes it: a value corrected in every profile, and the
    first profile withdrawn (no position any more, so it cannot be placed)."""

    def edit(nc):
        for name in ("TEMP", "TEMP_ADJUSTED"):
            values = nc.variables[name]
            values.set_auto_mask(False)
            data = values[:]
            values[:] = np.where(data == values._FillValue, data, data + 0.25)
        nc.variables["LATITUDE"][0] = nc.variables["LATITUDE"]._FillValue

    _edit_netcdf(source, target, edit)
    return target


def _placed(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["lat"].notna() & rows["time"].notna()]


def test_an_updated_source_replaces_every_row_of_its_earlier_version(
    ingested, first_batch, tmp_path
):
    argo = _float_file(first_batch)
    updated = _updated_version(argo, tmp_path / Path(argo).name)

    with pytest.warns(UserWarning, match="have no"):
        report = ingest_insitu(ingested, COLLECTION, "ocean", [str(updated)])

    assert report.added == report.replaced == [updated.name] and report.version == 2
    expected = _placed(source_rows([*_others(first_batch, argo), str(updated)]))
    assert_same_observations(read_insitu(ingested, COLLECTION), expected)
    manifest = read_manifest(ingested, ingested.find_collection(COLLECTION))
    assert [s.sha256 for s in manifest.sources if s.name == updated.name] == [
        hashlib.sha256(updated.read_bytes()).hexdigest()
    ]


def _delayed_mode_version(source: str, target: Path) -> tuple[Path, int]:
    """The last (real-time) profile of a float file, processed in delayed mode: adjusted
    pressures, temperatures and salinities, in a file of another name."""
    with netCDF4.Dataset(source) as nc:
        profile = len(nc.dimensions["N_PROF"]) - 1
        assert nc.variables["DATA_MODE"][profile] == b"R"

    def edit(nc):
        nc.variables["DATA_MODE"][profile] = b"D"
        for name, correction in (("PRES", -0.3), ("TEMP", 0.01), ("PSAL", -0.002)):
            raw = nc.variables[name]
            raw.set_auto_mask(False)
            values = raw[profile]
            missing = values == raw._FillValue
            nc.variables[f"{name}_ADJUSTED"][profile] = np.where(
                missing, raw._FillValue, values + correction
            )
            nc.variables[f"{name}_ADJUSTED_QC"][profile] = nc.variables[f"{name}_QC"][profile]

    _edit_netcdf(source, target, edit)
    return target, profile


ARRIVALS = {
    "delayed after real time": lambda realtime, delayed: [[realtime], [delayed]],
    "delayed before real time": lambda realtime, delayed: [[delayed], [realtime]],
    "both in one ingest": lambda realtime, delayed: [[delayed, realtime]],
}


@pytest.mark.parametrize("arrivals", ARRIVALS.values(), ids=ARRIVALS.keys())
def test_a_delayed_mode_profile_supersedes_its_real_time_version(
    local_lake, first_batch, tmp_path, arrivals
):
    realtime = _float_file(first_batch)
    delayed, profile = _delayed_mode_version(realtime, tmp_path / "delayed-mode.nc")

    for files in arrivals(realtime, str(delayed)):
        ingest_insitu(local_lake, COLLECTION, "ocean", files)

    got = read_insitu(local_lake, COLLECTION)
    # Every profile as the delayed-mode file has it; no real-time level of the last one left.
    assert_same_observations(got, source_rows([str(delayed)]))
    last_cycle = got[got["cycle_number"] == profile + 1]
    assert set(last_cycle["data_mode"]) == {"D"} and set(last_cycle["source"]) == {delayed.name}


def test_a_station_published_as_one_file_per_depth_keeps_every_depth(
    local_lake, first_batch, tmp_path
):
    station = pd.read_csv(next(p for p in first_batch if p.endswith(".csv")), dtype=str)
    depths = sorted(station["depth"].unique(), key=float)
    assert len(depths) > 1
    files = []
    for depth in depths:
        files.append(tmp_path / f"{station['station_id'][0]}-{depth}m.csv")
        station[station["depth"] == depth].to_csv(files[-1], index=False)

    ingest_insitu(local_lake, COLLECTION, "ocean", [str(f) for f in files])

    assert_same_observations(
        read_insitu(local_lake, COLLECTION), source_rows([str(f) for f in files])
    )


def test_an_ingest_leaves_no_temporary_files(local_lake, first_batch, tmp_path, monkeypatch):
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    bad = tmp_path / "bad.nc"
    _truncate(_float_file(first_batch), bad)

    ingest_insitu(local_lake, COLLECTION, "ocean", first_batch[:2])
    with pytest.raises(IngestError):
        ingest_insitu(local_lake, COLLECTION, "ocean", [*first_batch[2:], str(bad)])

    assert not list(spool.iterdir())


# --- GeoParquet for other readers ------------------------------------------------------------


def test_files_are_geoparquet_that_geopandas_reads(ingested):
    path = ingested.find_collection(COLLECTION)
    file = read_manifest(ingested, path).files[0]

    frame = geopandas.read_parquet(f"{path}/{file.path}")

    assert frame.crs.to_string() == "OGC:CRS84"
    assert shapely.equals(frame.geometry.values, shapely.points(frame["lon"], frame["lat"])).all()
    assert tuple(frame.total_bounds) == file.bbox
    west, south, east, north = QUERIES["bbox"]["bbox"]
    inside = geopandas.read_parquet(f"{path}/{file.path}", bbox=(west, south, east, north))
    assert (
        len(inside)
        == (frame["lon"].between(west, east) & frame["lat"].between(south, north)).sum()
        > 0
    )


def test_duckdb_filters_on_the_bbox_covering_column_without_extensions(ingested, first_batch):
    west, south, east, north = QUERIES["bbox"]["bbox"]
    observations = f"{ingested.find_collection(COLLECTION)}/observations/*/*/*.parquet"

    (count,) = duckdb.execute(
        "SELECT count(*) FROM read_parquet(?, hive_partitioning = true) "
        "WHERE bbox.xmin >= ? AND bbox.xmax <= ? AND bbox.ymin >= ? AND bbox.ymax <= ?",
        [observations, west, east, south, north],
    ).fetchone()

    assert count == len(select_expected(source_rows(first_batch), bbox=(west, south, east, north)))


# --- bad input leaves the lake as it was -----------------------------------------------------


def _edit_csv(source: str, target: Path, edit) -> None:
    lines = Path(source).read_text().splitlines()
    target.write_text("\n".join(edit(lines)) + "\n")


def _edit_netcdf(source: str, target: Path, edit) -> None:
    shutil.copy(source, target)
    with netCDF4.Dataset(target, "a") as nc:
        edit(nc)


def _set_field(line: str, index: int, value: str) -> str:
    fields = line.split(",")
    fields[index] = value
    return ",".join(fields)


def _kelvin(nc) -> None:
    for name in ("TEMP", "TEMP_ADJUSTED"):
        nc.variables[name].units = "kelvin"


def _celsius_values_in_kelvin(nc) -> None:
    for name in ("TEMP", "TEMP_ADJUSTED"):
        nc.variables[name].set_auto_mask(True)
        nc.variables[name][:] = nc.variables[name][:] + 273.15


def _truncate(source: str, target: Path) -> None:
    data = Path(source).read_bytes()
    target.write_bytes(data[: len(data) // 2])


def _overwrite_header(source: str, target: Path) -> None:
    data = bytearray(Path(source).read_bytes())
    data[:512] = b"\x00" * 512
    target.write_bytes(bytes(data))


BAD_INPUTS = {
    "csv value not a number": (
        ".csv",
        lambda s, t: _edit_csv(s, t, lambda ls: ls[:7] + [_set_field(ls[7], 5, "warm")] + ls[8:]),
        "line(s)? 8",
    ),
    "csv row with a missing field": (
        ".csv",
        lambda s, t: _edit_csv(s, t, lambda ls: ls[:4] + [ls[4].rsplit(",", 1)[0]] + ls[5:]),
        "lines 5",
    ),
    "csv without a lat column": (
        ".csv",
        lambda s, t: _edit_csv(
            s,
            t,
            lambda ls: [
                ",".join(f for i, f in enumerate(line.split(",")) if i != 3) for line in ls
            ],
        ),
        "no column lat",
    ),
    "csv latitude out of range": (
        ".csv",
        lambda s, t: _edit_csv(s, t, lambda ls: ls[:3] + [_set_field(ls[3], 3, "95.0")] + ls[4:]),
        "lines 4",
    ),
    "csv time without a zone": (
        ".csv",
        lambda s, t: _edit_csv(
            s, t, lambda ls: ls[:2] + [_set_field(ls[2], 1, "2020-01-01T00:00:00")] + ls[3:]
        ),
        "lines 3",
    ),
    "csv bad QC flag": (
        ".csv",
        lambda s, t: _edit_csv(s, t, lambda ls: ls[:5] + [_set_field(ls[5], 6, "12")] + ls[6:]),
        "TEMP_QC",
    ),
    "csv with a column the lake does not know": (
        ".csv",
        lambda s, t: _edit_csv(
            s, t, lambda ls: [f"{ls[0]},comment"] + [f"{line}," for line in ls[1:]]
        ),
        "does not know: comment",
    ),
    "netcdf truncated": (".nc", _truncate, "cannot be read as NetCDF"),
    "netcdf corrupt header": (".nc", _overwrite_header, "cannot be read as NetCDF"),
    "netcdf without latitude": (
        ".nc",
        lambda s, t: _edit_netcdf(s, t, lambda nc: nc.renameVariable("LATITUDE", "LAT")),
        "no LATITUDE",
    ),
    "netcdf temperature in kelvin": (
        ".nc",
        lambda s, t: _edit_netcdf(s, t, _kelvin),
        "units 'kelvin'",
    ),
    "netcdf kelvin values labelled Celsius": (
        ".nc",
        lambda s, t: _edit_netcdf(s, t, _celsius_values_in_kelvin),
        "outside",
    ),
}


@pytest.mark.parametrize("suffix, spoil, problem", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_refused_and_the_lake_is_unchanged(
    ingested, first_batch, second_batch, tmp_path, suffix, spoil, problem
):
    source = next(p for p in first_batch if p.endswith(suffix))
    bad = tmp_path / f"bad-{Path(source).name}"
    spoil(source, bad)
    before = lake_bytes(ingested)

    with pytest.raises(IngestError, match=problem) as error:
        ingest_insitu(ingested, COLLECTION, "ocean", [*second_batch, str(bad)])

    assert bad.name in str(error.value)
    assert lake_bytes(ingested) == before


def test_bad_input_into_a_new_collection_leaves_no_trace(local_lake, first_batch, tmp_path):
    bad = tmp_path / "bad.nc"
    _truncate(next(p for p in first_batch if p.endswith(".nc")), bad)

    with pytest.raises(IngestError, match="bad.nc"):
        ingest_insitu(local_lake, COLLECTION, "ocean", [*first_batch, str(bad)])

    assert not Path(local_lake.url).exists()


@pytest.fixture(scope="module")
def many_floats(tmp_path_factory) -> list[str]:
    """Enough files for the ingest to decode them in worker processes."""
    spec = ArgoSpec(floats=PARALLEL_READ_FROM, profiles=2, first_wmo=6901001)
    return [str(p) for p in write_argo(spec, tmp_path_factory.mktemp("many"))]


def test_many_files_are_decoded_in_parallel_into_the_same_observations(local_lake, many_floats):
    ingest_insitu(local_lake, COLLECTION, "ocean", many_floats)
    assert_same_observations(read_insitu(local_lake, COLLECTION), source_rows(many_floats))


def test_a_bad_file_among_many_is_named_by_the_worker_that_found_it(
    local_lake, many_floats, tmp_path
):
    bad = tmp_path / "7000000-prof.nc"
    _truncate(many_floats[0], bad)
    with pytest.raises(IngestError, match="7000000-prof.nc"):
        ingest_insitu(local_lake, COLLECTION, "ocean", [*many_floats, str(bad)])
    assert not Path(local_lake.url).exists()


# --- a killed ingest -------------------------------------------------------------------------

# The child pauses in its progress callback (the public hook a progress bar uses) after its first
# month file is written, so the SIGKILL from the test lands between two writes every time instead
# of racing an ingest that takes a few milliseconds.
KILLED_INGEST = textwrap.dedent("""
    import sys, time
    from eosc_pangeo.lake.insitu import ingest_insitu
    from eosc_pangeo.lake.storage import Lake, sha256_of

    def pause_after_first_file(stage, done, total):
        if stage == "write":
            time.sleep(600)

    ingest_insitu(Lake(sys.argv[1]), sys.argv[2], "ocean", sys.argv[3:],
                  progress=pause_after_first_file)
""")


def _uncommitted_files(lake: Lake) -> set[str]:
    path = lake.find_collection(COLLECTION)
    committed = {f"{path}/{f.path}" for f in read_manifest(lake, path).files}
    return set(lake.fs.find(f"{path}/observations")) - committed


def test_an_ingest_killed_mid_write_leaves_the_previous_version_and_a_rerun_completes(
    ingested, first_batch, second_batch, tmp_path
):
    before = read_insitu(ingested, COLLECTION)
    # A killed process cannot remove its temporary files: keep them in the test's folder.
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_INGEST, ingested.url, COLLECTION, *second_batch],
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    deadline = time.monotonic() + 60
    while not _uncommitted_files(ingested):
        assert child.poll() is None and time.monotonic() < deadline, "the ingest never wrote"
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()

    leftovers = _uncommitted_files(ingested)
    assert leftovers
    pd.testing.assert_frame_equal(read_insitu(ingested, COLLECTION), before)

    report = ingest_insitu(ingested, COLLECTION, "ocean", second_batch)

    assert report.added == [Path(p).name for p in second_batch]
    assert not _uncommitted_files(ingested)
    assert_same_observations(
        read_insitu(ingested, COLLECTION), source_rows(first_batch + second_batch)
    )


# --- validation ------------------------------------------------------------------------------


def test_check_reports_a_tampered_file(ingested):
    path = ingested.find_collection(COLLECTION)
    manifest = read_manifest(ingested, path)
    tampered = manifest.files[1]
    with open(f"{path}/{tampered.path}", "r+b") as f:
        f.seek(tampered.size // 2)
        f.write(b"\xff\xfe")

    failed = [f for f in check_insitu(ingested, path, manifest) if not f.ok]

    assert [(f.check, f.target) for f in failed] == [("checksum", tampered.path)]


def findings_after_rewriting_a_file(lake: Lake, rewrite) -> list:
    """The failed checks of the collection once its first file holds ``rewrite(table)``, with
    the manifest's size and checksum updated so that only the content is wrong."""
    path = lake.find_collection(COLLECTION)
    manifest = read_manifest(lake, path)
    file = manifest.files[0]
    target = f"{path}/{file.path}"
    pq.write_table(rewrite(pq.read_table(target, partitioning=None)), target)
    file.size, file.sha256 = os.path.getsize(target), sha256_of(lake.fs, target)
    return [f for f in check_insitu(lake, path, manifest) if not f.ok]


def test_check_reports_a_file_without_geo_metadata_or_order(ingested):
    failed = findings_after_rewriting_a_file(
        ingested, lambda table: table.replace_schema_metadata({})[::-1]
    )

    assert {f.check for f in failed} == {"geoparquet", "sorted"}


def test_check_reports_a_profile_mixing_rows_of_two_source_files(ingested):
    def one_level_from_another_file(table):
        first_level_of_a_profile = pc.index(pc.is_valid(table["cycle_number"]), True).as_py()
        sources = table["source"].to_pylist()
        sources[first_level_of_a_profile] = "another-file.nc"
        return table.set_column(
            table.schema.get_field_index("source"), table.schema.field("source"), pa.array(sources)
        )

    failed = findings_after_rewriting_a_file(ingested, one_level_from_another_file)

    assert [f.check for f in failed] == ["unique-observations"]
    assert "1 profiles mix rows of several source files" in failed[0].message


# --- building blocks -------------------------------------------------------------------------


def test_depth_from_pressure_matches_the_unesco_check_value():
    # UNESCO technical paper 44 (1983), p. 28: 10000 dbar at 30 degrees latitude is 9712.653 m.
    assert depth_from_pressure(np.array([10_000.0]), np.array([30.0]))[0] == pytest.approx(
        9712.653, abs=1e-3
    )


def test_hilbert_index_visits_the_quadrants_in_curve_order():
    # Order 1: lower left, upper left, upper right, lower right.
    lon = np.array([-90.0, -90.0, 90.0, 90.0])
    lat = np.array([-45.0, 45.0, 45.0, -45.0])
    assert hilbert_index(lon, lat, order=1).tolist() == [0, 1, 2, 3]
