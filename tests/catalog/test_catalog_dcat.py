"""DCAT-AP export: every collection becomes a dcat:Dataset that portals can read back."""

from __future__ import annotations

import pytest
from rdflib import Graph
from rdflib.namespace import DCAT, DCTERMS, RDF
from typer.testing import CliRunner

from eosc_pangeo.catalog import CatalogIndex
from eosc_pangeo.catalog.dcat import LOCN, export_dcat
from eosc_pangeo.cli import app


@pytest.mark.parametrize("format, rdf_format", [("turtle", "turtle"), ("jsonld", "json-ld")])
def test_every_collection_is_a_dcat_dataset_of_the_catalog(demo_lake, format, rdf_format):
    graph = Graph().parse(
        data=export_dcat(demo_lake, format=format, base_uri="https://stac.example.org"),
        format=rdf_format,
    )
    datasets = set(graph.subjects(RDF.type, DCAT.Dataset))
    [catalog] = graph.subjects(RDF.type, DCAT.Catalog)
    assert set(graph.objects(catalog, DCAT.dataset)) == datasets
    assert {str(graph.value(d, DCTERMS.identifier)) for d in datasets} == {
        c.id for c in CatalogIndex.of_lake(demo_lake).collections()
    }


def test_dataset_has_geodcat_spatial_and_temporal_coverage_and_distributions(demo_lake):
    graph = Graph().parse(
        data=export_dcat(demo_lake, base_uri="https://stac.example.org"), format="turtle"
    )
    sst = next(d for d in graph.subjects(RDF.type, DCAT.Dataset) if str(d).endswith("/sst"))
    location = graph.value(sst, DCTERMS.spatial)
    assert str(graph.value(location, DCAT.bbox)).startswith("POLYGON((-180.0 -90.0")
    assert graph.value(location, LOCN.geometry) is not None
    period = graph.value(sst, DCTERMS.temporal)
    assert str(graph.value(period, DCAT.startDate)).startswith("2020-01-01")
    publisher = graph.value(sst, DCTERMS.publisher)
    assert "ODATIS" in {str(o) for o in graph.objects(publisher, None)}
    # Built without a data service, the lake's Zarr stores are storage paths no portal can
    # follow: the one distribution is the STAC API's description.
    [distribution] = graph.objects(sst, DCAT.distribution)
    assert (
        str(graph.value(distribution, DCAT.accessURL)) == "https://stac.example.org/collections/sst"
    )


def test_cli_writes_the_export(demo_lake, tmp_path):
    output = tmp_path / "catalog.jsonld"
    result = CliRunner().invoke(
        app,
        [
            "catalog",
            "export-dcat",
            "--lake",
            demo_lake.url,
            "--format",
            "jsonld",
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(set(Graph().parse(output, format="json-ld").subjects(RDF.type, DCAT.Dataset))) == 4
