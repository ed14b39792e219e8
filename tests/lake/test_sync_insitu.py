"""lake sync of in-situ collections: files gone upstream (reported, pruned only when asked) and
the collection's ACDD metadata (from the sources or given), down to its DCAT-AP licence.

The source is a real HTTP server with a directory listing (see sync_servers.py) holding the
demo generator's station CSVs and CF DSG NetCDF files; the lake is on disk.
"""

from __future__ import annotations

import shutil

import netCDF4
import pytest
from rdflib import Graph
from rdflib.namespace import DCAT, DCTERMS, RDF
from sync_servers import file_server  # noqa: F401 - a fixture

from eosc_pangeo import demo_data
from eosc_pangeo.lake import read_insitu, read_manifest, validate
from eosc_pangeo.lake.errors import IngestError
from eosc_pangeo.lake.sync import sync

ACDD = {
    "title": "Moored temperature at three coastal sites",
    "summary": "Hourly sea temperature and salinity from moorings, quality controlled.",
    "license": "CC-BY-4.0",
    "creator_name": "Coastal observatory",
}


@pytest.fixture(scope="module")
def stations(tmp_path_factory):
    return demo_data.write_stations(
        demo_data.StationSpec(stations=3, days=3), tmp_path_factory.mktemp("stations")
    )


@pytest.fixture
def served(file_server, stations):  # noqa: F811
    (file_server.root / "stations").mkdir()
    for path in stations:
        shutil.copy(path, file_server.root / "stations")
    return file_server


def run(lake, server, folder="stations", **kwargs):
    return sync(lake, f"{server.url}/{folder}/", "coast", "ocean", "insitu", **kwargs)


def manifest_of(lake):
    return read_manifest(lake, lake.collection_path("ocean", "coast"))


def platforms(lake) -> set[str]:
    return set(read_insitu(lake, "coast")["platform_id"])


# --- files gone from the source --------------------------------------------------------------


def test_a_file_gone_upstream_is_reported_removed_and_stays_in_the_lake(local_lake, served):
    run(local_lake, served)
    gone = served.root / "stations" / "ES-VIGO-01.csv"
    before = platforms(local_lake)
    gone.unlink()
    report = run(local_lake, served)
    assert report.removed == ["ES-VIGO-01.csv"] and report.pruned == []
    assert manifest_of(local_lake).source("ES-VIGO-01.csv") is not None
    assert platforms(local_lake) == before


def test_prune_takes_the_removed_files_rows_out_in_one_new_version(local_lake, served, stations):
    run(local_lake, served)
    station = (
        read_insitu(local_lake, "coast").query("source == 'ES-VIGO-01.csv'").platform_id.iloc[0]
    )
    (served.root / "stations" / "ES-VIGO-01.csv").unlink()
    report = run(local_lake, served, prune=True)
    assert report.removed == report.pruned == ["ES-VIGO-01.csv"] and report.ok
    manifest = manifest_of(local_lake)
    assert manifest.version == 2 and manifest.source("ES-VIGO-01.csv") is None
    rows = read_insitu(local_lake, "coast")
    assert station not in set(rows.platform_id) and len(rows) > 0
    assert all(f.ok for f in validate(local_lake))
    assert run(local_lake, served, prune=True).removed == []


def test_a_dry_run_with_prune_reports_the_removed_files_and_changes_nothing(local_lake, served):
    run(local_lake, served)
    (served.root / "stations" / "ES-VIGO-01.csv").unlink()
    report = run(local_lake, served, prune=True, dry_run=True)
    assert report.removed == ["ES-VIGO-01.csv"] and report.pruned == []
    assert manifest_of(local_lake).version == 1


def test_files_outside_the_include_pattern_are_never_removed(local_lake, served):
    run(local_lake, served)
    report = run(local_lake, served, prune=True, include="FR-*")
    assert report.removed == [] and manifest_of(local_lake).source("ES-VIGO-01.csv") is not None


def test_a_source_that_lists_nothing_prunes_nothing_and_says_why(local_lake, served):
    run(local_lake, served)
    for path in (served.root / "stations").iterdir():
        path.unlink()
    report = run(local_lake, served, prune=True)
    assert len(report.removed) == 3 and report.pruned == []
    assert "lists no file" in report.failed["*"]
    assert len(manifest_of(local_lake).sources) == 3


def test_a_prune_that_cannot_write_leaves_the_collection_as_it_was_and_says_so(local_lake, served):
    from eosc_pangeo.lake.lock import CollectionLock

    run(local_lake, served)
    (served.root / "stations" / "ES-VIGO-01.csv").unlink()
    with CollectionLock(local_lake, local_lake.collection_path("ocean", "coast")):
        report = run(local_lake, served, prune=True)
    assert report.pruned == [] and "not pruned" in report.failed["ES-VIGO-01.csv"]
    manifest = manifest_of(local_lake)
    assert manifest.version == 1 and manifest.source("ES-VIGO-01.csv") is not None
    assert run(local_lake, served, prune=True).pruned == ["ES-VIGO-01.csv"]


