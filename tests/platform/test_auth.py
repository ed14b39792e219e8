"""The password store and the OIDC setup: what they keep and refuse, with no hub running."""

from __future__ import annotations

import stat

import pytest
from traitlets.config import Config

from eosc_pangeo.platform.auth import UserStore, UserStoreError, configure_oidc
from eosc_pangeo.platform.local import free_ports


def test_the_store_keeps_bcrypt_hashes_not_passwords_in_a_private_file(tmp_path):
    store = UserStore(tmp_path / "users.json")
    store.add("maria", "correct horse", groups=["ocean", "ocean"])
    text = store.path.read_text()
    assert "correct horse" not in text and "$2b$" in text
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.verify("maria", "correct horse").groups == ["ocean"]


def test_a_wrong_password_or_unknown_name_verifies_to_nothing(tmp_path):
    store = UserStore(tmp_path / "users.json")
    store.add("maria", "correct horse")
    assert store.verify("maria", "wrong") is None
    assert store.verify("nobody", "correct horse") is None


@pytest.mark.parametrize("name", ["Maria", "a b", "-x", "x" * 33, "../etc"])
def test_names_that_are_not_unix_account_names_are_refused(tmp_path, name):
    with pytest.raises(UserStoreError, match="lower-case letters"):
        UserStore(tmp_path / "users.json").add(name, "pw")


def test_a_password_bcrypt_would_cut_is_refused(tmp_path):
    with pytest.raises(UserStoreError, match="1 to 72 bytes"):
        UserStore(tmp_path / "users.json").add("maria", "x" * 73)


def test_a_damaged_store_is_reported_with_what_to_do_and_left_alone(tmp_path):
    path = tmp_path / "users.json"
    path.write_text("{not json")
    with pytest.raises(UserStoreError, match="restore it"):
        UserStore(path).add("maria", "pw")
    assert path.read_text() == "{not json"


def test_an_unreachable_openid_provider_is_named_in_the_error(tmp_path):
    (port,) = free_ports(1)
    issuer = f"http://127.0.0.1:{port}/realms/egi"
    with pytest.raises(ValueError, match="cannot read its discovery document"):
        configure_oidc(
            Config(),
            issuer_url=issuer,
            client_id="hub",
            client_secret="s",
            callback_url="http://127.0.0.1/hub/oauth_callback",
        )


def test_oidc_settings_with_an_unknown_or_missing_field_are_named(tmp_path):
    from eosc_pangeo.platform.local import PlatformError, load_oidc_settings

    path = tmp_path / "oidc.json"
    path.write_text('{"issuer_url": "https://aai.egi.eu/auth/realms/egi", "client": "hub"}')
    with pytest.raises(PlatformError, match="unknown: client, missing: client_id, client_secret"):
        load_oidc_settings(path)
