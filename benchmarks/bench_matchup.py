"""Match-ups: 100,000 observations against 30 days of a global 0.25-degree daily SST grid.

Every method answers the same question: the value of the grid cell nearest each observation in
space and time. Measured side by side in one run:

* ``eosc_pangeo.matchup`` on the grid in memory, and on the lake collection on disk (lazy, read
  only in the chunks that hold a pair);
* the loop a user writes first: ``Dataset.sel(lat=, lon=, time=, method="nearest")`` per
  observation, timed on a sample of observations and extrapolated to all of them;
* xoak, an xarray index on scikit-learn's haversine BallTree (built on the 1 million cell
  centres, then queried; the time step is chosen with a vectorised ``sel``);
* pyinterp's nearest-neighbour 3-D interpolation on its ``Grid3D`` (longitude as a circle), when
  it is installed (its wheels need Python >= 3.12).

Answers are checked against matchup's: xoak (great-circle nearest too) must agree on > 99.99 %
(in the run of the README it returned, for 2 of 100,000 observations 4e-6 degree from a column
boundary, the farther of two cells, by under a metre); the loop and pyinterp choose the nearest
latitude and longitude separately, which differs from the great-circle nearest cell only for
the few observations within ~1e-4 degree of a row boundary at high latitude, so their agreement
is printed and must exceed 99.9 %.
"""

from __future__ import annotations

import time

import common
import numpy as np
import pandas as pd
import xarray as xr

from eosc_pangeo import demo_data, lake
from eosc_pangeo.analysis import matchup

COLLECTION = "sst-matchup-bench"
FULL = demo_data.SstSpec(days=30, resolution=0.25)
QUICK = demo_data.SstSpec(days=10, resolution=1.0)
OBSERVATIONS = 100_000
LOOP_SAMPLE = 1_000


def sst_lake(spec: demo_data.SstSpec) -> str:
    """The cached lake holding the daily files of ``spec`` as one collection (map store)."""
    files = common.source_files(spec)

    def build(tmp) -> None:
        started = time.perf_counter()
        lake.ingest_grid(str(tmp), COLLECTION, "ocean", files, chunking="map")
        print(f"# ingested {len(files)} files in {time.perf_counter() - started:.0f} s")

    return str(common.build_once(common.cached_dir("lake-matchup", spec, common.SEED), build))


def random_observations(grid: xr.Dataset, n: int) -> pd.DataFrame:
    """``n`` observations uniform on the sphere, at random times within the grid's days."""
    rng = np.random.default_rng(0)
    start, end = grid.time.values[0], grid.time.values[-1]
    span = (end - start) / np.timedelta64(1, "s")
    return pd.DataFrame(
        {
            "lat": np.degrees(np.arcsin(rng.uniform(-1, 1, n))),
            "lon": rng.uniform(-180, 180, n),
            "time": start + (rng.uniform(0, span, n) * 1e9).astype("timedelta64[ns]"),
        }
    )


def with_matchup(grid: xr.Dataset, obs: pd.DataFrame) -> np.ndarray:
    return matchup(grid, obs, variables=["analysed_sst"])["analysed_sst"].to_numpy()


def with_sel_loop(grid: xr.Dataset, obs: pd.DataFrame) -> np.ndarray:
    sst = grid["analysed_sst"]
    return np.array(
        [
            float(sst.sel(lat=row.lat, lon=row.lon, time=row.time, method="nearest"))
            for row in obs.itertuples()
        ]
    )


def xoak_index(grid: xr.Dataset) -> xr.Dataset:
    from xoak import SklearnGeoBallTreeAdapter

    lat2, lon2 = xr.broadcast(grid.lat, grid.lon)
    return grid.assign_coords(lat2=lat2, lon2=lon2).set_xindex(
        ["lat2", "lon2"], xr.indexes.NDPointIndex, tree_adapter_cls=SklearnGeoBallTreeAdapter
    )


