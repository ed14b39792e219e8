"""Load the meta-catalogue index into pgstac, the PostgreSQL schema large STAC deployments run.

The embedded index (stac-geoparquet read by DuckDB) needs no server; past some hundred million
Items, or for many concurrent users, the same Collections and Items can be served by
stac-fastapi-pgstac from a PostgreSQL + PostGIS database that ``pypgstac migrate`` prepared.
This module copies the index there with pypgstac's Loader. It upserts, so running it again
after ``eosc-pangeo catalog build`` or ``harvest`` updates what changed and adds what is new;
collections dropped from the index are left in the database.

Needs the ``pgstac`` extra: ``pip install "eosc-pangeo[pgstac]"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..lake.storage import Lake
from .index import CatalogError, CatalogIndex, ItemQuery

#: Items read from the index at a time: bounded memory whatever the size of a collection.
PAGE_ITEMS = 10_000


def load_into_pgstac(index_or_lake: CatalogIndex | str | Lake | None, dsn: str) -> int:
    """Upsert every Collection and Item of the index into a pgstac database.

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
        How many Items were loaded (new or updated).

    Raises
    ------
    CatalogError
        If the database cannot be reached, has no pgstac schema, or refuses the data.
    """
    # Imported here: pypgstac and psycopg come with the optional `pgstac` extra only.
    import psycopg
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods

    index = (index_or_lake if isinstance(index_or_lake, CatalogIndex)
             else CatalogIndex.of_lake(index_or_lake))
    collections = index.collections()
    loaded = 0

    def counted(items: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        nonlocal loaded
        for item in items:
            loaded += 1
            yield item

    try:
        with PgstacDB(dsn=dsn) as db:
            if db.version is None:  # the Loader would only say "Failed to detect the version"
                raise CatalogError(f"no pgstac schema in {_without_password(dsn)}: run "
                                   "`pypgstac migrate --dsn ...` first")
            loader = Loader(db=db)
            # Collections first: pgstac files each Item in its collection's partition.
            loader.load_collections(iter([c.stac for c in collections]), Methods.upsert)
            for collection in collections:
                loader.load_items(counted(_items_of(index, collection.id)), Methods.upsert,
                                  chunksize=PAGE_ITEMS)
    except psycopg.Error as error:
        raise CatalogError(f"loading into pgstac at {_without_password(dsn)} failed: "
                           f"{error}") from error
    return loaded


def _items_of(index: CatalogIndex, collection_id: str) -> Iterator[dict[str, Any]]:
    """Every Item of one collection, read a page at a time."""
    offset = 0
    while True:
        page, matched = index.search_items(ItemQuery(collections=[collection_id],
                                                     limit=PAGE_ITEMS, offset=offset))
        yield from page
        offset += len(page)
        if not page or offset >= matched:
            return


def _without_password(dsn: str) -> str:
    """The DSN fit for an error message."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    if "password" in params:
        params["password"] = "***"
    return make_conninfo(**params)
