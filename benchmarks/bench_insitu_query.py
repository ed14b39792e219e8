"""In-situ query: bbox + month + one variable from the lake's GeoParquet vs the source files.

The data are the ``large`` demo Argo floats (3400 multi-profile NetCDF files) and coastal
stations (40 hourly CSVs), more than 10 million observations, ingested once into a cached lake
(``bench_insitu_ingest.py`` measures the ingest itself).

The query is a 10 x 10 degree box off Iberia, March 2020, TEMP; ``--scale N`` makes the
collection N years long (the same floats and stations; N = 10 gives about 100 million
observations), the query's month and its answer staying the same. ``read_insitu`` reads only the
month's file and the row groups whose statistics overlap the box. The baseline is what a user
does without the lake, vectorised: open every Argo file with netCDF4 (skipping its levels when
no profile is in the box and month), every CSV with pandas, filter, concatenate. It returns the
same observations: the adjusted values in Argo data modes A and D, levels with a pressure and a
temperature, values masked only where they hold the fill value.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import common
import netCDF4
import numpy as np
import pandas as pd

from eosc_pangeo import demo_data, lake

COLLECTION = "insitu-bench"
LARGE = (demo_data.specs_for_size("large")["argo"], demo_data.specs_for_size("large")["stations"])
QUICK = (demo_data.ArgoSpec(floats=100, profiles=36), demo_data.StationSpec(stations=4, days=366))
BBOX = (-15.0, 35.0, -5.0, 45.0)  # west, south, east, north
TIME = (pd.Timestamp("2020-03-01", tz="UTC"), pd.Timestamp("2020-03-31 23:59:59.999999", tz="UTC"))
VARIABLE = "TEMP"
MIN_OBSERVATIONS = 10_000_000
ARGO_EPOCH = np.datetime64("1950-01-01T00:00:00", "us")


def insitu_lake(specs, files: list[Path]) -> tuple[str, dict]:
    """The cached lake holding ``files`` as one collection, and its ingest's row count."""

    def build(tmp: Path) -> None:
        report = lake.ingest_insitu(str(tmp), COLLECTION, "ocean", [str(f) for f in files])
        (tmp / "ingest.json").write_text(json.dumps({"rows": report.rows}))

    folder = common.build_once(common.cached_dir("lake-insitu", *specs, common.SEED), build)
    return str(folder), json.loads((folder / "ingest.json").read_text())


def lake_query(lake_url: str) -> pd.DataFrame:
    """The query through the lake."""
    return lake.read_insitu(lake_url, COLLECTION, bbox=BBOX, time=TIME, variables=[VARIABLE])


def source_query(argo_files: list[Path], station_files: list[Path]) -> pd.DataFrame:
    """The baseline: the same query over every source file."""
    frames = [argo_rows(f) for f in argo_files] + [station_rows(f) for f in station_files]
    return pd.concat([f for f in frames if len(f)], ignore_index=True)


def in_query(lon, lat, time) -> np.ndarray:
    """Whether each observation is in the box and the month (edges included, as the lake)."""
    west, south, east, north = BBOX
    return (
        (lon >= west)
        & (lon <= east)
        & (lat >= south)
        & (lat <= north)
        & (time >= TIME[0])
        & (time <= TIME[1])
    )


def argo_rows(path: Path) -> pd.DataFrame:
    """Levels of one Argo file in the query, with a pressure and a value of the variable."""
    with netCDF4.Dataset(path) as nc:
        time = pd.DatetimeIndex(
            ARGO_EPOCH + np.rint(unmasked(nc, "JULD") * 86_400e6).astype("timedelta64[us]"),
            tz="UTC",
        )
        lat, lon = unmasked(nc, "LATITUDE"), unmasked(nc, "LONGITUDE")
        lon = np.where(lon >= 180, lon - 360, lon)
        profiles = np.flatnonzero(in_query(lon, lat, time))
        if profiles.size == 0:
            return pd.DataFrame()
        modes = nc.variables["DATA_MODE"][:].filled(b" ")[profiles]
        adjusted = np.isin(modes, [b"A", b"D"])[:, None]
        pressure = np.where(
            adjusted, unmasked(nc, "PRES_ADJUSTED")[profiles], unmasked(nc, "PRES")[profiles]
        )
        values = np.where(
            adjusted,
            unmasked(nc, f"{VARIABLE}_ADJUSTED")[profiles],
            unmasked(nc, VARIABLE)[profiles],
        )
    rows, levels = np.nonzero(np.isfinite(pressure) & np.isfinite(values))
    return pd.DataFrame(
        {
            "time": time[profiles[rows]],
            "lon": lon[profiles[rows]],
            "lat": lat[profiles[rows]],
            "pressure": pressure[rows, levels],
            VARIABLE: values[rows, levels],
        }
    )


