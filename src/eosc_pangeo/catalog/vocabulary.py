"""Match what scientists type ("sst", "salinity", "sea_surface_temperature") to CF standard
names, and free text to Collections.

Standard names come from the CF standard name table as compliance-checker ships it
(``compliance_checker/data/cf-standard-name-table.xml``), read once when a search first asks
for a variable: its aliases (superseded names) match the names that replaced them, and a generic
name matches its specific variants (``sea_surface_temperature`` finds the skin, subskin and
foundation temperatures; ``air_temperature`` finds ``air_temperature_at_cloud_top``).

A Collection's variables are read from its STAC metadata whatever its origin: ``cube:variables``
(datacube extension, with the ``standard_name`` this platform adds), ``cf:parameter`` (CF
extension) and ``table:columns`` (table extension).
"""

from __future__ import annotations

import functools
import importlib.util
import re
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Short names and everyday words -> the CF standard names they mean; the table has none of
#: these. Specific variants of the names (``sea_surface_foundation_temperature``) need no entry,
#: nor do words that appear inside standard names ("temperature", "salinity"): they match by word.
ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "sst": ("sea_surface_temperature",),
    "sss": ("sea_surface_salinity",),
    "temp": ("sea_water_temperature",),
    "psal": ("sea_water_practical_salinity",),
    "ssh": ("sea_surface_height_above_geoid", "sea_surface_height_above_mean_sea_level"),
    "sla": ("sea_surface_height_above_mean_sea_level",),
    "chl": ("mass_concentration_of_chlorophyll_a_in_sea_water",),
    "tas": ("air_temperature",),
    "t2m": ("air_temperature",),
    "pr": ("precipitation_flux",),
    "precipitation": ("precipitation_flux", "precipitation_amount", "lwe_precipitation_rate"),
    "rain": ("precipitation_flux", "rainfall_flux", "rainfall_amount"),
    "psl": ("air_pressure_at_mean_sea_level",),
    "slp": ("air_pressure_at_mean_sea_level",),
    "wind": ("eastward_wind", "northward_wind", "wind_speed"),
    "u10": ("eastward_wind",),
    "v10": ("northward_wind",),
    "lst": ("surface_temperature",),
    "ndvi": ("normalized_difference_vegetation_index",),
    "soil moisture": (
        "volume_fraction_of_condensed_water_in_soil",
        "mass_content_of_water_in_soil",
    ),
    "sm": ("volume_fraction_of_condensed_water_in_soil",),
    "snow": ("surface_snow_amount", "surface_snow_area_fraction", "surface_snow_thickness"),
}

#: Words that make a standard name a specific variant of the name without them: the layers
#: of the ocean's surface at which a sea surface temperature is defined (GHRSST).
VARIANT_WORDS = ("skin", "subskin", "foundation")


@dataclass(frozen=True)
class StandardNameTable:
    """The CF standard name table: its names, aliases and generic -> specific relations."""

    version: str
    names: frozenset[str]
    #: Superseded name -> the name that replaced it.
    aliases: dict[str, str]
    #: Generic name -> its specific variants (one of VARIANT_WORDS inserted, or ``_at_...``).
    variants: dict[str, frozenset[str]]

    def current(self, name: str) -> str:
        """The name itself, or the one that replaced it if it is a superseded alias."""
        return self.aliases.get(name, name)


@functools.cache
def cf_standard_names() -> StandardNameTable:
    """The CF standard name table shipped by compliance-checker (read once, in about 0.2 s)."""
    # Found without importing compliance_checker, which would load its whole checking stack.
    package = importlib.util.find_spec("compliance_checker").submodule_search_locations[0]
    root = ElementTree.parse(Path(package) / "data" / "cf-standard-name-table.xml").getroot()
    names = frozenset(entry.get("id") for entry in root.iter("entry"))
    aliases = {alias.get("id"): alias.findtext("entry_id").strip() for alias in root.iter("alias")}
    variants: dict[str, set[str]] = defaultdict(set)
    for name in names:
        generic, at, _ = name.partition("_at_")
        if at and generic in names:
            variants[generic].add(name)
        words = name.split("_")
        for i, word in enumerate(words):
            generic = "_".join(words[:i] + words[i + 1 :])
            if word in VARIANT_WORDS and generic in names:
                variants[generic].add(name)
    return StandardNameTable(
        root.findtext("version_number", "").strip(),
        names,
        aliases,
        {g: frozenset(v) for g, v in variants.items()},
    )


