"""The data service's HTTP API (FastAPI): the lake's files and subsets for clients outside the hub.

=================================  ===========================================================
``/zarr/<id>/...``                 a grid's map store as Zarr v3, file by file (plain
                                   ``xr.open_zarr(url)``); ``/zarr-timeseries/<id>/...`` its
                                   time-series store, the one to read point series from
``/parquet/<id>/``                 an in-situ collection's GeoParquet files (list, then ``Range``
                                   reads, as DuckDB, pyarrow and fsspec do)
``/opendap/<id>.dds|.das|.dods``   OPeNDAP (DAP 2) with hyperslabs, for pydap and netCDF-C
``/edr/<id>/position|area|cube``   OGC API - EDR queries, grids and in-situ
=================================  ===========================================================

Only GET and HEAD exist: nothing can be written through the service. Files are sent as stored
(their compressed chunks, so a client reads no more than the chunks it needs): GeoParquet files
stream as they are read; a Zarr store's files, chunks of a few MB, are read whole within one
version of the collection first. OPeNDAP and EDR answers are computed within the client's size
limit and one version of the collection (see
:meth:`~eosc_pangeo.access.collections.LakeCollections.consistent`), then streamed.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ..lake import Lake, LakeError
from .collections import LakeCollections
from .edr import (
    GRID_FORMATS,
    INSITU_FORMATS,
    encode_grid,
    encode_rows,
    insitu_rows,
    parse_query,
    select_grid,
)
from .errors import (
    AccessError,
    Forbidden,
    NotFound,
    RangeNotSatisfiable,
    TooLarge,
    Unauthorized,
)
from .opendap import check_size, parse_constraint
from .policy import AccessPolicy, Authenticator, Client, RateLimiter
from .urls import collection_urls

BLOCK = 1024**2
CollectionId = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Collection id, as the catalogue lists it.",
    ),
]
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def create_app(
    lake: str | Lake, policy: AccessPolicy | None = None, *, rate_store: str = ":memory:"
) -> FastAPI:
    """The data service for ``lake`` under ``policy`` (default: every collection needs a key).

    Parameters
    ----------
    lake
        The lake to serve, read only.
    policy
        Public collections, credentials and limits, see :class:`AccessPolicy`.
    rate_store
        Where the clients' request counts are kept (see :class:`RateLimiter`): an SQLite file
        that several processes serving the same lake share, or this process's memory.
    """
    policy = policy or AccessPolicy()
    service = DataService(LakeCollections(Lake.from_url(lake)), policy)
    app = FastAPI(
        title="eosc-pangeo data service", description=__doc__.split("\n\n", 1)[0], version="1"
    )
    app.state.authenticator = Authenticator(policy)
    app.state.rate = RateLimiter(policy.limits, rate_store)

    @app.exception_handler(AccessError)
    async def access_error(request: Request, error: AccessError) -> JSONResponse:
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after else {}
        if isinstance(error, RangeNotSatisfiable):
            headers["Content-Range"] = f"bytes */{error.size}"
        return JSONResponse({"detail": str(error)}, status_code=error.status, headers=headers)

    @app.exception_handler(LakeError)
    async def lake_error(request: Request, error: LakeError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    _file_routes(app, service)
    _subset_routes(app, service)
    return app


@dataclass(frozen=True)
class DataService:
    """What every route needs: the lake's collections and the access policy."""

    collections: LakeCollections
    policy: AccessPolicy

    @property
    def limit(self) -> int:
        return self.policy.limits.max_response_bytes

    def readable(self, collection: str, who: Client) -> str:
        """``collection`` if ``who`` may read it, else the 404, 401 or 403 that says why."""
        ids = self.collections.ids()
        if collection not in ids:
            # Name only what this client may read: other ids are not its business.
            known = ", ".join(c for c in ids if who.may_read(c, self.policy)) or "none"
            raise NotFound(
                f"no collection {collection!r} here (yours to read: {known}); "
                "/collections lists them with their URLs"
            )
        if who.may_read(collection, self.policy):
            return collection
        if who.anonymous:
            raise Unauthorized(
                f"collection {collection!r} is not public: send an API key "
                "(X-API-Key) or a hub token (Authorization: token ...)"
            )
        raise Forbidden(f"{who.name} may not read collection {collection!r}")

    def store_file(
        self, route: str, collection: str, key: str, request: Request, who: Client
    ) -> Response:
        """A file of one of a grid's Zarr stores, read whole within one version of the
        collection (see :meth:`LakeCollections.consistent`): an ingest rewrites chunks in
        place, so a chunk read while it runs could be half written, or of the next version
        already. Buffered: a store's files are chunks of a few MB at most (the lake's chunk
        planning bounds them), and under the client's size limit in any case."""
        readable = self.readable(collection, who)
        path = self.collections.store_file(readable, route, key)
        return self.collections.consistent(
            readable,
            lambda: file_response(
                self.collections.lake.fs, path, request, self.limit, buffered=True
            ),
        )


