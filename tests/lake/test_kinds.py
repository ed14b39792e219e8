"""One interface per kind of collection (eosc_pangeo.lake.kinds), found from the manifest, and
the lake's layout as storage.locate() reads it back from a URL."""

from __future__ import annotations

import pytest

from eosc_pangeo import demo_data
from eosc_pangeo.lake import Lake, LakeError, read_manifest
from eosc_pangeo.lake.kinds import KINDS, kind_of
from eosc_pangeo.lake.storage import DOMAINS, OBSERVATIONS, locate


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    """A lake of one grid and one in-situ collection, each ingested through its kind."""
    sources = demo_data.write_demo_data(
        tmp_path_factory.mktemp("sources"), "small", kinds=("sst", "argo")
    )
    lake = Lake(str(tmp_path_factory.mktemp("lake")))
    KINDS["grid"].ingest(lake, "sst", "ocean", [str(f) for f in sources["sst"]])
    KINDS["insitu"].ingest(lake, "argo", "ocean", [str(f) for f in sources["argo"]])
    return lake


@pytest.mark.parametrize(("collection", "kind"), [("sst", "grid"), ("argo", "insitu")])
def test_each_collection_is_served_by_the_interface_of_its_manifests_kind(lake, collection, kind):
    manifest = read_manifest(lake, lake.find_collection(collection))
    assert kind_of(manifest) is KINDS[kind]
    findings = kind_of(manifest).check(lake, lake.find_collection(collection), manifest)
    assert findings and all(f.ok for f in findings), [f for f in findings if not f.ok]


@pytest.mark.parametrize("collection", ["sst", "argo"])
def test_a_kinds_data_paths_are_where_its_data_is(lake, collection):
    folder = lake.find_collection(collection)
    manifest = read_manifest(lake, folder)
    paths = kind_of(manifest).data_paths(manifest)
    for part in paths.values():
        for path in [part] if isinstance(part, str) else part:
            assert lake.fs.exists(f"{folder}/{path}"), path


def test_reading_through_the_kind_keeps_only_the_box(lake):
    everything = kind_of("insitu").read(lake, "argo")
    lon, lat = float(everything.lon.iloc[0]), float(everything.lat.iloc[0])
    box = (lon - 5, lat - 5, lon + 5, lat + 5)
    rows = kind_of("insitu").read(lake, "argo", bbox=box)
    inside = everything.lon.between(box[0], box[2]) & everything.lat.between(box[1], box[3])
    assert 0 < len(rows) == int(inside.sum()) < len(everything)
    grid = kind_of("grid").read(lake, "sst", bbox=box)
    assert grid.lon.min() >= box[0] and grid.lon.max() <= box[2]
    assert grid.lat.min() >= box[1] and grid.lat.max() <= box[3]


def test_an_unknown_kind_is_a_one_line_lake_error_naming_the_kinds():
    with pytest.raises(LakeError, match=r"no collection kind 'swath' \(kinds: grid, insitu\)"):
        kind_of("swath")


def test_locate_reads_the_layout_back_from_a_url(lake):
    url = lake.uri("ocean", "argo", OBSERVATIONS)
    located = locate(url, {"anon": False})
    assert (located.lake.url, located.domain, located.collection, located.part) == (
        url.rsplit("/", 3)[0],
        "ocean",
        "argo",
        OBSERVATIONS,
    )
    assert located.lake.storage_options == {"anon": False}
    assert located.lake.collection_path(located.domain, located.collection) == lake.find_collection(
        "argo"
    )


@pytest.mark.parametrize(
    "url", ["s3://bucket/ocean", "s3://bucket/not-a-domain/argo/observations", "observations"]
)
def test_locate_refuses_urls_outside_the_layout(url):
    assert "ocean" in DOMAINS
    assert locate(url) is None
