"""The meta-catalogue as DCAT-AP 3 (with the GeoDCAT-AP spatial properties), for EOSC and
national portals: written to a file (:func:`export_dcat`) or served by the STAC API, paged
(:func:`dcat_page`, see :mod:`eosc_pangeo.catalog.dcat_api`).

Each indexed Collection becomes a ``dcat:Dataset`` with its title, description, keywords (its
variables' CF standard names and long names, its ACDD keywords and domain), themes (the EU data
theme and the INSPIRE theme of its domain), licence, publisher and contact point (the data
pole), spatial coverage (``locn:geometry`` and ``dcat:bbox`` as WKT, as GeoDCAT-AP
recommends), temporal coverage and distributions a portal can follow: the STAC API's
description of the collection, always, and each asset that is reachable over HTTP(S), such as
the data service's Zarr, OPeNDAP, EDR and Parquet endpoints. Assets that are paths in the
lake's storage (``file://``, ``s3://``) are left out: a portal can do nothing with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote, urlencode

from rdflib import BNode, Graph, Namespace, URIRef
from rdflib import Literal as RDFLiteral
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, SH, XSD

from ..lake.storage import Lake
from .errors import CatalogError
from .index import CatalogIndex
from .vocabulary import collection_variables

DCATAP = Namespace("http://data.europa.eu/r5r/")
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
LOCN = Namespace("http://www.w3.org/ns/locn#")
GSP = Namespace("http://www.opengis.net/ont/geosparql#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
EU_THEME = Namespace("http://publications.europa.eu/resource/authority/data-theme/")
EU_FILE_TYPE = Namespace("http://publications.europa.eu/resource/authority/file-type/")
EU_AVAILABILITY = Namespace(
    "http://publications.europa.eu/resource/authority/planned-availability/"
)
IANA_MEDIA_TYPE = "http://www.iana.org/assignments/media-types/"
INSPIRE_THEME = Namespace("http://inspire.ec.europa.eu/theme/")
SPDX_LICENSE = "https://spdx.org/licenses/"
SKOS_CONCEPT = URIRef("http://www.w3.org/2004/02/skos/core#Concept")
#: Agents' dct:type (ADMS publisher types): the data poles and the platform are research bodies.
RESEARCH_ORGANISATION = URIRef("http://purl.org/adms/publishertype/Academia-ScientificOrganisation")
ENGLISH = URIRef("http://publications.europa.eu/resource/authority/language/ENG")
#: The licence of the catalogue's own metadata (not of the data): public domain, so that
#: portals may republish it, as the EU Open Data Portal asks of its sources.
METADATA_LICENCE = URIRef(SPDX_LICENSE + "CC0-1.0")
CF_CONVENTIONS = URIRef("http://cfconventions.org/")
STAC_SPEC = URIRef("https://api.stacspec.org/v1.0.0/core")
OPENDAP_SPEC = URIRef("https://www.opendap.org/pdf/ESE-RFC-004v1.2.pdf")
ZARR_SPEC = URIRef("https://zarr-specs.readthedocs.io/")

#: EU file types (the vocabulary DCAT-AP asks ``dct:format`` to come from), by media type.
#: Zarr and OPeNDAP have none: their ``dct:format`` is their media type's IRI, and
#: ``dct:conformsTo`` names their specification.
FILE_TYPES = {
    "application/vnd.apache.parquet": "PARQUET",
    "application/x-netcdf": "NETCDF",
    "application/netcdf": "NETCDF",
    "application/json": "JSON",
    "application/geo+json": "GEOJSON",
}
_CONFORMS_TO = {"application/vnd.zarr": ZARR_SPEC, "application/vnd.opendap.dap2": OPENDAP_SPEC}

#: The INSPIRE theme of each domain (GeoDCAT-AP uses INSPIRE themes as ``dcat:theme``).
_INSPIRE_THEMES = {"ocean": "of", "atmosphere": "ac", "land": "lc", "solid-earth": "ge"}

#: Columns and coordinates that describe where and when, not what: never keywords.
_NOT_KEYWORDS = {
    "lat",
    "lon",
    "latitude",
    "longitude",
    "time",
    "depth",
    "pressure",
    "geometry",
    "bbox",
    "x",
    "y",
}

#: RDF serialisations served, by media type, with their rdflib names and file extensions.
MEDIA_TYPES = {
    "text/turtle": "turtle",
    "application/rdf+xml": "xml",
    "application/ld+json": "json-ld",
}
EXTENSIONS = {
    "ttl": "text/turtle",
    "rdf": "application/rdf+xml",
    "xml": "application/rdf+xml",
    "jsonld": "application/ld+json",
}
DcatFormat = Literal["turtle", "xml", "jsonld"]
_FORMATS = {
    "turtle": "text/turtle",
    "xml": "application/rdf+xml",
    "rdfxml": "application/rdf+xml",
    "jsonld": "application/ld+json",
    "json-ld": "application/ld+json",
}

DEFAULT_PAGE_SIZE = 100


def export_dcat(
    lake: str | Lake | None = None,
    *,
    index: CatalogIndex | None = None,
    format: DcatFormat = "turtle",
    base_uri: str | None = None,
) -> str:
    """The whole catalogue as DCAT-AP, serialised as Turtle, RDF/XML or JSON-LD.

    Parameters
    ----------
    lake, index
        Whose index to export; default: the configured lake's.
    format
        ``turtle``, ``xml`` (RDF/XML) or ``jsonld``.
    base_uri
        Where the catalogue is published (the STAC API URL): dataset URIs are
        ``<base_uri>/collections/<id>``. Default: the index's own URL.
    """
    media_type = media_type_of_format(format)
    index = index or CatalogIndex.of_lake(lake)
    return dcat_graph(index, base_uri or index.url).serialize(format=MEDIA_TYPES[media_type])


def media_type_of_format(format: str) -> str:
    """The media type of a ``format`` name (``turtle``, ``xml``, ``jsonld``) or extension."""
    media_type = _FORMATS.get(format) or EXTENSIONS.get(format)
    if media_type is None:
        raise CatalogError(
            f"format must be one of turtle, xml, jsonld (or ttl, rdf), got {format!r}"
        )
    return media_type


def dcat_graph(
    index: CatalogIndex, base_uri: str, collections: list[dict[str, Any]] | None = None
) -> Graph:
    """A graph holding the ``dcat:Catalog`` and a ``dcat:Dataset`` per Collection.

    Parameters
    ----------
    index
        The catalogue.
    base_uri
        Public URL of its STAC API.
    collections
        The STAC Collections to describe; default: all of the index's.
    """
    graph = Graph()
    for prefix, namespace in (
        ("dcat", DCAT),
        ("dct", DCTERMS),
        ("foaf", FOAF),
        ("locn", LOCN),
        ("gsp", GSP),
        ("vcard", VCARD),
        ("dcatap", DCATAP),
        ("hydra", HYDRA),
    ):
        graph.bind(prefix, namespace)
    base_uri = base_uri.rstrip("/")
    catalog = URIRef(base_uri)
    service = _stac_service(graph, base_uri)
    add = graph.add
    add((catalog, RDF.type, DCAT.Catalog))
    add((catalog, DCTERMS.title, RDFLiteral("eosc-pangeo meta-catalogue", lang="en")))
    add(
        (
            catalog,
            DCTERMS.description,
            RDFLiteral(
                "Ocean, atmosphere, land and solid-Earth collections of the eosc-pangeo data "
                "lake and of the catalogues it harvests.",
                lang="en",
            ),
        )
    )
    add((catalog, DCTERMS.publisher, _agent(graph, "eosc-pangeo", None)))
    add((catalog, FOAF.homepage, URIRef(base_uri)))
    add((catalog, DCAT.service, service))
    add((catalog, DCTERMS.language, ENGLISH))
    add((catalog, DCTERMS.license, METADATA_LICENCE))
    add((METADATA_LICENCE, RDF.type, DCTERMS.LicenseDocument))
    for taxonomy in (URIRef(str(EU_THEME)[:-1]), URIRef(str(INSPIRE_THEME)[:-1])):
        add((catalog, DCAT.themeTaxonomy, taxonomy))
        add((taxonomy, RDF.type, URIRef("http://www.w3.org/2004/02/skos/core#ConceptScheme")))
    if collections is None:
        collections = [c.stac for c in index.collections()]
    modified = [c["updated"] for c in collections if c.get("updated")]
    if modified:
        add((catalog, DCTERMS.modified, RDFLiteral(max(modified), datatype=XSD.dateTime)))
    boxes = []
    for stac in collections:
        dataset = URIRef(f"{base_uri}/collections/{quote(stac['id'])}")
        add((catalog, DCAT.dataset, dataset))
        add((service, DCAT.servesDataset, dataset))
        describe_dataset(graph, dataset, stac, service)
        boxes += (stac.get("extent", {}).get("spatial", {}).get("bbox") or [])[:1]
    if boxes:
        boxes = [(b[0], b[1], b[3], b[4]) if len(b) == 6 else b for b in boxes]
        _location(
            graph,
            catalog,
            [
                min(b[0] for b in boxes),
                min(b[1] for b in boxes),
                max(b[2] for b in boxes),
                max(b[3] for b in boxes),
            ],
        )
    return graph


@dataclass(frozen=True)
class DcatPage:
    """One page of the served catalogue."""

    graph: Graph
    page: int
    last_page: int
    total: int


def dcat_page(
    index: CatalogIndex,
    base_uri: str,
    page_url: str,
    *,
    page: int = 1,
    per_page: int = DEFAULT_PAGE_SIZE,
    modified_since: str | None = None,
    query: dict[str, str] | None = None,
) -> DcatPage:
    """One page of the catalogue, with the ``hydra:PagedCollection`` that ckanext-dcat's
    harvester follows from page to page.

    Parameters
    ----------
    index, base_uri
        The catalogue and its public STAC API URL.
    page_url
        The URL of the served pages, without a query: the paging links are built from it.
    page, per_page
        Which page (from 1) and how many datasets a page holds.
    modified_since
        ISO 8601 date or datetime: only collections updated since then. A collection whose
        update time is unknown is kept, so that a harvester never misses a change.
    query
        Other query parameters to keep in the paging links (``format``).

    Raises
    ------
    CatalogError
        For a page below 1 or past the last, or a ``modified_since`` that is not ISO 8601.
    """
    if page < 1:
        raise CatalogError(f"page must be 1 or more, got {page}")
    collections = [c.stac for c in index.collections()]
    if modified_since:
        since = _parse_instant(modified_since, "modified_since")
        collections = [c for c in collections if _updated_since(c, since)]
    total = len(collections)
    last = max(1, math.ceil(total / per_page))
    if page > last:
        raise CatalogError(f"page {page} is past the last page, {last}")
    graph = dcat_graph(index, base_uri, collections[(page - 1) * per_page : page * per_page])
    keep = {k: v for k, v in (query or {}).items() if k != "page"}
    if modified_since:
        keep["modified_since"] = modified_since

    def link(number: int) -> URIRef:
        return URIRef(f"{page_url}?{urlencode({**keep, 'page': number})}")

    paged = link(page)
    add = graph.add
    add((paged, RDF.type, HYDRA.PagedCollection))
    add((paged, HYDRA.totalItems, RDFLiteral(total, datatype=XSD.integer)))
    add((paged, HYDRA.itemsPerPage, RDFLiteral(per_page, datatype=XSD.integer)))
    # ckanext-dcat reads (and writes) the Hydra draft's firstPage/nextPage...; current Hydra
    # says first/next...: both are given, so that harvesters of either generation page on.
    neighbours = {
        "first": 1,
        "last": last,
        "next": page + 1 if page < last else None,
        "previous": page - 1 if page > 1 else None,
    }
    for name, number in neighbours.items():
        if number is not None:
            add((paged, HYDRA[name], link(number)))
            add((paged, HYDRA[f"{name}Page"], link(number)))
    return DcatPage(graph=graph, page=page, last_page=last, total=total)


def describe_dataset(graph: Graph, dataset: URIRef, stac: dict[str, Any], service: URIRef) -> None:
    """Add the ``dcat:Dataset`` of one STAC Collection (dict) to ``graph``."""
    add = graph.add
    add((dataset, RDF.type, DCAT.Dataset))
    add((dataset, DCTERMS.identifier, RDFLiteral(stac["id"])))
    title, description = _title_and_description(stac)
    add((dataset, DCTERMS.title, RDFLiteral(title, lang="en")))
    add((dataset, DCTERMS.description, RDFLiteral(description, lang="en")))
    themes = [EU_THEME.ENVI]
    if stac.get("eosc:domain") in _INSPIRE_THEMES:
        themes.append(INSPIRE_THEME[_INSPIRE_THEMES[stac["eosc:domain"]]])
    for theme in themes:
        add((dataset, DCAT.theme, theme))
        add((theme, RDF.type, SKOS_CONCEPT))
    for keyword in dataset_keywords(stac):
        add((dataset, DCAT.keyword, RDFLiteral(keyword, lang="en")))
    if any(v.standard_name for v in collection_variables(stac)):
        add((dataset, DCTERMS.conformsTo, CF_CONVENTIONS))
    licence = _licence(graph, stac)
    if licence is not None:
        add((dataset, DCTERMS.license, licence))
    for field, predicate in (("created", DCTERMS.issued), ("updated", DCTERMS.modified)):
        if stac.get(field):
            add((dataset, predicate, RDFLiteral(stac[field], datatype=XSD.dateTime)))
    _providers(graph, dataset, stac.get("providers") or [])
    _extents(graph, dataset, stac.get("extent", {}))
    _distributions(graph, dataset, stac, service, licence)


def dataset_keywords(stac: dict[str, Any]) -> list[str]:
    """Keywords of a collection: its variables (CF standard names, long names), ACDD keywords
    and domain; never coordinates or bookkeeping columns (``lat``, ``time``, ``*_qc``)."""
    words = list(stac.get("keywords") or [])
    for variable in (stac.get("cube:variables") or {}).values():
        if variable.get("type", "data") == "data":
            words += [variable.get("standard_name"), variable.get("description")]
    for column in stac.get("table:columns") or []:
        # Only the columns CF names: the others are coordinates and bookkeeping (lat, *_QC).
        if column.get("standard_name"):
            words += [column["standard_name"], column.get("description", "").split(" [")[0]]
    words += [v.standard_name for v in collection_variables(stac)]
    return list(
        dict.fromkeys(w for w in words if w and w.lower() not in _NOT_KEYWORDS and w != stac["id"])
    )


def _title_and_description(stac: dict[str, Any]) -> tuple[str, str]:
    """The collection's title and description; for one whose sources carried no ACDD title or
    summary (both are then its bare id), a sentence made of what is known of it."""
    title, description = stac.get("title") or stac["id"], stac.get("description") or ""
    if title != stac["id"] and description not in ("", stac["id"]):
        return title, description
    kind = "In-situ observations" if stac.get("eosc:kind") == "insitu" else "Gridded data"
    domain = stac.get("eosc:domain")
    variables = ", ".join(p["name"].replace("_", " ") for p in stac.get("cf:parameter") or [])
    made = f"{kind}{f' ({domain})' if domain else ''}{f' of {variables}' if variables else ''}"
    if title == stac["id"]:
        title = f"{stac['id']}: {made[0].lower()}{made[1:]}"
    if description in ("", stac["id"]):
        interval = (stac.get("extent", {}).get("temporal", {}).get("interval") or [[None]])[0]
        period = " to ".join(t[:10] for t in interval if t)
        description = (
            f"{made}{f', {period}' if period else ''}, in the eosc-pangeo data "
            "lake. Its sources gave no ACDD title or summary."
        )
    return title, description


def _licence(graph: Graph, stac: dict[str, Any]) -> URIRef | None:
    """The SPDX licence of the collection, or the target of its ``license`` link."""
    href = None
    if stac.get("license") and stac["license"] not in ("other", "proprietary", "various"):
        href = SPDX_LICENSE + stac["license"]
    else:
        href = next(
            (link["href"] for link in stac.get("links", []) if link.get("rel") == "license"), None
        )
    if href is None:
        return None
    licence = URIRef(href)
    graph.add((licence, RDF.type, DCTERMS.LicenseDocument))
    return licence


def _providers(graph: Graph, dataset: URIRef, providers: list[dict[str, Any]]) -> None:
    add = graph.add
    hosts = [p for p in providers if "host" in p.get("roles", [])] or providers
    for provider in hosts[:1]:
        add((dataset, DCTERMS.publisher, _agent(graph, provider["name"], provider.get("url"))))
        contact = BNode()
        add((dataset, DCAT.contactPoint, contact))
        add((contact, RDF.type, VCARD.Kind))
        add((contact, RDF.type, VCARD.Organization))
        add((contact, VCARD.fn, RDFLiteral(provider["name"])))
        if provider.get("url"):
            add((contact, VCARD.hasURL, URIRef(provider["url"])))
    for provider in providers:
        if "producer" in provider.get("roles", []):
            add((dataset, DCTERMS.creator, _agent(graph, provider["name"], provider.get("url"))))


def _distributions(
    graph: Graph, dataset: URIRef, stac: dict[str, Any], service: URIRef, licence: URIRef | None
) -> None:
    """The STAC API's description, then every asset reachable over HTTP(S)."""
    add = graph.add
    stac_json = _distribution(
        graph,
        dataset,
        "stac",
        str(dataset),
        "application/json",
        "STAC Collection (STAC API)",
        licence,
    )
    add((stac_json, DCTERMS.conformsTo, STAC_SPEC))
    add((stac_json, DCAT.accessService, service))
    for key, asset in (stac.get("assets") or {}).items():
        if not asset["href"].startswith(("http://", "https://")):
            continue
        _distribution(
            graph,
            dataset,
            key,
            asset["href"],
            asset.get("type"),
            asset.get("title") or key,
            licence,
            asset.get("description"),
        )


