"""The STAC API 1.0 over the meta-catalogue index: stac-fastapi with a backend of our own.

stac-fastapi provides the routes, request models, OpenAPI document and conformance; the backend
(:class:`IndexClient`) answers from the stac-geoparquet index held in memory, so the embedded
service needs no database server. What a search costs besides the index's own work was
measured and cut (``benchmarks/bench_search_pgstac.py``): pages are sent as each Item's
stored JSON spliced with its links, serialised by orjson, never re-encoded by FastAPI;
request models are built without a worker thread; Brotli compresses at its fastest setting.
Item search (GET and POST: bbox, intersects, datetime, collections, ids, limit, token paging),
collection search and free text are implemented.

Every deliberate error of the catalogue (:class:`~eosc_pangeo.catalog.index.CatalogError`: bad
bbox, geometry or datetime, unknown collection, limit out of range) becomes an HTTP 400 with its
message; unknown collection or item paths are 404.

For large deployments serve the same STAC with stac-fastapi-pgstac on PostgreSQL (see
docs/find-data.md): ``pypgstac load`` reads the Items this index holds.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import typing
from typing import Any
from urllib.parse import urlencode

import attr
import orjson
import shapely
import shapely.geometry
from brotli_asgi import BrotliMiddleware
from fastapi import FastAPI, Request, params
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from shapely.geometry.base import BaseGeometry
from stac_fastapi.api.app import StacApi
from stac_fastapi.api.errors import DEFAULT_STATUS_CODES
from stac_fastapi.api.middleware import ProxyHeaderMiddleware
from stac_fastapi.api.models import create_get_request_model, create_post_request_model
from stac_fastapi.extensions import (
    CollectionSearchExtension,
    FreeTextExtension,
    TokenPaginationExtension,
)
from stac_fastapi.extensions.free_text.free_text import FreeTextConformanceClasses
from stac_fastapi.types.config import ApiSettings
from stac_fastapi.types.core import AsyncBaseCoreClient
from stac_fastapi.types.errors import NotFoundError
from stac_fastapi.types.requests import get_base_url
from stac_fastapi.types.search import APIRequest
from stac_pydantic.api.search import Intersection
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from .._version import __version__
from ..lake.storage import Lake
from .dcat_api import add_dcat_routes
from .index import CatalogError, CatalogIndex, ItemQuery, SerialisedItem, UnknownCollection
from .query import parse_bbox, parse_datetime
from .search import extent_overlap
from .search_routes import SearchRoutes
from .vocabulary import text_score

#: Largest page the API serves; stac-fastapi itself caps ``limit`` at 10,000 silently.
API_MAX_LIMIT = 1000
DEFAULT_LIMIT = 10


@attr.s
class IndexClient(AsyncBaseCoreClient):
    """A stac-fastapi backend answering from a :class:`CatalogIndex`.

    Asynchronous, though nothing in it waits: a search of the in-memory index takes a fraction
    of a millisecond of CPU, less than handing it to a worker thread and back, as stac-fastapi
    does with a synchronous client, costs. Search answers are responses whose Items and
    Collections are JSON stored once and spliced with the links of the request's base URL:
    FastAPI's ``jsonable_encoder`` and the standard library's encoder never walk them.
    """

    index: CatalogIndex = attr.ib(kw_only=True)

    # --- collections -----------------------------------------------------------------------

    async def all_collections(
        self,
        bbox=None,
        datetime=None,
        limit=None,
        q=None,
        token=None,
        request: Request | None = None,
        **kwargs,
    ) -> Response:
        """``GET /collections`` with collection search: bbox, datetime, q, limit, token."""
        box, interval = parse_bbox(bbox), parse_datetime(datetime)
        words = " ".join(q or [])
        found = [
            c
            for c in self.index.collections()
            if (not words or text_score(words, c.stac))
            and (box is None and interval is None or extent_overlap(c.extent, box, interval))
        ]
        offset, limit = _offset(token), _limit(limit or API_MAX_LIMIT)
        page = found[offset : offset + limit]
        base_url = get_base_url(request)
        links = [
            {"rel": "root", "type": "application/json", "href": base_url},
            {"rel": "self", "type": "application/json", "href": str(request.url)},
        ]
        if offset + limit < len(found):
            links.append(_next_get_link(request, offset + limit))
        head = orjson.dumps(
            {"links": links, "numberMatched": len(found), "numberReturned": len(page)}
        )
        # Each Collection's stored JSON, its closing brace making way for its links.
        collections = b",".join(
            b'%s,"links":%s}'
            % (c.json_without_links[:-1], orjson.dumps(_collection_links(c.stac, base_url)))
            for c in page
        )
        return Response(
            b'%s,"collections":[%s]}' % (head[:-1], collections), media_type="application/json"
        )

    async def get_collection(
        self, collection_id: str, request: Request | None = None, **kwargs
    ) -> dict[str, Any]:
        try:
            collection = self.index.collection(collection_id)
        except UnknownCollection as error:
            raise NotFoundError(str(error)) from None
        return self._collection(collection.stac, get_base_url(request))

    async def item_collection(
        self,
        collection_id: str,
        bbox=None,
        datetime=None,
        limit: int = 10,
        token: str | None = None,
        request: Request | None = None,
        **kwargs,
    ) -> Response:
        """``GET /collections/{id}/items``."""
        await self.get_collection(collection_id, request=request)
        return self._search(
            request,
            collections=[collection_id],
            bbox=bbox,
            datetime=datetime,
            limit=limit,
            token=token,
        )

    async def get_item(
        self, item_id: str, collection_id: str, request: Request | None = None, **kwargs
    ) -> dict[str, Any]:
        await self.get_collection(collection_id, request=request)
        items, _ = self.index.search_items(
            ItemQuery(collections=[collection_id], ids=[item_id], limit=1)
        )
        if not items:
            raise NotFoundError(f"no item {item_id!r} in collection {collection_id!r}")
        return self._item(items[0], get_base_url(request))

    # --- item search -----------------------------------------------------------------------

    async def get_search(
        self,
        collections=None,
        ids=None,
        bbox=None,
        intersects=None,
        datetime=None,
        limit: int = 10,
        token: str | None = None,
        q=None,
        request: Request | None = None,
        **kwargs,
    ) -> Response:
        return self._search(
            request,
            collections=collections,
            ids=ids,
            bbox=bbox,
            intersects=intersects,
            datetime=datetime,
            limit=limit,
            token=token,
            q=q,
        )

    async def post_search(
        self, search_request, request: Request | None = None, **kwargs
    ) -> Response:
        return self._search(
            request,
            posted=search_request,
            collections=search_request.collections,
            ids=search_request.ids,
            bbox=search_request.bbox,
            intersects=search_request.intersects,
            datetime=search_request.datetime,
            limit=search_request.limit,
            token=getattr(search_request, "token", None),
            q=getattr(search_request, "q", None),
        )

    def _search(
        self,
        request: Request,
        *,
        collections=None,
        ids=None,
        bbox=None,
        intersects=None,
        datetime=None,
        limit=10,
        token=None,
        q=None,
        posted: BaseModel | None = None,
    ) -> Response:
        """A page of the Items a GET search (``posted`` None) or a POST search asks for."""
        if intersects is not None and bbox is not None:
            raise CatalogError("bbox and intersects are mutually exclusive; give only one")
        geometry = _parse_intersects(intersects)
        collections = list(collections) if collections else None
        if q:
            words = " ".join(q) if isinstance(q, list) else q
            matching = [c.id for c in self.index.collections() if text_score(words, c.stac)]
            collections = [c for c in (collections or matching) if c in matching]
            if not collections:
                return self._item_collection([], 0, 0, 0, request, posted)
        interval = parse_datetime(datetime)
        start, end = interval or (None, None)
        offset, limit = _offset(token), _limit(limit)
        items, matched = self.index.search_serialised(
            ItemQuery(
                collections=collections,
                ids=list(ids) if ids else None,
                bbox=parse_bbox(bbox),
                intersects=geometry,
                start=start,
                end=end,
                limit=limit,
                offset=offset,
            )
        )
        return self._item_collection(items, matched, offset, limit, request, posted)

    def _item_collection(
        self,
        items: list[SerialisedItem],
        matched: int,
        offset: int,
        limit: int,
        request: Request,
        posted: BaseModel | None,
    ) -> Response:
        """The FeatureCollection of a page, its Items' JSON spliced in rather than re-encoded;
        a POST search's body is serialised again only for its next link."""
        base_url = get_base_url(request)
        links = [{"rel": "root", "type": "application/json", "href": base_url}]
        if offset + len(items) < matched:
            links.append(
                _next_get_link(request, offset + limit)
                if posted is None
                else {
                    "rel": "next",
                    "type": "application/geo+json",
                    "method": "POST",
                    "href": str(request.url),
                    "merge": True,
                    "body": {
                        **posted.model_dump(exclude_none=True, by_alias=True),
                        "token": f"offset:{offset + limit}",
                    },
                }
            )
        head = orjson.dumps(
            {
                "type": "FeatureCollection",
                "links": links,
                "numberMatched": matched,
                "numberReturned": len(items),
            }
        )
        # Each body is a JSON object: its closing brace makes way for the links.
        features = b",".join(
            b'%s,"links":%s}'
            % (item.body[:-1], orjson.dumps(_item_links(item.collection, item.id, base_url)))
            for item in items
        )
        return Response(
            b'%s,"features":[%s]}' % (head[:-1], features), media_type="application/geo+json"
        )

    # --- links -----------------------------------------------------------------------------

    @staticmethod
    def _collection(stac: dict[str, Any], base_url: str) -> dict[str, Any]:
        return {**stac, "links": _collection_links(stac, base_url)}

    @staticmethod
    def _item(item: dict[str, Any], base_url: str) -> dict[str, Any]:
        return {**item, "links": _item_links(item["collection"], item["id"], base_url)}


