"""The large-deployment path: the index mirrored into pgstac (PostgreSQL + PostGIS) answers as ours.

A throwaway PostgreSQL cluster is started by .ci/postgres-up.sh (which installs postgresql-15 and
postgresql-15-postgis-3 with apt when missing) and migrated with ``pypgstac migrate``. The
database is shared by the whole session: each test first loads the demo lake, which the mirroring
load makes the database hold exactly, whatever an earlier test left there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from eosc_pangeo.catalog import CatalogIndex
from eosc_pangeo.catalog.index import CatalogError, ItemQuery

pytest.importorskip("pypgstac", reason="needs the pgstac extra")
psycopg = pytest.importorskip("psycopg", reason="needs the pgstac extra")

from eosc_pangeo.catalog.pgstac import load_into_pgstac  # noqa: E402  (after the skips above)

REPO = Path(__file__).resolve().parents[2]
PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"

# Atlantic and northern Europe over a few days of January 2020: some (not all) Items of three
# collections. The box encloses whole Item footprints, so pgstac's geometry test and our index's
# bbox test must agree.
BBOX = (-60.0, 0.0, 10.0, 65.0)
START, END = datetime(2020, 1, 3, tzinfo=UTC), datetime(2020, 1, 8, tzinfo=UTC)
QUERY = {"bbox": list(BBOX), "datetime": f"{START.isoformat()}/{END.isoformat()}"}


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def pgstac_dsn():
    """A pgstac database in a throwaway cluster on loopback, torn down after the session."""
    # Not under pytest's tmp_path: its parents are root's, closed to the postgres user.
    data_dir = Path(tempfile.mkdtemp(prefix="eosc-pangeo-pg-"))
    port = free_loopback_port()
    try:
        result = subprocess.run(
            [str(REPO / ".ci" / "postgres-up.sh"), str(data_dir), str(port)],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode == 2:
            pytest.skip(f"PostgreSQL cannot be set up on this machine: {result.stderr.strip()}")
        assert result.returncode == 0, f".ci/postgres-up.sh failed:\n{result.stderr}"
        dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        subprocess.run(
            [str(Path(sys.executable).parent / "pypgstac"), "migrate", "--dsn", dsn],
            check=True,
            capture_output=True,
            timeout=300,
        )
        yield dsn
    finally:
        if (data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    PG_CTL,
                    "-D",
                    str(data_dir),
                    "stop",
                    "-m",
                    "fast",
                ],
                check=False,
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(data_dir, ignore_errors=True)


def pgstac_counts(dsn: str) -> dict[str, int]:
    """Items per collection in pgstac, collections without Items included."""
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT c.id, count(i.id) FROM pgstac.collections c "
            "LEFT JOIN pgstac.items i ON i.collection = c.id GROUP BY c.id"
        ).fetchall()
    return dict(rows)


def pgstac_item_rows(dsn: str) -> dict[tuple[str, str], tuple[str, str]]:
    """Each Item row of pgstac by (collection, id): the transaction that last wrote it (xmin),
    and a digest of the whole row as stored."""
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT collection, id, xmin::text, md5(i::text) FROM pgstac.items i"
        ).fetchall()
    return {(collection, id_): (xmin, digest) for collection, id_, xmin, digest in rows}


def pgstac_content(dsn: str) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """What pgstac serves: a digest of each Collection row and of each Item row."""
    with psycopg.connect(dsn) as connection:
        collections = connection.execute("SELECT id, md5(c::text) FROM pgstac.collections c")
        return dict(collections.fetchall()), {
            key: digest for key, (_, digest) in pgstac_item_rows(dsn).items()
        }


def item_counts(index: CatalogIndex) -> dict[str, int]:
    return {c.id: c.item_count for c in index.collections()}


def reindex_items(index: CatalogIndex, collection_id: str, change) -> None:
    """Re-index one collection with each of its Items passed through ``change``, which returns
    the Item to index, or None to leave it out."""
    collection = index.collection(collection_id)
    items, _ = index.search_items(
        ItemQuery(collections=[collection_id], limit=collection.item_count)
    )
    kept = [changed for item in items if (changed := change(item)) is not None]
    index.put(collection.source, collection.stac, kept, collection.fingerprint)


def test_pgstac_holds_the_index(demo_lake, pgstac_dsn):
    ours = item_counts(CatalogIndex.of_lake(demo_lake))

    assert load_into_pgstac(demo_lake, pgstac_dsn) == sum(ours.values())
    assert pgstac_counts(pgstac_dsn) == ours


def test_a_collection_removed_from_the_index_is_deleted_from_pgstac(
    demo_lake, lake_copy, pgstac_dsn
):
    load_into_pgstac(demo_lake, pgstac_dsn)
    index = CatalogIndex.of_lake(lake_copy)
    removed = index.collections()[0]
    index.drop(removed.source, [removed.id])

    assert load_into_pgstac(index, pgstac_dsn) == sum(item_counts(index).values())
    assert removed.id not in pgstac_counts(pgstac_dsn)
    assert removed.id not in {collection for collection, _ in pgstac_item_rows(pgstac_dsn)}


def test_an_item_removed_from_the_index_is_deleted_from_pgstac(demo_lake, lake_copy, pgstac_dsn):
    load_into_pgstac(demo_lake, pgstac_dsn)
    index = CatalogIndex.of_lake(lake_copy)
    collection = max(index.collections(), key=lambda c: c.item_count)
    [removed], _ = index.search_items(ItemQuery(collections=[collection.id], limit=1))
    reindex_items(index, collection.id, lambda item: None if item == removed else item)

    assert load_into_pgstac(index, pgstac_dsn) == sum(item_counts(index).values())
    assert (collection.id, removed["id"]) not in pgstac_item_rows(pgstac_dsn)
    assert pgstac_counts(pgstac_dsn) == item_counts(index)


def test_items_the_index_still_holds_are_not_rewritten(demo_lake, lake_copy, pgstac_dsn):
    # Other collections' Items and the removed Item's neighbours alike: same row, same xmin.
    load_into_pgstac(demo_lake, pgstac_dsn)
    before = pgstac_item_rows(pgstac_dsn)
    index = CatalogIndex.of_lake(lake_copy)
    collection = max(index.collections(), key=lambda c: c.item_count)
    [removed], _ = index.search_items(ItemQuery(collections=[collection.id], limit=1))
    reindex_items(index, collection.id, lambda item: None if item == removed else item)

    load_into_pgstac(index, pgstac_dsn)
    del before[collection.id, removed["id"]]
    assert pgstac_item_rows(pgstac_dsn) == before


def test_reloading_an_unchanged_index_changes_no_content(demo_lake, pgstac_dsn):
    load_into_pgstac(demo_lake, pgstac_dsn)
    before = pgstac_content(pgstac_dsn)

    load_into_pgstac(demo_lake, pgstac_dsn)
    assert pgstac_content(pgstac_dsn) == before


def test_a_load_failing_midway_leaves_pgstac_as_it_was(
    demo_lake, lake_copy, pgstac_dsn, monkeypatch
):
    from pypgstac.load import Loader

    load_into_pgstac(demo_lake, pgstac_dsn)
    before = pgstac_content(pgstac_dsn)
    # A change of each kind the load makes: Items updated (in the collection loaded first, so
    # before the failure), an Item and a collection deleted.
    index = CatalogIndex.of_lake(lake_copy)
    first, second, *_, last = index.collections()
    reindex_items(
        index,
        first.id,
        lambda item: {**item, "properties": {**item["properties"], "title": "changed"}},
    )
    [removed], _ = index.search_items(ItemQuery(collections=[second.id], limit=1))
    reindex_items(index, second.id, lambda item: None if item == removed else item)
    index.drop(last.source, [last.id])

    load_items = Loader.load_items
    loaded = []

    def load_items_until_the_second_collection(self, items, *args, **kwargs):
        items = list(items)
        if items[0]["collection"] != first.id:
            raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
        loaded.append(items[0]["collection"])
        return load_items(self, iter(items), *args, **kwargs)

    monkeypatch.setattr(Loader, "load_items", load_items_until_the_second_collection)
    with pytest.raises(CatalogError, match="statement timeout"):
        load_into_pgstac(index, pgstac_dsn)
    assert loaded == [first.id]
    assert pgstac_content(pgstac_dsn) == before


def test_an_empty_index_is_not_mirrored(demo_lake, tmp_path, pgstac_dsn):
    # An empty index is most likely a wrong lake: mirroring it would empty the database.
    load_into_pgstac(demo_lake, pgstac_dsn)
    before = pgstac_content(pgstac_dsn)

    with pytest.raises(CatalogError, match="holds no collection"):
        load_into_pgstac(CatalogIndex(str(tmp_path / "empty-index")), pgstac_dsn)
    assert pgstac_content(pgstac_dsn) == before


def test_pgstac_search_finds_the_items_our_index_finds(demo_lake, pgstac_dsn):
    load_into_pgstac(demo_lake, pgstac_dsn)
    ours, matched = CatalogIndex.of_lake(demo_lake).search_items(
        ItemQuery(bbox=BBOX, start=START, end=END, limit=1000)
    )
    assert 0 < matched < sum(c.item_count for c in CatalogIndex.of_lake(demo_lake).collections())
    assert len({item["collection"] for item in ours}) > 1

    with psycopg.connect(pgstac_dsn) as connection:
        connection.execute("SET search_path TO pgstac, public")  # search() calls pgstac by name
        query = psycopg.types.json.Jsonb({**QUERY, "limit": 1000})
        [(found,)] = connection.execute("SELECT pgstac.search(%s)", [query]).fetchall()
    assert sorted(f["id"] for f in found["features"]) == sorted(item["id"] for item in ours)


@pytest.fixture
def stac_fastapi_pgstac(pgstac_dsn):
    """stac-fastapi-pgstac serving the pgstac database on loopback, as large deployments run it."""
    pytest.importorskip("stac_fastapi.pgstac", reason="needs the pgstac extra")
    port = free_loopback_port()
    connection = psycopg.conninfo.conninfo_to_dict(pgstac_dsn)
    environment = {
        "PGUSER": connection["user"],
        "PGPASSWORD": "",
        "PGHOST": connection["host"],
        "PGPORT": str(connection["port"]),
        "PGDATABASE": connection["dbname"],
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "stac_fastapi.pgstac.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env={**os.environ, **environment},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.stderr.read().decode()
            try:
                if requests.get(url, timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "stac-fastapi-pgstac did not start in 30 s"
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_stac_fastapi_pgstac_serves_what_our_api_finds(demo_lake, pgstac_dsn, stac_fastapi_pgstac):
    import pystac_client

    load_into_pgstac(demo_lake, pgstac_dsn)
    ours, _ = CatalogIndex.of_lake(demo_lake).search_items(
        ItemQuery(bbox=BBOX, start=START, end=END, limit=1000)
    )

    client = pystac_client.Client.open(stac_fastapi_pgstac)
    served = client.search(**QUERY, max_items=1000)
    assert sorted(item.id for item in served.items()) == sorted(item["id"] for item in ours)
    assert {c.id for c in client.get_collections()} == {
        c.id for c in CatalogIndex.of_lake(demo_lake).collections()
    }
