"""The network policies as a specification: who may open a connection to whom.

The rendered policies (ours, plus the stand-in of zero-to-jupyterhub's hub and notebook
policies) are evaluated here as Kubernetes evaluates them: a pod selected by a policy of a
direction is isolated in that direction, and a connection passes if an egress rule of the
source (or none isolates it) and an ingress rule of the destination (or none) admit it. The
pods carry the labels the real components give them: notebooks as KubeSpawner builds them,
Dask pods as dask-gateway's controller builds them, our pods as rendered, the gateway's and
hub's pods as their charts label them. Written by hand: no library evaluates NetworkPolicies
offline.
"""

from __future__ import annotations

import ipaddress
import itertools
import shutil
from dataclasses import dataclass, field

import pytest
from dask_gateway_server.models import User

from .conftest import CHART, JOBS, RELEASE, by_kind, merge, render, write_stand_ins
from .conftest import platform_values as values_with
from .test_chart import PVC_LAKE
from .test_gateway import cluster_pods, gateway_backend
from .test_hub import notebook_pod, use_offline_kubeconfig

DASK_GATEWAY = {
    "app.kubernetes.io/name": "dask-gateway",
    "app.kubernetes.io/instance": RELEASE,
    "gateway.dask.org/instance": f"{RELEASE}-dask-gateway",
}
PRIVATE_S3 = "10.1.2.3"
INTERNET = "203.0.113.5"


@dataclass
class Pod:
    name: str
    labels: dict[str, str]
    ip: str
    ports: dict[str, int] = field(default_factory=dict)


def selects(selector: dict, labels: dict[str, str]) -> bool:
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if not {
            "In": present and labels.get(key) in (values or []),
            "NotIn": not present or labels[key] not in (values or []),
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]:
            return False
    return True


def peer_admits(peer: dict, address: str, pod: Pod | None) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        ip = ipaddress.ip_address(address)
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if pod is None:
        return False
    # Everything runs in one namespace: a namespaceSelector (if any) matches it.
    return selects(peer.get("podSelector", {}), pod.labels)


def ports_admit(ports: list[dict] | None, port: int, destination: Pod | None) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != "TCP":
            continue
        wanted = entry.get("port")
        if wanted is None or wanted == port:
            return True
        if isinstance(wanted, str) and destination and destination.ports.get(wanted) == port:
            return True
    return False


class Network:
    def __init__(self, policies: list[dict], pods: list[Pod]):
        self.policies = policies
        self.pods = {pod.name: pod for pod in pods}

    def isolating(self, pod: Pod, direction: str) -> list[dict]:
        return [
            p
            for p in self.policies
            if direction in p["spec"].get("policyTypes", ["Ingress"])
            and selects(p["spec"]["podSelector"], pod.labels)
        ]

    def allows(self, source: str, destination: str, port: int) -> bool:
        src = self.pods[source]
        dst = self.pods.get(destination)
        address = dst.ip if dst else destination
        egress = self.isolating(src, "Egress")
        egress_ok = not egress or any(
            ports_admit(rule.get("ports"), port, dst)
            and (not rule.get("to") or any(peer_admits(peer, address, dst) for peer in rule["to"]))
            for policy in egress
            for rule in policy["spec"].get("egress", [])
        )
        if dst is None:
            return egress_ok
        ingress = self.isolating(dst, "Ingress")
        ingress_ok = not ingress or any(
            ports_admit(rule.get("ports"), port, dst)
            and (not rule.get("from") or any(peer_admits(p, src.ip, src) for p in rule["from"]))
            for policy in ingress
            for rule in policy["spec"].get("ingress", [])
        )
        return egress_ok and ingress_ok