def create_app(
    lake: str | Lake | None = None,
    *,
    index: CatalogIndex | None = None,
    title: str = "eosc-pangeo meta-catalogue",
    public_url: str | None = None,
) -> FastAPI:
    """The STAC API application over the lake's index (or ``index``), for uvicorn.

    Parameters
    ----------
    lake
        Lake whose ``_catalog/index`` to serve; default: the configured ``EOSC_PANGEO_LAKE``.
    index
        Serve this index instead.
    public_url
        Public URL of this API, for the DCAT-AP catalogue at ``/dcat``; default: the URL each
        request came to (see :mod:`eosc_pangeo.catalog.dcat_api`).
    """
    index = index or CatalogIndex.of_lake(lake)
    free_text = FreeTextExtension(
        conformance_classes=[
            FreeTextConformanceClasses.SEARCH,
            FreeTextConformanceClasses.COLLECTIONS,
        ]
    )
    pagination = TokenPaginationExtension()
    search_extensions = [free_text, pagination]
    collection_search = CollectionSearchExtension.from_extensions([free_text, pagination])
    description = (
        "Collections of every domain of the eosc-pangeo lake and of the catalogues it harvests."
    )
    client = IndexClient(
        index=index, landing_page_id="eosc-pangeo", title=title, description=description
    )
    search_get = create_get_request_model(search_extensions)
    search_post = create_post_request_model(search_extensions)
    api = StacApi(
        settings=ApiSettings(
            stac_fastapi_title=title,
            stac_fastapi_description=description,
            stac_fastapi_landing_id="eosc-pangeo",
            stac_fastapi_version=__version__,
        ),
        title=title,
        description=description,
        api_version=__version__,
        client=client,
        extensions=[*search_extensions, collection_search],
        search_get_request_model=search_get,
        search_post_request_model=search_post,
        collections_get_request_model=collection_search.GET,
        exceptions={**DEFAULT_STATUS_CODES, CatalogError: 400},
        middlewares=[
            # Brotli's fastest setting compresses a page of Items about as well as its default
            # (quality 4), for a tenth of the time: the default's costs each search 0.3 ms.
            Middleware(BrotliMiddleware, quality=1),
            # The CORS settings the STAC API specification recommends (stac-fastapi's).
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=["OPTIONS", "POST", "GET"],
                allow_headers=["Content-Type"],
                max_age=600,
            ),
            Middleware(ProxyHeaderMiddleware),
            Middleware(
                SearchRoutes,
                client=client,
                search_get=search_get,
                search_post=search_post,
                collections_get=collection_search.GET,
            ),
        ],
    )
    _build_request_models_inline(api.app)
    add_dcat_routes(api.app, index, public_url=public_url)
    return api.app


