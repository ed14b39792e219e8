"""Harvest external catalogues into the meta-catalogue index: STAC APIs, static STAC catalogs,
Intake catalogs and DCAT-AP catalogues (CKAN, D4Science, EOSC portals; see :mod:`.dcat_read`).

A harvest reads the whole source first and only then touches the index, so an unreachable or
broken source is reported and leaves the index as it was. Re-harvesting is incremental: a
collection whose content (Collection and Items) has not changed is not rewritten, and
collections the source no longer lists are dropped from the index.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pystac

from ..lake.storage import Lake
from .index import CatalogError, CatalogIndex

#: Link relations that point inside the source; the index (or the API) makes its own.
_STRUCTURAL_LINKS = {
    "self",
    "root",
    "parent",
    "child",
    "item",
    "items",
    "collection",
    "next",
    "prev",
}

Harvested = tuple[dict[str, Any], list[dict[str, Any]]]


@dataclass
class HarvestReport:
    """What a harvest did; ``error`` is set (and nothing changed) when the source failed."""

    source: str
    kind: str | None = None
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(
        default_factory=dict, metadata={"doc": "Collection id -> why it was not indexed."}
    )
    items: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def harvest(
    source: str,
    *,
    lake: str | Lake | None = None,
    index: CatalogIndex | None = None,
    domain: str | None = None,
) -> HarvestReport:
    """Harvest ``source`` into the lake's index (or ``index``).

    Parameters
    ----------
    source
        URL or path of a STAC API landing page, a static STAC catalog (``catalog.json``), an
        Intake catalog (``.yaml``) or a DCAT-AP catalogue (an RDF file or endpoint, such as
        CKAN's ``/catalog.ttl``; its pages are followed).
    lake, index
        Where to index; default: the configured lake's index.
    domain
        Domain to file the harvested collections under when they do not say
        (``eosc:domain``): ``ocean``, ``atmosphere``, ``land``, ``solid-earth``.

    Returns
    -------
    HarvestReport
        ``report.error`` says why a source could not be read; the index is untouched then.
    """
    index = index or CatalogIndex.of_lake(lake)
    report = HarvestReport(source=source)
    try:
        report.kind, collections = _read_source(source)
    except Exception as error:  # noqa: BLE001  (network, JSON, YAML, STAC: report any of them)
        report.error = f"{type(error).__name__}: {error}"
        return report

    name = source_name(source)
    known = {c.id: c.fingerprint for c in index.collections(name)}
    for collection, items in collections:
        if domain and "eosc:domain" not in collection:
            collection["eosc:domain"] = domain
        collection["links"] = [
            link for link in collection.get("links", []) if link.get("rel") not in _STRUCTURAL_LINKS
        ]
        digest = _fingerprint(collection, items)
        if known.get(collection["id"]) == digest:
            report.unchanged.append(collection["id"])
            continue
        try:
            index.put(name, collection, items, digest)
        except CatalogError as error:
            report.skipped[collection["id"]] = str(error)
            continue
        (report.updated if collection["id"] in known else report.added).append(collection["id"])
        report.items += len(items)
    report.removed = sorted(set(known) - {c["id"] for c, _ in collections})
    index.drop(name, report.removed)
    return report


def source_name(source: str) -> str:
    """A stable, readable name of a source for the index (its files live under it)."""
    readable = re.sub(r"[^A-Za-z0-9]+", "-", source.split("://")[-1]).strip("-")[-48:]
    return f"{readable}-{hashlib.sha256(source.encode()).hexdigest()[:8]}"


def _read_source(source: str) -> tuple[str, list[Harvested]]:
    if source.endswith((".yaml", ".yml")):
        return "intake", list(_intake_collections(source))
    from .dcat_read import is_dcat_source, read_dcat, serves_rdf

    if is_dcat_source(source) or source.startswith(("http://", "https://")) and serves_rdf(source):
        return "dcat", read_dcat(source)
    if source.startswith(("http://", "https://")):
        # Imported here: pystac-client pulls in jsonschema's format checkers, over a second of
        # start-up that every `import eosc_pangeo` and CLI call would otherwise pay.
        import pystac_client

        client = pystac_client.Client.open(source)
        if client.conforms_to(pystac_client.ConformanceClasses.ITEM_SEARCH):
            return "stac-api", list(_api_collections(client))
    return "stac-static", list(_static_collections(source))


def _api_collections(client) -> Iterator[Harvested]:
    for collection in client.get_collections():
        items = client.search(collections=[collection.id], limit=1000).items_as_dicts()
        yield collection.to_dict(transform_hrefs=False), list(items)


def _static_collections(source: str) -> Iterator[Harvested]:
    catalog = pystac.read_file(source)
    if not isinstance(catalog, pystac.Catalog):
        raise CatalogError(f"{source} is a STAC {type(catalog).__name__}, not a catalog")
    catalog.make_all_asset_hrefs_absolute()
    for collection in catalog.get_all_collections():
        items = [item.to_dict(include_self_link=False) for item in collection.get_items()]
        yield collection.to_dict(include_self_link=False), items


def _intake_collections(source: str) -> Iterator[Harvested]:
    """One STAC Collection (without Items) per data source of an Intake catalog, nested ones
    included. Entries are described, never opened: harvesting reads no data."""
    import intake

    def walk(catalog, prefix: str) -> Iterator[Harvested]:
        for name, entry in catalog._entries.items():
            described = entry.describe()
            if described["container"] == "catalog":
                yield from walk(catalog[name], f"{prefix}{name}.")
            else:
                yield _intake_collection(f"{prefix}{name}", described), []

    yield from walk(intake.open_catalog(source), "")


def _intake_collection(entry_id: str, described: dict[str, Any]) -> dict[str, Any]:
    """A STAC Collection from an Intake entry; extent, domain and CF variables come from its
    metadata when it has them (as the catalogs this platform writes do)."""
    metadata = described.get("metadata") or {}
    bbox = metadata.get("bbox") or [-180.0, -90.0, 180.0, 90.0]
    time = metadata.get("time") or [None, None]
    collection = pystac.Collection(
        id=entry_id,
        description=described.get("description") or entry_id,
        extent=pystac.Extent(
            pystac.SpatialExtent([bbox]),
            pystac.TemporalExtent([[pystac.utils.str_to_datetime(t) if t else None for t in time]]),
        ),
        extra_fields={
            "eosc:intake": {"driver": described["driver"][0], "args": described.get("args", {})}
        },
    ).to_dict(include_self_link=False)
    collection["cf:parameter"] = [
        {"name": v["standard_name"], "unit": v.get("units")}
        for v in (metadata.get("variables") or {}).values()
        if v.get("standard_name")
    ]
    if metadata.get("domain"):
        collection["eosc:domain"] = metadata["domain"]
    urlpath = described.get("args", {}).get("urlpath")
    collection["assets"] = {
        f"data-{position}": {"href": href, "roles": ["data"]}
        for position, href in enumerate([urlpath] if isinstance(urlpath, str) else urlpath or [])
    }
    return collection


def _fingerprint(collection: dict[str, Any], items: list[dict[str, Any]]) -> str:
    content = json.dumps([collection, items], sort_keys=True, default=str).encode()
    return hashlib.sha256(content).hexdigest()
