"""Match-ups: the grid values around each observation, in space, time and depth.

Every observation gets the grid's nearest cell (nearest in space on the sphere, nearest time
step, nearest level) and statistics over a window around it: a great-circle radius or an
``n`` x ``n`` box of cells, times within ``time_window``, levels within ``depth_window``. The
window's count of valid cells, mean, standard deviation and median are kept only where the valid
fraction reaches ``min_valid_fraction`` (ocean-colour protocols ask for half of a 5 x 5 box).

All observations are located at once (binary searches on regular grids, a k-d tree on
curvilinear ones) and the grid is read with one vectorised (point-wise) indexing per variable,
so a lazy lake dataset reads only the chunks that hold a cell of some window.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from . import _coords
from ._provenance import COLUMN_ATTRS, COORDINATE_COLUMNS, record_step
from ._sphere import (
    Curvilinear,
    Grid,
    Regular,
    expand_ranges,
    great_circle_km,
    nearest_on_axis,
    ranges_on_axis,
)
from .errors import AnalysisError

STATISTICS = ("count", "mean", "std", "median")


@dataclass(frozen=True)
class _Axes:
    """Names of the grid's coordinates and the dimensions they index."""

    lat: str
    lon: str
    time: str
    vertical: str | None
    row_dim: str
    col_dim: str


