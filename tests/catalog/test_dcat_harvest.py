"""`catalog harvest` reads DCAT-AP catalogues: another lake's served /dcat, and a CKAN-like
(D4Science) paged endpoint whose pages this test writes and serves on loopback. Their datasets
are found by search() beside the lake's, and open in one line when their distributions are
Zarr, NetCDF or OPeNDAP."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from typer.testing import CliRunner

from eosc_pangeo.access import AccessPolicy
from eosc_pangeo.access import create_app as create_data_service
from eosc_pangeo.catalog import CatalogError, CatalogIndex, build_catalog, search
from eosc_pangeo.catalog.api import create_app
from eosc_pangeo.catalog.harvest import harvest
from eosc_pangeo.cli import app as cli
from eosc_pangeo.lake import open_grid

PREFIXES = """
@prefix dcat: <http://www.w3.org/ns/dcat#> .
@prefix dct: <http://purl.org/dc/terms/> .
@prefix foaf: <http://xmlns.com/foaf/0.1/> .
@prefix hydra: <http://www.w3.org/ns/hydra/core#> .
@prefix locn: <http://www.w3.org/ns/locn#> .
@prefix gsp: <http://www.opengis.net/ont/geosparql#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
"""


#: GeoSPARQL WKT, naming its CRS first as D4Science's GeoNetwork-fed records do.
MED_WKT = (
    "<http://www.opengis.net/def/crs/OGC/1.3/CRS84> POLYGON((-6 30, 36 30, 36 46, -6 46, -6 30))"
)


class Portal:
    """A CKAN-like DCAT endpoint on loopback: pages (path -> status, media type, body) that a
    test sets, served as they are."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, str, bytes]] = {}
        self.url = ""

    def app(self) -> Starlette:
        async def page(request):
            status, media_type, body = self.pages.get(
                request.url.path, (404, "text/plain", b"not found")
            )
            return Response(body, status_code=status, media_type=media_type)

        return Starlette(routes=[Route("/{path:path}", page)])

    def put(
        self, path: str, body: str | bytes, media_type: str = "text/turtle", status: int = 200
    ) -> str:
        self.pages[path] = (status, media_type, body.encode() if isinstance(body, str) else body)
        return f"{self.url}{path}"


@pytest.fixture(scope="module")
def portal(serve):
    portal = Portal()
    with serve(portal.app()) as url:
        portal.url = url
        yield portal


@pytest.fixture(scope="module")
def data_service(demo_lake, serve):
    """The demo lake's data service (OPeNDAP, Zarr over HTTP), the one a partner's catalogue
    points its OPeNDAP distributions at."""
    policy = AccessPolicy.model_validate(
        {
            "public": ["sst", "tas", "argo", "stations"],
            "limits": {"max_response_bytes": 200_000_000},
        }
    )
    with serve(create_data_service(demo_lake, policy)) as url:
        yield url


@pytest.fixture
def index(tmp_path) -> CatalogIndex:
    return CatalogIndex(str(tmp_path / "index"))


def index_bytes(index: CatalogIndex) -> dict[str, bytes]:
    return {path: index.fs.cat_file(path) for path in index.fs.find(index.root)}


def d4science_page(
    portal: Portal,
    data_service: str,
    *,
    next_path: str | None = None,
    opendap: bool = True,
    netcdf: bool = True,
) -> str:
    """Page 1 of the partner's catalogue: an SST dataset with OPeNDAP and NetCDF
    distributions, in the Turtle ckanext-dcat writes (free-text CKAN formats, hydra *Page)."""
    dataset = f"{portal.url}/dataset/med-sst"
    paging = f'hydra:nextPage "{portal.url}{next_path}" ;' if next_path else ""
    distributions = {
        "opendap": f"""dct:title "OPeNDAP" ; dct:format "OPeNDAP" ;
                       dcat:accessURL <{data_service}/opendap/sst>""",
        "netcdf": f"""dct:title "NetCDF file" ; dct:format "NetCDF" ;
                      dcat:downloadURL <{portal.url}/files/med-sst.nc>""",
    }
    kept = {k: v for k, v in distributions.items() if {"opendap": opendap, "netcdf": netcdf}[k]}
    return (
        PREFIXES
        + f"""
<{portal.url}/catalog.ttl?page=1> a hydra:PagedCollection ; {paging}
    hydra:totalItems 2 ; hydra:itemsPerPage 1 .
<{portal.url}/catalog> a dcat:Catalog ; dcat:dataset <{dataset}> .
<{dataset}> a dcat:Dataset ;
    dct:identifier "med-sst" ;
    dct:title "Mediterranean sea surface temperature (D4Science VRE)"@en ;
    dct:description "Daily foundation SST over the Mediterranean, from the BlueCloud VRE."@en ;
    dcat:keyword "sea surface temperature", "Mediterranean" ;
    dct:license <https://spdx.org/licenses/CC-BY-4.0> ;
    dct:publisher [ a foaf:Agent ; foaf:name "D4Science" ] ;
    dct:spatial [ a dct:Location ; locn:geometry "{MED_WKT}"^^gsp:wktLiteral ] ;
    dct:temporal [ a dct:PeriodOfTime ; dcat:startDate "2020-01-01"^^xsd:date ;
                   dcat:endDate "2020-01-10"^^xsd:date ] ;
    dcat:distribution {", ".join(f"<{dataset}/resource/{k}>" for k in kept)} .
"""
        + "".join(
            f"<{dataset}/resource/{k}> a dcat:Distribution ; {v} .\n" for k, v in kept.items()
        )
    )


