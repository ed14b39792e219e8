"""Export the meta-catalogue as DCAT-AP (with the GeoDCAT-AP spatial properties) for EOSC and
national portals.

Each indexed Collection becomes a ``dcat:Dataset`` with its title, description, keywords,
licence, publisher (the data pole or the producer), spatial coverage (``dcat:bbox`` and
``locn:geometry`` as WKT, as GeoDCAT-AP recommends), temporal coverage, variables (as
``dcat:keyword`` and, for CF standard names, ``dct:conformsTo`` the CF convention) and one
``dcat:Distribution`` per asset.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from rdflib import BNode, Graph, Namespace, URIRef
from rdflib import Literal as RDFLiteral
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, XSD

from ..lake.storage import Lake
from .errors import CatalogError
from .index import CatalogIndex
from .vocabulary import collection_variables

LOCN = Namespace("http://www.w3.org/ns/locn#")
GSP = Namespace("http://www.opengis.net/ont/geosparql#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
EU_THEME = Namespace("http://publications.europa.eu/resource/authority/data-theme/")
EU_FILE_TYPE = Namespace("http://publications.europa.eu/resource/authority/file-type/")
SPDX_LICENSE = "https://spdx.org/licenses/"
CF_CONVENTIONS = URIRef("http://cfconventions.org/")

#: Format names of the EU file-type vocabulary, by media type.
_FILE_TYPES = {"application/vnd.zarr": "ZARR", "application/vnd.apache.parquet": "PARQUET",
               "application/x-netcdf": "NETCDF", "application/json": "JSON"}

DcatFormat = Literal["turtle", "jsonld"]


def export_dcat(lake: str | Lake | None = None, *, index: CatalogIndex | None = None,
                format: DcatFormat = "turtle", base_uri: str | None = None) -> str:
    """The catalogue as DCAT-AP, serialised as Turtle or JSON-LD.

    Parameters
    ----------
    lake, index
        Whose index to export; default: the configured lake's.
    format
        ``turtle`` or ``jsonld``.
    base_uri
        Where the catalogue is published (the STAC API URL): dataset URIs are
        ``<base_uri>/collections/<id>``. Default: the index's own URL.
    """
    if format not in ("turtle", "jsonld"):
        raise CatalogError(f"format must be turtle or jsonld, got {format!r}")
    index = index or CatalogIndex.of_lake(lake)
    return dcat_graph(index, base_uri or index.url).serialize(
        format="json-ld" if format == "jsonld" else "turtle")


def dcat_graph(index: CatalogIndex, base_uri: str) -> Graph:
    """An rdflib graph holding a ``dcat:Catalog`` and one ``dcat:Dataset`` per Collection."""
    graph = Graph()
    for prefix, namespace in (("dcat", DCAT), ("dct", DCTERMS), ("foaf", FOAF), ("locn", LOCN),
                              ("gsp", GSP), ("vcard", VCARD)):
        graph.bind(prefix, namespace)
    base_uri = base_uri.rstrip("/")
    catalog = URIRef(base_uri)
    graph.add((catalog, RDF.type, DCAT.Catalog))
    graph.add((catalog, DCTERMS.title, RDFLiteral("eosc-pangeo meta-catalogue", lang="en")))
    graph.add((catalog, DCTERMS.description, RDFLiteral(
        "Ocean, atmosphere, land and solid-Earth collections of the eosc-pangeo data lake and "
        "of the catalogues it harvests.", lang="en")))
    graph.add((catalog, DCTERMS.publisher, _agent(graph, "eosc-pangeo", None)))
    for indexed in index.collections():
        dataset = URIRef(f"{base_uri}/collections/{quote(indexed.id)}")
        graph.add((catalog, DCAT.dataset, dataset))
        _describe_dataset(graph, dataset, indexed.stac)
    return graph


def _describe_dataset(graph: Graph, dataset: URIRef, stac: dict[str, Any]) -> None:
    add = graph.add
    add((dataset, RDF.type, DCAT.Dataset))
    add((dataset, DCTERMS.identifier, RDFLiteral(stac["id"])))
    add((dataset, DCTERMS.title, RDFLiteral(stac.get("title") or stac["id"], lang="en")))
    add((dataset, DCTERMS.description, RDFLiteral(stac["description"], lang="en")))
    add((dataset, DCAT.theme, EU_THEME.ENVI))
    for keyword in stac.get("keywords") or []:
        add((dataset, DCAT.keyword, RDFLiteral(keyword, lang="en")))
    variables = collection_variables(stac)
    for variable in variables:
        add((dataset, DCAT.keyword, RDFLiteral(variable.standard_name or variable.name)))
    if any(v.standard_name for v in variables):
        add((dataset, DCTERMS.conformsTo, CF_CONVENTIONS))
    if stac.get("license") and stac["license"] not in ("other", "proprietary", "various"):
        add((dataset, DCTERMS.license, URIRef(SPDX_LICENSE + stac["license"])))
    for field, predicate in (("created", DCTERMS.issued), ("updated", DCTERMS.modified)):
        if stac.get(field):
            add((dataset, predicate, RDFLiteral(stac[field], datatype=XSD.dateTime)))
    _providers(graph, dataset, stac.get("providers") or [])
    _extents(graph, dataset, stac.get("extent", {}))
    _distributions(graph, dataset, stac.get("assets") or {})


def _providers(graph: Graph, dataset: URIRef, providers: list[dict[str, Any]]) -> None:
    add = graph.add
    hosts = [p for p in providers if "host" in p.get("roles", [])] or providers
    for provider in hosts[:1]:
        add((dataset, DCTERMS.publisher, _agent(graph, provider["name"], provider.get("url"))))
        contact = BNode()
        add((dataset, DCAT.contactPoint, contact))
        add((contact, RDF.type, VCARD.Organization))
        add((contact, VCARD.fn, RDFLiteral(provider["name"])))
        if provider.get("url"):
            add((contact, VCARD.hasURL, URIRef(provider["url"])))
    for provider in providers:
        if "producer" in provider.get("roles", []):
            add((dataset, DCTERMS.creator, _agent(graph, provider["name"], provider.get("url"))))


def _distributions(graph: Graph, dataset: URIRef, assets: dict[str, Any]) -> None:
    add = graph.add
    for key, asset in assets.items():
        distribution = URIRef(f"{dataset}#{quote(key)}")
        add((dataset, DCAT.distribution, distribution))
        add((distribution, RDF.type, DCAT.Distribution))
        add((distribution, DCAT.accessURL, URIRef(asset["href"])))
        add((distribution, DCTERMS.title, RDFLiteral(asset.get("title") or key)))
        if asset.get("type"):
            add((distribution, DCAT.mediaType, RDFLiteral(asset["type"])))
            if asset["type"] in _FILE_TYPES:
                add((distribution, DCTERMS["format"], EU_FILE_TYPE[_FILE_TYPES[asset["type"]]]))


def _extents(graph: Graph, dataset: URIRef, extent: dict[str, Any]) -> None:
    bbox = (extent.get("spatial", {}).get("bbox") or [None])[0]
    if bbox:
        west, south, east, north = (bbox[0], bbox[1], bbox[3], bbox[4]) if len(bbox) == 6 \
            else bbox
        wkt = RDFLiteral(f"POLYGON(({west} {south}, {east} {south}, {east} {north}, "
                         f"{west} {north}, {west} {south}))", datatype=GSP.wktLiteral)
        location = BNode()
        graph.add((dataset, DCTERMS.spatial, location))
        graph.add((location, RDF.type, DCTERMS.Location))
        graph.add((location, DCAT.bbox, wkt))
        graph.add((location, LOCN.geometry, wkt))
    interval = (extent.get("temporal", {}).get("interval") or [[None, None]])[0]
    if any(interval):
        period = BNode()
        graph.add((dataset, DCTERMS.temporal, period))
        graph.add((period, RDF.type, DCTERMS.PeriodOfTime))
        for value, predicate in zip(interval, (DCAT.startDate, DCAT.endDate), strict=True):
            if value:
                graph.add((period, predicate, RDFLiteral(value, datatype=XSD.dateTime)))


def _agent(graph: Graph, name: str, url: str | None) -> URIRef | BNode:
    agent = URIRef(url) if url else BNode()
    graph.add((agent, RDF.type, FOAF.Agent))
    graph.add((agent, FOAF.name, RDFLiteral(name)))
    return agent
