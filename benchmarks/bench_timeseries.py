"""Point time series over a year: the lake's Zarr stores vs ``xarray.open_mfdataset``.

What is measured, per point, is what a user waits for: open the data, select the grid cell
nearest the point, load its whole series. The lake's collection is one year (2020, 366 days) of
daily global 0.25-degree SST (720 x 1440, the ``large`` demo size) ingested with
``chunking="both"``; the baseline opens the 366 daily NetCDF files with ``open_mfdataset``.

The timeseries store holds a year of a small tile per chunk, so a point series reads one chunk;
the map store and the NetCDF files hold one day of the whole globe per chunk, so they read (and
decompress) 366 full fields. ``chunking="auto"`` is measured with a bbox around the point, the
selection from which it chooses a store.

Warm runs read from the OS page cache (after an untimed pass); cold runs drop it first.
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
STORES = ("timeseries", "map", "auto")


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


def lake_series(lake_url: str, store: str, point: tuple[float, float], half_cell: float):
    """Open the collection, select the cell nearest ``point``, load its series.

    ``store="auto"`` passes a bbox of one cell around the point, as a user asking for that
    place would, and lets the lake choose the store.
    """
    lat, lon = point
    if store == "auto":
        bbox = (lon - half_cell, lat - half_cell, lon + half_cell, lat + half_cell)
        ds = lake.open_dataset(lake_url, COLLECTION, chunking="auto", bbox=bbox)
    else:
        ds = lake.open_dataset(lake_url, COLLECTION, chunking=store)
    return ds.analysed_sst.sel(lat=lat, lon=lon, method="nearest").load()


def netcdf_series(files: list[Path], point: tuple[float, float]):
    """The baseline: ``open_mfdataset`` on the daily files, select, load."""
    lat, lon = point
    with xr.open_mfdataset(files) as ds:
        return ds.analysed_sst.sel(lat=lat, lon=lon, method="nearest").load()


def chosen_store(lake_url: str, point: tuple[float, float], half_cell: float) -> str:
    """Which store ``chunking="auto"`` opened for a point, told by its time chunk length."""
    time_chunks = lake_series(lake_url, "auto", point, half_cell).encoding["chunks"][0]
    manifest = lake.read_manifest(lake.Lake.from_url(lake_url),
                                  lake.Lake.from_url(lake_url).find_collection(COLLECTION))
    return next(name for name, info in manifest.stores.items()
                if info.chunks["time"] == time_chunks)


def check_equal(lake_url: str, files: list[Path], points, half_cell: float) -> None:
    """Every store returns the baseline's values and times (this also warms the caches)."""
    for point in points:
        expected = netcdf_series(files, point)
        for store in STORES:
            got = lake_series(lake_url, store, point, half_cell)
            np.testing.assert_array_equal(got.time.values, expected.time.values)
            np.testing.assert_allclose(got.values, expected.values, rtol=0, atol=1e-4)


def median_seconds(run, points, cold: bool) -> float:
    """Median over the points of one open + select + load each; cold drops the cache first."""
    before = common.drop_page_cache if cold else None
    runs = [common.time_runs(lambda p=p: run(p), 1, before=before).best for p in points]
    return float(np.median(runs))


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    spec = QUICK if args.quick else LARGE
    files = common.source_files(spec)
    lake_url = sst_lake(spec, files)
    half_cell = spec.resolution / 2
    points = ocean_points(files[0], POINTS)
    size_mb = common.total_bytes(files) / 1e6
    print(f"# {len(files)} daily files, {size_mb:.0f} MB, grid {180 / spec.resolution:.0f} x "
          f"{360 / spec.resolution:.0f}; {len(points)} points; median of the points")
    check_equal(lake_url, files, points, half_cell)
    print(f"# auto chose the {chosen_store(lake_url, points[0], half_cell)} store for a point bbox")
    for cache in ("warm", "cold"):
        cold = cache == "cold"
        if cold and not common.drop_page_cache():
            print("# cold runs skipped: cannot drop the page cache (not root)")
            break
        baseline = median_seconds(lambda p: netcdf_series(files, p), points, cold)
        common.report(f"point series open_mfdataset ({cache})", baseline, "s")
        for store in STORES:
            seconds = median_seconds(lambda p, s=store: lake_series(lake_url, s, p, half_cell),
                                     points, cold)
            target = ">= 100x" if store == "timeseries" else ""
            common.report(f"point series lake {store} store ({cache})", seconds, "s",
                          baseline=baseline, target=target)


if __name__ == "__main__":
    main()
