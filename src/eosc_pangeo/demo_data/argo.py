"""Argo multi-profile files (format 3.1), one per float (``argo/<WMO>-prof.nc``)."""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np

from ..geometry import wrap_longitude
from ._common import (
    _ARGO_FLOAT,
    _ARGO_LAYOUT,
    _EPOCH_ARGO,
    _EPOCH_SST,
    _KM_PER_DEG,
    Progress,
    _atomic,
    _chars,
    _days_since,
    _kind_dir,
    _land_height,
    _red_noise,
    _sst_climatology,
    _winterness,
    _write_files,
)


@dataclass(frozen=True)
class ArgoSpec:
    """What :func:`write_argo` writes: one multi-profile file per float.

    Parameters
    ----------
    floats
        Number of floats (files).
    profiles
        Profiles per float, one every ten days, the first within ten days of ``start``.
    start
        Deployment day.
    first_wmo
        WMO platform number of the first float; the others count up from it.
    """

    floats: int = 5
    profiles: int = 10
    start: dt.date = dt.date(2020, 1, 1)
    first_wmo: int = 6900001

    def n_observations(self, seed: int = 0) -> int:
        """Count the observations (profile levels holding data) without writing any file.

        Parameters
        ----------
        seed
            The seed the files would be written with.

        Returns
        -------
        int
            The number of levels with data, summed over all profiles of all floats.
        """
        return sum(int(_argo_layout(seed, i, self.profiles)[1].sum()) for i in range(self.floats))


_ARGO_LAT_RANGE = (-65.0, 70.0)
# Floats keep this far (in "height" degrees) from the coast, so that every profile falls on an
# ocean cell of the sst grids, down to the 2-degree one.
_ARGO_COAST_MARGIN = 3.0
_ARGO_CYCLE_DAYS = 10
_ARGO_FILL = 99999.0
_ARGO_PARAMS = ("PRES", "TEMP", "PSAL")
_MAX_BOUNCES = 50


def _argo_layout(seed: int, index: int, profiles: int) -> tuple[np.ndarray, np.ndarray]:
    """Nominal pressures of float ``index`` and how many of them each profile reaches.

    Drawn from a stream of its own so that :meth:`ArgoSpec.n_observations` can replay it.
    """
    rng = np.random.default_rng([seed, _ARGO_LAYOUT, index])
    n_levels = int(rng.integers(60, 101))
    # Denser near the surface, where the gradients are.
    levels = 4 + 1996 * np.linspace(0, 1, n_levels) ** 1.5
    shallow = rng.random(profiles) < 0.1
    max_pres = np.where(
        shallow, rng.uniform(700, 1900, profiles), rng.uniform(1995, 2030, profiles)
    )
    return levels, np.searchsorted(levels, max_pres, side="right")


