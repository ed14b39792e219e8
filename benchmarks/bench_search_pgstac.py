"""Our STAC API against stac-fastapi-pgstac, holding the same Items, side by side in one run.

Builds an index of ``--items`` synthetic Items (points over the globe, ten years, in
``--collections`` collections; the Items of ``bench_search.py``), starts a throwaway PostgreSQL
15 + PostGIS cluster with ``.ci/postgres-up.sh`` (needs root; installs the Debian packages if
missing), migrates a database of its own with ``pypgstac migrate`` and loads the same Items into
it with :func:`~eosc_pangeo.catalog.pgstac.load_into_pgstac`. Then it serves both over HTTP on
loopback, each in its own uvicorn process with one worker and no access log:

* ours: :func:`~eosc_pangeo.catalog.api.create_app` over the index;
* peer: ``stac_fastapi.pgstac.app:create_app`` over the database.

The same queries go to both, interleaved (for each query the server asked first is drawn at
random), so that both see the same load of a shared machine:

* ``GET /search``: a 10-degree bbox, a one-year datetime, limit 10;
* ``POST /search`` with ``intersects``: a 10-degree triangle, a one-year datetime, limit 10;
* ``GET /collections`` (collection search): a 10-degree bbox and a one-year datetime.

For each it prints p50 and p95 of both and the ratio pgstac / ours, and checks that both return
the same Items (same ids, same order) or collections. In process, it also times ``search()``
and :meth:`CatalogIndex.search_items` on the index against pgstac's own ``search()`` SQL
function called over psycopg (no web stack on either side).

Run: ``python benchmarks/bench_search_pgstac.py --items 100000`` (and ``--items 1000000``;
loading a million Items into pgstac takes several minutes). Needs the ``pgstac`` extra.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import psycopg
from bench_search import percentiles, synthetic_collection, synthetic_items
from bench_search import queries as random_boxes
from common import ROOT, argument_parser, report, scratch_dir
from psycopg.types.json import Jsonb

from eosc_pangeo.catalog import CatalogIndex, search
from eosc_pangeo.catalog.index import ItemQuery
from eosc_pangeo.catalog.pgstac import load_into_pgstac
from eosc_pangeo.catalog.query import parse_datetime

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SERVE_OURS = """
import sys, uvicorn
from eosc_pangeo.catalog.api import create_app
from eosc_pangeo.catalog.index import CatalogIndex
index = CatalogIndex(sys.argv[1])
index.load()  # as `eosc-pangeo catalog serve` does
uvicorn.run(create_app(index=index), host="127.0.0.1", port=int(sys.argv[2]),
            log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def pgstac_database() -> Iterator[str]:
    """A database of our own, migrated with pypgstac, in a throwaway cluster; yields its DSN."""
    data_dir = Path(tempfile.mkdtemp(prefix="eosc-pangeo-bench-pg-"))  # not under /root
    port = free_port()
    try:
        started = subprocess.run(
            [str(ROOT / ".ci" / "postgres-up.sh"), str(data_dir), str(port)],
            check=False,
            timeout=900,
        )
        if started.returncode == 2:  # no root or no apt: said on stderr
            sys.exit("skipped: PostgreSQL cannot be set up on this machine")
        started.check_returncode()
        name = f"bench_search_{os.getpid()}"
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True
        ) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        dsn = f"postgresql://postgres@127.0.0.1:{port}/{name}"
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
                    str(PG_BIN / "pg_ctl"),
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


@contextmanager
def uvicorn_server(command: list[str], env: dict[str, str] | None = None) -> Iterator[str]:
    """A server process answering on loopback; yields its base URL once it answers."""
    port = free_port()
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [*command, str(port)] if env is None else [*command, "--port", str(port)],
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 900
        while True:
            if server.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{command} exited: {log.read().decode()[-2000:]}")
            try:
                if httpx.get(url, timeout=5).is_success:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not answer in 900 s")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def pgstac_server(dsn: str):
    connection = psycopg.conninfo.conninfo_to_dict(dsn)
    environment = {
        "PGUSER": connection["user"],
        "PGPASSWORD": "",
        "PGHOST": connection["host"],
        "PGPORT": str(connection["port"]),
        "PGDATABASE": connection["dbname"],
    }
    return uvicorn_server(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "stac_fastapi.pgstac.app:create_app",
            "--host",
            "127.0.0.1",
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        environment,
    )


def triangle(bbox: tuple[float, float, float, float]) -> dict:
    west, south, east, north = bbox
    return {
        "type": "Polygon",
        "coordinates": [[[west, south], [east, south], [west, north], [west, south]]],
    }


Request = Callable[[httpx.Client, str], httpx.Response]


def workloads(boxes) -> dict[str, list[Request]]:
    """The requests of each kind, the same for both servers: a function of (client, base URL)."""

    def get_search(bbox, interval):
        return lambda client, url: client.get(
            f"{url}/search",
            params={"bbox": ",".join(map(str, bbox)), "datetime": interval, "limit": 10},
        )

    def post_intersects(bbox, interval):
        return lambda client, url: client.post(
            f"{url}/search", json={"intersects": triangle(bbox), "datetime": interval, "limit": 10}
        )

    def collection_search(bbox, interval):
        return lambda client, url: client.get(
            f"{url}/collections", params={"bbox": ",".join(map(str, bbox)), "datetime": interval}
        )

    return {
        "GET /search (bbox, datetime, limit 10)": [get_search(*q) for q in boxes],
        "POST /search (intersects, datetime, limit 10)": [post_intersects(*q) for q in boxes],
        "GET /collections (bbox, datetime)": [collection_search(*q) for q in boxes],
    }