def xoak_query(cells: xr.Dataset, obs: pd.DataFrame) -> np.ndarray:
    at_points = cells.sel(
        lat2=xr.DataArray(obs.lat.values, dims="obs"),
        lon2=xr.DataArray(obs.lon.values, dims="obs"),
        method="nearest",
    )
    picked = at_points["analysed_sst"].sel(
        time=xr.DataArray(obs.time.values, dims="obs"), method="nearest"
    )
    return picked.values


def pyinterp_grid(grid: xr.Dataset):
    from pyinterp.backends.xarray import Grid3D

    return Grid3D(grid["analysed_sst"].transpose("lon", "lat", "time"))


def pyinterp_query(interpolator, obs: pd.DataFrame) -> np.ndarray:
    return interpolator.trivariate(
        {
            "lon": obs.lon.values,
            "lat": obs.lat.values,
            "time": obs.time.values.astype("datetime64[ns]"),
        },
        method="nearest",
        bounds_error=False,
    )


def compare_peer(name: str, build, query, grid, obs, expected, fast: float, min_agreement):
    """Time a peer's index (or grid) building and its query; report both against matchup."""
    index = build(grid)
    values = query(index, obs)
    print(f"# {name} agrees with matchup on {agreement(values, expected):.4%}")
    assert agreement(values, expected) > min_agreement
    built = common.time_runs(lambda: build(grid), 1).best
    queried = common.time_runs(lambda: query(index, obs), 3).best
    common.report(f"{name}, building its index", built, "s")
    common.report(f"{name}, query alone", queried, "s")
    common.report(
        f"matchup vs {name} (index + query)", fast, "s", baseline=built + queried, target="> 1x"
    )
    common.report(f"matchup vs {name} query alone", fast, "s", baseline=queried)


def agreement(values: np.ndarray, expected: np.ndarray) -> float:
    same = (values == expected) | (np.isnan(values) & np.isnan(expected))
    return float(same.mean())


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    spec = QUICK if args.quick else FULL
    n = 10_000 if args.quick else OBSERVATIONS
    on_disk = lake.open_dataset(sst_lake(spec), COLLECTION)[["analysed_sst"]]
    in_memory = on_disk.load()
    obs = random_observations(in_memory, n)
    print(f"# grid {dict(in_memory.sizes)}, {n} observations uniform on the sphere")

    expected = with_matchup(in_memory, obs)
    fast = common.time_runs(lambda: with_matchup(in_memory, obs), 3).best
    disk = common.time_runs(lambda: with_matchup(on_disk, obs), 3).best
    assert agreement(with_matchup(on_disk, obs), expected) == 1.0

    sample = obs.iloc[:LOOP_SAMPLE]
    loop_values = with_sel_loop(in_memory, sample)
    loop_sample = common.time_runs(lambda: with_sel_loop(in_memory, sample), 1).best
    loop = loop_sample * n / LOOP_SAMPLE
    print(
        f"# sel loop timed on {LOOP_SAMPLE} observations ({loop_sample:.2f} s), extrapolated "
        f"to {n}; agrees with matchup on {agreement(loop_values, expected[:LOOP_SAMPLE]):.4%}"
    )
    assert agreement(loop_values, expected[:LOOP_SAMPLE]) > 0.999

    common.report("per-observation sel(method='nearest') loop", loop, "s")
    common.report("matchup, grid in memory", fast, "s", baseline=loop, target=">= 100x")
    common.report("matchup, lake collection on disk", disk, "s", baseline=loop)

    compare_peer(
        "xoak (sklearn haversine BallTree)",
        xoak_index,
        xoak_query,
        in_memory,
        obs,
        expected,
        fast,
        0.9999,
    )
    try:
        import pyinterp  # noqa: F401
    except ImportError:
        print("# pyinterp not installed (no wheel for this Python; it needs >= 3.12): skipped")
        return
    compare_peer(
        "pyinterp Grid3D nearest",
        pyinterp_grid,
        pyinterp_query,
        in_memory,
        obs,
        expected,
        fast,
        0.999,
    )


if __name__ == "__main__":
    main()