def _build_request_models_inline(app: FastAPI) -> None:
    """Have FastAPI build stac-fastapi's GET request models in the event loop.

    A request model (``SearchGetRequest``...) is a class, which FastAPI calls in a worker thread
    as it does any synchronous dependency: two thread switches per request for a constructor
    that only copies its arguments, and on a busy machine each switch waits for a core.
    stac-fastapi's endpoints declare the model as ``request_data=Depends(Model)``; FastAPI reads
    that default when it first routes a request, so a coroutine with the model's signature
    put in its place is awaited instead. Were stac-fastapi to declare its endpoints otherwise,
    the models would simply be built in threads again.
    """
    routes = list(app.router.routes)
    while routes:
        route = routes.pop()
        # FastAPI >= 0.16x keeps included routers whole rather than copying their routes.
        routes += getattr(getattr(route, "original_router", None), "routes", [])
        endpoint = inspect.unwrap(getattr(route, "endpoint", None) or (lambda: None))
        if endpoint.__defaults__:
            endpoint.__defaults__ = tuple(map(_awaited_model, endpoint.__defaults__))


def _awaited_model(default: Any) -> Any:
    """``Depends(Model)`` of an APIRequest model as the ``Depends`` of a coroutine building it;
    any other default as it is."""
    model = getattr(default, "dependency", None)
    if not (
        isinstance(default, params.Depends)
        and inspect.isclass(model)
        and issubclass(model, APIRequest)
    ):
        return default

    async def build(**fields):
        return model(**fields)

    build.__signature__ = inspect.signature(model)
    return dataclasses.replace(default, dependency=build)