def _distribution(
    graph: Graph,
    dataset: URIRef,
    key: str,
    href: str,
    media_type: str | None,
    title: str,
    licence: URIRef | None,
    description: str | None = None,
) -> URIRef:
    add = graph.add
    distribution = URIRef(f"{dataset}#{quote(key)}")
    add((dataset, DCAT.distribution, distribution))
    add((distribution, RDF.type, DCAT.Distribution))
    add((distribution, DCAT.accessURL, URIRef(href)))
    add((distribution, DCTERMS.title, RDFLiteral(title)))
    add((distribution, DCTERMS.description, RDFLiteral(description or title)))
    add((distribution, DCATAP.availability, EU_AVAILABILITY.STABLE))
    if licence is not None:
        add((distribution, DCTERMS.license, licence))
    if media_type:
        media = URIRef(IANA_MEDIA_TYPE + media_type)
        add((distribution, DCAT.mediaType, media))
        add((media, RDF.type, DCTERMS.MediaType))
        file_type = EU_FILE_TYPE[FILE_TYPES[media_type]] if media_type in FILE_TYPES else media
        add((distribution, DCTERMS["format"], file_type))
        add((file_type, RDF.type, DCTERMS.MediaTypeOrExtent))
        if media_type in _CONFORMS_TO:
            add((distribution, DCTERMS.conformsTo, _CONFORMS_TO[media_type]))
    return distribution


