"""CF Discrete Sampling Geometry samples: every feature type in every layout (``dsg/``).

One small, plausible set of observations per feature type, as in-situ data centres publish them:
moorings (``timeSeries``), a ship's thermosalinograph (``trajectory``), CTD casts (``profile``),
moored profilers (``timeSeriesProfile``) and gliders (``trajectoryProfile``), each written in
the four layouts of CF appendix H as ``dsg/<featureType>-<layout>.nc``:

``orthogonal``
    multidimensional arrays whose element coordinate (``time(time)``, ``z(z)``) all instances
    share;
``incomplete``
    multidimensional arrays padded with fill values;
``contiguous``
    ragged arrays with a count variable (``sample_dimension``); the two-level types index their
    profiles' station or trajectory (``instance_dimension``), as CF H.5.3 and H.6.2 do;
``indexed``
    ragged arrays whose observations name their instance (``instance_dimension``), in time order;
``single``
    one instance, its variables scalars (CF H.2.3, H.3.3, H.4.2, H.5.2): how a single mooring, a
    CTD cast or an IOOS Glider DAC file (one trajectory) is often published.

Moorings and CTD casts carry OceanSITES flags (0..9), the ship and the gliders IOOS QARTOD flags
(1 pass .. 9 missing), as the Glider DAC publishes them.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import netCDF4
import numpy as np

from ._common import _DSG, _EPOCH_SST, _atomic, _days_since, _kind_dir, _sst_climatology
from .argo import _ts_profiles

FEATURE_TYPES = ("timeSeries", "trajectory", "profile", "timeSeriesProfile", "trajectoryProfile")
LAYOUTS = ("orthogonal", "incomplete", "contiguous", "indexed", "single")

_START = dt.datetime(2020, 1, 1)
_TIME_UNITS = "seconds since 1970-01-01 00:00:00"
_FILL = np.float32(-9999.0)
_FLAG_FILL = np.int8(-127)
_OCEANSITES = (
    "no_qc_performed good_data probably_good_data "
    "bad_data_that_are_potentially_correctable bad_data value_changed not_used "
    "nominal_value interpolated_value missing_value",
    np.arange(10, dtype=np.int8),
)
_QARTOD = ("pass not_evaluated suspect fail missing", np.array([1, 2, 3, 4, 9], dtype=np.int8))
_ATTRS = {
    "time": {"standard_name": "time", "units": _TIME_UNITS, "calendar": "standard", "axis": "T"},
    "lat": {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"},
    "lon": {"standard_name": "longitude", "units": "degrees_east", "axis": "X"},
    "depth": {"standard_name": "depth", "units": "m", "positive": "down", "axis": "Z"},
    "pres": {"standard_name": "sea_water_pressure", "units": "dbar"},
    "temp": {"standard_name": "sea_water_temperature", "units": "degree_Celsius"},
    "psal": {"standard_name": "sea_water_practical_salinity", "units": "1"},
}
_ROLES = {
    "timeSeries": "timeseries_id",
    "trajectory": "trajectory_id",
    "profile": "profile_id",
    "timeSeriesProfile": "timeseries_id",
    "trajectoryProfile": "trajectory_id",
}
_INSTANCE = {
    "timeSeries": "station",
    "trajectory": "trajectory",
    "profile": "profile",
    "timeSeriesProfile": "station",
    "trajectoryProfile": "trajectory",
}


@dataclass
class _Features:
    """Observations nested as instance [-> profile] -> observation, each level's variables flat.

    ``counts[i]`` holds how many children each element of level ``i`` has; ``levels`` maps a
    variable to the level it lives on (0 the instance).
    """

    feature_type: str
    ids: list[str]
    counts: list[np.ndarray]
    values: dict[str, np.ndarray] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)
    flags: tuple[str, np.ndarray] = _OCEANSITES
    shared: str = "time"  # the element coordinate of the orthogonal layout

    def add(self, name: str, level: int, values) -> None:
        self.values[name], self.levels[name] = np.asarray(values), level


def write_dsg(out_dir: str | os.PathLike[str], *, seed: int = 0) -> list[Path]:
    """Write every feature type in every layout to ``dsg/``; return the files, sorted.

    Parameters
    ----------
    out_dir
        Root folder; files go to its ``dsg`` sub-folder.
    seed
        Seed of the positions, values and flags; the orthogonal file of a feature type holds
        other instances than the others (its instances must share their element coordinate).
    """
    folder = _kind_dir(out_dir, "dsg")
    paths = []
    for number, feature_type in enumerate(FEATURE_TYPES):
        for layout in LAYOUTS:
            rng = np.random.default_rng([seed, _DSG, number, layout == "orthogonal"])
            features = _FEATURES[feature_type](rng, seed, layout == "orthogonal")
            path = folder / f"{feature_type}-{layout}.nc"
            with _atomic(path) as tmp:
                _write(tmp, features, layout)
            paths.append(path)
    return sorted(paths)


# --- the observations of each feature type -------------------------------------------------


def _counts(rng, n: int, low: int, high: int, same: bool) -> np.ndarray:
    return np.full(n, high) if same else rng.integers(low, high + 1, n)


def _flags(rng, values: np.ndarray, flags: tuple[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Flag most values good, some unchecked, a few doubtful (shifted), bad (spiked) or missing.

    Unchecked is QARTOD's 2 (not evaluated) but OceanSITES' 2 (probably good): files of both
    kinds then say the same thing with the same number in two different ways.
    """
    u = rng.random(values.shape)
    qc = np.full(values.shape, 1, dtype=np.int8)
    values = values.copy()
    qc[u < 0.10] = 2
    qc[u < 0.05], values[u < 0.05] = 3, values[u < 0.05] + 0.3
    qc[u < 0.02], values[u < 0.02] = 4, values[u < 0.02] + 5.0
    qc[u < 0.01], values[u < 0.01] = 9, np.nan
    return np.round(values, 3), qc


