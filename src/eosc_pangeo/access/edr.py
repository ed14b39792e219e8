"""OGC API - EDR queries (position, area, cube) on grid and in-situ collections.

Queries are parsed and their size known before data is read; grid answers are encoded by
xpublish-edr's formatters (CoverageJSON, CSV, GeoJSON, NetCDF), in-situ answers are the rows
:func:`~eosc_pangeo.lake.read_insitu` returns, as CSV, GeoJSON or CoverageJSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from ..geometry import check_bbox, grid_west_edge, wrap_longitude
from .errors import BadRequest, TooLarge

GRID_FORMATS = ("covjson", "csv", "geojson", "netcdf")
INSITU_FORMATS = ("covjson", "csv", "geojson")


@dataclass(frozen=True)
class EdrQuery:
    """A parsed EDR query: where, when, which parameters, in which format."""

    kind: str  # position | area | cube
    bbox: tuple[float, float, float, float] | None  # area and cube
    point: tuple[float, float] | None  # position
    polygon: object | None  # shapely geometry of an area query
    time: tuple[str | None, str | None] | None
    parameters: tuple[str, ...]
    z: tuple[float, float] | None
    format: str


def parse_query(kind: str, params: dict[str, str], formats: tuple[str, ...]) -> EdrQuery:
    """Parse the query string of an EDR ``kind`` query; :class:`BadRequest` names the field."""
    import shapely
    from shapely.errors import GEOSException

    point = polygon = bbox = None
    if kind == "cube":
        bbox = _bbox(params.get("bbox"))
    else:
        coords = params.get("coords")
        if not coords:
            raise BadRequest(
                f"coords is required for {kind} queries, e.g. "
                + (
                    "coords=POINT(-30 45)"
                    if kind == "position"
                    else "coords=POLYGON((-40 40,-20 40,-20 50,-40 50,-40 40))"
                )
            )
        try:
            geometry = shapely.from_wkt(coords)
        except (GEOSException, ValueError):
            raise BadRequest(
                f"coords {coords!r} is not WKT: write POINT(lon lat) or POLYGON((lon lat, ...))"
            ) from None
        if kind == "position":
            if geometry.geom_type != "Point":
                raise BadRequest(f"position queries take a POINT, not a {geometry.geom_type}")
            point = (geometry.x, geometry.y)
            _check_lat(geometry.y, "coords")
        else:
            if geometry.geom_type not in ("Polygon", "MultiPolygon") or geometry.is_empty:
                raise BadRequest(f"area queries take a POLYGON, not a {geometry.geom_type}")
            polygon = geometry
            bbox = check_bbox(geometry.bounds, BadRequest)
    fmt = params.get("f", formats[0]).lower()
    if fmt not in formats:
        raise BadRequest(
            f"f={fmt!r} is not a format of {kind} queries here: use one of {', '.join(formats)}"
        )
    names = tuple(n.strip() for n in params.get("parameter-name", "").split(",") if n.strip())
    return EdrQuery(
        kind,
        bbox,
        point,
        polygon,
        _datetime(params.get("datetime")),
        names,
        _z(params.get("z")),
        fmt,
    )


def _check_lat(lat: float, field: str) -> None:
    if not -90 <= lat <= 90:
        raise BadRequest(f"{field}: latitude {lat} is outside -90..90")


def _bbox(text: str | None) -> tuple[float, float, float, float]:
    if not text:
        raise BadRequest("bbox is required for cube queries: bbox=west,south,east,north")
    return check_bbox(text.split(","), BadRequest)


def _datetime(text: str | None) -> tuple[str | None, str | None] | None:
    """``(start, end)`` as naive UTC strings, as the lake selects them: on standard and cftime
    calendars alike, a date standing for its whole day (``2020-01-04`` ends at its last step)."""
    if not text:
        return None
    parts = text.split("/")
    if len(parts) > 2:
        raise BadRequest(f"datetime {text!r} must be an instant or start/end")
    times = []
    for part in parts:
        if part in ("", ".."):
            times.append(None)
            continue
        try:
            stamp = pd.Timestamp(part)
        except ValueError:
            raise BadRequest(
                f"datetime {text!r} is not ISO 8601 (e.g. 2020-01-01/2020-02-01)"
            ) from None
        if stamp.tzinfo is not None:
            # An offset (Z, +02:00) is converted to UTC, in which the lake's times are kept,
            # and dropped, so that a start and an end with and without one compare.
            stamp = stamp.tz_convert(None)
            part = stamp.isoformat()
        times.append((stamp, part))
    start, end = (times[0], times[0]) if len(times) == 1 else times
    if start is not None and end is not None and start[0] > end[0]:
        raise BadRequest(f"datetime {text!r}: the start is after the end")
    return tuple(None if t is None else t[1] for t in (start, end))


def _z(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        values = [float(v) for v in text.split("/")]
    except ValueError:
        raise BadRequest(f"z {text!r} must be a level or low/high") from None
    if len(values) not in (1, 2):
        raise BadRequest(f"z {text!r} must be a level or low/high")
    return (values[0], values[-1])


def select_grid(ds: xr.Dataset, query: EdrQuery, limit: int) -> xr.Dataset:
    """The lazy selection of ``query`` on a grid; :class:`TooLarge` above ``limit`` bytes."""
    from ..lake.grid import select

    parameters = grid_parameters(ds)
    missing = [p for p in query.parameters if p not in parameters]
    if missing:
        raise BadRequest(
            f"no parameter {', '.join(missing)} in this collection (parameters: "
            f"{', '.join(parameters)})"
        )
    variables = list(query.parameters) or parameters
    x, y = ds.cf["X"].name, ds.cf["Y"].name
    if query.kind == "position":
        lon, lat = query.point
        selected = select(ds, None, query.time, variables)
        lon = wrap_longitude(lon, grid_west_edge(float(ds[x].max())))
        selected = selected.sel({y: lat, x: lon}, method="nearest")
    else:
        selected = select(ds, query.bbox, query.time, variables)
    if any(size == 0 for size in selected.sizes.values()):
        raise BadRequest(
            "the query selects no data: the collection covers "
            f"{_time_range(ds)} within {_bounds(ds)}"
        )
    if query.z is not None:
        selected = _select_z(selected, query.z)
    if query.kind == "area":
        selected = _mask_polygon(selected, query.polygon)
    size = sum(v.nbytes for v in selected.data_vars.values())
    if size > limit:
        raise TooLarge(
            f"the query reads {size / 1e6:.1f} MB, over this client's limit of "
            f"{limit / 1e6:.1f} MB: ask for a shorter datetime range, a smaller "
            "area or fewer parameter-name values, and join the pieces"
        )
    return selected


def grid_parameters(ds: xr.Dataset) -> list[str]:
    """The data variables of a grid, without the cell bounds its coordinates name."""
    bounds = {v.attrs.get("bounds") for v in ds.variables.values()}
    return [str(name) for name in ds.data_vars if name not in bounds]


def _time_range(ds: xr.Dataset) -> str:
    time = ds.cf["T"].values
    return f"{str(time[0])[:19]}..{str(time[-1])[:19]}"


def _bounds(ds: xr.Dataset) -> str:
    x, y = ds.cf["X"].values, ds.cf["Y"].values
    return f"lon {x.min():g}..{x.max():g}, lat {y.min():g}..{y.max():g}"


def _select_z(ds: xr.Dataset, z: tuple[float, float]) -> xr.Dataset:
    vertical = [name for name in ds.cf.axes.get("Z", []) if name in ds.dims]
    if not vertical:
        raise BadRequest("z given but the collection has no vertical axis")
    level = vertical[0]
    low, high = min(z), max(z)
    return ds.sel({level: (ds[level] >= low) & (ds[level] <= high)})


def _mask_polygon(ds: xr.Dataset, polygon) -> xr.Dataset:
    import shapely

    x, y = ds.cf["X"], ds.cf["Y"]
    lon, lat = np.meshgrid(x.values, y.values)
    inside = shapely.contains_xy(polygon, wrap_longitude(lon), lat)
    mask = xr.DataArray(inside, dims=(y.name, x.name), coords={y.name: y, x.name: x})
    return ds.where(mask)


def encode_grid(ds: xr.Dataset, fmt: str) -> tuple[bytes, str]:
    """Body and media type of a loaded grid answer."""
    from xpublish_edr.formats.to_covjson import to_cf_covjson
    from xpublish_edr.formats.to_csv import to_csv
    from xpublish_edr.formats.to_geojson import to_geojson
    from xpublish_edr.formats.to_netcdf import to_netcdf

    if fmt in ("covjson", "geojson"):
        ds = _calendar_dates_as_text(ds)
    if fmt == "covjson":
        return json.dumps(to_cf_covjson(ds)).encode(), "application/prs.coverage+json"
    response = {"csv": to_csv, "geojson": to_geojson, "netcdf": to_netcdf}[fmt](ds)
    return bytes(response.body), response.media_type


def _calendar_dates_as_text(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with its dates in a model calendar (noleap, 360_day: cftime objects) as ISO 8601
    text, which is how xpublish-edr's JSON encoders write numpy dates; they fail on cftime."""
    from xarray.coding.times import contains_cftime_datetimes

    return ds.assign_coords(
        {
            name: coord.dt.strftime("%Y-%m-%dT%H:%M:%S")
            for name, coord in ds.coords.items()
            if contains_cftime_datetimes(coord.variable)
        }
    )


