"""Login through a real OpenID Connect provider on loopback, in a real browser.

The provider is oidc-provider-mock (PyPI; authlib's authorization server behind Flask): it runs
the authorization-code flow, signs ID tokens, serves userinfo and refreshes tokens. Its login
form asks for a subject instead of a password; everything after that (redirects, code
exchange, claims, groups, refusal) is the hub's real OIDC code path (``configure_oidc``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from eosc_pangeo.platform import local

TOKEN_LIFETIME = timedelta(seconds=8)
MEMBERS = "urn:mace:egi.eu:group:vo.pangeo.eu:role=member#aai.egi.eu"
#: Subjects at the provider, hence hub and Unix user names: unique to this run.
MEMBER, OUTSIDER = (f"oi{uuid.uuid4().hex[:6]}{role}" for role in ("ocean", "other"))


@pytest.fixture(scope="module")
def provider():
    from oidc_provider_mock import User, run_server_in_thread

    users = [
        User(sub=MEMBER, claims={"eduperson_entitlement": [MEMBERS], "name": "Ocean Member"}),
        User(sub=OUTSIDER, claims={"eduperson_entitlement": ["urn:mace:egi.eu:group:other"]}),
    ]
    # Access tokens live 8 s, so that the refresh test meets an expired one.
    with run_server_in_thread(user_claims=users, access_token_max_age=TOKEN_LIFETIME) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def oidc_hub(provider):
    if os.geteuid() != 0:
        pytest.skip("servers run as their users' Unix accounts: needs root")
    top = Path(tempfile.mkdtemp(prefix="eosc-oidc-"))
    state = local.prepare(
        top / "state",
        port=0,
        oidc={
            "issuer_url": provider,
            "client_id": "eosc-hub",
            "client_secret": "hub-secret",
            "allowed_groups": [MEMBERS],
            "username_claim": "sub",
        },
    )
    Path(state.lake).mkdir(parents=True, exist_ok=True)
    local.start(state, attached=True)
    try:
        yield state
    finally:
        local.stop(state)
        for name in (MEMBER, OUTSIDER):
            subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)
        shutil.rmtree(state.shared_directory, ignore_errors=True)
        shutil.rmtree(top, ignore_errors=True)


def log_in_at_the_provider(page, hub: local.PlatformState, subject: str) -> None:
    page.goto(f"{hub.url}/hub/login")
    page.get_by_text("Sign in with").click()  # the login page's one button (an <a>)
    page.wait_for_url("**/oauth2/authorize**")
    page.fill("input[name=sub]", subject)
    page.get_by_role("button", name="Authorize").click()


def test_a_member_of_an_allowed_group_logs_in_through_the_provider_and_gets_a_server(
    oidc_hub, page, artifacts
):
    log_in_at_the_provider(page, oidc_hub, MEMBER)
    page.wait_for_url(f"**/user/{MEMBER}/lab**", timeout=240_000, wait_until="commit")
    page.wait_for_selector("#jp-main-dock-panel", timeout=240_000)
    page.screenshot(path=str(artifacts / "05-oidc-lab.png"))
    user = local.hub_of(oidc_hub).api("GET", f"/users/{MEMBER}").json()
    assert MEMBERS in user["groups"]
    assert user["servers"][""]["ready"]


def test_someone_outside_the_allowed_groups_is_refused_with_a_clear_page(oidc_hub, page, artifacts):
    log_in_at_the_provider(page, oidc_hub, OUTSIDER)
    page.wait_for_url("**/hub/oauth_callback**", wait_until="commit")
    page.wait_for_selector("text=not a member of a group allowed on this hub")
    assert MEMBERS in page.content()
    page.screenshot(path=str(artifacts / "06-oidc-refused.png"))
    hub = local.hub_of(oidc_hub)
    assert OUTSIDER not in {u["name"] for u in hub.api("GET", "/users").json()}


def test_an_expired_access_token_is_refreshed_before_a_server_starts(oidc_hub, page):
    # Its own login, so that it holds whichever test ran before it.
    log_in_at_the_provider(page, oidc_hub, MEMBER)
    page.wait_for_url(f"**/user/{MEMBER}/**", timeout=240_000, wait_until="commit")
    hub = local.hub_of(oidc_hub)

    def auth_state() -> dict:
        return hub.api("GET", f"/users/{MEMBER}").json()["auth_state"]

    before = auth_state()  # kept (encrypted) from the browser login
    assert before["refresh_token"]
    hub.api("DELETE", f"/users/{MEMBER}/server")
    wait_until(
        lambda: not hub.api("GET", f"/users/{MEMBER}").json()["servers"], 60, "server stopped"
    )
    time.sleep(TOKEN_LIFETIME.total_seconds())  # the login's access token has expired
    # refresh_pre_spawn: the hub trades the refresh token for new tokens before spawning.
    assert hub.api("POST", f"/users/{MEMBER}/server").status_code in (201, 202)
    after = auth_state()
    assert after["access_token"] != before["access_token"]
    hub.api("DELETE", f"/users/{MEMBER}/server")


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout} s")
