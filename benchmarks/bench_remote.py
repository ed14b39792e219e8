"""Remote access: subsets read through the data service vs downloading the source files.

The collection is the year of daily global 0.25-degree SST of ``bench_timeseries.py`` (the same
cached lake; ``--quick``: 30 days at 2 degrees). The service runs on loopback; every byte it sends
is counted. Two requests a scientist outside the hub makes:

* a point time series over the whole period;
* a 10 x 10 degree box over 30 days;

each read with plain ``xr.open_zarr`` on the map store and on the time-series store, and with
OPeNDAP (pydap),

against the baseline without a service: download every source file that holds the data (all of
them for a series, 30 for the box) over HTTP from a plain file server, then read them. The
bytes of each are also set against the slice's compressed size (the slice alone, encoded as the
lake stores it: Blosc-zstd level 1 of its values). Last, 10 clients at once ask EDR position
queries at random points: requests per second against one client alone, in the process above,
then against ``eosc-pangeo serve-data --workers 1`` and ``--workers N`` (N = the CPU count).
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bench_timeseries
import common
import numpy as np
import requests
import xarray as xr
import yaml

from eosc_pangeo.access import AccessPolicy, create_app
from eosc_pangeo.lake import open_grid

COLLECTION = bench_timeseries.COLLECTION
BOX_DEGREES, BOX_DAYS = 10, 30
CLIENTS, QUERIES = 10, 200


class CountingApp:
    """ASGI middleware that adds up the body bytes the service sends."""

    def __init__(self, app) -> None:
        self.app = app
        self.sent = 0

    async def __call__(self, scope, receive, send):
        async def counting_send(message):
            if message["type"] == "http.response.body":
                self.sent += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, counting_send)


def serve(app) -> tuple[str, callable]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}", lambda: setattr(server, "should_exit", True)


def file_server(folder: Path) -> str:
    """A plain HTTP file server of ``folder``: what a data centre without a service offers."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def serve_data(lake: str, workers: int, folder: Path) -> tuple[str, subprocess.Popen]:
    """``eosc-pangeo serve-data --workers N`` on ``lake``, everything public, no limits."""
    from eosc_pangeo.platform.local import free_ports

    policy = folder / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "public": ["*"],
                "limits": {"max_response_bytes": 2**31 - 1, "anonymous_requests_per_minute": 10**6},
            }
        )
    )
    (port,) = free_ports(1)
    log = folder / f"serve-data-{workers}.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eosc_pangeo",
            "serve-data",
            "--lake",
            lake,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--policy",
            str(policy),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(f"{url}/openapi.json", timeout=5).ok:
                return url, process
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(
        f"serve-data --workers {workers} did not start; its log ends:\n"
        + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    )


def download(base: str, files: list[Path], into: Path) -> int:
    """Download ``files`` from the file server; return the bytes received."""
    received = 0
    for file in files:
        body = requests.get(f"{base}/{file.name}", timeout=120).content
        (into / file.name).write_bytes(body)
        received += len(body)
    return received


def compressed_size(stored: np.ndarray) -> int:
    """Bytes of the ``stored`` values (packed, as the lake keeps them) compressed as the lake
    compresses them (Blosc-zstd level 1, shuffled)."""
    from numcodecs import Blosc

    codec = Blosc(cname="zstd", clevel=1, shuffle=Blosc.SHUFFLE)
    return len(codec.encode(np.ascontiguousarray(stored)))