def insitu_rows(
    lake, collection: str, query: EdrQuery, variables: dict, limit: int
) -> pd.DataFrame:
    """Observations of an in-situ collection that ``query`` selects."""
    from ..lake import read_insitu

    missing = [p for p in query.parameters if p not in variables]
    if missing:
        raise BadRequest(
            f"no parameter {', '.join(missing)} in this collection (parameters: "
            f"{', '.join(variables)})"
        )
    if query.kind == "position":
        lon, lat = query.point
        # A position on scattered observations: the observations within 0.1 degree of it.
        bbox = (lon - 0.1, max(lat - 0.1, -90), lon + 0.1, min(lat + 0.1, 90))
    else:
        bbox = query.bbox
    rows = read_insitu(
        lake, collection, bbox=bbox, time=query.time, variables=list(query.parameters) or None
    )
    if query.polygon is not None and len(rows):
        import shapely

        rows = rows[shapely.contains_xy(query.polygon, rows["lon"], rows["lat"])]
    if query.z is not None and "depth" in rows:
        low, high = min(query.z), max(query.z)
        rows = rows[(rows["depth"] >= low) & (rows["depth"] <= high)]
    size = int(rows.memory_usage(deep=False).sum())
    if size > limit:
        raise TooLarge(
            f"the query selects {len(rows)} observations ({size / 1e6:.1f} MB), over "
            f"this client's limit of {limit / 1e6:.1f} MB: ask for a shorter "
            "datetime range or a smaller area, or read the GeoParquet files"
        )
    return rows


