"""The gateway side on Kubernetes: dask-gateway-server's KubeBackend configured from our values,
and the scheduler and worker pods its controller would create, built offline."""

from __future__ import annotations

import asyncio
import json

import pytest
from dask_gateway_server.app import DaskGateway
from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.backends.kubernetes.controller import KubeController
from dask_gateway_server.models import User
from dask_gateway_server.utils import FrozenAttrDict
from kubernetes_validate import validate

from eosc_pangeo.platform.kube import PlatformKubeBackend

from .conftest import IMAGE, KUBERNETES_VERSIONS, NAMESPACE, by_kind, deployment_settings, render
from .conftest import platform_values as values_with
from .test_chart import PVC_LAKE, S3_LAKE

IMAGE_SPEC = f"{IMAGE['name']}:{IMAGE['tag']}"
GiB = 2**30

# What the dask-gateway chart's own dask_gateway_config.py sets before gateway.extraConfig.
CHART_GATEWAY_CONFIG = """\
c.DaskGateway.backend_class = "dask_gateway_server.backends.kubernetes.KubeBackend"
c.KubeBackend.gateway_instance = "pangeo-dask-gateway"
c.KubeBackend.api_url = "http://api-pangeo-dask-gateway.pangeo:8000/api"
c.KubeClusterConfig.image = "ghcr.io/dask/dask-gateway:2026.3.0"
"""


def gateway_backend(tmp_path, monkeypatch, chart, values) -> PlatformKubeBackend:
    """The backend a gateway pod runs, its configuration file made as the chart makes it."""
    manifests = render(values, chart)
    gateway_values = json.loads(
        by_kind(manifests, "ConfigMap")["stand-in-dask-gateway"]["data"]["values.json"]
    )
    extra = "\n".join(gateway_values["gateway"]["extraConfig"].values())
    config_file = tmp_path / "dask_gateway_config.py"
    config_file.write_text(CHART_GATEWAY_CONFIG + extra)
    # As the gateway pod gets it from the eosc-pangeo-deployment ConfigMap.
    monkeypatch.setenv("EOSC_PANGEO_DEPLOYMENT", json.dumps(deployment_settings(manifests)))
    from eosc_pangeo.config import get_settings

    get_settings.cache_clear()
    gateway = DaskGateway()
    gateway.load_config_file(str(config_file))
    get_settings.cache_clear()
    assert gateway.backend_class is PlatformKubeBackend
    return gateway.backend_class(parent=gateway, log=gateway.log)


def cluster_pods(backend, user: User, request: dict) -> tuple[dict, dict]:
    """The scheduler and a worker pod of a cluster ``user`` asks for with ``request``."""
    options, config = asyncio.run(backend.process_cluster_options(user, request))
    cluster = backend.make_cluster_object(user.name, options, config)
    controller = KubeController(gateway_instance=backend.gateway_instance, api_url=backend.api_url)
    spec = FrozenAttrDict(cluster["spec"]["config"])
    name = cluster["metadata"]["name"]
    return (
        controller.make_pod(NAMESPACE, name, spec, is_worker=False),
        controller.make_pod(NAMESPACE, name, spec, is_worker=True),
    )


def maximum(options, field: str):
    return next(f.max for f in options.fields if f.field == field)


@pytest.fixture
def backend(tmp_path, monkeypatch, chart_with_stand_ins):
    values = values_with(**PVC_LAKE, dask={"limits": {"groups": {"staff": {"maxWorkerCores": 8}}}})
    return gateway_backend(tmp_path, monkeypatch, chart_with_stand_ins, values)


def test_cluster_options_are_bounded_by_the_users_groups(backend):
    student = asyncio.run(backend.get_cluster_options(User("ana", groups=["students"])))
    staff = asyncio.run(backend.get_cluster_options(User("bo", groups=["staff"])))
    assert maximum(student, "worker_cores") == 4
    assert maximum(staff, "worker_cores") == 8
    with pytest.raises(PublicException, match="worker_cores must be <= 4"):
        asyncio.run(backend.process_cluster_options(User("ana"), {"worker_cores": 6}))


def test_clusters_default_to_the_notebook_image_and_refuse_others(backend):
    _, worker = cluster_pods(backend, User("ana"), {})
    assert worker["spec"]["containers"][0]["image"] == IMAGE_SPEC
    with pytest.raises(PublicException, match="not one of this platform.s images"):
        cluster_pods(backend, User("ana"), {"image": "docker.io/someone/miner:latest"})


def test_workers_and_schedulers_get_the_lake_read_only_and_its_settings(backend):
    for pod in cluster_pods(backend, User("ana"), {"worker_cores": 2, "worker_memory": 4}):
        container = pod["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["EOSC_PANGEO_LAKE"] == "/lake"
        assert env["EOSC_PANGEO_CATALOG_URL"] == "http://eosc-pangeo-catalog.pangeo:8080"
        assert {"name": "eosc-pangeo-lake", "persistentVolumeClaim": {"claimName": "lake"}} in pod[
            "spec"
        ]["volumes"]
        assert {"name": "eosc-pangeo-lake", "mountPath": "/lake", "readOnly": True} in container[
            "volumeMounts"
        ]
        # dask-gateway's own credentials volume is still there.
        assert "dask-credentials" in {v["name"] for v in pod["spec"]["volumes"]}


def test_workers_get_the_s3_keys_from_the_secret(tmp_path, monkeypatch, chart_with_stand_ins):
    backend = gateway_backend(tmp_path, monkeypatch, chart_with_stand_ins, values_with(**S3_LAKE))
    _, worker = cluster_pods(backend, User("ana"), {})
    env = {e["name"]: e for e in worker["spec"]["containers"][0]["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "lake-s3", "key": "AWS_SECRET_ACCESS_KEY"}
    }
    assert env["AWS_ENDPOINT_URL_S3"]["value"] == "https://s3.example.org"
    assert env["EOSC_PANGEO_LAKE"]["value"] == "s3://lake/eosc"


def test_dask_pods_are_hardened_and_sized_as_requested(backend):
    scheduler, worker = cluster_pods(backend, User("ana"), {"worker_cores": 2, "worker_memory": 4})
    for pod in (scheduler, worker):
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        container = pod["spec"]["containers"][0]
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    resources = worker["spec"]["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"] == {"cpu": "2.000", "memory": str(4 * GiB)}
    assert scheduler["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "1.000"


def test_idle_clusters_are_stopped_by_default(backend):
    options, config = asyncio.run(backend.process_cluster_options(User("ana"), {}))
    assert config.idle_timeout == 1800


@pytest.mark.parametrize("version", [KUBERNETES_VERSIONS[0], KUBERNETES_VERSIONS[-1]])
def test_dask_pods_are_valid_pods(backend, version):
    for pod in cluster_pods(backend, User("ana"), {}):
        validate({**pod, "metadata": {**pod["metadata"], "name": "dask"}}, version, strict=True)