def unmasked(nc: netCDF4.Dataset, name: str) -> np.ndarray:
    """Values as floats, NaN only where the fill value is (not outside the valid range)."""
    variable = nc.variables[name]
    variable.set_auto_mask(False)
    values = np.asarray(variable[:], dtype=np.float64)
    values[values == np.float64(variable.getncattr("_FillValue"))] = np.nan
    return values


def station_rows(path: Path) -> pd.DataFrame:
    """Rows of one station CSV in the query with a value of the variable."""
    frame = pd.read_csv(path, usecols=["time", "lon", "lat", "depth", VARIABLE], engine="pyarrow")
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601")
    lon = np.where(frame["lon"] >= 180, frame["lon"] - 360, frame["lon"])
    keep = in_query(lon, frame["lat"], frame["time"]) & frame[VARIABLE].notna()
    return frame[keep.to_numpy()]


def check_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The lake returns the baseline's observations: same count, same values."""
    assert len(got) == len(expected), f"lake {len(got)} rows, source files {len(expected)}"
    assert len(got) > 0, "the query matches nothing: choose another box or month"
    np.testing.assert_allclose(
        np.sort(got[VARIABLE].to_numpy(dtype=np.float64)),
        np.sort(expected[VARIABLE].to_numpy(dtype=np.float64)),
        rtol=1e-6,
    )


def p50(func, repeat: int, cold: bool) -> float:
    """Median seconds of ``repeat`` calls of ``func``; cold drops the page cache before each."""
    return common.time_runs(func, repeat, before=common.drop_page_cache if cold else None).median


def argument_parser(description: str):
    """The options of the in-situ benchmarks: ``--quick`` and ``--scale``."""
    parser = common.argument_parser(description)
    parser.add_argument(
        "--scale",
        type=int,
        default=1,
        help="years of data, the same floats and stations (default 1: 2020; "
        "10 gives about 100 million observations at full size)",
    )
    return parser


def scaled(specs: tuple, scale: int) -> tuple:
    """The specs over ``scale`` years: the floats keep profiling every ten days, the stations
    recording every hour; the query's month (March 2020) holds the same observations."""
    argo, stations = specs
    return (
        dataclasses.replace(argo, profiles=argo.profiles * scale),
        dataclasses.replace(stations, days=stations.days * scale),
    )


def sources(quick: bool, scale: int = 1) -> tuple[tuple, int, list[Path], list[Path]]:
    """The specs of the run, the observations they plan, and their cached Argo and station
    files (written on first use); at least :data:`MIN_OBSERVATIONS` unless ``quick``."""
    specs = scaled(QUICK if quick else LARGE, scale)
    planned = sum(spec.n_observations(common.SEED) for spec in specs)
    assert quick or planned >= MIN_OBSERVATIONS, f"only {planned} observations planned"
    argo_files, station_files = (common.source_files(spec) for spec in specs)
    return specs, planned, argo_files, station_files


def main() -> None:
    args = argument_parser(__doc__.splitlines()[0]).parse_args()
    specs, planned, argo_files, station_files = sources(args.quick, args.scale)
    lake_url, ingest = insitu_lake(specs, argo_files + station_files)
    size_mb = common.total_bytes(argo_files + station_files) / 1e6
    print(
        f"# {len(argo_files)} Argo files + {len(station_files)} station CSVs, {size_mb:.0f} MB, "
        f"{planned} observations in the files, {ingest['rows']} with a value ingested"
    )
    got = lake_query(lake_url)
    baseline_rows = source_query(argo_files, station_files)
    check_same(got, baseline_rows)
    print(
        f"# query bbox {BBOX}, {TIME[0]:%Y-%m-%d}..{TIME[1]:%Y-%m-%d}, {VARIABLE}: "
        f"{len(got)} rows from both"
    )
    repeat = 5 if args.quick else 20
    for cache, cold in (("warm", False), ("cold", True)):
        if cold and not common.drop_page_cache():
            print("# cold runs skipped: cannot drop the page cache (not root)")
            break
        scans = 1 if cold or args.scale > 1 else 2
        baseline = p50(lambda: source_query(argo_files, station_files), scans, cold)
        lake_p50 = p50(lambda: lake_query(lake_url), repeat if not cold else 5, cold)
        common.report(
            f"insitu query p50 ({cache})", lake_p50, "s", baseline=baseline, target=">= 100x"
        )
        print(f"# lake query under 0.5 s ({cache}): {'yes' if lake_p50 < 0.5 else 'NO'}")


if __name__ == "__main__":
    main()
