"""The hub side on Kubernetes: the notebook pods KubeSpawner builds from our values, and the
chart's hub configuration loaded by a real JupyterHub process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from kubernetes_validate import validate
from traitlets.config import Config

from eosc_pangeo.platform.kube import configure_hub

from .conftest import (
    CHART,
    IMAGE,
    KUBERNETES_VERSIONS,
    RELEASE,
    by_kind,
    deployment_settings,
    render,
)
from .conftest import platform_values as values_with
from .test_chart import PVC_LAKE, S3_LAKE

kubespawner = pytest.importorskip("kubespawner")
IMAGE_SPEC = f"{IMAGE['name']}:{IMAGE['tag']}"


@pytest.fixture(autouse=True)
def offline_kubeconfig(tmp_path, monkeypatch):
    """A kubeconfig naming a server that is never contacted: KubeSpawner loads one at init,
    building a pod manifest needs no API server."""
    use_offline_kubeconfig(tmp_path, monkeypatch)


def use_offline_kubeconfig(directory, monkeypatch) -> None:
    path = directory / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "offline",
                "clusters": [{"name": "offline", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "offline", "user": {"token": "unused"}}],
                "contexts": [
                    {"name": "offline", "context": {"cluster": "offline", "user": "offline"}}
                ],
            }
        )
    )
    # KUBECONFIG is read when kubernetes_asyncio is imported: point its default at the file.
    from kubernetes_asyncio.config import kube_config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


def z2jh_like_config() -> Config:
    """What zero-to-jupyterhub's jupyterhub_config.py sets before running hub.extraConfig
    (the parts our configuration meets): KubeSpawner's labels, env and volume lists."""
    c = Config()
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    c.KubeSpawner.common_labels = {
        "app": "jupyterhub",
        "app.kubernetes.io/name": "jupyterhub",
        "release": RELEASE,
        "app.kubernetes.io/instance": RELEASE,
    }
    c.KubeSpawner.extra_labels = {"hub.jupyter.org/network-access-hub": "true"}  # extraLabels
    c.KubeSpawner.environment = {}  # singleuser.extraEnv
    c.KubeSpawner.volumes = []
    c.KubeSpawner.volume_mounts = []
    c.JupyterHub.services = [{"name": "dask-gateway", "display": False, "api_token": "t"}]
    c.JupyterHub.load_roles = []
    return c


def notebook_pod(values: dict, user: str = "alice", groups: tuple[str, ...] = (), profile=None):
    """The pod KubeSpawner would create for ``user`` under the chart rendered with ``values``."""
    c = z2jh_like_config()
    configure_hub(c, deployment_settings(render(values)))

    async def build():
        spawner = kubespawner.KubeSpawner(
            _mock=True,
            config=c,
            user=SimpleNamespace(
                name=user,
                id=1,
                url=f"/user/{user}/",
                escaped_name=user,
                groups=[SimpleNamespace(name=g) for g in groups],
            ),
        )
        if profile is not None:
            spawner.user_options = {"profile": profile}
            await spawner.load_user_options()
        pod = await spawner.get_pod_manifest()
        return spawner, spawner.api.api_client.sanitize_for_serialization(pod)

    return asyncio.run(build())