def _measure(rng, features: _Features, temp: np.ndarray, psal: np.ndarray) -> _Features:
    level = len(features.counts)
    for name, values in (("temp", temp), ("psal", psal)):
        values, qc = _flags(rng, values, features.flags)
        features.add(name, level, values)
        features.add(f"{name}_qc", level, qc)
    return features


def _t(days) -> np.ndarray:
    return _days_since(_EPOCH_SST, _START) + np.asarray(days)


def _seconds(days) -> np.ndarray:
    return np.round((_START - dt.datetime(1970, 1, 1)).total_seconds() + np.asarray(days) * 86400)


def _moorings(rng, seed: int, orthogonal: bool) -> _Features:
    """Three moorings off Brittany, Galicia and Norway, hourly for two days."""
    sites = np.array([(48.2, -5.2), (42.0, -9.6), (60.3, 4.4)])
    counts = _counts(rng, 3, 30, 48, orthogonal)
    hours = (
        np.concatenate([np.arange(n) + (0 if orthogonal else rng.integers(0, 6)) for n in counts])
        / 24
    )
    instance = np.repeat(np.arange(3), counts)
    depth = np.array([5.0, 10.0, 20.0])
    lat, lon = sites[instance].T
    temp = (
        _sst_climatology(lat, lon, _t(hours), seed)
        - 273.15
        - 0.05 * depth[instance]
        + 0.2 * np.sin(2 * np.pi * hours * 24 / 12.42)
        + rng.normal(0, 0.02, hours.size)
    )
    psal = 35.2 - 0.3 * (instance == 2) + 0.02 * depth[instance] + rng.normal(0, 0.01, hours.size)
    features = _Features("timeSeries", ["MOOR-IROISE", "MOOR-VIGO", "MOOR-BERGEN"], [counts])
    features.add("lat", 0, sites[:, 0])
    features.add("lon", 0, sites[:, 1])
    features.add("depth", 0, depth)
    features.add("time", 1, _seconds(hours))
    return _measure(rng, features, temp, psal)


