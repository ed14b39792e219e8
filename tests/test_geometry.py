"""Boxes and longitudes across the antimeridian (eosc_pangeo.geometry), with answers worked out
by hand: the one rule the lake, the catalogue, the data service and the analysis share."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from eosc_pangeo.geometry import (
    boxes_overlap,
    check_bbox,
    grid_longitude_ranges,
    grid_west_edge,
    longitude_fraction,
    longitude_parts,
    longitude_within,
    point_in_box,
    wrap_longitude,
)


def test_longitudes_wrap_to_either_convention():
    lon = np.array([-190.0, -180.0, -10.0, 0.0, 180.0, 190.0, 350.0, 360.0])
    assert wrap_longitude(lon).tolist() == [170, -180, -10, 0, -180, -170, -10, 0]
    assert wrap_longitude(lon, 0.0).tolist() == [170, 180, 350, 0, 180, 190, 350, 0]
    assert wrap_longitude(350.0) == -10.0


def test_a_grid_convention_is_read_from_its_largest_longitude():
    assert grid_west_edge(359.75) == 0.0
    assert grid_west_edge(180.0) == -180.0
    assert grid_west_edge(179.875) == -180.0


def test_a_box_crossing_the_antimeridian_covers_two_ranges():
    assert longitude_parts(-10, 10) == [(-10, 10)]
    assert longitude_parts(170, -170) == [(170, 180.0), (-180.0, -170)]


@pytest.mark.parametrize(
    ("grid", "box", "ranges"),
    [
        (np.arange(0.5, 360, 1.0), (-10, 10), [(350, 360, -360), (0, 10, 0)]),
        (np.arange(0.5, 360, 1.0), (10, 20), [(10, 20, 0)]),
        (np.arange(-179.5, 180, 1.0), (170, -170), [(170, 180, 0), (-180, -170, 360)]),
        (np.arange(-179.5, 180, 1.0), (190, 200), [(-170, -160, 360)]),
    ],
)
def test_a_box_maps_onto_the_ranges_of_a_grid_in_either_convention(grid, box, ranges):
    found = grid_longitude_ranges(grid, *box)
    assert [tuple(float(v) for v in r) for r in found] == ranges


def test_a_box_of_360_degrees_or_more_is_the_whole_grid():
    grid = np.arange(0.5, 360, 1.0)
    assert grid_longitude_ranges(grid, -180, 180) == [(0.5, 359.5, 0.0)]


def test_points_are_in_a_box_with_its_edges_and_across_the_antimeridian():
    lon = np.array([-175.0, 175.0, 0.0, 170.0, -170.0])
    lat = np.array([0.0, 0.0, 0.0, 10.0, 10.5])
    assert point_in_box(lon, lat, (170, -10, -170, 10)).tolist() == [True, True, False, True, False]
    assert longitude_within(lon, -10, 10).tolist() == [False, False, True, False, False]


def test_point_rules_build_pyarrow_row_filters():
    table = pa.table({"lon": [-175.0, 175.0, 0.0], "lat": [0.0, 0.0, 0.0]})
    expression = point_in_box(pc.field("lon"), pc.field("lat"), (170, -10, -170, 10))
    assert table.filter(expression)["lon"].to_pylist() == [-175.0, 175.0]


@pytest.mark.parametrize(
    ("box", "other", "overlap"),
    [
        ((0, 0, 10, 10), (10, 10, 20, 20), True),  # touching corners count
        ((0, 0, 10, 10), (11, 0, 20, 10), False),
        ((0, 0, 10, 10), (0, 11, 10, 20), False),
        ((170, 0, -170, 10), (175, 0, 178, 10), True),  # one crosses, the other in its east part
        ((170, 0, -170, 10), (-178, 0, -175, 10), True),  # ... in its west part
        ((170, 0, -170, 10), (0, 0, 10, 10), False),  # ... in neither
        ((-175, 0, -172, 10), (170, 0, -170, 10), True),  # the query crosses
        ((170, 0, -170, 10), (160, 0, -160, 10), True),  # both cross
    ],
)
def test_boxes_overlap_across_the_antimeridian(box, other, overlap):
    assert bool(boxes_overlap(box, other)) is overlap
    assert bool(boxes_overlap(other, box)) is overlap


def test_boxes_overlap_compares_columns_of_boxes_and_no_box_overlaps_nothing():
    west = np.array([0.0, 170.0, np.nan])
    south, east, north = (
        np.array([0.0, 0.0, np.nan]),
        np.array([10.0, -170.0, np.nan]),
        np.array([10.0, 10.0, np.nan]),
    )
    assert boxes_overlap((west, south, east, north), (175, 0, 178, 5)).tolist() == [
        False,
        True,
        False,
    ]


def test_longitude_fraction_counts_both_parts_of_a_crossing_box():
    assert longitude_fraction(170, -170, 175, 180) == pytest.approx(0.25)
    assert longitude_fraction(-10, 10, -180, 180) == 1.0
    assert longitude_fraction(-10, 10, 20, 30) == 0.0
    assert longitude_fraction(5, 5, 0, 10) == 1.0  # a single meridian


def test_a_box_with_south_above_north_is_refused():
    with pytest.raises(ValueError, match="south"):
        check_bbox((10, 50, 0, 40))
