"""Fixtures shared by the whole suite: sample data and a real S3-protocol server on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from eosc_pangeo.config import get_settings
from eosc_pangeo.lake.storage import Lake


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server in its own process (as s3fs's own suite does), on loopback."""
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"moto_server did not start on {endpoint}")
            time.sleep(0.1)
    yield {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def s3_lake(s3_server) -> Lake:
    """An empty lake in a fresh bucket of the S3 server."""
    import s3fs

    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(**s3_server).mkdir(bucket)
    return Lake(f"s3://{bucket}/lake", dict(s3_server))


@pytest.fixture
def local_lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


@pytest.fixture
def settings_env(monkeypatch):
    """Set EOSC_PANGEO_* variables for one test, with the cached settings re-read around it."""
    def set_env(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(f"EOSC_PANGEO_{name.upper()}", value)
        get_settings.cache_clear()

    yield set_env
    get_settings.cache_clear()


@contextmanager
def served(app) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port; yields its URL."""
    import uvicorn

    # Port 0: the kernel picks a free port, so parallel runs never race for one.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the app's server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def serve():
    """Serve an ASGI app on loopback: ``with serve(create_app(...)) as url: ...``."""
    return served
