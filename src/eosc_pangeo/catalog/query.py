"""Check and normalise search parameters, once, for ``search()``, the CLI and the STAC API.

Every problem raises :class:`~eosc_pangeo.catalog.index.CatalogError` with a message that says
what was wrong and what is expected; the STAC API turns it into an HTTP 400.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from ..geometry import BBox, check_bbox
from .index import CatalogError

Interval = tuple[datetime | None, datetime | None]

MAX_LIMIT = 10_000
_OPEN = ("", "..")
_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")


def parse_bbox(value: str | Sequence[float] | None) -> BBox | None:
    """``(west, south, east, north)`` from 4 numbers (or 6, with heights, which are dropped),
    or their comma-separated text; checked by :func:`eosc_pangeo.geometry.check_bbox`.

    ``west > east`` is a box crossing the antimeridian, as in STAC.
    """
    if value is None:
        return None
    return check_bbox(value.split(",") if isinstance(value, str) else value, CatalogError)


def parse_datetime(value: str | datetime | Sequence[object] | None) -> Interval | None:
    """A time interval from a STAC datetime: ``"2020-01-01T00:00:00Z"``, ``"2020-01/2020-03"``,
    ``"../2020-06-30"``, a ``(start, end)`` pair or a datetime.

    Dates without a time cover their whole period: ``"2020-02"`` is all of February 2020.
    Naive datetimes are taken as UTC.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = _utc(value)
        return moment, moment
    if isinstance(value, str):
        if "/" in value:
            parts = value.split("/")
            if len(parts) != 2:
                raise CatalogError(f"datetime {value!r} has more than one '/'")
        else:
            single = _parse_end(value, "start"), _parse_end(value, "end")
            if None in single:
                raise CatalogError("a single datetime cannot be open ('..'); use 'start/..'")
            return single
    else:
        parts = list(value)
        if len(parts) != 2:
            raise CatalogError(f"datetime needs (start, end), got {len(parts)} values")
    start, end = _parse_end(parts[0], "start"), _parse_end(parts[1], "end")
    if start is None and end is None:
        raise CatalogError("datetime '../..' is open at both ends; give at least one")
    if start is not None and end is not None and start > end:
        raise CatalogError(
            f"datetime interval is reversed: {start.isoformat()} is after {end.isoformat()}"
        )
    return start, end


def check_limit(limit: int) -> int:
    """``limit`` if it is a sensible page size."""
    if not 1 <= limit <= MAX_LIMIT:
        raise CatalogError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def _parse_end(value: object, end: str) -> datetime | None:
    if value is None or (isinstance(value, str) and value.strip() in _OPEN):
        return None
    if isinstance(value, datetime):
        return _utc(value)
    text = str(value).strip()
    partial = _PARTIAL_DATE.match(text)
    try:
        if partial:
            return _period_end(*partial.groups(), end)
        return _utc(datetime.fromisoformat(text))
    except ValueError:
        raise CatalogError(
            f"datetime {text!r} is not RFC 3339 (e.g. 2020-01-31T00:00:00Z, 2020-01-31 or 2020-01)"
        ) from None


def _period_end(year: str, month: str | None, day: str | None, end: str) -> datetime:
    """The first (``end="start"``) or last instant of a year, month or day."""
    first = datetime(int(year), int(month or 1), int(day or 1), tzinfo=UTC)
    if end == "start":
        return first
    if day:
        following = first + timedelta(days=1)
    elif month:
        following = (first + timedelta(days=32)).replace(day=1)
    else:
        following = first.replace(year=first.year + 1)
    return following - timedelta(microseconds=1)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