def _navigable(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    lo, hi = _ARGO_LAT_RANGE
    return (lat >= lo) & (lat <= hi) & (_land_height(lat, lon) < -_ARGO_COAST_MARGIN)


def _deploy(rng: np.random.Generator) -> tuple[float, float]:
    """Draw an open-ocean position, uniform over the sphere's area between 60 S and 60 N."""
    lo, hi = np.sin(np.radians([-60.0, 60.0]))
    while True:
        lat = np.degrees(np.arcsin(rng.uniform(lo, hi, 64)))
        lon = rng.uniform(-180, 180, 64)
        ok = np.flatnonzero(_navigable(lat, lon))
        if ok.size:
            return float(lat[ok[0]]), float(lon[ok[0]])


def _mean_current(lat: float) -> float:
    """Zonal drift at parking depth, km/day: eastward ACC, westward equatorial current."""
    return (
        8 * math.exp(-(((lat + 52) / 8) ** 2))
        - 6 * math.exp(-((lat / 6) ** 2))
        + 2 * math.exp(-(((abs(lat) - 40) / 10) ** 2))
    )


def _drift(rng: np.random.Generator, lat0: float, lon0: float, days: int) -> np.ndarray:
    """Daily (lat, lon) of a float: mean current plus a few km/day of correlated random walk.

    A step that would leave open water is mirrored with all that follow, so the float turns
    back the way it came; after too many bounces it stays where it last was.
    """
    steps = 4.0 * _red_noise(rng, (2, days), 3.0)  # km/day, (north, east)
    steps[1] += _mean_current(lat0)
    previous = -1
    for _ in range(_MAX_BOUNCES):
        lat = lat0 + np.cumsum(steps[0]) / _KM_PER_DEG
        cos_lat = np.cos(np.radians(np.concatenate([[lat0], lat[:-1]])))
        lon = wrap_longitude(lon0 + np.cumsum(steps[1] / (_KM_PER_DEG * cos_lat)))
        bad = ~_navigable(lat, lon)
        if not bad.any():
            break
        first = int(np.argmax(bad))
        if first == previous:
            steps[:, first] = 0  # turning back is blocked too: stay put for a day
        else:
            steps[:, first:] *= -1
        previous = first
    else:
        lat[first:], lon[first:] = (lat[first - 1], lon[first - 1]) if first else (lat0, lon0)
    return np.stack([lat, lon], axis=-1)


def _ts_profiles(rng, lat, lon, t, pres, seed) -> tuple[np.ndarray, np.ndarray]:
    """Return temperature (C) and salinity (psu) at ``pres`` (profile, level).

    Profiles are at ``lat``, ``lon``, ``t`` (days since 1981-01-01): a mixed layer, a thermocline
    decaying to cold deep water, fresh high latitudes, salty subtropics and an
    intermediate-water salinity minimum.
    """
    n_prof = lat.size
    sst = _sst_climatology(lat, lon, t, seed) - 273.15
    sst += 0.5 * _red_noise(rng, (n_prof,), 2.0)
    sin2 = np.sin(np.radians(lat)) ** 2
    winter = _winterness(lat, t)
    mld = (15 + 35 * winter + 250 * winter * sin2)[:, None]
    # The thermocline is thin in the tropics and thick under the subtropical gyres.
    scale = (120 + 380 * np.exp(-(((np.abs(lat) - 30) / 15) ** 2)))[:, None]
    # Internal waves heave the whole profile up and down by a few dbar.
    heave = 8 * (
        rng.normal(size=(n_prof, 1))
        * np.sin(np.pi * pres / 1000 + rng.uniform(0, 6.3, (n_prof, 1)))
        + rng.normal(size=(n_prof, 1))
        * np.sin(np.pi * pres / 400 + rng.uniform(0, 6.3, (n_prof, 1)))
    )
    p = np.maximum(pres + heave, 0)
    below = np.exp(-np.maximum(p - mld, 0) / scale)

    def deep_t(p):
        return 1.8 + 3.0 * np.exp(-p / 700)

    temp = deep_t(p) + (sst[:, None] - deep_t(mld)) * below
    abs_lat = np.abs(lat)
    surface_s = (
        34.6
        + 1.6 * np.exp(-(((abs_lat - 25) / 12) ** 2))
        - 0.8 * np.exp(-(((lat - 5) / 7) ** 2))
        - 0.8 * np.clip((abs_lat - 45) / 20, 0, 1)
        + 0.1 * rng.normal(size=n_prof)
    )[:, None]
    intermediate = (
        0.35 * np.exp(-(((p - 800) / 250) ** 2)) * (1 - np.exp(-((lat / 15) ** 2)))[:, None]
    )
    psal = 34.72 + (surface_s - 34.72) * below - intermediate
    temp += rng.normal(0, 0.002, temp.shape)
    psal += rng.normal(0, 0.003, psal.shape)
    return np.maximum(temp, -1.9), psal


def _flag_bad(rng, values, valid, rate_bad, rate_doubtful, spike, offset) -> np.ndarray:
    """Corrupt a few values in place and return their QC flags (b'1' good .. b'4' bad)."""
    u = rng.random(values.shape)
    qc = np.full(values.shape, b"1", dtype="S1")
    bad = valid & (u < rate_bad)
    doubtful = valid & (u >= rate_bad) & (u < rate_bad + rate_doubtful)
    values[bad] += rng.choice([-1, 1], bad.sum()) * rng.uniform(spike / 3, spike, bad.sum())
    values[doubtful] += rng.choice([-1, 1], doubtful.sum()) * offset
    qc[bad], qc[doubtful], qc[~valid] = b"4", b"3", b" "
    return qc


def _profile_grade(qc: np.ndarray) -> np.ndarray:
    """Argo profile quality letter from the share of good levels (flags 1, 2, 5, 8)."""
    measured = (qc != b" ").sum(axis=1)
    good = np.isin(qc, [b"1", b"2", b"5", b"8"]).sum(axis=1)
    share = np.divide(good, measured, out=np.zeros(good.shape), where=measured > 0)
    grade = np.select(
        [share >= 1, share >= 0.75, share >= 0.5, share >= 0.25, share > 0],
        [b"A", b"B", b"C", b"D", b"E"],
        b"F",
    )
    return np.where(measured > 0, grade, b" ").astype("S1")


def _argo_float(spec: ArgoSpec, seed: int, index: int) -> dict[str, np.ndarray]:
    """Every per-profile and per-level array of one float's file."""
    levels, reached = _argo_layout(seed, index, spec.profiles)
    rng = np.random.default_rng([seed, _ARGO_FLOAT, index])
    n_prof, n_lev = spec.profiles, levels.size
    # The first profile comes up within ten days of deployment, then one every cycle.
    offsets = rng.uniform(0, _ARGO_CYCLE_DAYS) + _ARGO_CYCLE_DAYS * np.arange(n_prof)
    offsets += rng.uniform(-0.1, 0.1, n_prof)
    track = _drift(rng, *_deploy(rng), int(offsets[-1]) + 2)
    lat, lon = track[offsets.astype(int)].T
    start = _days_since(_EPOCH_SST, spec.start)
    valid = np.arange(n_lev)[None, :] < reached[:, None]
    pres = np.round(levels[None, :] + rng.normal(0, 0.3, (n_prof, n_lev)), 1)
    temp, psal = _ts_profiles(rng, lat, lon, start + offsets, pres, seed)
    temp, psal = np.round(temp, 3), np.round(psal, 3)
    qc = {
        "PRES": _flag_bad(rng, pres, valid, 0.0005, 0.0, 50.0, 0.0),
        "TEMP": _flag_bad(rng, temp, valid, 0.003, 0.005, 8.0, 0.5),
        "PSAL": _flag_bad(rng, psal, valid, 0.005, 0.01, 2.0, 0.05),
    }
    raw = {"PRES": pres, "TEMP": temp, "PSAL": psal}
    # Delayed-mode (adjusted) data exist for all but the last few cycles.
    delayed = np.arange(n_prof) < n_prof - rng.integers(4, 13)
    corrections = {
        "PRES": -np.round(rng.uniform(0, 0.6), 1) * np.ones((n_prof, 1)),
        "TEMP": np.zeros((n_prof, 1)),
        "PSAL": -rng.uniform(0, 5e-4) * np.arange(1, n_prof + 1)[:, None],
    }
    errors = {"PRES": 2.4, "TEMP": 0.002, "PSAL": 0.01}
    data: dict[str, np.ndarray] = {}
    for name in _ARGO_PARAMS:
        usable = valid & delayed[:, None] & (qc[name] != b"4")
        data[name] = np.where(valid, raw[name], _ARGO_FILL)
        data[f"{name}_QC"] = qc[name]
        data[f"{name}_ADJUSTED"] = np.where(
            usable, np.round(raw[name] + corrections[name], 3), _ARGO_FILL
        )
        data[f"{name}_ADJUSTED_QC"] = np.where(valid & delayed[:, None], qc[name], b" ").astype(
            "S1"
        )
        data[f"{name}_ADJUSTED_ERROR"] = np.where(usable, errors[name], _ARGO_FILL)
        data[f"PROFILE_{name}_QC"] = _profile_grade(
            np.where(delayed[:, None], data[f"{name}_ADJUSTED_QC"], qc[name])
        )
    juld = _days_since(_EPOCH_ARGO, spec.start) + offsets
    data.update(
        JULD=juld,
        JULD_LOCATION=juld + rng.uniform(0.005, 0.05, n_prof),
        LATITUDE=np.round(lat, 4),
        LONGITUDE=np.round(lon, 4),
        CYCLE_NUMBER=np.arange(1, n_prof + 1, dtype=np.int32),
        DATA_MODE=np.where(delayed, b"D", b"R").astype("S1"),
        SERIAL=np.array(f"AI{2600 + index:06d}"),
    )
    return data


def write_argo(
    spec: ArgoSpec,
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    progress: Progress | None = None,
    workers: int | None = 1,
) -> list[Path]:
    """Write one Argo multi-profile file ``argo/<WMO>-prof.nc`` per float.

    Parameters
    ----------
    spec
        Number of floats and profiles.
    out_dir
        Root folder; files go to its ``argo`` sub-folder.
    seed
        Seed of the tracks, profiles and QC flags.
    progress
        Optional ``progress("argo", done, total)``.
    workers
        Processes writing files at once; ``None`` chooses as :func:`write_demo_data` does.

    Returns
    -------
    list of Path
        The files written, sorted.
    """
    folder = _kind_dir(out_dir, "argo")
    paths = [folder / f"{spec.first_wmo + i}-prof.nc" for i in range(spec.floats)]
    return _write_files("argo", _argo_file, spec, seed, paths, progress, workers)


def _argo_file(spec: ArgoSpec, seed: int, index: int, path: Path) -> None:
    data = _argo_float(spec, seed, index)
    with _atomic(path) as tmp:
        _write_argo_netcdf(tmp, spec.first_wmo + index, data)


def _argo_date(juld: float) -> str:
    return f"{_EPOCH_ARGO + dt.timedelta(days=float(juld)):%Y%m%d%H%M%S}"


_ARGO_DIMENSIONS = {
    "DATE_TIME": 14,
    "STRING256": 256,
    "STRING64": 64,
    "STRING32": 32,
    "STRING16": 16,
    "STRING8": 8,
    "STRING4": 4,
    "STRING2": 2,
    "N_PARAM": len(_ARGO_PARAMS),
}
# long_name, standard_name, units, valid_min, valid_max, resolution
_ARGO_PARAM_ATTRS = {
    "PRES": ("Sea water pressure, equals 0 at sea-level", "sea_water_pressure", "decibar",
             0.0, 12000.0, 0.1),
    "TEMP": ("Sea temperature in-situ ITS-90 scale", "sea_water_temperature", "degree_Celsius",
             -2.5, 40.0, 0.001),
    "PSAL": ("Practical salinity", "sea_water_salinity", "psu", 2.0, 41.0, 0.001),
}  # fmt: skip
_QC_TABLE = "Argo reference table 2"
_DATE_FORMAT = "YYYYMMDDHHMISS"


def _argo_chars_table(wmo: int, data: dict[str, np.ndarray]) -> list[tuple]:
    """(name, dimensions, char values, long_name, conventions) of the char variables."""
    n_prof = data["JULD"].size
    profiles = (n_prof,)
    ones = np.full(n_prof, b"1", dtype="S1")
    state = np.where(data["DATA_MODE"] == b"D", "2C+", "2B")
    grades = [
        (f"PROFILE_{p}_QC", ("N_PROF",), data[f"PROFILE_{p}_QC"],
         f"Global quality flag of {p} profile", "Argo reference table 2a")
        for p in _ARGO_PARAMS
    ]  # fmt: skip
    return [
        ("DATA_TYPE", ("STRING16",), _chars("Argo profile", 16), "Data type", ""),
        ("FORMAT_VERSION", ("STRING4",), _chars("3.1", 4), "File format version", ""),
        ("HANDBOOK_VERSION", ("STRING4",), _chars("1.2", 4), "Data handbook version", ""),
        ("REFERENCE_DATE_TIME", ("DATE_TIME",), _chars("19500101000000", 14),
         "Date of reference for Julian days", _DATE_FORMAT),
        # Dates derived from the data, not the clock, so that files are reproducible.
        ("DATE_CREATION", ("DATE_TIME",), _chars(_argo_date(data["JULD"][0]), 14),
         "Date of file creation", _DATE_FORMAT),
        ("DATE_UPDATE", ("DATE_TIME",), _chars(_argo_date(data["JULD"][-1] + 1), 14),
         "Date of update of this file", _DATE_FORMAT),
        ("PLATFORM_NUMBER", ("N_PROF", "STRING8"), _chars(str(wmo), 8, profiles),
         "Float unique identifier", "WMO float identifier : A9IIIII"),
        ("PROJECT_NAME", ("N_PROF", "STRING64"), _chars("EOSC-PANGEO DEMO", 64, profiles),
         "Name of the project", ""),
        ("PI_NAME", ("N_PROF", "STRING64"), _chars("EOSC PANGEO", 64, profiles),
         "Name of the principal investigator", ""),
        ("STATION_PARAMETERS", ("N_PROF", "N_PARAM", "STRING16"),
         _chars(list(_ARGO_PARAMS), 16, (n_prof, len(_ARGO_PARAMS))),
         "List of available parameters for the station", "Argo reference table 3"),
        ("DIRECTION", ("N_PROF",), np.full(n_prof, b"A", dtype="S1"),
         "Direction of the station profiles", "A: ascending profiles, D: descending profiles"),
        ("DATA_CENTRE", ("N_PROF", "STRING2"), _chars("IF", 2, profiles),
         "Data centre in charge of float data processing", "Argo reference table 4"),
        ("DATA_STATE_INDICATOR", ("N_PROF", "STRING4"), _chars(state, 4),
         "Degree of processing the data have passed through", "Argo reference table 6"),
        ("DATA_MODE", ("N_PROF",), data["DATA_MODE"], "Delayed mode or real time data",
         "R : real time; D : delayed mode; A : real time with adjustment"),
        ("PLATFORM_TYPE", ("N_PROF", "STRING32"), _chars("ARVOR", 32, profiles),
         "Type of float", "Argo reference table 23"),
        ("FLOAT_SERIAL_NO", ("N_PROF", "STRING32"), _chars(data["SERIAL"], 32, profiles),
         "Serial number of the float", ""),
        ("WMO_INST_TYPE", ("N_PROF", "STRING4"), _chars("844", 4, profiles),
         "Coded instrument type", "Argo reference table 8"),
        ("JULD_QC", ("N_PROF",), ones, "Quality on date and time", _QC_TABLE),
        ("POSITION_QC", ("N_PROF",), ones, "Quality on position (latitude and longitude)",
         _QC_TABLE),
        ("POSITIONING_SYSTEM", ("N_PROF", "STRING8"), _chars("GPS", 8, profiles),
         "Positioning system", ""),
        ("VERTICAL_SAMPLING_SCHEME", ("N_PROF", "STRING256"),
         _chars("Primary sampling: averaged [synthetic]", 256, profiles),
         "Vertical sampling scheme", "Argo reference table 16"),
        *grades,
    ]  # fmt: skip


def _argo_variable(ds, name, dtype, dims, values, attrs, fill) -> None:
    var = ds.createVariable(name, dtype, dims, fill_value=fill)
    var.setncatts(attrs)
    var[:] = values


def _write_argo_netcdf(path: Path, wmo: int, data: dict[str, np.ndarray]) -> None:
    n_prof, n_lev = data["PRES"].shape
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.setncatts(
            {
                "title": "Argo float vertical profile",
                "institution": "eosc-pangeo (synthetic demo data)",
                "source": "Argo float (synthetic: eosc_pangeo.demo_data, not observations)",
                "history": "created by eosc_pangeo.demo_data.write_argo",
                "references": "http://www.argodatamgt.org/Documentation",
                "user_manual_version": "3.1",
                "Conventions": "Argo-3.1 CF-1.6",
                "featureType": "trajectoryProfile",
            }
        )
        for name, size in {**_ARGO_DIMENSIONS, "N_PROF": n_prof, "N_LEVELS": n_lev}.items():
            ds.createDimension(name, size)
        for name, dims, values, long_name, conventions in _argo_chars_table(wmo, data):
            attrs = {"long_name": long_name} | ({"conventions": conventions} if conventions else {})
            _argo_variable(ds, name, "S1", dims, values, attrs, b" ")
        _write_argo_profile_numbers(ds, data)
        for param in _ARGO_PARAMS:
            _write_argo_parameter(ds, param, data)


def _write_argo_profile_numbers(ds: netCDF4.Dataset, data: dict[str, np.ndarray]) -> None:
    """Cycle and mission numbers, dates and positions: one value per profile."""
    per_profile = ("N_PROF",)
    _argo_variable(ds, "CYCLE_NUMBER", "i4", per_profile, data["CYCLE_NUMBER"],
                   {"long_name": "Float cycle number",
                    "conventions": "0...N, 0 : launch cycle (if exists), 1 : first complete cycle"},
                   np.int32(99999))  # fmt: skip
    missions = np.ones_like(data["CYCLE_NUMBER"])
    _argo_variable(ds, "CONFIG_MISSION_NUMBER", "i4", per_profile, missions,
                   {"long_name": "Unique number denoting the missions performed by the float",
                    "conventions": "1...N, 1 : first complete mission"},
                   np.int32(99999))  # fmt: skip
    for name, what in (("JULD", "station"), ("JULD_LOCATION", "location")):
        attrs = {
            "long_name": f"Julian day (UTC) of the {what} relative to REFERENCE_DATE_TIME",
            "standard_name": "time",
            "units": "days since 1950-01-01 00:00:00 UTC",
            "conventions": "Relative julian days with decimal part (as parts of day)",
            "resolution": 1e-5,
            "axis": "T",
        }
        _argo_variable(ds, name, "f8", per_profile, data[name], attrs, 999999.0)
    for name, units, axis, limit in (
        ("LATITUDE", "degree_north", "Y", 90.0),
        ("LONGITUDE", "degree_east", "X", 180.0),
    ):
        attrs = {
            "long_name": f"{name.capitalize()} of the station, best estimate",
            "standard_name": name.lower(),
            "units": units,
            "axis": axis,
            "valid_min": -limit,
            "valid_max": limit,
        }
        _argo_variable(ds, name, "f8", per_profile, data[name], attrs, _ARGO_FILL)


def _write_argo_parameter(ds: netCDF4.Dataset, param: str, data: dict[str, np.ndarray]) -> None:
    """PARAM, PARAM_QC, PARAM_ADJUSTED, PARAM_ADJUSTED_QC and PARAM_ADJUSTED_ERROR."""
    long_name, standard_name, units, lo, hi, resolution = _ARGO_PARAM_ATTRS[param]
    levels = ("N_PROF", "N_LEVELS")
    fill = np.float32(_ARGO_FILL)
    common = {
        "units": units,
        "C_format": "%9.3f",
        "FORTRAN_format": "F9.3",
        "resolution": np.float32(resolution),
    }
    for name in (param, f"{param}_ADJUSTED"):
        attrs = {
            "long_name": long_name,
            "standard_name": standard_name,
            **common,
            "valid_min": np.float32(lo),
            "valid_max": np.float32(hi),
        } | ({"axis": "Z"} if param == "PRES" else {})
        _argo_variable(ds, name, "f4", levels, data[name].astype(np.float32), attrs, fill)
        qc_attrs = {"long_name": "quality flag", "conventions": _QC_TABLE}
        _argo_variable(ds, f"{name}_QC", "S1", levels, data[f"{name}_QC"], qc_attrs, b" ")
    error = f"{param}_ADJUSTED_ERROR"
    attrs = {
        "long_name": "Contains the error on the adjusted values as determined by the delayed "
        "mode QC process",
        **common,
    }
    _argo_variable(ds, error, "f4", levels, data[error].astype(np.float32), attrs, fill)