def answer(response: httpx.Response) -> list[str]:
    """What a response found: the ids of its Items, or of its collections."""
    response.raise_for_status()
    body = response.json()
    if "features" in body:
        return [f["id"] for f in body["features"]]
    return sorted(c["id"] for c in body["collections"])  # orders of collections may differ


def interleaved(
    requests: list[Request], servers: dict[str, str], rng: random.Random, warm_up: int = 10
) -> dict[str, list[float]]:
    """Seconds per request of each server; the first asked is drawn at random each time."""
    timings: dict[str, list[float]] = {name: [] for name in servers}
    clients = {name: httpx.Client(timeout=60) for name in servers}
    try:
        for request in requests[:warm_up]:
            for name, url in servers.items():
                request(clients[name], url).raise_for_status()
        for request in requests:
            order = list(servers)
            rng.shuffle(order)
            found = {}
            for name in order:
                started = time.perf_counter()
                response = request(clients[name], servers[name])
                timings[name].append(time.perf_counter() - started)
                found[name] = answer(response)
            first, *others = found.values()
            assert all(other == first for other in others), f"answers differ: {found}"
    finally:
        for client in clients.values():
            client.close()
    return timings


def in_process(index: CatalogIndex, dsn: str, boxes, rng: random.Random) -> None:
    """``search()`` and the index against pgstac's ``search()`` function, no web stack."""
    timings: dict[str, list[float]] = {"ours index": [], "ours search()": [], "pgstac": []}
    with psycopg.connect(dsn) as connection:
        connection.execute("SET search_path TO pgstac, public")

        def pgstac(bbox, interval):
            [(found,)] = connection.execute(
                "SELECT search(%s)",
                [Jsonb({"bbox": list(bbox), "datetime": interval, "limit": 10})],
            ).fetchall()
            return [f["id"] for f in found["features"] or []]

        def ours_index(bbox, interval):
            start, end = parse_datetime(interval)
            items, _ = index.search_items(ItemQuery(bbox=bbox, start=start, end=end, limit=10))
            return [item["id"] for item in items]

        def ours_search(bbox, interval):
            return search(bbox=bbox, datetime=interval, catalog=index)

        calls = {"ours index": ours_index, "ours search()": ours_search, "pgstac": pgstac}
        for box in boxes[:10]:
            for call in calls.values():
                call(*box)
        for box in boxes:
            order = list(calls)
            rng.shuffle(order)
            found = {}
            for name in order:
                started = time.perf_counter()
                found[name] = calls[name](*box)
                timings[name].append(time.perf_counter() - started)
            assert found["ours index"] == found["pgstac"], found
    print_comparison("in process, bbox + datetime, limit 10", timings, "pgstac")


def print_comparison(kind: str, timings: dict[str, list[float]], peer: str) -> None:
    peer_p50, peer_p95 = percentiles(timings[peer])
    print(f"{kind}: {len(timings[peer])} queries, p50 / p95 in ms")
    print(f"  {peer:<14} p50 {peer_p50:7.2f}  p95 {peer_p95:7.2f}")
    for name, seconds in timings.items():
        if name == peer:
            continue
        p50, p95 = percentiles(seconds)
        print(
            f"  {name:<14} p50 {p50:7.2f}  p95 {p95:7.2f}   "
            f"ratio {peer} / {name}: p50 {peer_p50 / p50:.1f}x, p95 {peer_p95 / p95:.1f}x"
        )
        report(f"{kind} p95 {name}", p95, "ms", baseline=peer_p95, target=">= 5x")


def build_index(
    folder: Path, items: int, collections: int, rng: np.random.Generator
) -> CatalogIndex:
    index = CatalogIndex(str(folder))
    per_collection = items // collections
    for c in range(collections):
        name = f"profiles-{c:02d}"
        index.put(
            "bench",
            synthetic_collection(name).to_dict(include_self_link=False),
            synthetic_items(per_collection, name, rng),
            fingerprint="bench",
        )
    return index


def main() -> None:
    parser = argument_parser(__doc__.split("\n")[0])
    parser.add_argument(
        "--items",
        type=int,
        default=20_000,
        help="Items in both (default: 20,000, a CI-affordable run; the figures "
        "are for 100,000 and 1,000,000)",
    )
    parser.add_argument("--collections", type=int, default=10)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.items, args.queries = 5_000, 60
    data_rng = np.random.default_rng(args.seed)
    rng = random.Random(args.seed)

    with scratch_dir("search-pgstac") as scratch, pgstac_database() as dsn:
        started = time.perf_counter()
        index = build_index(Path(scratch) / "index", args.items, args.collections, data_rng)
        total = sum(c.item_count for c in index.collections())
        print(
            f"index: {total:,} items in {args.collections} collections, built in "
            f"{time.perf_counter() - started:.0f} s"
        )
        started = time.perf_counter()
        assert load_into_pgstac(index, dsn) == total
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE pgstac.items")  # as a deployment would have
        print(f"pgstac: loaded in {time.perf_counter() - started:.0f} s")
        print(f"load average before the queries: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")

        boxes = random_boxes(args.queries, data_rng)
        ours_command = [sys.executable, "-c", SERVE_OURS, index.url]
        with uvicorn_server(ours_command) as ours, pgstac_server(dsn) as peer:
            for kind, requests in workloads(boxes).items():
                timings = interleaved(requests, {"pgstac": peer, "ours": ours}, rng)
                print_comparison(f"{kind} at {total:,} items", timings, "pgstac")
        in_process(index, dsn, boxes, rng)
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
