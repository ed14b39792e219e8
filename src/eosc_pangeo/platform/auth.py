"""How people log in to the hub: per-user passwords on one machine, OpenID Connect elsewhere.

Both entry points edit a traitlets ``Config`` (the ``c`` of ``jupyterhub_config.py``), so the
single-machine runner and the Helm chart's hub config share them::

    from eosc_pangeo.platform.auth import configure_oidc, configure_passwords
    configure_passwords(c, users_file="/var/lib/eosc-pangeo/users.json")
    configure_oidc(c, issuer_url="https://aai.egi.eu/auth/realms/egi", client_id=...,
                   client_secret=..., callback_url="https://hub.example.org/hub/oauth_callback",
                   allowed_groups=["urn:mace:egi.eu:group:vo.example.org:role=member#aai.egi.eu"])

Passwords: jupyterhub-nativeauthenticator, the usual choice, crashes at login on JupyterHub 6
(its handlers lack ``statsd``), and PAM would tie hub accounts to Unix passwords. The store
here is written by hand because no maintained library offers "a JupyterHub user list with
password hashes"; the hashing itself is bcrypt's (the pyca package), never our own.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
from traitlets import Unicode
from traitlets.config import Config

#: Hub user names that are also valid Unix user names (servers and clusters run as them).
USERNAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
#: bcrypt hashes at most 72 bytes; longer passwords are refused rather than silently cut.
MAX_PASSWORD_BYTES = 72


class UserStoreError(ValueError):
    """A bad user name, password or user-store file; the message says what to do."""


@dataclass
class StoredUser:
    """One account of the password store: a bcrypt hash, admin flag and hub groups."""

    password_hash: str
    admin: bool = False
    groups: list[str] = field(default_factory=list)


class UserStore:
    """Accounts in one JSON file (mode 600), replaced atomically on every change.

    Parameters
    ----------
    path : Path
        The file; it need not exist yet.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, StoredUser]:
        if not self.path.exists():
            return {}
        try:
            raw = json.loads(self.path.read_text())
            return {name: StoredUser(**entry) for name, entry in raw.items()}
        except (ValueError, TypeError) as error:
            raise UserStoreError(
                f"{self.path}: not a user store written by eosc-pangeo ({error}); restore it "
                "from a backup or move it away and add the users again"
            ) from None

    def save(self, users: dict[str, StoredUser]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".users-")
        with os.fdopen(descriptor, "w") as file:  # mkstemp makes it mode 600
            json.dump({name: asdict(user) for name, user in sorted(users.items())}, file, indent=2)
        os.replace(temporary, self.path)

    def add(
        self, name: str, password: str, *, admin: bool = False, groups: Sequence[str] = ()
    ) -> StoredUser:
        """Add (or replace) account ``name`` with ``password``."""
        check_username(name)
        encoded = password.encode()
        if not encoded or len(encoded) > MAX_PASSWORD_BYTES:
            raise UserStoreError(
                f"password of {name}: give 1 to {MAX_PASSWORD_BYTES} bytes, not {len(encoded)}"
            )
        users = self.load()
        users[name] = StoredUser(
            bcrypt.hashpw(encoded, bcrypt.gensalt()).decode(), admin, sorted(set(groups))
        )
        self.save(users)
        return users[name]

    def remove(self, name: str) -> None:
        users = self.load()
        if users.pop(name, None) is None:
            raise UserStoreError(f"no user {name!r} in {self.path}")
        self.save(users)

    def verify(self, name: str, password: str) -> StoredUser | None:
        """The account if ``password`` is its password, else None."""
        user = self.load().get(name)
        if user is None:
            # Hash anyway, so that timing does not tell which names exist.
            bcrypt.checkpw(password.encode()[:MAX_PASSWORD_BYTES], DUMMY_HASH)
            return None
        if bcrypt.checkpw(password.encode()[:MAX_PASSWORD_BYTES], user.password_hash.encode()):
            return user
        return None


DUMMY_HASH = bcrypt.hashpw(b"not a password", bcrypt.gensalt())


def check_username(name: str) -> None:
    if not USERNAME_PATTERN.match(name):
        raise UserStoreError(
            f"user name {name!r}: use 1-32 lower-case letters, digits, '-' or '_', starting "
            "with a letter or '_' (it is also the Unix account the user's server runs as)"
        )


def new_password() -> str:
    """A random password to hand to a new user (about 128 bits)."""
    return secrets.token_urlsafe(16)


try:  # The authenticator is only defined where JupyterHub is installed (the hub extra).
    from jupyterhub.auth import Authenticator
except ImportError:  # pragma: no cover - notebooks and workers have no hub
    Authenticator = None

if Authenticator is not None:

    class PasswordAuthenticator(Authenticator):
        """Log in with a password from a :class:`UserStore`; admin flag and groups follow it.

        The store is read at every login, so ``eosc-pangeo users add/remove`` needs no restart.
        """

        users_file = Unicode(help="JSON file of the accounts (see UserStore).", config=True)

        async def authenticate(self, handler, data) -> dict[str, Any] | None:
            name = (data.get("username") or "").strip()
            # bcrypt takes ~0.25 s of CPU and releases the GIL: in a thread, the hub's event
            # loop serves everyone else meanwhile, and logins at once use every core.
            user = await asyncio.to_thread(
                UserStore(self.users_file).verify, name, data.get("password") or ""
            )
            if user is None:
                self.log.warning("Failed login for %r", name)
                return None
            return {"name": name, "admin": user.admin, "groups": user.groups}

        def check_allowed(self, username: str, authentication=None) -> bool:
            return username in UserStore(self.users_file).load()

        def delete_user(self, user) -> None:
            # Deleting a user in the hub (admin page or API) closes their account too.
            store = UserStore(self.users_file)
            if user.name in store.load():
                store.remove(user.name)
            super().delete_user(user)