def second_page(portal: Portal, next_path: str | None = None) -> str:
    """Page 2, in RDF/XML: a dataset with only a PDF report."""
    paging = f"<hydra:nextPage>{portal.url}{next_path}</hydra:nextPage>" if next_path else ""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns:dcat="http://www.w3.org/ns/dcat#" xmlns:dct="http://purl.org/dc/terms/"
         xmlns:hydra="http://www.w3.org/ns/hydra/core#">
  <hydra:PagedCollection rdf:about="{portal.url}/catalog.rdf?page=2">{paging}
  </hydra:PagedCollection>
  <dcat:Dataset rdf:about="{portal.url}/dataset/cruise-report">
    <dct:title>Cruise report MED-2020</dct:title>
    <dct:description>Narrative of the cruise, sea surface temperature logs.</dct:description>
    <dcat:keyword>cruise</dcat:keyword>
    <dcat:distribution>
      <dcat:Distribution rdf:about="{portal.url}/dataset/cruise-report/resource/pdf">
        <dct:format>PDF</dct:format>
        <dcat:accessURL rdf:resource="{portal.url}/files/report.pdf"/>
      </dcat:Distribution>
    </dcat:distribution>
  </dcat:Dataset>
</rdf:RDF>"""


@pytest.fixture(scope="module")
def med_sst(demo_lake, portal, tmp_path_factory) -> xr.Dataset:
    """The partner's NetCDF file (the demo SST over the Mediterranean), served by the portal."""
    subset = open_grid(demo_lake, "sst", bbox=(-6, 30, 36, 46)).load()
    path = tmp_path_factory.mktemp("d4science") / "med-sst.nc"
    subset.to_netcdf(path, engine="h5netcdf")
    portal.put("/files/med-sst.nc", path.read_bytes(), "application/x-netcdf")
    return subset


@pytest.fixture
def d4science(portal, data_service, med_sst) -> str:
    """The partner's two pages (Turtle, then RDF/XML); yields page 1's URL."""
    portal.put("/catalog.rdf", second_page(portal), "application/rdf+xml")
    return portal.put(
        "/catalog.ttl", d4science_page(portal, data_service, next_path="/catalog.rdf")
    )


def med_hit(catalog) -> object:
    [hit] = [
        h
        for h in search(bbox=(0, 35, 10, 40), datetime="2020-01-03/2020-01-04", catalog=catalog)
        if h.id == "med-sst"
    ]
    return hit


# --- a partner's CKAN (D4Science) ----------------------------------------------------------


def test_a_ckan_catalogue_is_harvested_page_after_page(d4science, index):
    report = harvest(d4science, index=index)
    assert report.ok, report.error
    assert report.kind == "dcat" and sorted(report.added) == ["cruise-report", "med-sst"]


def test_harvested_datasets_are_found_beside_the_lakes(d4science, lake_copy):
    assert harvest(d4science, lake=lake_copy, domain="ocean").ok
    hits = search(bbox=(0, 35, 10, 40), q="sea surface temperature", lake=lake_copy)
    assert {"sst", "med-sst"} <= {h.id for h in hits}
    med = next(h for h in hits if h.id == "med-sst")
    assert med.title == "Mediterranean sea surface temperature (D4Science VRE)"
    assert med.domain == "ocean" and med.collection["license"] == "CC-BY-4.0"
    assert med.collection["extent"]["spatial"]["bbox"] == [[-6.0, 30.0, 36.0, 46.0]]
    assert med.collection["extent"]["temporal"]["interval"] == [
        ["2020-01-01T00:00:00Z", "2020-01-10T00:00:00Z"]
    ]


def test_an_opendap_distribution_opens_in_one_line(portal, data_service, med_sst, index):
    harvest(
        portal.put("/only-opendap.ttl", d4science_page(portal, data_service, netcdf=False)),
        index=index,
    )
    opened = med_hit(index).open()
    expected = med_sst.sel(
        time=slice("2020-01-03", "2020-01-04"), lat=slice(35, 40), lon=slice(0, 10)
    )
    np.testing.assert_allclose(opened["analysed_sst"].values, expected["analysed_sst"].values)


