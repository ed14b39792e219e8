"""The hub's proxy: the pure-Python configurable-http-proxy, with whole websockets.

configurable-http-proxy 0.4.0 (PyPI) loses three things on a websocket. Bokeh, hence every
Dask dashboard, needs two: the subprotocol the target chose (the browser offered ``bokeh`` and
its session token, gets none back and drops the connection), and the messages the target sends
before the browser's side is open (Bokeh's first ACK). JupyterLab's kernels need the third once
the subprotocol passes: the kind of the browser's frames (its kernel protocol
``v1.kernel.websocket.jupyter.org`` sends binary frames, which the library forwards as text).
This handler keeps all three; the rest is the library's, but for how long it waits for a
target (:data:`PROXY_TIMEOUT_MS`). Run with the library's own arguments:
``python -m eosc_pangeo.platform.proxy ...``.
"""

from __future__ import annotations

import sys
import urllib.parse

from configurable_http_proxy import configproxy
from configurable_http_proxy.handlers import ProxyHandler
from tornado.websocket import websocket_connect

#: How long the proxy waits for a target's answer, in ms, unless ``--proxy-timeout`` is given.
#: Node's configurable-http-proxy sets no limit; the Python port leaves tornado's 20 s, and a
#: kernel's websocket is accepted only once the kernel answers: with ten kernels starting on two
#: busy cores, a kernel's channels were refused (503). As long as the hub waits for a server.
PROXY_TIMEOUT_MS = 300_000


class WholeWebsocketProxyHandler(ProxyHandler):
    """``ProxyHandler`` whose websockets keep the target's subprotocol, early messages and
    binary frames."""

    pending: list[str | bytes] | None = None

    async def start_ws_client(self, path=None):
        self.closed = False
        url = await self.get_target_url(path)
        if url is None:
            return
        parts = urllib.parse.urlparse(url)
        url = parts._replace(scheme=parts.scheme.replace("http", "ws")).geturl()
        self.pending = []
        try:
            self.ws_client = await websocket_connect(
                self._get_proxy_request(url),
                on_message_callback=self.from_target,
                subprotocols=self.offered_subprotocols() or None,
            )
        except Exception as error:  # the library's own answer: 503 with the proxy's error page
            await self.handle_proxy_error(503, error)
            raise

    def offered_subprotocols(self) -> list[str]:
        header = self.request.headers.get("Sec-WebSocket-Protocol", "")
        return [protocol.strip() for protocol in header.split(",") if protocol.strip()]

    def select_subprotocol(self, subprotocols):
        return self.ws_client.selected_subprotocol if self.ws_client else None

    def record_activity(self) -> None:
        prefix = self.target["prefix"] if self.target else ""
        if prefix:
            self.proxy.update_last_activity(prefix)

    def on_message(self, message) -> None:
        if self.ws_client:
            self.record_activity()
            self.ws_client.write_message(message, binary=isinstance(message, bytes))

    def from_target(self, message) -> None:
        if message is None or self.closed:
            return
        self.record_activity()
        if self.pending is not None:
            self.pending.append(message)
        else:
            self.write_message(message, binary=isinstance(message, bytes))

    def open(self, *args, **kwargs):
        pending, self.pending = self.pending or [], None
        for message in pending:
            self.write_message(message, binary=isinstance(message, bytes))


def main() -> None:
    """configurable-http-proxy's command line, serving with :class:`WholeWebsocketProxyHandler`
    and waiting :data:`PROXY_TIMEOUT_MS` for targets unless told otherwise."""
    from configurable_http_proxy.cli import main as proxy_main

    configproxy.ProxyHandler = WholeWebsocketProxyHandler
    if not any(argument.startswith("--proxy-timeout") for argument in sys.argv[1:]):
        sys.argv[1:1] = [f"--proxy-timeout={PROXY_TIMEOUT_MS}"]
    proxy_main()


if __name__ == "__main__":
    main()
