"""The repositories a collection syncs from: their files, each with what tells its versions apart.

A source lists its files as :class:`RemoteFile` records (size, ETag or checksum, modification
time) and opens them for reading at an offset, so that an interrupted transfer resumes. Adapters:

``s3://``, ``sftp://``, local paths, ``http(s)://`` directory listings
    fsspec file systems (s3fs; fsspec's SFTP over paramiko; fsspec's HTTP, which reads the links
    of a listing page and then asks each file's size, ETag and Last-Modified with a HEAD).
``http(s)://.../catalog.xml``
    a THREDDS client catalogue, read with Unidata's siphon (nested catalogues followed); its
    datasets are fetched from the server's HTTPServer (fileServer) service.
``irods://ZONE/path``
    iRODS through python-irodsclient, connected as the user's iRODS environment file says
    (``~/.irods/irods_environment.json``, as icommands do). iRODS servers running the iRODS S3
    API are also reachable as ``s3://`` with its endpoint in the storage options.
"""

from __future__ import annotations

import base64
import fnmatch
import posixpath
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

from .errors import SourceError

#: Files whose HEAD requests run at once when an HTTP listing is read.
HEAD_REQUESTS = 16


@dataclass(frozen=True)
class RemoteFile:
    """A file of a source, as listed.

    ``checksum`` is ``(algorithm, hex digest)`` when the source publishes one that the transfer
    can check (S3's single-part ETag is an MD5; HTTP's ``Content-MD5`` or ``Digest``; iRODS's
    catalogue checksum), else None.
    """

    name: str
    url: str
    size: int
    etag: str | None = None
    modified: str | None = None
    checksum: tuple[str, str] | None = None


class RemoteSource(Protocol):
    url: str

    def list(self, include: str) -> list[RemoteFile]:
        """The files whose names match the glob ``include``, in name order."""

    def open(self, file: RemoteFile, offset: int) -> IO[bytes]:
        """``file`` opened for reading from byte ``offset``; FileNotFoundError if it is gone."""


def open_source(url: str, storage_options: dict[str, Any] | None = None) -> RemoteSource:
    """The adapter for the source at ``url``.

    Raises
    ------
    SourceError
        If the URL's scheme is not one a source can have.
    """
    scheme = urlsplit(url).scheme.lower() if "://" in url else "file"
    options = dict(storage_options or {})
    if scheme in ("http", "https") and url.split("?")[0].endswith(".xml"):
        return ThreddsSource(url, options)
    if scheme in ("s3", "sftp", "ssh", "file", "http", "https"):
        return FsspecSource(url, options)
    if scheme == "irods":
        return IrodsSource(url, options)
    raise SourceError(
        url,
        f"unknown scheme {scheme!r}",
        "a source is s3://, http(s):// (a directory listing or a THREDDS "
        "catalog.xml), sftp://, irods:// or a local folder",
    )


def _iso(value: Any) -> str | None:
    """A modification time as ISO 8601 UTC, whichever way the file system gives it."""
    if value is None:
        return None
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    return str(value)


def _checksum(info: dict[str, Any]) -> tuple[str, str] | None:
    """The content checksum an fsspec ``info`` record publishes, if any."""
    if md5 := info.get("Content-MD5"):
        return "md5", base64.b64decode(md5).hex()
    for digest in str(info.get("Digest", "")).split(","):  # RFC 3230: "sha-256=<base64>"
        algorithm, _, value = digest.strip().partition("=")
        if algorithm.lower() in ("sha-256", "md5") and value:
            return algorithm.lower().replace("-", ""), base64.b64decode(value).hex()
    etag = str(info.get("ETag") or "").strip('"')
    # S3's ETag of a single-part upload is the MD5 of the content; multipart ones hold a "-".
    if (
        info.get("type") == "file"
        and "LastModified" in info
        and len(etag) == 32
        and "-" not in etag
    ):
        return "md5", etag
    return None


def _remote_file(name: str, url: str, info: dict[str, Any]) -> RemoteFile:
    etag = info.get("ETag") or info.get("etag")
    modified = (
        info.get("LastModified")
        or info.get("Last-Modified")
        or info.get("mtime")
        or info.get("modified")
    )
    return RemoteFile(
        name=name,
        url=url,
        size=int(info["size"]),
        etag=str(etag).strip('"') if etag else None,
        modified=_iso(modified),
        checksum=_checksum(info),
    )


