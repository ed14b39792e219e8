"""The STAC API also serves the catalogue as DCAT-AP 3 (GeoDCAT-AP), paged for the harvesters
of EOSC portals and CKAN catalogues: negotiated, valid against the DCAT-AP 3 shapes, and read
back by ckanext-dcat's own parser."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import requests
from rdflib import Graph, URIRef
from rdflib.namespace import DCAT, DCTERMS, RDF

from eosc_pangeo.catalog import CatalogIndex, build_catalog
from eosc_pangeo.catalog.api import create_app
from eosc_pangeo.catalog.dcat import HYDRA, LOCN, validate_dcat

REPO = Path(__file__).resolve().parents[2]
SERIALISATIONS = {
    "text/turtle": "turtle",
    "application/rdf+xml": "xml",
    "application/ld+json": "json-ld",
}


@pytest.fixture(scope="module")
def dcat_lake(tmp_path_factory, demo_lake):
    """The demo lake catalogued with a public data service URL: its datasets then have
    distributions at the service beside the STAC API's."""
    import shutil

    from eosc_pangeo.lake.storage import Lake

    lake = Lake(str(tmp_path_factory.mktemp("dcat") / "lake"))
    shutil.copytree(demo_lake.url, lake.url)
    build_catalog(lake, data_url="https://data.example.org")
    return lake


@pytest.fixture(scope="module")
def api(dcat_lake, serve):
    with serve(create_app(dcat_lake)) as url:
        yield url


def get(url: str, accept: str = "text/turtle", **params) -> requests.Response:
    return requests.get(url, headers={"Accept": accept}, params=params, timeout=60)


def parse(response: requests.Response) -> Graph:
    assert response.status_code == 200, response.text
    media_type = response.headers["content-type"].split(";")[0]
    return Graph().parse(data=response.text, format=SERIALISATIONS[media_type])


def datasets(graph: Graph) -> dict[str, URIRef]:
    return {
        str(graph.value(d, DCTERMS.identifier)): d for d in graph.subjects(RDF.type, DCAT.Dataset)
    }


def pages(first: str) -> list[Graph]:
    """Every page, following hydra next links from ``first``."""
    graphs, url = [], first
    while url:
        graphs.append(parse(get(url)))
        url = graphs[-1].value(
            next(graphs[-1].subjects(RDF.type, HYDRA.PagedCollection)), HYDRA.next
        )
    return graphs


# --- content negotiation -------------------------------------------------------------------


@pytest.mark.parametrize("media_type", SERIALISATIONS)
def test_each_serialisation_is_negotiated_and_holds_every_collection(api, dcat_lake, media_type):
    response = get(f"{api}/dcat", accept=media_type)
    assert response.headers["content-type"].startswith(media_type)
    assert "Accept" in response.headers["vary"].split(", ")
    assert set(datasets(parse(response))) == {
        c.id for c in CatalogIndex.of_lake(dcat_lake).collections()
    }


def test_the_three_serialisations_are_the_same_graph(api):
    from rdflib.compare import isomorphic

    turtle, xml, jsonld = (parse(get(f"{api}/dcat", accept=m)) for m in SERIALISATIONS)
    assert isomorphic(turtle, xml) and isomorphic(turtle, jsonld)


@pytest.mark.parametrize(
    "path, params, media_type",
    [
        ("/dcat.ttl", {}, "text/turtle"),
        ("/dcat.rdf", {}, "application/rdf+xml"),
        ("/dcat.jsonld", {}, "application/ld+json"),
        ("/dcat", {"format": "xml"}, "application/rdf+xml"),
    ],
)
def test_an_extension_or_format_parameter_overrides_the_accept_header(
    api, path, params, media_type
):
    response = get(f"{api}{path}", accept="text/turtle", **params)
    assert response.headers["content-type"].startswith(media_type)
    parse(response)


def test_browsers_and_wildcards_get_turtle_by_preference(api):
    accept = "text/html;q=0.9, application/rdf+xml;q=0.5, */*;q=0.1"
    assert (
        get(f"{api}/dcat", accept=accept).headers["content-type"].startswith("application/rdf+xml")
    )
    assert get(f"{api}/dcat", accept="*/*").headers["content-type"].startswith("text/turtle")


def test_an_accept_header_taking_no_rdf_is_406_naming_what_is_served(api):
    response = get(f"{api}/dcat", accept="text/html")
    assert response.status_code == 406
    assert "text/turtle" in response.json()["detail"]


# --- paging ----------------------------------------------------------------------------------


def test_pages_link_first_last_next_previous_as_ckanext_dcat_expects(api):
    graph = parse(get(f"{api}/dcat", per_page=1, page=2))
    [paged] = graph.subjects(RDF.type, HYDRA.PagedCollection)
    assert int(graph.value(paged, HYDRA.totalItems)) == 4
    assert int(graph.value(paged, HYDRA.itemsPerPage)) == 1
    for name, number in (("first", 1), ("last", 4), ("next", 3), ("previous", 1)):
        for predicate in (HYDRA[name], HYDRA[f"{name}Page"]):
            assert str(graph.value(paged, predicate)) == f"{api}/dcat?per_page=1&page={number}"
    assert len(datasets(graph)) == 1