def build_network(tmp_path, monkeypatch, chart, values) -> Network:
    use_offline_kubeconfig(tmp_path, monkeypatch)
    for user in ("alice", "bob"):
        (tmp_path / user).mkdir()
    manifests = render(values, chart)
    ips = (f"10.0.0.{n}" for n in itertools.count(10))
    pods = []
    for user in ("alice", "bob"):
        _, notebook = notebook_pod(values, user=user)
        pods.append(
            Pod(
                f"notebook-{user}",
                notebook["metadata"]["labels"],
                next(ips),
                {"notebook-port": 8888},
            )
        )
        backend = gateway_backend(tmp_path / user, monkeypatch, chart, values)
        scheduler, worker = cluster_pods(backend, User(user), {})
        pods.append(Pod(f"scheduler-{user}", scheduler["metadata"]["labels"], next(ips)))
        for n in (1, 2):
            pods.append(Pod(f"worker{n}-{user}", worker["metadata"]["labels"], next(ips)))
    # The pods of the subcharts, labelled as those charts label them.
    pods += [
        Pod("traefik", {**DASK_GATEWAY, "app.kubernetes.io/component": "traefik"}, next(ips)),
        Pod(
            "gateway-api",
            {
                **DASK_GATEWAY,
                "app.kubernetes.io/component": "gateway",
                "hub.jupyter.org/network-access-hub": "true",
            },
            next(ips),
        ),
        Pod("controller", {**DASK_GATEWAY, "app.kubernetes.io/component": "controller"}, next(ips)),
        Pod(
            "hub",
            {
                "component": "hub",
                "app.kubernetes.io/instance": RELEASE,
                "hub.jupyter.org/network-access-singleuser": "true",
            },
            next(ips),
            {"http": 8081},
        ),
        Pod(
            "proxy",
            {
                "component": "proxy",
                "app.kubernetes.io/instance": RELEASE,
                "hub.jupyter.org/network-access-hub": "true",
                "hub.jupyter.org/network-access-singleuser": "true",
            },
            next(ips),
        ),
        # The cluster's own pods: an admin's Ingress controller (ingress-nginx's labels) and DNS.
        Pod(
            "ingress-controller",
            {
                "app.kubernetes.io/name": "ingress-nginx",
                "app.kubernetes.io/component": "controller",
            },
            next(ips),
        ),
        Pod("kube-dns", {"k8s-app": "kube-dns"}, next(ips)),
    ]
    for deployment in by_kind(manifests, "Deployment").values():
        pods.append(
            Pod(
                deployment["metadata"]["name"],
                deployment["spec"]["template"]["metadata"]["labels"],
                next(ips),
            )
        )
    for cron in by_kind(manifests, "CronJob").values():
        template = cron["spec"]["jobTemplate"]["spec"]["template"]
        pods.append(Pod(cron["metadata"]["name"], template["metadata"]["labels"], next(ips)))
    return Network(list(by_kind(manifests, "NetworkPolicy").values()), pods)


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """The platform's pods and policies (built once: each case only evaluates them)."""
    directory = tmp_path_factory.mktemp("network")
    chart = directory / "eosc-pangeo"
    shutil.copytree(CHART, chart)
    write_stand_ins(chart)
    with pytest.MonkeyPatch.context() as monkeypatch:
        return build_network(directory, monkeypatch, chart, values_with(**PVC_LAKE, **JOBS))