def matchup(
    grid: xr.Dataset | xr.DataArray,
    observations: pd.DataFrame | xr.Dataset,
    *,
    variables: Sequence[str] | None = None,
    radius_km: float | None = None,
    box: int | None = None,
    time_window: str | pd.Timedelta | np.timedelta64 | None = None,
    depth_window: float | None = None,
    min_valid_fraction: float = 0.0,
    dropna: bool = False,
    coords: Mapping[str, str] | None = None,
    obs_coords: Mapping[str, str] | None = None,
) -> pd.DataFrame | xr.Dataset:
    """Match every observation with the grid values around it.

    Parameters
    ----------
    grid
        Gridded data, lazy (dask) or in memory, on a regular latitude/longitude grid (1-D
        coordinates) or a curvilinear one (2-D latitude and longitude), in either longitude
        convention. Coordinates are found by their CF attributes or common names (``coords``
        overrides them). Times may use any cftime calendar whose dates exist in the standard
        one (``noleap``, ``all_leap``...).
    observations
        A table with one row per observation (what :func:`eosc_pangeo.lake.read_insitu`
        returns) or a Dataset with one dimension along the observations. Latitude, longitude
        and time (and depth or pressure for a grid with levels) are found by name, or given by
        ``obs_coords`` (``{"latitude": ..., "longitude": ..., "time": ..., "vertical": ...}``).
    variables
        Grid variables to match (default: every data variable on the horizontal grid).
    radius_km
        Cells whose centre lies within this great-circle distance form the window, and the
        nearest cell must be within it. ``None``: no limit on the distance.
    box
        An odd number ``n``: the window is the ``n`` x ``n`` cells centred on the nearest cell
        (cut by ``radius_km`` if given too).
    time_window
        Time steps within this offset of the observation (either side) form the window, and
        the nearest step must be within it. ``None``: the nearest step, at any offset.
    depth_window
        For grids with a vertical coordinate: levels within this distance (in the units of the
        grid's vertical coordinate) of the observation's. ``None``: the nearest level.
    min_valid_fraction
        Window statistics are NaN where fewer than this fraction of the window's cells hold a
        value (land, cloud, gaps).
    dropna
        Drop the observations with no cell in the window (by default they are kept, with NaN).
    coords, obs_coords
        Names of the coordinates of the grid, and of the observations, where they cannot be
        found by CF attributes or names.

    Returns
    -------
    pandas.DataFrame or xarray.Dataset
        The observations (a DataFrame for a DataFrame, a Dataset for a Dataset) with, for
        each matched grid variable ``v``: ``v`` (the nearest cell's value), ``v_count``,
        ``v_mean``, ``v_std`` (sample standard deviation) and ``v_median`` over the window;
        and ``grid_<lat>``, ``grid_<lon>``, ``grid_<time>`` (``grid_<depth>``), the nearest
        cell's coordinates under the grid's names, ``distance_km``, ``time_offset``
        (observation minus grid time) and ``window_size`` (cells in the window).

    Raises
    ------
    AnalysisError
        A coordinate, column or variable is missing, or an argument is out of range.

    Examples
    --------
    >>> sst = eosc_pangeo.open_dataset("sst")                          # doctest: +SKIP
    >>> argo = eosc_pangeo.lake.read_insitu(lake, "argo", variables=["TEMP"])  # doctest: +SKIP
    >>> surface = argo[argo.pressure < 10]                             # doctest: +SKIP
    >>> pairs = matchup(sst, surface, radius_km=25, time_window="1D")  # doctest: +SKIP
    """
    if isinstance(grid, xr.DataArray):
        grid = grid.to_dataset(name=grid.name or "value")
    _check_window(radius_km, box, min_valid_fraction)
    time_window = None if time_window is None else pd.Timedelta(time_window)
    axes = _grid_axes(grid, coords)
    names = _matched_variables(grid, axes, variables)
    vertical_dims = (
        {d for v in names for d in grid[v].dims} & set(grid[axes.vertical].dims)
        if axes.vertical
        else set()
    )
    axes = axes if vertical_dims else _without_vertical(axes)
    table, to_output = _observation_table(observations)
    obs = _observation_coordinates(table, obs_coords, with_vertical=axes.vertical is not None)
    _check_names(table, names)

    horizontal = _horizontal(grid, axes)
    rows, cols = horizontal.nearest(obs["lat"], obs["lon"])
    distance = great_circle_km(obs["lat"], obs["lon"], *_cell_lat_lon(horizontal, rows, cols))
    grid_time = _coords.as_datetime64(grid[axes.time].values, f"grid.{axes.time}")
    if grid_time.size > 1 and not np.all(np.diff(grid_time) > np.timedelta64(0)):
        raise AnalysisError(
            f"grid.{axes.time}",
            "is not strictly increasing",
            "sort the grid with grid.sortby(time) first",
        )
    steps = nearest_on_axis(grid_time.astype(np.int64), obs["time"].astype(np.int64))
    offset = obs["time"] - grid_time[steps]
    matched = np.ones(rows.size, dtype=bool)
    if radius_km is not None:
        matched &= distance <= radius_km
    if time_window is not None:
        matched &= np.abs(offset) <= time_window.to_timedelta64()
    levels = None
    if axes.vertical:
        depth_axis = np.asarray(grid[axes.vertical].values, dtype=float)
        levels = nearest_on_axis(depth_axis, obs["vertical"])
        if depth_window is not None:
            matched &= np.abs(depth_axis[levels] - obs["vertical"]) <= depth_window

    window = _window(horizontal, obs, rows, cols, matched, radius_km, box)
    window = _with_times(window, obs["time"], grid_time, steps, time_window)
    if axes.vertical:
        window = _with_levels(window, obs["vertical"], depth_axis, levels, depth_window)
    nearest = {
        "point": np.arange(rows.size),
        "row": rows,
        "col": cols,
        "step": steps,
        "level": levels,
    }
    values = _read(grid, names, axes, nearest, window)

    added = _nearest_columns(grid, axes, horizontal, nearest, distance, offset, matched)
    for name in names:
        near, around = values[name]
        added[name] = np.where(matched, near, np.nan)
        added.update(
            _window_statistics(name, around, window["point"], rows.size, min_valid_fraction)
        )
    added["window_size"] = np.bincount(window["point"], minlength=rows.size)
    result = pd.concat([table.reset_index(drop=True), pd.DataFrame(added)], axis=1)
    result.index = table.index
    if dropna:
        result = result[matched]
    coordinates = [c for c in added if c.startswith("grid_")] + [
        "distance_km",
        "time_offset",
        "window_size",
    ]
    result.attrs[COLUMN_ATTRS] = json.dumps(_column_attrs(grid, axes, names))
    result.attrs[COORDINATE_COLUMNS] = json.dumps(coordinates)
    record_step(
        result,
        "eosc_pangeo.analysis.matchup",
        inputs=[grid, observations],
        parameters={
            "variables": names,
            "radius_km": radius_km,
            "box": box,
            "time_window": None if time_window is None else str(time_window),
            "depth_window": depth_window,
            "min_valid_fraction": min_valid_fraction,
            "dropna": dropna,
        },
    )
    return to_output(result)


# --- arguments -----------------------------------------------------------------------------


def _check_window(radius_km, box, min_valid_fraction) -> None:
    if radius_km is not None and not radius_km > 0:
        raise AnalysisError(
            "radius_km",
            f"must be positive, not {radius_km}",
            "give a distance in km, or None for the nearest cell at any distance",
        )
    if box is not None and (box < 1 or box % 2 == 0):
        raise AnalysisError(
            "box",
            f"must be an odd number of cells, not {box}",
            "e.g. box=5 for the 5 x 5 cells centred on the nearest one",
        )
    if not 0.0 <= min_valid_fraction <= 1.0:
        raise AnalysisError(
            "min_valid_fraction",
            f"must be within 0..1, not {min_valid_fraction}",
            "e.g. 0.5 for half of the window",
        )


