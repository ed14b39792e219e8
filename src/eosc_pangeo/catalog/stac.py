"""Describe the lake in STAC: one Collection per lake collection, Items for its natural granules.

Gridded collections get the datacube extension (``cube:dimensions``, ``cube:variables`` with the
CF ``standard_name`` and units) and one Zarr asset per store, carrying the keyword arguments that
open it (xarray-assets extension); their Items are the source granules (one per ingested file,
with its time range). In-situ collections get the table extension (columns, row count, storage
options) and a Parquet asset; their Items are the observing platforms (an Argo float, a mooring),
with the positions and period each one covers.

Everything here is read from the manifests and from the data's own metadata: the catalogue
describes the lake, it never writes into the collections.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
import pyarrow.dataset as pads
import pystac
import shapely
import xarray as xr
from pystac.extensions.datacube import (
    DatacubeExtension,
    Dimension,
    DimensionType,
    HorizontalSpatialDimension,
    HorizontalSpatialDimensionAxis,
    TemporalDimension,
    Variable,
    VariableType,
)
from pystac.extensions.table import Column, TableExtension
from pystac.extensions.xarray_assets import XarrayAssetsExtension

from ..lake.grid import open_grid
from ..lake.kinds import kind_of
from ..lake.manifest import Manifest
from ..lake.storage import DOMAINS, Lake, atomic_write

ZARR_MEDIA_TYPE = "application/vnd.zarr"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
CF_EXTENSION = "https://stac-extensions.github.io/cf/v0.2.0/schema.json"

#: The French data and service poles (Data Terra) that hold each domain's data.
DATA_POLES: dict[str, pystac.Provider] = {
    "ocean": pystac.Provider(
        "ODATIS",
        "Ocean data pole of Data Terra",
        roles=[pystac.ProviderRole.HOST],
        url="https://www.odatis-ocean.fr",
    ),
    "atmosphere": pystac.Provider(
        "AERIS",
        "Atmosphere data pole of Data Terra",
        roles=[pystac.ProviderRole.HOST],
        url="https://www.aeris-data.fr",
    ),
    "land": pystac.Provider(
        "THEIA",
        "Land surface data pole of Data Terra",
        roles=[pystac.ProviderRole.HOST],
        url="https://www.theia-land.fr",
    ),
    "solid-earth": pystac.Provider(
        "ForM@Ter",
        "Solid Earth data pole of Data Terra",
        roles=[pystac.ProviderRole.HOST],
        url="https://www.poleterresolide.fr",
    ),
}

DOMAIN_TITLES = {
    "ocean": "Ocean",
    "atmosphere": "Atmosphere",
    "land": "Land surface",
    "solid-earth": "Solid Earth",
}


def lake_catalog(lake: Lake, collections: Iterable[pystac.Collection]) -> pystac.Catalog:
    """A STAC catalog of the lake: a root, one sub-catalog per domain, the Collections in them."""
    root = pystac.Catalog(
        "eosc-pangeo",
        f"Collections of the eosc-pangeo data lake at {lake.url}, by scientific domain.",
        title="eosc-pangeo data lake",
        catalog_type=pystac.CatalogType.SELF_CONTAINED,
    )
    domains: dict[str, pystac.Catalog] = {}
    for collection in collections:
        domain = collection.extra_fields["eosc:domain"]
        if domain not in domains:
            domains[domain] = pystac.Catalog(
                domain,
                f"{DOMAIN_TITLES[domain]} collections of the lake.",
                title=DOMAIN_TITLES[domain],
            )
        domains[domain].add_child(collection)
    for domain in DOMAINS:
        if domain in domains:
            root.add_child(domains[domain])
    return root


def describe_collection(
    lake: Lake, manifest: Manifest, data_url: str | None = None
) -> pystac.Collection:
    """The STAC Collection of one lake collection, with its extension metadata and assets
    (also at the data service ``data_url``, when given)."""
    attrs = manifest.attributes
    keywords = _keywords(attrs.get("keywords"))
    keywords += [manifest.domain] + [
        v.standard_name
        for v in manifest.variables.values()
        if v.standard_name and v.standard_name not in keywords
    ]
    collection = pystac.Collection(
        id=manifest.id,
        title=str(attrs.get("title", manifest.id)),
        description=str(attrs.get("summary") or attrs.get("title") or manifest.id),
        extent=pystac.Extent(
            pystac.SpatialExtent([list(manifest.extent.bbox or (-180, -90, 180, 90))]),
            pystac.TemporalExtent(
                [
                    [_datetime(t) for t in manifest.extent.time]
                    if manifest.extent.time
                    else [None, None]
                ]
            ),
        ),
        license=_spdx_license(attrs.get("license")),
        keywords=list(dict.fromkeys(keywords)),
        providers=[*_producers(attrs), DATA_POLES[manifest.domain]],
        extra_fields={
            "cf:parameter": [
                {"name": v.standard_name, "unit": v.units}
                for v in manifest.variables.values()
                if v.standard_name
            ],
            "eosc:domain": manifest.domain,
            "eosc:kind": manifest.kind,
            "version": str(manifest.version),
            "created": manifest.created,
            "updated": manifest.updated,
        },
    )
    collection.stac_extensions.append(CF_EXTENSION)
    DESCRIPTIONS[kind_of(manifest).name].collection(lake, manifest, collection)
    if data_url:
        _add_service_assets(collection, manifest, data_url.rstrip("/"))
    return collection


#: How each endpoint of the data service is described (see eosc_pangeo.access.urls).
SERVICE_ASSETS = {
    "zarr": ("Zarr over HTTP, chunked for maps", ZARR_MEDIA_TYPE),
    "zarr-timeseries": ("Zarr over HTTP, chunked for time series", ZARR_MEDIA_TYPE),
    "opendap": ("OPeNDAP (DAP 2)", "application/vnd.opendap.dap2"),
    "edr": ("OGC API - EDR (position, area, cube queries)", "application/json"),
    "parquet": (
        "GeoParquet files over HTTP (a JSON list of files read by byte ranges)",
        "application/json",
    ),
}


def _add_service_assets(collection: pystac.Collection, manifest: Manifest, base: str) -> None:
    """Assets at the data service, for clients with no access to the lake's storage."""
    from ..access.urls import collection_urls

    for endpoint, href in collection_urls(base, manifest).items():
        title, media_type = SERVICE_ASSETS[endpoint]
        asset = pystac.Asset(
            href=href, title=title, media_type=media_type, roles=["data", "remote"]
        )
        if media_type == ZARR_MEDIA_TYPE:
            XarrayAssetsExtension.ext(asset).open_kwargs = {
                "engine": "zarr",
                "consolidated": True,
                "chunks": {},
            }
        collection.add_asset(f"http-{endpoint}", asset)