#: The GeoJSON geometry models by ``type``: validating against the one named gives a precise
#: message where the union of all of them would list every member's complaint.
_GEOMETRIES = {model.__name__: model for model in typing.get_args(Intersection)}


def _parse_intersects(value: str | dict[str, Any] | BaseModel | None) -> BaseGeometry | None:
    """The ``intersects`` geometry as shapely, from GeoJSON text (GET), an object, or a
    geojson-pydantic geometry (POST, which its request model validated already).

    Raises
    ------
    CatalogError
        If it is not JSON, not a GeoJSON geometry (a Feature, an open ring, too few positions),
        empty, not finite, or invalid (a self-intersecting polygon, on which intersection
        tests are undefined).
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as error:
            raise CatalogError(f"intersects is not JSON: {error}") from None
    if isinstance(value, BaseModel):
        return _checked_shape(value.__geo_interface__)
    kind = value.get("type") if isinstance(value, dict) else type(value).__name__
    if not isinstance(kind, str) or kind not in _GEOMETRIES:
        raise CatalogError(
            f"intersects must be a GeoJSON geometry, an object whose type is one "
            f"of {', '.join(_GEOMETRIES)}; got {kind!r}"
        )
    try:
        # geojson-pydantic checks what shapely accepts silently, such as rings left open.
        _GEOMETRIES[kind].model_validate(value)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or kind}: {e['msg']}" for e in error.errors()[:3]
        )
        raise CatalogError(f"intersects is not a valid GeoJSON {kind}: {problems}") from None
    return _checked_shape(value)


def _checked_shape(value: dict[str, Any]) -> BaseGeometry:
    """A GeoJSON geometry of valid structure as shapely, checked for what the GeoJSON models
    let through: mixed dimensions, emptiness, coordinates off the globe, self-intersections."""
    kind = value["type"]
    try:
        geometry = shapely.geometry.shape(value)
    except (ValueError, TypeError, shapely.errors.GEOSException) as error:
        # e.g. positions of mixed dimensions, which the GeoJSON models above let through
        raise CatalogError(f"intersects is not a valid GeoJSON {kind}: {error}") from None
    if geometry.is_empty or not all(map(math.isfinite, geometry.bounds)):
        raise CatalogError("intersects must be a non-empty geometry with finite coordinates")
    west, south, east, north = geometry.bounds
    if west < -180 or east > 180 or south < -90 or north > 90:
        raise CatalogError(
            "intersects coordinates must be longitudes in [-180, 180] and "
            "latitudes in [-90, 90] (WGS 84)"
        )
    if not geometry.is_valid:
        raise CatalogError(
            f"intersects is not a valid geometry: {shapely.is_valid_reason(geometry)}"
        )
    return geometry


def _collection_links(stac: dict[str, Any], base_url: str) -> list[dict[str, Any]]:
    """The links stac-fastapi's ``CollectionLinks`` makes, without parsing and joining URLs,
    then the Collection's own links other than those."""
    collection = f"{base_url.rstrip('/')}/collections/{stac['id']}"
    made = [
        {"rel": "self", "type": "application/json", "href": collection},
        {"rel": "parent", "type": "application/json", "href": base_url},
        {"rel": "items", "type": "application/geo+json", "href": f"{collection}/items"},
        {"rel": "root", "type": "application/json", "href": base_url},
    ]
    return made + [
        link
        for link in stac.get("links", [])
        if link["rel"] not in {"self", "parent", "root", "items", "child", "item"}
    ]