def _grid_axes(grid: xr.Dataset, coords: Mapping[str, str] | None) -> _Axes:
    vertical = (coords or {}).get("vertical") or _coords.grid_coordinate(
        grid, "vertical", required=False
    )
    names = _coords.resolve(
        grid,
        {**(coords or {}), "vertical": vertical} if vertical else coords,
        vertical=vertical is not None,
    )
    lat, lon = grid[names["latitude"]], grid[names["longitude"]]
    if lat.ndim == 1 and lon.ndim == 1:
        row_dim, col_dim = lat.dims[0], lon.dims[0]
    elif lat.ndim == 2 and lon.dims == lat.dims:
        row_dim, col_dim = lat.dims
    else:
        raise AnalysisError(
            f"grid.{lat.name}",
            f"latitude {lat.dims} and longitude {lon.dims} "
            "are neither two 1-D axes nor one 2-D grid",
            "give 1-D lat/lon axes or 2-D coordinates on the same dimensions",
        )
    if grid[names["time"]].ndim != 1:
        raise AnalysisError(f"grid.{names['time']}", "must be a 1-D time axis")
    return _Axes(
        names["latitude"],
        names["longitude"],
        names["time"],
        names.get("vertical"),
        row_dim,
        col_dim,
    )


def _without_vertical(axes: _Axes) -> _Axes:
    return _Axes(axes.lat, axes.lon, axes.time, None, axes.row_dim, axes.col_dim)


def _matched_variables(grid: xr.Dataset, axes: _Axes, variables) -> list[str]:
    horizontal = {axes.row_dim, axes.col_dim}
    if variables is None:
        names = [str(n) for n, v in grid.data_vars.items() if horizontal <= set(v.dims)]
        if not names:
            raise AnalysisError(
                "grid",
                f"has no data variable on the dimensions {sorted(horizontal)}",
                "pass the variables to match",
            )
        return names
    names = list(variables)
    for name in names:
        if name not in grid.data_vars:
            raise AnalysisError(
                f"variables[{name!r}]",
                "is not a data variable of the grid",
                f"choose among {sorted(map(str, grid.data_vars))}",
            )
        if not horizontal <= set(grid[name].dims):
            raise AnalysisError(
                f"grid.{name}",
                f"is not on the horizontal grid {sorted(horizontal)} (dims {grid[name].dims})",
            )
    return names


def _observation_table(observations):
    """The observations as a DataFrame, and how to turn the result back into their type."""
    if isinstance(observations, pd.DataFrame):
        return observations, lambda frame: frame
    if isinstance(observations, xr.Dataset):
        if len(observations.dims) != 1:
            raise AnalysisError(
                "observations",
                f"a Dataset of observations must have one "
                f"dimension, not {dict(observations.sizes)}",
                "stack it first, e.g. ds.stack(obs=[...]).reset_index('obs')",
            )
        dim = next(iter(observations.dims))
        frame = observations.reset_coords().to_dataframe()

        def to_dataset(result: pd.DataFrame) -> xr.Dataset:
            attrs = dict(result.attrs)
            out = xr.Dataset.from_dataframe(result.rename_axis(dim))
            for name, column_attrs in json.loads(attrs.pop(COLUMN_ATTRS)).items():
                out[name].attrs.update(column_attrs)
            for name in observations.variables:
                out[name].attrs.update(observations[name].attrs)
            out = out.set_coords(json.loads(attrs.pop(COORDINATE_COLUMNS)))
            out.attrs = {**observations.attrs, **attrs}
            return out

        return frame, to_dataset
    raise AnalysisError(
        "observations",
        f"must be a pandas DataFrame or an xarray Dataset, not {type(observations).__name__}",
    )


def _observation_coordinates(table: pd.DataFrame, given, with_vertical: bool) -> dict:
    given = dict(given or {})
    wanted = ("latitude", "longitude", "time") + (("vertical",) if with_vertical else ())
    columns = {}
    for what in wanted:
        name = given.get(what) or _coords.table_column(table.columns, what)
        if name not in table.columns:
            raise AnalysisError(
                f"obs_coords[{what!r}]",
                f"{name!r} is not a column",
                f"choose among {list(table.columns)}",
            )
        columns[what] = name
    lat = table[columns["latitude"]].to_numpy(dtype=float, na_value=np.nan)
    if np.any(np.abs(lat) > 90):
        raise AnalysisError(
            f"observations.{columns['latitude']}",
            "has values beyond +-90",
            "are latitude and longitude swapped?",
        )
    out = {
        "lat": lat,
        "lon": table[columns["longitude"]].to_numpy(dtype=float, na_value=np.nan),
        "time": _coords.as_datetime64(
            table[columns["time"]].to_numpy(), f"observations.{columns['time']}"
        ),
    }
    if with_vertical:
        out["vertical"] = table[columns["vertical"]].to_numpy(dtype=float, na_value=np.nan)
    missing = np.isnan(out["lat"]) | np.isnan(out["lon"]) | np.isnat(out["time"])
    if missing.any():
        raise AnalysisError(
            "observations",
            f"{int(missing.sum())} observation(s) have no position or time",
            "drop them first (e.g. table.dropna(subset=...))",
        )
    return out


