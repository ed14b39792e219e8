"""The STAC API as a JupyterHub service: the catalogue's app behind the hub's token check.

Started by the hub (``python -m eosc_pangeo.platform.catalog_service --lake L --port P``), it
serves :func:`eosc_pangeo.catalog.api.create_app` below ``/services/catalog/`` and answers only
requests carrying a hub token (``Authorization: token ...``) of a user allowed to use the
service; notebooks send theirs (see ``eosc_pangeo.catalog.remote``).
"""

from __future__ import annotations

import argparse
import json

SERVICE_NAME = "catalog"


class HubTokenCheck:
    """ASGI middleware: 401 without a hub token, 403 without access to this service.

    jupyterhub's ``HubAuth`` asks the hub who owns the token (cached ``cache_max_age``
    seconds, so a revoked token stops working within that time) and which scopes it has.
    """

    def __init__(self, app, cache_max_age: int = 10) -> None:
        from jupyterhub.services.auth import HubAuth

        self.app = app
        self.auth = HubAuth(cache_max_age=cache_max_age)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] == "/_health":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization", b"").decode()
        kind, _, token = authorization.partition(" ")
        model = None
        if kind.lower() in ("token", "bearer") and token:
            model = await self.auth.user_for_token(token.strip(), sync=False)
        if model is None:
            await _answer(send, 401, "send a JupyterHub API token: Authorization: token <token>")
            return
        if not self.auth.check_scopes(self.auth.access_scopes, model):
            await _answer(send, 403, f"{model.get('name')} may not use the {SERVICE_NAME} service")
            return
        await self.app(scope, receive, send)


async def _answer(send, status: int, message: str) -> None:
    body = json.dumps({"code": status, "description": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BelowPrefix:
    """ASGI middleware: serve ``app`` below ``prefix`` (the hub's proxy keeps the prefix in
    the path) as its ``root_path``, so that the links the app writes include it.

    ``X-Forwarded-*`` headers are dropped and links built from the Host header, which the
    hub's proxy keeps: the pure-Python configurable-http-proxy writes them malformed
    (``,http``; a host with its port and the port again), and stac-fastapi's proxy-header
    middleware would copy that into every link.
    """

    def __init__(self, app, prefix: str) -> None:
        self.app, self.prefix = app, prefix.rstrip("/")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            path = scope["path"]
            if path != self.prefix and not path.startswith(self.prefix + "/"):
                await _answer(send, 404, f"not below {self.prefix}/")
                return
            headers = [
                (key, value)
                for key, value in scope["headers"]
                if not key.startswith(b"x-forwarded-")
            ]
            scope = {
                **scope,
                "root_path": scope.get("root_path", "") + self.prefix,
                "path": path[len(self.prefix) :] or "/",
                "headers": headers,
            }
        await self.app(scope, receive, send)


def create_service_app(lake: str, prefix: str):
    """The catalogue's STAC API below ``prefix``, with ``/_health`` for the runner."""
    from ..catalog.api import create_app

    app = create_app(lake)

    @app.get("/_health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return BelowPrefix(HubTokenCheck(app), prefix)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", default=f"/services/{SERVICE_NAME}")
    args = parser.parse_args(argv)
    uvicorn.run(
        create_service_app(args.lake, args.prefix),
        host="127.0.0.1",
        port=args.port,
        proxy_headers=False,
        log_level="info",
    )


if __name__ == "__main__":
    main()