def _item_links(collection_id: str, item_id: str, base_url: str) -> list[dict[str, str]]:
    """The links stac-fastapi's ``ItemLinks`` makes, made without parsing and joining URLs four
    times per Item (a tenth of a search's time)."""
    collection = f"{base_url.rstrip('/')}/collections/{collection_id}"
    return [
        {"rel": "self", "type": "application/geo+json", "href": f"{collection}/items/{item_id}"},
        {"rel": "parent", "type": "application/json", "href": collection},
        {"rel": "collection", "type": "application/json", "href": collection},
        {"rel": "root", "type": "application/json", "href": base_url},
    ]


def _limit(limit: int | None) -> int:
    """The page size; stac-fastapi leaves it None when a POST body does not parse as an object."""
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= API_MAX_LIMIT:
        raise CatalogError(f"limit must be between 1 and {API_MAX_LIMIT}, got {limit}")
    return limit


def _offset(token: str | None) -> int:
    """Paging tokens are ``offset:N``: opaque to clients, who only follow ``next`` links."""
    if token is None:
        return 0
    kind, _, value = token.partition(":")
    if kind != "offset" or not value.isdigit():
        raise CatalogError(f"token {token!r} is not one this API issued; follow the next link")
    return int(value)


def _next_get_link(request: Request, offset: int) -> dict[str, Any]:
    params = dict(request.query_params)
    params["token"] = f"offset:{offset}"
    return {
        "rel": "next",
        "type": "application/geo+json",
        "method": "GET",
        "href": f"{str(request.url).split('?')[0]}?{urlencode(params)}",
    }


def serve(
    lake: str | Lake | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    public_url: str | None = None,
) -> None:
    """Serve the lake's index as a STAC API (and DCAT-AP at ``/dcat``, its URLs below
    ``public_url`` when given) with uvicorn until interrupted.

    Raises
    ------
    CatalogNotBuilt
        If the lake's catalogue was never built: a server with no collections helps nobody.
    """
    import uvicorn

    from .build import built_index

    index = built_index(lake)
    index.load()
    uvicorn.run(
        create_app(index=index, public_url=public_url), host=host, port=port, log_level="info"
    )
