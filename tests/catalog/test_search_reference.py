"""The index's search gives exactly what a brute-force reference gives, on random queries.

The reference reads every Item as a dict and tests it with shapely and plain comparisons, the
STAC API's definitions written out: an Item matches a bbox when its own bbox overlaps it (either
may cross the antimeridian, west > east), an ``intersects`` geometry when its footprint
intersects it, a period when it starts before the period's end and ends after its start.
Results come newest first (latest start, then id). Random Items mix points, boxes, boxes
crossing the antimeridian (footprints split at it), instants and long periods, in several
collections, some ids shared between collections.
"""

from __future__ import annotations

import collections
import random
from datetime import UTC, datetime, timedelta

import pytest
import shapely
import shapely.geometry

from eosc_pangeo.catalog import CatalogIndex
from eosc_pangeo.catalog.index import ItemQuery

COLLECTIONS = ("argo", "moorings", "swaths")
START = datetime(2015, 1, 1, tzinfo=UTC)
DAYS = 3650
QUERIES = 300


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def random_box(rng: random.Random, largest: float) -> tuple[float, float, float, float]:
    """(west, south, east, north), crossing the antimeridian (west > east) now and then."""
    south = rng.uniform(-90, 90 - 1)
    north = min(90.0, south + rng.uniform(0, largest))
    west = rng.uniform(-180, 180)
    east = west + rng.uniform(0, largest)
    if east > 180:
        east -= 360
    return round(west, 3), round(south, 3), round(east, 3), round(north, 3)


def box_geometry(west: float, south: float, east: float, north: float):
    """The box as shapely: two boxes either side of ±180 when it crosses."""
    if west <= east:
        return shapely.geometry.box(west, south, east, north)
    return shapely.geometry.MultiPolygon(
        [
            shapely.geometry.box(west, south, 180, north),
            shapely.geometry.box(-180, south, east, north),
        ]
    )


def random_item(rng: random.Random, number: int, collection: str) -> dict:
    kind = rng.choice(["point", "box", "box"])
    if kind == "point":
        lon, lat = round(rng.uniform(-180, 180), 3), round(rng.uniform(-90, 90), 3)
        bbox, geometry = (lon, lat, lon, lat), shapely.geometry.Point(lon, lat)
    else:
        bbox = random_box(rng, 40)
        geometry = box_geometry(*bbox)
    start = START + timedelta(days=rng.uniform(0, DAYS))
    if rng.random() < 0.5:
        properties = {"datetime": iso(start)}
    else:
        end = start + timedelta(days=rng.choice([0, 1, 30, 400, 900]) * rng.random())
        properties = {"datetime": None, "start_datetime": iso(start), "end_datetime": iso(end)}
    # A few ids are shared between collections: ids are unique within a collection only.
    item_id = f"shared-{number % 50}" if number % 97 == 0 else f"{collection}-{number}"
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": item_id,
        "collection": collection,
        "geometry": shapely.geometry.mapping(geometry),
        "bbox": list(bbox),
        "properties": properties,
        "assets": {},
        "links": [],
    }


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> tuple[CatalogIndex, list[dict]]:
    rng = random.Random(17)
    index = CatalogIndex(str(tmp_path_factory.mktemp("reference") / "index"))
    every = []
    for c, name in enumerate(COLLECTIONS):
        items = [random_item(rng, number, name) for number in range(c * 1000, c * 1000 + 700)]
        index.put(
            "reference",
            {
                "type": "Collection",
                "stac_version": "1.1.0",
                "id": name,
                "description": name,
                "license": "CC-BY-4.0",
                "links": [],
                "extent": {
                    "spatial": {"bbox": [[-180, -90, 180, 90]]},
                    "temporal": {"interval": [[iso(START), None]]},
                },
            },
            items,
            fingerprint="1",
        )
        every += items
    return index, every


def item_period(item: dict) -> tuple[datetime, datetime]:
    properties = item["properties"]
    start = properties.get("start_datetime") or properties["datetime"]
    end = properties.get("end_datetime") or properties["datetime"]
    return datetime.fromisoformat(start), datetime.fromisoformat(end)