def encode_rows(rows: pd.DataFrame, fmt: str, variables: dict) -> tuple[bytes, str]:
    """Body and media type of an in-situ answer; ``variables`` are the collection's, as its
    manifest describes them."""
    if fmt == "csv":
        return rows.to_csv(index=False).encode(), "text/csv"
    if fmt == "covjson":
        return json.dumps(rows_covjson(rows, variables)).encode(), "application/prs.coverage+json"
    records = json.loads(
        rows.drop(columns=[c for c in ("geometry", "bbox") if c in rows]).to_json(
            orient="records", date_format="iso"
        )
    )
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
            "properties": r,
        }
        for r in records
    ]
    return (
        json.dumps({"type": "FeatureCollection", "features": features}).encode(),
        "application/geo+json",
    )


#: CoverageJSON's reference systems of observations: longitude and latitude (CRS84), time
#: (ISO 8601, Gregorian) and depth (metres, down).
_OBSERVATION_REFERENCING = [
    {
        "coordinates": ["x", "y"],
        "system": {"type": "GeographicCRS", "id": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"},
    },
    {"coordinates": ["t"], "system": {"type": "TemporalRS", "calendar": "Gregorian"}},
    {
        "coordinates": ["z"],
        "system": {
            "type": "VerticalCRS",
            "cs": {
                "csAxes": [{"name": {"en": "depth"}, "direction": "down", "unit": {"symbol": "m"}}]
            },
        },
    },
]


def rows_covjson(rows: pd.DataFrame, variables: dict) -> dict:
    """Observations as a CoverageJSON collection of ``Point`` coverages, one per row, with the
    collection's parameters (those of ``variables`` among the rows' columns).

    Written by hand: xpublish-edr encodes gridded datasets only, and the format is plain JSON
    (CoverageJSON, OGC Community Standard 21-069r2, section 9.1.1 for ``Point`` domains).
    """
    names = [name for name in variables if name in rows]
    records = json.loads(
        rows[["time", "lon", "lat", *(["depth"] if "depth" in rows else []), *names]].to_json(
            orient="records", date_format="iso"
        )
    )
    return {
        "type": "CoverageCollection",
        "domainType": "Point",
        "parameters": {name: _parameter(variables[name]) for name in names},
        "referencing": _OBSERVATION_REFERENCING,
        "coverages": [_point_coverage(record, names) for record in records],
    }


def _point_coverage(record: dict, names: list[str]) -> dict:
    axes = {"x": [record["lon"]], "y": [record["lat"]], "t": [record["time"]]}
    if record.get("depth") is not None:
        axes["z"] = [record["depth"]]
    return {
        "type": "Coverage",
        "domain": {
            "type": "Domain",
            "axes": {axis: {"values": values} for axis, values in axes.items()},
        },
        "ranges": {
            name: {"type": "NdArray", "dataType": "float", "values": [record[name]]}
            for name in names
        },
    }


def _parameter(variable) -> dict:
    parameter = {
        "type": "Parameter",
        "description": {"en": variable.long_name or variable.standard_name or ""},
        "observedProperty": {"label": {"en": variable.standard_name or variable.long_name or ""}},
    }
    if variable.units:
        parameter["unit"] = {"symbol": variable.units}
    return parameter
