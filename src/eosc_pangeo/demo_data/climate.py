"""CMIP6-style monthly near-surface air temperature, one file per decade (``climate/``)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np

from ._common import (
    _CLIMATE_FILE,
    _CLIMATE_MODES,
    _LICENSE,
    Progress,
    _atomic,
    _axis,
    _kind_dir,
    _land_height,
    _modes,
    _synthesize,
    _turning,
    _write_files,
)


@dataclass(frozen=True)
class ClimateSpec:
    """What :func:`write_climate` writes: monthly means on a global grid, one file per decade.

    Parameters
    ----------
    start_year, end_year
        January of ``start_year`` to December of ``end_year``, both included.
    resolution
        Grid spacing in degrees; must divide 180.
    """

    start_year: int = 2000
    end_year: int = 2019
    resolution: float = 5.0


_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_MONTH_START = np.concatenate([[0], np.cumsum(_MONTH_DAYS)[:-1]])


def _decades(spec: ClimateSpec) -> list[tuple[int, int]]:
    """(first, last) year of each file: natural decades, cut at the spec's ends."""
    if spec.end_year < spec.start_year:
        raise ValueError(f"end_year {spec.end_year} is before start_year {spec.start_year}")
    firsts = range(spec.start_year - spec.start_year % 10, spec.end_year + 1, 10)
    return [(max(y, spec.start_year), min(y + 9, spec.end_year)) for y in firsts]