def _ship(rng, seed: int, orthogonal: bool) -> _Features:
    """Two ships' thermosalinographs (3 m), every ten minutes across the Bay of Biscay."""
    counts = _counts(rng, 2, 40, 60, orthogonal)
    steps = np.concatenate([np.arange(n) for n in counts])
    instance = np.repeat(np.arange(2), counts)
    minutes = steps * 10.0 + (0 if orthogonal else 5.0 * instance)
    lat = np.array([46.0, 44.5])[instance] + 0.02 * steps + rng.normal(0, 0.002, steps.size)
    lon = np.array([-8.0, -3.0])[instance] - 0.03 * steps * (1 - 2 * instance)
    temp = (
        _sst_climatology(lat, lon, _t(minutes / 1440), seed)
        - 273.15
        + rng.normal(0, 0.03, steps.size)
    )
    psal = 35.6 - 0.01 * steps * instance + rng.normal(0, 0.01, steps.size)
    features = _Features(
        "trajectory", ["SHIP-THALASSA", "SHIP-POURQUOI-PAS"], [counts], flags=_QARTOD
    )
    features.add("time", 1, _seconds(minutes / 1440))
    features.add("lat", 1, np.round(lat, 4))
    features.add("lon", 1, np.round(lon, 4))
    features.add("depth", 1, np.full(steps.size, 3.0))
    return _measure(rng, features, temp, psal)


def _profiles(rng, seed: int, lat, lon, days, levels: np.ndarray, counts) -> tuple:
    """Temperature and salinity of casts at ``levels`` (m), flattened over each cast's levels."""
    temp, psal = _ts_profiles(
        rng,
        np.asarray(lat),
        np.asarray(lon),
        _t(days),
        levels[None, :] * np.ones((len(lat), 1)),
        seed,
    )
    keep = np.arange(levels.size)[None, :] < np.asarray(counts)[:, None]
    return temp[keep], psal[keep], np.broadcast_to(levels, keep.shape)[keep]


def _casts(rng, seed: int, orthogonal: bool) -> _Features:
    """Four CTD casts of a cruise in the North Atlantic, every 10 m to 150-300 m."""
    counts = _counts(rng, 4, 15, 30, orthogonal)
    lat, lon = np.array([45.0, 45.5, 46.0, 46.5]), np.array([-20.0, -20.5, -21.0, -21.5])
    days = np.array([0.3, 0.7, 1.1, 1.6])
    temp, psal, depth = _profiles(rng, seed, lat, lon, days, 10.0 * np.arange(1, 31), counts)
    features = _Features(
        "profile", [f"CAST-{i:03d}" for i in range(1, 5)], [counts], shared="depth"
    )
    features.add("time", 0, _seconds(days))
    features.add("lat", 0, lat)
    features.add("lon", 0, lon)
    features.add("depth", 1, depth)
    return _measure(rng, features, temp, psal)


def _moored_profilers(rng, seed: int, orthogonal: bool) -> _Features:
    """Two moored profilers in the Bay of Biscay, a profile every six hours, 5 m to 60 m."""
    profiles = _counts(rng, 2, 4, 6, orthogonal)
    station = np.repeat(np.arange(2), profiles)
    levels = _counts(rng, station.size, 8, 12, orthogonal)
    days = np.concatenate([np.arange(n) for n in profiles]) / 4
    lat, lon = np.array([45.2, 44.1]), np.array([-3.6, -2.5])
    temp, psal, depth = _profiles(
        rng, seed, lat[station], lon[station], days, 5.0 * np.arange(1, 13), levels
    )
    features = _Features(
        "timeSeriesProfile", ["PROF-GASCOGNE", "PROF-CAPBRETON"], [profiles, levels], shared="depth"
    )
    features.add("lat", 0, lat)
    features.add("lon", 0, lon)
    features.add("time", 1, _seconds(days))
    features.add("depth", 2, depth)
    return _measure(rng, features, temp, psal)


