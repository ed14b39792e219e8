"""Deterministic, physically plausible sample data, written the way data centres publish it.

Four kinds of source files are generated offline from a seed alone:

``sst``
    ``sst/YYYYMMDD-sst.nc``: one CF/ACDD NetCDF-4 file per day of a GHRSST-L4-like analysis.
``climate``
    ``climate/tas_Amon_EOSC-ESM_historical_r1i1p1f1_gn_YYYY01-YYYY12.nc``: CMIP6-style monthly
    near-surface air temperature, one file per decade.
``argo``
    ``argo/<WMO>-prof.nc``: Argo multi-profile files (format 3.1), one per float.
``stations``
    ``stations/<station_id>.csv``: hourly coastal station series with OceanSITES variable codes.

Every random stream is ``numpy.random.default_rng([seed, stream, index])``, with ``stream`` a
fixed number per kind and purpose and ``index`` the file's number, so that each file can be
regenerated alone, in any order, and the same seed gives byte-identical values. The land mask is
a fixed function of position (not of the seed), so every kind, size and seed shares one ocean.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd

from ._processes import pool_context
from .demo_sizes import SIZES

__all__ = [
    "KINDS",
    "SIZES",
    "ArgoSpec",
    "ClimateSpec",
    "Progress",
    "Spec",
    "SstSpec",
    "StationSpec",
    "specs_for_size",
    "write_argo",
    "write_climate",
    "write_demo_data",
    "write_sst",
    "write_stations",
]

KINDS = ("sst", "climate", "argo", "stations")

Progress = Callable[[str, int, int], None]
"""``progress(kind, done, total)``, called after each file is written."""

# The second element of every seed. Renumbering one changes the data of that stream only.
_SST_EDDIES = 1  # mesoscale field, shared by all days
_SST_FRONTS = 2  # front meanders, shared by sst, argo and stations
_CLIMATE_MODES = 3  # interannual variability, shared by all decades
_CLIMATE_FILE = 4  # monthly weather of one decade file
_ARGO_LAYOUT = 5  # vertical sampling of one float; replayed to count observations
_ARGO_FLOAT = 6
_STATION_LAYOUT = 7  # outages of one station; replayed to count observations
_STATION = 8

_EPOCH_SST = dt.datetime(1981, 1, 1)
_EPOCH_ARGO = dt.datetime(1950, 1, 1)
_YEAR = 365.2425
_FREEZING_K = 271.35
_KM_PER_DEG = 111.195
_LICENSE = "CC0-1.0 (synthetic data, no rights reserved)"
_CREATOR = "eosc-pangeo demo data generator"


# --------------------------------------------------------------------------------------------
# Specifications
# --------------------------------------------------------------------------------------------


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


Spec = SstSpec | ClimateSpec | ArgoSpec | StationSpec


def specs_for_size(size: str) -> dict[str, Spec]:
    """Return the spec of each kind that :func:`write_demo_data` uses for ``size``.

    Parameters
    ----------
    size
        One of :data:`SIZES`.

    Returns
    -------
    dict
        Kind name -> spec.
    """
    if size == "small":
        return {
            "sst": SstSpec(days=10, resolution=2.0),
            "climate": ClimateSpec(2000, 2019, 5.0),
            "argo": ArgoSpec(floats=5, profiles=10),
            "stations": StationSpec(stations=3, days=10),
        }
    if size == "medium":
        return {
            "sst": SstSpec(days=60, resolution=0.5),
            "climate": ClimateSpec(1950, 2019, 2.5),
            "argo": ArgoSpec(floats=50, profiles=36),
            "stations": StationSpec(stations=10, days=60),
        }
    if size == "large":
        # 3400 floats (about the size of the real Argo array) put argo + stations above
        # 10 million observations with a margin of a few per cent, whatever the seed.
        return {
            "sst": SstSpec(days=366, resolution=0.25),
            "climate": ClimateSpec(1850, 2019, 1.0),
            "argo": ArgoSpec(floats=3400, profiles=36),
            "stations": StationSpec(stations=40, days=366),
        }
    raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")


def write_demo_data(
    out_dir: str | os.PathLike[str],
    size: str = "small",
    *,
    seed: int = 0,
    kinds: Sequence[str] = KINDS,
    progress: Progress | None = None,
    workers: int | None = None,
) -> dict[str, list[Path]]:
    """Write the sample data of ``size`` under ``out_dir``, one sub-folder per kind.

    Parameters
    ----------
    out_dir
        Folder to write into (created if needed); existing files of the same names are replaced.
    size
        One of :data:`SIZES`: ``small`` takes a second, ``large`` a few minutes and a few GB.
    seed
        The same seed gives the same values, whatever the order or subset of files written.
    kinds
        Kinds to write, among :data:`KINDS`.
    progress
        Optional ``progress(kind, done, total)``, called after each file.
    workers
        Processes writing files at once; by default one per available CPU when a kind has
        many files, else one. The values do not depend on it.

    Returns
    -------
    dict
        Kind -> sorted paths of the files written.
    """
    specs = specs_for_size(size)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown kinds {unknown}; choose among {', '.join(KINDS)}")
    writers = {
        "sst": write_sst,
        "climate": write_climate,
        "argo": write_argo,
        "stations": write_stations,
    }
    return {
        kind: writers[kind](specs[kind], out_dir, seed=seed, progress=progress, workers=workers)
        for kind in kinds
    }


# --------------------------------------------------------------------------------------------
# Shared helpers: files, grids, geography
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary name next to ``path``; move it to ``path`` only if the block succeeds.

    The temporary name starts with a dot and ends in ``.tmp`` so that globs for the real files
    never see a half-written one.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _kind_dir(out_dir: str | os.PathLike[str], kind: str) -> Path:
    folder = Path(out_dir) / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _report(progress: Progress | None, kind: str, done: int, total: int) -> None:
    if progress is not None:
        progress(kind, done, total)


_WriteOne = Callable[[Spec, int, int, Path], None]

# Below this many files a process pool costs more (starting interpreters) than it saves.
_POOL_MIN_FILES = 32


def _write_files(
    kind: str,
    write_one: _WriteOne,
    spec: Spec,
    seed: int,
    paths: list[Path],
    progress: Progress | None,
    workers: int | None,
) -> list[Path]:
    """Call ``write_one(spec, seed, index, path)`` for every path, in processes if worthwhile.

    Each file draws from its own random streams, so the order and the process that writes it
    change nothing in its values.
    """
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if len(paths) >= _POOL_MIN_FILES else 1
    workers = max(1, min(workers, len(paths)))
    if workers == 1:
        for index, path in enumerate(paths):
            write_one(spec, seed, index, path)
            _report(progress, kind, index + 1, len(paths))
        return sorted(paths)
    with ProcessPoolExecutor(workers, mp_context=pool_context()) as pool:
        futures = [pool.submit(write_one, spec, seed, i, path) for i, path in enumerate(paths)]
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                future.result()
                _report(progress, kind, done, len(paths))
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return sorted(paths)


def _axis(resolution: float, start: float, stop: float) -> np.ndarray:
    """Cell centres of a regular axis from ``start`` to ``stop``."""
    n = round((stop - start) / resolution)
    if n <= 0 or not math.isclose(n * resolution, stop - start):
        raise ValueError(f"resolution {resolution} does not divide {stop - start} degrees")
    return start + resolution * (np.arange(n) + 0.5)


def _days_since(epoch: dt.datetime, when: dt.date | dt.datetime) -> float:
    if not isinstance(when, dt.datetime):
        when = dt.datetime(when.year, when.month, when.day)
    return (when - epoch).total_seconds() / 86400.0


def _red_noise(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Noise of unit variance along the last axis, correlated over about ``scale`` samples.

    White noise is filtered with a Gaussian in Fourier space: smooth and fully vectorised,
    unlike a recursive AR(1) filter.
    """
    n = shape[-1]
    gain = np.exp(-0.5 * (np.fft.rfftfreq(n) * 2 * np.pi * scale) ** 2)
    noise = np.fft.irfft(np.fft.rfft(rng.standard_normal(shape), axis=-1) * gain, n=n, axis=-1)
    # The expected variance of the filtered noise, not the sample's, so that short series are
    # not inflated: every rfft bin but the first (and the Nyquist one) stands for two.
    weights = np.full(gain.size, 2.0)
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 1.0
    return noise / np.sqrt(np.sum(weights * gain**2) / n)