def test_a_netcdf_distribution_opens_in_one_line(portal, data_service, med_sst, index):
    harvest(
        portal.put("/only-netcdf.ttl", d4science_page(portal, data_service, opendap=False)),
        index=index,
    )
    opened = med_hit(index).open()
    expected = med_sst.sel(
        time=slice("2020-01-03", "2020-01-04"), lat=slice(35, 40), lon=slice(0, 10)
    )
    np.testing.assert_allclose(opened["analysed_sst"].values, expected["analysed_sst"].values)


def test_a_distribution_that_cannot_be_opened_says_where_to_get_it(d4science, index, portal):
    harvest(d4science, index=index)
    [hit] = search(q="cruise", catalog=index)
    with pytest.raises(CatalogError, match=f"get it from {portal.url}/files/report.pdf"):
        hit.open()


# --- another lake's served DCAT ------------------------------------------------------------


def test_one_lakes_dcat_is_harvested_into_another_catalogue_and_its_zarr_opens(
    lake_copy, serve, index
):
    policy = AccessPolicy.model_validate(
        {
            "public": ["sst", "tas", "argo", "stations"],
            "limits": {"max_response_bytes": 200_000_000},
        }
    )
    with serve(create_data_service(lake_copy, policy)) as data_url:
        build_catalog(lake_copy, data_url=data_url)
        with serve(create_app(lake_copy)) as api:
            report = harvest(f"{api}/dcat", index=index)
            assert report.ok, report.error
            assert report.kind == "dcat" and sorted(report.added) == [
                "argo",
                "sst",
                "stations",
                "tas",
            ]
            [hit] = search(variables="air_temperature", catalog=index)
            assert hit.source != "lake" and hit.title.startswith("EOSC-ESM output")
            opened = hit.open()
            expected = open_grid(lake_copy, "tas")
            np.testing.assert_allclose(opened["tas"].values, expected["tas"].values)


@pytest.mark.parametrize("extension", ["ttl", "rdf", "jsonld"])
def test_each_serialisation_is_harvested_across_its_pages(stac_api, index, extension):
    report = harvest(f"{stac_api}/dcat.{extension}?per_page=1", index=index)
    assert report.ok, report.error
    assert sorted(report.added) == ["argo", "sst", "stations", "tas"]


def test_reharvesting_an_unchanged_dcat_catalogue_rewrites_nothing(d4science, index):
    harvest(d4science, index=index)
    before = index_bytes(index)
    report = harvest(d4science, index=index)
    assert len(report.unchanged) == 2 and index_bytes(index) == before


# --- bad input -----------------------------------------------------------------------------


def broken_sources(portal: Portal, data_service: str) -> dict[str, tuple[str, str]]:
    """Catalogues that fail on their second page, and the message each failure gives."""
    first = d4science_page(portal, data_service, next_path="/broken/2")
    portal.put("/malformed/1", first.replace("/broken/2", "/malformed/2"))
    portal.put("/malformed/2", "@prefix dcat: <http://www.w3.org/ns/dcat#> .\n<a> dcat:x")
    portal.put("/erroring/1", first.replace("/broken/2", "/erroring/2"))
    portal.put("/erroring/2", "Internal Server Error", "text/plain", status=500)
    portal.put("/looping/1", first.replace("/broken/2", "/looping/2"))
    portal.put("/looping/2", second_page(portal, next_path="/looping/1"), "application/rdf+xml")
    return {
        "malformed": (
            f"{portal.url}/malformed/1",
            f"DCAT page {portal.url}/malformed/2 is not valid turtle RDF",
        ),
        "erroring": (
            f"{portal.url}/erroring/1",
            f"DCAT page {portal.url}/erroring/2 answered HTTP 500",
        ),
        "looping": (
            f"{portal.url}/looping/1",
            f"DCAT page {portal.url}/looping/2 links back to {portal.url}/looping/1",
        ),
    }


@pytest.mark.parametrize("fault", ["malformed", "erroring", "looping"])
def test_a_broken_page_is_reported_in_one_line_and_changes_nothing(
    portal, data_service, d4science, index, fault
):
    harvest(d4science, index=index)
    before = index_bytes(index)
    source, message = broken_sources(portal, data_service)[fault]
    report = harvest(source, index=index)
    assert not report.ok and message in report.error and "\n" not in report.error
    assert index_bytes(index) == before


def test_the_cli_prints_the_fault_and_exits_1(portal, data_service, lake_copy):
    source, message = broken_sources(portal, data_service)["erroring"]
    index = CatalogIndex.of_lake(lake_copy)
    before = index_bytes(index)
    result = CliRunner().invoke(cli, ["catalog", "harvest", source, "--lake", lake_copy.url])
    assert result.exit_code == 1 and message in result.output.replace("\n", "")
    assert index_bytes(index) == before