def _check_names(table: pd.DataFrame, names: list[str]) -> None:
    clash = sorted(
        {c for n in names for c in (n, *(f"{n}_{s}" for s in STATISTICS))}
        & set(map(str, table.columns))
    )
    if clash:
        raise AnalysisError(
            f"observations.{clash[0]}",
            "has the name of a match-up column",
            "rename the column or the grid variable first",
        )


# --- geometry ------------------------------------------------------------------------------


def _horizontal(grid: xr.Dataset, axes: _Axes) -> Grid:
    lat, lon = grid[axes.lat], grid[axes.lon]
    if lat.ndim == 1:
        return Regular(lat.values, lon.values)
    return Curvilinear(
        lat.transpose(axes.row_dim, axes.col_dim).values,
        lon.transpose(axes.row_dim, axes.col_dim).values,
    )


def _cell_lat_lon(horizontal: Grid, rows, cols):
    if isinstance(horizontal, Regular):
        return horizontal.lat[rows], horizontal.lon[cols]
    return horizontal.lat[rows, cols], horizontal.lon[rows, cols]


def _window(horizontal: Grid, obs, rows, cols, matched, radius_km, box) -> dict:
    """The window's horizontal cells: ``point``, ``row``, ``col`` arrays (matched points only)."""
    if box is not None:
        point, r, c = horizontal.box(rows, cols, box)
        if radius_km is not None:
            lat, lon = _cell_lat_lon(horizontal, r, c)
            near = great_circle_km(obs["lat"][point], obs["lon"][point], lat, lon) <= radius_km
            point, r, c = point[near], r[near], c[near]
    elif radius_km is not None:
        point, r, c = horizontal.within(obs["lat"], obs["lon"], radius_km)
    else:
        point, r, c = np.arange(rows.size), rows, cols
    keep = matched[point]
    return {"point": point[keep], "row": r[keep], "col": c[keep]}


def _with_times(window: dict, obs_time, grid_time, steps, time_window) -> dict:
    if time_window is None:
        start = steps
        stop = steps + 1
    else:
        ns = grid_time.astype(np.int64)
        t = obs_time.astype(np.int64)
        start = np.searchsorted(ns, t - time_window.value, side="left")
        stop = np.searchsorted(ns, t + time_window.value, side="right")
    pair, step = expand_ranges(start[window["point"]], stop[window["point"]])
    return {k: v[pair] for k, v in window.items()} | {"step": step}


def _with_levels(window: dict, obs_vertical, depth_axis, levels, depth_window) -> dict:
    if depth_window is None:
        pair, level = np.arange(window["point"].size), levels[window["point"]]
    else:
        order = np.argsort(depth_axis, kind="stable")
        point = window["point"]
        pair, ranked = ranges_on_axis(
            depth_axis[order],
            obs_vertical[point] - depth_window,
            obs_vertical[point] + depth_window,
        )
        level = order[ranked]
    return {k: v[pair] for k, v in window.items()} | {"level": level}


# --- reading -------------------------------------------------------------------------------


def _read(grid: xr.Dataset, names: list[str], axes: _Axes, nearest: dict, window: dict) -> dict:
    """``{name: (nearest values, window values)}``, all read in one vectorised indexing per
    variable (dask reads each chunk that holds a requested cell once)."""
    n_nearest = nearest["point"].size
    points = {
        key: np.concatenate([nearest[key], window[key]])
        for key in ("row", "col", "step", "level")
        if nearest.get(key) is not None
    }
    dims = {"row": axes.row_dim, "col": axes.col_dim, "step": grid[axes.time].dims[0]}
    if axes.vertical:
        dims["level"] = grid[axes.vertical].dims[0]
    lazy = {}
    for name in names:
        variable = grid[name]
        extra = set(variable.dims) - set(dims.values())
        if extra:
            raise AnalysisError(
                f"grid.{name}",
                f"has dimensions {sorted(extra)} that are not space, time or depth",
                f"select one value of them first, e.g. grid.isel({sorted(extra)[0]}=0)",
            )
        indexers = {
            dim: xr.Variable("_point", points[key])
            for key, dim in dims.items()
            if dim in variable.dims
        }
        picked = variable.variable.isel(indexers) if indexers else variable.variable
        lazy[name] = picked.data
    import dask

    computed = dict(zip(lazy, dask.compute(*lazy.values()), strict=True))
    return {
        name: (np.asarray(v[:n_nearest], dtype=float), np.asarray(v[n_nearest:], dtype=float))
        for name, v in computed.items()
    }


