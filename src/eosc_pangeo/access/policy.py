"""Who may read what, and how much: the data service's access policy.

A policy is a YAML (or JSON) file given to ``eosc-pangeo serve-data --policy``::

    public: [sst, argo]            # read by anyone; "*" makes every collection public
    api_keys:                      # for clients outside the hub (a partner's HPC centre, a VRE)
      - name: partner-hpc
        sha256: 5e88...            # sha256 of the key: the file never holds keys themselves
        collections: ["*"]
    hub:                           # tokens of the platform's JupyterHub
      api_url: http://127.0.0.1:8081/hub/api      # both default to what the hub gives the
      api_token_file: /srv/eosc-pangeo/data.token  # services it runs itself
      service: eosc-data           # tokens need the scope access:services!service=eosc-data
    limits:                        # per client, over all the service's worker processes
      max_response_bytes: 268435456
      requests_per_minute: 600
      anonymous_requests_per_minute: 120

Clients send ``X-API-Key: <key>`` or ``Authorization: token <hub token>`` (``Bearer`` works
too). Credentials never travel in URLs: a ``?token=`` or ``?api_key=`` query is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError

from .errors import BadRequest, Forbidden, TooManyRequests, Unauthorized


class ApiKey(BaseModel):
    name: str = Field(description="Who holds the key, as logs and limits name the client.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 hex digest of the key.")
    collections: list[str] = Field(default_factory=lambda: ["*"])


#: The data service's name as a hub service, in its URL (/services/eosc-data/) and its scope.
DATA_SERVICE = "eosc-data"


class HubAccess(BaseModel):
    api_url: str | None = Field(
        default=None,
        description="The hub's API URL, e.g. "
        "http://127.0.0.1:8081/hub/api; default: JUPYTERHUB_API_URL, "
        "which the hub sets for the services it runs.",
    )
    api_token_file: Path | None = Field(
        default=None,
        description="File holding the service's own hub API token; default: JUPYTERHUB_API_TOKEN.",
    )
    service: str = Field(default=DATA_SERVICE, description="The service name of the scope.")


class Limits(BaseModel):
    max_response_bytes: int = Field(default=256 * 1024**2, gt=0)
    requests_per_minute: int = Field(default=600, gt=0)
    anonymous_requests_per_minute: int = Field(default=120, gt=0)


class AccessPolicy(BaseModel):
    """Public collections, API keys, hub tokens and per-client limits."""

    public: list[str] = Field(default_factory=list)
    api_keys: list[ApiKey] = Field(default_factory=list)
    hub: HubAccess | None = None
    limits: Limits = Field(default_factory=Limits)

    @classmethod
    def from_file(cls, path: str | Path) -> AccessPolicy:
        """Read a policy file; a bad one is refused with the file and field at fault."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
            return cls.model_validate(data)
        except OSError as error:
            raise BadRequest(f"{path}: cannot read the access policy ({error.strerror})") from None
        except yaml.YAMLError as error:
            raise BadRequest(f"{path}: not YAML ({error})") from None
        except ValidationError as error:
            faults = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
            )
            raise BadRequest(
                f"{path}: not a valid access policy: {faults} (see "
                "eosc_pangeo.access.policy for the fields)"
            ) from None

    def is_public(self, collection: str) -> bool:
        return "*" in self.public or collection in self.public


@dataclass(frozen=True)
class Client:
    """Who sent a request: ``name`` keys the rate limit; ``collections`` what it may read."""

    name: str
    collections: frozenset[str] = frozenset()
    anonymous: bool = True

    def may_read(self, collection: str, policy: AccessPolicy) -> bool:
        return (
            policy.is_public(collection)
            or "*" in self.collections
            or (collection in self.collections)
        )


