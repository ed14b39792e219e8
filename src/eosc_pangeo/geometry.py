"""Boxes in longitude and latitude, as STAC gives them: the one owner of what a valid box is.

A box is ``(west, south, east, north)`` in degrees (CRS84); ``west > east`` crosses the
antimeridian, as in STAC. The lake (``open_dataset``, ``read_insitu``) and the catalogue
(``search``, the STAC API) check boxes here, each raising its own error type.
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
        raise error(f"bbox needs 4 numbers (west, south, east, north) or 6 with heights, "
                    f"got {len(numbers)}")
    west, south, east, north = numbers
    if not all(-180 <= x <= 180 for x in (west, east)) or not all(
            -90 <= y <= 90 for y in (south, north)):
        raise error(f"bbox {numbers} is outside [-180, -90, 180, 90] (degrees, CRS84)")
    if south > north:
        raise error(f"bbox south ({south}) is north of its north ({north}): give "
                    "(west, south, east, north)")
    return west, south, east, north