def test_following_next_links_reads_every_dataset_once(api, dcat_lake):
    read = [datasets(g) for g in pages(f"{api}/dcat?per_page=3")]
    assert [len(page) for page in read] == [3, 1]
    assert sorted(i for page in read for i in page) == sorted(
        c.id for c in CatalogIndex.of_lake(dcat_lake).collections()
    )


@pytest.fixture(scope="module")
def later_lake(tmp_path_factory, dcat_lake):
    """``dcat_lake`` plus one collection ingested in a later second than all the others (the
    demo lake's four are often written within one second, the resolution of ``updated``)."""
    import shutil

    from eosc_pangeo.demo_data import write_dsg
    from eosc_pangeo.lake.kinds import kind_of
    from eosc_pangeo.lake.manifest import utcnow
    from eosc_pangeo.lake.storage import Lake

    lake = Lake(str(tmp_path_factory.mktemp("later") / "lake"))
    shutil.copytree(dcat_lake.url, lake.url)
    written = max(c.stac["updated"] for c in CatalogIndex.of_lake(lake).collections())
    while utcnow() <= written:
        time.sleep(0.05)
    sources = write_dsg(tmp_path_factory.mktemp("later-sources"))
    kind_of("insitu").ingest(lake, "moorings", "ocean", [str(p) for p in sources])
    build_catalog(lake, data_url="https://data.example.org")
    return lake


def test_modified_since_keeps_only_collections_updated_since(later_lake, serve):
    collections = CatalogIndex.of_lake(later_lake).collections()
    newest = max(c.stac["updated"] for c in collections)
    with serve(create_app(later_lake)) as api:
        assert datasets(parse(get(f"{api}/dcat", modified_since=newest))).keys() == {"moorings"}
        assert datasets(parse(get(f"{api}/dcat", modified_since="2000-01-01"))).keys() == {
            c.id for c in collections
        }


@pytest.mark.parametrize(
    "params, words",
    [
        ({"page": 0}, "page must be 1 or more"),
        ({"page": 9}, "past the last page, 1"),
        ({"per_page": 0}, "per_page must be between 1 and 1000"),
        ({"modified_since": "last tuesday"}, "modified_since must be an ISO 8601"),
    ],
)
def test_bad_paging_parameters_are_400_saying_what_to_give(api, params, words):
    response = get(f"{api}/dcat", **params)
    assert response.status_code == 400 and words in response.json()["description"]


# --- content ---------------------------------------------------------------------------------


def test_dataset_and_distribution_urls_are_followable_never_storage_paths(api):
    response = get(f"{api}/dcat")
    assert "file://" not in response.text and "s3://" not in response.text
    graph = parse(response)
    for identifier, dataset in datasets(graph).items():
        assert str(dataset) == f"{api}/collections/{identifier}"
        assert requests.get(str(dataset), timeout=30).json()["id"] == identifier
        for distribution in graph.objects(dataset, DCAT.distribution):
            url = str(graph.value(distribution, DCAT.accessURL))
            assert url.startswith((f"{api}/collections/", "https://data.example.org/"))


def test_dataset_urls_hang_below_the_public_url_when_one_is_configured(dcat_lake, serve):
    with serve(create_app(dcat_lake, public_url="https://stac.example.org/api/")) as url:
        graph = parse(get(f"{url}/dcat", per_page=2))
    assert {str(d) for d in datasets(graph).values()} <= {
        f"https://stac.example.org/api/collections/{i}" for i in ("argo", "sst", "stations", "tas")
    }
    [paged] = graph.subjects(RDF.type, HYDRA.PagedCollection)
    assert str(graph.value(paged, HYDRA.next)) == (
        "https://stac.example.org/api/dcat?per_page=2&page=2"
    )


def test_every_dataset_has_title_description_keywords_themes_contact_and_extents(api):
    graph = parse(get(f"{api}/dcat"))
    for identifier, dataset in datasets(graph).items():
        title, description = (
            str(graph.value(dataset, p)) for p in (DCTERMS.title, DCTERMS.description)
        )
        assert title != identifier and description != identifier
        keywords = {str(k) for k in graph.objects(dataset, DCAT.keyword)}
        assert keywords and not keywords & {
            "lat",
            "lon",
            "time",
            "geometry",
            "TEMP_QC",
            "platform_id",
            "depth",
        }
        assert len(set(graph.objects(dataset, DCAT.theme))) == 2
        contact = graph.value(dataset, DCAT.contactPoint)
        assert graph.value(contact, URIRef("http://www.w3.org/2006/vcard/ns#fn"))
        location = graph.value(dataset, DCTERMS.spatial)
        assert str(graph.value(location, LOCN.geometry)).startswith("POLYGON((")
        assert graph.value(graph.value(dataset, DCTERMS.temporal), DCAT.startDate)


