"""Hourly coastal station series as CSV, one per station (``stations/<id>.csv``)."""

from __future__ import annotations

import datetime as dt
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ._common import (
    _EPOCH_SST,
    _STATION,
    _STATION_LAYOUT,
    _YEAR,
    Progress,
    _atomic,
    _axis,
    _days_since,
    _global_land,
    _kind_dir,
    _red_noise,
    _sst_climatology,
    _winterness,
    _write_files,
)


@dataclass(frozen=True)
class StationSpec:
    """What :func:`write_stations` writes: one hourly CSV series per coastal station.

    Parameters
    ----------
    stations
        Number of stations (files), taken in order from a fixed list of coastal sites.
    days
        Length of the series, from 00:00 UTC of ``start``.
    start
        First day.
    """

    stations: int = 3
    days: int = 10
    start: dt.date = dt.date(2020, 1, 1)

    def n_observations(self, seed: int = 0) -> int:
        """Count the observations (CSV rows, one per time and depth) without writing any file.

        Parameters
        ----------
        seed
            The seed the files would be written with.

        Returns
        -------
        int
            The number of rows of all station files.
        """
        return sum(
            _station_kept_hours(self, seed, i).size * len(_station_depths(i))
            for i in range(self.stations)
        )


# Real coastal sites (name, lat, lon); each station sits on the procedural mask's coastal ocean
# cell nearest to its site.
# fmt: off
_SITES = (
    ("FR-BREST", 48.36, -4.55), ("ES-VIGO", 42.22, -8.80), ("NO-BERGEN", 60.40, 5.20),
    ("IT-GENOVA", 44.38, 8.90), ("GR-PIRAEUS", 37.92, 23.60), ("GB-PLYMOUTH", 50.33, -4.15),
    ("IE-GALWAY", 53.22, -9.20), ("PT-SINES", 37.95, -8.90), ("DE-HELGOLAND", 54.18, 7.90),
    ("NL-TEXEL", 53.00, 4.75), ("DK-SKAGEN", 57.75, 10.60), ("IS-REYKJAVIK", 64.15, -22.00),
    ("US-WOODSHOLE", 41.52, -70.67), ("US-MONTEREY", 36.60, -121.90), ("US-KEYWEST", 24.55, -81.80),
    ("CA-HALIFAX", 44.60, -63.50), ("MX-VERACRUZ", 19.20, -96.10), ("BR-SANTOS", -24.00, -46.30),
    ("AR-MARDELPLATA", -38.05, -57.50), ("CL-VALPARAISO", -33.00, -71.65),
    ("PE-CALLAO", -12.05, -77.20), ("ZA-CAPETOWN", -33.90, 18.40), ("SN-DAKAR", 14.70, -17.45),
    ("MA-CASABLANCA", 33.60, -7.65), ("KE-MOMBASA", -4.07, 39.70), ("IN-MUMBAI", 18.90, 72.80),
    ("LK-COLOMBO", 6.95, 79.80), ("SG-SINGAPORE", 1.25, 103.80), ("JP-KUSHIRO", 42.95, 144.40),
    ("JP-SHIMODA", 34.65, 138.95), ("KR-BUSAN", 35.05, 129.05), ("CN-QINGDAO", 36.05, 120.35),
    ("AU-HOBART", -42.90, 147.35), ("AU-FREMANTLE", -32.05, 115.70),
    ("NZ-WELLINGTON", -41.30, 174.80), ("NO-TROMSO", 69.65, 18.95), ("FI-HELSINKI", 60.10, 24.95),
    ("HR-SPLIT", 43.50, 16.40), ("PH-MANILA", 14.55, 120.95), ("NC-NOUMEA", -22.30, 166.45),
)
# fmt: on
_STATION_RESOLUTION = 0.25
_CSV_HEADER = ("station_id", "time", "lon", "lat", "depth", "TEMP", "TEMP_QC", "PSAL", "PSAL_QC")
# Tidal constituents M2, S2, K1: (period in hours, relative amplitude).
_TIDES = ((12.4206, 1.0), (12.0, 0.45), (23.9345, 0.2))


def _station_depths(index: int) -> tuple[int, ...]:
    return (1, 10) if index % 2 == 0 else (1, 5, 20)


def _has_salinity(index: int) -> bool:
    # Every third station has a temperature sensor only (the first such one is station 2).
    return index % 3 != 2


@functools.lru_cache(maxsize=1)
def _coastal_cells() -> np.ndarray:
    """(lat, lon) of ocean cells of the 0.25-degree mask that touch land, outside Antarctica."""
    land = _global_land(_STATION_RESOLUTION)
    # Longitude wraps around; latitude does not.
    padded = np.pad(np.pad(land, ((1, 1), (0, 0)), mode="edge"), ((0, 0), (1, 1)), mode="wrap")
    near_land = np.zeros_like(land)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            near_land |= padded[dy : dy + land.shape[0], dx : dx + land.shape[1]]
    rows, cols = np.nonzero(~land & near_land)
    lat = _axis(_STATION_RESOLUTION, -90, 90)[rows]
    lon = _axis(_STATION_RESOLUTION, -180, 180)[cols]
    keep = lat > -60
    return np.stack([lat[keep], lon[keep]], axis=-1)


def _station_site(index: int) -> tuple[str, float, float]:
    """Id, lat and lon of station ``index``; ids repeat with a higher number after the list."""
    name, lat0, lon0 = _SITES[index % len(_SITES)]
    rank = index // len(_SITES)
    cells = _coastal_cells()
    phi, phi0 = np.radians(cells[:, 0]), math.radians(lat0)
    cos_d = np.sin(phi) * math.sin(phi0) + np.cos(phi) * math.cos(phi0) * np.cos(
        np.radians(cells[:, 1] - lon0)
    )
    lat, lon = cells[np.argsort(-cos_d, kind="stable")[rank]]
    return f"{name}-{rank + 1:02d}", float(lat), float(lon)


