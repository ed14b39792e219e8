"""Harmonisation: units, calendars, frequencies with gaps, climatologies, trends, area means."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from eosc_pangeo.analysis import (
    UnitsError,
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
from eosc_pangeo.analysis._sphere import EARTH_RADIUS_KM

YEARS = 20
TREND_PER_YEAR = 0.3
AMPLITUDE = 1.5


def monthly_series(calendar: str = "standard") -> xr.DataArray:
    """2 + 0.3 K/year + 1.5 K sin(seasons), monthly from 2000, in K."""
    time = xr.date_range(
        "2000-01-01",
        periods=12 * YEARS,
        freq="MS",
        calendar=calendar,
        use_cftime=calendar != "standard",
    )
    months = np.arange(12 * YEARS)
    values = 272 + TREND_PER_YEAR * months / 12 + AMPLITUDE * np.sin(2 * np.pi * months / 12)
    return xr.DataArray(
        values,
        coords={"time": time},
        dims="time",
        name="tas",
        attrs={"units": "K", "standard_name": "air_temperature"},
    )


def test_the_climatology_is_the_seasonal_cycle_plus_the_mean_level():
    clim = climatology(monthly_series())
    month = np.arange(12)
    mean_year = (YEARS - 1) / 2
    expected = (
        272 + TREND_PER_YEAR * (mean_year + month / 12) + AMPLITUDE * np.sin(2 * np.pi * month / 12)
    )
    np.testing.assert_allclose(clim.values, expected)
    assert list(clim["month"].values) == list(range(1, 13))


def test_the_trend_of_the_anomalies_is_the_series_trend():
    series = monthly_series()
    assert float(trend(anomalies(series), per="365.25D")) == pytest.approx(TREND_PER_YEAR, rel=0.01)
    assert np.abs(anomalies(series).groupby("time.month").mean().values).max() < 1e-9


def test_kelvin_becomes_celsius_lazily():
    series = monthly_series().chunk({"time": 12})
    celsius = convert_units(series, "degC")
    assert celsius.chunks is not None
    np.testing.assert_allclose(celsius.values, series.values - 273.15)
    assert celsius.attrs["units"] == "degC"


def test_incompatible_units_are_refused_with_the_variable_named():
    wind = monthly_series().rename("wind").assign_attrs(units="m s-1")
    with pytest.raises(UnitsError, match=r"wind.units: m s-1 cannot be converted to K"):
        convert_units(wind, "K")
    with pytest.raises(UnitsError, match=r"wind.units: .*cannot be converted"):
        harmonise({"tas": monthly_series(), "wind": wind}, "YS")


def test_a_noleap_series_and_a_standard_one_share_one_axis_after_harmonisation():
    model = monthly_series("noleap")
    observed = convert_units(monthly_series(), "degC")
    both = harmonise({"model": model, "observed": observed}, "YS", units="degC")
    assert both.sizes["time"] == YEARS
    assert both["time"].dtype.kind == "M"
    np.testing.assert_allclose(both["model"], both["observed"])
    assert both["model"].attrs["units"] == "degC"


def test_calendar_conversion_to_360_day_keeps_every_month():
    converted = to_calendar(monthly_series(), "360_day")
    assert converted["time"].dt.calendar == "360_day"
    assert converted.sizes["time"] == 12 * YEARS


def test_days_below_the_minimum_coverage_are_missing_after_resampling():
    hours = pd.date_range("2020-01-01", periods=24 * 5, freq="h")
    series = xr.DataArray(
        np.arange(hours.size, dtype=float),
        coords={"time": hours},
        dims="time",
        attrs={"units": "degC"},
    )
    gappy = series.where((hours < "2020-01-03T02:00") | (hours >= "2020-01-03T22:00"))
    gappy = gappy.dropna("time").isel(time=slice(0, -3))  # a gap of 20 h, and 3 h cut at the end
    daily = resample(gappy, "1D", min_coverage=0.75)
    assert daily.sizes["time"] == 5
    assert np.isnan(daily.values[2])  # 4 hours of 24
    assert not np.isnan(daily.values[4])  # 21 hours of 24
    assert daily.values[0] == pytest.approx(11.5)
    assert np.isnan(resample(gappy, "1D", min_coverage=0.9).values[4])


def global_grid(resolution: float = 1.0) -> xr.Dataset:
    lat = -90 + resolution * (np.arange(round(180 / resolution)) + 0.5)
    lon = -180 + resolution * (np.arange(round(360 / resolution)) + 0.5)
    return xr.Dataset(
        coords={
            "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"}),
        }
    )


def test_cell_areas_add_up_to_the_sphere():
    area = cell_area(global_grid())
    assert float(area.sum()) == pytest.approx(4 * np.pi * (EARTH_RADIUS_KM * 1000) ** 2)


def test_the_area_weighted_mean_of_a_band_is_its_share_of_the_sphere():
    grid = global_grid()
    band = ((grid.lat > 0) & (grid.lat < 30)).astype(float) * xr.ones_like(grid.lon)
    # the band 0..30N is (sin 30 - sin 0) / 2 = 1/4 of the sphere, not 30/180 of the cells
    assert float(spatial_mean(band)) == pytest.approx(0.25)
    assert float(band.mean()) == pytest.approx(30 / 180)


def test_the_area_weighted_mean_leaves_out_missing_cells():
    grid = global_grid()
    field = xr.ones_like(grid.lat) * xr.ones_like(grid.lon) * 3.0
    field = field.where(grid.lon > 0)
    assert float(spatial_mean(field)) == pytest.approx(3.0)
