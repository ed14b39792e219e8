"""The meta-catalogue index: every Collection and Item as stac-geoparquet, queried with DuckDB.

Layout under the index location (``<lake>/_catalog/index`` for the lake's own index)::

    collections.parquet                 one row per Collection: the full STAC JSON, the columns
                                        search filters on, the source it came from, a fingerprint
    items/<source>/<collection>.parquet the Collection's Items in stac-geoparquet (GeoParquet 1.1
                                        with the bbox covering column), the Collection itself in
                                        the file metadata as the stac-geoparquet spec asks

Each source (``lake`` for the lake's own collections, a slug of the URL for a harvested
catalogue) owns its files. Updating a collection writes its Items file first and then the
collections table, each atomically: an interrupted update leaves the old fingerprint in place,
so the next run redoes it, and readers never see a half-written file. Items files that no
collection row names are never read. One writer at a time is assumed (build or harvest).

DuckDB reads the Parquet files (no database server, no extension downloads) into one Arrow
table held in memory (:class:`ItemArrays`), reloaded when the collections table changes.
Searches compare NumPy arrays of its columns: bbox filters the ``bbox`` struct (a stored box
crossing the antimeridian keeps STAC's west > east, so xmin > xmax), time filters
``start_datetime`` and ``end_datetime``, which every indexed Item carries. An ``intersects``
geometry narrows the Items by its bounding box, then shapely tests the exact intersection on
those candidates (a point footprint on its box's coordinates, without decoding its WKB).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import tempfile
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely
import stac_geoparquet.arrow
from shapely.geometry.base import BaseGeometry

from ..geometry import boxes_overlap
from ..lake.storage import Lake, atomic_write
from .errors import CatalogError, UnknownCollection

CATALOG_DIR = "_catalog"
COLLECTIONS_FILE = "collections.parquet"
LAKE_SOURCE = "lake"
ROW_GROUP_ROWS = 8192

COLLECTION_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("fingerprint", pa.string()),
        ("domain", pa.string()),
        ("title", pa.string()),
        ("xmin", pa.float64()),
        ("ymin", pa.float64()),
        ("xmax", pa.float64()),
        ("ymax", pa.float64()),
        ("start_datetime", pa.timestamp("us", tz="UTC")),
        ("end_datetime", pa.timestamp("us", tz="UTC")),
        ("item_count", pa.int64()),
        ("items_file", pa.string()),
        ("stac", pa.string()),
    ]
)


@dataclass(frozen=True)
class IndexedCollection:
    """One row of the collections table: a STAC Collection and where it came from."""

    id: str
    source: str
    fingerprint: str
    item_count: int
    items_file: str | None
    stac: dict[str, Any] = field(repr=False)

    @property
    def domain(self) -> str | None:
        return self.stac.get("eosc:domain")

    @functools.cached_property
    def extent(self) -> Extent:
        """Its extent, parsed once: collection search compares it at every request."""
        return collection_extent(self.stac)

    @functools.cached_property
    def json_without_links(self) -> bytes:
        """Its STAC JSON without links, serialised once: answers splice in the links of their
        own base URL."""
        return orjson.dumps({k: v for k, v in self.stac.items() if k != "links"})


class Extent(NamedTuple):
    """A Collection's (first) spatial and temporal extent; open ends of its period are None."""

    bbox: tuple[float, float, float, float]
    start: datetime | None
    end: datetime | None


def collection_extent(collection: dict[str, Any]) -> Extent:
    """The extent of a STAC Collection; the whole globe and all time where it gives none.

    A 3D box (6 numbers) loses its heights.
    """
    extent = collection.get("extent", {})
    bbox = (extent.get("spatial", {}).get("bbox") or [[-180, -90, 180, 90]])[0]
    interval = (extent.get("temporal", {}).get("interval") or [[None, None]])[0]
    west, south, east, north = (bbox[0], bbox[1], bbox[3], bbox[4]) if len(bbox) == 6 else bbox
    return Extent((west, south, east, north), _parse_time(interval[0]), _parse_time(interval[1]))


