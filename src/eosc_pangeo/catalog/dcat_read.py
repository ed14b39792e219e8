"""Read DCAT-AP catalogues (a CKAN or D4Science endpoint, an EOSC portal, our own ``/dcat``) as
STAC Collections that the harvester indexes beside the lake's.

Pages are followed along their ``hydra:next`` (or ckanext-dcat's ``hydra:nextPage``) links
until a page has none; Turtle, RDF/XML and JSON-LD are read, whichever the server sends. Each
``dcat:Dataset`` becomes a Collection with its title, description, keywords, licence,
publisher, spatial and temporal extents and one asset per distribution, typed so that
``Hit.open()`` opens Zarr, NetCDF, Parquet and OPeNDAP distributions.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urljoin, urlparse

from rdflib import Graph, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF

from .dcat import EU_FILE_TYPE, FILE_TYPES, HYDRA, IANA_MEDIA_TYPE, LOCN, MEDIA_TYPES
from .errors import CatalogError
from .vocabulary import cf_standard_names

SCHEMA = "http://schema.org/"
ZARR, NETCDF, PARQUET = (
    "application/vnd.zarr",
    "application/x-netcdf",
    "application/vnd.apache.parquet",
)
OPENDAP = "application/vnd.opendap.dap2"

#: RDF serialisations by file extension, for files and URLs that name theirs.
RDF_EXTENSIONS = {
    ".ttl": "turtle",
    ".rdf": "xml",
    ".owl": "xml",
    ".jsonld": "json-ld",
    ".nt": "nt",
    ".n3": "n3",
}
#: What is asked of a DCAT server: any RDF, Turtle first (the smallest to send).
ACCEPT = "text/turtle, application/rdf+xml;q=0.9, application/ld+json;q=0.8"
#: Bound on the pages followed: a harvest of a portal is thousands of datasets, not millions.
MAX_PAGES = 10_000

#: Media types of the distributions' formats, by the names and codes portals give them
#: (CKAN's free-text resource formats, EU file types, IANA types).
_FORMATS = {
    "zarr": ZARR,
    "netcdf": NETCDF,
    "nc": NETCDF,
    "netcdf4": NETCDF,
    "application/netcdf": NETCDF,
    "application/x-netcdf": NETCDF,
    "parquet": PARQUET,
    "geoparquet": PARQUET,
    "application/vnd.apache.parquet": PARQUET,
    "opendap": OPENDAP,
    "dap2": OPENDAP,
    "application/vnd.opendap.dap2": OPENDAP,
    **{
        code.lower(): media
        for media, code in FILE_TYPES.items()
        if code not in ("NETCDF", "PARQUET")
    },
}
_OPEN_KWARGS = {ZARR: {"engine": "zarr", "chunks": {}}}


def is_dcat_source(source: str) -> bool:
    """Whether ``source`` names an RDF document by its extension."""
    return _extension_format(source) is not None


def serves_rdf(url: str) -> bool:
    """Whether the HTTP(S) ``url`` answers RDF when asked for JSON or RDF (a DCAT endpoint
    without an extension, such as ``/dcat``); False for JSON (a STAC API) or an error."""
    import requests

    try:
        response = requests.get(
            url, headers={"Accept": f"application/json, {ACCEPT}"}, timeout=60, stream=True
        )
    except requests.RequestException:
        return False
    with response:
        return response.ok and _media_type(response) in MEDIA_TYPES


def read_dcat(source: str) -> list[tuple[dict[str, Any], list]]:
    """Every dataset of the DCAT catalogue at ``source``, page after page, as STAC Collections
    (without Items).

    Raises
    ------
    CatalogError
        A page that cannot be fetched (HTTP error, unreachable), that is not RDF, or whose
        ``next`` link leads back to a page already read; nothing is returned then.
    """
    collections: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    url: str | None = source
    while url is not None:
        if len(seen) >= MAX_PAGES:
            raise CatalogError(
                f"{source}: more than {MAX_PAGES} DCAT pages; harvest a narrower "
                "endpoint of the portal (a query, modified_since)"
            )
        seen.add(url)
        graph = _read_page(url)
        for dataset in sorted(set(graph.subjects(RDF.type, DCAT.Dataset)), key=str):
            collection = dataset_collection(graph, dataset)
            collections.setdefault(collection["id"], collection)
        following = _next_page(graph, url)
        if following in seen:
            raise CatalogError(
                f"DCAT page {url} links back to {following}, already read: the "
                "catalogue's hydra next links loop; ask its admin to fix them"
            )
        url = following
    return [(collection, []) for collection in collections.values()]


def dataset_collection(graph: Graph, dataset: URIRef) -> dict[str, Any]:
    """The STAC Collection (dict) of one ``dcat:Dataset``."""
    title = _text(graph, dataset, DCTERMS.title)
    collection_id = _identifier(graph, dataset, title)
    keywords = sorted({str(k) for k in graph.objects(dataset, DCAT.keyword)})
    collection: dict[str, Any] = {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": collection_id,
        "title": title or collection_id,
        "description": _text(graph, dataset, DCTERMS.description) or title or collection_id,
        "keywords": keywords,
        "license": "other",
        "links": [],
        "extent": {
            "spatial": {"bbox": [_bbox(graph, dataset)]},
            "temporal": {"interval": [_interval(graph, dataset)]},
        },
        "providers": [
            {"name": str(name), "roles": ["host"]}
            for publisher in graph.objects(dataset, DCTERMS.publisher)
            for name in graph.objects(publisher, FOAF.name)
        ][:1],
        "assets": {},
        # DCAT has no variables: the keywords that are CF standard names stand for them (our
        # own export lists each variable's standard name as a keyword).
        "cf:parameter": [
            {"name": k}
            for k in keywords
            if cf_standard_names().current(k) in cf_standard_names().names
        ],
    }
    if isinstance(dataset, URIRef):
        collection["links"].append({"rel": "describedby", "href": str(dataset)})
    for licence in graph.objects(dataset, DCTERMS.license):
        collection["license"] = _spdx(str(licence))
        collection["links"].append({"rel": "license", "href": str(licence)})
        break
    for position, distribution in enumerate(
        sorted(graph.objects(dataset, DCAT.distribution), key=str)
    ):
        asset = _asset(graph, distribution)
        if asset is not None:
            collection["assets"][f"distribution-{position}"] = asset
    return collection


def _read_page(url: str) -> Graph:
    text, format = _fetch(url)
    try:
        return Graph().parse(data=text, format=format, publicID=url)
    except Exception as error:  # noqa: BLE001  (each rdflib parser raises its own errors)
        detail = (
            str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        )
        raise CatalogError(f"DCAT page {url} is not valid {format} RDF: {detail}") from None


def _fetch(url: str) -> tuple[str, str]:
    """The text of a page and the rdflib name of its serialisation."""
    if not url.startswith(("http://", "https://")):
        import fsspec

        format = _extension_format(url)
        if format is None:
            raise CatalogError(f"{url}: name an RDF file (.ttl, .rdf, .jsonld, .nt)")
        try:
            with fsspec.open(url, "rt", encoding="utf-8") as file:
                return file.read(), format
        except (OSError, UnicodeDecodeError) as error:
            raise CatalogError(f"cannot read the DCAT file {url}: {error}") from None
    import requests

    try:
        response = requests.get(url, headers={"Accept": ACCEPT}, timeout=120)
    except requests.RequestException as error:
        raise CatalogError(f"DCAT page {url} is unreachable: {type(error).__name__}") from None
    if not response.ok:
        raise CatalogError(
            f"DCAT page {url} answered HTTP {response.status_code} "
            f"{response.reason}; try again later or ask the portal's admin"
        )
    format = MEDIA_TYPES.get(_media_type(response)) or _extension_format(url)
    if format is None:
        raise CatalogError(
            f"DCAT page {url} is {_media_type(response) or 'untyped'}, not "
            f"RDF ({', '.join(MEDIA_TYPES)})"
        )
    return response.text, format


def _media_type(response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


def _extension_format(source: str) -> str | None:
    path = urlparse(source).path if "://" in source else source
    return next((f for ext, f in RDF_EXTENSIONS.items() if path.lower().endswith(ext)), None)


def _next_page(graph: Graph, url: str) -> str | None:
    for kind in (HYDRA.PagedCollection, HYDRA.PartialCollectionView, HYDRA.Collection):
        for paged in graph.subjects(RDF.type, kind):
            for predicate in (HYDRA.next, HYDRA.nextPage):
                following = graph.value(paged, predicate)
                if following is not None:
                    return urljoin(url, str(following))
    return None


def _text(graph: Graph, subject, predicate) -> str | None:
    """A literal, English or untagged preferred to other languages."""
    values = list(graph.objects(subject, predicate))
    values.sort(key=lambda v: getattr(v, "language", None) not in (None, "en"))
    return str(values[0]).strip() if values else None


def _identifier(graph: Graph, dataset, title: str | None) -> str:
    """A STAC id: the dataset's dct:identifier when it is one word, else the last segment of
    its URI, else its title made a slug."""
    identifier = graph.value(dataset, DCTERMS.identifier)
    for candidate in (
        str(identifier) if identifier else "",
        str(dataset).rstrip("/").rsplit("/", 1)[-1] if isinstance(dataset, URIRef) else "",
        title or "",
    ):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", candidate).strip("-")
        if slug and len(slug) <= 128:
            return slug
    raise CatalogError(f"DCAT dataset {dataset} has no identifier, URI or title to name it by")


def _bbox(graph: Graph, dataset) -> list[float]:
    """West, south, east, north of ``dct:spatial`` (``dcat:bbox`` or ``locn:geometry``, as WKT
    or GeoJSON); the whole globe when the dataset gives none."""
    import shapely
    import shapely.geometry

    for location in graph.objects(dataset, DCTERMS.spatial):
        for predicate in (DCAT.bbox, LOCN.geometry):
            for value in graph.objects(location, predicate):
                text = str(value).strip()
                try:
                    if text.startswith("{"):
                        geometry = shapely.geometry.shape(json.loads(text))
                    else:
                        # GeoSPARQL WKT may name its CRS first: "<...CRS84> POLYGON((...))"
                        geometry = shapely.from_wkt(re.sub(r"^<[^>]*>\s*", "", text))
                except (ValueError, TypeError, shapely.errors.GEOSException):
                    continue
                if not geometry.is_empty:
                    return [float(b) for b in geometry.bounds]
    return [-180.0, -90.0, 180.0, 90.0]


def _interval(graph: Graph, dataset) -> list[str | None]:
    for period in graph.objects(dataset, DCTERMS.temporal):
        bounds = []
        for predicates in (
            (DCAT.startDate, URIRef(SCHEMA + "startDate")),
            (DCAT.endDate, URIRef(SCHEMA + "endDate")),
        ):
            value = next(
                (graph.value(period, p) for p in predicates if graph.value(period, p) is not None),
                None,
            )
            bounds.append(_instant(str(value)) if value is not None else None)
        if any(bounds):
            return bounds
    return [None, None]


def _instant(value: str) -> str:
    """An RFC 3339 instant, as STAC wants, from an xsd:date or xsd:dateTime."""
    if len(value) == 10:
        return f"{value}T00:00:00Z"
    return value if value.endswith("Z") or re.search(r"[+-]\d\d:\d\d$", value) else f"{value}Z"


def _asset(graph: Graph, distribution) -> dict[str, Any] | None:
    href = graph.value(distribution, DCAT.downloadURL) or graph.value(distribution, DCAT.accessURL)
    if href is None:
        return None
    asset: dict[str, Any] = {"href": str(href), "roles": ["data"]}
    title = _text(graph, distribution, DCTERMS.title)
    if title:
        asset["title"] = title
    media_type = _distribution_media_type(graph, distribution, str(href))
    if media_type:
        asset["type"] = media_type
    if media_type in _OPEN_KWARGS:
        asset["xarray:open_kwargs"] = _OPEN_KWARGS[media_type]
    return asset


def _distribution_media_type(graph: Graph, distribution, href: str) -> str | None:
    """The media type of a distribution, from what it says of its format (``dct:format``,
    ``dcat:mediaType``, ``dct:conformsTo``, as IRIs or free text) or, failing that, its URL
    (THREDDS serves OPeNDAP under ``/dodsC/``)."""
    named = []
    for predicate in (DCTERMS["format"], DCAT.mediaType, DCAT.compressFormat, DCTERMS.conformsTo):
        for value in graph.objects(distribution, predicate):
            text = str(value)
            for prefix in (
                IANA_MEDIA_TYPE,
                str(EU_FILE_TYPE),
                "https://www.iana.org/assignments/media-types/",
            ):
                text = text.removeprefix(prefix)
            named.append(text.strip().lower())
            named += [str(label).strip().lower() for label in graph.objects(value, RDF.value)]
    for name in named:
        if name in _FORMATS:
            return _FORMATS[name]
        if "opendap" in name or "zarr" in name:
            return OPENDAP if "opendap" in name else ZARR
    if "/dodsc/" in href.lower():
        return OPENDAP
    if href.lower().endswith((".nc", ".nc4")):
        return NETCDF
    # Any other media type named, as it is (application/pdf...); never an IRI of a vocabulary.
    return next((n for n in named if re.fullmatch(r"[a-z]+/[a-z0-9.+-]+", n)), None)


def _spdx(licence: str) -> str:
    """The SPDX id of a licence IRI (``https://spdx.org/licenses/CC-BY-4.0``), else other."""
    match = re.match(r"https?://spdx\.org/licenses/([A-Za-z0-9.+-]+?)(?:\.html)?$", licence)
    return match.group(1) if match else "other"
