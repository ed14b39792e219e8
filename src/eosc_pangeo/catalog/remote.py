"""Search a remote STAC API as if it were the local index, and open hits from their assets.

:class:`StacApiCatalog` answers the three questions :func:`~eosc_pangeo.catalog.search.search`
asks an index (which Collections, how many of their Items match, which Items) with
pystac-client, so that a remote search filters and ranks exactly as a local one.
:func:`open_assets` opens a hit whose Collection carries Zarr assets with ``xarray:open_kwargs``
or Parquet assets (what ``eosc-pangeo catalog build`` writes), cut to the query: a hit from our
own STAC API opens like a hit of the lake.
"""

from __future__ import annotations

import functools
import operator
from datetime import datetime
from typing import Any

from ..geometry import point_in_box
from ..lake.grid import select, source_codecs_accepted
from ..lake.insitu import OBSERVATION_COLUMNS, read_insitu
from ..lake.manifest import read_manifest
from ..lake.storage import OBSERVATIONS, Lake, locate
from .index import CatalogError, ItemQuery
from .query import BBox, Interval
from .stac import PARQUET_MEDIA_TYPE, ZARR_MEDIA_TYPE

#: Seconds to wait for the API to connect and for each answer: an unreachable catalogue fails
#: fast instead of hanging a notebook.
REQUEST_TIMEOUT = 10.0
#: Items per page when counting through an API that does not report ``numberMatched``.
COUNT_PAGE_SIZE = 1000


def is_stac_api_url(catalog: object) -> bool:
    """True for an ``http(s)://`` URL: search it as a STAC API rather than as an index folder."""
    return isinstance(catalog, str) and catalog.startswith(("http://", "https://"))


def hub_headers(url: str) -> dict[str, str]:
    """The hub token header for the platform's own catalogue (the hub's catalogue service
    answers only hub users), and nothing for any other API: the token must not leak."""
    from ..config import get_settings

    settings = get_settings()
    own = settings.catalog_url and url.rstrip("/") == settings.catalog_url.rstrip("/")
    if own and settings.hub_api_token:
        return {"Authorization": f"token {settings.hub_api_token}"}
    return {}


class StacApiCatalog:
    """A STAC API seen through the reading interface of :class:`CatalogIndex`.

    Parameters
    ----------
    url
        Landing page of the STAC API.
    timeout
        Seconds to wait for each request.

    Raises
    ------
    CatalogError
        If the API cannot be reached or does not answer as a STAC API.
    """

    def __init__(self, url: str, timeout: float = REQUEST_TIMEOUT) -> None:
        from pystac_client import Client  # costs a second: only imported for remote searches

        self.url = url
        self.client = self._request(Client.open, url, headers=hub_headers(url), timeout=timeout)

    def collection_stacs(self, q: str | None = None) -> list[dict[str, Any]]:
        """Every Collection of the API as STAC dicts, sorted by id; only those matching the free
        text ``q`` when the API implements free-text collection search (else all of them, for
        the caller to filter)."""
        if q and self.searches_collection_text:
            found = self._request(
                lambda: list(self.client.collection_search(q=q).collections_as_dicts())
            )
        else:
            found = self._request(lambda: [c.to_dict() for c in self.client.get_collections()])
        return sorted(found, key=lambda c: c["id"])

    @property
    def searches_collection_text(self) -> bool:
        from pystac_client.conformance import ConformanceClasses

        return self.client.conforms_to(ConformanceClasses.COLLECTION_SEARCH_FREE_TEXT)

    def search_items(self, query: ItemQuery) -> tuple[list[dict[str, Any]], int | None]:
        """The first ``query.limit`` Items matching ``query`` and how many match in all (None
        when the API does not say)."""
        search = self._item_search(query, query.limit)
        items = self._request(lambda: list(search.items_as_dicts()))
        return items[: query.limit], self._request(search.matched)

    def count_items(self, query: ItemQuery) -> dict[str, int]:
        """How many Items of each collection match ``query`` (collections with none are left
        out): one request per collection, paging through the Items only when the API does not
        report ``numberMatched``."""
        counts = {}
        for collection in query.collections or []:
            one_collection = ItemQuery(
                collections=[collection], bbox=query.bbox, start=query.start, end=query.end
            )
            search = self._item_search(one_collection, 1)
            matched = self._request(search.matched)
            if matched is None:
                matched = self._request(
                    lambda paged: sum(1 for _ in paged.items_as_dicts()),
                    self._item_search(one_collection, COUNT_PAGE_SIZE),
                )
            if matched:
                counts[collection] = matched
        return counts

    def _item_search(self, query: ItemQuery, page_size: int):
        interval = (
            None
            if query.start is None and query.end is None
            else "/".join(".." if t is None else t.isoformat() for t in (query.start, query.end))
        )
        return self.client.search(
            collections=query.collections,
            ids=query.ids,
            bbox=query.bbox,
            datetime=interval,
            limit=page_size,
            max_items=None if page_size == COUNT_PAGE_SIZE else page_size,
        )

    def _request(self, call, *args, **kwargs):
        """Run a pystac-client call, turning network and API failures into a CatalogError."""
        import requests
        from pystac_client.exceptions import APIError

        try:
            return call(*args, **kwargs)
        except (APIError, requests.RequestException, OSError) as error:
            raise CatalogError(f"the STAC API {self.url} did not answer: {error}") from error