def _gliders(rng, seed: int, orthogonal: bool) -> _Features:
    """Two gliders off Mallorca and Toulon: dives to 100-200 m, pressure and depth every 10 m."""
    profiles = _counts(rng, 2, 3, 5, orthogonal)
    glider = np.repeat(np.arange(2), profiles)
    dive = np.concatenate([np.arange(n) for n in profiles])
    levels = _counts(rng, glider.size, 10, 20, orthogonal)
    days = dive * 0.15 + 0.05 * glider
    lat = np.array([39.2, 42.8])[glider] - 0.01 * dive
    lon = np.array([2.6, 6.0])[glider] + 0.015 * dive
    temp, psal, depth = _profiles(rng, seed, lat, lon, days, 10.0 * np.arange(1, 21), levels)
    features = _Features(
        "trajectoryProfile",
        ["GLIDER-SEAEXPLORER-01", "GLIDER-SLOCUM-07"],
        [profiles, levels],
        flags=_QARTOD,
        shared="depth",
    )
    features.add("time", 1, _seconds(days))
    features.add("lat", 1, np.round(lat, 4))
    features.add("lon", 1, np.round(lon, 4))
    features.add("depth", 2, depth)
    # In the upper ocean, pressure in dbar is about 1 % more than depth in metres.
    features.add("pres", 2, np.round(depth * 1.0076 + 2.2e-6 * depth**2, 2))
    return _measure(rng, features, temp, psal)


_FEATURES = {
    "timeSeries": _moorings,
    "trajectory": _ship,
    "profile": _casts,
    "timeSeriesProfile": _moored_profilers,
    "trajectoryProfile": _gliders,
}


# --- layouts ---------------------------------------------------------------------------------


def _write(path: Path, features: _Features, layout: str) -> None:
    kind = features.feature_type
    dims = [_INSTANCE[kind], *(["profile"] if len(features.counts) == 2 else []), "obs"]
    if layout == "single":
        features = _first_instance(features)
        encoded, sizes = _multidimensional(features, dims, orthogonal=False)
        encoded = {
            name: (var_dims[1:], values[0], attrs)
            for name, (var_dims, values, attrs) in encoded.items()
        }
        del sizes[dims[0]]
    elif layout in ("orthogonal", "incomplete"):
        encoded, sizes = _multidimensional(features, dims, layout == "orthogonal")
    else:
        encoded, sizes = _ragged(features, dims, layout == "indexed")
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.setncatts(
            {
                "Conventions": "CF-1.11, ACDD-1.3",
                "featureType": kind,
                "title": f"Synthetic {kind} observations, {layout} layout (CF appendix H)",
                "institution": "eosc-pangeo",
                "source": "synthetic: eosc_pangeo.demo_data.dsg, not observations",
                "history": "created by eosc_pangeo.demo_data.write_dsg",
            }
        )
        for name, size in sizes.items():
            ds.createDimension(name, size)
        width = max(len(i) for i in features.ids)
        ds.createDimension("name_strlen", width)
        instances = () if layout == "single" else (dims[0],)
        ids = ds.createVariable(f"{dims[0]}_name", "S1", (*instances, "name_strlen"))
        ids.setncatts({"cf_role": _ROLES[kind], "long_name": f"{dims[0]} name"})
        chars = netCDF4.stringtochar(np.array(features.ids, dtype=f"S{width}"))
        ids[:] = chars[0] if layout == "single" else chars
        coordinates = " ".join(n for n in ("time", "lat", "lon", "depth") if n in encoded)
        meanings, values = features.flags
        for name, (var_dims, data, extra) in encoded.items():
            flag = name.endswith("_qc")
            if flag:
                dtype, fill = "i1", _FLAG_FILL
            elif name == "row_size" or name.endswith("_index"):
                dtype, fill = "i4", None
            else:
                dtype, fill = ("f8", -1.0) if name == "time" else ("f4", _FILL)
            var = ds.createVariable(name, dtype, var_dims, fill_value=fill)
            attrs = dict(extra)
            if flag:
                attrs |= {
                    "long_name": f"quality flag of {name[:-3]}",
                    "flag_values": values,
                    "flag_meanings": meanings,
                }
            else:
                attrs |= _ATTRS.get(name, {})
            if name in ("temp", "psal", "pres"):
                attrs["coordinates"] = f"{coordinates} {dims[0]}_name"
            if f"{name}_qc" in encoded:
                attrs["ancillary_variables"] = f"{name}_qc"
            var.setncatts(attrs)
            var[:] = np.ma.masked_invalid(data) if not flag else np.ma.masked_equal(data, -128)