# Continents as unions of spherical caps (lat, lon, radius in degrees), roughly where the real
# ones are, so that fronts and the names of coastal stations fall in sensible places.
# fmt: off
_CAPS = np.array(
    [
        (55, -105, 20), (40, -95, 13), (64, -150, 9), (21, -101, 6), (12, -85, 3),  # N America
        (73, -40, 9),  # Greenland
        (-8, -60, 15), (-28, -63, 10), (-42, -69, 5), (5, -68, 7),  # S America
        (47, 2, 6), (53, 20, 10), (62, 40, 14), (62, 95, 23), (45, 80, 18),  # Eurasia
        (30, 105, 14), (32, 45, 9), (20, 78, 8), (66, 140, 14), (22, 46, 8),
        (12, 12, 17), (22, -2, 12), (-10, 25, 14), (-24, 25, 9),  # Africa
        (-25, 134, 13),  # Australia
        (-90, 0, 22),  # Antarctica
        (54, -3, 3), (36, 138, 3), (-42, 173, 3), (0, 114, 4), (-5, 141, 4), (-19, 46.5, 4),
    ],
    dtype=float,
)
# fmt: on
# Low-order waves (amplitude in degrees, zonal and meridional wavenumbers, phase) that make
# the coasts irregular; gentle enough that the "height" stays close to a distance to the coast.
_COAST_WAVES = ((1.6, 5, 4, 0.3), (1.2, 9, 7, 2.1), (0.8, 14, 11, 4.0))


