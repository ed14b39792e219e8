"""Daily GHRSST-L4-like SST analyses (``sst/YYYYMMDD-sst.nc``)."""

from __future__ import annotations

import datetime as dt
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np

from ._common import (
    _CREATOR,
    _EPOCH_SST,
    _FREEZING_K,
    _FRONTS,
    _LICENSE,
    _SST_EDDIES,
    Progress,
    _atomic,
    _axis,
    _days_since,
    _front_axis,
    _front_window,
    _global_land,
    _kind_dir,
    _modes,
    _sst_climatology,
    _synthesize,
    _turning,
    _write_files,
)


@dataclass(frozen=True)
class SstSpec:
    """What :func:`write_sst` writes: daily fields on a regular global grid (or part of it).

    Parameters
    ----------
    start
        First day.
    days
        Number of daily files.
    resolution
        Grid spacing in degrees; must divide 180.
    bbox
        ``(lon_min, lat_min, lon_max, lat_max)``: cells of the global grid whose centres are
        inside are written, so a subset has the same values and land mask as the global grid.
    """

    start: dt.date = dt.date(2020, 1, 1)
    days: int = 10
    resolution: float = 2.0
    bbox: tuple[float, float, float, float] = (-180.0, -90.0, 180.0, 90.0)


class _SstModel:
    """The analysed SST of one seed on one global grid, as a function of time."""

    def __init__(self, seed: int, resolution: float) -> None:
        self.seed = seed
        self.resolution = resolution
        self.lat = _axis(resolution, -90, 90)
        self.lon = _axis(resolution, -180, 180)
        self.land = _global_land(resolution)
        self.eddies = _modes(kmax=480, cutoff=1.5, std=0.7)
        self.phase, self.frequency = _turning(
            np.random.default_rng([seed, _SST_EDDIES, 0]), self.eddies, period=45, drift=0.05
        )
        # Eddies are strongest along the fronts, as eddy kinetic energy is.
        lat, lon = self.lat[:, None], self.lon[None, :]
        self.envelope = 0.4 + sum(
            2.2
            * np.exp(-(((lat - _front_axis(front, lon, 0.0, (0.0, 0.0))) / 5) ** 2))
            * _front_window(front, lon)
            for front in _FRONTS
        )

    def fields(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Return (analysed SST, analysis error) in kelvin at ``t`` days since 1981-01-01."""
        coef = self.eddies.amplitude * np.exp(1j * (self.phase + self.frequency * t))
        sst = _sst_climatology(self.lat[:, None], self.lon[None, :], t, self.seed)
        sst += self.envelope * _synthesize(self.eddies, coef, self.lat, self.lon)
        np.clip(sst, _FREEZING_K, 305.0, out=sst)
        # Analyses are least certain across fronts and near the ice edge.
        dy, dx = np.gradient(sst, self.resolution)
        gradient = np.hypot(dy, dx / np.maximum(np.cos(np.radians(self.lat))[:, None], 0.05))
        error = 0.25 + 0.6 * np.tanh(gradient / 2.0) + 0.3 * (sst < _FREEZING_K + 1.0)
        return sst, error


def _pack(values: np.ndarray, land: np.ndarray, offset: float) -> np.ndarray:
    packed = np.round((values - offset) / 0.01).astype(np.int16)
    packed[land] = -32768
    return packed


def _bbox_slices(spec: SstSpec, lat: np.ndarray, lon: np.ndarray) -> tuple[slice, slice]:
    lon_min, lat_min, lon_max, lat_max = spec.bbox
    rows = np.flatnonzero((lat >= lat_min) & (lat <= lat_max))
    cols = np.flatnonzero((lon >= lon_min) & (lon <= lon_max))
    if rows.size == 0 or cols.size == 0:
        raise ValueError(f"bbox {spec.bbox} holds no cell centre of the {spec.resolution} grid")
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def write_sst(
    spec: SstSpec,
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    progress: Progress | None = None,
    workers: int | None = 1,
) -> list[Path]:
    """Write one GHRSST-L4-like file ``sst/YYYYMMDD-sst.nc`` per day of ``spec``.

    Parameters
    ----------
    spec
        Days, grid and region.
    out_dir
        Root folder; files go to its ``sst`` sub-folder.
    seed
        Seed of the eddies and front meanders.
    progress
        Optional ``progress("sst", done, total)``.
    workers
        Processes writing files at once; ``None`` chooses as :func:`write_demo_data` does.

    Returns
    -------
    list of Path
        The files written, sorted.
    """
    folder = _kind_dir(out_dir, "sst")
    days = (spec.start + dt.timedelta(days=i) for i in range(spec.days))
    paths = [folder / f"{day:%Y%m%d}-sst.nc" for day in days]
    return _write_files("sst", _sst_file, spec, seed, paths, progress, workers)


@functools.lru_cache(maxsize=2)
def _sst_model(seed: int, resolution: float) -> _SstModel:
    return _SstModel(seed, resolution)


def _sst_file(spec: SstSpec, seed: int, index: int, path: Path) -> None:
    model = _sst_model(seed, spec.resolution)
    rows, cols = _bbox_slices(spec, model.lat, model.lon)
    day = spec.start + dt.timedelta(days=index)
    t = _days_since(_EPOCH_SST, day) + 0.5  # the analysis is valid at 12:00 UTC
    sst, error = (field[rows, cols] for field in model.fields(t))
    with _atomic(path) as tmp:
        _write_sst_netcdf(
            tmp, spec, day, t, model.lat[rows], model.lon[cols], model.land[rows, cols], sst, error
        )


def _write_sst_netcdf(path, spec, day, t, lat, lon, land, sst, error) -> None:
    half = spec.resolution / 2
    start = dt.datetime(day.year, day.month, day.day)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.setncatts(
            {
                "Conventions": "CF-1.8, ACDD-1.3",
                "title": f"Synthetic daily {spec.resolution:g}-degree SST analysis "
                "(GHRSST L4-like demo data)",
                "summary": "Synthetic foundation sea surface temperature for demonstrations "
                "and tests: latitude gradient, seasons, meandering fronts and evolving "
                "mesoscale eddies over a fixed procedural land mask. Not an observation.",
                "institution": "eosc-pangeo",
                "source": "synthetic: eosc_pangeo.demo_data procedural model, no observations",
                "id": f"EOSC-PANGEO-DEMO-L4-SST-{spec.resolution:g}deg",
                "naming_authority": "org.eosc-pangeo",
                "platform": "none (synthetic model output)",
                "processing_level": "L4",
                "license": _LICENSE,
                "creator_name": _CREATOR,
                "time_coverage_start": f"{start:%Y-%m-%dT%H:%M:%SZ}",
                "time_coverage_end": f"{start + dt.timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}",
                "time_coverage_resolution": "P1D",
                "geospatial_lat_min": float(lat[0] - half),
                "geospatial_lat_max": float(lat[-1] + half),
                "geospatial_lon_min": float(lon[0] - half),
                "geospatial_lon_max": float(lon[-1] + half),
                "geospatial_lat_units": "degrees_north",
                "geospatial_lon_units": "degrees_east",
                "geospatial_lat_resolution": float(spec.resolution),
                "geospatial_lon_resolution": float(spec.resolution),
                "cdm_data_type": "Grid",
                "history": "created by eosc_pangeo.demo_data.write_sst",
            }
        )
        ds.createDimension("time", 1)
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        time = ds.createVariable("time", "i4", ("time",))
        time.setncatts(
            {
                "standard_name": "time",
                "long_name": "reference time of sst field",
                "units": "seconds since 1981-01-01 00:00:00",
                "calendar": "standard",
                "axis": "T",
            }
        )
        time[:] = round(t * 86400)
        for name, values, axis, units, standard_name in (
            ("lat", lat, "Y", "degrees_north", "latitude"),
            ("lon", lon, "X", "degrees_east", "longitude"),
        ):
            var = ds.createVariable(name, "f4", (name,))
            var.setncatts(
                {
                    "standard_name": standard_name,
                    "long_name": standard_name,
                    "units": units,
                    "axis": axis,
                    "valid_min": np.float32(-90 if name == "lat" else -180),
                    "valid_max": np.float32(90 if name == "lat" else 180),
                }
            )
            var[:] = values
        field = {
            "dimensions": ("time", "lat", "lon"),
            "zlib": True,
            "complevel": 4,
            "shuffle": True,
            "chunksizes": (1, lat.size, lon.size),
            "fill_value": np.int16(-32768),
        }
        var = ds.createVariable("analysed_sst", "i2", **field)
        var.set_auto_maskandscale(False)  # the values are packed already
        var.setncatts(
            {
                "long_name": "analysed sea surface temperature",
                "standard_name": "sea_surface_foundation_temperature",
                "units": "kelvin",
                "scale_factor": np.float32(0.01),
                "add_offset": np.float32(273.15),
                # In packed units, as CF requires: 271.35 K .. 305.0 K.
                "valid_min": np.int16(-180),
                "valid_max": np.int16(3185),
                "coverage_content_type": "physicalMeasurement",
                "comment": "land cells are _FillValue",
            }
        )
        var[0] = _pack(sst, land, 273.15)
        var = ds.createVariable("analysis_error", "i2", **field)
        var.set_auto_maskandscale(False)
        var.setncatts(
            {
                "long_name": "estimated error standard deviation of analysed_sst",
                "standard_name": "sea_surface_foundation_temperature standard_error",
                "units": "kelvin",
                "scale_factor": np.float32(0.01),
                "add_offset": np.float32(0.0),
                "valid_min": np.int16(0),
                "valid_max": np.int16(32767),
                "coverage_content_type": "qualityInformation",
            }
        )
        var[0] = _pack(error, land, 0.0)