def container_env(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_a_notebook_pod_runs_the_platform_image_hardened():
    _, pod = notebook_pod(values_with(**PVC_LAKE))
    container = pod["spec"]["containers"][0]
    assert container["image"] == IMAGE_SPEC
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_a_notebook_finds_the_gateway_and_starts_clusters_in_its_own_image():
    _, pod = notebook_pod(values_with(**PVC_LAKE))
    env = container_env(pod["spec"]["containers"][0])
    gateway = "http://traefik-pangeo-dask-gateway.pangeo:80/services/dask-gateway"
    assert env["DASK_GATEWAY__ADDRESS"] == env["EOSC_PANGEO_GATEWAY_ADDRESS"] == gateway
    assert env["DASK_GATEWAY__PROXY_ADDRESS"] == "gateway://traefik-pangeo-dask-gateway.pangeo:80"
    assert env["DASK_GATEWAY__AUTH__TYPE"] == "jupyterhub"
    assert env["DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE"] == IMAGE_SPEC
    assert env["EOSC_PANGEO_NOTEBOOK_IMAGE"] == IMAGE_SPEC
    assert env["EOSC_PANGEO_CATALOG_URL"] == "http://eosc-pangeo-catalog.pangeo:8080"


def test_a_notebooks_results_go_home_and_name_the_user_as_creator():
    _, pod = notebook_pod(values_with(**PVC_LAKE))
    env = container_env(pod["spec"]["containers"][0])
    assert env["EOSC_PANGEO_RESULTS_DIR"] == "~/results"
    assert (
        env["EOSC_PANGEO_CREATOR_NAME"]
        == pod["metadata"]["annotations"]["hub.jupyter.org/username"]
    )


def test_a_notebook_mounts_the_lake_read_only():
    _, pod = notebook_pod(values_with(**PVC_LAKE))
    assert {"name": "eosc-pangeo-lake", "persistentVolumeClaim": {"claimName": "lake"}} in pod[
        "spec"
    ]["volumes"]
    mounts = pod["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "eosc-pangeo-lake", "mountPath": "/lake", "readOnly": True} in mounts
    assert container_env(pod["spec"]["containers"][0])["EOSC_PANGEO_LAKE"] == "/lake"


def test_a_notebook_gets_the_s3_keys_from_the_secret():
    _, pod = notebook_pod(values_with(**S3_LAKE))
    env = container_env(pod["spec"]["containers"][0])
    assert env["AWS_ACCESS_KEY_ID"] == {
        "secretKeyRef": {"name": "lake-s3", "key": "AWS_ACCESS_KEY_ID"}
    }
    assert env["AWS_ENDPOINT_URL_S3"] == "https://s3.example.org"
    assert env["EOSC_PANGEO_LAKE"] == "s3://lake/eosc"


def test_the_charts_extra_env_wins_over_the_platforms_defaults():
    c = z2jh_like_config()
    c.KubeSpawner.environment = {"EOSC_PANGEO_LAKE": "/other"}
    configure_hub(c, deployment_settings(render(values_with(**PVC_LAKE))))
    assert c.KubeSpawner.environment["EOSC_PANGEO_LAKE"] == "/other"
    assert "DASK_GATEWAY__ADDRESS" in c.KubeSpawner.environment


def test_profiles_are_offered_by_group_and_set_the_pods_limits():
    spawner, _ = notebook_pod(values_with())
    everyone = [p["slug"] for p in spawner.profile_list(spawner)]
    assert everyone == ["small", "medium"]
    spawner, pod = notebook_pod(values_with(), groups=("gpu",), profile="gpu")
    assert [p["slug"] for p in spawner.profile_list(spawner)] == ["small", "medium", "gpu"]
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "1"
    assert resources["limits"]["memory"] == 64 * 2**30  # JupyterHub reads G as GiB
    assert resources["requests"]["cpu"] == 4


def test_a_user_outside_the_group_cannot_pick_its_profile():
    with pytest.raises(ValueError, match="gpu"):
        notebook_pod(values_with(), groups=("ocean",), profile="gpu")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_notebook_pod_is_a_valid_pod_for_each_supported_kubernetes(version):
    _, pod = notebook_pod(values_with(**S3_LAKE))
    validate({"apiVersion": "v1", "kind": "Pod", **pod}, version, strict=True)


# A stand-in of z2jh's files/hub: the z2jh module reads the chart's values, and
# jupyterhub_config.py does what z2jh's does around extraConfig (the parts ours meets).
Z2JH_MODULE = """
import json, os
VALUES = json.load(open(os.environ["Z2JH_VALUES"]))

def get_config(key, default=None):
    value = VALUES
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value
"""
JUPYTERHUB_CONFIG = """
import sys, os
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from z2jh import get_config
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.KubeSpawner.environment = get_config("singleuser.extraEnv", {})
c.JupyterHub.services = [
    {"name": name, "api_token": "from-the-hub-secret", **service}
    for name, service in get_config("hub.services", {}).items()
]
c.JupyterHub.load_roles = []
# z2jh sets the auth state keys from its hub Secret (hub.config.CryptKeeper.keys).
c.CryptKeeper.keys = ["0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]
for key, config_py in sorted(get_config("hub.extraConfig", {}).items()):
    exec(config_py)
"""


def show_hub_config(tmp_path: Path, values: dict, chart: Path, settings=None) -> str:
    """Run ``jupyterhub --show-config`` on the chart's hub configuration: the real hub
    process loads (executes) it, with EOSC_PANGEO_DEPLOYMENT as the hub pod gets it
    (``settings``: the rendered deployment settings, or these)."""
    manifests = render(values, chart)
    jupyterhub_values = json.loads(
        by_kind(manifests, "ConfigMap")["stand-in-jupyterhub"]["data"]["values.json"]
    )
    (tmp_path / "values.json").write_text(json.dumps(jupyterhub_values))
    (tmp_path / "z2jh.py").write_text(Z2JH_MODULE)
    (tmp_path / "jupyterhub_config.py").write_text(JUPYTERHUB_CONFIG)
    env = {
        **os.environ,
        "Z2JH_VALUES": str(tmp_path / "values.json"),
        "EOSC_PANGEO_DEPLOYMENT": json.dumps(settings or deployment_settings(manifests)),
    }
    jupyterhub = Path(sys.executable).with_name("jupyterhub")
    result = subprocess.run(
        [str(jupyterhub), "--show-config", "-f", str(tmp_path / "jupyterhub_config.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_charts_hub_configuration_loads_in_jupyterhub(tmp_path, chart_with_stand_ins):
    shown = show_hub_config(tmp_path, values_with(**PVC_LAKE), chart_with_stand_ins)
    # One dask-gateway service (z2jh's, with its token, given our URL), usable by users.
    assert shown.count("'name': 'dask-gateway'") == 1
    # The hub's proxy sends it to the dashboards' gate in the hub pod, which passes it on.
    assert "'url': 'http://hub:8788'" in shown
    assert "eosc_pangeo.platform.dashboards" in shown
    assert "http://traefik-pangeo-dask-gateway.pangeo:80" in shown
    assert "access:services!service=dask-gateway" in shown
    assert f".image = '{IMAGE_SPEC}'" in shown
    assert "post_stop_hook" in shown and "stop_user_clusters" in shown
    assert "profile_list" in shown


@pytest.fixture
def egi_like_provider():
    """An issuer on loopback with EGI Check-in's realm path, serving its discovery document
    (configure_oidc reads it when the hub loads its configuration)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), DiscoveryHandler)
    issuer = f"http://127.0.0.1:{server.server_port}/auth/realms/egi"
    server.document = {
        "issuer": issuer,
        **{
            f"{name}_endpoint": f"{issuer}/protocol/openid-connect/{path}"
            for name, path in (
                ("authorization", "auth"),
                ("token", "token"),
                ("userinfo", "userinfo"),
            )
        },
    }
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield issuer
    server.shutdown()
    server.server_close()


class DiscoveryHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        if not self.path.endswith("/.well-known/openid-configuration"):
            self.send_error(404)
            return
        body = json.dumps(self.server.document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_egi_checkin_configuration_loads_in_jupyterhub(
    tmp_path, chart_with_stand_ins, egi_like_provider
):
    example = yaml.safe_load((CHART / "examples" / "egi-checkin.yaml").read_text())
    settings = deployment_settings(render(example, chart_with_stand_ins))
    assert settings["oidc"]["issuerUrl"] == "https://aai.egi.eu/auth/realms/egi"
    settings["oidc"]["issuerUrl"] = egi_like_provider  # no provider is reachable from here
    secret = tmp_path / "client-secret"  # the hub pod mounts the Secret there
    secret.write_text("s3cret\n")
    settings["oidc"]["clientSecretFile"] = str(secret)
    shown = show_hub_config(tmp_path, example, chart_with_stand_ins, settings)
    assert "GenericOAuthenticator" in shown
    assert f"{egi_like_provider}/protocol/openid-connect/auth" in shown
    assert "eduperson_entitlement" in shown
    assert "urn:mace:egi.eu:group:vo.pangeo.eu:role=member#aai.egi.eu" in shown
    assert "s3cret" in shown


def test_the_hub_authenticates_at_the_token_endpoint_with_basic_unless_told_otherwise(
    egi_like_provider,
):
    # The discovery document names no token_endpoint_auth_methods_supported: OpenID Connect
    # Discovery's default, client_secret_basic, is what refresh grants are sure to accept.
    from traitlets.config import Config

    from eosc_pangeo.platform.auth import configure_oidc

    c = Config()
    configure_oidc(
        c,
        issuer_url=egi_like_provider,
        client_id="hub",
        client_secret="s3cret",
        callback_url="https://hub.example.org/hub/oauth_callback",
    )
    assert c.GenericOAuthenticator.basic_auth is True