def test_removing_a_file_the_collection_does_not_hold_names_it_and_changes_nothing(
    local_lake, served
):
    from eosc_pangeo.lake.insitu import remove_insitu_sources

    run(local_lake, served)
    with pytest.raises(IngestError, match="holds no source file nowhere.csv"):
        remove_insitu_sources(local_lake, "coast", "ocean", ["ES-VIGO-01.csv", "nowhere.csv"])
    assert manifest_of(local_lake).version == 1 and len(manifest_of(local_lake).sources) == 3


def test_prune_is_refused_for_a_grid(local_lake, served):
    with pytest.raises(IngestError, match="in-situ collections only"):
        sync(local_lake, f"{served.url}/stations/", "sst", "ocean", "grid", prune=True)


# --- ACDD metadata and the DCAT-AP licence ---------------------------------------------------


@pytest.fixture
def dsg_served(file_server, tmp_path):  # noqa: F811
    """Two CF DSG files whose global attributes state the collection's ACDD metadata."""
    folder = file_server.root / "dsg"
    folder.mkdir()
    for path in demo_data.write_dsg(tmp_path / "dsg")[:2]:
        shutil.copy(path, folder)
        with netCDF4.Dataset(folder / path.name, "a") as nc:
            nc.setncatts({**ACDD, "id": path.stem, "date_created": "2024-01-01"})
    return file_server


def dcat_dataset(lake, collection: str):
    from eosc_pangeo.catalog import build_catalog
    from eosc_pangeo.catalog.dcat import export_dcat, validate_dcat

    build_catalog(lake)
    graph = Graph().parse(
        data=export_dcat(lake, base_uri="https://stac.example.org"), format="turtle"
    )
    [dataset] = [
        d
        for d in graph.subjects(RDF.type, DCAT.Dataset)
        if str(graph.value(d, DCTERMS.identifier)) == collection
    ]
    return graph, dataset, [r for r in validate_dcat(graph) if str(dataset) in r]


def test_a_synced_collection_keeps_the_acdd_attributes_of_its_sources(local_lake, dsg_served):
    report = run(local_lake, dsg_served, folder="dsg")
    assert report.ok and len(report.new) == 2
    # Collection-wide attributes are kept; per-file ones (id, dates) are not.
    attributes = manifest_of(local_lake).attributes
    assert ACDD.items() <= attributes.items()
    assert "id" not in attributes and "date_created" not in attributes


def test_its_dcat_ap_dataset_then_has_the_licence_title_and_summary(local_lake, dsg_served):
    run(local_lake, dsg_served, folder="dsg")
    graph, dataset, results = dcat_dataset(local_lake, "coast")
    assert str(graph.value(dataset, DCTERMS.license)) == "https://spdx.org/licenses/CC-BY-4.0"
    assert str(graph.value(dataset, DCTERMS.title)) == ACDD["title"]
    assert str(graph.value(dataset, DCTERMS.description)) == ACDD["summary"]
    assert results == []  # no violation, no warning of the DCAT-AP 3 shapes


def test_attributes_given_to_the_sync_give_a_licence_to_sources_without_one(local_lake, served):
    # Station CSVs carry no global attributes: without these, the dataset has no licence.
    report = run(local_lake, served, attributes={"license": "CC0-1.0", "title": "Coast"})
    assert report.ok
    assert manifest_of(local_lake).attributes == {"license": "CC0-1.0", "title": "Coast"}
    graph, dataset, _ = dcat_dataset(local_lake, "coast")
    assert str(graph.value(dataset, DCTERMS.license)) == "https://spdx.org/licenses/CC0-1.0"


def test_given_attributes_win_over_the_sources(local_lake, dsg_served):
    run(local_lake, dsg_served, folder="dsg", attributes={"license": "CC0-1.0"})
    attributes = manifest_of(local_lake).attributes
    assert attributes["license"] == "CC0-1.0" and attributes["title"] == ACDD["title"]


def test_an_attribute_that_is_not_acdd_is_refused_by_name_before_anything_is_fetched(
    local_lake, served
):
    with pytest.raises(IngestError, match="attribute 'licence': is not an ACDD attribute"):
        run(local_lake, served, attributes={"licence": "CC0-1.0"})
    assert served.bytes_sent == 0 and manifest_of(local_lake) is None


def test_attributes_are_refused_for_a_grid(local_lake, served):
    with pytest.raises(IngestError, match="in-situ collections only"):
        sync(
            local_lake,
            f"{served.url}/stations/",
            "sst",
            "ocean",
            "grid",
            attributes={"license": "CC0-1.0"},
        )