class Authenticator:
    """Tells who a request comes from, from its headers."""

    def __init__(self, policy: AccessPolicy) -> None:
        self.policy = policy
        self._keys = {key.sha256: key for key in policy.api_keys}
        self._hub_auth = None
        if policy.hub is not None:
            # Imported here: the hub package is needed only where a hub is configured.
            from jupyterhub.services.auth import HubAuth

            given = {"cache_max_age": 10}
            if policy.hub.api_url:
                given["api_url"] = policy.hub.api_url
            if policy.hub.api_token_file:
                given["api_token"] = policy.hub.api_token_file.read_text().strip()
            self._hub_auth = HubAuth(**given)
            self._hub_scope = f"access:services!service={policy.hub.service}"

    def client(self, headers, query: dict[str, str], address: str) -> Client:
        for name in ("token", "api_key", "apikey"):
            if name in query:
                raise BadRequest(
                    f"credentials in the URL ({name}=...) are refused: send them "
                    "in the X-API-Key or Authorization header"
                )
        key = headers.get("x-api-key")
        if key:
            digest = hashlib.sha256(key.encode()).hexdigest()
            for known, entry in self._keys.items():
                if hmac.compare_digest(known, digest):
                    return Client(f"key:{entry.name}", frozenset(entry.collections), False)
            raise Unauthorized("unknown API key: ask the service's operators for one")
        authorization = headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if token and scheme.lower() in ("token", "bearer"):
            return self._hub_client(token.strip())
        return Client(f"ip:{address}")

    def _hub_client(self, token: str) -> Client:
        if self._hub_auth is None:
            raise Unauthorized("this data service takes no hub tokens: use an API key")
        model = self._hub_auth.user_for_token(token, use_cache=True)
        if not model:
            raise Unauthorized(
                "the hub token is unknown, expired or revoked: make a new one "
                "in the hub's token page"
            )
        scopes = set(model.get("scopes", ()))
        if not ({self._hub_scope, "access:services"} & scopes):
            raise Forbidden(f"the hub token lacks the scope {self._hub_scope}")
        return Client(f"user:{model['name']}", frozenset({"*"}), False)


class RateLimiter:
    """A token bucket per client, kept in SQLite so that the worker processes of one service
    share it (written by hand: a few lines over the standard library).

    Each client may burst up to its per-minute allowance and then gets one request back every
    ``60 / allowance`` seconds.

    Parameters
    ----------
    limits
        The allowances.
    store
        SQLite file that the service's worker processes share (``serve(workers=N)`` makes a
        temporary one); default: in this process's memory.
    """

    def __init__(self, limits: Limits, store: str | Path = ":memory:") -> None:
        self.limits = limits
        # One connection per process, its use serialised: requests run in a thread pool.
        self._db = sqlite3.connect(store, timeout=10, isolation_level=None, check_same_thread=False)
        # Buckets live as long as the service: no need to survive a crash.
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS buckets (client TEXT PRIMARY KEY, tokens REAL, last REAL)"
        )
        self._lock = threading.Lock()

    def allow(self, client: Client) -> None:
        per_minute = (
            self.limits.anonymous_requests_per_minute
            if client.anonymous
            else self.limits.requests_per_minute
        )
        with self._lock:
            # Wall-clock time: one clock for every process.
            now = time.time()
            self._db.execute("BEGIN IMMEDIATE")  # the other processes wait for the commit
            try:
                row = self._db.execute(
                    "SELECT tokens, last FROM buckets WHERE client = ?", (client.name,)
                ).fetchone()
                tokens, last = row or (float(per_minute), now)
                tokens = min(float(per_minute), tokens + max(now - last, 0) * per_minute / 60)
                if tokens >= 1:
                    self._db.execute(
                        "INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)",
                        (client.name, tokens - 1, now),
                    )
            finally:
                self._db.execute("COMMIT")
        if tokens < 1:
            wait = int((1 - tokens) * 60 / per_minute) + 1
            raise TooManyRequests(
                f"more than {per_minute} requests a minute from {client.name}: wait "
                f"{wait} s, or read larger pieces per request",
                retry_after=wait,
            )