def open_assets(
    collection: dict[str, Any],
    bbox: BBox | None,
    interval: Interval | None,
    variables: list[str] | None,
):
    """Open a Collection's data from its assets, for the box and period only.

    Parameters
    ----------
    collection
        The STAC Collection (dict) with a Zarr asset carrying ``xarray:open_kwargs``, a
        Parquet asset, or a NetCDF or OPeNDAP asset.
    bbox, interval
        The query's box and period (either may be None).
    variables
        Data variables (or columns) to keep; None for all.

    Returns
    -------
    xarray.Dataset or pandas.DataFrame or None
        A lazy Dataset for a Zarr asset (the ``map`` store when there are several), a DataFrame
        for a Parquet asset; None when no asset can be opened this way.
    """
    assets = collection.get("assets") or {}
    zarr = [
        a for a in assets.values() if a.get("type") == ZARR_MEDIA_TYPE and "xarray:open_kwargs" in a
    ]
    if zarr:
        asset = next((a for a in zarr if "map" in a.get("roles", [])), zarr[0])
        return _open_zarr(asset, bbox, interval, variables)
    parquet = next((a for a in assets.values() if a.get("type") == PARQUET_MEDIA_TYPE), None)
    if parquet is not None:
        return _read_parquet(parquet, bbox, interval, variables)
    netcdf = next((a for a in assets.values() if a.get("type") in NETCDF_MEDIA_TYPES), None)
    if netcdf is not None:
        return _open_netcdf(netcdf, bbox, interval, variables)
    return None


#: NetCDF files over HTTP(S) and OPeNDAP endpoints, as harvested catalogues (DCAT) give them.
NETCDF_MEDIA_TYPES = ("application/x-netcdf", "application/netcdf", "application/vnd.opendap.dap2")


def _open_netcdf(
    asset: dict[str, Any], bbox: BBox | None, interval: Interval | None, variables: list[str] | None
):
    """An OPeNDAP endpoint through netCDF-C's DAP client; a NetCDF file through fsspec, by
    byte ranges (xarray picks the engine, NetCDF-3 or -4, from the file's first bytes)."""
    import xarray as xr

    if asset["type"] == "application/vnd.opendap.dap2":
        ds = xr.open_dataset(asset["href"], engine="netcdf4", chunks={})
    else:
        import fsspec

        ds = xr.open_dataset(fsspec.open(asset["href"], "rb").open(), chunks={})
    return select(ds, bbox, naive_iso_interval(interval), _variable_names(ds, variables))