def _stac_service(graph: Graph, base_uri: str) -> URIRef:
    """The STAC API as a ``dcat:DataService`` (DCAT-AP 3 §6.6: endpoint URL and title)."""
    service = URIRef(f"{base_uri}#stac-api")
    graph.add((service, RDF.type, DCAT.DataService))
    graph.add((service, DCTERMS.title, RDFLiteral("eosc-pangeo STAC API", lang="en")))
    graph.add((service, DCAT.endpointURL, URIRef(base_uri)))
    graph.add((service, DCTERMS.conformsTo, STAC_SPEC))
    # stac-fastapi serves the API's OpenAPI description at /api.
    graph.add((service, DCAT.endpointDescription, URIRef(f"{base_uri}/api")))
    return service


def _extents(graph: Graph, dataset: URIRef, extent: dict[str, Any]) -> None:
    bbox = (extent.get("spatial", {}).get("bbox") or [None])[0]
    if bbox:
        _location(graph, dataset, (bbox[0], bbox[1], bbox[3], bbox[4]) if len(bbox) == 6 else bbox)
    interval = (extent.get("temporal", {}).get("interval") or [[None, None]])[0]
    if any(interval):
        period = BNode()
        graph.add((dataset, DCTERMS.temporal, period))
        graph.add((period, RDF.type, DCTERMS.PeriodOfTime))
        for value, predicate in zip(interval, (DCAT.startDate, DCAT.endDate), strict=True):
            if value:
                graph.add((period, predicate, RDFLiteral(value, datatype=XSD.dateTime)))


