"""Match what scientists type ("sst", "salinity", "tas") to CF standard names, and free text to
Collections.

A Collection's variables are read from its STAC metadata whatever its origin: ``cube:variables``
(datacube extension, with the ``standard_name`` this platform adds), ``cf:parameter`` (CF
extension) and ``table:columns`` (table extension).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: Short names and everyday words -> the CF standard names they mean. Words that appear inside
#: standard names ("temperature", "salinity") need no entry: they match by word.
ALIASES: dict[str, tuple[str, ...]] = {
    "sst": ("sea_surface_temperature", "sea_surface_foundation_temperature",
            "sea_surface_skin_temperature", "sea_surface_subskin_temperature"),
    "sss": ("sea_surface_salinity",),
    "temp": ("sea_water_temperature",),
    "psal": ("sea_water_practical_salinity",),
    "ssh": ("sea_surface_height_above_geoid", "sea_surface_height_above_sea_level"),
    "sla": ("sea_surface_height_above_sea_level",),
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
    "soil moisture": ("volume_fraction_of_condensed_water_in_soil",
                      "mass_content_of_water_in_soil"),
    "sm": ("volume_fraction_of_condensed_water_in_soil",),
    "snow": ("surface_snow_amount", "surface_snow_area_fraction", "surface_snow_thickness"),
}

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
        found.setdefault(column["name"],
                         CollectionVariable(column["name"], column.get("standard_name")))
    for parameter in collection.get("cf:parameter") or []:
        standard_name = parameter.get("name")
        if standard_name and all(v.standard_name != standard_name for v in found.values()):
            found[standard_name] = CollectionVariable(standard_name, standard_name)
    return list(found.values())


def match_variables(wanted: Iterable[str], collection: dict[str, Any]
                    ) -> tuple[float, list[str]]:
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
    """3 for the variable's own or standard name, 2 for an alias of it, 1 for a word of its
    standard name; halved for a quantity derived from it (``... standard_error``)."""
    term = term.strip().lower().replace(" ", "_")
    base, _, modifier = (variable.standard_name or "").lower().partition(" ")
    if term in (variable.name.lower(), base):
        score = EXACT
    elif base and base in ALIASES.get(term.replace("_", " "), ALIASES.get(term, ())):
        score = ALIAS
    elif base and term in base.split("_"):
        score = WORD
    else:
        return 0.0
    return score / 2 if modifier else score


def text_score(q: str, collection: dict[str, Any]) -> float:
    """Free-text relevance: the terms of ``q`` are ORed (as in the STAC free-text extension);
    a term in the id, title or keywords counts 2, elsewhere (description, variables,
    providers) 1. Quoted phrases count as one term."""
    terms = [t.strip('"').lower() for t in re.findall(r'"[^"]+"|\S+', q)]
    prominent = " ".join([collection["id"], collection.get("title") or "",
                          *(collection.get("keywords") or [])]).lower()
    other = " ".join([collection.get("description") or "",
                      *(p.get("name", "") for p in collection.get("providers") or []),
                      *(f"{v.name} {v.standard_name or ''}"
                        for v in collection_variables(collection))]).lower()
    prominent, other = prominent.replace("_", " "), other.replace("_", " ")
    return sum(2.0 if _contains_word(prominent, t) else 1.0 if _contains_word(other, t) else 0.0
               for t in terms)


def _contains_word(text: str, term: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(term)}", text) is not None
