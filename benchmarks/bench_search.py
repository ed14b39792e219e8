"""Search latency of the meta-catalogue index vs walking a static STAC catalog with pystac.

Builds an index of ``--items`` synthetic Items (points over the globe, ten years of time, in
``--collections`` collections) with the real index code, then times, sequentially:

* ``index``: :meth:`CatalogIndex.search_items` in process (the stac-geoparquet index in memory);
* ``api``: ``GET /search`` of the STAC API served by uvicorn on loopback, the query the
  pgstac peer figures were measured with (10-degree bbox, one-year datetime, limit 10);
* ``pystac walk``: the same filter by walking a static catalog with pystac. Writing and
  reading one JSON file per Item is slow (that is the point), so the walk is timed on
  ``--static-items`` Items and extrapolated linearly to ``--items`` (a walk reads every Item).

Run: ``python benchmarks/bench_search.py --items 100000`` (and ``--items 1000000``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pystac

from eosc_pangeo.catalog.index import CatalogIndex, ItemQuery

START = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)
YEARS = 10


def synthetic_items(count: int, collection: str, rng: np.random.Generator) -> list[dict]:
    lon = rng.uniform(-180, 180, count).round(4)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, count))).round(4)  # uniform on the sphere
    seconds = rng.uniform(0, YEARS * 365.25 * 86400, count)
    items = []
    for i in range(count):
        when = (START + dt.timedelta(seconds=float(seconds[i]))).isoformat().replace("+00:00", "Z")
        items.append(
            {
                "type": "Feature",
                "stac_version": "1.1.0",
                "id": f"{collection}-{i:07d}",
                "collection": collection,
                "geometry": {"type": "Point", "coordinates": [float(lon[i]), float(lat[i])]},
                "bbox": [float(lon[i]), float(lat[i]), float(lon[i]), float(lat[i])],
                "properties": {"datetime": when, "platform": f"float-{i % 4000}"},
                "assets": {},
                "links": [],
            }
        )
    return items


def synthetic_collection(collection: str) -> pystac.Collection:
    return pystac.Collection(
        collection,
        f"Synthetic profiles {collection}",
        pystac.Extent(
            pystac.SpatialExtent([[-180, -90, 180, 90]]),
            pystac.TemporalExtent([[START, START.replace(year=START.year + YEARS)]]),
        ),
        extra_fields={"eosc:domain": "ocean"},
    )


def queries(count: int, rng: np.random.Generator) -> list[tuple[tuple, str]]:
    """10-degree boxes and one-year intervals, as in the pgstac peer measurement."""
    out = []
    for _ in range(count):
        west, south = rng.uniform(-180, 170), rng.uniform(-80, 70)
        year = int(rng.integers(START.year, START.year + YEARS))
        out.append(
            (
                (round(west, 2), round(south, 2), round(west + 10, 2), round(south + 10, 2)),
                f"{year}-01-01T00:00:00Z/{year}-12-31T23:59:59Z",
            )
        )
    return out


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in seconds)
    return statistics.median(ms), ms[int(0.95 * (len(ms) - 1))]


def time_index(index: CatalogIndex, qs) -> list[float]:
    timings = []
    for bbox, interval in qs:
        start, end = (dt.datetime.fromisoformat(t) for t in interval.split("/"))
        t0 = time.perf_counter()
        index.search_items(ItemQuery(bbox=bbox, start=start, end=end, limit=10))
        timings.append(time.perf_counter() - t0)
    return timings


SERVE = """
import sys, uvicorn
from eosc_pangeo.catalog.api import create_app
from eosc_pangeo.catalog.index import CatalogIndex
uvicorn.run(create_app(index=CatalogIndex(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]),
            log_level="warning")