def _location(graph: Graph, subject: URIRef, bbox) -> None:
    """``dct:spatial`` as GeoDCAT-AP has it: the box as WKT (``dcat:bbox``, also the
    ``locn:geometry``) and its centre (``dcat:centroid``), in WGS 84 longitude, latitude."""
    west, south, east, north = bbox
    wkt = RDFLiteral(
        f"POLYGON(({west} {south}, {east} {south}, {east} {north}, "
        f"{west} {north}, {west} {south}))",
        datatype=GSP.wktLiteral,
    )
    location = BNode()
    graph.add((subject, DCTERMS.spatial, location))
    graph.add((location, RDF.type, DCTERMS.Location))
    graph.add((location, DCAT.bbox, wkt))
    graph.add((location, LOCN.geometry, wkt))
    graph.add(
        (
            location,
            DCAT.centroid,
            RDFLiteral(
                f"POINT({(west + east) / 2} {(south + north) / 2})", datatype=GSP.wktLiteral
            ),
        )
    )


def _agent(graph: Graph, name: str, url: str | None) -> URIRef | BNode:
    agent = URIRef(url) if url else BNode()
    graph.add((agent, RDF.type, FOAF.Agent))
    graph.add((agent, FOAF.name, RDFLiteral(name)))
    graph.add((agent, DCTERMS.type, RESEARCH_ORGANISATION))
    graph.add((RESEARCH_ORGANISATION, RDF.type, SKOS_CONCEPT))
    return agent


