"""Grid ingest by reference: an Icechunk repository of references to the sources, read as any
collection, committed atomically, and validated against the sources it reads in place."""

from __future__ import annotations

import shutil
from pathlib import Path

import icechunk
import numpy as np
import pytest
import xarray as xr
import zarr
from typer.testing import CliRunner

from eosc_pangeo import demo_data
from eosc_pangeo.catalog import build_catalog, search
from eosc_pangeo.cli import app
from eosc_pangeo.lake import (
    IngestError,
    Lake,
    ingest_grid,
    open_dataset,
    read_manifest,
    validate,
)
from eosc_pangeo.lake.grid_plan import source_codecs_accepted


@pytest.fixture(scope="module")
def sst_files(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("sources")
    return demo_data.write_sst(demo_data.SstSpec(days=8, resolution=1.0), out)


@pytest.fixture
def own_sources(tmp_path, sst_files) -> list[Path]:
    """Copies of the sources that a test may move or change (the lake reads them in place)."""
    folder = tmp_path / "own-sources"
    folder.mkdir()
    return [Path(shutil.copy(f, folder / f.name)) for f in sst_files]


def ingest_by_reference(lake: Lake, files) -> None:
    ingest_grid(lake, "sst", "ocean", files, chunking="map", by_reference=True)


def sources_read_by_xarray(files) -> xr.Dataset:
    return xr.open_mfdataset(sorted(map(str, files)), engine="netcdf4", combine="by_coords").load()


def assert_bit_identical(ds: xr.Dataset, expected: xr.Dataset) -> None:
    for name, variable in expected.variables.items():
        assert ds[name].dtype == variable.dtype, name
        np.testing.assert_array_equal(ds[name].values, variable.values, err_msg=name)


def lake_files(lake: Lake) -> dict[str, bytes]:
    return {path: lake.fs.cat_file(path) for path in lake.fs.find(lake.root)}


def repository(lake: Lake) -> icechunk.Repository:
    """The collection's repository, opened as docs/data-lake.md tells plain clients to."""
    storage = icechunk.local_filesystem_storage(lake.path("ocean", "sst", "map.icechunk"))
    containers = icechunk.Repository.fetch_config(storage).virtual_chunk_containers
    # icechunk 2's sentinel for local files; icechunk 1 takes None.
    local = getattr(icechunk.credentials, "LocalFileSystemAccess", None)
    access = icechunk.containers_credentials(dict.fromkeys(containers, local))
    return icechunk.Repository.open(storage, authorize_virtual_chunk_access=access)


def test_values_read_by_reference_are_bit_identical_to_xarray_reading_the_sources(
    local_lake, sst_files
):
    ingest_by_reference(local_lake, sst_files)
    assert_bit_identical(open_dataset(local_lake.url, "sst"), sources_read_by_xarray(sst_files))


def test_dask_reads_by_reference_give_the_same_values(local_lake, sst_files):
    ingest_by_reference(local_lake, sst_files)
    ds = open_dataset(local_lake.url, "sst", chunks={})
    assert ds.analysed_sst.chunks is not None
    assert_bit_identical(ds.load(), sources_read_by_xarray(sst_files))


def test_an_ingest_by_reference_copies_no_chunk_of_the_sources(local_lake, sst_files):
    report = ingest_grid(local_lake, "sst", "ocean", sst_files, chunking="map", by_reference=True)
    assert set(report.chunks.values()) == {"referenced"}
    written = sum(len(data) for data in lake_files(local_lake).values())
    assert written < 0.05 * sum(f.stat().st_size for f in sst_files)


def test_the_manifest_records_that_the_sources_are_read_in_place(local_lake, sst_files):
    ingest_by_reference(local_lake, sst_files)
    manifest = read_manifest(local_lake, local_lake.path("ocean", "sst"))
    store = manifest.stores["map"]
    assert (store.path, store.references, store.snapshot is not None) == (
        "map.icechunk",
        True,
        True,
    )
    assert [s.url for s in manifest.sources] == [str(f) for f in sst_files]


def test_a_search_hit_opens_a_collection_ingested_by_reference(local_lake, sst_files):
    ingest_by_reference(local_lake, sst_files)
    build_catalog(local_lake)
    hit = search(variables="sst", datetime="2020-01-02/2020-01-04", lake=local_lake)[0]
    expected = sources_read_by_xarray(sst_files).sel(time=slice("2020-01-02", "2020-01-04"))
    ds = hit.open().load()
    np.testing.assert_array_equal(ds.analysed_sst.values, expected.analysed_sst.values)


def test_appending_later_files_is_one_new_icechunk_commit(local_lake, sst_files):
    ingest_by_reference(local_lake, sst_files[:5])
    first = read_manifest(local_lake, local_lake.path("ocean", "sst")).stores["map"].snapshot
    ingest_by_reference(local_lake, sst_files)
    second = read_manifest(local_lake, local_lake.path("ocean", "sst")).stores["map"].snapshot
    ancestry = [s.id for s in repository(local_lake).ancestry(branch="main")]
    assert ancestry[:2] == [second, first]
    assert_bit_identical(open_dataset(local_lake.url, "sst"), sources_read_by_xarray(sst_files))


def test_files_with_time_bounds_in_a_noleap_calendar_append_by_reference(local_lake, tmp_path):
    """Their times decode to cftime dates and their bounds are read from each file."""
    first, *later = demo_data.write_climate(demo_data.ClimateSpec(2000, 2019, 10.0), tmp_path)
    for files in ([first], later):
        ingest_grid(local_lake, "tas", "atmosphere", files, chunking="map", by_reference=True)
    expected = xr.open_mfdataset(
        [first, *later], data_vars="minimal", coords="minimal", compat="override"
    ).load()
    assert expected.time.dtype == object
    assert_bit_identical(open_dataset(local_lake.url, "tas"), expected)


def test_plain_clients_read_the_stored_values_with_icechunk_and_xarray(local_lake, sst_files):
    ingest_by_reference(local_lake, sst_files)
    session = repository(local_lake).readonly_session("main")
    with source_codecs_accepted():
        ds = xr.open_zarr(session.store, consolidated=False, mask_and_scale=False)
    with xr.open_mfdataset(sst_files, mask_and_scale=False) as expected:
        np.testing.assert_array_equal(ds.analysed_sst.values, expected.analysed_sst.values)


def chunked_otherwise(source, folder):
    """A copy of ``source`` in ``folder``, same grid, variables and packing, other chunks."""
    folder.mkdir()
    copy = folder / source.name
    with xr.open_dataset(source, mask_and_scale=False, decode_times=False) as ds:
        ds.to_netcdf(
            copy,
            encoding={
                name: {"zlib": True, "shuffle": True, "chunksizes": (1, 90, 180)}
                for name in ds.data_vars
            },
        )
    return copy


def test_an_append_refused_while_writing_leaves_the_lake_as_it_was(local_lake, sst_files, tmp_path):
    ingest_by_reference(local_lake, sst_files[:6])
    # Chunked otherwise than the other files: the same grid, variables and packing pass the
    # checks, and the difference shows only when its references are written.
    other = chunked_otherwise(sst_files[6], tmp_path / "other-layout")
    before = lake_files(local_lake)
    with pytest.raises(IngestError, match=f"{other}:analys.*chunks"):
        ingest_by_reference(local_lake, [other])
    assert lake_files(local_lake) == before
    assert_bit_identical(open_dataset(local_lake.url, "sst"), sources_read_by_xarray(sst_files[:6]))


def test_a_file_chunked_otherwise_among_the_files_of_one_ingest_is_refused_by_name(
    local_lake, sst_files, tmp_path
):
    other = chunked_otherwise(sst_files[3], tmp_path / "other-layout")
    with pytest.raises(IngestError, match=f"{other}:analys.*stored in chunks"):
        ingest_by_reference(local_lake, [*sst_files[:3], other])
    assert not local_lake.fs.exists(local_lake.path("ocean", "sst"))


def test_a_commit_no_manifest_names_is_not_read_and_the_next_ingest_undoes_it(
    local_lake, sst_files
):
    """What an ingest killed between its Icechunk commit and its manifest leaves behind."""
    ingest_by_reference(local_lake, sst_files[:6])
    session = repository(local_lake).writable_session("main")
    zarr.open_group(session.store, mode="r+").attrs["title"] = "never committed by a manifest"
    session.commit("an ingest that died before its manifest")
    assert open_dataset(local_lake.url, "sst").attrs["title"] != "never committed by a manifest"
    ingest_by_reference(local_lake, sst_files)
    ds = open_dataset(local_lake.url, "sst")
    assert ds.attrs["title"] != "never committed by a manifest"
    assert_bit_identical(ds, sources_read_by_xarray(sst_files))


def test_validate_passes_while_the_sources_are_in_place(local_lake, own_sources):
    ingest_by_reference(local_lake, own_sources)
    failed = [f for f in validate(local_lake.url) if not f.ok]
    assert failed == []


def test_validate_names_a_referenced_source_that_is_missing(local_lake, own_sources):
    ingest_by_reference(local_lake, own_sources)
    own_sources[3].unlink()
    failed = [f for f in validate(local_lake.url) if not f.ok]
    assert [(f.check, f.target) for f in failed] == [("referenced-source", str(own_sources[3]))]
    assert "missing" in failed[0].message and own_sources[3].name in failed[0].message


def test_validate_names_a_referenced_source_that_changed(local_lake, own_sources):
    ingest_by_reference(local_lake, own_sources)
    with own_sources[2].open("r+b") as f:
        f.seek(-8, 2)
        f.write(b"\x00" * 8)
    failed = [f for f in validate(local_lake.url) if not f.ok]
    assert [(f.check, f.target) for f in failed] == [("referenced-source", str(own_sources[2]))]
    assert "changed" in failed[0].message


@pytest.mark.parametrize(
    "options, message",
    [
        ({"chunking": "both"}, "chunking='map'"),
        ({"chunking": "map", "values": "decoded"}, "cannot be stored by reference"),
    ],
)
def test_options_that_need_the_lakes_own_chunks_are_refused(
    local_lake, sst_files, options, message
):
    with pytest.raises(IngestError, match=message):
        ingest_grid(local_lake, "sst", "ocean", sst_files, by_reference=True, **options)
    assert not local_lake.fs.exists(local_lake.root)


def test_a_collection_ingested_by_reference_takes_no_copying_ingest(local_lake, sst_files):
    ingest_by_reference(local_lake, sst_files[:4])
    with pytest.raises(IngestError, match="holds references to its sources"):
        ingest_grid(local_lake, "sst", "ocean", sst_files[4:], chunking="map")


def test_a_new_version_of_a_referenced_file_is_refused(local_lake, own_sources, tmp_path):
    ingest_by_reference(local_lake, own_sources[:4])
    renewed = tmp_path / "renewed" / own_sources[3].name
    renewed.parent.mkdir()
    with xr.open_dataset(own_sources[3], mask_and_scale=False, decode_times=False) as ds:
        changed = ds.load()
    changed["analysed_sst"] += 1  # a reprocessed day: the same name, other values
    changed.to_netcdf(renewed)
    with pytest.raises(IngestError, match="new version"):
        ingest_by_reference(local_lake, [renewed])


def test_the_command_line_ingests_by_reference(tmp_path, sst_files):
    lake = str(tmp_path / "lake")
    result = CliRunner().invoke(
        app,
        [
            "lake",
            "ingest-grid",
            "--lake",
            lake,
            "--collection",
            "sst",
            "--domain",
            "ocean",
            "--chunking",
            "map",
            "--by-reference",
            *map(str, sst_files),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "referenced" in result.output
    assert read_manifest(Lake(lake), f"{lake}/ocean/sst").stores["map"].references