def _nearest_columns(grid, axes, horizontal, nearest, distance, offset, matched) -> dict:
    lat, lon = _cell_lat_lon(horizontal, nearest["row"], nearest["col"])
    times = grid[axes.time].values[nearest["step"]]
    columns = {
        f"grid_{axes.lat}": np.where(matched, lat, np.nan),
        f"grid_{axes.lon}": np.where(matched, lon, np.nan),
        f"grid_{axes.time}": pd.Series(times).where(matched).to_numpy(),
    }
    if axes.vertical:
        depth = np.asarray(grid[axes.vertical].values, dtype=float)[nearest["level"]]
        columns[f"grid_{axes.vertical}"] = np.where(matched, depth, np.nan)
    columns["distance_km"] = np.where(matched, distance, np.nan)
    columns["time_offset"] = pd.to_timedelta(np.where(matched, offset, np.timedelta64("NaT")))
    return columns


def _column_attrs(grid: xr.Dataset, axes: _Axes, names: list[str]) -> dict[str, dict]:
    """CF attributes of the columns matchup adds."""
    attrs = {
        f"grid_{axes.lat}": {
            "standard_name": "latitude",
            "units": "degrees_north",
            "long_name": "latitude of the nearest grid cell",
        },
        f"grid_{axes.lon}": {
            "standard_name": "longitude",
            "units": "degrees_east",
            "long_name": "longitude of the nearest grid cell",
        },
        f"grid_{axes.time}": {
            "standard_name": "time",
            "long_name": "time of the nearest grid step",
        },
        "distance_km": {
            "units": "km",
            "long_name": "great-circle distance from the "
            "observation to the centre of the nearest grid cell",
        },
        "time_offset": {"long_name": "observation time minus the time of the nearest grid step"},
        "window_size": {"units": "1", "long_name": "grid cells in the match-up window"},
    }
    if axes.vertical:
        kept = {
            k: v
            for k, v in grid[axes.vertical].attrs.items()
            if k in ("standard_name", "units", "positive")
        }
        attrs[f"grid_{axes.vertical}"] = kept | {"long_name": "level of the nearest grid cell"}
    for name in names:
        source = grid[name].attrs
        label = source.get("long_name", name)
        kept = {k: source[k] for k in ("standard_name", "units") if k in source}
        attrs[name] = kept | {"long_name": f"{label} at the nearest grid cell"}
        for stat, method in (("mean", "mean"), ("std", "standard_deviation"), ("median", "median")):
            attrs[f"{name}_{stat}"] = kept | {
                "long_name": f"{method.replace('_', ' ')} of {label} over the match-up window",
                "cell_methods": f"area: time: {method}",
            }
        attrs[f"{name}_count"] = {
            "units": "1",
            "long_name": f"valid cells of {label} in the match-up window",
        }
        if "standard_name" in source:
            # CF allows one modifier: a count of "X standard_error" values counts X's cells.
            base = source["standard_name"].split()[0]
            attrs[f"{name}_count"]["standard_name"] = f"{base} number_of_observations"
    return attrs


def _window_statistics(
    name: str, values: np.ndarray, point: np.ndarray, n_points: int, min_valid_fraction: float
) -> dict:
    valid = ~np.isnan(values)
    size = np.bincount(point, minlength=n_points)
    count = np.bincount(point[valid], minlength=n_points)
    if size.max(initial=0) <= 1:  # windows of one cell (the nearest only): no grouping needed
        value = np.full(n_points, np.nan)
        value[point] = values
        stats = {"mean": value, "std": np.full(n_points, np.nan), "median": value}
    else:
        grouped = pd.Series(values[valid]).groupby(point[valid])
        stats = {
            s: grouped.agg(s).reindex(range(n_points)).to_numpy() for s in ("mean", "std", "median")
        }
    enough = (count > 0) & (count >= min_valid_fraction * size)
    return {f"{name}_count": count} | {
        f"{name}_{s}": np.where(enough, v, np.nan) for s, v in stats.items()
    }