class FsspecSource:
    """A folder of an fsspec file system: S3, SFTP, an HTTP directory listing, local disk."""

    def __init__(self, url: str, storage_options: dict[str, Any]) -> None:
        import fsspec

        self.url = url.rstrip("/")
        self._local = threading.local()
        try:
            self.fs, self.path = fsspec.core.url_to_fs(self.url, **storage_options)
        except ImportError as error:
            raise SourceError(
                url,
                f"needs a package that is not installed ({error})",
                "pip install 'eosc-pangeo[sync]'",
            ) from None

    @property
    def is_http(self) -> bool:
        return "http" in (
            self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        )

    def list(self, include: str) -> list[RemoteFile]:
        # fsspec caches listings per file-system instance (shared in a process): a sync lists
        # afresh, or a second sync in one process (sync_all, a service) misses what changed.
        self.fs.invalidate_cache(self.path)
        with reaching(self.url):
            entries = self.fs.ls(self.path, detail=True)
        files = sorted(
            (e for e in entries if e.get("type") == "file" and included(e["name"], include)),
            key=lambda e: e["name"],
        )
        if not self.is_http:
            return [
                _remote_file(
                    posixpath.basename(e["name"].rstrip("/")),
                    self.fs.unstrip_protocol(e["name"]),
                    e,
                )
                for e in files
            ]
        # A listing page holds links only: size, ETag and date come from each file's HEAD.
        with ThreadPoolExecutor(HEAD_REQUESTS) as pool:
            infos = list(pool.map(lambda e: self.fs.info(e["name"]), files))
        return [
            _remote_file(posixpath.basename(e["name"]), e["name"], info)
            for e, info in zip(files, infos, strict=True)
        ]

    def open(self, file: RemoteFile, offset: int) -> IO[bytes]:
        path = file.url if self.is_http else self.fs._strip_protocol(file.url)
        # No read-ahead cache: the transfer reads in large blocks, each one ranged request.
        handle = (
            self.fs.open(path, "rb", cache_type="none", size=file.size)
            if self.is_http
            else self._thread_fs().open(path, "rb")
        )
        if offset:
            handle.seek(offset)
        return handle

    def _thread_fs(self):
        """The file system for this thread: fsspec's asynchronous ones (S3, HTTP) serve every
        thread; a blocking one gets its own connection per thread (one paramiko SFTP session
        used by parallel transfers deadlocks)."""
        from fsspec.asyn import AsyncFileSystem
        from fsspec.implementations.local import LocalFileSystem

        if isinstance(self.fs, AsyncFileSystem | LocalFileSystem):
            return self.fs
        if not hasattr(self._local, "fs"):
            self._local.fs = type(self.fs)(
                *self.fs.storage_args, **self.fs.storage_options, skip_instance_cache=True
            )
        return self._local.fs


def included(name: str, include: str) -> bool:
    """Whether the file ``name`` (a path or URL) is one the glob ``include`` asks for."""
    base = posixpath.basename(name.rstrip("/"))
    # HTTP listings also link sort orders (?C=N;O=D) and parent folders: not files.
    return "?" not in base and bool(base) and fnmatch.fnmatchcase(base, include)


class ThreddsSource:
    """The datasets of a THREDDS catalogue (and of the catalogues it references)."""

    #: How deep nested catalogRefs are followed: a data centre's tree, not a crawl of the server.
    DEPTH = 4

    def __init__(self, url: str, storage_options: dict[str, Any]) -> None:
        self.url = url
        self.http = FsspecSource(url, storage_options)

    def list(self, include: str) -> list[RemoteFile]:
        with reaching(self.url):
            urls = dict(self._datasets(self.url, include, self.DEPTH))
        with ThreadPoolExecutor(HEAD_REQUESTS) as pool, reaching(self.url):
            infos = list(pool.map(self.http.fs.info, urls.values()))
        return sorted(
            (
                _remote_file(name, url, info)
                for (name, url), info in zip(urls.items(), infos, strict=True)
            ),
            key=lambda f: f.name,
        )

    def _datasets(self, url: str, include: str, depth: int) -> Iterator[tuple[str, str]]:
        from siphon.catalog import TDSCatalog

        catalog = TDSCatalog(url)
        for dataset in catalog.datasets.values():
            # siphon's case-insensitive dict answers get() with None: index it.
            links = {k.lower(): v for k, v in dataset.access_urls.items()}
            name = posixpath.basename(dataset.url_path or "")
            if "httpserver" in links and included(name, include):
                yield name, links["httpserver"]
        if depth > 0:
            for ref in catalog.catalog_refs.values():
                yield from self._datasets(ref.href, include, depth - 1)

    def open(self, file: RemoteFile, offset: int) -> IO[bytes]:
        return self.http.open(file, offset)


