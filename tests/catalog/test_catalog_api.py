"""The STAC API service, started with uvicorn on loopback, queried by pystac-client and httpx."""

from __future__ import annotations

import json

import httpx
import pytest
import shapely.geometry
from pystac_client import Client


def test_pystac_client_lists_every_collection(stac_api):
    client = Client.open(stac_api)
    assert {c.id for c in client.get_collections()} == {"sst", "tas", "argo", "stations"}


def test_pystac_client_searches_by_bbox_datetime_and_collection(stac_api):
    search = Client.open(stac_api).search(
        collections=["argo"], bbox=(-180, -90, 180, 90), datetime="2020-01-01/2020-01-31", limit=2
    )
    items = list(search.items())
    assert items and all(i.collection_id == "argo" for i in items)
    assert search.matched() == len(items)


def test_paging_returns_every_item_once(stac_api):
    every = list(Client.open(stac_api).search(collections=["sst"], limit=3).items())
    assert len(every) == len({i.id for i in every}) == 10  # the small demo has 10 daily files


def test_post_search_pages_through_next_links(stac_api):
    search = Client.open(stac_api).search(collections=["sst"], limit=4, method="POST")
    assert len(list(search.items())) == 10


def test_search_by_ids(stac_api):
    items = list(Client.open(stac_api).search(ids=["sst.20200103-sst"]).items())
    assert [i.id for i in items] == ["sst.20200103-sst"]


def test_free_text_item_search(stac_api):
    items = httpx.get(f"{stac_api}/search", params={"q": "argo", "limit": 100}).json()
    assert {f["collection"] for f in items["features"]} == {"argo"}


def test_collection_search_by_free_text_and_bbox(stac_api):
    found = httpx.get(f"{stac_api}/collections", params={"q": "SST"}).json()
    assert [c["id"] for c in found["collections"]] == ["sst"]
    far_north = httpx.get(f"{stac_api}/collections", params={"bbox": "0,89.9,1,90"}).json()
    assert "argo" not in {c["id"] for c in far_north["collections"]}


def test_item_and_collection_links_resolve(stac_api):
    item = Client.open(stac_api).get_collection("argo").get_item("argo.6900001")
    assert item is not None and item.properties["platform"] == "6900001"


def test_conformance_declares_item_and_collection_search(stac_api):
    conforms = httpx.get(f"{stac_api}/conformance").json()["conformsTo"]
    assert "https://api.stacspec.org/v1.0.0/item-search" in conforms
    assert any("collection-search" in c for c in conforms)


@pytest.mark.parametrize(
    "path, params",
    [
        ("/search", {"bbox": "1,2,3"}),
        ("/search", {"bbox": "0,10,1,5"}),
        ("/search", {"bbox": "0,0,200,10"}),
        ("/search", {"datetime": "2020-02-01T00:00:00Z/2020-01-01T00:00:00Z"}),
        ("/search", {"datetime": "not-a-date"}),
        ("/search", {"collections": "no-such-collection"}),
        ("/search", {"limit": "100000000"}),
        ("/search", {"limit": "-1"}),
        ("/search", {"token": "forged"}),
        ("/search", {"limit": "ten"}),
        ("/collections", {"bbox": "1,2"}),
        ("/collections", {"datetime": "not-a-date"}),
        ("/collections", {"limit": "ten"}),
    ],
)
def test_bad_get_queries_get_400_with_a_message(stac_api, path, params):
    response = httpx.get(f"{stac_api}{path}", params=params)
    assert response.status_code == 400, response.text
    assert response.json().get("description") or response.json().get("detail")


@pytest.mark.parametrize(
    "body",
    [
        {"bbox": [1, 2, 3]},
        {"datetime": "2020-02-01T00:00:00Z/2020-01-01T00:00:00Z"},
        {"collections": ["no-such-collection"]},
        {"limit": 10**9},
    ],
)
def test_bad_post_queries_get_400(stac_api, body):
    response = httpx.post(f"{stac_api}/search", json=body)
    assert response.status_code == 400, response.text


def test_collection_search_returns_the_documents_of_the_collection_routes(stac_api):
    found = httpx.get(f"{stac_api}/collections").json()["collections"]
    assert found and all(
        collection == httpx.get(f"{stac_api}/collections/{collection['id']}").json()
        for collection in found
    )


