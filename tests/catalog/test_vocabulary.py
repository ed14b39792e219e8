"""What scientists type is matched to CF standard names through the CF standard name table."""

from __future__ import annotations

import pytest

from eosc_pangeo.catalog import search
from eosc_pangeo.catalog.vocabulary import (
    ABBREVIATIONS,
    ALIAS,
    EXACT,
    CollectionVariable,
    cf_standard_names,
    variable_score,
)


def score(term: str, standard_name: str) -> float:
    return variable_score(term, CollectionVariable("v", standard_name))


def test_the_generic_cf_name_finds_the_demo_foundation_sst(demo_lake):
    hits = search(variables=["sea_surface_temperature"], lake=demo_lake)
    assert [h.id for h in hits] == ["sst"]
    assert hits[0].variables == ["analysed_sst"]


@pytest.mark.parametrize(
    "specific",
    [
        "sea_surface_skin_temperature",
        "sea_surface_subskin_temperature",
        "sea_surface_foundation_temperature",
    ],
)
def test_a_generic_name_matches_its_specific_variants_below_an_exact_match(specific):
    assert score("sea_surface_temperature", specific) == ALIAS
    assert score(specific, specific) == EXACT


def test_a_generic_name_matches_its_at_forms():
    assert score("sea_water_temperature", "sea_water_temperature_at_sea_floor") == ALIAS


def test_a_specific_name_does_not_match_another_specific_one():
    assert score("sea_surface_skin_temperature", "sea_surface_foundation_temperature") == 0


def test_a_superseded_cf_name_matches_the_name_that_replaced_it():
    table = cf_standard_names()
    old, new = next(iter(table.aliases.items()))
    assert score(old, new) == EXACT


def test_short_aliases_still_work():
    assert score("sst", "sea_surface_foundation_temperature") == ALIAS
    assert score("tas", "air_temperature") == ALIAS


def test_every_short_alias_means_a_cf_standard_name():
    table = cf_standard_names()
    unknown = {
        alias: [n for n in names if n not in table.names] for alias, names in ABBREVIATIONS.items()
    }
    assert {alias: names for alias, names in unknown.items() if names} == {}
