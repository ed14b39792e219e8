"""Point time series over a year: the lake's natural call vs ``xarray.open_mfdataset``.

What is measured, per point, is what a user waits for: open the data, select the grid cell
nearest the point, load its whole series. The lake's collection is one year (2020, 366 days) of
daily global 0.25-degree SST (720 x 1440, the ``large`` demo size) ingested with
``chunking="both"``; the baseline opens the 366 daily NetCDF files with ``open_mfdataset``.

``natural``
    ``open_dataset(lake, id)["analysed_sst"].sel(lat=..., lon=..., method="nearest").load()``,
    no hint: the read goes to the store it touches fewer chunks of (the timeseries store, one
    chunk, for a point).
``explicit timeseries`` / ``explicit map``
    The same with ``chunking="timeseries"`` or ``chunking="map"``: the store named. The map
    store and the NetCDF files hold one day of the globe per chunk, so they read (and
    decompress) 366 full fields.

Each point is timed with every method in turn (interleaved: a change of load on a shared
machine hits them alike); the median over the points is reported. Warm runs read from the OS
page cache (after an untimed pass); cold runs drop it first.
"""

from __future__ import annotations

import time
from pathlib import Path

import common
import numpy as np
import xarray as xr

from eosc_pangeo import demo_data, lake

COLLECTION = "sst-bench"
LARGE = demo_data.specs_for_size("large")["sst"]
QUICK = demo_data.SstSpec(days=30, resolution=2.0)
POINTS = 3  # random ocean points, each timed once per method and cache state
METHODS = {"natural": "auto", "explicit timeseries": "timeseries", "explicit map": "map"}


def sst_lake(spec: demo_data.SstSpec, files: list[Path]) -> str:
    """The cached lake holding ``files`` as one collection with both stores (built once)."""

    def build(tmp: Path) -> None:
        started = time.perf_counter()
        lake.ingest_grid(str(tmp), COLLECTION, "ocean", files, chunking="both")
        print(f"# ingested {len(files)} files in {time.perf_counter() - started:.0f} s")

    return str(common.build_once(common.cached_dir("lake-sst", spec, common.SEED), build))


def ocean_points(source: Path, n: int) -> list[tuple[float, float]]:
    """``n`` random (lat, lon) cell centres with a value in ``source`` (a fixed draw)."""
    with xr.open_dataset(source) as ds:
        sst = ds.analysed_sst.isel(time=0)
        rows, cols = np.nonzero(np.isfinite(sst.values))
        pick = np.random.default_rng(0).choice(rows.size, n, replace=False)
        return [(float(sst.lat[rows[i]]), float(sst.lon[cols[i]])) for i in pick]


def lake_series(lake_url: str, chunking: str, point: tuple[float, float]):
    """Open the collection, select the cell nearest ``point``, load its series."""
    lat, lon = point
    ds = lake.open_dataset(lake_url, COLLECTION, chunking=chunking)
    return ds.analysed_sst.sel(lat=lat, lon=lon, method="nearest").load()


def netcdf_series(files: list[Path], point: tuple[float, float]):
    """The baseline: ``open_mfdataset`` on the daily files, select, load."""
    lat, lon = point
    with xr.open_mfdataset(files) as ds:
        return ds.analysed_sst.sel(lat=lat, lon=lon, method="nearest").load()


def check_equal(lake_url: str, files: list[Path], points) -> None:
    """Every method returns the baseline's values and times (this also warms the caches), and
    the natural call the explicit ones' exactly."""
    for point in points:
        expected = netcdf_series(files, point)
        got = {name: lake_series(lake_url, chunking, point) for name, chunking in METHODS.items()}
        for series in got.values():
            np.testing.assert_array_equal(series.time.values, expected.time.values)
            np.testing.assert_allclose(series.values, expected.values, rtol=0, atol=1e-4)
            xr.testing.assert_identical(series, got["explicit map"])


def interleaved_medians(methods: dict, points, cold: bool) -> dict[str, float]:
    """Median over the points of one open + select + load per method, the methods timed in
    turn for each point; cold drops the page cache before each."""
    before = common.drop_page_cache if cold else None
    runs = {name: [] for name in methods}
    for point in points:
        for name, run in methods.items():
            runs[name].append(common.time_runs(lambda r=run, p=point: r(p), 1, before=before).best)
    return {name: float(np.median(seconds)) for name, seconds in runs.items()}


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    spec = QUICK if args.quick else LARGE
    files = common.source_files(spec)
    lake_url = sst_lake(spec, files)
    points = ocean_points(files[0], POINTS)
    size_mb = common.total_bytes(files) / 1e6
    print(
        f"# {len(files)} daily files, {size_mb:.0f} MB, grid {180 / spec.resolution:.0f} x "
        f"{360 / spec.resolution:.0f}; {len(points)} points; median of the points"
    )
    check_equal(lake_url, files, points)
    methods = {"open_mfdataset": lambda p: netcdf_series(files, p)} | {
        name: lambda p, c=chunking: lake_series(lake_url, c, p)
        for name, chunking in METHODS.items()
    }
    for cache in ("warm", "cold"):
        cold = cache == "cold"
        if cold and not common.drop_page_cache():
            print("# cold runs skipped: cannot drop the page cache (not root)")
            break
        medians = interleaved_medians(methods, points, cold)
        baseline = medians.pop("open_mfdataset")
        common.report(f"point series open_mfdataset ({cache})", baseline, "s")
        for name, seconds in medians.items():
            target = ">= 100x" if name != "explicit map" else ""
            common.report(
                f"point series lake {name} ({cache})",
                seconds,
                "s",
                baseline=baseline,
                target=target,
            )


if __name__ == "__main__":
    main()