def test_openapi_document_still_describes_the_search_routes(stac_api):
    paths = httpx.get(f"{stac_api}/api").json()["paths"]
    assert {"get", "post"} <= set(paths["/search"]) and "get" in paths["/collections"]
    assert "bbox" in {p["name"] for p in paths["/collections"]["get"]["parameters"]}


def test_unknown_collection_path_is_404(stac_api):
    assert httpx.get(f"{stac_api}/collections/nope").status_code == 404
    assert httpx.get(f"{stac_api}/collections/argo/items/nope").status_code == 404


def test_post_search_body_must_be_a_json_object(stac_api):
    assert httpx.post(f"{stac_api}/search", json=[None, None]).status_code == 400
    response = httpx.post(
        f"{stac_api}/search", content=b'{"limit": 1}', headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415


def test_intersects_polygon_returns_exactly_the_items_whose_footprints_intersect_it(stac_api):
    # A triangle whose bounding box holds stations outside it: only the exact test leaves them out.
    triangle = {"type": "Polygon", "coordinates": [[[-60, 0], [10, 0], [-60, 55], [-60, 0]]]}
    client = Client.open(stac_api)
    every = client.search(limit=100).items()
    expected = {
        i.id
        for i in every
        if shapely.geometry.shape(i.geometry).intersects(shapely.geometry.shape(triangle))
    }
    found = [i.id for i in client.search(intersects=triangle, limit=3).items()]
    assert "argo.6900001" in expected and "stations.ES-VIGO-01" not in expected
    assert sorted(found) == sorted(expected)


def test_intersects_point_finds_the_one_item_there(stac_api):
    station = httpx.get(f"{stac_api}/collections/stations/items/stations.ES-VIGO-01").json()
    found = httpx.get(
        f"{stac_api}/search",
        params={"collections": "stations", "intersects": json.dumps(station["geometry"])},
    ).json()
    assert [f["id"] for f in found["features"]] == ["stations.ES-VIGO-01"]
    assert found["numberMatched"] == 1


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_bbox_and_intersects_together_get_400(stac_api, method):
    point = {"type": "Point", "coordinates": [0, 0]}
    if method == "GET":
        response = httpx.get(
            f"{stac_api}/search", params={"bbox": "-1,-1,1,1", "intersects": json.dumps(point)}
        )
    else:
        response = httpx.post(
            f"{stac_api}/search", json={"bbox": [-1, -1, 1, 1], "intersects": point}
        )
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "method, geometry",
    [
        ("GET", "{not json"),
        ("GET", json.dumps({"type": "Feature", "geometry": None, "properties": {}})),
        ("GET", json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]})),
        ("POST", {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}),
        ("POST", {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}),
        # found by schemathesis: positions of mixed dimensions, and coordinates off the globe
        ("POST", {"type": "LineString", "coordinates": [[1, 2, 3], [1e16, -1e16], [4, 5, 6]]}),
        ("POST", {"type": "Point", "coordinates": [500, 10]}),
    ],
)
def test_malformed_intersects_gets_400_with_a_message(stac_api, method, geometry):
    response = (
        httpx.get(f"{stac_api}/search", params={"intersects": geometry})
        if method == "GET"
        else httpx.post(f"{stac_api}/search", json={"intersects": geometry})
    )
    assert response.status_code == 400, response.text
    assert response.json().get("description") or response.json().get("detail")


def test_an_index_loaded_for_serving_answers_the_same_items(stac_api, demo_lake, serve):
    # load() stores every Item as JSON up front; searches then splice the stored JSON.
    from eosc_pangeo.catalog import CatalogIndex
    from eosc_pangeo.catalog.api import create_app

    index = CatalogIndex.of_lake(demo_lake)
    index.load()
    params = {
        "bbox": "-60,0,10,65",
        "datetime": "2020-01-01T00:00:00Z/2020-01-08T00:00:00Z",
        "limit": 50,
    }

    def features(url):
        found = httpx.get(f"{url}/search", params=params).json()
        return found["numberMatched"], [
            {**f, "links": [link["rel"] for link in f["links"]]} for f in found["features"]
        ]

    with serve(create_app(index=index)) as loaded:
        matched, items = features(loaded)
    assert matched > 0 and (matched, items) == features(stac_api)
