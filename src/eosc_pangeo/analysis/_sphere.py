"""Nearest cells and neighbourhoods of points on the sphere, for regular and curvilinear grids.

Distances are great-circle distances on a sphere of the Earth's mean radius, whatever the
longitude convention (-180..180 or 0..360) of the grid or of the points.

A regular latitude/longitude grid needs no tree: the nearest cell in longitude is the same for
every row, and on that column the nearest row is the one closest to the latitude where the great
circle through the point and the column's meridian peaks (see :meth:`Regular.nearest`), so two
look-ups on 1-D axes (:class:`SortedAxis`) give the exact great-circle nearest cell.
Curvilinear grids and radius searches use scipy's cKDTree on 3-D unit vectors, where the chord
length orders points as the arc does.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from ..geometry import wrap_longitude

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius


def unit_vectors(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """``(n, 3)`` unit vectors of points given in degrees."""
    phi, lam = np.radians(lat_deg), np.radians(lon_deg)
    cos_phi = np.cos(phi)
    return np.stack([cos_phi * np.cos(lam), cos_phi * np.sin(lam), np.sin(phi)], axis=-1)


def great_circle_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Haversine distance in km between points given in degrees (broadcasting)."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi, dlam = phi2 - phi1, np.radians(np.asarray(lon2) - lon1)
    h = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def chord_of_km(km: float) -> float:
    """Chord length on the unit sphere of an arc of ``km``."""
    return 2.0 * np.sin(min(km / EARTH_RADIUS_KM, np.pi) / 2.0)


def wrapped_lon_delta(lon1, lon2) -> np.ndarray:
    """``|lon1 - lon2|`` in degrees on the circle, in 0..180."""
    return np.abs(wrap_longitude(np.asarray(lon1) - lon2))


class Grid:
    """The horizontal cells of a grid: ``lat`` and ``lon`` of shape ``shape`` (ny, nx)."""

    shape: tuple[int, int]

    @cached_property
    def _tree(self):
        from scipy.spatial import cKDTree

        lat, lon = self.cell_coordinates()
        return cKDTree(unit_vectors(lat.ravel(), lon.ravel()))

    def cell_coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def nearest(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices of the nearest cell of every point."""
        _, flat = self._tree.query(unit_vectors(lat, lon))
        return np.unravel_index(flat, self.shape)

    def within(self, lat: np.ndarray, lon: np.ndarray, radius_km: float):
        """``(point, row, column)`` of every cell within ``radius_km`` of every point."""
        found = self._tree.query_ball_point(
            unit_vectors(lat, lon), chord_of_km(radius_km), return_sorted=False
        )
        counts = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(found))
        flat = (
            np.concatenate([np.asarray(f, dtype=np.int64) for f in found])
            if counts.sum()
            else np.empty(0, dtype=np.int64)
        )
        rows, cols = np.unravel_index(flat, self.shape)
        return np.repeat(np.arange(len(found)), counts), rows, cols

    def box(self, rows: np.ndarray, cols: np.ndarray, size: int):
        """``(point, row, column)`` of the ``size`` x ``size`` cells centred on each cell."""
        half = size // 2
        dy, dx = (
            a.ravel()
            for a in np.meshgrid(
                np.arange(-half, half + 1), np.arange(-half, half + 1), indexing="ij"
            )
        )
        point = np.repeat(np.arange(rows.size), dy.size)
        r = np.repeat(rows, dy.size) + np.tile(dy, rows.size)
        c = np.repeat(cols, dx.size) + np.tile(dx, cols.size)
        if self.wraps:
            c %= self.shape[1]
        keep = (r >= 0) & (r < self.shape[0]) & (c >= 0) & (c < self.shape[1])
        return point[keep], r[keep], c[keep]

    wraps = False


