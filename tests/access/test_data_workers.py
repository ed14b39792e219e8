"""``eosc-pangeo serve-data --workers N``: several processes serve one lake and count each
client's requests together."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import xarray as xr
import yaml

from eosc_pangeo.access.errors import TooManyRequests
from eosc_pangeo.access.policy import Client, Limits, RateLimiter
from eosc_pangeo.lake import open_grid
from eosc_pangeo.lake.demo import build_demo_lake
from eosc_pangeo.platform.local import free_ports

KEY = "workers-test-key"
ANONYMOUS_PER_MINUTE = 6


def test_limiters_sharing_a_store_share_each_clients_allowance(tmp_path):
    limits = Limits(anonymous_requests_per_minute=4)
    first, second = (RateLimiter(limits, tmp_path / "rates.sqlite") for _ in range(2))
    client = Client("ip:192.0.2.1")
    for limiter in (first, second, first, second):
        limiter.allow(client)
    with pytest.raises(TooManyRequests, match="4 requests a minute"):
        second.allow(client)
    first.allow(Client("ip:192.0.2.2"))  # another client has its own allowance


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    """``serve-data --workers 2`` on the small demo lake; yields its URL and its log."""
    folder = tmp_path_factory.mktemp("workers")
    lake = build_demo_lake(str(folder / "lake"), "small")
    policy = folder / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "public": ["sst"],
                "api_keys": [
                    {"name": "reader", "sha256": hashlib.sha256(KEY.encode()).hexdigest()}
                ],
                "limits": {
                    "anonymous_requests_per_minute": ANONYMOUS_PER_MINUTE,
                    "requests_per_minute": 100_000,
                },
            }
        )
    )
    (port,) = free_ports(1)
    log = folder / "serve.log"
    with log.open("w") as out:
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
                "2",
                "--policy",
                str(policy),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{url}/openapi.json", timeout=5).ok:
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail(f"serve-data --workers 2 did not start:\n{log.read_text()}")
        time.sleep(0.2)
    yield url, lake, log
    process.terminate()
    process.wait(timeout=30)


def test_two_worker_processes_serve_the_lake(workers):
    url, lake, log = workers
    remote = xr.open_zarr(f"{url}/zarr/sst", storage_options={"headers": {"X-API-Key": KEY}})
    xr.testing.assert_identical(remote.load(), open_grid(lake, "sst").load())
    assert log.read_text().count("Booting worker with pid") == 2


def test_a_clients_rate_limit_holds_across_the_workers(workers):
    url, _, _ = workers
    # Each request on its own connection, many at once: the workers accept them in turn.
    with ThreadPoolExecutor(ANONYMOUS_PER_MINUTE * 2) as pool:
        codes = list(
            pool.map(
                lambda _: requests.get(f"{url}/collections", timeout=30).status_code,
                range(ANONYMOUS_PER_MINUTE * 3),
            )
        )
    assert codes.count(200) == ANONYMOUS_PER_MINUTE
    assert codes.count(429) == ANONYMOUS_PER_MINUTE * 2


def test_serve_data_refuses_zero_workers_in_one_line(tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "eosc_pangeo",
            "serve-data",
            "--lake",
            str(tmp_path),
            "--workers",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1
    assert "--workers 0" in run.stderr and "Traceback" not in run.stderr