def _multidimensional(features: _Features, dims: list[str], orthogonal: bool):
    """(instance[, profile], element) arrays padded with fill values; orthogonal arrays keep
    their shared element coordinate one-dimensional."""
    shape = [len(features.ids)] + [int(c.max()) for c in features.counts]
    if orthogonal:
        dims = dims[:-1] + [features.shared]
    encoded = {}
    for name, values in features.values.items():
        level = features.levels[name]
        if orthogonal and name == features.shared:
            encoded[name] = ((dims[-1],), values[: shape[-1]], {})
            continue
        index = _positions_of_level(features, level)
        flag = name.endswith("_qc")
        dense = np.full(
            shape[: level + 1], -128 if flag else np.nan, dtype=np.int8 if flag else np.float64
        )
        dense[tuple(index)] = values
        encoded[name] = (tuple(dims[: level + 1]), dense, {})
    return encoded, dict(zip(dims, shape, strict=True))


def _first_instance(features: _Features) -> _Features:
    """The first instance alone, with its profiles and observations."""
    first = _Features(
        features.feature_type, features.ids[:1], [], flags=features.flags, shared=features.shared
    )
    kept = np.array([0])  # elements of the current level that belong to the first instance
    selected = {0: kept}
    for level, counts in enumerate(features.counts, start=1):
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        first.counts.append(counts[kept])
        kept = np.concatenate([np.arange(starts[k], starts[k] + counts[k]) for k in kept])
        selected[level] = kept
    for name, values in features.values.items():
        first.add(name, features.levels[name], values[selected[features.levels[name]]])
    return first


def _positions_of_level(features: _Features, level: int) -> list[np.ndarray]:
    """For each element of ``level``: its index along every dimension up to that level."""
    index = [np.arange(len(features.ids))]
    for counts in features.counts[:level]:
        parents = np.repeat(np.arange(counts.size), counts)
        index = [i[parents] for i in index] + [np.concatenate([np.arange(n) for n in counts])]
    return index


def _ragged(features: _Features, dims: list[str], indexed: bool):
    """Ragged arrays: the observations of each instance (profile) one after another with a
    count variable, or in time order with an index variable."""
    sizes = {dims[0]: len(features.ids)}
    sizes.update({dim: int(c.sum()) for dim, c in zip(dims[1:], features.counts, strict=True)})
    encoded = {}
    order = np.arange(sizes["obs"])
    if indexed:
        parent = np.repeat(np.arange(features.counts[-1].size), features.counts[-1])
        time = features.values["time"]
        when = time if features.levels["time"] == len(features.counts) else time[parent]
        order = np.argsort(when, kind="stable")
        encoded[f"{dims[-2]}_index"] = (
            ("obs",),
            parent[order],
            {
                "long_name": f"which {dims[-2]} this observation is for",
                "instance_dimension": dims[-2],
            },
        )
    else:
        encoded["row_size"] = (
            dims[-2:-1],
            features.counts[-1],
            {"long_name": f"number of observations of each {dims[-2]}", "sample_dimension": "obs"},
        )
    if len(features.counts) == 2:  # the profiles' station or trajectory (CF H.5.3, H.6.2)
        encoded[f"{dims[0]}_index"] = (
            ("profile",),
            np.repeat(np.arange(len(features.ids)), features.counts[0]),
            {"long_name": f"which {dims[0]} this profile is of", "instance_dimension": dims[0]},
        )
    for name, values in features.values.items():
        level = features.levels[name]
        encoded[name] = ((dims[level],), values[order] if dims[level] == "obs" else values, {})
    return encoded, sizes
