"""A Dask cluster's dashboard, through the hub: its owner sees it, nobody else does."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests


@pytest.fixture(scope="module")
def alices_cluster(platform, alice):
    gateway = platform.gateway(alice)
    cluster = gateway.new_cluster()
    try:
        yield cluster
    finally:
        cluster.shutdown()
        gateway.close()


def test_an_anonymous_visitor_is_sent_to_log_in(alices_cluster):
    response = requests.get(alices_cluster.dashboard_link, allow_redirects=False, timeout=30)
    assert response.status_code == 302
    assert "/hub/api/oauth2/authorize" in response.headers["Location"]


def test_an_anonymous_script_is_refused(alices_cluster):
    base = alices_cluster.dashboard_link.rsplit("/status", 1)[0]
    response = requests.post(f"{base}/api/v1/retire_workers", json={"n": 1}, timeout=30)
    assert response.status_code == 401


def test_another_user_is_forbidden(alices_cluster, bob):
    response = requests.get(
        alices_cluster.dashboard_link, headers=bob.headers, allow_redirects=False, timeout=30
    )
    assert response.status_code == 403
    assert bob.name in response.text


def test_the_owner_sees_the_dashboard(alices_cluster, alice):
    response = requests.get(alices_cluster.dashboard_link, headers=alice.headers, timeout=30)
    assert response.status_code == 200
    assert "Dask" in response.text and "bokeh" in response.text.lower()


def test_not_even_a_hub_admin_sees_another_users_dashboard(platform, alices_cluster):
    # dask-gateway lets only a cluster's owner at it (no admin rule): the dashboard follows.
    from eosc_pangeo.platform.session import HubSession

    admin = HubSession(platform.url, platform.state.admin_name)
    admin.login(platform.state.admin_password_file.read_text().strip())
    response = requests.get(alices_cluster.dashboard_link, headers=admin.headers, timeout=30)
    assert response.status_code == 403


def test_dask_labextension_in_the_owners_jupyterlab_finds_the_dashboard(alices_cluster, alice):
    # What the Dask side panel asks its server (encodeURIComponent) given the dashboard link.
    check = requests.get(
        f"{alice.url}/user/{alice.name}/dask/dashboard-check/"
        f"{quote(alices_cluster.dashboard_link, safe='')}",
        headers=alice.headers,
        timeout=60,
    )
    assert check.status_code == 200
    answer = check.json()
    assert answer["isActive"] is True
    assert "Individual Task Stream" in answer["plots"]
