"""Boxes in longitude and latitude, as STAC gives them: what a valid box is, and how boxes and
points meet across the antimeridian.

A box is ``(west, south, east, north)`` in degrees (CRS84); ``west > east`` crosses the
antimeridian, as in STAC, and covers west..180 and -180..east. The lake (``open_dataset``,
``read_insitu``), the catalogue (``search``, the STAC API, its index), the data service (EDR)
and the analysis check and compare boxes here, each raising its own error type.

The comparisons work on floats, NumPy arrays and pyarrow compute expressions alike (they use
only comparisons, ``&`` and ``|``), so that one rule serves a file's box, a column of Items'
boxes and a Parquet row filter. This module imports nothing heavy: it sits at the bottom of the
package. (The ``antimeridian`` package splits polygons at the antimeridian; nothing here has
polygons to split, only boxes, whose two parts are the two longitude ranges below.)
"""

from __future__ import annotations

from collections.abc import Sequence

BBox = tuple[float, float, float, float]


def check_bbox(value: Sequence[float], error: type[Exception] = ValueError) -> BBox:
    """``(west, south, east, north)`` as floats, from 4 numbers (or 6, with heights, dropped).

    Parameters
    ----------
    value
        The box's numbers.
    error
        The exception raised for a bad box (the caller's own, e.g. ``CatalogError``).

    Raises
    ------
    error
        With a message naming the bad number: not numbers, not 4 (or 6) of them, outside
        [-180, -90, 180, 90], or south above north.
    """
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        raise error(f"bbox {value!r} is not a list of numbers") from None
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4:
        raise error(
            f"bbox needs 4 numbers (west, south, east, north) or 6 with heights, got {len(numbers)}"
        )
    west, south, east, north = numbers
    if not all(-180 <= x <= 180 for x in (west, east)) or not all(
        -90 <= y <= 90 for y in (south, north)
    ):
        raise error(f"bbox {numbers} is outside [-180, -90, 180, 90] (degrees, CRS84)")
    if south > north:
        raise error(
            f"bbox south ({south}) is north of its north ({north}): give (west, south, east, north)"
        )
    return west, south, east, north


def wrap_longitude(lon, west_edge: float = -180.0):
    """``lon`` (degrees, a float or an array) in ``west_edge``..``west_edge + 360``: -180..180
    by default, 0..360 with ``west_edge=0``."""
    return west_edge + (lon - west_edge) % 360


def grid_west_edge(largest_longitude: float) -> float:
    """The western edge of a grid's longitude convention, from its largest longitude: 0 for a
    grid on 0..360, else -180."""
    return 0.0 if largest_longitude > 180 else -180.0


def longitude_parts(west: float, east: float) -> list[tuple[float, float]]:
    """The one or two ordinary ranges (low <= high, in -180..180) a box's longitudes cover."""
    return [(west, east)] if west <= east else [(west, 180.0), (-180.0, east)]


def grid_longitude_ranges(lon, west: float, east: float) -> list[tuple[float, float, float]]:
    """The ``(start, stop, shift)`` ranges of a grid's ascending longitudes ``lon`` (in either
    convention) that cover ``west``..``east``; ``lon + shift`` labels them in the box's own
    convention, contiguous: ``(-10, 10)`` on a 0..360 grid gives 350..360 shifted by -360 and
    0..10; ``(170, -170)`` on a -180..180 grid gives 170..180 and -180..-170 shifted by 360."""
    if east - west >= 360:
        return [(lon[0], lon[-1], 0.0)]
    base = grid_west_edge(lon[-1])
    start = wrap_longitude(west, base)
    stop = start + (east - west) % 360
    shift = west - start  # a multiple of 360
    if stop <= base + 360:
        return [(start, stop, shift)]
    return [(start, base + 360, shift), (base, stop - 360, shift + 360)]


def longitude_within(lon, west: float, east: float):
    """Whether longitudes ``lon`` (-180..180) are in ``west``..``east``, edges included."""
    if west <= east:
        return (lon >= west) & (lon <= east)
    return (lon >= west) | (lon <= east)


def point_in_box(lon, lat, box: BBox):
    """Whether points are in ``box``, edges included (``lon`` in -180..180)."""
    west, south, east, north = box
    return longitude_within(lon, west, east) & (lat >= south) & (lat <= north)


def boxes_overlap(boxes: Sequence, box: BBox):
    """Whether each of ``boxes`` (``(west, south, east, north)``, each a float or an array of
    them, NaN for no box) overlaps ``box``, edges included.

    Either may cross the antimeridian. Comparing longitudes as ordinary intervals would miss
    every box that crosses, so they are compared case by case: two boxes that do not cross
    overlap as intervals do; when exactly one crosses, the other must reach one of its two
    parts (east of its west, or west of its east); two crossing boxes always overlap, both
    holding the antimeridian.
    """
    west, south, east, north = boxes
    query_west, query_south, query_east, query_north = box
    latitudes = (north >= query_south) & (south <= query_north)
    reaches_east_part, reaches_west_part = east >= query_west, west <= query_east
    crossing, query_crossing = west > east, query_west > query_east
    longitudes = (
        (crossing | query_crossing)
        & (reaches_east_part | reaches_west_part | (crossing & query_crossing))
    ) | ((crossing == query_crossing) & reaches_east_part & reaches_west_part)
    return latitudes & longitudes


def longitude_fraction(west: float, east: float, extent_west: float, extent_east: float) -> float:
    """How much of the longitudes west..east the extent covers, 0 to 1 (a single meridian: 1
    if the extent holds it, else 0)."""
    parts = longitude_parts(west, east)
    extent_parts = longitude_parts(extent_west, extent_east)
    span = sum(hi - lo for lo, hi in parts)
    if span <= 0:
        return 1.0 if any(lo <= west <= hi for lo, hi in extent_parts) else 0.0
    return (
        sum(
            max(0.0, min(hi, extent_hi) - max(lo, extent_lo))
            for lo, hi in parts
            for extent_lo, extent_hi in extent_parts
        )
        / span
    )
