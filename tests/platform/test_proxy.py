"""The hub's proxy (eosc_pangeo.platform.proxy), run as the hub runs it, in front of a real
tornado websocket server."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from tornado.httpclient import HTTPRequest
from tornado.web import Application
from tornado.websocket import WebSocketHandler, websocket_connect

from eosc_pangeo.platform.loopback import free_ports

#: Longer than tornado's default request timeout (20 s), which the proxy used to keep.
SLOW_HANDSHAKE = 22.0


class SlowEcho(WebSocketHandler):
    """Accepts the websocket only after a while, as a kernel's channels do while it starts."""

    async def prepare(self):
        await asyncio.sleep(SLOW_HANDSHAKE)

    def on_message(self, message):
        self.write_message(message)


@pytest.fixture
def slow_target():
    (port,) = free_ports(1)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve():
        asyncio.set_event_loop(loop)
        Application([(r"/.*", SlowEcho)]).listen(port, address="127.0.0.1")
        loop.call_soon(started.set)
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(10)
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture
def proxy(slow_target):
    port, api_port = free_ports(2)
    command = [sys.executable, "-m", "eosc_pangeo.platform.proxy", "--ip=127.0.0.1"]
    command += [f"--port={port}", "--api-ip=127.0.0.1", f"--api-port={api_port}"]
    command += [f"--default-target={slow_target}"]
    process = subprocess.Popen(
        command,
        env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": "test-token"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("the proxy did not listen within 30 s")
    yield f"ws://127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


def test_a_websocket_the_target_accepts_late_is_proxied(proxy):
    """A kernel's channels open once the kernel answers, which took over 20 s while ten kernels
    started on two cores: the proxy waits for them instead of answering 503."""

    async def echo() -> str:
        url = f"{proxy}/user/someone/api/kernels/k/channels"
        socket = await websocket_connect(HTTPRequest(url, request_timeout=120))
        await socket.write_message("ping")
        answer = await socket.read_message()
        socket.close()
        return answer

    started = time.monotonic()
    assert asyncio.run(asyncio.wait_for(echo(), 120)) == "ping"
    assert time.monotonic() - started >= SLOW_HANDSHAKE