def _noleap_months(first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """Mid-month times and (start, end) bounds, days since 1850-01-01 in the noleap calendar."""
    years = np.repeat(np.arange(first, last + 1), 12)
    start = (years - 1850) * 365.0 + np.tile(_MONTH_START, last - first + 1)
    end = start + np.tile(_MONTH_DAYS, last - first + 1)
    return (start + end) / 2, np.stack([start, end], axis=-1)


class _ClimateModel:
    """Monthly near-surface air temperature of one seed on one global grid."""

    def __init__(self, seed: int, resolution: float) -> None:
        self.seed = seed
        self.lat = _axis(resolution, -90, 90)
        self.lon = _axis(resolution, 0, 360)  # CMIP grids run east from Greenwich
        height = _land_height(self.lat[:, None], self.lon[None, :])
        # 0 at sea and on coasts, 1 some ten degrees inland: how continental the climate is.
        self.continental = np.clip(height / 10, 0, 1)
        rng = np.random.default_rng([seed, _CLIMATE_MODES, 0])
        self.interannual = _modes(kmax=16, cutoff=30, std=0.5)
        self.phase, self.frequency = _turning(rng, self.interannual, 3 * 365, 0.0)
        # Regional anomalies mostly cancel in the global mean; these few slow oscillations of
        # the whole globe give it the ~0.1 K year-to-year wobble that ENSO gives the real one.
        self.global_periods = rng.uniform(2, 7, 4) * 365
        self.global_phases = rng.uniform(0, 2 * np.pi, 4)
        self.weather = _modes(kmax=40, cutoff=12, std=1.0)

    def tas(self, first_year: int, t: np.ndarray) -> np.ndarray:
        """Kelvin at mid-month times ``t`` (days since 1850-01-01, noleap), (time, lat, lon)."""
        phi = np.radians(self.lat)[:, None]
        c = self.continental
        sin_abs = np.abs(np.sin(phi))
        years = 1850 + t[:, None, None] / 365
        doy = (t % 365)[:, None, None]
        base = 247 + 53 * np.cos(phi) ** 1.3 - 4 * c * sin_abs**2
        # Antarctica's plateau is high and cold.
        base = base - 15 * c * np.clip((-self.lat[:, None] - 60) / 10, 0, 1)
        # Land responds to the seasons faster and more strongly than the sea.
        amplitude = (1 + 8 * sin_abs**1.5) * (1 + 1.2 * c) * np.sign(phi)
        season = amplitude * np.cos(2 * np.pi * (doy - 197 - 25 * (1 - c)) / 365)
        # About 1 K per century, amplified towards the poles and over land.
        trend = 0.007 * (years - 1850) * (1 + 1.2 * sin_abs**2) * (1 + 0.4 * c)
        wobble = 0.07 * np.cos(
            2 * np.pi * t[:, None] / self.global_periods + self.global_phases
        ).sum(axis=-1)
        slow = wobble[:, None, None] + _synthesize(
            self.interannual,
            self.interannual.amplitude * np.exp(1j * (self.phase + self.frequency * t[:, None])),
            self.lat,
            self.lon,
        )
        # Monthly means of weather are nearly independent from month to month.
        rng = np.random.default_rng([self.seed, _CLIMATE_FILE, first_year])
        noise = rng.standard_normal((2, t.size, self.weather.kx.size))
        weather = _synthesize(
            self.weather,
            self.weather.amplitude * (noise[0] + 1j * noise[1]) / np.sqrt(2),
            self.lat,
            self.lon,
        )
        # Weather is livelier at high latitudes and over land.
        weather *= (0.4 + 1.6 * sin_abs**2) * (1 + 0.5 * c)
        return base + season + trend + slow + weather


def write_climate(
    spec: ClimateSpec,
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    progress: Progress | None = None,
    workers: int | None = 1,
) -> list[Path]:
    """Write CMIP6-style monthly ``tas`` files, one per decade, to ``climate/``.

    Parameters
    ----------
    spec
        Years and grid.
    out_dir
        Root folder; files go to its ``climate`` sub-folder.
    seed
        Seed of the interannual variability and the monthly weather.
    progress
        Optional ``progress("climate", done, total)``.
    workers
        Processes writing files at once; ``None`` chooses as :func:`write_demo_data` does.

    Returns
    -------
    list of Path
        The files written, sorted.
    """
    folder = _kind_dir(out_dir, "climate")
    paths = [
        folder / f"tas_Amon_EOSC-ESM_historical_r1i1p1f1_gn_{first}01-{last}12.nc"
        for first, last in _decades(spec)
    ]
    return _write_files("climate", _climate_file, spec, seed, paths, progress, workers)


@functools.lru_cache(maxsize=2)
def _climate_model(seed: int, resolution: float) -> _ClimateModel:
    return _ClimateModel(seed, resolution)


def _climate_file(spec: ClimateSpec, seed: int, index: int, path: Path) -> None:
    model = _climate_model(seed, spec.resolution)
    first, last = _decades(spec)[index]
    t, bounds = _noleap_months(first, last)
    with _atomic(path) as tmp:
        _write_climate_netcdf(tmp, spec, model, t, bounds, model.tas(first, t))


def _cell_bounds(centres: np.ndarray, resolution: float) -> np.ndarray:
    return np.stack([centres - resolution / 2, centres + resolution / 2], axis=-1)


def _write_climate_netcdf(path, spec, model, t, bounds, tas) -> None:
    nominal = f"{round(spec.resolution * 100, -1):g} km"
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.setncatts(
            {
                "Conventions": "CF-1.7 CMIP-6.2",
                "activity_id": "CMIP",
                "mip_era": "CMIP6",
                "product": "model-output",
                "title": "EOSC-ESM output prepared for CMIP6 (synthetic demo data)",
                "comment": "Synthetic data from eosc_pangeo.demo_data: a procedural climate, "
                "not a model simulation.",
                "institution_id": "EOSC",
                "institution": "eosc-pangeo",
                "source_id": "EOSC-ESM",
                "source": "EOSC-ESM (synthetic): procedural near-surface air temperature",
                "source_type": "AOGCM",
                "experiment_id": "historical",
                "experiment": "all-forcing simulation of the recent past",
                "sub_experiment_id": "none",
                "sub_experiment": "none",
                "parent_experiment_id": "piControl",
                "variant_label": "r1i1p1f1",
                "realization_index": np.int32(1),
                "initialization_index": np.int32(1),
                "physics_index": np.int32(1),
                "forcing_index": np.int32(1),
                "frequency": "mon",
                "table_id": "Amon",
                "realm": "atmos",
                "variable_id": "tas",
                "grid": f"regular {spec.resolution:g}-degree latitude-longitude grid",
                "grid_label": "gn",
                "nominal_resolution": nominal,
                "license": _LICENSE,
                "history": "created by eosc_pangeo.demo_data.write_climate",
            }
        )
        for name, size in (("time", None), ("lat", model.lat.size), ("lon", model.lon.size)):
            ds.createDimension(name, size)
        ds.createDimension("bnds", 2)
        time = ds.createVariable("time", "f8", ("time",))
        time.setncatts(
            {
                "standard_name": "time",
                "long_name": "time",
                "units": "days since 1850-01-01",
                "calendar": "noleap",
                "axis": "T",
                "bounds": "time_bnds",
            }
        )
        time[:] = t
        ds.createVariable("time_bnds", "f8", ("time", "bnds"))[:] = bounds
        for name, values, axis, units in (
            ("lat", model.lat, "Y", "degrees_north"),
            ("lon", model.lon, "X", "degrees_east"),
        ):
            var = ds.createVariable(name, "f8", (name,))
            standard_name = "latitude" if name == "lat" else "longitude"
            var.setncatts(
                {
                    "standard_name": standard_name,
                    "long_name": standard_name.capitalize(),
                    "units": units,
                    "axis": axis,
                    "bounds": f"{name}_bnds",
                }
            )
            var[:] = values
            ds.createVariable(f"{name}_bnds", "f8", (name, "bnds"))[:] = _cell_bounds(
                values, spec.resolution
            )
        height = ds.createVariable("height", "f8", ())
        height.setncatts(
            {
                "standard_name": "height",
                "long_name": "height",
                "units": "m",
                "axis": "Z",
                "positive": "up",
            }
        )
        height.assignValue(2.0)
        var = ds.createVariable(
            "tas",
            "f4",
            ("time", "lat", "lon"),
            zlib=True,
            complevel=1,
            shuffle=True,
            chunksizes=(1, model.lat.size, model.lon.size),
            fill_value=np.float32(1e20),
        )
        var.setncatts(
            {
                "standard_name": "air_temperature",
                "long_name": "Near-Surface Air Temperature",
                "comment": "near-surface (usually, 2 meter) air temperature",
                "units": "K",
                "cell_methods": "area: time: mean",
                "coordinates": "height",
                "missing_value": np.float32(1e20),
            }
        )
        var[:] = tas.astype(np.float32)
