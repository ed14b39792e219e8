"""Sources laid out like the first one are described from their HDF5 metadata, exactly as the
full reading with xarray describes them, and ingest to the same bytes."""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

from eosc_pangeo import demo_data
from eosc_pangeo.lake import (
    CollectionNotFound,
    IngestError,
    Lake,
    ingest_grid,
    open_dataset,
    read_manifest,
)
from eosc_pangeo.lake.grid_sources import _read_source
from eosc_pangeo.lake.manifest import SourceCheck
from eosc_pangeo.lake.sibling_sources import described_like, read_like


@pytest.fixture(scope="module")
def daily_files(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("daily")
    return demo_data.write_sst(demo_data.SstSpec(days=4, resolution=2.0), out)


@pytest.fixture(scope="module")
def yearly_files(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("yearly")
    return demo_data.write_climate(demo_data.ClimateSpec(2000, 2019, 10.0), out)


def source_file(local_lake: Lake, path: Path):
    return SourceCheck(local_lake, None).new_file(str(path))


@pytest.fixture
def read_in_full(local_lake: Lake):
    """Describes a file as the first of an ingest is; its file is closed after the test."""
    with ExitStack() as open_sources:
        yield lambda path: _read_source(source_file(local_lake, path), open_sources)


@pytest.mark.parametrize("files", ["daily_files", "yearly_files"])
def test_a_file_laid_out_like_the_first_is_described_as_the_full_reading_does(
    request, local_lake, files, read_in_full
):
    first, second = request.getfixturevalue(files)[:2]
    full = read_in_full(second)
    reference = read_in_full(first)
    sibling = read_like(source_file(local_lake, second), reference)
    assert sibling is not None
    fast = described_like([reference, sibling], read_in_full=pytest.fail)[1]
    for name in (
        "url",
        "name",
        "size",
        "sha256",
        "path",
        "time_name",
        "y_name",
        "x_name",
        "calendar",
        "variables",
        "template_names",
        "layouts",
    ):
        assert getattr(fast, name) == getattr(full, name), name
    for name in ("times", "y", "x"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(full, name))
    assert fast.time_values.keys() == full.time_values.keys()
    for name, values in full.time_values.items():
        np.testing.assert_array_equal(fast.time_values[name], values)
    assert {k: str(v) for k, v in fast.attrs.items()} == {k: str(v) for k, v in full.attrs.items()}
    # Its Dataset, made for an ingest that reads its data, leaves the global attributes to .attrs.
    xr.testing.assert_identical(fast.dataset.load(), full.dataset.load().drop_attrs(deep=False))
    for name, variable in full.dataset.variables.items():
        assert fast.dataset[name].dtype == variable.dtype, name
    xr.testing.assert_identical(fast.template, full.template.drop_attrs(deep=False))


def test_a_file_with_other_attributes_is_left_to_the_full_reading(
    local_lake, daily_files, tmp_path, read_in_full
):
    other = shutil.copy(daily_files[1], tmp_path / daily_files[1].name)
    with h5py.File(other, "r+") as h5:
        h5["analysed_sst"].attrs["units"] = "degC"
    assert read_like(source_file(local_lake, Path(other)), read_in_full(daily_files[0])) is None


def test_a_file_on_another_grid_is_left_to_the_full_reading(
    local_lake, daily_files, tmp_path, read_in_full
):
    coarser = demo_data.write_sst(demo_data.SstSpec(days=2, resolution=5.0), tmp_path)[1]
    assert read_like(source_file(local_lake, coarser), read_in_full(daily_files[0])) is None


def test_a_file_repeating_a_time_step_is_refused(local_lake, yearly_files, tmp_path, read_in_full):
    repeated = Path(shutil.copy(yearly_files[1], tmp_path / yearly_files[1].name))
    with h5py.File(repeated, "r+") as h5:
        h5["time"][1] = h5["time"][0]
    reference = read_in_full(yearly_files[0])
    sibling = read_like(source_file(local_lake, repeated), reference)
    with pytest.raises(IngestError, match="holds duplicated times"):
        described_like([reference, sibling], read_in_full=pytest.fail)


def test_siblings_whose_times_decode_otherwise_than_the_first_are_read_in_full(
    local_lake, tmp_path, read_in_full
):
    """Times decoded together fall back to file by file; a file decoding to another dtype than
    the first's (cftime beyond datetime64[ns]) is read in full."""
    paths = []
    for name, day in (("a.nc", 0.0), ("b.nc", 1.0), ("c.nc", 200_000.0)):  # c: year 2397
        ds = xr.Dataset(
            {"tas": (("time", "lat", "lon"), np.ones((1, 2, 3), "f4"), {"units": "K"})},
            coords={
                "time": ("time", [day], {"standard_name": "time", "axis": "T"}),
                "lat": ("lat", [0.0, 1.0], {"standard_name": "latitude", "units": "degrees_north"}),
                "lon": (
                    "lon",
                    [0.0, 1.0, 2.0],
                    {"standard_name": "longitude", "units": "degrees_east"},
                ),
            },
        )
        ds.time.attrs.update(units="days since 1850-01-01", calendar="standard")
        ds.to_netcdf(tmp_path / name, engine="netcdf4", format="NETCDF4")
        paths.append(tmp_path / name)
    reference = read_in_full(paths[0])
    siblings = [read_like(source_file(local_lake, path), reference) for path in paths[1:]]
    assert all(siblings)
    in_full = []

    def read_in_full_once(file):
        in_full.append(file.url)
        return read_in_full(Path(file.path))

    described = described_like([reference, *siblings], read_in_full_once)
    assert in_full == [siblings[1].file.url]
    assert described[1].times.dtype == reference.times.dtype == np.dtype("M8[ns]")
    assert described[1].times[0] == np.datetime64("1850-01-02")
    assert described[2].times.dtype == object  # cftime, as the full reading decodes it


def test_files_given_latest_first_ingest_to_the_same_collection(local_lake, daily_files):
    """The earliest file, described from its HDF5 metadata, then makes the collection."""
    ingest_grid(local_lake, "in-order", "ocean", daily_files, chunking="map")
    ingest_grid(local_lake, "reversed", "ocean", daily_files[::-1], chunking="map")
    in_order, reverse = (open_dataset(local_lake, c).load() for c in ("in-order", "reversed"))
    for ds in (in_order, reverse):
        for own in ("id", "date_created", "date_modified", "history"):  # of each ingest
            del ds.attrs[own]
    xr.testing.assert_identical(in_order, reverse)
    for name, variable in in_order.variables.items():
        np.testing.assert_array_equal(variable.values, reverse[name].values)
    manifests = [
        read_manifest(local_lake, local_lake.find_collection(c)) for c in ("in-order", "reversed")
    ]
    assert manifests[0].variables == manifests[1].variables
    assert {k: v for k, v in manifests[0].attributes.items() if k != "id"} == {
        k: v for k, v in manifests[1].attributes.items() if k != "id"
    }


def test_a_later_file_whose_metadata_cannot_be_read_is_refused_by_name(
    local_lake, daily_files, tmp_path
):
    """netCDF4 cannot open it to compare it with the first: the full reading names it."""
    truncated = tmp_path / daily_files[1].name
    truncated.write_bytes(daily_files[1].read_bytes()[:2048])
    with pytest.raises(IngestError, match=truncated.name):
        ingest_grid(local_lake, "truncated", "ocean", [daily_files[0], truncated], chunking="map")
    with pytest.raises(CollectionNotFound):
        local_lake.find_collection("truncated")


def test_a_missing_file_among_those_read_ahead_is_refused_by_name(local_lake, daily_files):
    missing = daily_files[0].parent / "20991231-sst.nc"
    with pytest.raises(IngestError, match="20991231-sst.nc.*does not exist"):
        ingest_grid(local_lake, "missing", "ocean", [*daily_files[:2], missing], chunking="map")