@dataclass(frozen=True)
class ItemQuery:
    """An Item search, as the STAC API defines it.

    ``bbox`` is (west, south, east, north), west > east crossing the antimeridian;
    ``intersects`` a geometry in longitude and latitude the Items' footprints must intersect;
    ``start`` and ``end`` are aware datetimes (either may be None for an open interval).
    """

    collections: Sequence[str] | None = None
    ids: Sequence[str] | None = None
    bbox: tuple[float, float, float, float] | None = None
    intersects: BaseGeometry | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = 10
    offset: int = 0


class CatalogIndex:
    """Read and update a meta-catalogue index.

    Parameters
    ----------
    url
        fsspec URL of the index folder.
    storage_options
        fsspec options to reach it.
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        lake = Lake(url.rstrip("/"), dict(storage_options or {}))
        self.url = lake.url
        self.fs = lake.fs
        self.root = lake.root
        self._connection = duckdb.connect()
        if not lake.is_local:
            # DuckDB's own S3 support is an extension it downloads at run time: go through fsspec.
            self._connection.register_filesystem(self.fs)
        self._lock = threading.RLock()
        self._loaded_items: ItemArrays | None = None
        self._serialising: threading.Thread | None = None
        self._serve_json = False
        self._loaded_version: tuple | None = None
        self._collections_version: tuple | None = None
        self._collections: list[IndexedCollection] = []

    @classmethod
    def of_lake(cls, lake: str | Lake | None = None) -> CatalogIndex:
        """The index that ``eosc-pangeo catalog build`` writes under the lake."""
        lake = Lake.from_url(lake)
        return cls(lake.uri(CATALOG_DIR, "index"), lake.storage_options)

    # --- reading ---------------------------------------------------------------------------

    def collections(self, source: str | None = None) -> list[IndexedCollection]:
        """Every indexed Collection (of one source if given), sorted by id."""
        return [c for c in self._every_collection() if source is None or c.source == source]

    def _every_collection(self) -> list[IndexedCollection]:
        """The collections table as it is now, read again only when it changed."""
        version = self._version()
        with self._lock:
            if version is None or version != self._collections_version:
                self._collections = sorted(
                    (
                        IndexedCollection(
                            r["id"],
                            r["source"],
                            r["fingerprint"],
                            r["item_count"],
                            r["items_file"],
                            json.loads(r["stac"]),
                        )
                        for r in self._collection_table().to_pylist()
                    ),
                    key=lambda c: c.id,
                )
                self._collections_version = version
            return self._collections

    def collection(self, collection_id: str) -> IndexedCollection:
        """One Collection by id.

        Raises
        ------
        UnknownCollection
            If no source holds it.
        """
        for collection in self.collections():
            if collection.id == collection_id:
                return collection
        raise UnknownCollection(f"no collection {collection_id!r} in the catalogue")

    def search_items(self, query: ItemQuery) -> tuple[list[dict[str, Any]], int]:
        """Items matching ``query``, newest first, and how many match in all.

        Raises
        ------
        UnknownCollection
            If ``query.collections`` names a collection the index does not hold.
        """
        self._check_known(query.collections)
        items = self._items()
        if items is None:
            return [], 0
        rows = items.matching(query)
        return items.stac(rows[query.offset : query.offset + query.limit]), len(rows)

    def load(self) -> None:
        """Load the index into memory now, every Item converted to JSON, rather than at the
        first search; when the index changes later, its Items are converted in a thread.

        Servers call it before they answer: a page of Items is then sent as stored JSON rather
        than rebuilt from the columns (about 60 microseconds per Item, most of a search's time;
        a minute of CPU per million Items up front).
        """
        self._serve_json = True
        items = self._items()
        if items is None:
            return
        if self._serialising is None:  # loaded already, by a search
            items.serialise_all()
        else:
            self._serialising.join()

    def search_serialised(self, query: ItemQuery) -> tuple[list[SerialisedItem], int]:
        """:meth:`search_items` with the Items as JSON, for answers that are JSON themselves."""
        self._check_known(query.collections)
        items = self._items()
        if items is None:
            return [], 0
        rows = items.matching(query)
        return items.serialised(rows[query.offset : query.offset + query.limit]), len(rows)

    def count_items(self, query: ItemQuery) -> dict[str, int]:
        """How many Items of each collection match ``query`` (collections with none left out)."""
        self._check_known(query.collections)
        items = self._items()
        return {} if items is None else items.count_by_collection(items.matching(query))

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for each query: the API server queries from several threads."""
        with self._lock:
            cursor = self._connection.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def _items(self) -> ItemArrays | None:
        """Every Item of the index as it is now, in memory (None if it holds none).

        Reloaded when the collections table changes, which every update of the index rewrites
        last.
        """
        version = self._version()
        with self._lock:
            if version != self._loaded_version:
                files = [self._full(c.items_file) for c in self.collections() if c.items_file]
                table = None
                if files:
                    with self._cursor() as cursor:
                        # DuckDB reads the files as one table, their columns united by name.
                        table = cursor.sql(
                            f"SELECT * FROM read_parquet({_sql_list(files)}, union_by_name = true)"
                        ).to_arrow_table()
                self._loaded_items = None if table is None else ItemArrays(table)
                self._loaded_version = version
                if self._loaded_items is not None and self._serve_json:
                    # A server: have the new Items ready as JSON, as load() had the old ones.
                    self._serialising = threading.Thread(
                        target=self._loaded_items.serialise_all,
                        daemon=True,
                        name="eosc-pangeo-index-json",
                    )
                    self._serialising.start()
            return self._loaded_items

    def _version(self) -> tuple | None:
        """What tells one state of the collections table from the next (None: there is none).

        Every update replaces the file (``atomic_write``): on disk it gets a new inode.
        """
        try:
            info = self.fs.info(self._path(COLLECTIONS_FILE))
        except FileNotFoundError:
            return None
        return (
            info.get("mtime") or info.get("LastModified"),
            info.get("ETag"),
            info.get("ino"),
            info["size"],
        )

    def _check_known(self, collections: Sequence[str] | None) -> None:
        if not collections:
            return
        known = {c.id for c in self.collections()}
        unknown = [c for c in collections or [] if c not in known]
        if unknown:
            raise UnknownCollection(
                f"no collection {', '.join(map(repr, unknown))} in the "
                f"catalogue (known: {', '.join(sorted(known)) or 'none'})"
            )

    def _collection_table(self) -> pa.Table:
        try:
            return pq.read_table(
                self._path(COLLECTIONS_FILE), filesystem=self.fs, schema=COLLECTION_SCHEMA
            )
        except FileNotFoundError:
            return COLLECTION_SCHEMA.empty_table()

    # --- writing ---------------------------------------------------------------------------

    def put(
        self,
        source: str,
        collection: dict[str, Any],
        items: Iterable[dict[str, Any]],
        fingerprint: str,
    ) -> None:
        """Index (or re-index) one Collection and all its Items, replacing what ``source`` had.

        Raises
        ------
        CatalogError
            If another source already holds a collection of the same id, or if the Items do not
            fit in one table with the rest of the index; nothing is changed then.
        """
        others = [c for c in self.collections() if c.id == collection["id"] and c.source != source]
        if others:
            raise CatalogError(
                f"collection {collection['id']!r} is already indexed from "
                f"{others[0].source!r}; ids must be unique across sources"
            )
        items = [_indexable(item, collection["id"]) for item in items]
        items_file = None
        if items:
            items_file = f"items/{_slug(source)}/{_slug(collection['id'])}.parquet"
            self._write_items(items_file, collection, items)
        row = _collection_row(source, collection, fingerprint, len(items), items_file)
        self._replace_rows(lambda r: (r["source"], r["id"]) == (source, collection["id"]), [row])

    def drop(self, source: str, collection_ids: Iterable[str]) -> None:
        """Remove collections of ``source`` (and their Items) from the index."""
        doomed = set(collection_ids)
        if not doomed:
            return
        files = [c.items_file for c in self.collections(source) if c.id in doomed]
        self._replace_rows(lambda r: r["source"] == source and r["id"] in doomed, [])
        for items_file in filter(None, files):
            self.fs.rm(self._path(items_file))

    def _write_items(self, items_file: str, collection: dict, items: list[dict]) -> None:
        table = stac_geoparquet.arrow.parse_stac_items_to_arrow(items).read_all()
        # Sorted by time in small row groups: DuckDB skips the groups outside a queried period
        # and a page of results reads only the groups that hold it.
        table = table.sort_by([("start_datetime", "descending"), ("id", "ascending")])
        table = pa.Table.from_batches(table.to_batches(max_chunksize=ROW_GROUP_ROWS))
        self._check_fits(items_file, table)
        with tempfile.TemporaryDirectory() as scratch:  # to_parquet writes to paths only
            local = f"{scratch}/items.parquet"
            stac_geoparquet.arrow.to_parquet(
                table, local, collections={collection["id"]: collection}
            )
            atomic_write(self.fs, self._path(items_file), Path(local).read_bytes())

    def _check_fits(self, items_file: str, arriving: pa.Table) -> None:
        """Refuse Items whose columns clash with the index's (e.g. a field that is a number in one
        collection and a string in another), before they are written: queries read all files as
        one table, so one bad file would break every search."""
        existing = [
            self._full(c.items_file)
            for c in self.collections()
            if c.items_file and c.items_file != items_file
        ]
        union = "SELECT * FROM arriving"
        if existing:
            union = (
                f"SELECT * FROM read_parquet({_sql_list(existing)}, union_by_name = true)"
                " UNION ALL BY NAME SELECT * FROM arriving"
            )
        with self._cursor() as cursor:
            cursor.register("arriving", arriving)
            try:
                cursor.execute(f"DESCRIBE {union}").fetchall()
            except duckdb.Error as error:
                raise CatalogError(f"Items do not fit the index: {error}") from None

    def _replace_rows(self, is_replaced, rows: list[dict[str, Any]]) -> None:
        kept = [r for r in self._collection_table().to_pylist() if not is_replaced(r)]
        table = pa.Table.from_pylist(
            sorted(kept + rows, key=lambda r: (r["source"], r["id"])), schema=COLLECTION_SCHEMA
        )
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        atomic_write(self.fs, self._path(COLLECTIONS_FILE), buffer.getvalue())

    def _path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def _full(self, relative: str) -> str:
        """The path DuckDB reads: plain on disk, with the protocol through fsspec."""
        path = self._path(relative)
        return path if self._connection_is_local else self.fs.unstrip_protocol(path)

    @property
    def _connection_is_local(self) -> bool:
        return "file" in self.fs.protocol or "local" in self.fs.protocol