def _land_height(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Return a smooth "height" in degrees: > 0 on land, < 0 at sea, about the coast distance.

    ``lat`` and ``lon`` broadcast; any longitude convention works.
    """
    phi, lam = np.radians(lat), np.radians(lon)
    sin_phi, cos_phi = np.sin(phi), np.cos(phi)
    height = np.full(np.broadcast_shapes(np.shape(lat), np.shape(lon)), -np.inf)
    for lat0, lon0, radius in _CAPS:
        cos_d = sin_phi * math.sin(math.radians(lat0)) + cos_phi * math.cos(
            math.radians(lat0)
        ) * np.cos(lam - math.radians(lon0))
        np.maximum(height, radius - np.degrees(np.arccos(np.clip(cos_d, -1, 1))), out=height)
    for amplitude, m, n, phase in _COAST_WAVES:
        height += amplitude * np.sin(m * lam + phase) * np.cos(n * phi + phase)
    return height


@functools.lru_cache(maxsize=8)
def _global_land(resolution: float) -> np.ndarray:
    """Land mask of the global grid, lat ascending x lon from -180 (cached, read-only)."""
    lat, lon = _axis(resolution, -90, 90), _axis(resolution, -180, 180)
    land = _land_height(lat[:, None], lon[None, :]) > 0
    land.flags.writeable = False
    return land


# --------------------------------------------------------------------------------------------
# Spectral synthesis of smooth random fields on the sphere's lat-lon rectangle
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Modes:
    """Fourier modes ``exp(2 pi i (kx (lon + 180) / 360 + ky (lat + 90) / 180))``."""

    kx: np.ndarray
    ky: np.ndarray
    amplitude: np.ndarray


@functools.lru_cache(maxsize=8)
def _modes(kmax: int, cutoff: float, std: float) -> _Modes:
    """Modes with wavelengths down to about ``cutoff`` degrees, for a field of std ``std``."""
    kx, ky = np.meshgrid(np.arange(kmax + 1), np.arange(-(kmax // 2), kmax // 2 + 1))
    kx, ky = kx.ravel(), ky.ravel()
    # kx counts cycles per 360 degrees and ky per 180, so equal kappa means equal wavelength.
    kappa = np.hypot(kx / 360, ky / 180)
    kx, ky, kappa = kx[kappa > 0], ky[kappa > 0], kappa[kappa > 0]
    # Equal variance per octave of wavelength down to the cutoff: blobs of every size.
    amplitude = np.exp(-0.5 * (kappa * cutoff) ** 2) / kappa
    # Each mode contributes 2 |a|^2 of variance (the mode and its conjugate).
    amplitude *= std / np.sqrt(2 * np.sum(amplitude**2))
    return _Modes(kx, ky, amplitude)


def _turning(
    rng: np.random.Generator, modes: _Modes, period: float, drift: float
) -> tuple[np.ndarray, np.ndarray]:
    """Random phases and frequencies (radians per day) that make ``modes`` evolve.

    Each mode turns with its own frequency (time scale ``period`` days) and drifts west at
    ``drift`` degrees of longitude per day, as Rossby waves and eddies do, so the field changes
    smoothly and can be evaluated at any time without its past.
    """
    phase = rng.uniform(0, 2 * np.pi, modes.kx.size)
    frequency = rng.normal(0, 2 * np.pi / period, modes.kx.size)
    return phase, frequency - 2 * np.pi * drift * modes.kx / 360


def _synthesize(modes: _Modes, coef: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Sum the modes with complex coefficients ``coef`` (..., n_modes) on a global grid.

    Modes finer than the grid can hold are dropped, so a coarse grid sees the same field,
    smoothed. The phase shift makes the field a function of position, not of grid index.
    """
    ny, nx = lat.size, lon.size
    fits = (modes.kx < nx // 2) & (np.abs(modes.ky) < ny // 2)
    kx, ky = modes.kx[fits], modes.ky[fits]
    shift = np.exp(2j * np.pi * (kx * (lon[0] + 180) / 360 + ky * (lat[0] + 90) / 180))
    spectrum = np.zeros((*coef.shape[:-1], ny, nx // 2 + 1), dtype=complex)
    spectrum[..., ky % ny, kx] = coef[..., fits] * shift
    return np.fft.irfft2(spectrum, s=(ny, nx)) * (ny * nx)


# --------------------------------------------------------------------------------------------
# Sea surface temperature
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Front:
    """A meandering front: warm on the equator side, ``dt`` kelvin across ``width`` degrees."""

    lat0: float  # latitude of the axis at lon0
    lon0: float
    tilt: float  # degrees of latitude per degree of longitude
    lon_west: float  # the front fades out beyond these longitudes
    lon_east: float
    dt: float
    width: float
    meander: float  # meander amplitude, degrees
    wavelength: float  # degrees of longitude
    stationary: float  # amplitude of a fixed wavenumber-1 wobble, degrees


_FRONTS = (
    _Front(36, -75, 0.2, -80, -30, 6.0, 0.4, 1.5, 12, 0),  # Gulf Stream
    _Front(35, 141, 0.05, 138, 170, 5.0, 0.5, 1.2, 10, 0),  # Kuroshio
    _Front(-50, 0, 0, -1e9, 1e9, 4.0, 0.7, 1.5, 20, 3.0),  # Antarctic Circumpolar Current
)
_FRONT_SPEED = 0.08  # meander drift, degrees of longitude per day


@functools.lru_cache(maxsize=16)
def _front_phases(seed: int) -> np.ndarray:
    """Random meander phases, (front, 2): fixed for a seed, shared by every kind."""
    return np.random.default_rng([seed, _SST_FRONTS, 0]).uniform(0, 2 * np.pi, (len(_FRONTS), 2))


def _front_axis(front: _Front, lon: np.ndarray, t: float | np.ndarray, phases) -> np.ndarray:
    k = 2 * np.pi / front.wavelength
    return (
        front.lat0
        + front.tilt * (lon - front.lon0)
        + front.stationary * np.sin(np.radians(lon - 20))
        + front.meander * np.sin(k * (lon - _FRONT_SPEED * t) + phases[0])
        + 0.5 * front.meander * np.sin(2.3 * k * (lon + 0.6 * _FRONT_SPEED * t) + phases[1])
    )


def _front_window(front: _Front, lon: np.ndarray) -> np.ndarray:
    return (
        0.25 * (1 + np.tanh((lon - front.lon_west) / 3)) * (1 - np.tanh((lon - front.lon_east) / 3))
    )


def _sst_climatology(lat, lon, t, seed: int) -> np.ndarray:
    """Return the SST in kelvin without eddies: latitude gradient, seasons, fronts.

    Arguments broadcast; ``t`` is in days since 1981-01-01 and ``lon`` in -180..180.
    """
    phi = np.radians(lat)
    # About -1.8 C at the poles and 29 C at the equator.
    base = _FREEZING_K + 30.8 * np.cos(phi) ** 2
    # Warmest in late August in the north, late February in the south.
    season = 3.5 * np.sin(2 * phi) * np.cos(2 * np.pi * ((t % _YEAR) - 232) / _YEAR)
    return (
        base
        + season
        + sum(
            _front_step(front, lat, lon, t, phases)
            for front, phases in zip(_FRONTS, _front_phases(seed), strict=True)
        )
    )


def _front_step(front: _Front, lat, lon, t, phases) -> np.ndarray:
    """Return the front's contribution: a sharp step minus a broad one of the same size.

    The front so gathers the large-scale gradient into a few tenths of a degree and changes
    nothing far from it.
    """
    distance = lat - _front_axis(front, lon, t, phases)
    sharp_minus_broad = np.tanh(distance / front.width) - np.tanh(distance / 8.0)
    return -0.5 * front.dt * sharp_minus_broad * _front_window(front, lon)


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


# --------------------------------------------------------------------------------------------
# Climate model output
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Argo floats
# --------------------------------------------------------------------------------------------

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


def _wrap_lon(lon: np.ndarray) -> np.ndarray:
    return (lon + 180) % 360 - 180


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
        lon = _wrap_lon(lon0 + np.cumsum(steps[1] / (_KM_PER_DEG * cos_lat)))
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


def _winterness(lat: np.ndarray, t: np.ndarray) -> np.ndarray:
    """0 in late summer, 1 in late winter, in each hemisphere."""
    return 0.5 * (1 - np.sign(lat) * np.cos(2 * np.pi * ((t % _YEAR) - 232) / _YEAR))


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


def _chars(values, width: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Blank-padded fixed-width strings as a char array (the Argo way), broadcast to ``shape``."""
    strings = np.char.ljust(np.asarray(values, dtype="S"), width).astype(f"S{width}")
    if shape is not None:
        strings = np.ascontiguousarray(np.broadcast_to(strings, shape))
    return netCDF4.stringtochar(strings)


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


# --------------------------------------------------------------------------------------------
# Coastal stations
# --------------------------------------------------------------------------------------------

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
