"""Mirror the meta-catalogue index into pgstac, the PostgreSQL schema large STAC deployments run.

The embedded index (stac-geoparquet read by DuckDB) needs no server; past some hundred million
Items, or for many concurrent users, the same Collections and Items can be served by
stac-fastapi-pgstac from a PostgreSQL + PostGIS database that ``pypgstac migrate`` prepared.
This module makes the database hold exactly what the index holds: it upserts every Collection
and Item with pypgstac's Loader, then deletes, with pgstac's ``delete_item`` and
``delete_collection``, the Items and Collections the index no longer has (a lake collection
deleted, a harvested source that dropped Items). Running it again after
``eosc-pangeo catalog build`` or ``harvest`` therefore updates what changed, adds what is new and
removes what is gone; Items that did not change are not rewritten.

The whole load is one database transaction: if anything fails midway, pgstac keeps what it held
before, and a new run starts from there. Until the commit, other writers of the loaded
collections wait, and so do readers in some cases: from the moment the load creates a
collection's partition (a collection new to pgstac) or moves its time bounds (Items added or
removed at either end of its time range), every Item search waits for the commit, as it does in
the final moments when removed collections have their partitions dropped. A reload that adds no
collection and changes no time range does not hold up searches. Collections new to pgstac are
loaded last, to shorten the wait they cause.

Needs the ``pgstac`` extra: ``pip install "eosc-pangeo[pgstac]"``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..lake.storage import Lake
from .index import CatalogError, CatalogIndex, ItemQuery

if TYPE_CHECKING:
    import psycopg

#: Items read from the index, and handed to the Loader, at a time: bounded memory whatever the
#: size of a collection.
PAGE_ITEMS = 10_000

#: Session-private table of the (collection, id) pairs of the index, filled page by page as the
#: Items are loaded: what tells the Items pgstac must delete, without holding every id in memory.
INDEX_ITEM_IDS = "eosc_pangeo_index_item_ids"


def load_into_pgstac(index_or_lake: CatalogIndex | str | Lake | None, dsn: str) -> int:
    """Make a pgstac database hold exactly the Collections and Items of the index.

    Collections and Items of the index are upserted (unchanged Items are left alone); Items of
    indexed collections that the index no longer has are deleted, and so are collections it no
    longer has, with their Items. All of it happens in one transaction, committed at the end.

    Parameters
    ----------
    index_or_lake
        The index, or the lake whose index ``eosc-pangeo catalog build`` wrote (None: the
        ``EOSC_PANGEO_LAKE`` lake).
    dsn
        libpq connection string of a database migrated with ``pypgstac migrate``, e.g.
        ``postgresql://user:pass@host:5432/stac``.

    Returns
    -------
    int
        How many Items pgstac holds after the load: every Item of the index, whether it was new,
        changed or unchanged. Deleted Items are not counted.

    Raises
    ------
    CatalogError
        If the index holds no collection (mirroring it would empty pgstac), or the database
        cannot be reached, has no pgstac schema, or refuses the data; pgstac is then left as
        it was.
    """
    # Imported here: pypgstac and psycopg come with the optional `pgstac` extra only.
    import psycopg
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods

    index = (
        index_or_lake
        if isinstance(index_or_lake, CatalogIndex)
        else CatalogIndex.of_lake(index_or_lake)
    )
    collections = index.collections()
    if not collections:
        # Mirroring an empty index would empty the database: far more likely a wrong --lake
        # (a missing index reads as an empty one) than a wish.
        raise CatalogError(
            f"the index at {index.url} holds no collection: not emptying pgstac "
            "(check the lake, or run `eosc-pangeo catalog build` first)"
        )
    collection_ids = [collection.id for collection in collections]
    mirrored = 0

    try:
        with PgstacDB(dsn=dsn) as db:
            if db.version is None:  # the Loader would only say "Failed to detect the version"
                raise CatalogError(
                    f"no pgstac schema in {_without_password(dsn)}: run "
                    "`pypgstac migrate --dsn ...` first"
                )
            # The Loader works on the one connection PgstacDB holds, so an outer transaction on
            # it covers everything: the Loader's own transaction blocks become savepoints
            # inside it (its retries roll back to those), and nothing is visible to readers, or
            # kept after a failure, until the commit at the end of this block.
            connection = db.connect()
            loader = Loader(db=db)
            with connection.transaction(), connection.cursor() as cursor:
                cursor.execute(
                    f"CREATE TEMP TABLE {INDEX_ITEM_IDS} (collection text, id text) ON COMMIT DROP"
                )
                # Creating a collection's partition locks every reader of Items out until the
                # commit: new collections go last, so that the lock is held as briefly as can be.
                known = {row[0] for row in cursor.execute("SELECT id FROM pgstac.collections")}
                load_order = sorted(collection_ids, key=lambda id_: (id_ not in known, id_))
                # Collections first: pgstac files each Item in its collection's partition.
                loader.load_collections(iter([c.stac for c in collections]), Methods.upsert)
                for collection_id in load_order:
                    # One Loader call per page rather than a generator over the collection:
                    # between calls the connection is ours to record the page's ids on, while
                    # inside one the Loader may be in the middle of a COPY.
                    for page in _pages_of(index, collection_id):
                        _record_index_ids(cursor, page)
                        loader.load_items(iter(page), Methods.upsert, chunksize=PAGE_ITEMS)
                        mirrored += len(page)
                _delete_items_not_in_index(cursor, collection_ids)
                # Last: dropping a collection's partition locks out every reader of the items
                # table until the commit, which follows right after.
                _delete_collections_not_in_index(cursor, collection_ids)
    except psycopg.Error as error:
        raise CatalogError(
            f"loading into pgstac at {_without_password(dsn)} failed, pgstac is "
            f"unchanged: {_first_failure(error)}"
        ) from error
    return mirrored


def _pages_of(index: CatalogIndex, collection_id: str) -> Iterator[list[dict[str, Any]]]:
    """Every Item of one collection, a page at a time."""
    offset = 0
    while True:
        page, matched = index.search_items(
            ItemQuery(collections=[collection_id], limit=PAGE_ITEMS, offset=offset)
        )
        if page:
            yield page
        offset += len(page)
        if not page or offset >= matched:
            return


def _record_index_ids(cursor: psycopg.Cursor, page: list[dict[str, Any]]) -> None:
    """Add the (collection, id) of each Item of ``page`` to the table of the index's Items."""
    with cursor.copy(f"COPY {INDEX_ITEM_IDS} (collection, id) FROM STDIN") as copy:
        for item in page:
            copy.write_row((item["collection"], item["id"]))


