"""Finding the latitude, longitude, time and vertical coordinates of grids and observation tables.

Grids are asked through cf-xarray first (``standard_name``, ``axis``, ``units``), then by the
names data centres use; tables (which carry no attributes) by their column names only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import xarray as xr

from .errors import AnalysisError

# Names seen in the wild, lower-cased; the first match wins.
COMMON_NAMES = {
    "latitude": ("lat", "latitude", "nav_lat", "lat_rho", "y_latitude", "yh", "rlat"),
    "longitude": ("lon", "longitude", "nav_lon", "lon_rho", "long", "x_longitude", "xh"),
    "time": ("time", "t", "juld", "date", "datetime", "time_counter"),
    "vertical": ("depth", "deptht", "lev", "level", "z", "pres", "pressure", "plev"),
}
_CF_KEYS = {
    "latitude": ("latitude", "Y"),
    "longitude": ("longitude", "X"),
    "time": ("time", "T"),
    "vertical": ("vertical", "Z"),
}


def grid_coordinate(ds: xr.Dataset, what: str, *, required: bool = True) -> str | None:
    """The name of the ``what`` coordinate of a grid (``latitude``, ``longitude``, ``time``,
    ``vertical``), found by CF attributes, then by common names."""
    for key in _CF_KEYS[what]:
        try:
            name = ds.cf[key].name
        except (KeyError, ValueError):
            continue
        if name in ds.variables:
            return name
    found = _by_name(ds.variables, what)
    if found is None and required:
        raise AnalysisError(
            f"grid.{what}",
            "no such coordinate, by CF attributes "
            f"(standard_name, axis) or by name ({', '.join(COMMON_NAMES[what])})",
            f"give it with coords={{'{what}': NAME}} or set its standard_name",
        )
    return found


def table_column(columns: Iterable[str], what: str, *, required: bool = True) -> str | None:
    """The name of the ``what`` column of an observation table, by common names."""
    found = _by_name(columns, what)
    if found is None and required:
        raise AnalysisError(
            f"observations.{what}",
            f"no such column (looked for {', '.join(COMMON_NAMES[what])})",
            f"give it with obs_coords={{'{what}': COLUMN}}",
        )
    return found


def _by_name(names: Iterable[str], what: str) -> str | None:
    lowered = {str(n).lower(): n for n in names}
    return next((lowered[c] for c in COMMON_NAMES[what] if c in lowered), None)


def resolve(ds: xr.Dataset, given: Mapping[str, str] | None, vertical: bool) -> dict[str, str]:
    """Names of the grid's latitude, longitude, time (and vertical) coordinates."""
    given = dict(given or {})
    wanted = ("latitude", "longitude", "time") + (("vertical",) if vertical else ())
    names = {}
    for what in wanted:
        name = given.get(what) or grid_coordinate(ds, what)
        if name not in ds.variables:
            raise AnalysisError(
                f"coords[{what!r}]",
                f"{name!r} is not a variable of the grid",
                f"choose among {sorted(map(str, ds.variables))}",
            )
        names[what] = name
    return names


def as_datetime64(values, field: str) -> np.ndarray:
    """Times as ``datetime64[ns]`` (UTC, naive), from datetime64, pandas (tz-aware or not) or
    cftime values; a calendar whose dates do not all exist in the standard one is refused."""
    values = np.asarray(values)
    if values.dtype.kind == "M":
        return values.astype("datetime64[ns]")
    if values.dtype.kind == "O" and values.size and hasattr(values.flat[0], "calendar"):
        try:
            return (
                xr.CFTimeIndex(values.ravel())
                .to_datetimeindex(unsafe=True, time_unit="ns")
                .values.reshape(values.shape)
            )
        except ValueError as error:
            raise AnalysisError(
                field,
                f"times of calendar {values.flat[0].calendar!r} do not "
                f"all exist in the standard calendar ({error})",
                "convert it first with analysis.convert_calendar(obj, 'standard', align_on='date')",
            ) from None
    try:
        index = pd.DatetimeIndex(pd.to_datetime(values.ravel(), utc=True))
    except (TypeError, ValueError) as error:
        raise AnalysisError(
            field,
            f"cannot be read as times ({error})",
            "give datetimes, ISO 8601 strings or cftime dates",
        ) from None
    return index.tz_convert(None).values.astype("datetime64[ns]").reshape(values.shape)
