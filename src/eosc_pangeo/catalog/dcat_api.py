"""The DCAT-AP catalogue served beside the STAC API, for the harvesters of EOSC portals and of
CKAN catalogues such as D4Science's (ckanext-dcat).

Routes (added to the STAC API application by :func:`add_dcat_routes`)::

    GET /dcat                 content negotiation on Accept: Turtle (default), RDF/XML, JSON-LD
    GET /dcat.ttl|.rdf|.xml|.jsonld     one serialisation, whatever the Accept header
    ?format=turtle|xml|jsonld ditto, for clients that cannot set headers
    ?page=N                   pages linked by hydra:PagedCollection (first, last, next, previous)
    ?per_page=N               datasets per page (default DEFAULT_PAGE_SIZE, at most MAX_PAGE_SIZE)
    ?modified_since=ISO-8601  only the collections updated since then

Dataset and distribution URLs hang below the URL the harvester itself used (with the proxy's
``Forwarded`` / ``X-Forwarded-*`` headers honoured), or below ``public_url`` when given: both
are URLs the portal can follow. Assets held only in the lake's storage are not published.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from stac_fastapi.types.requests import get_base_url

from .dcat import DEFAULT_PAGE_SIZE, EXTENSIONS, MEDIA_TYPES, dcat_page, media_type_of_format
from .errors import CatalogError
from .index import CatalogIndex

#: Largest page served: a page of DCAT-AP is about 10 kB per dataset.
MAX_PAGE_SIZE = 1000


def add_dcat_routes(app: FastAPI, index: CatalogIndex, *, public_url: str | None = None) -> None:
    """Serve ``index`` as paged DCAT-AP at ``/dcat`` on ``app``.

    Parameters
    ----------
    app
        The STAC API application (its exception handlers turn CatalogError into HTTP 400).
    index
        The catalogue.
    public_url
        Public URL of the STAC API, when the URL clients use cannot be told from the request.
    """

    def respond(
        request: Request, media_type: str, page: int, per_page: int, modified_since: str | None
    ) -> Response:
        if not 1 <= per_page <= MAX_PAGE_SIZE:
            raise CatalogError(f"per_page must be between 1 and {MAX_PAGE_SIZE}, got {per_page}")
        base_url = (public_url or get_base_url(request)).rstrip("/")
        page_url = f"{base_url}{request.url.path}"
        answer = dcat_page(
            index,
            base_url,
            page_url,
            page=page,
            per_page=per_page,
            modified_since=modified_since,
            query={k: v for k, v in request.query_params.items() if k in ("format", "per_page")},
        )
        body = answer.graph.serialize(format=MEDIA_TYPES[media_type])
        return Response(body, media_type=media_type, headers={"Vary": "Accept"})

    @app.get("/dcat", tags=["DCAT-AP"], summary="The catalogue as DCAT-AP 3 (negotiated)")
    def dcat(
        request: Request,
        page: int = 1,
        per_page: int = DEFAULT_PAGE_SIZE,
        modified_since: str | None = None,
        format: str | None = None,
    ) -> Response:
        if format:
            media_type = media_type_of_format(format)
        else:
            try:
                media_type = negotiate(request.headers.get("accept"))
            except CatalogError as error:
                raise HTTPException(406, str(error)) from None
        return respond(request, media_type, page, per_page, modified_since)

    @app.get(
        "/dcat.{extension}",
        tags=["DCAT-AP"],
        summary="The catalogue as DCAT-AP 3 in the serialisation the extension names",
    )
    def dcat_file(
        request: Request,
        extension: str,
        page: int = 1,
        per_page: int = DEFAULT_PAGE_SIZE,
        modified_since: str | None = None,
    ) -> Response:
        if extension not in EXTENSIONS:
            raise CatalogError(
                f"no DCAT serialisation .{extension}: ask for "
                f"{', '.join('.' + e for e in EXTENSIONS)}"
            )
        return respond(request, EXTENSIONS[extension], page, per_page, modified_since)


def negotiate(accept: str | None) -> str:
    """The served media type that an Accept header prefers (Turtle for ``*/*`` or none).

    Hand-written: neither Starlette nor FastAPI negotiates content; the rule is RFC 9110's
    (highest q first, then the more specific range, then the order given).

    Raises
    ------
    CatalogError
        If the header accepts none of Turtle, RDF/XML and JSON-LD.
    """
    if not accept:
        return "text/turtle"
    ranges = []
    for position, part in enumerate(accept.split(",")):
        media_range, *params = (p.strip() for p in part.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        ranges.append((-weight, media_range.count("*"), position, media_range.lower()))
    for weight, _, _, media_range in sorted(ranges):
        if weight == 0:
            break
        if media_range in MEDIA_TYPES:
            return media_range
        if media_range in ("*/*", "text/*"):
            return "text/turtle"
        if media_range == "application/*":
            return "application/rdf+xml"
        if media_range == "application/json":
            return "application/ld+json"
    raise CatalogError(
        f"the DCAT catalogue is served as {', '.join(MEDIA_TYPES)}; the Accept "
        f"header {accept!r} takes none of them"
    )
