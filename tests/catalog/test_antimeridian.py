"""Items and Collections whose bbox crosses the antimeridian (STAC: west > east) are found.

A static STAC catalog is harvested into an index of its own; it holds, in degrees:

- ``fiji-ridge``: a Collection and its Item, both with the bbox (170, -20, -170, -10), which
  crosses; the Item's footprint is a MultiPolygon split at ±180, as GeoJSON asks;
- ``fiji-ridge-bathymetry``: a Collection with the same crossing extent and no Items (found by
  its extent alone);
- ``kamchatka-shelf`` (170..179 E) and ``aleutian-arc`` (179..165 W): a Collection and Item each,
  close to the antimeridian on either side, neither crossing it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pystac
import pytest
import shapely.geometry

from eosc_pangeo.catalog import CatalogIndex, search
from eosc_pangeo.catalog.api import create_app
from eosc_pangeo.catalog.harvest import harvest
from eosc_pangeo.catalog.index import ItemQuery

FIJI_RIDGE = (170.0, -20.0, -170.0, -10.0)
KAMCHATKA_SHELF = (170.0, 50.0, 179.0, 60.0)
ALEUTIAN_ARC = (-179.0, 50.0, -165.0, 56.0)

#: Query boxes around the Fiji ridge, each touching one part of it only.
WEST_OF_THE_ANTIMERIDIAN = (172.0, -18.0, 178.0, -12.0)
EAST_OF_THE_ANTIMERIDIAN = (-178.0, -18.0, -172.0, -12.0)
#: Boxes near neither part: far away, the whole gap between the parts, and crossing too but at
#: other latitudes.
FAR_FROM_THE_RIDGE = {
    "greenwich": (0.0, -18.0, 10.0, -12.0),
    "the rest of the globe": (-160.0, -18.0, 160.0, -12.0),
    "crossing further north": (175.0, 30.0, -175.0, 40.0),
}

both_sides = pytest.mark.parametrize(
    "box", [WEST_OF_THE_ANTIMERIDIAN, EAST_OF_THE_ANTIMERIDIAN], ids=["west of it", "east of it"]
)
far_boxes = pytest.mark.parametrize(
    "box", FAR_FROM_THE_RIDGE.values(), ids=FAR_FROM_THE_RIDGE.keys()
)


def footprint(west: float, south: float, east: float, north: float) -> dict:
    """The GeoJSON footprint of a box: a Polygon, or a MultiPolygon split at ±180 if it
    crosses."""
    if west <= east:
        return shapely.geometry.mapping(shapely.geometry.box(west, south, east, north))
    return shapely.geometry.mapping(
        shapely.geometry.MultiPolygon(
            [
                shapely.geometry.box(west, south, 180, north),
                shapely.geometry.box(-180, south, east, north),
            ]
        )
    )


def collection(collection_id: str, bbox: tuple[float, ...], with_item: bool) -> pystac.Collection:
    made = pystac.Collection(
        id=collection_id,
        description=f"{collection_id}, near the antimeridian",
        extent=pystac.Extent(
            pystac.SpatialExtent([list(bbox)]),
            pystac.TemporalExtent(
                [[datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 12, 31, tzinfo=UTC)]]
            ),
        ),
    )
    if with_item:
        made.add_item(
            pystac.Item(
                id=f"{collection_id}.survey",
                geometry=footprint(*bbox),
                bbox=list(bbox),
                datetime=datetime(2020, 6, 1, tzinfo=UTC),
                properties={},
            )
        )
    return made


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> CatalogIndex:
    folder = tmp_path_factory.mktemp("antimeridian")
    catalog = pystac.Catalog(id="pacific", description="Boxes around the antimeridian")
    catalog.add_children(
        [
            collection("fiji-ridge", FIJI_RIDGE, with_item=True),
            collection("fiji-ridge-bathymetry", FIJI_RIDGE, with_item=False),
            collection("kamchatka-shelf", KAMCHATKA_SHELF, with_item=True),
            collection("aleutian-arc", ALEUTIAN_ARC, with_item=True),
        ]
    )
    catalog.normalize_hrefs(str(folder / "stac"))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    index = CatalogIndex(str(folder / "index"))
    report = harvest(str(folder / "stac" / "catalog.json"), index=index)
    assert report.ok and report.items == 3, report
    return index


@pytest.fixture(scope="module")
def api(index, serve):
    """An HTTP client of the index's STAC API, served on a free loopback port."""
    with serve(create_app(index=index)) as url, httpx.Client(base_url=url) as client:
        yield client


