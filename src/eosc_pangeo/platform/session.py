"""A user of a running hub, driven over HTTP as a browser would: for tests and benchmarks.

:class:`HubSession` logs in through the login form (cookies, XSRF), asks for a token, starts
the user's server through the REST API and runs code in a kernel over the kernel's websocket,
tokens always in headers, never in URLs (JupyterHub 6 ignores ``?token=``). Nothing like it is
in jupyterhub or jupyter_server (their test helpers need the hub in-process), so it is written
here.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import requests


class HubError(RuntimeError):
    """The hub refused or failed an action; the message says which and why."""


class HubSession:
    """One user's browser-like session with the hub at ``url``."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url.rstrip("/")
        self.name = name
        self.http = requests.Session()
        self.token: str | None = None

    def login(self, password: str) -> None:
        """Log in through the form; raise :class:`HubError` if refused."""
        form = self.http.get(f"{self.url}/hub/login", timeout=30)
        form.raise_for_status()
        xsrf = self.http.cookies.get("_xsrf", "")
        answer = self.http.post(
            f"{self.url}/hub/login",
            data={"username": self.name, "password": password, "_xsrf": xsrf},
            allow_redirects=False,
            timeout=60,
        )
        if answer.status_code != 302:
            raise HubError(f"login of {self.name} refused ({answer.status_code})")
        token = self.http.post(
            f"{self.url}/hub/api/users/{self.name}/tokens",
            json={"note": "session", "expires_in": 3600},
            headers={
                "X-XSRFToken": self.http.cookies.get("_xsrf", xsrf),
                "Referer": f"{self.url}/hub/token",
            },
            timeout=30,
        )
        if token.status_code != 201:
            raise HubError(f"token for {self.name} refused ({token.status_code}): {token.text}")
        self.token = token.json()["token"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the hub's REST API (below ``/hub/api``) with this user's token."""
        return requests.request(
            method, f"{self.url}/hub/api{path}", headers=self.headers, timeout=60, **kwargs
        )

    def start_server(self, timeout: float = 120.0) -> str:
        """Start the user's server and wait until it is ready; its URL.

        It waits on the hub's progress stream (server-sent events), as the hub's spawn page
        does, rather than polling the user's model: ten users polling four times a second
        kept the hub busy while it started their servers.
        """
        answer = self.api("POST", f"/users/{self.name}/server")
        if answer.status_code not in (201, 202, 400):  # 400: already running
            raise HubError(
                f"server of {self.name} not started ({answer.status_code}): {answer.text}"
            )
        deadline = time.monotonic() + timeout
        with requests.get(
            f"{self.url}/hub/api/users/{self.name}/server/progress",
            headers=self.headers,
            stream=True,
            timeout=(30, timeout),
        ) as stream:
            stream.raise_for_status()
            for line in stream.iter_lines(decode_unicode=True):
                if time.monotonic() > deadline:
                    break
                if not line or not line.startswith("data:"):
                    continue
                event = json.loads(line.removeprefix("data:"))
                if event.get("failed"):
                    raise HubError(f"server of {self.name} failed to start: {event.get('message')}")
                if event.get("ready"):
                    return f"{self.url}{event['url'].rstrip('/')}"
        raise HubError(f"server of {self.name} not ready within {timeout:g} s")

    def stop_server(self) -> None:
        self.api("DELETE", f"/users/{self.name}/server")

    def server_api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the user's Jupyter server (``path`` below ``/user/<name>/api``)."""
        return requests.request(
            method,
            f"{self.url}/user/{self.name}/api{path}",
            headers=self.headers,
            timeout=60,
            **kwargs,
        )

    def run(self, code: str, timeout: float = 120.0) -> str:
        """Run ``code`` in a new kernel and return its printed output; raise on an error."""
        kernel = self.server_api("POST", "/kernels", json={"name": "python3"})
        if kernel.status_code != 201:
            raise HubError(
                f"kernel of {self.name} not started ({kernel.status_code}): {kernel.text}"
            )
        kernel_id = kernel.json()["id"]
        try:
            return asyncio.run(self._execute(kernel_id, code, timeout))
        finally:
            self.server_api("DELETE", f"/kernels/{kernel_id}")

    async def _execute(self, kernel_id: str, code: str, timeout: float) -> str:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = f"{self.url}/user/{self.name}/api/kernels/{kernel_id}/channels"
        # tornado's 20 s defaults are too short for ten kernels starting at once on 2 cores.
        request = HTTPRequest(
            url.replace("http", "ws", 1),
            headers=self.headers,
            connect_timeout=timeout,
            request_timeout=timeout,
        )
        socket = await asyncio.wait_for(websocket_connect(request), timeout)
        message_id = uuid.uuid4().hex
        socket.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": message_id,
                        "msg_type": "execute_request",
                        "username": self.name,
                        "session": uuid.uuid4().hex,
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                    },
                }
            )
        )
        output: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HubError(f"code of {self.name} did not finish within {timeout:g} s")
                raw = await asyncio.wait_for(socket.read_message(), left)
                if raw is None:
                    raise HubError(f"kernel of {self.name} closed its connection")
                message = json.loads(raw)
                if message.get("parent_header", {}).get("msg_id") != message_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "stream":
                    output.append(content["text"])
                elif kind == "error":
                    raise HubError(f"{content['ename']}: {content['evalue']}")
                elif kind == "status" and content["execution_state"] == "idle":
                    return "".join(output)
        finally:
            socket.close()