def _file_routes(app: FastAPI, service: DataService) -> None:
    """The service's index and the lake's files: Zarr stores and GeoParquet."""

    @app.get("/", summary="What this service serves")
    def index(request: Request, who: Who) -> dict:
        base = str(request.base_url).rstrip("/")
        return {
            "collections": f"{base}/collections",
            "openapi": f"{base}/openapi.json",
            "limits": service.policy.limits.model_dump(),
        }

    @app.get("/collections", summary="The collections this client may read, with their URLs")
    def list_collections(request: Request, who: Who) -> list[dict]:
        base = str(request.base_url).rstrip("/")
        return [
            collection_links(base, service.collections.get(cid).manifest)
            for cid in service.collections.ids()
            if who.may_read(cid, service.policy)
        ]

    @get_and_head(
        app,
        "/zarr/{collection}/{key:path}",
        summary="A file of a grid's map store (Zarr v3)",
    )
    def zarr_map(collection: CollectionId, key: str, request: Request, who: Who) -> Response:
        return service.store_file("zarr", collection, key, request, who)

    @get_and_head(
        app,
        "/zarr-timeseries/{collection}/{key:path}",
        summary="A file of a grid's time-series store (Zarr v3)",
    )
    def zarr_timeseries(collection: CollectionId, key: str, request: Request, who: Who) -> Response:
        return service.store_file("zarr-timeseries", collection, key, request, who)

    @app.get("/parquet/{collection}/", summary="The GeoParquet files of an in-situ collection")
    def parquet_files(collection: CollectionId, request: Request, who: Who) -> list[dict]:
        served = service.collections.get(service.readable(collection, who))
        if served.kind != "insitu":
            raise NotFound(
                f"collection {collection!r} is a grid: read it as Zarr at /zarr/{collection}"
            )
        base = f"{str(request.base_url).rstrip('/')}/parquet/{collection}"
        return [
            {
                "url": f"{base}/{f.path}",
                "size": f.size,
                "rows": f.rows,
                "bbox": f.bbox,
                "time": [f.time_start, f.time_end],
                "sha256": f.sha256,
            }
            for f in served.manifest.files
        ]

    @get_and_head(
        app,
        "/parquet/{collection}/{key:path}",
        summary="One GeoParquet file, whole or by byte range",
    )
    def parquet_file(collection: CollectionId, key: str, request: Request, who: Who) -> Response:
        path, _ = service.collections.parquet_file(service.readable(collection, who), key)
        return file_response(service.collections.lake.fs, path, request, service.limit)


def _subset_routes(app: FastAPI, service: DataService) -> None:
    """Subsets computed by the service: OPeNDAP and EDR."""

    @app.get("/opendap/{name}", summary="OPeNDAP (DAP 2): <id>.dds, <id>.das or <id>.dods")
    def opendap(
        name: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")],
        request: Request,
        who: Who,
    ) -> Response:
        collection, _, response = name.rpartition(".")
        if response not in ("dds", "das", "dods") or not collection:
            raise NotFound(
                f"{name!r}: OPeNDAP URLs end in .dds, .das or .dods, e.g. /opendap/sst.dds"
            )
        service.readable(collection, who)
        query = request.url.query

        def read() -> list[bytes]:
            from .dap_objects import dap_dataset  # see its module: not loaded with the package

            ds = service.collections.dataset(collection, packed=True)
            projections = parse_constraint(query, ds)
            if response == "dods":
                check_size(projections, ds, service.limit)
            dataset = dap_dataset(
                ds, collection, projections if query else None, with_data=response == "dods"
            )
            parts = [
                part if isinstance(part, bytes) else part.encode()
                for part in getattr(dataset, response)(constraint="")
            ]
            # opendap-protocol separates the DDS from the data with "Data:\r\n"; DAP 2
            # servers (Hyrax, THREDDS) send "Data:\n", which pydap requires.
            return [b"Data:\n" if part == b"Data:\r\n" else part for part in parts]

        parts = service.collections.consistent(collection, read)
        media = "application/octet-stream" if response == "dods" else "text/plain"
        # The header DAP 2 clients look at to tell data from an error.
        description = "dods_data" if response == "dods" else f"dods_{response}"
        return subset_response(parts, media, request, {"Content-Description": description})

    @app.get("/edr/{collection}/{query}", summary="OGC API - EDR position, area or cube query")
    def edr(
        collection: CollectionId,
        query: Literal["position", "area", "cube"],
        request: Request,
        who: Who,
        coords: Annotated[str | None, Query(description="WKT POINT or POLYGON")] = None,
        bbox: Annotated[str | None, Query(description="west,south,east,north")] = None,
        datetime: Annotated[str | None, Query(description="instant or start/end")] = None,
        parameter_name: Annotated[str | None, Query(alias="parameter-name")] = None,
        z: Annotated[str | None, Query(description="level or low/high")] = None,
        f: Annotated[str | None, Query(description="output format")] = None,
    ) -> Response:
        served = service.collections.get(service.readable(collection, who))
        params = {
            k: v
            for k, v in {
                "coords": coords,
                "bbox": bbox,
                "datetime": datetime,
                "parameter-name": parameter_name,
                "z": z,
                "f": f,
            }.items()
            if v is not None
        }
        if served.kind == "grid":
            parsed = parse_query(query, params, GRID_FORMATS)

            def read() -> tuple[bytes, str]:
                return encode_grid(
                    select_grid(
                        service.collections.dataset(collection), parsed, service.limit
                    ).load(),
                    parsed.format,
                )
        else:
            parsed = parse_query(query, params, INSITU_FORMATS)
            variables = dict(served.manifest.variables)

            def read() -> tuple[bytes, str]:
                return encode_rows(
                    insitu_rows(
                        service.collections.lake, collection, parsed, variables, service.limit
                    ),
                    parsed.format,
                    variables,
                )

        body, media = service.collections.consistent(collection, read)
        return subset_response([body], media, request)