def item_ids(index: CatalogIndex, **query) -> set[str]:
    items, matched = index.search_items(ItemQuery(limit=100, **query))
    assert matched == len(items)
    return {item["id"] for item in items}


def collection_ids(index: CatalogIndex, box: tuple[float, ...]) -> set[str]:
    return {hit.id for hit in search(bbox=box, catalog=index)}


def polygon(west: float, south: float, east: float, north: float):
    return shapely.geometry.box(west, south, east, north)


# --- Items, by bbox ---------------------------------------------------------------------------


@both_sides
def test_an_item_crossing_the_antimeridian_is_found_by_a_box_on_either_side_of_it(index, box):
    assert "fiji-ridge.survey" in item_ids(index, bbox=box)


def test_an_item_crossing_the_antimeridian_is_found_by_a_box_that_also_crosses(index):
    assert "fiji-ridge.survey" in item_ids(index, bbox=(175.0, -18.0, -175.0, -12.0))


@far_boxes
def test_an_item_crossing_the_antimeridian_is_not_found_by_a_box_far_from_it(index, box):
    assert "fiji-ridge.survey" not in item_ids(index, bbox=box)


def test_items_on_either_side_are_found_by_a_box_crossing_the_antimeridian(index):
    assert item_ids(index, bbox=(175.0, 45.0, -175.0, 65.0)) == {
        "kamchatka-shelf.survey",
        "aleutian-arc.survey",
    }


def test_a_box_on_one_side_does_not_find_items_on_the_other(index):
    assert item_ids(index, bbox=(-178.0, 45.0, -170.0, 65.0)) == {"aleutian-arc.survey"}


# --- Items, by intersects ---------------------------------------------------------------------


@both_sides
def test_an_item_crossing_the_antimeridian_is_found_by_a_polygon_on_either_side_of_it(index, box):
    assert item_ids(index, intersects=polygon(*box)) == {"fiji-ridge.survey"}


def test_an_item_crossing_the_antimeridian_is_found_by_a_multipolygon_split_at_it(index):
    split = shapely.geometry.shape(footprint(175.0, -18.0, -175.0, -12.0))
    assert item_ids(index, intersects=split) == {"fiji-ridge.survey"}


def test_an_item_crossing_the_antimeridian_is_not_found_by_a_polygon_far_from_it(index):
    assert item_ids(index, intersects=polygon(-160.0, -18.0, 160.0, -12.0)) == set()


# --- Collections --------------------------------------------------------------------------------

#: The crossing Collection with Items is found by them; the one without, by its extent alone.
crossing_collections = pytest.mark.parametrize(
    "collection_id", ["fiji-ridge", "fiji-ridge-bathymetry"]
)


@crossing_collections
@both_sides
def test_a_collection_crossing_the_antimeridian_is_found_by_a_box_on_either_side_of_it(
    index, box, collection_id
):
    assert collection_id in collection_ids(index, box)


@crossing_collections
def test_a_collection_crossing_the_antimeridian_is_found_by_a_box_that_also_crosses(
    index, collection_id
):
    assert collection_id in collection_ids(index, (175.0, -18.0, -175.0, -12.0))


@far_boxes
def test_a_collection_crossing_the_antimeridian_is_not_found_by_a_box_far_from_it(index, box):
    assert not {"fiji-ridge", "fiji-ridge-bathymetry"} & collection_ids(index, box)


# --- Through the STAC API ---------------------------------------------------------------------


@both_sides
def test_the_api_item_search_finds_an_item_crossing_the_antimeridian_on_either_side(api, box):
    found = api.get("/search", params={"bbox": ",".join(map(str, box))}).json()
    assert {feature["id"] for feature in found["features"]} == {"fiji-ridge.survey"}


@both_sides
def test_the_api_intersects_search_finds_an_item_crossing_the_antimeridian(api, box):
    found = api.post("/search", json={"intersects": footprint(*box)}).json()
    assert {feature["id"] for feature in found["features"]} == {"fiji-ridge.survey"}


@both_sides
def test_the_api_collection_search_finds_collections_crossing_the_antimeridian(api, box):
    found = api.get("/collections", params={"bbox": ",".join(map(str, box))}).json()
    assert {c["id"] for c in found["collections"]} == {"fiji-ridge", "fiji-ridge-bathymetry"}


def test_the_api_collection_search_by_a_crossing_box_finds_collections_on_either_side(api):
    found = api.get("/collections", params={"bbox": "175,45,-175,65"}).json()
    assert {c["id"] for c in found["collections"]} == {"kamchatka-shelf", "aleutian-arc"}
