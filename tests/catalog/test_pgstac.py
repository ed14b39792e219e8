"""The large-deployment path: the index loaded into pgstac (PostgreSQL + PostGIS) answers as ours.

A throwaway PostgreSQL cluster is started by .ci/postgres-up.sh (which installs postgresql-15 and
postgresql-15-postgis-3 with apt when missing) and migrated with ``pypgstac migrate``.
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
from eosc_pangeo.catalog.index import ItemQuery

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
        result = subprocess.run([str(REPO / ".ci" / "postgres-up.sh"), str(data_dir), str(port)],
                                capture_output=True, text=True, timeout=900, check=False)
        if result.returncode == 2:
            pytest.skip(f"PostgreSQL cannot be set up on this machine: {result.stderr.strip()}")
        assert result.returncode == 0, f".ci/postgres-up.sh failed:\n{result.stderr}"
        dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        subprocess.run([str(Path(sys.executable).parent / "pypgstac"), "migrate", "--dsn", dsn],
                       check=True, capture_output=True, timeout=300)
        yield dsn
    finally:
        if (data_dir / "PG_VERSION").exists():
            subprocess.run(["runuser", "-u", "postgres", "--", PG_CTL, "-D", str(data_dir),
                            "stop", "-m", "fast"], check=False, capture_output=True, timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)


def pgstac_counts(dsn: str) -> dict[str, int]:
    """Items per collection in pgstac, collections without Items included."""
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT c.id, count(i.id) FROM pgstac.collections c "
            "LEFT JOIN pgstac.items i ON i.collection = c.id GROUP BY c.id").fetchall()
    return dict(rows)


def test_pgstac_holds_the_index_and_reloading_is_idempotent(demo_lake, pgstac_dsn):
    index = CatalogIndex.of_lake(demo_lake)
    ours = {c.id: c.item_count for c in index.collections()}

    assert load_into_pgstac(demo_lake, pgstac_dsn) == sum(ours.values())
    assert pgstac_counts(pgstac_dsn) == ours

    assert load_into_pgstac(index, pgstac_dsn) == sum(ours.values())
    assert pgstac_counts(pgstac_dsn) == ours


def test_pgstac_search_finds_the_items_our_index_finds(demo_lake, pgstac_dsn):
    load_into_pgstac(demo_lake, pgstac_dsn)
    ours, matched = CatalogIndex.of_lake(demo_lake).search_items(
        ItemQuery(bbox=BBOX, start=START, end=END, limit=1000))
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
    environment = {"PGUSER": connection["user"], "PGPASSWORD": "", "PGHOST": connection["host"],
                   "PGPORT": str(connection["port"]), "PGDATABASE": connection["dbname"]}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "stac_fastapi.pgstac.app:create_app",
         "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **environment}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
        ItemQuery(bbox=BBOX, start=START, end=END, limit=1000))

    client = pystac_client.Client.open(stac_fastapi_pgstac)
    served = client.search(**QUERY, max_items=1000)
    assert sorted(item.id for item in served.items()) == sorted(item["id"] for item in ours)
    assert {c.id for c in client.get_collections()} == {
        c.id for c in CatalogIndex.of_lake(demo_lake).collections()}
