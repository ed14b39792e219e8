"""Time series of different sources on one time axis: units, calendars, frequency and gaps;
climatologies, anomalies, trends and area-weighted means.

Every function takes and returns xarray objects and stays lazy on dask-backed ones; units come
from the CF ``units`` attribute and are converted with cf-units (UDUNITS-2), calendars with
xarray's cftime support.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from . import _coords
from ._provenance import record_step
from ._sphere import EARTH_RADIUS_KM
from .errors import AnalysisError, UnitsError

Period = Literal["month", "season", "dayofyear"]


def convert_units(obj: xr.DataArray, units: str) -> xr.DataArray:
    """Convert a variable to ``units`` (UDUNITS syntax: ``degC``, ``K``, ``m s-1``...).

    Parameters
    ----------
    obj
        A variable with a CF ``units`` attribute.
    units
        The units wanted.

    Returns
    -------
    xarray.DataArray
        The converted values (lazy if ``obj`` is), with ``units`` set.

    Raises
    ------
    UnitsError
        ``obj`` has no units, or units that cannot become ``units``.
    """
    import cf_units

    name = obj.name or "variable"
    if "units" not in obj.attrs:
        raise UnitsError(
            f"{name}.units", "is missing", f"set it first, e.g. obj.attrs['units'] = '{units}'"
        )
    try:
        source, target = cf_units.Unit(obj.attrs["units"]), cf_units.Unit(units)
    except ValueError as error:
        raise UnitsError(
            f"{name}.units", str(error), "use UDUNITS syntax, e.g. degC, K, m s-1"
        ) from None
    if not source.is_convertible(target):
        raise UnitsError(
            f"{name}.units",
            f"{source} cannot be converted to {target}",
            "compare variables of the same physical quantity",
        )
    # UDUNITS conversions between physical units are affine: y = scale * x + offset. Applying
    # them as arithmetic keeps dask arrays lazy.
    offset = float(source.convert(0.0, target))
    scale = float(source.convert(1.0, target)) - offset
    converted = obj * scale + offset if (scale, offset) != (1.0, 0.0) else obj.copy()
    converted.attrs = {**obj.attrs, "units": units}
    converted.name = obj.name
    return converted


def to_calendar(
    obj: xr.DataArray | xr.Dataset, calendar: str = "standard", *, dim: str | None = None
):
    """Put ``obj`` on another calendar (``standard``, ``noleap``, ``360_day``...).

    Dates are kept as they are (``align_on="date"``) except to or from ``360_day``, where
    days are spread over the year (``align_on="year"``); days that do not exist in the target
    calendar (29 February into ``noleap``) are dropped. Wraps :meth:`xarray.Dataset.
    convert_calendar`.
    """
    dim = dim or _time_name(obj)
    source = obj[dim].dt.calendar
    align = "year" if "360_day" in (source, calendar) else "date"
    return obj.convert_calendar(
        calendar,
        dim=dim,
        align_on=align,
        use_cftime=calendar not in ("standard", "gregorian", "proleptic_gregorian"),
    )


def resample(
    obj: xr.DataArray | xr.Dataset,
    freq: str,
    *,
    how: str = "mean",
    min_coverage: float = 0.0,
    dim: str | None = None,
):
    """Aggregate onto a regular time axis of frequency ``freq``, with an explicit rule for gaps.

    Parameters
    ----------
    obj
        A time series (or a cube with a time dimension).
    freq
        A pandas offset alias: ``"1D"``, ``"MS"`` (month start), ``"QS-DEC"``, ``"YS"``...
    how
        The aggregation: ``mean``, ``sum``, ``min``, ``max``, ``median``...
    min_coverage
        The fraction of the period that must hold values: a period's result is NaN where fewer
        valid samples than ``min_coverage`` times the number the native sampling would put in
        it were found. The native sampling is the series' inferred frequency (or its median
        step where gaps hide it).
    dim
        The time dimension (default: found by CF attributes or name).

    Returns
    -------
    Same type as ``obj``
        One value per period, labelled by the period's start.
    """
    if not 0.0 <= min_coverage <= 1.0:
        raise AnalysisError("min_coverage", f"must be within 0..1, not {min_coverage}")
    dim = dim or _time_name(obj)
    resampler = obj.resample({dim: freq})
    if not hasattr(resampler, how):
        raise AnalysisError(
            "how",
            f"{how!r} is not an aggregation of xarray's resample",
            "use mean, sum, min, max, median, std...",
        )
    result = getattr(resampler, how)()
    if min_coverage > 0:
        valid = obj.notnull().resample({dim: freq}).sum()
        expected = _expected_samples(obj[dim], freq, result[dim])
        result = result.where(valid >= min_coverage * expected)
    record_step(
        result,
        "eosc_pangeo.analysis.resample",
        inputs=[obj],
        parameters={"freq": freq, "how": how, "min_coverage": min_coverage},
    )
    return result


def _expected_samples(time: xr.DataArray, freq: str, labels: xr.DataArray) -> xr.DataArray:
    """Samples per period of a complete series with the native sampling of ``time``."""
    native = xr.infer_freq(time) if time.size >= 3 else None
    if native is None:  # gaps hide the frequency: the median step is the native one
        step = pd.Timedelta(np.median(np.diff(_coords.as_datetime64(time.values, time.name))))
        native = pd.tseries.frequencies.to_offset(step).freqstr
    use_cftime = time.values.dtype.kind == "O"
    offset = (
        xr.coding.cftime_offsets.to_offset(freq)
        if use_cftime
        else pd.tseries.frequencies.to_offset(freq)
    )
    first, last = (
        labels.values[i] if use_cftime else pd.Timestamp(labels.values[i]) for i in (0, -1)
    )
    full = xr.date_range(
        first,
        last + offset,
        freq=native,
        calendar=time.dt.calendar,
        use_cftime=use_cftime,
        inclusive="left",
    )
    ones = xr.DataArray(np.ones(len(full)), coords={time.name: full}, dims=time.name)
    return ones.resample({time.name: freq}).sum().reindex({time.name: labels}, fill_value=0)


def climatology(
    obj: xr.DataArray | xr.Dataset, period: Period = "month", *, dim: str | None = None
):
    """The mean seasonal cycle: the mean of every calendar month (``season``, ``dayofyear``).

    Returns
    -------
    Same type as ``obj``
        Indexed by ``month`` (1..12), ``season`` or ``dayofyear`` instead of time.
    """
    dim = dim or _time_name(obj)
    result = obj.groupby(f"{dim}.{period}").mean(dim)
    record_step(
        result, "eosc_pangeo.analysis.climatology", inputs=[obj], parameters={"period": period}
    )
    return result


def anomalies(
    obj: xr.DataArray | xr.Dataset,
    reference: xr.DataArray | xr.Dataset | None = None,
    period: Period = "month",
    *,
    dim: str | None = None,
):
    """Departures from a climatology (by default ``obj``'s own, see :func:`climatology`).

    Parameters
    ----------
    reference
        A climatology indexed by ``period``, e.g. of a reference period:
        ``climatology(obj.sel(time=slice("1991", "2020")))``.
    """
    dim = dim or _time_name(obj)
    reference = climatology(obj, period, dim=dim) if reference is None else reference
    result = obj.groupby(f"{dim}.{period}") - reference
    result = result.drop_vars(period, errors="ignore")
    result.attrs = dict(obj.attrs)
    record_step(
        result,
        "eosc_pangeo.analysis.anomalies",
        inputs=[obj, reference],
        parameters={"period": period},
    )
    return result


def trend(obj: xr.DataArray, per: str = "365.25D", *, dim: str | None = None) -> xr.DataArray:
    """The least-squares linear trend along time, in units of ``obj`` per ``per``
    (default: per year of 365.25 days)."""
    dim = dim or _time_name(obj)
    seconds = _seconds_since_start(obj[dim])
    fit = obj.assign_coords({dim: seconds}).polyfit(dim, deg=1)
    slope = fit["polyfit_coefficients"].sel(degree=1, drop=True)
    result = slope * pd.Timedelta(per).total_seconds()
    result.name = f"{obj.name}_trend" if obj.name else "trend"
    if "units" in obj.attrs:
        result.attrs["units"] = f"{obj.attrs['units']} / ({per})"
    return result


def _seconds_since_start(time: xr.DataArray) -> xr.DataArray:
    values = time.values
    if values.dtype.kind == "M":
        seconds = (values - values[0]) / np.timedelta64(1, "s")
    else:  # cftime: differences are datetime.timedelta in any calendar
        seconds = np.array([(t - values[0]).total_seconds() for t in values])
    return xr.DataArray(seconds.astype(float), dims=time.dims)


def cell_area(ds: xr.Dataset | xr.DataArray) -> xr.DataArray:
    """Area of every grid cell in m2.

    Taken from the variable named by ``cell_measures: area: ...`` when the Dataset has it,
    else computed on the sphere from the latitude and longitude bounds (derived from the
    cell centres when the grid has none). Curvilinear grids without bounds get areas
    proportional to ``cos(latitude)``, enough as weights but marked ``units: 1``.
    """
    if isinstance(ds, xr.Dataset):
        try:
            return ds.cf["area"]
        except KeyError:
            pass
    dataset = ds if isinstance(ds, xr.Dataset) else ds.to_dataset(name=ds.name or "value")
    lat_name = _coords.grid_coordinate(dataset, "latitude")
    lon_name = _coords.grid_coordinate(dataset, "longitude")
    lat, lon = dataset[lat_name], dataset[lon_name]
    if lat.ndim == 2:
        return (np.cos(np.radians(lat)) * xr.ones_like(lon)).assign_attrs(
            units="1", long_name="relative cell area (cos latitude)"
        )
    lat_b, lon_b = (_bounds(dataset, name) for name in (lat_name, lon_name))
    sin = np.sin(np.radians(lat_b))
    dlat = np.abs(sin.isel(bounds=1) - sin.isel(bounds=0))
    dlon = np.radians(np.abs(lon_b.isel(bounds=1) - lon_b.isel(bounds=0)))
    area = (EARTH_RADIUS_KM * 1000.0) ** 2 * dlat * dlon
    return area.assign_attrs(units="m2", standard_name="cell_area")


def _bounds(ds: xr.Dataset, name: str) -> xr.DataArray:
    if ds[name].attrs.get("bounds") in ds.variables:
        bounds = ds[ds[name].attrs["bounds"]]
    else:  # none, or not carried along (a DataArray keeps only its coordinates)
        coordinate = ds[name].variable.to_base_variable()
        coordinate.attrs.pop("bounds", None)
        bounds = (
            xr.Dataset(coords={name: coordinate})
            .cf.add_bounds(name, output_dim="bounds")
            .cf.get_bounds(name)
        )
    bounds_dim = next(d for d in bounds.dims if d not in ds[name].dims)
    bounds = bounds.rename({bounds_dim: "bounds"})
    if name in ("lat", "latitude") or ds[name].attrs.get("standard_name") == "latitude":
        bounds = bounds.clip(-90, 90)
    return bounds.reset_coords(drop=True)


def spatial_mean(obj: xr.DataArray | xr.Dataset, area: xr.DataArray | None = None):
    """The area-weighted mean over the horizontal grid (missing cells are left out and the
    weights of the others renormalised).

    Parameters
    ----------
    area
        Cell areas (default: :func:`cell_area` of ``obj``).
    """
    area = cell_area(obj) if area is None else area
    dims = [d for d in area.dims if d in obj.dims]
    result = obj.weighted(area.fillna(0)).mean(dims)
    result.attrs = dict(obj.attrs)
    record_step(
        result, "eosc_pangeo.analysis.spatial_mean", inputs=[obj], parameters={"dims": dims}
    )
    return result


def harmonise(
    sources: Mapping[str, xr.DataArray | pd.Series],
    freq: str,
    *,
    units: str | None = None,
    calendar: str = "standard",
    how: str = "mean",
    min_coverage: float = 0.0,
) -> xr.Dataset:
    """Put time series of different sources on one time axis, frequency, calendar and units.

    Parameters
    ----------
    sources
        Name -> series: DataArrays with a time dimension and ``units`` attributes, or pandas
        Series indexed by time (``Series.attrs["units"]``).
    freq
        The common frequency (pandas offset alias: ``"1D"``, ``"MS"``...).
    units
        The common units (default: those of the first source).
    calendar
        The common calendar.
    how, min_coverage
        How each period is aggregated and how much of it must hold values (see
        :func:`resample`).

    Returns
    -------
    xarray.Dataset
        One variable per source on the union of the periods (NaN where a source has none).

    Raises
    ------
    UnitsError
        A source has no units or units of another quantity.
    """
    series = {name: _as_series(name, s) for name, s in sources.items()}
    if not series:
        raise AnalysisError("sources", "is empty", "give at least one named series")
    units = units or next(iter(series.values())).attrs.get("units")
    aligned = {}
    for name, da in series.items():
        if units is not None:
            da = convert_units(da, units)
        if da[_time_name(da)].dt.calendar != calendar:
            da = to_calendar(da, calendar)
        aligned[name] = resample(da, freq, how=how, min_coverage=min_coverage)
    result = xr.Dataset(
        {
            name: da.rename({_time_name(da): "time"}).reset_coords(drop=True)
            for name, da in aligned.items()
        },
        attrs={},
    )
    record_step(
        result,
        "eosc_pangeo.analysis.harmonise",
        inputs=list(aligned.values()),
        parameters={
            "freq": freq,
            "units": units,
            "calendar": calendar,
            "how": how,
            "min_coverage": min_coverage,
            "sources": list(series),
        },
    )
    return result


def _as_series(name: str, series) -> xr.DataArray:
    if isinstance(series, pd.Series):
        index = series.index
        if isinstance(index, pd.DatetimeIndex) and index.tz is not None:
            index = index.tz_convert(None)
        da = xr.DataArray(
            series.to_numpy(dtype=float),
            coords={"time": index.values},
            dims="time",
            name=name,
            attrs=dict(series.attrs),
        )
    elif isinstance(series, xr.DataArray):
        da = series.rename(name)
    else:
        raise AnalysisError(
            f"sources[{name!r}]",
            f"must be a DataArray or a pandas Series, not {type(series).__name__}",
        )
    time = _time_name(da)
    if da[time].ndim != 1 or da.ndim != 1:
        raise AnalysisError(
            f"sources[{name!r}]",
            f"must be a 1-D time series, not dims {da.dims}",
            "reduce it first, e.g. with spatial_mean or .sel()",
        )
    return da.sortby(time)


def _time_name(obj) -> str:
    dataset = obj if isinstance(obj, xr.Dataset) else obj.to_dataset(name=obj.name or "value")
    return _coords.grid_coordinate(dataset, "time")