def configure_passwords(c: Config, *, users_file: str) -> None:
    """Per-user passwords from ``users_file`` (see :class:`UserStore`)."""
    c.JupyterHub.authenticator_class = "eosc_pangeo.platform.auth.PasswordAuthenticator"
    c.PasswordAuthenticator.users_file = users_file
    # Groups and the admin flag come from the store at each login.
    c.PasswordAuthenticator.manage_groups = True
    c.PasswordAuthenticator.admin_users = set()


def oidc_discovery(issuer_url: str, timeout: float = 10.0) -> dict[str, Any]:
    """The provider's OpenID configuration (``/.well-known/openid-configuration``)."""
    import requests

    url = issuer_url.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=timeout)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as error:
        raise ValueError(
            f"OpenID provider {issuer_url}: cannot read its discovery document {url} ({error}); "
            "check issuer_url and that the hub can reach the provider"
        ) from None
    missing = {"authorization_endpoint", "token_endpoint", "userinfo_endpoint"} - set(document)
    if missing:
        raise ValueError(f"OpenID provider {issuer_url}: {url} lacks {', '.join(sorted(missing))}")
    return document


def configure_oidc(
    c: Config,
    *,
    issuer_url: str,
    client_id: str,
    client_secret: str,
    callback_url: str,
    allowed_groups: Sequence[str] = (),
    admin_groups: Sequence[str] = (),
    groups_claim: str = "eduperson_entitlement",
    scopes: Sequence[str] = ("openid", "profile", "email", "eduperson_entitlement"),
    username_claim: str = "sub",
) -> None:
    """Log in with an OpenID Connect provider (e.g. EGI Check-in) through GenericOAuthenticator.

    Endpoints come from the provider's discovery document, read now. Hub groups are the values
    of ``groups_claim`` (EGI's ``eduperson_entitlement`` URNs); members of ``admin_groups`` are
    hub admins. Tokens are kept in the hub's encrypted auth state and refreshed with the
    refresh token when they expire (before each spawn, and when older than their lifetime), so a
    revoked account loses access at its next refresh.

    Parameters
    ----------
    c : traitlets.config.Config
        The hub's configuration, edited in place.
    issuer_url : str
        The provider's issuer, e.g. ``https://aai.egi.eu/auth/realms/egi``.
    client_id, client_secret : str
        This hub's client registration at the provider.
    callback_url : str
        ``https://<hub>/hub/oauth_callback`` as registered at the provider.
    allowed_groups : sequence of str
        Only members of these groups may log in; empty: everyone the provider authenticates.
    admin_groups : sequence of str
        Members are hub admins (and may log in).
    groups_claim : str
        Claim of the user info that holds the groups.
    scopes : sequence of str
        Scopes requested; must release ``groups_claim`` and ``username_claim``.
    username_claim : str
        Claim that names the hub user (``sub`` is stable; ``email`` or
        ``preferred_username`` read better but may change).

    Notes
    -----
    Auth state is encrypted with ``JUPYTERHUB_CRYPT_KEY``, which the hub's environment must
    hold (``openssl rand -hex 32``); without it JupyterHub refuses to start with auth state on.
    """
    discovery = oidc_discovery(issuer_url)
    authenticator = c.GenericOAuthenticator
    c.JupyterHub.authenticator_class = "generic-oauth"
    authenticator.client_id = client_id
    authenticator.client_secret = client_secret
    authenticator.oauth_callback_url = callback_url
    authenticator.authorize_url = discovery["authorization_endpoint"]
    authenticator.token_url = discovery["token_endpoint"]
    authenticator.userdata_url = discovery["userinfo_endpoint"]
    authenticator.logout_redirect_url = discovery.get("end_session_endpoint", "")
    authenticator.scope = list(scopes)
    authenticator.username_claim = username_claim
    authenticator.login_service = discovery.get("issuer", issuer_url)
    authenticator.manage_groups = True
    authenticator.auth_state_groups_key = f"oauth_user.{groups_claim}"
    authenticator.allowed_groups = set(allowed_groups)
    authenticator.admin_groups = set(admin_groups)
    authenticator.allow_all = not allowed_groups and not admin_groups
    if allowed_groups:
        # Shown on the 403 page to someone the provider knows but no allowed group holds.
        authenticator.custom_403_message = (
            "Your account is not a member of a group allowed on this hub. Ask to join one of: "
            + ", ".join(sorted(allowed_groups))
            + " (at your identity provider), then log in "
            "again."
        )
    # Refresh: keep tokens, renew them before spawning and once they are older than an hour.
    authenticator.enable_auth_state = True
    authenticator.refresh_pre_spawn = True
    authenticator.auth_refresh_age = 3600
    # The client authenticates at the token endpoint as the provider says it accepts, HTTP
    # Basic when it does not say (OpenID Connect Discovery's default, which every OAuth 2.0
    # server must support): providers may accept the secret in the POST body for the code
    # exchange and still refuse it for refresh grants.
    methods = discovery.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
    authenticator.basic_auth = "client_secret_basic" in methods