# --- helpers --------------------------------------------------------------------------------


class SerialisedItem(NamedTuple):
    """An Item as JSON: ``body`` is the object without its links, ``links`` their array."""

    collection: str
    id: str
    body: bytes
    links: bytes


class ItemArrays:
    """Every Item of the index in memory, sorted as searches return them (latest start first,
    then id), with the columns searches filter on as NumPy arrays.

    A search is a few vectorised comparisons over these arrays: no query to plan, no sort (rows
    are sorted once, when the index is loaded) and the number of matches is the length of the
    result. The rows starting before a query's end form one run of this order, found by binary
    search; with the longest duration of any Item, so do those ending after its start: a
    time-bounded search compares only the rows of its period. Only the page returned is
    converted to STAC dicts.

    Written here rather than queried with DuckDB: at a million Items, planning and running
    ``SELECT ... ORDER BY ... LIMIT`` plus a ``count(*)`` took tens of milliseconds per
    search, these comparisons take about one.

    Missing values never match a filter, as SQL's NULL: a missing bbox is NaN, a missing start
    or end lies beyond every query.
    """

    def __init__(self, table: pa.Table) -> None:
        self.table = table.sort_by(
            [("start_datetime", "descending", "at_end"), ("id", "ascending", "at_end")]
        ).combine_chunks()
        boxes = self.table.column("bbox") if "bbox" in self.table.column_names else None
        self.west, self.south, self.east, self.north = (
            _floats(boxes, side, len(self.table)) for side in ("xmin", "ymin", "xmax", "ymax")
        )
        self.start = _microseconds(self.table.column("start_datetime"), _LATEST)
        self.end = _microseconds(self.table.column("end_datetime"), _EARLIEST)
        # Ascending, so that np.searchsorted applies; rows without a start come last.
        self._negated_start = -self.start[self.start != _LATEST]
        durations = (self.end - self.start)[(self.start != _LATEST) & (self.end != _EARLIEST)]
        self._longest = int(durations.max(initial=0))
        collections = pc.dictionary_encode(self.table.column("collection")).combine_chunks()
        self.collection_codes = collections.indices.to_numpy(zero_copy_only=False)
        self.collection_names: list[str] = collections.dictionary.to_pylist()
        self._code_of = {name: code for code, name in enumerate(self.collection_names)}
        self._rows_by_id: dict[str, list[int]] | None = None
        self._serialised: list[SerialisedItem | None] = [None] * len(self.start)

    def matching(self, query: ItemQuery) -> np.ndarray:
        """The rows matching ``query`` (not its page), in search order."""
        rows = self._candidates(query)
        mask = np.ones(
            len(rows) if isinstance(rows, np.ndarray) else rows.stop - rows.start, dtype=bool
        )
        if query.collections is not None:
            # A lookup table of the few collection codes: np.isin sorts, 50x slower.
            wanted = np.zeros(len(self.collection_names), dtype=bool)
            wanted[[self._code_of[c] for c in query.collections if c in self._code_of]] = True
            if not wanted.all():
                mask &= wanted[self.collection_codes[rows]]
        if query.start is not None:
            mask &= self.end[rows] >= _to_microseconds(query.start)
        if query.end is not None:
            mask &= self.start[rows] <= _to_microseconds(query.end)
        # The bounds of a shapely geometry never cross the antimeridian (a GeoJSON geometry
        # crossing it is split there), but the Items' boxes may.
        for box in filter(None, (query.bbox, query.intersects and query.intersects.bounds)):
            mask &= self._overlapping(rows, box)
        found = np.flatnonzero(mask)
        found = rows[found] if isinstance(rows, np.ndarray) else found + rows.start
        if query.intersects is not None:
            # Only the boxes' candidates are tested exactly.
            found = found[self._intersecting(found, query.intersects)]
        return found

    def _intersecting(self, rows: np.ndarray, geometry: BaseGeometry) -> np.ndarray:
        """Whether the footprint of each of ``rows`` intersects ``geometry``.

        An Item whose box is a point has that point as footprint (STAC's bbox bounds the
        geometry): it is tested on the box's coordinates, and only the other footprints are
        decoded from WKB, most of the cost of an ``intersects`` search over point Items.
        """
        shapely.prepare(geometry)
        west, south = self.west[rows], self.south[rows]
        points = (west == self.east[rows]) & (south == self.north[rows])
        hits = np.zeros(len(rows), dtype=bool)
        hits[points] = shapely.intersects_xy(geometry, west[points], south[points])
        if not points.all():
            footprints = self.table.column("geometry").take(rows[~points])
            hits[~points] = shapely.intersects(
                shapely.from_wkb(footprints.to_numpy(zero_copy_only=False)), geometry
            )
        return hits

    def stac(self, rows: np.ndarray) -> list[dict[str, Any]]:
        """The Items of ``rows`` as STAC dicts."""
        page = self.table.take(pa.array(rows, pa.int64()))
        return [
            {"assets": {}, **_without_nulls(item)}  # files of asset-less Items lack it
            for item in stac_geoparquet.arrow.stac_table_to_items(page)
        ]

    def serialised(self, rows: np.ndarray) -> list[SerialisedItem]:
        """The Items of ``rows`` as JSON, converted now unless :meth:`serialise_all` did."""
        missing = [row for row in rows.tolist() if self._serialised[row] is None]
        if missing:
            self._serialise(missing)
        return [self._serialised[row] for row in rows.tolist()]

    def serialise_all(self, block: int = 4096) -> None:
        """Convert every Item to JSON ahead of the searches that will return it."""
        for first in range(0, len(self._serialised), block):
            self._serialise(
                [
                    row
                    for row in range(first, min(first + block, len(self.start)))
                    if self._serialised[row] is None
                ]
            )

    def _serialise(self, rows: list[int]) -> None:
        for row, item in zip(rows, self.stac(np.array(rows, dtype=np.int64)), strict=True):
            links = item.pop("links", [])
            self._serialised[row] = SerialisedItem(
                item["collection"],
                item["id"],
                orjson.dumps(item, option=orjson.OPT_SERIALIZE_NUMPY),
                orjson.dumps(links),
            )

    def count_by_collection(self, rows: np.ndarray) -> dict[str, int]:
        """How many of ``rows`` each collection has (collections with none left out)."""
        counts = np.bincount(self.collection_codes[rows], minlength=len(self.collection_names))
        return {
            name: int(count)
            for name, count in zip(self.collection_names, counts, strict=True)
            if count
        }

    def _candidates(self, query: ItemQuery) -> slice | np.ndarray:
        """The rows that can match ``query``: those of its ids, else those of its period."""
        if query.ids is not None:
            if self._rows_by_id is None:
                rows_by_id: dict[str, list[int]] = {}
                for row, item_id in enumerate(self.table.column("id").to_pylist()):
                    rows_by_id.setdefault(item_id, []).append(row)
                self._rows_by_id = rows_by_id
            return np.array(
                sorted({row for item_id in query.ids for row in self._rows_by_id.get(item_id, ())}),
                dtype=np.int64,
            )
        if query.end is None:
            return slice(0, len(self.start))
        first = np.searchsorted(self._negated_start, -_to_microseconds(query.end), "left")
        last = (
            len(self._negated_start)
            if query.start is None
            else np.searchsorted(
                self._negated_start, self._longest - _to_microseconds(query.start), "right"
            )
        )
        return slice(int(first), int(max(first, last)))

    def _overlapping(self, rows: slice | np.ndarray, box: Sequence[float]) -> np.ndarray:
        """Whether the box of each of ``rows`` overlaps ``box`` (west, south, east, north);
        either may cross the antimeridian."""
        return boxes_overlap(
            (self.west[rows], self.south[rows], self.east[rows], self.north[rows]), box
        )