SHAPES = "shapes/dcat-ap-3.ttl"


def validate_dcat(graph: Graph) -> list[str]:
    """What the DCAT-AP 3 shapes (mandatory and recommended properties) find wrong with
    ``graph``: one line per result, ``Violation``/``Warning``, focus node, property, message.
    Empty when it conforms. Needs pyshacl (the ``test`` extra)."""
    from importlib.resources import files

    import pyshacl

    shapes = Graph().parse(data=files(__package__).joinpath(SHAPES).read_text(), format="turtle")
    _, results, _ = pyshacl.validate(graph, shacl_graph=shapes, allow_warnings=True)
    return sorted(
        f"{str(results.value(r, SH.resultSeverity)).rsplit('#')[-1]}: "
        f"{results.value(r, SH.focusNode)} {results.value(r, SH.resultPath)}: "
        f"{results.value(r, SH.resultMessage)}"
        for r in results.subjects(RDF.type, SH.ValidationResult)
    )


def _updated_since(stac: dict[str, Any], since: datetime) -> bool:
    """Whether a collection was updated at or after ``since``; True when its update time is
    unknown or unreadable (a harvested one), so that a harvester never misses a change."""
    try:
        return _parse_instant(stac["updated"], "updated") >= since
    except (KeyError, TypeError, CatalogError):
        return True


def _parse_instant(value: str, name: str) -> datetime:
    """An ISO 8601 date or datetime as an aware datetime (UTC when it names no zone)."""
    from datetime import timezone

    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CatalogError(
            f"{name} must be an ISO 8601 date or datetime, e.g. 2024-05-01T00:00:00Z; got {value!r}"
        ) from None
    return instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc)
