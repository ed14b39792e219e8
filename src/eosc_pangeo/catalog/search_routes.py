"""The STAC API's search routes (``GET``/``POST /search``, ``GET /collections``) answered
ahead of FastAPI's parameter machinery.

stac-fastapi declares these routes and FastAPI documents them (the OpenAPI document, the
conformance classes stay theirs), but on the way to the backend each request passed through
FastAPI's dependency solving, its routing and its exception middleware: measured in process
through the ASGI app, about two thirds of the server's time per search. :class:`SearchRoutes`,
the innermost middleware of the application, answers these three routes itself with the same
request models (stac-fastapi's GET models validate bbox and datetime in their converters, the
POST model is pydantic) and the same backend methods, so answers are the same; every other
request goes on to FastAPI. Errors are rendered by the application's own exception handlers, so
a bad parameter gets the same 400 and message as through FastAPI.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import attr
import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from stac_fastapi.types.core import AsyncBaseCoreClient
from stac_fastapi.types.search import APIRequest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import CatalogError

#: Content types a POST /search may have; anything else is a 415.
_JSON_TYPES = ("application/json", "application/geo+json")


class SearchRoutes:
    """An ASGI middleware answering the search routes from ``client``; see the module.

    Parameters
    ----------
    app
        The rest of the application (FastAPI's exception middleware and router).
    client
        The stac-fastapi backend.
    search_get
        stac-fastapi's GET request model of ``/search``, extensions included.
    search_post
        Its POST request model.
    collections_get
        The GET request model of ``/collections`` (collection search).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        client: AsyncBaseCoreClient,
        search_get: type[APIRequest],
        search_post: type[BaseModel],
        collections_get: type[APIRequest],
    ) -> None:
        self.app = app
        self.routes: dict[tuple[str, str], Callable[[Request], Awaitable[Response]]] = {
            ("GET", "/search"): _get_route(search_get, client.get_search),
            ("POST", "/search"): _post_route(search_post, client.post_search),
            ("GET", "/collections"): _get_route(collections_get, client.all_collections),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (
            self.routes.get((scope["method"], _route_path(scope)))
            if scope["type"] == "http"
            else None
        )
        if route is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await route(request)
        except Exception as error:  # noqa: BLE001 - handed to the app's handlers or re-raised
            response = await _handled(request, error)
        await response(scope, receive, send)


def _get_route(model: type[APIRequest], endpoint: Callable[..., Awaitable[Response]]):
    """A route building ``model`` from the query string and calling ``endpoint`` with it, as
    stac-fastapi's GET endpoints do."""
    # The models' fields are named as their query parameters (no aliases in the extensions
    # this API enables).
    names = [field.name for field in attr.fields(model)]

    async def route(request: Request) -> Response:
        given = request.query_params
        arguments = {name: given[name] for name in names if name in given}
        if "limit" in arguments:
            arguments["limit"] = _page_size(arguments["limit"])
        return await endpoint(request=request, **model(**arguments).kwargs())

    return route


def _post_route(model: type[BaseModel], endpoint: Callable[..., Awaitable[Response]]):
    """A route validating a JSON body with ``model`` and calling ``endpoint`` with it, as
    stac-fastapi's POST endpoint does; a body that is not JSON gets 415, one that is not an
    object 400."""

    async def route(request: Request) -> Response:
        media_type = request.headers.get("content-type", "application/json").split(";")[0]
        if media_type.strip() not in _JSON_TYPES:
            return JSONResponse(
                {
                    "code": "UnsupportedMediaType",
                    "description": "send the search as application/json",
                },
                status_code=415,
            )
        try:
            body = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            # stac-pydantic's validators assume an object and would fail with a 500
            # (found by schemathesis).
            raise CatalogError("the search body must be a JSON object")
        try:
            search = model.model_validate(body)
        except ValidationError as error:
            raise RequestValidationError(
                [
                    {**e, "loc": ("body", *e["loc"])}
                    for e in error.errors(include_url=False, include_context=False)
                ],
                body=body,
            ) from None
        return await endpoint(search, request=request)

    return route


def _page_size(text: str) -> int:
    """The ``limit`` parameter as an integer; its range is the backend's to check."""
    try:
        return int(text)
    except ValueError:
        raise CatalogError(f"limit must be a whole number, got {text!r}") from None


def _route_path(scope: Scope) -> str:
    """The request's path below the application's root path, as Starlette routes it."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _handled(request: Request, error: Exception) -> Response:
    """The response the application's exception handlers give for ``error``.

    Raises
    ------
    Exception
        ``error`` itself when no handler takes it: the server error middleware answers 500.
    """
    handlers: dict[Any, Callable] = request.app.exception_handlers
    handler = next((handlers[c] for c in type(error).__mro__ if c in handlers), None)
    if handler is None:
        raise error
    response = handler(request, error)
    return await response if inspect.isawaitable(response) else response
