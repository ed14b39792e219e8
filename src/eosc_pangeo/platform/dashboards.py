"""Dask dashboards for their owners only: the hub service in front of Dask Gateway.

dask-gateway's proxy serves a cluster's dashboard (``/clusters/<name>/...``) to any request,
anonymous ones included: only the random cluster name protects it. This service is what the
hub's proxy reaches at ``/services/dask-gateway/``, and it passes every request on to the
gateway's proxy, except that a dashboard request goes on only when its hub user may see that
cluster:

- the user comes from the service's OAuth cookie (a browser, after the hub's usual OAuth
  redirect) or from an ``Authorization: token ...`` header (a notebook's or a script's token),
  through jupyterhub's own :class:`~jupyterhub.services.auth.HubOAuth`;
- whether they may see the cluster is the gateway's answer to ``GET /api/v1/clusters/<name>``
  made with the user's own token: its owner may, nobody else (dask-gateway's rule for every cluster
  operation; it has no admin exception), so others get 403, an unknown cluster 404.

The gateway API (``/api/...``) passes through untouched: the gateway checks hub tokens itself.
One exception is let through without a user: ``individual-plots.json``, the static list of the
dashboard's plot paths, which dask-labextension's server side fetches with no credentials to
tell whether a URL is a dashboard; it holds no data of the cluster. Its iframes then load the
plots from the browser, with the cookie.

On Kubernetes, notebooks also reach the gateway's proxy (traefik) inside the cluster, where a
dashboard would be one request away by cluster name. There traefik asks this service first, for
every request of its web entrypoint (a ForwardAuth middleware, ``helm/eosc-pangeo``):
:class:`ForwardAuthHandler` answers with the same rule, :meth:`GateSettings.decide`. Dashboard
requests this service has already let through carry a stamp (:data:`GATE_HEADER`, an HMAC of
the cluster name under the service's secret), since they come without the user's credentials.

The reverse proxy is written here (HTTP and websockets, on tornado) because the one library that
does it for Jupyter, jupyter-server-proxy, only runs inside a Jupyter server.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import posixpath
import re
import time
from urllib.parse import unquote, urlsplit

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from tornado import httpclient, web, websocket
from tornado.httputil import HTTPHeaders

SERVICE_PREFIX = "/services/dask-gateway"
#: ``/clusters/<name>/<rest>`` below the service prefix: a dashboard request.
DASHBOARD_PATH = re.compile(r"^/clusters/(?P<name>[^/]+)(?P<rest>/.*)?$")
#: Fetched anonymously by dask-labextension's dashboard check (see the module's docstring).
ANONYMOUS_PLOT_LIST = "/individual-plots.json"
#: Set on the dashboard requests this service let through; :class:`ForwardAuthHandler` checks it.
GATE_HEADER = "X-Eosc-Pangeo-Gate"
#: Where traefik's ForwardAuth middleware asks, below the service prefix.
FORWARD_AUTH_PATH = "/_forward_auth"
#: Seconds a user's right to a cluster is remembered: a dashboard page makes many requests.
ACCESS_CACHE_SECONDS = 30
WITH_BODY = ("POST", "PUT", "PATCH")
#: Hop-by-hop headers (RFC 9110, 7.6.1) and those tornado sets itself.
NOT_FORWARDED = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
}


class GateSettings:
    """What every handler needs: the gateway's proxy, an HTTP client, the access cache, and
    the one rule of who may pass (:meth:`decide`)."""

    def __init__(self, upstream: str, prefix: str, secret: bytes) -> None:
        self.upstream = upstream.rstrip("/")
        self.prefix = prefix.rstrip("/")
        self.secret = secret
        # Clients long-poll the gateway (GET ...?wait): allow many requests at once.
        self.client = httpclient.AsyncHTTPClient(force_instance=True, max_clients=500)
        self.access: dict[tuple[str, str], tuple[float, int]] = {}

    async def cluster_access(self, token: str, cluster: str) -> int:
        """The gateway's status for ``token``'s user asking for ``cluster``: 200, 403 or 404."""
        key = (hashlib.sha256(token.encode()).hexdigest(), cluster)
        now = time.monotonic()
        cached = self.access.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        response = await self.client.fetch(
            f"{self.upstream}{self.prefix}/api/v1/clusters/{cluster}",
            headers={"Authorization": f"jupyterhub {token}"},
            raise_error=False,
            request_timeout=30,
        )
        status = response.code if response.code in (200, 403, 404) else 401
        self.access = {k: v for k, v in self.access.items() if v[0] > now}
        self.access[key] = (now + ACCESS_CACHE_SECONDS, status)
        return status

    def dashboard(self, path: str) -> re.Match | None:
        """The cluster name and rest of ``path`` (below the prefix) if it is a dashboard's."""
        return DASHBOARD_PATH.match(path[len(self.prefix) :])

    def stamp(self, cluster: str) -> str:
        """The mark of a dashboard request for ``cluster`` this service has let through."""
        return hmac.new(self.secret, cluster.encode(), hashlib.sha256).hexdigest()

    async def decide(
        self, path: str, user: dict | None, token: str | None, stamp: str | None = None
    ) -> tuple[int, str]:
        """Whether a request for ``path`` may reach the gateway: ``(200, "")``, or the refusal.

        Parameters
        ----------
        path : str
            The request's path, service prefix included.
        user, token : dict and str, or None
            The hub user making the request and their token (None: anonymous).
        stamp : str, optional
            A :data:`GATE_HEADER` value: the request was let through by this service already.
        """
        match = self.dashboard(path)
        if match is None or (match["rest"] or "") == ANONYMOUS_PLOT_LIST:
            return 200, ""
        if stamp and hmac.compare_digest(stamp, self.stamp(match["name"])):
            return 200, ""
        if user is None:
            return 401, "log in to the hub, or send a hub token (Authorization: token ...)"
        status = await self.cluster_access(token, match["name"])
        if status != 200:
            return status, f"{user['name']} may not see the dashboard of cluster {match['name']}"
        return 200, ""


