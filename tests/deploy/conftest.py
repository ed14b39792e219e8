"""Fixtures of the deployment tests: the chart rendered offline by Helm's own Go SDK.

No Kubernetes API server can run here and no chart can be downloaded, so the chart is rendered
(``helm_python`` binds Helm v4's SDK, no helm binary) with its dependencies disabled, or with
minimal stand-in subcharts written here in their place under ``charts/``. The stand-ins render
only what our tests read from the real charts, labelled as the real ones label it.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

helm = pytest.importorskip("helm_python")

CHART = Path(__file__).parents[2] / "helm" / "eosc-pangeo"
IMAGE = {"name": "registry.example.org/eosc-pangeo", "tag": "0.1.0"}
RELEASE, NAMESPACE = "pangeo", "pangeo"
# traefik's argument that puts the dashboards' gate in front of its web entrypoint.
DASHBOARDS_GATE_ARGUMENT = (
    f"--entryPoints.web.http.middlewares={NAMESPACE}-eosc-pangeo-dashboards@kubernetescrd"
)
# Kubernetes versions the chart supports (Chart.yaml kubeVersion) and kubernetes-validate knows.
KUBERNETES_VERSIONS = ["1.32.0", "1.33.0", "1.34.0", "1.35.0", "1.36.0", "1.37.0"]

# zero-to-jupyterhub's own policies for the hub and notebooks, as its 4.x chart renders them
# (hub: ingress from pods labelled network-access-hub, plus hub.networkPolicy.ingress;
# notebooks: ingress from hub and proxy, egress to the hub, DNS and non-private addresses only;
# the proxy: egress to the hub's API, notebooks, and private and public addresses, its
# egressAllowRules' defaults).
JUPYTERHUB_STAND_IN_POLICIES = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: hub}
spec:
  podSelector: {matchLabels: {component: hub, app.kubernetes.io/instance: {{ .Release.Name }}}}
  policyTypes: [Ingress, Egress]
  ingress:
    - ports: [{port: http}]
      from: [{podSelector: {matchLabels: {hub.jupyter.org/network-access-hub: "true"}}}]
    {{- with dig "hub" "networkPolicy" "ingress" list (.Values | toJson | fromJson) }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  egress:
    - to: [{ipBlock: {cidr: 0.0.0.0/0}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: singleuser}
spec:
  podSelector:
    matchLabels: {component: singleuser-server, app.kubernetes.io/instance: {{ .Release.Name }}}
  policyTypes: [Ingress, Egress]
  ingress:
    - ports: [{port: notebook-port}]
      from:
        - podSelector: {matchLabels: {hub.jupyter.org/network-access-singleuser: "true"}}
  egress:
    - to:
        - podSelector:
            matchLabels: {component: hub, app.kubernetes.io/instance: {{ .Release.Name }}}
      ports: [{port: 8081}]
    - to:
        - ipBlock:
            cidr: 0.0.0.0/0
            except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.169.254/32]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: proxy}
spec:
  podSelector: {matchLabels: {component: proxy, app.kubernetes.io/instance: {{ .Release.Name }}}}
  policyTypes: [Ingress, Egress]
  ingress:
    - ports: [{port: http}]
      from:
        - podSelector: {matchLabels: {hub.jupyter.org/network-access-proxy-http: "true"}}
  egress:
    - to:
        - podSelector:
            matchLabels: {component: hub, app.kubernetes.io/instance: {{ .Release.Name }}}
      ports: [{port: 8081}]
    - to:
        - podSelector:
            matchLabels:
              component: singleuser-server
              app.kubernetes.io/instance: {{ .Release.Name }}
      ports: [{port: 8888}]
    - to:
        - ipBlock: {cidr: 10.0.0.0/8}
        - ipBlock: {cidr: 172.16.0.0/12}
        - ipBlock: {cidr: 192.168.0.0/16}
    - to:
        - ipBlock:
            cidr: 0.0.0.0/0
            except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.169.254/32]
"""


# The jobs service turned on, with the hub service entry that holds its token.
JOBS = {"jobs": {"enabled": True}, "jupyterhub": {"hub": {"services": {"jobs": {}}}}}


def platform_values(**overrides: Any) -> dict[str, Any]:
    """Values of a deployment: the platform image everywhere, plus ``overrides`` merged in."""
    values: dict[str, Any] = {
        "image": dict(IMAGE),
        "jupyterhub": {"hub": {"image": dict(IMAGE)}, "singleuser": {"image": dict(IMAGE)}},
        "dask-gateway": {
            "gateway": {"image": dict(IMAGE), "backend": {"image": dict(IMAGE)}},
            "controller": {"image": dict(IMAGE)},
            "traefik": {"additionalArguments": [DASHBOARDS_GATE_ARGUMENT]},
        },
    }
    return merge(values, overrides)


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in recursively (as Helm merges values files)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_stand_ins(chart: Path) -> None:
    """Stand-in jupyterhub and dask-gateway charts under ``chart/charts``."""
    for name, version, templates in (
        ("jupyterhub", "4.4.0", {"netpol.yaml": JUPYTERHUB_STAND_IN_POLICIES}),
        ("dask-gateway", "2026.3.0", {}),
    ):
        directory = chart / "charts" / name
        (directory / "templates").mkdir(parents=True)
        (directory / "Chart.yaml").write_text(
            yaml.safe_dump({"apiVersion": "v2", "name": name, "version": version})
        )
        (directory / "values.yaml").write_text("{}\n")
        # A marker that shows the subchart rendered, with the values it was given.
        templates["marker.yaml"] = (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stand-in-" + name + "\n"
            'data:\n  values.json: {{ omit .Values "global" | toJson | quote }}\n'
        )
        for file_name, text in templates.items():
            (directory / "templates" / file_name).write_text(text)


@pytest.fixture
def chart_with_stand_ins(tmp_path) -> Path:
    """A copy of the chart whose dependencies are the stand-ins."""
    chart = tmp_path / "eosc-pangeo"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("charts"))
    write_stand_ins(chart)
    return chart


def render(values: dict[str, Any], chart: Path = CHART) -> list[dict[str, Any]]:
    """The manifests the chart renders for ``values`` (schema-validated first, as install does)."""
    return copy.deepcopy(_render(json.dumps(values, sort_keys=True), chart))


@functools.lru_cache(maxsize=64)
def _render(values_json: str, chart: Path) -> list[dict[str, Any]]:
    values = json.loads(values_json)
    loaded = helm.Chart.load(chart)
    loaded.validate_schema(values)
    rendered = loaded.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [
        document
        for path, text in sorted(rendered.items())
        if not path.endswith("NOTES.txt")
        for document in yaml.safe_load_all(text)
        if document
    ]


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def deployment_settings(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """The deployment.json that the hub and the gateway read."""
    configmap = by_kind(manifests, "ConfigMap")["eosc-pangeo-deployment"]
    return json.loads(configmap["data"]["deployment.json"])