def test_keywords_are_the_variables_cf_standard_names_and_long_names(api):
    graph = parse(get(f"{api}/dcat"))
    sst = {str(k) for k in graph.objects(datasets(graph)["sst"], DCAT.keyword)}
    assert {
        "sea_surface_foundation_temperature",
        "analysed sea surface temperature",
        "ocean",
    } <= sst
    argo = {str(k) for k in graph.objects(datasets(graph)["argo"], DCAT.keyword)}
    assert {"sea_water_temperature", "sea_water_practical_salinity"} <= argo


def test_distributions_give_their_formats(api):
    graph = parse(get(f"{api}/dcat"))
    formats = {
        str(graph.value(d, DCAT.accessURL)): (
            str(graph.value(d, DCAT.mediaType)),
            graph.value(d, DCTERMS["format"]),
        )
        for d in graph.objects(datasets(graph)["sst"], DCAT.distribution)
    }
    iana = "http://www.iana.org/assignments/media-types/"
    assert formats["https://data.example.org/zarr/sst"][0] == f"{iana}application/vnd.zarr"
    assert formats["https://data.example.org/opendap/sst"][0] == (
        f"{iana}application/vnd.opendap.dap2"
    )
    assert str(formats[f"{api}/collections/sst"][1]) == (
        "http://publications.europa.eu/resource/authority/file-type/JSON"
    )


def test_a_licence_is_given_where_the_sources_state_one(api):
    graph = parse(get(f"{api}/dcat"))
    licences = {i: graph.value(d, DCTERMS.license) for i, d in datasets(graph).items()}
    assert str(licences["sst"]) == "https://spdx.org/licenses/CC0-1.0"
    # The demo's in-situ sources state no licence: none is invented (see docs/publish-eosc.md).
    assert licences["argo"] is None


# --- validation ------------------------------------------------------------------------------


def test_every_page_meets_the_dcat_ap_3_shapes(api):
    """No violation of a mandatory property; warnings only where the demo's in-situ sources
    state no licence."""
    for graph in pages(f"{api}/dcat?per_page=2"):
        results = validate_dcat(graph)
        assert not [r for r in results if r.startswith("Violation")], results
        assert all("license" in r and "/collections/" in r for r in results), results


def test_the_shapes_catch_a_dataset_without_title_or_description():
    graph = Graph().parse(
        data="""
        @prefix dcat: <http://www.w3.org/ns/dcat#> .
        <https://example.org/d> a dcat:Dataset .""",
        format="turtle",
    )
    violations = [r for r in validate_dcat(graph) if r.startswith("Violation")]
    assert len(violations) == 2
    assert any("/title" in r for r in violations) and any("/description" in r for r in violations)


@pytest.fixture(scope="session")
def ckan_python() -> str:
    """CKAN 2.12 with ckanext-dcat in its own venv (.ci/ckan-venv.sh, idempotent)."""
    script = subprocess.run(
        [str(REPO / ".ci" / "ckan-venv.sh")], capture_output=True, text=True, timeout=1800
    )
    if script.returncode == 2:
        pytest.skip(f"CKAN cannot be installed here: {script.stderr.strip()[-300:]}")
    assert script.returncode == 0, script.stderr
    return str(REPO / ".venv-ckan" / "bin" / "python")


def ckan_read(ckan_python: str, url: str) -> dict:
    done = subprocess.run(
        [ckan_python, str(Path(__file__).with_name("ckan_read_dcat.py")), url],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout)


def test_ckanext_dcat_reads_every_page_and_dataset_with_title_extents_distributions(
    api, dcat_lake, ckan_python
):
    read = ckan_read(ckan_python, f"{api}/dcat?per_page=1")
    assert read["pages"] == 4
    by_id = {
        d["extras_by_key"]["identifier"]: d
        for d in (
            {**d, "extras_by_key": {e["key"]: e["value"] for e in d["extras"]}}
            for d in read["datasets"]
        )
    }
    index = CatalogIndex.of_lake(dcat_lake)
    assert set(by_id) == {c.id for c in index.collections()}
    for identifier, dataset in by_id.items():
        stac = index.collection(identifier).stac
        extras = dataset["extras_by_key"]
        assert dataset["title"] != identifier and dataset["notes"]
        assert extras["temporal_start"][:10] == stac["extent"]["temporal"]["interval"][0][0][:10]
        west, south, east, north = stac["extent"]["spatial"]["bbox"][0]
        assert json.loads(extras["spatial"])["coordinates"][0][0] == [west, south]
        urls = {r["url"] for r in dataset["resources"]}
        assert f"{api}/collections/{identifier}" in urls and len(urls) >= 3
        assert all(r["format"] for r in dataset["resources"])
        assert {t["name"] for t in dataset["tags"]} >= {p["name"] for p in stac["cf:parameter"]}