def get_and_head(app: FastAPI, path: str, summary: str) -> Callable:
    """Register a function for GET and HEAD of ``path``, as two routes: ``app.api_route`` with
    both methods gives them one operation id, which the OpenAPI document then repeats (and
    which schemathesis and client generators trip on)."""

    def register(endpoint: Callable) -> Callable:
        app.head(path, summary=f"{summary} (headers only)")(endpoint)
        return app.get(path, summary=summary)(endpoint)

    return register


def client(request: Request) -> Client:
    """Who sent ``request`` (a dependency of every route), counted against its rate limit."""
    state = request.app.state
    who = state.authenticator.client(
        request.headers,
        dict(request.query_params),
        request.client.host if request.client else "unknown",
    )
    state.rate.allow(who)
    return who


Who = Annotated[Client, Depends(client)]


def collection_links(base: str, manifest) -> dict:
    """Where a collection is served, as the catalogue's assets and distributions point."""
    return {
        "id": manifest.id,
        "kind": manifest.kind,
        "title": manifest.attributes.get("title"),
        "version": manifest.version,
        "links": collection_urls(base, manifest),
    }


def subset_response(
    parts: list[bytes], media_type: str, request: Request, headers: dict[str, str] | None = None
) -> Response:
    """Stream a computed subset, compressed for clients that accept it (see :func:`encoded`)."""
    blocks, encoding = encoded(
        (part[start : start + BLOCK] for part in parts for start in range(0, len(part), BLOCK)),
        request,
    )
    return StreamingResponse(blocks, media_type=media_type, headers={**(headers or {}), **encoding})


#: zlib's window bits for each HTTP content coding ("deflate" is the zlib format, RFC 9110).
CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def encoded(blocks: Iterable[bytes], request: Request) -> tuple[Iterable[bytes], dict]:
    """``blocks`` compressed as they stream, in the first coding the client accepts, and the
    headers that say so.

    Written by hand rather than with starlette's GZipMiddleware, which picks responses by
    media type: OPeNDAP data and the lake's chunks are both ``application/octet-stream``, but
    the chunks are compressed already. It also adds ``deflate``, the coding netCDF-C asks for
    first. Level 1, the fastest: the service's CPU is shared by every client, and the lake's
    own chunks use zstd's fastest level.
    """
    coding = next(
        (
            name
            for name in accepted_codings(request.headers.get("accept-encoding", ""))
            if name in CODINGS
        ),
        None,
    )
    if coding is None:
        return blocks, {}

    def compress() -> Iterator[bytes]:
        compressor = zlib.compressobj(1, zlib.DEFLATED, CODINGS[coding])
        for block in blocks:
            if out := compressor.compress(block):
                yield out
        yield compressor.flush()

    return compress(), {"Content-Encoding": coding, "Vary": "Accept-Encoding"}


def accepted_codings(header: str) -> list[str]:
    """The codings of an ``Accept-Encoding`` header, most preferred first, without q=0 ones."""
    weighted = []
    for position, item in enumerate(header.lower().split(",")):
        name, _, parameters = item.partition(";")
        quality = 1.0
        for parameter in parameters.split(";"):
            key, _, value = parameter.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if name.strip() and quality > 0:
            weighted.append((-quality, position, name.strip()))
    return [name for *_, name in sorted(weighted)]