def describe_items(lake: Lake, manifest: Manifest) -> list[pystac.Item]:
    """The Items of a collection: source granules of a grid, observing platforms of in-situ data."""
    return list(DESCRIPTIONS[kind_of(manifest).name].items(lake, manifest))


# --- gridded collections --------------------------------------------------------------------


def _describe_grid(lake: Lake, manifest: Manifest, collection: pystac.Collection) -> None:
    # The lake's reader opens every kind of store (Zarr, or Icechunk references).
    with open_grid(lake, manifest.id, chunking=next(iter(manifest.stores))) as ds:
        dimensions = _cube_dimensions(ds, manifest)
    variables = {
        name: Variable(
            {
                "dimensions": var.dims,
                "type": VariableType.DATA.value,
                "description": var.long_name or name,
                "unit": var.units,
                **({"standard_name": var.standard_name} if var.standard_name else {}),
            }
        )
        for name, var in manifest.variables.items()
    }
    DatacubeExtension.ext(collection, add_if_missing=True).apply(dimensions, variables)
    XarrayAssetsExtension.add_to(collection)
    for name, store in manifest.stores.items():
        if store.references:
            collection.add_asset(name, _references_asset(lake, manifest, store))
            continue
        asset = pystac.Asset(
            href=lake.uri(manifest.domain, manifest.id, store.path),
            title=f"Zarr store chunked for {'maps' if name == 'map' else 'time series'}",
            description=f"Chunks {store.chunks}: read it for "
            + (
                "maps and spatial statistics."
                if name == "map"
                else "long time series at few points."
            ),
            media_type=ZARR_MEDIA_TYPE,
            roles=["data", "zarr", name],
        )
        xarray_asset = XarrayAssetsExtension.ext(asset)
        xarray_asset.open_kwargs = {"engine": "zarr", "consolidated": True, "chunks": {}}
        if lake.storage_options:
            xarray_asset.storage_options = lake.storage_options
        collection.add_asset(name, asset)