def _forwarded_headers(headers: HTTPHeaders, *, dashboard: bool) -> dict[str, str]:
    """The request's headers for upstream. A dashboard (its scheduler runs the owner's code)
    gets no credentials at all: they stop here. The gateway API gets the token header and its
    own cookie, not the hub's or this service's."""
    forwarded = {}
    for name, value in headers.get_all():
        lower = name.lower()
        if lower in NOT_FORWARDED or (dashboard and lower in ("authorization", "cookie")):
            continue
        if lower == "cookie":
            value = "; ".join(c for c in value.split("; ") if c.startswith("dask-gateway="))
            if not value:
                continue
        forwarded[name] = value
    return forwarded


class GateHandler(HubOAuthenticated, websocket.WebSocketHandler):
    """Any request below the prefix: checked if it is a dashboard's, then passed on."""

    upstream_socket: websocket.WebSocketClientConnection | None = None
    pending: list[str | bytes] | None = None

    def initialize(self, gate: GateSettings) -> None:
        self.gate = gate

    def check_xsrf_cookie(self) -> None:
        # Requests are forwarded, not acted on here: the gateway and the dashboard check
        # what they accept (the gateway wants a token header, which no form can send).
        return

    def check_origin(self, origin: str) -> bool:
        return True  # same as the dashboard itself (bokeh: allow_websocket_origin "*")

    def dashboard(self) -> re.Match | None:
        return self.gate.dashboard(self.request.path)

    async def allowed(self) -> bool:
        """Whether this request may reach the gateway; if not, the refusal is sent."""
        user = self.current_user
        token = self.hub_auth.get_token(self) if user is not None else None
        status, reason = await self.gate.decide(self.request.path, user, token)
        if status == 200:
            return True
        if status == 401 and self.request.method == "GET" and not self._is_websocket():
            self.redirect(self.get_login_url())  # a browser: through the hub's login, then back
        else:
            self.send_error(status, reason=reason)
        return False

    def upstream_headers(self) -> dict[str, str]:
        """The headers sent on: a dashboard's without credentials, with this service's stamp."""
        match = self.dashboard()
        headers = _forwarded_headers(self.request.headers, dashboard=match is not None)
        if match is not None:
            headers[GATE_HEADER] = self.gate.stamp(match["name"])
        return headers

    def _is_websocket(self) -> bool:
        return self.request.headers.get("Upgrade", "").lower() == "websocket"

    async def get(self, *args, **kwargs) -> None:
        if not await self.allowed():
            return
        if not self._is_websocket():
            await self.forward()
            return
        # Connect upstream first, so the client gets the subprotocol the dashboard chose
        # (bokeh sends its session token as one).
        headers = self.upstream_headers()
        for name in [n for n in headers if n.lower().startswith("sec-websocket")]:
            del headers[name]
        protocols = [
            p.strip()
            for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        url = "ws" + self.upstream_url()[len("http") :]
        self.pending = []
        self.upstream_socket = await websocket.websocket_connect(
            httpclient.HTTPRequest(url, headers=headers, request_timeout=30),
            on_message_callback=self.from_upstream,
            subprotocols=protocols or None,
            max_message_size=1 << 30,
        )
        await super().get(*args, **kwargs)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return self.upstream_socket.selected_subprotocol if self.upstream_socket else None

    def from_upstream(self, message: str | bytes | None) -> None:
        if message is None:
            self.close()
        elif self.pending is not None:  # the client's handshake is not done yet
            self.pending.append(message)
        else:
            self.write_message(message, binary=isinstance(message, bytes))

    def open(self, *args, **kwargs) -> None:
        # The dashboard speaks first (bokeh's ACK), often before the client's side is open.
        pending, self.pending = self.pending or [], None
        for message in pending:
            self.write_message(message, binary=isinstance(message, bytes))

    async def on_message(self, message: str | bytes) -> None:
        await self.upstream_socket.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        if self.upstream_socket is not None:
            self.upstream_socket.close()

    async def post(self, *args, **kwargs) -> None:
        if await self.allowed():
            await self.forward()

    put = patch = delete = post

    def upstream_url(self) -> str:
        return self.gate.upstream + self.request.uri

    async def forward(self) -> None:
        try:
            response = await self.gate.client.fetch(
                self.upstream_url(),
                method=self.request.method,
                headers=self.upstream_headers(),
                body=self.request.body if self.request.method in WITH_BODY else None,
                follow_redirects=False,
                raise_error=False,
                decompress_response=False,
                # The gateway's clients long-poll cluster status for up to a few minutes.
                request_timeout=600,
            )
        except OSError as error:  # no answer at all: the gateway is down or restarting
            self.send_error(502, reason=f"Dask Gateway did not answer: {error}")
            return
        if response.code == 599:
            self.send_error(502, reason=f"Dask Gateway did not answer: {response.error}")
            return
        self.set_status(response.code, response.reason)
        self.clear_header("Content-Type")
        for name, value in response.headers.get_all():
            if name.lower() not in NOT_FORWARDED:
                self.add_header(name, value)
        if response.body and response.code != 304:
            self.write(response.body)
        await self.finish()


class ForwardAuthHandler(HubOAuthenticated, web.RequestHandler):
    """traefik's question (ForwardAuth) about a request made to the gateway's proxy directly.

    The request's method, URI and headers come as traefik sends them (``X-Forwarded-Uri``, set
    by traefik itself, never taken from the client). 2xx lets it through; any other answer is
    what the client gets. traefik replaces the request's ``Authorization``, ``Cookie`` and
    :data:`GATE_HEADER` with those of the answer (its ``authResponseHeaders``): an API request
    gets its credentials back, a dashboard request gets none, as through :class:`GateHandler`.
    """

    def initialize(self, gate: GateSettings) -> None:
        self.gate = gate

    def check_xsrf_cookie(self) -> None:
        return  # a question, acted on by traefik: nothing here changes state

    async def get(self) -> None:
        path = unquote(urlsplit(self.request.headers.get("X-Forwarded-Uri", "")).path)
        if "//" in path or posixpath.normpath(path) != (path.rstrip("/") or "/"):
            # traefik routes the cleaned path: a path that cleans to another one is not guessed at.
            raise web.HTTPError(400, reason="the forwarded URI is not a plain path")
        user = self.current_user
        token = self.hub_auth.get_token(self) if user is not None else None
        status, reason = await self.gate.decide(
            path, user, token, self.request.headers.get(GATE_HEADER)
        )
        if status != 200:
            raise web.HTTPError(status, reason=reason)
        if self.gate.dashboard(path) is None:
            for name in ("Authorization", "Cookie"):
                if name in self.request.headers:
                    self.set_header(name, self.request.headers[name])
        self.finish({"allowed": True})


class RootHandler(web.RequestHandler):
    """The service's own root: answered here, so the hub sees the service up even while the
    gateway behind it (a separate service, started after it) is not yet."""

    def get(self) -> None:
        self.finish({"service": "dask-gateway", "api": "api/", "dashboards": "clusters/<name>/"})


def make_app(upstream: str, prefix: str = SERVICE_PREFIX) -> web.Application:
    """The gate below ``prefix`` (the hub's service prefix), passing on to ``upstream``."""
    secret = gate_secret()
    gate = GateSettings(upstream, prefix, secret)
    base = prefix.rstrip("/")
    return web.Application(
        [
            (f"{base}/?", RootHandler),
            (f"{base}/oauth_callback", HubOAuthCallbackHandler),
            (f"{base}{FORWARD_AUTH_PATH}", ForwardAuthHandler, {"gate": gate}),
            (f"{base}/.*", GateHandler, {"gate": gate}),
        ],
        cookie_secret=secret,
    )


def gate_secret() -> bytes:
    """The secret of the OAuth cookie and the stamps: derived from the service's hub token
    (stable across restarts, unknown to users)."""
    token = os.environ["JUPYTERHUB_API_TOKEN"]
    return hashlib.sha256(f"eosc-pangeo-dashboards:{token}".encode()).digest()


def main(argv: list[str] | None = None) -> None:
    import asyncio

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument(
        "--upstream", required=True, help="the gateway's HTTP proxy, e.g. http://127.0.0.1:8001"
    )
    parser.add_argument("--prefix", default=SERVICE_PREFIX)
    args = parser.parse_args(argv)

    async def serve() -> None:
        make_app(args.upstream, args.prefix).listen(args.port, args.ip, xheaders=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
