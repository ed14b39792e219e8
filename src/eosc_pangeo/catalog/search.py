"""``eosc_pangeo.search``: find collections across domains by place, time, variable and words,
then open a hit in one line.

Hits are Collections (what a scientist opens), ranked by how well they answer the query: the
variables asked for (exact name, alias, or word of a CF standard name), free-text relevance and
how much of the requested box and period they cover. Each hit knows how many of its Items
(granules, platforms) match, and :meth:`Hit.open` returns the data for the queried box and
period only.

The index searched is the lake's own, an index folder, or a remote STAC API (``catalog=
"https://.../stac"`` or ``EOSC_PANGEO_CATALOG_URL``), filtered and ranked the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import get_settings
from ..geometry import longitude_fraction
from ..lake.kinds import kind_of
from ..lake.storage import Lake
from .index import (
    LAKE_SOURCE,
    CatalogError,
    CatalogIndex,
    Extent,
    ItemQuery,
    collection_extent,
)
from .query import BBox, Interval, check_limit, parse_bbox, parse_datetime
from .remote import StacApiCatalog, is_stac_api_url, naive_iso_interval, open_assets
from .vocabulary import match_variables, text_score


@dataclass(frozen=True)
class Hit:
    """One Collection that answers a search."""

    collection: dict[str, Any] = field(repr=False)
    score: float
    matched_items: int
    variables: list[str] = field(
        metadata={"doc": "The collection's variables that matched (all of them if none asked)."}
    )
    source: str
    bbox: BBox | None = field(repr=False, default=None)
    interval: Interval | None = field(repr=False, default=None)
    index: CatalogIndex | StacApiCatalog | None = field(repr=False, default=None, compare=False)
    lake: Lake | None = field(repr=False, default=None, compare=False)

    @property
    def id(self) -> str:
        return self.collection["id"]

    @property
    def title(self) -> str:
        return self.collection.get("title") or self.id

    @property
    def domain(self) -> str | None:
        return self.collection.get("eosc:domain")

    @property
    def kind(self) -> str:
        """``grid`` or ``insitu``."""
        return self.collection.get("eosc:kind") or (
            "insitu" if "table:columns" in self.collection else "grid"
        )

    def items(self, limit: int = 100) -> list[dict[str, Any]]:
        """The matching Items (granules, platforms) as STAC dicts, newest first."""
        items, _ = self.index.search_items(self._item_query(limit))
        return items

    def open(self):
        """The data of this hit for the searched box and period only.

        Returns
        -------
        xarray.Dataset or pandas.DataFrame
            A lazy, dask-backed Dataset for gridded collections; a DataFrame of the
            observations for in-situ collections. Only the matched variables are kept when
            the search asked for variables.

        Collections from a STAC API or a harvested catalogue open from their assets when
        these are Zarr stores with ``xarray:open_kwargs`` or Parquet tables, as
        ``eosc-pangeo catalog build`` describes the lake.

        Raises
        ------
        CatalogError
            For collections from elsewhere whose assets cannot be opened so: open them with
            the tools their catalogue documents.
        """
        if self.source != LAKE_SOURCE:
            data = open_assets(self.collection, self.bbox, self.interval, self.variables or None)
            if data is None:
                raise CatalogError(
                    f"{self.id} comes from {self.source}; its data is not in the lake "
                    "and none of its assets is a Zarr store with xarray:open_kwargs, a "
                    "Parquet table, a NetCDF file or an OPeNDAP endpoint; get it from "
                    f"{self._asset_hrefs() or 'its catalogue (it lists no asset)'}"
                )
            return data
        time = naive_iso_interval(self.interval)
        return kind_of(self.kind).read(
            self.lake, self.id, bbox=self.bbox, time=time, variables=self.variables or None
        )

    def _asset_hrefs(self) -> str:
        return ", ".join(a["href"] for a in self.collection.get("assets", {}).values())

    def _item_query(self, limit: int) -> ItemQuery:
        start, end = self.interval or (None, None)
        return ItemQuery(collections=[self.id], bbox=self.bbox, start=start, end=end, limit=limit)


class SearchResults(list[Hit]):
    """The hits of a search, best first; shows as a table in notebooks."""

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "collection": h.id,
                    "score": round(h.score, 2),
                    "domain": h.domain,
                    "kind": h.kind,
                    "title": h.title,
                    "variables": ", ".join(h.variables),
                    "matched_items": h.matched_items,
                    "source": h.source,
                }
                for h in self
            ]
        )

    def _repr_html_(self) -> str:
        return self.to_dataframe()._repr_html_()


def search(
    bbox: str | Sequence[float] | None = None,
    datetime: str | dt.datetime | Sequence[object] | None = None,
    variables: str | Sequence[str] | None = None,
    q: str | None = None,
    domain: str | Sequence[str] | None = None,
    collections: Sequence[str] | None = None,
    limit: int = 10,
    *,
    lake: str | Lake | None = None,
    catalog: str | CatalogIndex | None = None,
) -> SearchResults:
    """Find collections of the lake (and of harvested catalogues), or of a STAC API, across
    every domain.

    Parameters
    ----------
    bbox
        ``(west, south, east, north)`` in degrees; west > east crosses the antimeridian.
    datetime
        A STAC datetime or interval: ``"2020-01"``, ``"2020-01-01/2020-03-31"``,
        ``"../2020-06-30"``, or a ``(start, end)`` pair.
    variables
        Variables that must all be present: CF standard names (``sea_water_temperature``),
        variable names (``TEMP``), common aliases (``sst``, ``tas``) or words
        (``temperature``, ``salinity``).
    q
        Free text; terms are ORed, quoted phrases count as one term.
    domain
        ``ocean``, ``atmosphere``, ``land``, ``solid-earth`` (or several).
    collections
        Only these collection ids.
    limit
        Most hits returned.
    lake
        The lake whose index to search. With neither ``lake`` nor ``catalog``: the configured
        ``EOSC_PANGEO_CATALOG_URL`` if set, else ``EOSC_PANGEO_LAKE``.
    catalog
        Another index to search: an ``http(s)://`` URL of a STAC API (searched with
        pystac-client), the URL of an index folder, or a :class:`CatalogIndex`.

    Returns
    -------
    SearchResults
        Hits, best first; ``results[0].open()`` gives the data.

    Raises
    ------
    CatalogError
        For a bad query, or a STAC API that cannot be reached.

    Examples
    --------
    >>> hits = search(bbox=(-30, 30, 0, 60), datetime="2020-01", variables=["sst"])
    >>> ds = hits[0].open()
    """
    box = parse_bbox(bbox)
    interval = parse_datetime(datetime)
    check_limit(limit)
    wanted = [variables] if isinstance(variables, str) else list(variables or [])
    domains = {domain} if isinstance(domain, str) else set(domain or [])
    if lake is None and catalog is None:
        catalog = get_settings().catalog_url
    if is_stac_api_url(catalog):
        lake, index = None, StacApiCatalog(catalog)
        # Trust the API's own free-text search where it has one; text_score still ranks.
        text_searched = bool(q) and index.searches_collection_text
        listed = [(stac, catalog) for stac in index.collection_stacs(q)]
    else:
        lake = None if catalog is not None else Lake.from_url(lake)
        index = _index(lake, catalog)
        text_searched = False
        listed = [(c.stac, c.source) for c in index.collections()]

    candidates: list[tuple[dict[str, Any], str, float, list[str]]] = []
    for stac, source in listed:
        if collections is not None and stac["id"] not in collections:
            continue
        if domains and stac.get("eosc:domain") not in domains:
            continue
        variable_score, names = match_variables(wanted, stac) if wanted else (0.0, [])
        if wanted and not variable_score:
            continue
        relevance = text_score(q, stac) if q else 0.0
        if q and not relevance and not text_searched:
            continue
        candidates.append((stac, source, variable_score + relevance, names))
    if not candidates:
        return SearchResults()

    start, end = interval or (None, None)
    counts = index.count_items(
        ItemQuery(
            collections=[stac["id"] for stac, *_ in candidates], bbox=box, start=start, end=end
        )
    )
    in_extent = {
        stac["id"]: extent_overlap(collection_extent(stac), box, interval)
        for stac, *_ in candidates
    }
    # A collection without Items (a single store) matches when its extent overlaps the query.
    unmatched_in_extent = [i for i, overlap in in_extent.items() if overlap and not counts.get(i)]
    holding_items = (
        index.count_items(ItemQuery(collections=unmatched_in_extent)) if unmatched_in_extent else {}
    )
    hits = []
    for stac, source, score, names in candidates:
        matched = counts.get(stac["id"], 0)
        if (box or interval) and not (
            matched or (in_extent[stac["id"]] and stac["id"] not in holding_items)
        ):
            continue
        hits.append(
            Hit(
                collection=stac,
                score=score + in_extent[stac["id"]],
                matched_items=matched,
                variables=names,
                source=source,
                bbox=box,
                interval=interval,
                index=index,
                lake=lake,
            )
        )
    hits.sort(key=lambda h: (-h.score, h.id))
    return SearchResults(hits[:limit])


def _index(lake: Lake | None, catalog: str | CatalogIndex | None) -> CatalogIndex:
    if isinstance(catalog, CatalogIndex):
        return catalog
    if catalog is not None:
        return CatalogIndex(catalog)
    from .build import built_index  # pystac and intake: only for the lake's own index

    return built_index(lake)


def extent_overlap(extent: Extent, box: BBox | None, interval: Interval | None) -> float:
    """How much of the requested box and period a collection's extent covers, 0 to 2."""
    score = 0.0
    if box is not None:
        west, south, east, north = extent.bbox
        score += longitude_fraction(box[0], box[2], west, east) * _fraction(
            box[1], box[3], south, north
        )
    if interval is not None and interval[0] and interval[1]:
        wanted_start, wanted_end = interval[0].timestamp(), interval[1].timestamp()
        lo = wanted_start if extent.start is None else max(wanted_start, extent.start.timestamp())
        hi = wanted_end if extent.end is None else min(wanted_end, extent.end.timestamp())
        span = wanted_end - wanted_start
        score += 1.0 if span <= 0 else max(0.0, hi - lo) / span
    return score


def _fraction(lo: float, hi: float, extent_lo: float, extent_hi: float) -> float:
    if hi <= lo:
        return 1.0 if extent_lo <= lo <= extent_hi else 0.0
    return max(0.0, min(hi, extent_hi) - max(lo, extent_lo)) / (hi - lo)