def _references_asset(lake: Lake, manifest: Manifest, store) -> pystac.Asset:
    """The asset of a store of references to the sources (an ingest by reference): an
    Icechunk repository, which Zarr readers open through the icechunk package's sessions, not
    by URL (hence no ``xarray:open_kwargs``)."""
    return pystac.Asset(
        href=lake.uri(manifest.domain, manifest.id, store.path),
        title="Icechunk repository of references to the source files",
        description=f"Chunks {store.chunks}, read from the source files where they are; open "
        "it with the icechunk package (eosc_pangeo.open_dataset does).",
        roles=["data", "references", "map"],
    )


def _cube_dimensions(ds: xr.Dataset, manifest: Manifest) -> dict[str, Dimension]:
    dimensions: dict[str, Dimension] = {}
    for axis, stac_axis in (
        ("X", HorizontalSpatialDimensionAxis.X),
        ("Y", HorizontalSpatialDimensionAxis.Y),
    ):
        values = ds.cf[axis].values
        dimension = HorizontalSpatialDimension({"type": DimensionType.SPATIAL.value})
        dimension.axis = stac_axis
        dimension.extent = [float(values.min()), float(values.max())]
        dimension.step = _regular_step(values)
        dimension.reference_system = 4326
        dimensions[ds.cf[axis].name] = dimension
    time = TemporalDimension({"type": DimensionType.TEMPORAL.value})
    time.extent = list(manifest.extent.time) if manifest.extent.time else [None, None]
    step = manifest.attributes.get("time_coverage_resolution")
    if isinstance(step, str) and step.startswith("P"):
        time.step = step
    dimensions[ds.cf["T"].name] = time
    return dimensions


def _granule_items(manifest: Manifest) -> Iterator[pystac.Item]:
    """One Item per ingested source file: the granule as the data centre published it."""
    geometry = shapely.geometry.mapping(shapely.box(*manifest.extent.bbox))
    for source in manifest.sources:
        start, end = _datetime(source.time_start), _datetime(source.time_end)
        stem = posixpath.splitext(source.name)[0]
        yield pystac.Item(
            id=f"{manifest.id}.{stem}",
            geometry=geometry,
            bbox=list(manifest.extent.bbox),
            datetime=start if start == end else None,
            start_datetime=start,
            end_datetime=end,
            properties={
                "title": f"{manifest.id} granule {source.name}",
                "eosc:source_sha256": source.sha256,
            },
            collection=manifest.id,
        )


# --- in-situ collections --------------------------------------------------------------------

_PLATFORM_SUMMARY = """
    SELECT platform_id, any_value(platform_type) AS platform_type,
           min(time) AS time_start, max(time) AS time_end, count(*) AS rows,
           list(DISTINCT [round(lon, 4), round(lat, 4)]) AS positions
    FROM observations GROUP BY platform_id ORDER BY platform_id
"""


def _observations(lake: Lake, manifest: Manifest) -> pads.Dataset:
    collection_path = lake.find_collection(manifest.id)
    return pads.dataset(
        [f"{collection_path}/{f.path}" for f in manifest.files],
        filesystem=lake.fs,
        format="parquet",
    )


def _describe_table(lake: Lake, manifest: Manifest, collection: pystac.Collection) -> None:
    schema = _observations(lake, manifest).schema
    table = TableExtension.ext(collection, add_if_missing=True)
    table.columns = [
        Column(
            {
                "name": field.name,
                "type": str(field.type),
                **_column_description(manifest, field.name),
            }
        )
        for field in schema
    ]
    table.primary_geometry = "geometry"
    table.row_count = sum(f.rows for f in manifest.files)
    asset = pystac.Asset(
        href=lake.uri(manifest.domain, manifest.id, "observations"),
        title="GeoParquet observations, partitioned by year and month",
        description="One row per observation; open with pandas/dask read_parquet or "
        "eosc_pangeo.lake.read_insitu.",
        media_type=PARQUET_MEDIA_TYPE,
        roles=["data"],
    )
    collection.add_asset("observations", asset)
    TableExtension.ext(asset).storage_options = dict(lake.storage_options)