def _station_kept_hours(spec: StationSpec, seed: int, index: int) -> np.ndarray:
    """Hours (from the start) with data: outages of hours to days are cut out."""
    rng = np.random.default_rng([seed, _STATION_LAYOUT, index])
    hours = spec.days * 24
    kept = np.ones(hours, dtype=bool)
    for _ in range(rng.poisson(spec.days / 60)):
        begin = int(rng.integers(0, hours))
        kept[begin : begin + int(rng.integers(6, 5 * 24))] = False
    return np.flatnonzero(kept)


def _station_series(rng, spec: StationSpec, seed: int, index: int, lat: float, lon: float):
    """Return the kept hours, temperature and salinity (time, depth) of one station.

    The signal: seasons, tides, sunshine, weather, summer stratification and river run-off.
    """
    hours = _station_kept_hours(spec, seed, index)
    depth = np.array(_station_depths(index), dtype=float)[None, :]
    t = _days_since(_EPOCH_SST, spec.start) + hours / 24
    n_all = spec.days * 24
    tide = sum(
        amplitude * np.cos(2 * np.pi * hours / period + rng.uniform(0, 2 * np.pi))
        for period, amplitude in _TIDES
    )[:, None]
    local_hour = (hours + lon / 15) % 24
    sun = np.cos(2 * np.pi * (local_hour - 15) / 24)[:, None] * np.exp(-depth / 3)
    weather = _red_noise(rng, (n_all,), 72.0)[hours, None]
    summer = (1 - _winterness(np.array(lat), t))[:, None]
    temp = (
        _sst_climatology(lat, lon, t, seed)[:, None]
        - 273.15
        + rng.uniform(0.1, 0.6) * tide
        + 0.5 * sun
        + 0.6 * weather
        + 0.15 * _red_noise(rng, (depth.size, n_all), 24.0).T[hours]
        - 0.12 * depth * summer
    )
    runoff = 0.5 * (1 + np.cos(2 * np.pi * (t % _YEAR - 120) / _YEAR))[:, None]
    psal = (
        rng.uniform(33.0, 35.5)
        - rng.uniform(0.2, 1.0) * runoff * np.exp(-depth / 10)
        + 0.15 * tide
        + 0.1 * _red_noise(rng, (n_all,), 48.0)[hours, None]
        + 0.02 * depth
    )
    return hours, np.maximum(temp, -1.9), psal


def _station_qc(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """Spoil and flag a few values in place: 2 probably good, 3 probably bad, 4 bad, 9 missing."""
    u = rng.random(values.shape)
    sign = rng.choice([-1.0, 1.0], values.shape)
    qc = np.ones(values.shape, dtype=np.int8)
    qc[u < 0.02] = 2
    values[u < 0.006] += sign[u < 0.006] * 0.8
    qc[u < 0.006] = 3
    values[u < 0.002] += sign[u < 0.002] * 6.0
    qc[u < 0.002] = 4
    values[u < 0.0005] = np.nan
    qc[u < 0.0005] = 9
    return qc


def write_stations(
    spec: StationSpec,
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    progress: Progress | None = None,
    workers: int | None = 1,
) -> list[Path]:
    """Write one hourly CSV ``stations/<station_id>.csv`` per coastal station.

    Columns are ``station_id,time,lon,lat,depth,TEMP,TEMP_QC,PSAL,PSAL_QC``: time in ISO 8601
    UTC, depth in metres (positive down), TEMP in degree_Celsius, PSAL in psu, QC flags 1..4
    with 9 (and an empty value) for missing.

    Parameters
    ----------
    spec
        Number of stations and days.
    out_dir
        Root folder; files go to its ``stations`` sub-folder.
    seed
        Seed of the series, flags and outages.
    progress
        Optional ``progress("stations", done, total)``.
    workers
        Processes writing files at once; ``None`` chooses as :func:`write_demo_data` does.

    Returns
    -------
    list of Path
        The files written, sorted.
    """
    folder = _kind_dir(out_dir, "stations")
    paths = [folder / f"{_station_site(i)[0]}.csv" for i in range(spec.stations)]
    return _write_files("stations", _station_file, spec, seed, paths, progress, workers)


def _station_file(spec: StationSpec, seed: int, index: int, path: Path) -> None:
    frame = _station_frame(spec, seed, index)
    with _atomic(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.3f", lineterminator="\n")


def _station_frame(spec: StationSpec, seed: int, index: int) -> pd.DataFrame:
    station_id, lat, lon = _station_site(index)
    rng = np.random.default_rng([seed, _STATION, index])
    hours, temp, psal = _station_series(rng, spec, seed, index, lat, lon)
    temp_qc = _station_qc(rng, temp)
    psal_qc = _station_qc(rng, psal)
    if not _has_salinity(index):
        psal[:] = np.nan
        psal_qc[:] = 9
    n_depths = temp.shape[1]
    start = np.datetime64(spec.start, "s")
    times = np.datetime_as_string(start + hours.astype("timedelta64[h]"), unit="s") + "Z"
    return pd.DataFrame(
        {
            "station_id": station_id,
            "time": np.repeat(times, n_depths),
            "lon": f"{lon:.4f}",
            "lat": f"{lat:.4f}",
            "depth": np.tile(_station_depths(index), hours.size),
            "TEMP": temp.ravel(),
            "TEMP_QC": temp_qc.ravel(),
            "PSAL": psal.ravel(),
            "PSAL_QC": psal_qc.ravel(),
        },
        columns=list(_CSV_HEADER),
    )