class Regular(Grid):
    """A grid of 1-D latitudes (rows) and longitudes (columns), in any order and convention."""

    def __init__(self, lat: np.ndarray, lon: np.ndarray) -> None:
        self.lat = np.asarray(lat, dtype=float)
        self.lon = np.asarray(lon, dtype=float)
        self.shape = (self.lat.size, self.lon.size)
        self._lat_axis = SortedAxis(self.lat)
        self._lon_axis = SortedAxis(wrap_longitude(self.lon, 0.0), period=360.0)
        if self.lon.size > 1:
            step = np.median(np.diff(self._lon_axis.sorted))
            self.wraps = bool(np.isclose(step * self.lon.size, 360.0, rtol=1e-6))

    def cell_coordinates(self):
        return np.meshgrid(self.lat, self.lon, indexing="ij")

    def nearest(self, lat, lon):
        lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
        col = self._lon_axis.nearest(wrap_longitude(lon, 0.0))
        # On the meridian of that column, cos(distance) = A cos(lat_cell - lat0): the nearest
        # row is the one closest to lat0, not to the point's own latitude (they differ a
        # little away from the equator when the point is off the meridian).
        dlam = np.radians(wrapped_lon_delta(lon, self.lon[col]))
        phi = np.radians(lat)
        lat0 = np.degrees(np.arctan2(np.sin(phi), np.cos(phi) * np.cos(dlam)))
        return self._lat_axis.nearest(lat0), col


class Curvilinear(Grid):
    """A grid of 2-D latitudes and longitudes (ORCA, rotated poles, swaths)."""

    def __init__(self, lat: np.ndarray, lon: np.ndarray) -> None:
        self.lat = np.asarray(lat, dtype=float)
        self.lon = np.asarray(lon, dtype=float)
        self.shape = self.lat.shape

    def cell_coordinates(self):
        return self.lat, self.lon


class SortedAxis:
    """A 1-D axis (any order) that answers "which value is nearest?" for many targets at once.

    Evenly spaced axes, the usual case, are answered by arithmetic and others by a binary
    search; either guess is then settled among its two neighbours on the exact values, so that
    rounding never picks the wrong one. Ties go to the lower value. ``period`` makes the axis a
    circle (longitudes in 0..360).
    """

    def __init__(self, values: np.ndarray, period: float | None = None) -> None:
        values = np.asarray(values)
        self.order = np.argsort(values, kind="stable")
        self.sorted = values[self.order]
        self.period = period
        steps = np.diff(self.sorted)
        self.step = None
        even = steps.size and steps[0] > 0 and np.allclose(steps, steps[0], rtol=1e-6, atol=0)
        # On a circle, arithmetic holds only if the axis goes all the way round.
        whole = (
            period is None or np.isclose(float(steps.mean()) * values.size, period)
            if even
            else False
        )
        if even and whole:
            self.step = float(steps.astype(float).mean())

    def nearest(self, targets: np.ndarray) -> np.ndarray:
        """Index into the original (unsorted) values of the value nearest to each target."""
        n = self.sorted.size
        if self.step is not None:
            offset = (targets - self.sorted[0]).astype(float) / self.step
            guess = np.ceil(offset - 0.5).astype(np.int64)
        else:
            guess = np.searchsorted(self.sorted, targets)
        candidates = np.stack([guess - 1, guess, guess + 1])
        candidates = candidates % n if self.period else np.clip(candidates, 0, n - 1)
        delta = np.abs(self.sorted[candidates] - targets)
        if self.period:
            delta = np.minimum(delta, self.period - delta)
        best = np.take_along_axis(candidates, np.argmin(delta, axis=0)[None], axis=0)[0]
        return self.order[best]


def nearest_on_axis(axis: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the nearest value of a 1-D axis (any order) to each target."""
    return SortedAxis(axis).nearest(targets)


def ranges_on_axis(axis: np.ndarray, low: np.ndarray, high: np.ndarray):
    """``(point, index)`` of every axis value within ``[low, high]`` of each point; the axis
    must be ascending."""
    start = np.searchsorted(axis, low, side="left")
    stop = np.searchsorted(axis, high, side="right")
    return expand_ranges(start, stop)


def expand_ranges(start: np.ndarray, stop: np.ndarray):
    """``(owner, index)`` pairs of the integer ranges ``start[i]..stop[i]`` (vectorised)."""
    counts = np.maximum(stop - start, 0)
    owner = np.repeat(np.arange(start.size), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, np.repeat(start, counts) + offsets