def reference(items: list[dict], query: ItemQuery) -> list[dict]:
    """Every Item matching ``query`` by brute force, newest first."""
    found = []
    for item in items:
        start, end = item_period(item)
        if query.collections is not None and item["collection"] not in query.collections:
            continue
        if query.ids is not None and item["id"] not in query.ids:
            continue
        if query.start is not None and end < query.start:
            continue
        if query.end is not None and start > query.end:
            continue
        if query.bbox is not None and not box_geometry(*item["bbox"]).intersects(
            box_geometry(*query.bbox)
        ):
            continue
        if query.intersects is not None and not shapely.geometry.shape(item["geometry"]).intersects(
            query.intersects
        ):
            continue
        found.append(item)
    found.sort(key=lambda item: item["id"])
    found.sort(key=lambda item: item_period(item)[0], reverse=True)
    return found


def random_geometry(rng: random.Random):
    """A triangle, a box, or a box crossing the antimeridian split in two, as GeoJSON asks."""
    west, south, east, north = random_box(rng, 60)
    if rng.random() < 0.5:
        return box_geometry(west, south, east, north)
    right = east if west <= east else 180.0
    return shapely.geometry.Polygon([(west, south), (right, south), (west, north)])


def random_query(rng: random.Random, items: list[dict]) -> ItemQuery:
    filters = {}
    if rng.random() < 0.3:
        filters["collections"] = rng.sample(COLLECTIONS, rng.randint(1, 2))
    if rng.random() < 0.1:
        filters["ids"] = [rng.choice(items)["id"] for _ in range(rng.randint(1, 4))]
    shape = rng.random()
    if shape < 0.45:
        filters["bbox"] = random_box(rng, 60)
    elif shape < 0.75:
        filters["intersects"] = random_geometry(rng)
    if rng.random() < 0.8:
        first = START + timedelta(days=rng.uniform(-100, DAYS))
        last = first + timedelta(days=rng.uniform(0, 800))
        opened = rng.random()
        filters["start"] = None if opened < 0.15 else first
        filters["end"] = None if 0.15 <= opened < 0.3 else last
    return ItemQuery(**filters, limit=10_000)


def test_random_searches_find_what_brute_force_finds_in_the_same_order(indexed):
    index, items = indexed
    rng = random.Random(1)
    nonempty = 0
    for _ in range(QUERIES):
        query = random_query(rng, items)
        expected = reference(items, query)
        found, matched = index.search_items(query)
        assert [(i["collection"], i["id"]) for i in found] == [
            (i["collection"], i["id"]) for i in expected
        ], query
        assert matched == len(expected), query
        nonempty += bool(expected)
    assert nonempty > QUERIES // 3  # the queries are not all trivially empty


def test_random_searches_count_per_collection_what_brute_force_counts(indexed):
    index, items = indexed
    rng = random.Random(2)
    for _ in range(QUERIES // 3):
        query = random_query(rng, items)
        expected = collections.Counter(i["collection"] for i in reference(items, query))
        assert index.count_items(query) == dict(expected), query


def test_pages_of_a_search_are_slices_of_the_whole_result(indexed):
    index, items = indexed
    rng = random.Random(3)
    for _ in range(QUERIES // 3):
        whole = random_query(rng, items)
        offset, limit = rng.randint(0, 40), rng.randint(1, 25)
        page, matched = index.search_items(
            ItemQuery(**{**whole.__dict__, "offset": offset, "limit": limit})
        )
        everything, total = index.search_items(whole)
        assert page == everything[offset : offset + limit]
        assert matched == total


def test_found_items_are_the_indexed_items(indexed):
    index, items = indexed
    by_key = {(i["collection"], i["id"]): i for i in items}
    found, _ = index.search_items(ItemQuery(limit=10_000))
    assert len(found) == len(items)
    for item in found:
        original = by_key[item["collection"], item["id"]]
        assert shapely.geometry.shape(item["geometry"]).equals(
            shapely.geometry.shape(original["geometry"])
        )
        assert item["bbox"] == original["bbox"]
        assert {
            k: v
            for k, v in item["properties"].items()
            if k not in ("start_datetime", "end_datetime") or k in original["properties"]
        } == original["properties"]