"""


def time_api(index: CatalogIndex, qs) -> list[float]:
    """Time GET /search against the API in its own process (as deployed: no GIL shared with
    the client)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", SERVE, index.url, str(port)])
    url = f"http://127.0.0.1:{port}/search"
    timings = []
    try:
        with httpx.Client() as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get(f"http://127.0.0.1:{port}/").raise_for_status()
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            for bbox, interval in qs:
                params = {"bbox": ",".join(map(str, bbox)), "datetime": interval, "limit": 10}
                t0 = time.perf_counter()
                response = client.get(url, params=params)
                timings.append(time.perf_counter() - t0)
                response.raise_for_status()
    finally:
        server.terminate()
        server.wait(timeout=10)
    return timings


def time_static_walk(items: list[dict], folder: Path, qs) -> tuple[float, float]:
    """Write ``items`` as a static catalog with pystac; return (write s, mean walk s per query)."""
    catalog = pystac.Catalog("bench", "static copy")
    collection = synthetic_collection("static")
    catalog.add_child(collection)
    collection.add_items(pystac.Item.from_dict(item) for item in items)
    t0 = time.perf_counter()
    catalog.normalize_and_save(str(folder), pystac.CatalogType.SELF_CONTAINED)
    written = time.perf_counter() - t0
    walks = []
    for bbox, interval in qs:
        start, end = (dt.datetime.fromisoformat(t) for t in interval.split("/"))
        t0 = time.perf_counter()
        found = []
        for item in pystac.Catalog.from_file(str(folder / "catalog.json")).get_items(
            recursive=True
        ):
            x0, y0, x1, y1 = item.bbox
            if (
                x1 >= bbox[0]
                and x0 <= bbox[2]
                and y1 >= bbox[1]
                and y0 <= bbox[3]
                and start <= item.datetime <= end
            ):
                found.append(item)
                if len(found) == 10:
                    break
        walks.append(time.perf_counter() - t0)
    return written, statistics.mean(walks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--collections", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--static-items", type=int, default=2_000)
    parser.add_argument("--static-queries", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 10,000 items, 50 queries, 200 static items",
    )
    args = parser.parse_args()
    if args.quick:
        args.items, args.queries, args.static_items = 10_000, 50, 200
    rng = np.random.default_rng(args.seed)

    with tempfile.TemporaryDirectory(prefix="bench-search-") as scratch:
        index = CatalogIndex(f"{scratch}/index")
        t0 = time.perf_counter()
        per_collection = args.items // args.collections
        for c in range(args.collections):
            name = f"profiles-{c:02d}"
            index.put(
                "bench",
                synthetic_collection(name).to_dict(include_self_link=False),
                synthetic_items(per_collection, name, rng),
                fingerprint="bench",
            )
        total = per_collection * args.collections
        print(
            f"index: {total:,} items in {args.collections} collections built in "
            f"{time.perf_counter() - t0:.1f} s"
        )

        qs = queries(args.queries, rng)
        time_index(index, qs[:10])  # load the index into memory, warm the caches
        p50, p95 = percentiles(time_index(index, qs))
        print(
            f"index search (in process): p50 {p50:.1f} ms, p95 {p95:.1f} ms "
            f"({args.queries} sequential queries)"
        )
        api_p50, api_p95 = percentiles(time_api(index, qs))
        print(f"STAC API GET /search (loopback): p50 {api_p50:.1f} ms, p95 {api_p95:.1f} ms")

        static_items = synthetic_items(args.static_items, "static", rng)
        written, walk = time_static_walk(
            static_items, Path(scratch) / "static", qs[: args.static_queries]
        )
        per_item = walk / args.static_items
        print(
            f"pystac static catalog: wrote {args.static_items:,} items in {written:.1f} s; "
            f"a walk took {walk * 1000:.0f} ms ({per_item * 1e6:.0f} us per item)"
        )
        estimated = per_item * total
        print(
            f"pystac walk extrapolated to {total:,} items: {estimated:.1f} s per query "
            f"(writing them: {written / args.static_items * total / 60:.0f} min)"
        )
        print(
            f"ratio pystac walk / index p50: {estimated / (p50 / 1000):,.0f}x; "
            f"/ API p50: {estimated / (api_p50 / 1000):,.0f}x"
        )


if __name__ == "__main__":
    main()
