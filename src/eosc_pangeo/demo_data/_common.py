"""What every kind of sample data shares: seeds, atomic files, geography and the ocean.

The land mask, the spectral synthesis of smooth random fields and the SST climatology with its
meandering fronts live here, so that the gridded SST, the Argo floats, the stations and the CF
DSG samples all see one ocean.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import netCDF4
import numpy as np

from .._processes import pool_context

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
_DSG = 9  # every CF DSG sample

_EPOCH_SST = dt.datetime(1981, 1, 1)
_EPOCH_ARGO = dt.datetime(1950, 1, 1)
_YEAR = 365.2425
_FREEZING_K = 271.35
_KM_PER_DEG = 111.195
_LICENSE = "CC0-1.0 (synthetic data, no rights reserved)"
_CREATOR = "eosc-pangeo demo data generator"
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


# A kind's spec (SstSpec, ArgoSpec...): each kind's writer takes its own.
SpecT = TypeVar("SpecT")

# Below this many files a process pool costs more (starting interpreters) than it saves.
_POOL_MIN_FILES = 32


def _write_files(
    kind: str,
    write_one: Callable[[SpecT, int, int, Path], None],
    spec: SpecT,
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
# Fronts and the SST climatology, shared by sst, argo and stations
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


def _winterness(lat: np.ndarray, t: np.ndarray) -> np.ndarray:
    """0 in late summer, 1 in late winter, in each hemisphere."""
    return 0.5 * (1 - np.sign(lat) * np.cos(2 * np.pi * ((t % _YEAR) - 232) / _YEAR))


def _chars(values, width: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Blank-padded fixed-width strings as a char array (the Argo way), broadcast to ``shape``."""
    strings = np.char.ljust(np.asarray(values, dtype="S"), width).astype(f"S{width}")
    if shape is not None:
        strings = np.ascontiguousarray(np.broadcast_to(strings, shape))
    return netCDF4.stringtochar(strings)
