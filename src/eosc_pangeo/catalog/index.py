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

DuckDB reads the Parquet files directly (no database server, no extension downloads): bbox
filters work on the ``bbox`` struct columns (a stored box crossing the antimeridian keeps STAC's
west > east, so xmin > xmax) and time filters on ``start_datetime`` and ``end_datetime``, which
every indexed Item carries. An ``intersects`` geometry narrows the Items by its bounding box in
DuckDB, then shapely tests the exact intersection on those candidates.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
import stac_geoparquet.arrow
from shapely.geometry.base import BaseGeometry

from ..lake.storage import Lake, atomic_write
from .errors import CatalogError, UnknownCollection

CATALOG_DIR = "_catalog"
COLLECTIONS_FILE = "collections.parquet"
LAKE_SOURCE = "lake"
ROW_GROUP_ROWS = 8192

COLLECTION_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("source", pa.string()),
    ("fingerprint", pa.string()),
    ("domain", pa.string()),
    ("title", pa.string()),
    ("xmin", pa.float64()), ("ymin", pa.float64()), ("xmax", pa.float64()), ("ymax", pa.float64()),
    ("start_datetime", pa.timestamp("us", tz="UTC")),
    ("end_datetime", pa.timestamp("us", tz="UTC")),
    ("item_count", pa.int64()),
    ("items_file", pa.string()),
    ("stac", pa.string()),
])


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
        self._loaded_table: str | None = None
        self._loaded_version: tuple | None = None
        self._generation = 0

    @classmethod
    def of_lake(cls, lake: str | Lake | None = None) -> CatalogIndex:
        """The index that ``eosc-pangeo catalog build`` writes under the lake."""
        lake = Lake.from_url(lake)
        return cls(lake.uri(CATALOG_DIR, "index"), lake.storage_options)

    # --- reading ---------------------------------------------------------------------------

    def collections(self, source: str | None = None) -> list[IndexedCollection]:
        """Every indexed Collection (of one source if given), sorted by id."""
        rows = self._collection_table().to_pylist()
        return sorted(
            (IndexedCollection(r["id"], r["source"], r["fingerprint"], r["item_count"],
                               r["items_file"], json.loads(r["stac"]))
             for r in rows if source is None or r["source"] == source),
            key=lambda c: c.id,
        )

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
        table = self._items_table()
        if table is None:
            return [], 0
        where, params = _item_filters(query)
        order = "ORDER BY start_datetime DESC, id"
        with self._cursor() as cursor:
            if query.intersects is None:
                [(matched,)] = cursor.execute(f"SELECT count(*) FROM {table} WHERE {where}",
                                              params).fetchall()
                page = cursor.sql(f"SELECT * FROM {table} WHERE {where} {order} LIMIT ? OFFSET ?",
                                  params=[*params, query.limit, query.offset]).to_arrow_table()
            else:
                hits = [row for row, _ in _intersecting(cursor, table, where, params,
                                                        query.intersects, order)]
                matched = len(hits)
                page = cursor.sql(f"SELECT * FROM {table} WHERE list_contains(?, rowid) {order}",
                                  params=[hits[query.offset:query.offset + query.limit]],
                                  ).to_arrow_table()
        items = [{"assets": {}, **_without_nulls(item)}  # files of asset-less Items lack the column
                 for item in stac_geoparquet.arrow.stac_table_to_items(page)]
        return items, matched

    def count_items(self, query: ItemQuery) -> dict[str, int]:
        """How many Items of each collection match ``query`` (collections with none left out)."""
        self._check_known(query.collections)
        table = self._items_table()
        if table is None:
            return {}
        where, params = _item_filters(query)
        with self._cursor() as cursor:
            if query.intersects is not None:
                counts: dict[str, int] = {}
                for _, collection in _intersecting(cursor, table, where, params,
                                                   query.intersects, ""):
                    counts[collection] = counts.get(collection, 0) + 1
                return counts
            return dict(cursor.execute(
                f"SELECT collection, count(*) FROM {table} WHERE {where} GROUP BY collection",
                params).fetchall())

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for each query: the API server queries from several threads."""
        with self._lock:
            cursor = self._connection.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def _items_table(self) -> str | None:
        """The in-memory DuckDB table holding every Item of the index as it is now.

        Queries on a table in memory answer in a few milliseconds where reading the Parquet
        files each time takes tens. The table is reloaded when the collections table changes,
        which every update of the index rewrites last.
        """
        version = self._version()
        with self._lock:
            if version != self._loaded_version:
                files = [self._full(c.items_file) for c in self.collections() if c.items_file]
                self._generation += 1
                name = f"items_{self._generation}" if files else None
                if name:
                    self._connection.execute(
                        f"CREATE TABLE {name} AS SELECT * FROM "
                        f"read_parquet({_sql_list(files)}, union_by_name = true)")
                if self._loaded_table:
                    self._connection.execute(f"DROP TABLE {self._loaded_table}")
                self._loaded_table, self._loaded_version = name, version
            return self._loaded_table

    def _version(self) -> tuple | None:
        try:
            info = self.fs.info(self._path(COLLECTIONS_FILE))
        except FileNotFoundError:
            return None
        return info.get("mtime") or info.get("LastModified") or info.get("ETag"), info["size"]

    def _check_known(self, collections: Sequence[str] | None) -> None:
        known = {c.id for c in self.collections()}
        unknown = [c for c in collections or [] if c not in known]
        if unknown:
            raise UnknownCollection(f"no collection {', '.join(map(repr, unknown))} in the "
                                    f"catalogue (known: {', '.join(sorted(known)) or 'none'})")

    def _collection_table(self) -> pa.Table:
        try:
            return pq.read_table(self._path(COLLECTIONS_FILE), filesystem=self.fs,
                                 schema=COLLECTION_SCHEMA)
        except FileNotFoundError:
            return COLLECTION_SCHEMA.empty_table()

    # --- writing ---------------------------------------------------------------------------

    def put(self, source: str, collection: dict[str, Any], items: Iterable[dict[str, Any]],
            fingerprint: str) -> None:
        """Index (or re-index) one Collection and all its Items, replacing what ``source`` had.

        Raises
        ------
        CatalogError
            If another source already holds a collection of the same id, or if the Items do not
            fit in one table with the rest of the index; nothing is changed then.
        """
        others = [c for c in self.collections() if c.id == collection["id"] and c.source != source]
        if others:
            raise CatalogError(f"collection {collection['id']!r} is already indexed from "
                             f"{others[0].source!r}; ids must be unique across sources")
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
            stac_geoparquet.arrow.to_parquet(table, local,
                                             collections={collection["id"]: collection})
            atomic_write(self.fs, self._path(items_file), Path(local).read_bytes())

    def _check_fits(self, items_file: str, arriving: pa.Table) -> None:
        """Refuse Items whose columns clash with the index's (e.g. a field that is a number in one
        collection and a string in another), before they are written: queries read all files as
        one table, so one bad file would break every search."""
        existing = [self._full(c.items_file) for c in self.collections()
                    if c.items_file and c.items_file != items_file]
        union = "SELECT * FROM arriving"
        if existing:
            union = (f"SELECT * FROM read_parquet({_sql_list(existing)}, union_by_name = true)"
                     " UNION ALL BY NAME SELECT * FROM arriving")
        with self._cursor() as cursor:
            cursor.register("arriving", arriving)
            try:
                cursor.execute(f"DESCRIBE {union}").fetchall()
            except duckdb.Error as error:
                raise CatalogError(f"Items do not fit the index: {error}") from None

    def _replace_rows(self, is_replaced, rows: list[dict[str, Any]]) -> None:
        kept = [r for r in self._collection_table().to_pylist() if not is_replaced(r)]
        table = pa.Table.from_pylist(sorted(kept + rows, key=lambda r: (r["source"], r["id"])),
                                     schema=COLLECTION_SCHEMA)
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


def _item_filters(query: ItemQuery) -> tuple[str, list[Any]]:
    clauses, params = ["TRUE"], []
    if query.ids is not None:
        clauses.append("list_contains(?, id)")
        params.append(list(query.ids))
    if query.collections is not None:
        clauses.append("list_contains(?, collection)")
        params.append(list(query.collections))
    if query.bbox is not None:
        clause, box_params = _overlapping_bbox_sql(_ITEM_BBOX_COLUMNS, query.bbox)
        clauses.append(clause)
        params += box_params
    if query.intersects is not None:
        # Only a prefilter: DuckDB without the spatial extension compares bounding boxes, and
        # _intersecting tests the footprints themselves. The bounds of a shapely geometry never
        # cross (a GeoJSON geometry crossing the antimeridian is split at it), but the Items'
        # boxes may.
        clause, box_params = _overlapping_bbox_sql(_ITEM_BBOX_COLUMNS, query.intersects.bounds)
        clauses.append(clause)
        params += box_params
    if query.start is not None:
        clauses.append("end_datetime >= ?")
        params.append(query.start)
    if query.end is not None:
        clauses.append("start_datetime <= ?")
        params.append(query.end)
    return " AND ".join(clauses), params


#: The columns of an Item's bbox in stac-geoparquet: west, south, east, north.
_ITEM_BBOX_COLUMNS = ("bbox.xmin", "bbox.ymin", "bbox.xmax", "bbox.ymax")


def _overlapping_bbox_sql(columns: Sequence[str], box: Sequence[float]) -> tuple[str, list[Any]]:
    """A SQL condition true where the box stored in ``columns`` overlaps ``box``, and its
    parameters.

    Parameters
    ----------
    columns
        SQL names of the stored box's west, south, east and north (``xmin``, ``ymin``,
        ``xmax``, ``ymax``).
    box
        (west, south, east, north) of the query, in degrees.

    Notes
    -----
    Either box may cross the antimeridian: STAC, like GeoJSON, writes such a box with
    west > east, and it covers west..180 and -180..east. Comparing the stored xmin and xmax as an
    ordinary interval would miss every Item and Collection that crosses, so the longitudes are
    compared case by case: two boxes that do not cross overlap as intervals do; when exactly one
    crosses, the other must reach one of its two parts (east of its west, or west of its east);
    two crossing boxes always overlap, both holding the antimeridian.
    """
    xmin, ymin, xmax, ymax = columns
    west, south, east, north = box
    stored_crosses = f"{xmin} > {xmax}"
    if west <= east:
        longitudes = (f"CASE WHEN {stored_crosses} THEN {xmax} >= ? OR {xmin} <= ?"
                      f" ELSE {xmax} >= ? AND {xmin} <= ? END")
        longitude_params = [west, east, west, east]
    else:
        longitudes = f"CASE WHEN {stored_crosses} THEN TRUE ELSE {xmax} >= ? OR {xmin} <= ? END"
        longitude_params = [west, east]
    return (f"{ymax} >= ? AND {ymin} <= ? AND ({longitudes})",
            [south, north, *longitude_params])


def _intersecting(cursor: duckdb.DuckDBPyConnection, table: str, where: str, params: list[Any],
                  geometry: BaseGeometry, order: str) -> list[tuple[int, str]]:
    """The (row id, collection) of the Items matching ``where`` whose footprint intersects
    ``geometry``, in ``order``.

    Only row ids and footprints of the bounding-box candidates are read, so a page of the
    result costs one more query on row ids rather than loading every candidate Item (row ids,
    unlike Item ids, are unique across collections).
    """
    rows = cursor.execute(f"SELECT rowid, collection, geometry::BLOB FROM {table} "
                          f"WHERE {where} {order}", params).fetchall()
    if not rows:
        return []
    footprints = shapely.from_wkb([footprint for _, _, footprint in rows])
    hits = shapely.intersects(footprints, geometry)
    return [(row, collection) for (row, collection, _), hit in zip(rows, hits, strict=True) if hit]


def _indexable(item: dict[str, Any], collection_id: str) -> dict[str, Any]:
    """The Item with what the index filters on always present: its collection and a time range."""
    properties = dict(item["properties"])
    properties.setdefault("start_datetime", properties.get("datetime"))
    properties.setdefault("end_datetime", properties.get("datetime"))
    return {**item, "collection": item.get("collection") or collection_id,
            "properties": properties, "links": item.get("links", [])}


def _collection_row(source: str, collection: dict, fingerprint: str, item_count: int,
                    items_file: str | None) -> dict[str, Any]:
    extent = collection.get("extent", {})
    bbox = (extent.get("spatial", {}).get("bbox") or [[-180, -90, 180, 90]])[0]
    interval = (extent.get("temporal", {}).get("interval") or [[None, None]])[0]
    west, south, east, north = (bbox[0], bbox[1], bbox[3], bbox[4]) if len(bbox) == 6 else bbox
    return {
        "id": collection["id"], "source": source, "fingerprint": fingerprint,
        "domain": collection.get("eosc:domain"), "title": collection.get("title"),
        "xmin": west, "ymin": south, "xmax": east, "ymax": north,
        "start_datetime": _parse_time(interval[0]), "end_datetime": _parse_time(interval[1]),
        "item_count": item_count, "items_file": items_file, "stac": json.dumps(collection),
    }


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _without_nulls(value: Any, key: str | None = None) -> Any:
    """Drop the null fields that reading several files as one table adds (the union of their
    columns); ``datetime`` keeps its null, which STAC requires for Items with a time range."""
    if isinstance(value, dict):
        return {k: _without_nulls(v, k) for k, v in value.items()
                if v is not None or k == "datetime"}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _slug(name: str) -> str:
    return urllib.parse.quote(name, safe="-_.")


def _sql_list(paths: Iterable[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"