def _column_description(manifest: Manifest, column: str) -> dict[str, str]:
    """Description and CF standard name of a data column (the table extension allows more
    fields than its own; ``standard_name`` is what cross-domain variable search needs)."""
    variable = manifest.variables.get(column)
    if variable is None:
        return {}
    text = variable.long_name or variable.standard_name or column
    described = {"description": f"{text} [{variable.units}]" if variable.units else text}
    if variable.standard_name:
        described["standard_name"] = variable.standard_name
    return described


def _platform_items(lake: Lake, manifest: Manifest) -> Iterator[pystac.Item]:
    """One Item per observing platform, with the positions it observed at and its period."""
    import duckdb

    observations = _observations(lake, manifest).to_table(
        columns=["platform_id", "platform_type", "time", "lon", "lat"]
    )
    with duckdb.connect() as con:
        con.register("observations", observations)
        platforms = con.execute(_PLATFORM_SUMMARY).fetchall()
    for platform_id, platform_type, time_start, time_end, rows, positions in platforms:
        points = shapely.MultiPoint(positions)
        geometry = points.geoms[0] if len(positions) == 1 else points
        start, end = _as_utc(time_start), _as_utc(time_end)
        item = pystac.Item(
            id=f"{manifest.id}.{platform_id}",
            geometry=shapely.geometry.mapping(geometry),
            bbox=list(geometry.bounds),
            datetime=start if start == end else None,
            start_datetime=start,
            end_datetime=end,
            properties={
                "title": f"{platform_type} {platform_id}",
                "platform": str(platform_id),
                "eosc:platform_type": platform_type,
            },
            collection=manifest.id,
        )
        TableExtension.ext(item, add_if_missing=True).row_count = rows
        yield item


class KindDescription(NamedTuple):
    """How the catalogue describes one kind of collection in STAC."""

    #: Adds the kind's extensions (datacube, table) and assets to its Collection.
    collection: Callable[[Lake, Manifest, pystac.Collection], None]
    #: Its Items: source granules of a grid, observing platforms of in-situ data.
    items: Callable[[Lake, Manifest], Iterator[pystac.Item]]


#: The STAC description of each kind of collection (``eosc_pangeo.lake.kinds.KINDS``), by name.
DESCRIPTIONS = {
    "grid": KindDescription(_describe_grid, lambda lake, manifest: _granule_items(manifest)),
    "insitu": KindDescription(_describe_table, _platform_items),
}


# --- helpers --------------------------------------------------------------------------------


def _regular_step(values: np.ndarray) -> float | None:
    """The spacing of a regular axis, None when irregular (as the datacube extension asks)."""
    if len(values) < 2:
        return None
    steps = np.diff(values.astype(float))
    return float(steps[0]) if np.allclose(steps, steps[0], rtol=1e-6) else None


def _datetime(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _as_utc(value: Any) -> datetime:
    value = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _keywords(value: object) -> list[str]:
    """ACDD keywords come as one comma-separated string (or, after JSON, a list)."""
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).replace(";", ",").split(",")
    return [k.strip() for k in items if k.strip()]


def _spdx_license(value: object) -> str:
    """STAC wants an SPDX id (or "other"); ACDD licences are free text often starting with one."""
    if not value:
        return "other"
    first = str(value).split()[0].strip("();,")
    return first if first and all(c.isalnum() or c in ".-+" for c in first) else "other"


def _producers(attrs: dict[str, object]) -> list[pystac.Provider]:
    producers = []
    for key in ("institution", "creator_name"):
        name = attrs.get(key)
        if name and all(p.name != name for p in producers):
            producers.append(pystac.Provider(str(name), roles=[pystac.ProviderRole.PRODUCER]))
    return producers


class FsspecStacIO(pystac.StacIO):
    """pystac I/O through the lake's file system, so the static catalog can live on S3 too.

    Writes are atomic per file: a reader never sees a half-written JSON document.
    """

    def __init__(self, lake: Lake) -> None:
        super().__init__()
        self.lake = lake

    def read_text(self, source: pystac.link.HREF, *args: Any, **kwargs: Any) -> str:
        return self.lake.fs.cat_file(str(source)).decode()

    def write_text(self, dest: pystac.link.HREF, txt: str, *args: Any, **kwargs: Any) -> None:
        atomic_write(self.lake.fs, str(dest), txt.encode())
