"""Real servers that the sync tests fetch from, on loopback.

An HTTP file server (stdlib ``http.server`` in a thread) with what production servers have and
``SimpleHTTPRequestHandler`` lacks: byte ranges, ETag, Content-MD5 and Last-Modified. It serves
a folder as an HTML directory listing, as a THREDDS catalogue (``/thredds/catalog/<dir>/
catalog.xml`` with an HTTPServer service at ``/thredds/fileServer/``), and can be told to fail
per file as real servers do: answer 500, cut the connection half-way, corrupt the bytes sent,
or lose the file during its transfer. OpenSSH's sshd (``.ci/sshd-up.sh``) serves SFTP.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import html
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[2]

THREDDS = """<?xml version="1.0" encoding="UTF-8"?>
<catalog xmlns="http://www.unidata.ucar.edu/namespaces/thredds/InvCatalog/v1.0"
         xmlns:xlink="http://www.w3.org/1999/xlink" version="1.2">
  <service name="all" serviceType="Compound" base="">
    <service name="httpService" serviceType="HTTPServer" base="/thredds/fileServer/"/>
    <service name="odap" serviceType="OPENDAP" base="/thredds/dodsC/"/>
  </service>
  <dataset name="{folder}" ID="{folder}">
    <metadata inherited="true"><serviceName>all</serviceName></metadata>
{datasets}
  </dataset>
</catalog>
"""


@dataclass
class Faults:
    """How the server misbehaves, by file name: each count is how many GETs fail so (a cut
    connection stops at the middle of the file)."""

    server_error: dict[str, int] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)
    corrupt: dict[str, int] = field(default_factory=dict)
    vanish: set[str] = field(default_factory=set)


class FileServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.faults = Faults()
        self.requests: list[tuple[str, str, str | None]] = []
        self.bytes_sent = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.files = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}"

    def count(self, nbytes: int) -> None:
        with self._lock:
            self.bytes_sent += nbytes

    def take(self, faults: dict[str, int], name: str) -> bool:
        with self._lock:
            if faults.get(name, 0) > 0:
                faults[name] -= 1
                return True
            return False


class Handler(BaseHTTPRequestHandler):
    """Files, listings and catalogues of ``self.server.files``, failing as it is told."""

    @property
    def files(self) -> FileServer:
        return self.server.files

    def log_message(self, *args) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        path = unquote(self.path.split("?")[0])
        self.files.requests.append((self.command, path, self.headers.get("Range")))
        if path.startswith("/thredds/catalog/") and path.endswith("/catalog.xml"):
            return self._thredds(
                path.removeprefix("/thredds/catalog/").removesuffix("/catalog.xml")
            )
        path = path.removeprefix("/thredds/fileServer")
        local = self.files.root / path.lstrip("/")
        if local.is_dir():
            return self._listing(local)
        if not local.is_file():
            return self.send_error(404)
        if body and self.files.take(self.files.faults.server_error, local.name):
            return self.send_error(500, "Internal Server Error")
        self._file(local, body)

    def _listing(self, folder: Path) -> None:
        links = "".join(
            f'<a href="{html.escape(p.name)}">{html.escape(p.name)}</a>\n'
            for p in sorted(folder.iterdir())
        )
        self._send(200, "text/html", f"<html><body>{links}</body></html>".encode())

    def _thredds(self, folder: str) -> None:
        datasets = "".join(
            f'    <dataset name="{p.name}" ID="{folder}/{p.name}" urlPath="{folder}/{p.name}">'
            f'<dataSize units="bytes">{p.stat().st_size}</dataSize></dataset>\n'
            for p in sorted((self.files.root / folder).iterdir())
            if p.is_file()
        )
        self._send(
            200, "application/xml", THREDDS.format(folder=folder, datasets=datasets).encode()
        )

    def _send(self, status: int, mimetype: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", mimetype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _file(self, local: Path, body: bool) -> None:
        data = local.read_bytes()
        start, end = 0, len(data)
        if ranged := self.headers.get("Range"):
            first, _, last = ranged.removeprefix("bytes=").partition("-")
            start, end = int(first), min(int(last) + 1 if last else len(data), len(data))
        self.send_response(206 if ranged else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
        self.send_header("Content-MD5", base64.b64encode(hashlib.md5(data).digest()).decode())
        self.send_header(
            "Last-Modified", email.utils.formatdate(local.stat().st_mtime, usegmt=True)
        )
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        self.end_headers()
        if body:
            self._body(local, data, start, end)

    def _body(self, local: Path, whole: bytes, start: int, end: int) -> None:
        data = whole[start:end]
        middle = len(whole) // 2  # where a cut connection stops, in the file
        if local.name in self.files.faults.vanish:
            local.unlink()  # gone upstream while it is being sent
            self._cut(data[: len(data) // 2])
        elif start <= middle < end and self.files.take(self.files.faults.cut, local.name):
            self._cut(data[: middle - start])
        elif self.files.take(self.files.faults.corrupt, local.name):
            self.wfile.write(bytes([data[0] ^ 0xFF]) + data[1:])
            self.files.count(len(data))
        else:
            self.wfile.write(data)
            self.files.count(len(data))

    def _cut(self, sent: bytes) -> None:
        self.wfile.write(sent)
        self.wfile.flush()
        self.files.count(len(sent))
        self.close_connection = True
        self.connection.shutdown(2)


@pytest.fixture
def file_server(tmp_path) -> Iterator[FileServer]:
    """An HTTP file server of a fresh folder (``server.root``)."""
    root = tmp_path / "served"
    root.mkdir()
    server = FileServer(root)
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@dataclass(frozen=True)
class Sshd:
    user: str
    key: str
    port: int

    def url(self, path: Path) -> str:
        return f"sftp://{self.user}@127.0.0.1:{self.port}{path}"

    @property
    def options(self) -> dict:
        return {"key_filename": self.key, "look_for_keys": False, "allow_agent": False}


@pytest.fixture(scope="session")
def sshd() -> Iterator[Sshd]:
    """OpenSSH's sshd on a loopback port, started by .ci/sshd-up.sh (apt-installed if absent)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = Path(tempfile.mkdtemp(prefix="eosc-pangeo-sshd-"))
    done = subprocess.run(
        [str(REPO / ".ci" / "sshd-up.sh"), str(folder), str(port)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode:
        pytest.fail(f"sshd did not start: {done.stderr}")
    user, key = done.stdout.split()
    yield Sshd(user, key, port)
    pid = (folder / "sshd.pid").read_text().strip()
    os.kill(int(pid), 15)
    shutil.rmtree(folder, ignore_errors=True)