class IrodsSource:
    """A collection of an iRODS zone, through python-irodsclient (not tested here: no server).

    The connection (host, port, user, authentication) is the user's iRODS environment, as
    icommands read it: ``$IRODS_ENVIRONMENT_FILE`` or ``~/.irods/irods_environment.json``,
    with the password in ``~/.irods/.irodsA`` (``iinit``).
    """

    def __init__(self, url: str, storage_options: dict[str, Any]) -> None:
        parts = urlsplit(url)
        self.url = url.rstrip("/")
        self.path = f"/{parts.netloc}{parts.path}".rstrip("/")
        self.options = storage_options
        self._session = None

    @property
    def session(self):
        if self._session is None:
            import os

            try:
                from irods.session import iRODSSession
            except ImportError:
                raise SourceError(
                    self.url, "needs python-irodsclient", "pip install 'eosc-pangeo[sync]'"
                ) from None
            env_file = os.environ.get(
                "IRODS_ENVIRONMENT_FILE", os.path.expanduser("~/.irods/irods_environment.json")
            )
            if not os.path.exists(env_file):
                raise SourceError(
                    self.url,
                    f"no iRODS environment file at {env_file}",
                    "run iinit, or set IRODS_ENVIRONMENT_FILE",
                )
            self._session = iRODSSession(irods_env_file=env_file, **self.options)
        return self._session

    def list(self, include: str) -> list[RemoteFile]:
        with reaching(self.url):
            collection = self.session.collections.get(self.path)
            objects = [o for o in collection.data_objects if included(o.name, include)]
        return sorted(
            (
                RemoteFile(
                    name=o.name,
                    url=f"{self.url}/{o.name}",
                    size=o.size,
                    etag=o.checksum,
                    modified=_iso(o.modify_time),
                    checksum=_irods_checksum(o.checksum),
                )
                for o in objects
            ),
            key=lambda f: f.name,
        )

    def open(self, file: RemoteFile, offset: int) -> IO[bytes]:
        from irods.exception import DataObjectDoesNotExist

        try:
            handle = self.session.data_objects.open(f"{self.path}/{file.name}", "r")
        except DataObjectDoesNotExist:
            raise FileNotFoundError(file.url) from None
        handle.seek(offset)
        return handle


def _irods_checksum(value: str | None) -> tuple[str, str] | None:
    """iRODS checksums: ``sha2:<base64>`` (SHA-256) or an MD5 in hex."""
    if not value:
        return None
    if value.startswith("sha2:"):
        return "sha256", base64.b64decode(value[5:]).hex()
    return ("md5", value) if len(value) == 32 else None


@contextmanager
def reaching(url: str) -> Iterator[None]:
    """Turn a source that cannot be listed into one :class:`SourceError` naming it."""
    try:
        yield
    except SourceError:
        raise
    except FileNotFoundError:
        raise SourceError(url, "does not exist", "check the URL") from None
    except PermissionError as error:
        raise SourceError(
            url, f"access denied ({error})", "check the credentials in the source's storage options"
        ) from None
    except Exception as error:
        if not isinstance(error, OSError | TimeoutError) and not _is_client_error(error):
            raise
        problem = f"cannot be reached ({type(error).__name__}: {error})".replace("\n", " ")
        raise SourceError(url, problem, "check the URL, the server and the network") from None


def is_gone(error: BaseException) -> bool:
    """Whether ``error`` says the file no longer exists (HTTP clients raise their own error for
    a 404 on a ranged read, not FileNotFoundError)."""
    return isinstance(error, FileNotFoundError) or getattr(error, "status", None) in (404, 410)


def _is_client_error(error: BaseException) -> bool:
    """Whether ``error`` is a transport error of a library sources go through (aiohttp,
    botocore, paramiko, requests, iRODS), by module: none of them is imported to check."""
    module = type(error).__module__.split(".")[0]
    return module in ("aiohttp", "botocore", "paramiko", "requests", "irods", "urllib3")