def _variable_names(ds, variables: list[str] | None) -> list[str] | None:
    """The data variables asked for, by name or by CF standard name: a collection harvested
    from DCAT knows its variables only by the standard names among its keywords."""
    if variables is None:
        return None
    by_standard_name = {ds[name].attrs.get("standard_name"): name for name in ds.data_vars}
    return [v if v in ds.data_vars else by_standard_name.get(v, v) for v in variables]


def _open_zarr(
    asset: dict[str, Any], bbox: BBox | None, interval: Interval | None, variables: list[str] | None
):
    import xarray as xr

    storage = asset.get("xarray:storage_options")
    # The lake's map stores may hold their sources' zlib chunks as numcodecs codecs.
    with source_codecs_accepted():
        ds = xr.open_dataset(
            asset["href"],
            **asset["xarray:open_kwargs"],
            **({"storage_options": storage} if storage else {}),
        )
    return select(ds, bbox, naive_iso_interval(interval), _variable_names(ds, variables))


def naive_iso_interval(interval: Interval | None) -> tuple[str | None, str | None] | None:
    """The interval as naive ISO strings: they select on both datetime64 and cftime (noleap,
    360-day) time axes, where aware datetimes fail."""
    return (
        None
        if interval is None
        else tuple(None if t is None else t.strftime("%Y-%m-%dT%H:%M:%S") for t in interval)
    )


def _read_parquet(
    asset: dict[str, Any], bbox: BBox | None, interval: Interval | None, variables: list[str] | None
):
    import fsspec
    import pyarrow.dataset as pads

    storage_options = asset.get("table:storage_options") or {}
    if in_lake := _lake_collection(asset["href"], storage_options):
        # Through the manifest: the committed version only (a folder listing would also take
        # the files of an ingest under way), with the lake's file and row-group pruning.
        return read_insitu(*in_lake, bbox=bbox, time=interval, variables=variables)
    fs, path = fsspec.core.url_to_fs(asset["href"], **storage_options)
    # The lake's month folders are Hive partitions, but year and month are already in ``time``.
    dataset = pads.dataset(path, filesystem=fs, format="parquet", partitioning=None)
    columns = (
        None
        if not variables
        else [
            name
            for name in dataset.schema.names
            if name in OBSERVATION_COLUMNS or name.removesuffix("_QC") in variables
        ]
    )
    return dataset.to_table(
        columns=columns, filter=_row_filter(dataset.schema, bbox, interval)
    ).to_pandas()


def _lake_collection(href: str, storage_options: dict) -> tuple[Lake, str] | None:
    """The lake and id of the in-situ collection whose observations folder ``href`` is, if it
    is one (a manifest of that id sits beside it); else None."""
    located = locate(href, storage_options)
    if located is None or located.part != OBSERVATIONS:
        return None
    lake, collection_id = located.lake, located.collection
    manifest = read_manifest(lake, lake.collection_path(located.domain, collection_id))
    if manifest is None or manifest.id != collection_id or manifest.kind != "insitu":
        return None
    return lake, collection_id


def _row_filter(schema, bbox: BBox | None, interval: Interval | None):
    """Rows in the box (west > east crosses the antimeridian) and period, edges included."""
    import pyarrow as pa
    import pyarrow.compute as pc

    conditions = []
    if bbox is not None:
        conditions.append(point_in_box(pc.field("lon"), pc.field("lat"), bbox))
    if interval is not None:
        time_type = schema.field("time").type
        start, end = (
            None if t is None else pa.scalar(_as_stored(t, time_type), time_type) for t in interval
        )
        if start is not None:
            conditions.append(pc.field("time") >= start)
        if end is not None:
            conditions.append(pc.field("time") <= end)
    return functools.reduce(operator.and_, conditions) if conditions else None


def _as_stored(moment: datetime | None, time_type) -> datetime | None:
    """Naive UTC for a column without a time zone, aware otherwise."""
    if moment is None or getattr(time_type, "tz", None):
        return moment
    return moment.replace(tzinfo=None)
