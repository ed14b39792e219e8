"""matchup(): known values at known places, on the sphere, in time and depth, read lazily."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from zarr.storage import LocalStore, WrapperStore

from eosc_pangeo.analysis import AnalysisError, matchup
from eosc_pangeo.analysis._sphere import great_circle_km

DAYS = pd.date_range("2020-01-01", periods=10, freq="D")


def cell_number_grid(lon_start: float = -180.0, resolution: float = 1.0) -> xr.Dataset:
    """A global daily grid whose value is ``day * 1e6 + row * 1000 + column``."""
    lat = -90 + resolution * (np.arange(round(180 / resolution)) + 0.5)
    lon = lon_start + resolution * (np.arange(round(360 / resolution)) + 0.5)
    day, row, col = np.meshgrid(
        np.arange(DAYS.size), np.arange(lat.size), np.arange(lon.size), indexing="ij"
    )
    return xr.Dataset(
        {"v": (("time", "lat", "lon"), (day * 1e6 + row * 1000 + col).astype(float))},
        coords={
            "time": DAYS,
            "lat": ("lat", lat, {"standard_name": "latitude"}),
            "lon": ("lon", lon, {"standard_name": "longitude"}),
        },
    )


def observations(*points) -> pd.DataFrame:
    """A table of (lat, lon, time) points, with an extra column that must be kept."""
    lat, lon, time = zip(*points, strict=True)
    return pd.DataFrame(
        {
            "platform": [f"p{i}" for i in range(len(points))],
            "lat": lat,
            "lon": lon,
            "time": pd.to_datetime(time),
        }
    )


def test_the_nearest_cell_across_the_dateline_is_found_from_either_side():
    grid = cell_number_grid()  # cells at -179.5 .. 179.5
    obs = observations((0.2, 179.9, "2020-01-03"), (0.2, -179.9, "2020-01-03"))
    result = matchup(grid, obs)
    # row 90 is lat 0.5; column 359 is lon 179.5, column 0 is lon -179.5
    assert result["v"].tolist() == [2e6 + 90 * 1000 + 359, 2e6 + 90 * 1000 + 0]
    assert result["grid_lon"].tolist() == [179.5, -179.5]
    assert result["distance_km"].tolist() == pytest.approx([55.597, 55.597], abs=1e-3)  # 0.5 deg


def test_a_radius_window_takes_the_cells_on_both_sides_of_the_dateline():
    result = matchup(cell_number_grid(), observations((0.0, 179.9, "2020-01-01")), radius_km=150)
    # lat +-0.5 x lon 179.5 and -179.5: four cells at 45-85 km; the next column is 155 km away
    assert result.loc[0, "v_count"] == 4
    expected = np.mean([89 * 1000 + 359, 89 * 1000, 90 * 1000 + 359, 90 * 1000])
    assert result.loc[0, "v_mean"] == pytest.approx(expected)


def test_grids_and_observations_in_either_longitude_convention_match_the_same_cells():
    west = cell_number_grid(-180.0)
    east = west.assign_coords(lon=west.lon % 360).sortby("lon")  # same cells, 0..360
    obs_west = observations(
        (45.3, -30.2, "2020-01-05"), (-60.1, 170.4, "2020-01-02"), (10.0, -0.3, "2020-01-09")
    )
    obs_east = obs_west.assign(lon=obs_west.lon % 360)
    results = [matchup(g, o, radius_km=120) for g in (west, east) for o in (obs_west, obs_east)]
    for result in results[1:]:
        np.testing.assert_array_equal(result["v"], results[0]["v"])
        np.testing.assert_array_equal(result["v_mean"], results[0]["v_mean"])
        np.testing.assert_allclose(result["distance_km"], results[0]["distance_km"])


def test_every_cell_around_a_pole_is_within_a_radius_of_it():
    grid = cell_number_grid()
    result = matchup(
        grid, observations((90.0, 0.0, "2020-01-01"), (-90.0, 123.0, "2020-01-01")), radius_km=60
    )
    # the rows at +-89.5 degrees are 55.6 km from the poles: all 360 cells of each
    assert result["v_count"].tolist() == [360, 360]
    assert result["grid_lat"].tolist() == [89.5, -89.5]


def test_the_nearest_cell_is_the_great_circle_nearest_at_any_latitude():
    grid = cell_number_grid(resolution=2.0)
    rng = np.random.default_rng(1)
    n = 2000
    obs = pd.DataFrame(
        {
            "lat": np.degrees(np.arcsin(rng.uniform(-1, 1, n))),
            "lon": rng.uniform(-540, 540, n),
            "time": DAYS[0],
        }
    )
    result = matchup(grid, obs)
    lat2, lon2 = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    brute = np.array(
        [great_circle_km(a, b, lat2, lon2).min() for a, b in zip(obs.lat, obs.lon, strict=True)]
    )
    np.testing.assert_allclose(result["distance_km"], brute, rtol=1e-9, atol=1e-6)


def test_a_window_of_the_nearest_cell_alone_has_its_value_and_no_spread():
    result = matchup(
        cell_number_grid(), observations((0.3, 0.3, "2020-01-01"), (0.3, 1.3, "2020-01-01"))
    )
    assert result["v_mean"].tolist() == result["v"].tolist() == [90180.0, 90181.0]
    assert result["v_median"].tolist() == [90180.0, 90181.0]
    assert result["v_count"].tolist() == [1, 1] and result["v_std"].isna().all()


def test_a_radius_excludes_the_cells_just_beyond_it():
    grid = cell_number_grid()
    at_centre = observations((0.5, 0.5, "2020-01-01"))
    # the four neighbours of the cell are 111.19 km (lon) and 111.195 km (lat) away
    assert matchup(grid, at_centre, radius_km=111.0).loc[0, "v_count"] == 1
    assert matchup(grid, at_centre, radius_km=111.3).loc[0, "v_count"] == 5


def test_a_time_window_excludes_the_steps_just_beyond_it():
    grid = cell_number_grid()
    obs = observations((0.5, 0.5, "2020-01-05T12:00"))
    # daily steps at 00:00: the 5th and 6th are 12 h away, the 4th 36 h
    assert matchup(grid, obs, time_window="1D").loc[0, "v_count"] == 2
    assert matchup(grid, obs, time_window="12h").loc[0, "v_count"] == 2
    outside = matchup(grid, obs, time_window="11h59min")
    assert outside.loc[0, "v_count"] == 0 and np.isnan(outside.loc[0, "v"])


def test_observations_with_no_cell_in_the_window_are_kept_with_nan_or_dropped():
    grid = cell_number_grid().sel(lat=slice(-10, 10), lon=slice(-10, 10))
    obs = observations((0.5, 0.5, "2020-01-02"), (45.0, 100.0, "2020-01-02"))
    kept = matchup(grid, obs, radius_km=50)
    assert kept["platform"].tolist() == ["p0", "p1"]
    assert np.isnan(kept.loc[1, "v"]) and np.isnan(kept.loc[1, "distance_km"])
    assert kept.loc[0, "v"] == 1e6 + 90 * 1000 + 180  # cells keep their global numbers
    dropped = matchup(grid, obs, radius_km=50, dropna=True)
    assert dropped["platform"].tolist() == ["p0"]


def test_a_box_window_below_the_minimum_valid_fraction_has_no_statistics():
    grid = cell_number_grid()
    grid["v"][:, 89:92, 179:182] = np.nan  # 9 cells around lat 0, lon 0 (row 90, col 180)
    grid["v"][:, 90, 180] = 7.0
    grid["v"][:, 89, 179] = 9.0
    obs = observations((0.5, 0.5, "2020-01-01"), (30.5, 30.5, "2020-01-01"))
    result = matchup(grid, obs, box=3, min_valid_fraction=0.5)
    assert result["v_count"].tolist() == [2, 9]
    assert result["window_size"].tolist() == [9, 9]
    assert np.isnan(result.loc[0, "v_mean"]) and result.loc[0, "v"] == 7.0
    assert result.loc[1, "v_median"] == 120 * 1000 + 210
    assert matchup(grid, obs, box=3).loc[0, "v_mean"] == 8.0


def test_a_depth_window_takes_the_levels_within_it_on_a_4d_grid():
    depth = np.array([0.0, 10.0, 20.0, 50.0])
    grid = xr.Dataset(
        {
            "temp": (
                ("time", "depth", "lat", "lon"),
                np.broadcast_to(depth[None, :, None, None], (2, 4, 3, 3)).copy(),
            )
        },
        coords={
            "time": DAYS[:2],
            "depth": ("depth", depth, {"positive": "down", "axis": "Z"}),
            "lat": [-1.0, 0.0, 1.0],
            "lon": [-1.0, 0.0, 1.0],
        },
    )
    obs = pd.DataFrame({"lat": [0.1], "lon": [0.1], "time": [DAYS[0]], "depth": [12.0]})
    result = matchup(grid, obs, depth_window=10.0)
    assert result.loc[0, "temp"] == 10.0 and result.loc[0, "grid_depth"] == 10.0
    assert result.loc[0, "temp_mean"] == 15.0  # levels 10 and 20; 0 is 12 m away


def test_curvilinear_grids_match_the_great_circle_nearest_cell():
    # A grid rotated by 30 degrees in index space, as ocean models' grids are
    j, i = np.meshgrid(np.arange(40), np.arange(60), indexing="ij")
    lat = -20 + 0.9 * j + 0.3 * i
    lon = 100 + 1.1 * i - 0.4 * j
    grid = xr.Dataset(
        {"v": (("time", "nj", "ni"), np.broadcast_to(j * 1000.0 + i, (2, 40, 60)).copy())},
        coords={"time": DAYS[:2], "nav_lat": (("nj", "ni"), lat), "nav_lon": (("nj", "ni"), lon)},
    )
    rng = np.random.default_rng(2)
    obs = pd.DataFrame(
        {"lat": rng.uniform(0, 20, 300), "lon": rng.uniform(110, 140, 300), "time": DAYS[1]}
    )
    result = matchup(grid, obs)
    distances = great_circle_km(
        obs.lat.values[:, None], obs.lon.values[:, None], lat.ravel()[None, :], lon.ravel()[None, :]
    )
    nearest = distances.argmin(axis=1)
    np.testing.assert_array_equal(result["v"], (j * 1000.0 + i).ravel()[nearest])
    np.testing.assert_allclose(result["distance_km"], distances.min(axis=1))


def test_a_dataset_of_observations_gives_a_dataset_along_the_same_dimension():
    table = observations((10.2, 20.3, "2020-01-02"), (-5.0, -60.0, "2020-01-04"))
    obs = table.rename_axis("obs").to_xarray()
    result = matchup(cell_number_grid(), obs, radius_km=100)
    assert isinstance(result, xr.Dataset) and list(result.dims) == ["obs"]
    assert list(result["platform"].values) == ["p0", "p1"]
    assert result["v"].values[0] == 1e6 + 100 * 1000 + 200


def test_times_of_a_noleap_calendar_grid_are_matched():
    grid = cell_number_grid().isel(time=slice(0, 3))
    grid = grid.assign_coords(
        time=xr.date_range("2020-01-01", periods=3, calendar="noleap", use_cftime=True)
    )
    result = matchup(grid, observations((0.5, 0.5, "2020-01-02T03:00")), time_window="6h")
    assert result.loc[0, "v"] == 1e6 + 90 * 1000 + 180
    assert result.loc[0, "time_offset"] == pd.Timedelta("3h")


def test_a_missing_coordinate_is_named_with_what_to_do():
    obs = observations((0.3, 0.3, "2020-01-01")).rename(columns={"lat": "y_obs"})
    with pytest.raises(AnalysisError, match=r"observations.latitude: no such column.*obs_coords"):
        matchup(cell_number_grid(), obs)
    result = matchup(cell_number_grid(), obs, obs_coords={"latitude": "y_obs"})
    assert result.loc[0, "v"] == 90 * 1000 + 180


def test_an_even_box_is_refused():
    with pytest.raises(AnalysisError, match="box: must be an odd number"):
        matchup(cell_number_grid(), observations((0.0, 0.0, "2020-01-01")), box=4)


class CountingStore(WrapperStore):
    """A zarr store that counts the chunks read (keys under ``c/``)."""

    def __init__(self, store):
        super().__init__(store)
        self.chunks_read: list[str] = []

    async def get(self, key, prototype, byte_range=None):
        if "/c/" in key:
            self.chunks_read.append(key)
        return await self._store.get(key, prototype, byte_range)

    def _with_store(self, store):
        return type(self)(store)


def test_a_lazy_zarr_grid_is_read_only_in_the_chunks_that_hold_a_window(tmp_path):
    grid = cell_number_grid(resolution=2.0)  # 10 days x 90 x 180, chunks of 1 x 30 x 30
    grid.chunk({"time": 1, "lat": 30, "lon": 30}).to_zarr(
        tmp_path / "g.zarr", zarr_format=3, consolidated=True
    )
    store = CountingStore(LocalStore(str(tmp_path / "g.zarr"), read_only=True))
    lazy = xr.open_zarr(store, consolidated=True)
    store.chunks_read.clear()
    # two observations in two chunks of day 3, a third alone on day 8
    obs = observations(
        (5.0, 5.0, "2020-01-03"), (-45.0, -100.0, "2020-01-03"), (5.0, 5.0, "2020-01-08")
    )
    result = matchup(lazy, obs, radius_km=100)
    # (day, lat chunk, lon chunk): 5N 5E is in lat chunk 1 (-30..30), lon chunk 3 (0..60)
    assert sorted(set(store.chunks_read)) == ["v/c/2/0/1", "v/c/2/1/3", "v/c/7/1/3"]
    assert result["v"].tolist() == matchup(grid, obs, radius_km=100)["v"].tolist()