def file_response(
    fs, path: str, request: Request, limit: int, *, buffered: bool = False
) -> Response:
    """Stream the file ``path``, whole or the one byte range the request asks for; read it
    before returning when ``buffered``, rather than as the response is sent."""
    try:
        info = fs.info(path)
    except (FileNotFoundError, NotADirectoryError):
        # Zarr readers take a 404 for a chunk that holds only the fill value.
        raise NotFound(f"no such file {path.rsplit('/', 1)[-1]!r} in this store") from None
    if info.get("type") != "file":
        raise NotFound("a store's folders are not served: ask for a file (zarr.json, c/0/0)")
    size = int(info["size"])
    start, end, status = 0, size, 200
    header = request.headers.get("range")
    if header:
        start, end = _byte_range(header, size)
        status = 206
    if end - start > limit:
        raise TooLarge(
            f"{end - start} bytes is over this client's limit of {limit} bytes per "
            "request: read the file in byte ranges (Range: bytes=0-1048575, ...)"
        )
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start)}
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)

    def stream() -> Iterator[bytes]:
        with fs.open(path, "rb") as f:
            f.seek(start)
            remaining = end - start
            while remaining > 0:
                block = f.read(min(BLOCK, remaining))
                if not block:
                    return
                remaining -= len(block)
                yield block

    blocks: Iterable[bytes] = [b"".join(stream())] if buffered else stream()
    if status == 200 and path.endswith(".json"):
        # Zarr's metadata is the one stored file that is not compressed already.
        blocks, encoding = encoded(blocks, request)
        if encoding:
            del headers["Content-Length"]
            headers.update(encoding)
    return StreamingResponse(
        blocks, status_code=status, headers=headers, media_type="application/octet-stream"
    )


def _byte_range(header: str, size: int) -> tuple[int, int]:
    match = _RANGE.match(header.strip())
    if match is None or match.groups() == ("", ""):
        raise RangeNotSatisfiable(
            f"Range {header!r}: one range is served, as bytes=start-end, "
            "bytes=start- or bytes=-length",
            size,
        )
    first, last = match.groups()
    if first == "":
        start, end = max(size - int(last), 0), size
    else:
        start = int(first)
        end = size if last == "" else min(int(last) + 1, size)
    if start >= size or start >= end:
        raise RangeNotSatisfiable(f"Range {header!r} is outside the file's {size} bytes", size)
    return start, end


def serve(
    lake: str | Lake | None = None,
    *,
    policy: AccessPolicy | None = None,
    host: str = "127.0.0.1",
    port: int = 8090,
    prefix: str = "",
    workers: int = 1,
) -> None:
    """Serve ``lake`` until interrupted, below ``prefix`` (e.g. a hub service's
    ``/services/eosc-data``), in ``workers`` processes.

    The processes are gunicorn's, each running the app in uvicorn; they share the port and
    the clients' rate limits (an SQLite file in a temporary folder, removed on exit). The app
    is built once here first, so that a bad lake or policy is one clear error, not a worker
    that fails to boot.
    """
    import os
    import shutil
    import tempfile

    if workers < 1:
        raise AccessError(f"--workers {workers}: serve with at least one worker process")
    folder = tempfile.mkdtemp(prefix="eosc-data-")
    rate_store = f"{folder}/rates.sqlite"

    def build() -> FastAPI:
        app = create_app(lake, policy, rate_store=rate_store)
        if not prefix.strip("/"):
            return app
        outer = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        outer.mount("/" + prefix.strip("/"), app)
        return outer

    build()
    master = os.getpid()
    try:
        _workers(build, f"{host}:{port}", workers).run()
    finally:
        # Gunicorn's workers are forks that leave through this frame too: only the master,
        # once they are all gone, removes what they share.
        if os.getpid() == master:
            shutil.rmtree(folder, ignore_errors=True)


def _workers(build, bind: str, workers: int):
    """A gunicorn application that builds the app in each worker process, after the fork."""
    from gunicorn.app.base import BaseApplication
    from uvicorn_worker import UvicornWorker

    class Worker(UvicornWorker):
        # No proxy headers: the hub's pure-Python proxy writes X-Forwarded-* malformed, and
        # the Host header it keeps is what links are built from.
        # A bounded shutdown: the hub stops its services one after another, and uvicorn would
        # otherwise wait without end for its open connections (the hub's proxy keeps some).
        CONFIG_KWARGS = {
            **UvicornWorker.CONFIG_KWARGS,
            "proxy_headers": False,
            "timeout_graceful_shutdown": 3,
        }

    class Service(BaseApplication):
        def load_config(self) -> None:
            for key, value in {
                "bind": bind,
                "workers": workers,
                "graceful_timeout": 5,
                "worker_class": Worker,
                "accesslog": "-",
                "loglevel": "info",
                # gunicorn's control socket defaults to one path per user account
                # (~/.gunicorn/gunicorn.ctl), shared by every service it runs; none is used.
                "control_socket_disable": True,
            }.items():
                self.cfg.set(key, value)

        def load(self):
            return build()

    return Service()