def timed(func):
    started = time.perf_counter()
    result = func()
    return result, time.perf_counter() - started


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    spec = bench_timeseries.QUICK if args.quick else bench_timeseries.LARGE
    files = common.source_files(spec)
    lake_url = bench_timeseries.sst_lake(spec, files)
    counting = CountingApp(
        create_app(
            lake_url,
            AccessPolicy(
                public=["*"],
                limits={"max_response_bytes": 2**31 - 1, "anonymous_requests_per_minute": 10**6},
            ),
        )
    )
    url, stop = serve(counting)
    sources = file_server(files[0].parent)
    local = open_grid(lake_url, COLLECTION, chunking="map")
    # The packed integers themselves, for the slice's compressed size.
    packed = open_grid(lake_url, COLLECTION, chunking="map", mask_and_scale=False).analysed_sst
    lat, lon = bench_timeseries.ocean_points(files[0], 1)[0]
    print(
        f"# {len(files)} daily files, {common.total_bytes(files) / 1e6:.0f} MB; point "
        f"({lat}, {lon}); box {BOX_DEGREES} deg x {BOX_DAYS} days; loopback"
    )

    series = local.analysed_sst.sel(lat=lat, lon=lon, method="nearest").load()
    box = dict(
        lat=slice(lat - BOX_DEGREES / 2, lat + BOX_DEGREES / 2),
        lon=slice(lon - BOX_DEGREES / 2, lon + BOX_DEGREES / 2),
    )
    month = local.analysed_sst.isel(time=slice(0, BOX_DAYS)).sel(box).load()
    days = files[:BOX_DAYS]

    with common.scratch_dir("remote") as scratch:
        for name, wanted, needed, selection in (
            ("point series", series, files, lambda a: a.sel(lat=lat, lon=lon, method="nearest")),
            ("month box", month, days, lambda a: a.isel(time=slice(0, BOX_DAYS)).sel(box)),
        ):
            folder = Path(scratch) / name.replace(" ", "-")
            folder.mkdir()
            downloaded, baseline = timed(lambda f=folder, n=needed: download(sources, n, f))
            slice_bytes = compressed_size(selection(packed).values)
            common.report(f"{name} download sources (bytes)", downloaded / 1e6, "MB")
            print(f"#   the slice: {wanted.size} values, {slice_bytes} bytes compressed")
            for method, opener in (
                ("zarr map", lambda: xr.open_zarr(f"{url}/zarr/{COLLECTION}")),
                ("zarr-timeseries", lambda: xr.open_zarr(f"{url}/zarr-timeseries/{COLLECTION}")),
                ("opendap", lambda: xr.open_dataset(f"{url}/opendap/{COLLECTION}", engine="pydap")),
            ):
                counting.sent = 0
                ds, opening = timed(opener)
                metadata = counting.sent
                got, loading = timed(lambda d=ds, s=selection: s(d.analysed_sst).load())
                data = counting.sent - metadata
                np.testing.assert_array_equal(got.values, wanted.values)
                common.report(f"{name} served {method}", opening + loading, "s", baseline=baseline)
                common.report(
                    f"{name} served {method} (bytes)",
                    counting.sent / 1e6,
                    "MB",
                    baseline=downloaded / 1e6,
                )
                common.report(
                    f"{name} served {method}: data bytes vs the slice compressed",
                    data / slice_bytes,
                    "x",
                    target="<= 2x",
                )
                print(f"#   of which metadata and coordinates on opening: {metadata} bytes")

    rng = np.random.default_rng(1)
    points = [
        (float(y), float(x))
        for y, x in zip(rng.uniform(-60, 60, QUERIES), rng.uniform(-180, 180, QUERIES), strict=True)
    ]

    def throughput(base: str, clients: int) -> float:
        def position(point) -> None:
            response = requests.get(
                f"{base}/edr/{COLLECTION}/position",
                timeout=120,
                params={
                    "coords": f"POINT({point[1]} {point[0]})",
                    "parameter-name": "analysed_sst",
                    "f": "csv",
                },
            )
            response.raise_for_status()

        with ThreadPoolExecutor(clients) as pool:
            _, seconds = timed(lambda: list(pool.map(position, points)))
        return QUERIES / seconds

    alone = throughput(url, 1)
    common.report("EDR position queries, 1 client", alone, "req/s")
    common.report(
        f"EDR position queries, {CLIENTS} clients",
        throughput(url, CLIENTS),
        "req/s",
        baseline=alone,
        higher_is_better=True,
    )
    stop()
    workers = os.cpu_count() or 1
    with common.scratch_dir("remote-workers") as scratch:
        rates = {}
        for count in sorted({1, workers}):
            base, process = serve_data(lake_url, count, Path(scratch))
            try:
                throughput(base, CLIENTS)  # each worker opens the collection once
                rates[count] = throughput(base, CLIENTS)
            finally:
                process.terminate()
                process.wait(timeout=60)
            common.report(
                f"EDR position queries, {CLIENTS} clients, serve-data --workers {count}",
                rates[count],
                "req/s",
                baseline=None if count == 1 else rates[1],
                higher_is_better=True,
            )


if __name__ == "__main__":
    main()