SPECIFICATION = [
    # (source, destination, port, allowed, why)
    ("notebook-alice", "traefik", 8000, True, "notebooks reach the gateway and their schedulers"),
    ("traefik", "scheduler-alice", 8786, True, "the proxy routes clients to schedulers"),
    ("traefik", "scheduler-alice", 8787, True, "and dashboards"),
    ("notebook-alice", "scheduler-alice", 8786, False, "only through the proxy, with TLS"),
    ("notebook-alice", "scheduler-bob", 8786, False, "never another user's scheduler"),
    ("notebook-alice", "worker1-bob", 40000, False, "nor another user's workers"),
    ("notebook-alice", "notebook-bob", 8888, False, "nor another user's notebook"),
    ("worker1-alice", "worker2-alice", 40000, True, "workers exchange data on random ports"),
    ("worker1-alice", "scheduler-alice", 8786, True, "workers reach their scheduler"),
    ("scheduler-alice", "worker1-alice", 40000, True, "schedulers reach their workers"),
    ("scheduler-alice", "gateway-api", 8000, True, "schedulers report to the gateway"),
    ("gateway-api", "scheduler-alice", 8788, True, "the gateway drives schedulers"),
    ("worker1-alice", "notebook-alice", 8888, False, "workers never reach notebooks"),
    ("worker1-alice", "hub", 8081, False, "nor the hub"),
    ("notebook-alice", "hub", 8081, True, "notebooks reach the hub API"),
    ("gateway-api", "hub", 8081, True, "the gateway checks tokens with the hub"),
    ("hub", "traefik", 8000, True, "the hub stops clusters of stopped servers"),
    ("proxy", "traefik", 8000, False, "the hub's proxy sends the gateway's routes to the gate"),
    ("proxy", "notebook-alice", 8888, True, "the hub's proxy serves notebooks"),
    ("proxy", "hub", 8788, True, "the hub's proxy reaches the dashboards' gate"),
    ("traefik", "hub", 8788, True, "traefik asks the gate about in-cluster requests"),
    ("notebook-alice", "hub", 8788, False, "notebooks meet the gate only behind traefik"),
    ("worker1-alice", "hub", 8788, False, "Dask pods never reach the gate"),
    ("notebook-alice", "eosc-pangeo-catalog", 8080, True, "notebooks search the catalogue"),
    ("worker1-alice", "eosc-pangeo-catalog", 8080, True, "so do workers"),
    ("eosc-pangeo-catalog", "hub", 8081, False, "the catalogue needs no hub"),
    ("notebook-alice", "controller", 8000, False, "nothing reaches the controller"),
    ("eosc-pangeo-catalog-build", "hub", 8081, False, "the CronJob reaches no platform pod"),
    ("worker1-alice", INTERNET, 443, True, "workers read public data, as notebooks do"),
    ("notebook-alice", INTERNET, 443, True, "(zero-to-jupyterhub's default)"),
    ("eosc-pangeo-catalog-build", INTERNET, 443, True, "the CronJob syncs remote sources"),
    ("worker1-alice", PRIVATE_S3, 443, False, "private addresses need lakeEgress"),
    # The data service: read from inside and outside the cluster; it reads only the lake.
    ("ingress-controller", "eosc-pangeo-data", 8090, True, "clients outside, via the Ingress"),
    ("notebook-alice", "eosc-pangeo-data", 8090, True, "notebooks read it as any client does"),
    ("worker1-alice", "eosc-pangeo-data", 8090, True, "so do workers"),
    ("notebook-alice", "eosc-pangeo-data", 22, False, "only on its HTTP port"),
    ("eosc-pangeo-data", "kube-dns", 53, True, "it resolves the object store's name"),
    # The jobs service: notebooks submit, the hub's proxy shows its page; jobs reach what a
    # notebook reaches, and nothing else.
    ("notebook-alice", "eosc-pangeo-jobs", 8002, True, "notebooks submit jobs"),
    ("proxy", "eosc-pangeo-jobs", 8002, True, "the jobs page, through the hub"),
    ("worker1-alice", "eosc-pangeo-jobs", 8002, False, "workers never submit"),
    ("ingress-controller", "eosc-pangeo-jobs", 8002, False, "no client from outside"),
    ("eosc-pangeo-jobs", "hub", 8081, True, "it checks tokens and makes the jobs' tokens"),
    ("eosc-pangeo-jobs", "traefik", 8000, True, "jobs start clusters on the gateway"),
    ("eosc-pangeo-jobs", "eosc-pangeo-catalog", 8080, True, "jobs search the catalogue"),
    ("eosc-pangeo-jobs", "eosc-pangeo-data", 8090, True, "and read the data service"),
    ("eosc-pangeo-jobs", "scheduler-alice", 8786, False, "only through the gateway's proxy"),
    ("eosc-pangeo-jobs", "notebook-alice", 8888, False, "jobs never reach notebooks"),
    ("eosc-pangeo-jobs", "hub", 8788, False, "nor the dashboards' gate"),
    ("eosc-pangeo-jobs", INTERNET, 443, True, "jobs read public data, as notebooks do"),
    ("eosc-pangeo-jobs", PRIVATE_S3, 443, False, "private addresses need lakeEgress"),
    ("eosc-pangeo-data", "hub", 8081, False, "it takes API keys: no hub needed"),
    ("eosc-pangeo-data", "notebook-alice", 8888, False, "it never reaches notebooks"),
    ("eosc-pangeo-data", "scheduler-alice", 8786, False, "nor Dask clusters"),
    ("eosc-pangeo-data", "eosc-pangeo-catalog", 8080, False, "nor the catalogue"),
    ("eosc-pangeo-data", INTERNET, 443, False, "nor the internet"),
    ("eosc-pangeo-data", PRIVATE_S3, 443, False, "an object store needs lakeEgress"),
]


@pytest.mark.parametrize(
    ("source", "destination", "port", "allowed", "why"),
    SPECIFICATION,
    ids=[f"{s}->{d}:{p}" for s, d, p, *_ in SPECIFICATION],
)
def test_connections_are_allowed_or_denied_as_specified(
    network, source, destination, port, allowed, why
):
    assert network.allows(source, destination, port) is allowed, why


def test_lake_egress_opens_a_private_object_store_to_notebooks_and_dask_pods(
    tmp_path, monkeypatch, chart_with_stand_ins
):
    rule = {"to": [{"ipBlock": {"cidr": f"{PRIVATE_S3}/32"}}], "ports": [{"port": 443}]}
    values = merge(values_with(**PVC_LAKE), {"networkPolicy": {"lakeEgress": [rule]}})
    network = build_network(tmp_path, monkeypatch, chart_with_stand_ins, values)
    for pod in (
        "notebook-alice",
        "worker1-alice",
        "scheduler-alice",
        "eosc-pangeo-catalog",
        "eosc-pangeo-catalog-build",
        "eosc-pangeo-data",
    ):
        assert network.allows(pod, PRIVATE_S3, 443), pod
    assert not network.allows("worker1-alice", PRIVATE_S3, 22)