_LATEST, _EARLIEST = np.iinfo(np.int64).max, np.iinfo(np.int64).min
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _floats(boxes: pa.ChunkedArray | None, side: str, rows: int) -> np.ndarray:
    """One side of the Items' boxes, NaN where an Item has none."""
    if boxes is None:
        return np.full(rows, np.nan)
    values = pc.struct_field(boxes, side).cast(pa.float64())
    return pc.fill_null(values, np.nan).to_numpy(zero_copy_only=False)


def _microseconds(times: pa.ChunkedArray, missing: int) -> np.ndarray:
    """Aware timestamps as integer microseconds since 1970, ``missing`` where absent."""
    values = times.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return pc.fill_null(values, missing).to_numpy(zero_copy_only=False)


def _to_microseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _indexable(item: dict[str, Any], collection_id: str) -> dict[str, Any]:
    """The Item with what the index filters on always present: its collection and a time range."""
    properties = dict(item["properties"])
    properties.setdefault("start_datetime", properties.get("datetime"))
    properties.setdefault("end_datetime", properties.get("datetime"))
    return {
        **item,
        "collection": item.get("collection") or collection_id,
        "properties": properties,
        "links": item.get("links", []),
    }


def _collection_row(
    source: str, collection: dict, fingerprint: str, item_count: int, items_file: str | None
) -> dict[str, Any]:
    (west, south, east, north), start, end = collection_extent(collection)
    return {
        "id": collection["id"],
        "source": source,
        "fingerprint": fingerprint,
        "domain": collection.get("eosc:domain"),
        "title": collection.get("title"),
        "xmin": west,
        "ymin": south,
        "xmax": east,
        "ymax": north,
        "start_datetime": start,
        "end_datetime": end,
        "item_count": item_count,
        "items_file": items_file,
        "stac": json.dumps(collection),
    }


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _without_nulls(value: Any, key: str | None = None) -> Any:
    """Drop the null fields that reading several files as one table adds (the union of their
    columns); ``datetime`` keeps its null, which STAC requires for Items with a time range."""
    if isinstance(value, dict):
        return {
            k: _without_nulls(v, k) for k, v in value.items() if v is not None or k == "datetime"
        }
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _slug(name: str) -> str:
    return urllib.parse.quote(name, safe="-_.")


def _sql_list(paths: Iterable[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"
