"""Science on xarray and pandas objects: match-ups, harmonised time series, exported results.

Plain functions that take and return xarray Datasets/DataArrays or pandas DataFrames and stay
lazy on dask-backed data; none reads or writes anything but :func:`export`. Each records
itself in its result's ``attrs`` so that :func:`export` can write where a result came from.
"""

from .errors import AnalysisError, UnitsError
from .export import crate_path, export
from .harmonise import (
    anomalies,
    cell_area,
    climatology,
    convert_units,
    harmonise,
    resample,
    spatial_mean,
    to_calendar,
    trend,
)
from .matchup import matchup

__all__ = [
    "AnalysisError",
    "UnitsError",
    "anomalies",
    "cell_area",
    "climatology",
    "convert_units",
    "crate_path",
    "export",
    "harmonise",
    "matchup",
    "resample",
    "spatial_mean",
    "to_calendar",
    "trend",
]
