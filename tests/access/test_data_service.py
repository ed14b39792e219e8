"""The data service: real clients (xarray, pydap, netCDF-C, pyarrow, curl-like requests) read
subsets of the lake over loopback, each equal to the lake's own values; bad requests get a 4xx
that says what to do."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import zlib

import numpy as np
import pandas as pd
import pytest
import requests
import xarray as xr

from eosc_pangeo.access import AccessPolicy, create_app
from eosc_pangeo.lake import open_grid, read_insitu, read_manifest
from eosc_pangeo.lake.demo import build_demo_lake
from eosc_pangeo.lake.storage import Lake

PARTNER_KEY = "partner-secret-key"
LIMIT = 2_000_000  # bytes per response: a few days of the demo SST, not all of it


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    return Lake(build_demo_lake(str(tmp_path_factory.mktemp("access") / "lake"), "small"))


def policy(**limits) -> AccessPolicy:
    return AccessPolicy.model_validate(
        {
            "public": ["sst", "argo", "stations"],
            "api_keys": [
                {
                    "name": "partner",
                    "sha256": hashlib.sha256(PARTNER_KEY.encode()).hexdigest(),
                    "collections": ["tas"],
                }
            ],
            # The suite's requests all come from one address: no rate limit unless a test sets one.
            "limits": {
                "max_response_bytes": LIMIT,
                "anonymous_requests_per_minute": 100_000,
                **limits,
            },
        }
    )


@pytest.fixture(scope="module")
def service(lake, serve):
    with serve(create_app(lake, policy())) as url:
        yield url


def lake_store(lake: Lake, collection: str, store: str) -> xr.Dataset:
    return open_grid(lake, collection, chunking=store)


# --- real clients ------------------------------------------------------------------------------


@pytest.mark.parametrize("route, store", [("zarr", "map"), ("zarr-timeseries", "timeseries")])
def test_plain_xarray_opens_each_store_over_http_with_the_lakes_values(lake, service, route, store):
    remote = xr.open_zarr(f"{service}/{route}/sst")
    local = lake_store(lake, "sst", store)
    assert remote.analysed_sst.encoding["chunks"] == local.analysed_sst.encoding["chunks"]
    xr.testing.assert_identical(remote.load(), local.load())


def test_pydap_reads_an_opendap_hyperslab_equal_to_the_lake(lake, service):
    remote = xr.open_dataset(f"{service}/opendap/sst", engine="pydap")
    box = {"time": slice(2, 5), "lat": slice(10, 30), "lon": slice(100, 140)}
    local = open_grid(lake, "sst")
    np.testing.assert_array_equal(
        remote.analysed_sst.isel(box).values, local.analysed_sst.isel(box).values
    )
    np.testing.assert_array_equal(remote.time.values, local.time.values)


def test_netcdf_c_reads_an_opendap_hyperslab_equal_to_the_lake(lake, service):
    import netCDF4

    with netCDF4.Dataset(f"{service}/opendap/sst") as remote:
        values = remote["analysed_sst"][2:5, 10:30, 100:140]
    local = open_grid(lake, "sst").analysed_sst[2:5, 10:30, 100:140].values
    np.testing.assert_array_equal(np.ma.filled(values, np.nan), local)


def test_opendap_sends_packed_values_as_stored_with_their_scale_and_fill(lake, service):
    from pydap.client import open_url

    remote = open_url(f"{service}/opendap/sst", output_grid=False)["analysed_sst"]
    stored = open_grid(lake, "sst", mask_and_scale=False).analysed_sst
    assert stored.dtype == np.int16
    assert remote.dtype.kind == "i" and remote.dtype.itemsize == 2  # big-endian, as XDR is
    for name in ("scale_factor", "add_offset", "_FillValue"):
        assert remote.attributes[name] == stored.attrs[name], name
    np.testing.assert_array_equal(
        np.asarray(remote[2:5, 10:30, 100:140].data), stored[2:5, 10:30, 100:140].values
    )


def test_a_grids_array_member_is_sent_alone_without_the_grids_maps(lake, service):
    # What pydap and netCDF-C ask for a variable's values: a point series here.
    response = requests.get(
        f"{service}/opendap/sst.dods?analysed_sst.analysed_sst[0:1:9][67:1:67][75:1:75]",
        headers={"Accept-Encoding": "identity"},
        timeout=30,
    )
    dds, _, data = response.content.partition(b"\nData:\n")
    assert dds.split() == [
        *b"Dataset { Structure { Int16 analysed_sst[time = 10][lat = 1][lon = 1];".split(),
        *b"} analysed_sst; } sst;".split(),
    ]
    stored = open_grid(lake, "sst", mask_and_scale=False).analysed_sst[:, 67, 75].values
    # XDR: the count twice, then each Int16 as 4 big-endian bytes; nothing after.
    assert np.frombuffer(data[:8], ">i4").tolist() == [10, 10]
    np.testing.assert_array_equal(np.frombuffer(data[8:], ">i4"), stored)


def test_xarray_decodes_opendaps_packed_values_to_the_lakes_including_gaps(lake, service):
    remote = xr.open_dataset(f"{service}/opendap/sst", engine="pydap").analysed_sst[0]
    local = open_grid(lake, "sst").analysed_sst[0].values
    assert np.isnan(local).any()  # land: the fill value must come back as NaN
    np.testing.assert_array_equal(remote.values, local)


@pytest.mark.parametrize(
    "accept, coding",
    [
        ("gzip, deflate", "gzip"),
        ("deflate, gzip", "deflate"),  # what netCDF-C sends with HTTP.DEFLATE=1
        ("gzip;q=0, deflate;q=0.5", "deflate"),
        ("identity", None),
    ],
)
def test_subsets_are_compressed_in_a_coding_the_client_accepts(service, accept, coding):
    url = f"{service}/opendap/sst.dods?analysed_sst[0:1:2][0:1:30][0:1:60]"
    plain = requests.get(url, headers={"Accept-Encoding": "identity"}, timeout=30)
    response = requests.get(url, headers={"Accept-Encoding": accept}, timeout=30, stream=True)
    assert response.headers.get("Content-Encoding") == coding
    wire = response.raw.read(decode_content=False)
    assert response.raw.tell() == len(wire)
    if coding:
        assert len(wire) < len(plain.content) / 2
    decode = {"gzip": gzip.decompress, "deflate": zlib.decompress, None: bytes}[coding]
    assert decode(wire) == plain.content


def test_zarr_metadata_is_compressed_but_chunks_are_sent_as_stored(lake, service):
    headers = {"Accept-Encoding": "gzip"}
    metadata = requests.get(f"{service}/zarr/sst/zarr.json", headers=headers, timeout=30)
    assert metadata.headers["Content-Encoding"] == "gzip"
    assert metadata.content == open(lake.path("ocean", "sst", "map.zarr", "zarr.json"), "rb").read()
    chunk = requests.get(f"{service}/zarr/sst/analysed_sst/c/0/0/0", headers=headers, timeout=30)
    assert "Content-Encoding" not in chunk.headers
    stored = open(
        lake.path("ocean", "sst", "map.zarr", "analysed_sst", "c", "0", "0", "0"), "rb"
    ).read()
    assert int(chunk.headers["Content-Length"]) == len(chunk.content) == len(stored)


def test_edr_position_gives_the_nearest_cells_series(lake, service):
    response = requests.get(
        f"{service}/edr/sst/position",
        params={"coords": "POINT(-29.3 44.6)", "f": "csv", "parameter-name": "analysed_sst"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    table = pd.read_csv(pd.io.common.StringIO(response.text))
    expected = open_grid(lake, "sst").analysed_sst.sel(lat=44.6, lon=-29.3, method="nearest")
    # CSV holds the shortest decimal that reads back to each value exactly.
    np.testing.assert_array_equal(table["analysed_sst"].to_numpy(expected.dtype), expected.values)
    assert len(table) == expected.sizes["time"]


def test_edr_cube_as_netcdf_equals_the_lakes_box(lake, service, tmp_path):
    response = requests.get(
        f"{service}/edr/sst/cube",
        params={"bbox": "-40,30,-10,50", "datetime": "2020-01-02/2020-01-04", "f": "netcdf"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    (tmp_path / "cube.nc").write_bytes(response.content)
    remote = xr.open_dataset(tmp_path / "cube.nc")
    local = open_grid(lake, "sst", bbox=(-40, 30, -10, 50), time=("2020-01-02", "2020-01-04"))
    np.testing.assert_array_equal(remote.analysed_sst.values, local.analysed_sst.values)


@pytest.mark.parametrize("fmt", ["geojson", "covjson"])
def test_edr_json_gives_a_model_calendars_dates_as_text(service, fmt):
    # The demo's tas is on a noleap calendar: its dates are cftime objects, not numpy's.
    response = requests.get(
        f"{service}/edr/tas/cube",
        params={"bbox": "0,40,10,50", "datetime": "2019-01-01/2019-03-01", "f": fmt},
        headers={"X-API-Key": PARTNER_KEY},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert "2019-01-16T12:00:00" in response.text and "2019-02-15T00:00:00" in response.text


def test_edr_area_on_in_situ_rows_equals_read_insitu(lake, service):
    polygon = "POLYGON((-40 30, 20 30, 20 70, -40 70, -40 30))"
    response = requests.get(
        f"{service}/edr/stations/area",
        params={"coords": polygon, "parameter-name": "TEMP", "f": "csv"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    table = pd.read_csv(pd.io.common.StringIO(response.text))
    expected = read_insitu(lake, "stations", bbox=(-40, 30, 20, 70), variables=["TEMP"])
    assert len(table) == len(expected) > 0
    np.testing.assert_array_equal(table["TEMP"].to_numpy(np.float32), expected["TEMP"].to_numpy())


def test_edr_area_on_in_situ_rows_as_coveragejson_gives_one_point_per_observation(lake, service):
    polygon = "POLYGON((-40 30, 20 30, 20 70, -40 70, -40 30))"
    response = requests.get(
        f"{service}/edr/stations/area",
        params={"coords": polygon, "parameter-name": "TEMP", "f": "covjson"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    collection = response.json()
    expected = read_insitu(lake, "stations", bbox=(-40, 30, 20, 70), variables=["TEMP"])
    assert collection["type"] == "CoverageCollection" and collection["domainType"] == "Point"
    assert collection["parameters"]["TEMP"]["unit"] == {"symbol": "degree_Celsius"}
    coverages = collection["coverages"]
    assert len(coverages) == len(expected) > 0
    np.testing.assert_array_equal(
        np.array([c["ranges"]["TEMP"]["values"][0] for c in coverages], np.float32),
        expected["TEMP"].to_numpy(),
    )
    np.testing.assert_array_equal(
        [c["domain"]["axes"]["x"]["values"][0] for c in coverages], expected["lon"]
    )


def test_an_edr_datetime_with_an_offset_is_read_as_utc_beside_one_without(lake, service):
    response = requests.get(
        f"{service}/edr/stations/area",
        timeout=30,
        params={
            "coords": "POLYGON((-40 30, 20 30, 20 70, -40 70, -40 30))",
            "datetime": "2020-01-01T00:00:00/2020-01-01T03:00:00+02:00",
            "f": "csv",
        },
    )
    assert response.status_code == 200, response.text
    expected = read_insitu(
        lake, "stations", bbox=(-40, 30, 20, 70), time=("2020-01-01T00:00", "2020-01-01T01:00")
    )
    assert len(pd.read_csv(pd.io.common.StringIO(response.text))) == len(expected) > 0


def test_edr_area_as_geojson_gives_point_features(service):
    response = requests.get(
        f"{service}/edr/stations/area",
        timeout=30,
        params={
            "coords": "POLYGON((-40 30, 20 30, 20 70, -40 70, -40 30))",
            "f": "geojson",
            "datetime": "2020-01-01/2020-01-02",
        },
    )
    assert response.status_code == 200, response.text
    features = response.json()["features"]
    assert features and all(f["geometry"]["type"] == "Point" for f in features)


def test_geoparquet_files_are_read_by_pyarrow_over_http_ranges(lake, service):
    import fsspec
    import pyarrow.parquet as pq

    files = requests.get(f"{service}/parquet/argo/", timeout=30).json()
    manifest = read_manifest(lake, lake.find_collection("argo"))
    assert [f["sha256"] for f in files] == [f.sha256 for f in manifest.files]
    with fsspec.open(files[0]["url"], "rb", block_size=4096) as remote:
        table = pq.read_table(remote)
    local = pq.read_table(lake.path("ocean", "argo", manifest.files[0].path))
    assert table.equals(local)


def test_a_byte_range_gets_206_with_exactly_those_bytes(lake, service):
    url = requests.get(f"{service}/parquet/argo/", timeout=30).json()[0]["url"]
    manifest = read_manifest(lake, lake.find_collection("argo"))
    local = open(lake.path("ocean", "argo", manifest.files[0].path), "rb").read()
    response = requests.get(url, headers={"Range": "bytes=4-103"}, timeout=30)
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 4-103/{len(local)}"
    assert response.content == local[4:104]


def test_the_catalogue_links_of_each_collection_point_at_this_service(service):
    listed = {
        c["id"]: c["links"] for c in requests.get(f"{service}/collections", timeout=30).json()
    }
    assert set(listed) == {"sst", "argo", "stations"}  # tas needs a key
    assert listed["sst"]["zarr"] == f"{service}/zarr/sst"
    assert listed["argo"]["parquet"] == f"{service}/parquet/argo/"


# --- access --------------------------------------------------------------------------------------


def test_a_collection_that_is_not_public_needs_a_key(service):
    response = requests.get(f"{service}/zarr/tas/zarr.json", timeout=30)
    assert response.status_code == 401
    assert "X-API-Key" in response.json()["detail"]


def test_a_known_key_reads_its_collection(lake, service):
    remote = xr.open_zarr(
        f"{service}/zarr/tas", storage_options={"headers": {"X-API-Key": PARTNER_KEY}}
    )
    xr.testing.assert_identical(remote.tas.load(), open_grid(lake, "tas").tas.load())


def test_an_unknown_key_is_refused(service):
    response = requests.get(
        f"{service}/zarr/tas/zarr.json", timeout=30, headers={"X-API-Key": "guess"}
    )
    assert response.status_code == 401


def test_a_key_reads_only_the_collections_it_was_given(lake, tmp_path, serve):
    restricted = policy()
    restricted.public = []
    with serve(create_app(lake, restricted)) as url:
        response = requests.get(
            f"{url}/zarr/sst/zarr.json", timeout=30, headers={"X-API-Key": PARTNER_KEY}
        )
    assert response.status_code == 403
    assert "sst" in response.json()["detail"]


def test_credentials_in_the_url_are_refused(service):
    response = requests.get(f"{service}/zarr/tas/zarr.json?api_key={PARTNER_KEY}", timeout=30)
    assert response.status_code == 400
    assert "header" in response.json()["detail"]


def test_a_client_over_its_rate_is_told_when_to_come_back(lake, serve):
    with serve(create_app(lake, policy(anonymous_requests_per_minute=3))) as url:
        codes = [requests.get(f"{url}/collections", timeout=30) for _ in range(4)]
    assert [r.status_code for r in codes] == [200, 200, 200, 429]
    assert int(codes[-1].headers["Retry-After"]) >= 1
    assert "3 requests a minute" in codes[-1].json()["detail"]


# --- limits and bad input ---------------------------------------------------------------------


def test_an_opendap_request_over_the_size_limit_is_413_saying_how_to_split(lake, serve):
    # The limit counts the packed values sent: 2 bytes each for the demo's SST.
    with serve(create_app(lake, policy(max_response_bytes=300_000))) as url:
        response = requests.get(f"{url}/opendap/sst.dods", timeout=30)
        within = requests.get(
            f"{url}/opendap/sst.dods?analysed_sst[0:1:8][0:1:89][0:1:179]", timeout=30
        )
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert "limit of 0.3 MB" in detail and "hyperslabs" in detail
    assert within.status_code == 200  # 9 x 90 x 180 values: 291,600 bytes


def test_an_edr_request_over_the_size_limit_is_413(service):
    response = requests.get(
        f"{service}/edr/sst/cube", params={"bbox": "-180,-90,180,90"}, timeout=30
    )
    assert response.status_code == 413
    assert "shorter datetime range" in response.json()["detail"]


@pytest.mark.parametrize(
    "query, words",
    [
        ("analysed_sst[0:1:99][0:1:1][0:1:1]", "outside the data"),
        ("analysed_sst[0:1]", "3 dimensions"),
        ("analysed_sst[a:b][0][0]", "integers"),
        ("nope[0]", "no variable 'nope'"),
        ("analysed_sst&lat>3", "selections"),
        ("analysed_sst[[0]]", "malformed"),
    ],
)
def test_malformed_opendap_constraints_are_400_naming_the_fault(service, query, words):
    response = requests.get(f"{service}/opendap/sst.dods?{query}", timeout=30)
    assert response.status_code == 400
    assert words in response.json()["detail"]


@pytest.mark.parametrize(
    "path, params, words",
    [
        ("position", {}, "coords is required"),
        ("position", {"coords": "POINT(1"}, "not WKT"),
        ("position", {"coords": "POINT(0 95)"}, "outside -90..90"),
        ("area", {"coords": "POINT(0 0)"}, "POLYGON"),
        ("cube", {"bbox": "0,10,5"}, "needs 4 numbers"),
        ("cube", {"bbox": "0,a,5,10"}, "not a list of numbers"),
        ("cube", {"bbox": "0,50,5,10"}, "is north of its north"),
        ("cube", {"bbox": "0,0,5,5", "datetime": "2020-02-01/2020-01-01"}, "start is after"),
        ("cube", {"bbox": "0,0,5,5", "datetime": "yesterday"}, "ISO 8601"),
        ("cube", {"bbox": "0,0,5,5", "parameter-name": "chlorophyll"}, "no parameter"),
        ("cube", {"bbox": "0,0,5,5", "f": "xlsx"}, "f='xlsx'"),
        ("cube", {"bbox": "0,0,5,5", "datetime": "1990-01-01/1990-02-01"}, "selects no data"),
    ],
)
def test_malformed_edr_queries_are_400_naming_the_field(service, path, params, words):
    response = requests.get(f"{service}/edr/sst/{path}", params=params, timeout=30)
    assert response.status_code == 400, response.text
    assert words in response.json()["detail"]


def test_an_unknown_collection_is_404_listing_the_known_ones(service):
    response = requests.get(f"{service}/zarr/nothing/zarr.json", timeout=30)
    assert response.status_code == 404
    assert "sst" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/zarr/sst/../../argo/_manifest.json",
        "/zarr/sst/%2e%2e/_manifest.json",
        "/zarr/sst/..%2F_manifest.json",
        "/zarr/sst//etc/passwd",
        "/parquet/argo/../_manifest.json",
        "/parquet/argo/%2fetc%2fpasswd",
    ],
)
def test_no_path_outside_a_store_can_be_read(service, path):
    response = requests.get(f"{service}{path}", timeout=30)
    assert response.status_code in (404, 422)  # 422: what is left is no collection id
    assert b"root:" not in response.content and b"eosc-pangeo/manifest" not in response.content


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE", "PATCH"])
def test_nothing_can_be_written_through_the_service(lake, service, method):
    before = open(lake.path("ocean", "sst", "map.zarr", "zarr.json"), "rb").read()
    response = requests.request(method, f"{service}/zarr/sst/zarr.json", data=b"{}", timeout=30)
    assert response.status_code == 405
    assert open(lake.path("ocean", "sst", "map.zarr", "zarr.json"), "rb").read() == before


def test_a_bad_policy_file_names_the_file_and_field(tmp_path):
    from eosc_pangeo.access.errors import AccessError

    path = tmp_path / "policy.yaml"
    path.write_text("limits:\n  max_response_bytes: -1\n")
    with pytest.raises(AccessError, match=r"policy.yaml.*max_response_bytes"):
        AccessPolicy.from_file(path)


# --- one version at a time -------------------------------------------------------------------


def test_clients_reading_during_an_ingest_get_one_version_or_the_other(lake, tmp_path, serve):
    """A reprocessed source replaces its time steps in place; every EDR and OPeNDAP answer and
    every Zarr chunk read meanwhile is of the earlier version or of the new one, never some of
    each."""
    import threading

    from eosc_pangeo import demo_data
    from eosc_pangeo.lake import ingest_grid

    copy = Lake(str(tmp_path / "lake"))
    shutil.copytree(lake.url, copy.url)
    sources = demo_data.write_demo_data(tmp_path / "sources", "small")["sst"]
    # The reprocessed version of every file: the same days, packed the same way, SST 1 K warmer.
    reprocessed = []
    for path in sources:
        with xr.open_dataset(path, decode_cf=False) as ds:
            warmer = ds.load()
        packed = warmer.analysed_sst
        scale = packed.attrs["scale_factor"]
        warmer["analysed_sst"] = packed.where(
            packed == packed.attrs["_FillValue"], packed + round(1 / scale)
        ).astype(packed.dtype)
        out = tmp_path / "v2" / path.name
        out.parent.mkdir(exist_ok=True)
        warmer.to_netcdf(out)
        reprocessed.append(str(out))
    # The point's cell, and the time-series chunk that holds it.
    stored = open_grid(copy, "sst", chunking="timeseries", mask_and_scale=False).analysed_sst
    i = int(np.abs(stored.lat.values - 45).argmin())
    j = int(np.abs(stored.lon.values + 29).argmin())
    _, rows, cols = stored.encoding["chunks"]
    chunk = f"analysed_sst/c/0/{i // rows}/{j // cols}"
    chunk_file = copy.path("ocean", "sst", "timeseries.zarr", *chunk.split("/"))
    versions = {
        "edr": [open_grid(copy, "sst").analysed_sst[:, i, j].values],
        "opendap": [stored[:, i, j].values],
        "zarr": [open(chunk_file, "rb").read()],
    }
    answers = {route: [] for route in versions}
    with serve(create_app(copy, policy())) as url:
        ingest = threading.Thread(target=ingest_grid, args=(copy, "sst", "ocean", reprocessed))
        ingest.start()
        while ingest.is_alive() or len(answers["zarr"]) < 3:
            for route, response in (
                (
                    "edr",
                    requests.get(
                        f"{url}/edr/sst/position",
                        timeout=60,
                        params={"coords": "POINT(-29 45)", "f": "csv"},
                    ),
                ),
                (
                    "opendap",
                    requests.get(
                        f"{url}/opendap/sst.dods?analysed_sst.analysed_sst[0:1:9][{i}][{j}]",
                        timeout=60,
                    ),
                ),
                ("zarr", requests.get(f"{url}/zarr-timeseries/sst/{chunk}", timeout=60)),
            ):
                assert response.status_code in (200, 503), response.text
                if response.status_code == 200:
                    answers[route].append(response.content)
        ingest.join()
    versions["edr"].append(open_grid(copy, "sst").analysed_sst[:, i, j].values)
    earlier, fill = versions["opendap"][0], stored.attrs["_FillValue"]
    versions["opendap"].append(
        np.where(earlier == fill, fill, earlier + round(1 / stored.attrs["scale_factor"]))
    )
    versions["zarr"].append(open(chunk_file, "rb").read())
    read = {
        "edr": lambda body: pd.read_csv(pd.io.common.StringIO(body.decode()))["analysed_sst"],
        "opendap": lambda body: np.frombuffer(body.partition(b"\nData:\n")[2][8:], ">i4"),
        "zarr": lambda body: body,
    }
    # EDR's CSV writes decoded floats as text; OPeNDAP and Zarr send what is stored.
    same = {
        "edr": lambda a, b: np.allclose(a, b, atol=1e-3),
        "opendap": np.array_equal,
        "zarr": lambda a, b: a == b,
    }
    for route, (earlier, later) in versions.items():
        assert not same[route](earlier, later), route  # the ingest changed what is read
        seen = [read[route](body) for body in answers[route]]
        assert all(same[route](a, earlier) or same[route](a, later) for a in seen), route
        assert same[route](seen[-1], later), route


def test_a_zarr_chunk_asked_for_during_an_ingest_is_503_not_a_half_written_file(lake, service):
    from eosc_pangeo.lake.lock import CollectionLock

    chunk = f"{service}/zarr-timeseries/sst/analysed_sst/c/0/0/0"
    # What an ingest holds while it rewrites the collection's chunks in place.
    with CollectionLock(lake, lake.find_collection("sst")):
        during = requests.get(chunk, timeout=60)
    assert during.status_code == 503
    assert "being ingested" in during.json()["detail"]
    assert int(during.headers["Retry-After"]) > 0
    assert requests.get(chunk, timeout=60).status_code == 200


# --- fuzzing -----------------------------------------------------------------------------------


def test_every_operation_of_the_openapi_document_has_its_own_id(service):
    paths = requests.get(f"{service}/openapi.json", timeout=30).json()["paths"]
    ids = [operation["operationId"] for path in paths.values() for operation in path.values()]
    assert len(ids) == len(set(ids))
    assert "head" in paths["/zarr/{collection}/{key}"]  # files can be sized without a download


#: Values the fuzzer mixes with random ones, so that its requests reach the subsetting code
#: and not only the 404 of an unknown collection (schemathesis' dictionaries).
FUZZ_CONFIG = f"""
headers = {{ "X-API-Key" = "{PARTNER_KEY}" }}
[dictionaries.collections]
values = ["sst", "tas", "argo", "stations"]
[dictionaries.opendap]
values = ["sst.dds", "sst.das", "sst.dods", "tas.dods"]
[dictionaries.keys]
values = ["zarr.json", "analysed_sst/zarr.json", "analysed_sst/c/0/0/0", "lat/c/0"]
[dictionaries.coords]
values = ["POINT(-29 45)", "POLYGON((-40 30, 20 30, 20 70, -40 70, -40 30))"]
[dictionaries.bbox]
values = ["-40,30,-10,50", "170,-10,-170,10"]
[dictionaries.datetime]
values = ["2020-01-02", "2020-01-02/2020-01-04", "../2020-01-03"]
[dictionaries.parameters]
values = ["analysed_sst", "TEMP", "tas"]
[dictionaries.formats]
values = ["csv", "geojson", "covjson", "netcdf"]
[parameters]
"path.collection" = {{ dictionary = "collections", probability = 0.9 }}
"path.name" = {{ dictionary = "opendap", probability = 0.9 }}
"path.key" = {{ dictionary = "keys", probability = 0.7 }}
"query.coords" = {{ dictionary = "coords", probability = 0.6 }}
"query.bbox" = {{ dictionary = "bbox", probability = 0.6 }}
"query.datetime" = {{ dictionary = "datetime", probability = 0.6 }}
"query.parameter-name" = {{ dictionary = "parameters", probability = 0.6 }}
"query.f" = {{ dictionary = "formats", probability = 0.6 }}
"""


@pytest.mark.slow
def test_fuzzed_requests_never_get_a_server_error(service, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    config = tmp_path / "schemathesis.toml"
    config.write_text(FUZZ_CONFIG)
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("st")),
            "--config-file",
            str(config),
            "run",
            f"{service}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "40",
            "--seed",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    # Every subset operation was reached, not only refused as an unknown collection.
    warnings = run.stdout.partition("repeatedly returned 404")[2]
    assert "/edr/" not in warnings and "/opendap/" not in warnings, run.stdout[-3000:]


# --- the catalogue points at the service ------------------------------------------------------


def test_stac_assets_and_dcat_distributions_carry_the_services_urls(lake, service, tmp_path):
    import pystac
    from rdflib import Graph
    from rdflib.namespace import DCAT

    from eosc_pangeo.catalog import build_catalog
    from eosc_pangeo.catalog.dcat import export_dcat

    copy = Lake(str(tmp_path / "lake"))
    shutil.copytree(lake.url, copy.url)
    report = build_catalog(copy, data_url=service)
    sst = next(
        c for c in pystac.Catalog.from_file(report.stac).get_all_collections() if c.id == "sst"
    )
    asset = sst.assets["http-zarr"]
    assert asset.href == f"{service}/zarr/sst"
    # A portal user follows the asset with plain xarray and the kwargs it carries.
    remote = xr.open_zarr(
        asset.href,
        **{k: v for k, v in asset.extra_fields["xarray:open_kwargs"].items() if k != "engine"},
    )
    xr.testing.assert_identical(remote.load(), open_grid(copy, "sst").load())
    graph = Graph().parse(data=export_dcat(copy), format="turtle")
    access_urls = {str(url) for url in graph.objects(None, DCAT.accessURL)}
    assert {f"{service}/zarr/sst", f"{service}/opendap/sst", f"{service}/parquet/argo/"} <= (
        access_urls
    )