@functools.cache
def related_names(term: str) -> frozenset[str]:
    """The standard names a term means besides itself: those of its abbreviation (``sst``), or,
    for a standard name, its specific variants, each with its own variants."""
    table = cf_standard_names()
    meant = ABBREVIATIONS.get(term.replace("_", " "), ABBREVIATIONS.get(term))
    generics = [table.current(n) for n in meant] if meant else [table.current(term)]
    related = {*generics, *(v for g in generics for v in table.variants.get(g, ()))}
    return frozenset(related if meant else related - {table.current(term)})


EXACT, ALIAS, WORD = 3.0, 2.0, 1.0


@dataclass(frozen=True)
class CollectionVariable:
    name: str
    standard_name: str | None


def collection_variables(collection: dict[str, Any]) -> list[CollectionVariable]:
    """The variables a STAC Collection declares, in any of the extensions that list them."""
    found: dict[str, CollectionVariable] = {}
    for name, variable in (collection.get("cube:variables") or {}).items():
        found[name] = CollectionVariable(name, variable.get("standard_name"))
    for column in collection.get("table:columns") or []:
        found.setdefault(
            column["name"], CollectionVariable(column["name"], column.get("standard_name"))
        )
    for parameter in collection.get("cf:parameter") or []:
        standard_name = parameter.get("name")
        if standard_name and all(v.standard_name != standard_name for v in found.values()):
            found[standard_name] = CollectionVariable(standard_name, standard_name)
    return list(found.values())


def match_variables(wanted: Iterable[str], collection: dict[str, Any]) -> tuple[float, list[str]]:
    """How well a Collection holds every variable in ``wanted``, and which of its variables.

    Returns a score of 0 when one of the wanted variables is missing: asking for SST and
    salinity finds only collections that hold both.
    """
    variables = collection_variables(collection)
    total, names = 0.0, []
    for term in wanted:
        scored = [(variable_score(term, v), v.name) for v in variables]
        best = max((score for score, _ in scored), default=0.0)
        if best == 0:
            return 0.0, []
        total += best
        names += [name for score, name in scored if score == best and name not in names]
    return total, names


def variable_score(term: str, variable: CollectionVariable) -> float:
    """3 for the variable's own or standard name (or a CF alias of it), 2 for an abbreviation
    of it or a generic name it is a variant of, 1 for a word of its standard name; halved for
    a quantity derived from it (``... standard_error``)."""
    term = term.strip().lower().replace(" ", "_")
    base, _, modifier = (variable.standard_name or "").lower().partition(" ")
    if term == variable.name.lower() or (base and term == base):
        score = EXACT
    elif not base:
        return 0.0
    elif (current := cf_standard_names().current(base)) == cf_standard_names().current(term):
        score = EXACT
    elif current in related_names(term):
        score = ALIAS
    elif term in base.split("_"):
        score = WORD
    else:
        return 0.0
    return score / 2 if modifier else score


def text_score(q: str, collection: dict[str, Any]) -> float:
    """Free-text relevance: the terms of ``q`` are ORed (as in the STAC free-text extension);
    a term in the id, title or keywords counts 2, elsewhere (description, variables,
    providers) 1. Quoted phrases count as one term."""
    terms = [t.strip('"').lower() for t in re.findall(r'"[^"]+"|\S+', q)]
    prominent = " ".join(
        [collection["id"], collection.get("title") or "", *(collection.get("keywords") or [])]
    ).lower()
    other = " ".join(
        [
            collection.get("description") or "",
            *(p.get("name", "") for p in collection.get("providers") or []),
            *(f"{v.name} {v.standard_name or ''}" for v in collection_variables(collection)),
        ]
    ).lower()
    prominent, other = prominent.replace("_", " "), other.replace("_", " ")
    return sum(
        2.0 if _contains_word(prominent, t) else 1.0 if _contains_word(other, t) else 0.0
        for t in terms
    )


def _contains_word(text: str, term: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(term)}", text) is not None
