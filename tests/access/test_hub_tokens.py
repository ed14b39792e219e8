"""The data service as a service of the platform's hub: users' hub tokens open what is not
public, and a revoked token stops working."""

from __future__ import annotations

import time

import requests


def data_service(platform) -> str:
    return f"{platform.url}/services/eosc-data"


def test_a_users_hub_token_is_accepted(platform):
    response = requests.get(
        f"{data_service(platform)}/zarr/nothing/zarr.json",
        timeout=30,
        headers={"Authorization": f"token {platform.tokens['pgalice']}"},
    )
    # Known user, unknown collection: past the token check, a 404 that lists what it may read.
    assert response.status_code == 404, response.text
    assert "yours to read" in response.json()["detail"]


def test_a_revoked_hub_token_is_refused(platform):
    made = platform.api("POST", "/users/pgbob/tokens", json={"note": "revoked by the test"}).json()
    url = f"{data_service(platform)}/collections"
    headers = {"Authorization": f"token {made['token']}"}
    assert requests.get(url, headers=headers, timeout=30).status_code == 200
    platform.api("DELETE", f"/users/pgbob/tokens/{made['id']}")
    # The service caches the hub's answer about a token for 10 s.
    deadline = time.monotonic() + 30
    while (status := requests.get(url, headers=headers, timeout=30).status_code) == 200:
        assert time.monotonic() < deadline, "the revoked token still works after 30 s"
        time.sleep(1)
    assert status == 401


def test_a_made_up_token_is_refused_with_what_to_do(platform):
    response = requests.get(
        f"{data_service(platform)}/collections",
        timeout=30,
        headers={"Authorization": "token not-a-hub-token"},
    )
    assert response.status_code == 401
    assert "expired or revoked" in response.json()["detail"]
