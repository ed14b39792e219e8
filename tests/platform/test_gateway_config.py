"""Server-side configuration pieces that need no running service."""

from __future__ import annotations

import os
import pwd
import types
from pathlib import Path

import pytest
from dask_gateway_server.backends.local import LocalBackend, UnsafeLocalBackend
from traitlets.config import Config

from eosc_pangeo.platform.gateway import (
    FairUsePolicy,
    Limits,
    PlatformLocalBackend,
    SafeLocalBackend,
    check_backend_is_safe,
)
from eosc_pangeo.platform.hub import grant_service_access
from eosc_pangeo.platform.local import ensure_system_user

GiB = 2**30


def test_limits_default_to_those_of_every_user():
    policy = FairUsePolicy(default_limits={"max_clusters": 1})
    assert policy.limits_for({"students"}) == Limits(max_clusters=1)


def test_a_groups_limits_apply_over_the_defaults():
    policy = FairUsePolicy(
        default_limits={"max_clusters": 1, "max_user_cores": 8},
        group_limits={"staff": {"max_user_memory": "256GiB"}},
    )
    staff = policy.limits_for({"staff"})
    assert (staff.max_clusters, staff.max_user_cores, staff.max_user_memory) == (1, 8, 256 * GiB)


def test_a_member_of_several_groups_gets_the_most_generous_limit_of_each_kind():
    policy = FairUsePolicy(
        group_limits={
            "ocean": {"max_clusters": 4, "max_user_cores": 8},
            "hpc": {"max_clusters": 1, "max_user_cores": 64},
        }
    )
    limits = policy.limits_for({"ocean", "hpc"})
    assert (limits.max_clusters, limits.max_user_cores) == (4, 64)


def test_a_misspelt_limit_is_an_error():
    with pytest.raises(ValueError, match="max_cluster"):
        FairUsePolicy(default_limits={"max_cluster": 3}).limits_for(set())


def test_service_access_is_granted_to_users_and_their_servers_keeping_default_scopes():
    c = Config()
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "access:services!service=stac"]}]
    grant_service_access(c, "dask-gateway")
    roles = {role["name"]: role["scopes"] for role in c.JupyterHub.load_roles}
    assert roles["user"] == [
        "self",
        "access:services!service=stac",
        "access:services!service=dask-gateway",
    ]
    assert roles["server"] == [
        "users:activity!user",
        "access:servers!server",
        "access:services!service=dask-gateway",
    ]


@pytest.fixture
def system_user():
    if os.geteuid() != 0:
        pytest.skip("changing file ownership to another user needs root")
    ensure_system_user("pgalice")
    return pwd.getpwnam("pgalice")


def test_the_local_backend_gives_the_user_only_the_clusters_working_directory(
    system_user, tmp_path, monkeypatch
):
    # Files named like single characters of the TLS paths: the stock backend chowns those too,
    # relative to its working directory, and "/" itself.
    monkeypatch.chdir(tmp_path)
    for name in ("t", "m", "p"):
        (tmp_path / name).touch()
    clusters = tmp_path / "clusters"
    clusters.mkdir()
    backend = SafeLocalBackend(clusters_directory=str(clusters))
    record = types.SimpleNamespace(
        name="c1", username=system_user.pw_name, tls_cert=b"cert", tls_key=b"key"
    )
    root_owner = os.stat("/").st_uid

    workdir = backend.setup_working_directory(record)

    assert os.stat("/").st_uid == root_owner == 0
    assert all(os.stat(tmp_path / name).st_uid == 0 for name in ("t", "m", "p"))
    owned = [
        os.path.join(root, name) for root, dirs, files in os.walk(workdir) for name in dirs + files
    ] + [workdir]
    assert len(owned) == 5  # workdir, .certs, logs, dask.crt, dask.pem
    assert all(os.stat(path).st_uid == system_user.pw_uid for path in owned)


def test_the_gateway_refuses_to_run_the_stock_local_backend_as_root():
    with pytest.raises(ValueError, match="would chown / to the users"):
        check_backend_is_safe(LocalBackend, euid=0)


def test_the_gateway_runs_the_platform_backend_as_root():
    for backend in (PlatformLocalBackend, SafeLocalBackend, UnsafeLocalBackend):
        check_backend_is_safe(backend, euid=0)


def test_users_servers_load_no_language_server_extension(tmp_path):
    """jupyter-lsp scans every package for language servers at each start (0.3 s of CPU) and
    none is installed: the environment's configuration turns it off over its own file."""
    import shutil
    import sys

    from jupyter_server.extension.config import ExtensionConfigManager

    from eosc_pangeo.platform.environment import write_lab_overrides

    config = tmp_path / "etc" / "jupyter"
    shutil.copytree(Path(sys.prefix) / "etc" / "jupyter", config)
    (config / "jupyter_server_config.d" / "zz-eosc-pangeo.json").unlink(missing_ok=True)

    def extensions() -> dict[str, bool]:
        return ExtensionConfigManager(read_config_path=[str(config)]).get_jpserver_extensions()

    assert extensions()["jupyter_lsp"] is True  # as jupyter-lsp's own file enables it
    write_lab_overrides(str(tmp_path))
    assert extensions()["jupyter_lsp"] is False
    assert extensions()["jupyterlab"] and extensions()["dask_labextension"]