def _delete_items_not_in_index(cursor: psycopg.Cursor, collection_ids: Sequence[str]) -> None:
    """Delete the Items of indexed collections that the index does not hold."""
    # Statistics for the planner, which knows nothing of a temporary table it has not analysed
    # and would otherwise probe it once per Item of pgstac instead of hashing it.
    cursor.execute(f"ANALYZE {INDEX_ITEM_IDS}")
    # Items of collections leaving the database are not listed: delete_collection drops their
    # partition whole.
    cursor.execute(
        f"SELECT pgstac.delete_item(i.id, i.collection) FROM pgstac.items i "
        f"WHERE i.collection = ANY(%s) AND NOT EXISTS ("
        f"SELECT FROM {INDEX_ITEM_IDS} x WHERE x.collection = i.collection AND x.id = i.id)",
        [list(collection_ids)],
    )


def _delete_collections_not_in_index(cursor: psycopg.Cursor, collection_ids: Sequence[str]) -> None:
    """Delete the collections the index does not hold, with their Items."""
    cursor.execute(
        "SELECT pgstac.delete_collection(c.id) FROM pgstac.collections c WHERE c.id <> ALL(%s)",
        [list(collection_ids)],
    )


def _first_failure(error: Exception) -> Exception:
    """The database error that made the load fail, rather than what it caused.

    pypgstac answers a failed query with ``rollback()``, which psycopg refuses inside our
    transaction with a ProgrammingError about the rollback: the query's error is its context.
    """
    import psycopg

    context = error.__context__
    if isinstance(error, psycopg.ProgrammingError) and isinstance(context, psycopg.Error):
        return context
    return error


def _without_password(dsn: str) -> str:
    """The DSN fit for an error message."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    if "password" in params:
        params["password"] = "***"
    return make_conninfo(**params)
