"""The jobs service on Kubernetes: its pod, store, hub wiring, and the settings its jobs get."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import requests

from eosc_pangeo.platform.kube import configure_hub, jobs_environment, load_deployment
from eosc_pangeo.platform.local import free_ports

from .conftest import (
    IMAGE,
    JOBS,
    NAMESPACE,
    by_kind,
    deployment_settings,
    helm,
    merge,
    render,
)
from .conftest import platform_values as values_with
from .test_chart import PVC_LAKE
from .test_hub import (
    container_env,
    notebook_pod,
    show_hub_config,
    use_offline_kubeconfig,
    z2jh_like_config,
)

JOBS_URL = f"http://eosc-pangeo-jobs.{NAMESPACE}:8002"
NOBODY = 65534


@pytest.fixture
def offline_kubeconfig(tmp_path, monkeypatch):
    """KubeSpawner builds notebook pods offline (see test_hub)."""
    use_offline_kubeconfig(tmp_path, monkeypatch)


def jobs_pod(values: dict) -> dict:
    return by_kind(render(values), "Deployment")["eosc-pangeo-jobs"]["spec"]["template"]["spec"]


def test_the_jobs_service_is_off_unless_enabled():
    manifests = render(values_with(**PVC_LAKE))
    assert "eosc-pangeo-jobs" not in by_kind(manifests, "Deployment")
    assert "jobs" not in deployment_settings(manifests)


def test_enabling_jobs_without_its_hub_service_entry_is_refused_naming_it():
    with pytest.raises(helm.HelmError, match="jupyterhub.hub.services has no jobs entry"):
        render(values_with(jobs={"enabled": True}))


def test_jobs_need_the_hub():
    values = merge(values_with(**JOBS), {"jupyterhub": {"enabled": False}})
    with pytest.raises(helm.HelmError, match="jobs service is a hub service"):
        render(values)


def test_the_jobs_pod_runs_the_service_hardened_with_the_hubs_token():
    pod = jobs_pod(values_with(**PVC_LAKE, **JOBS))
    container = pod["containers"][0]
    assert container["image"] == f"{IMAGE['name']}:{IMAGE['tag']}"
    assert container["args"][:3] == ["python", "-m", "eosc_pangeo.platform.kube"]
    assert container["args"][container["args"].index("--jobs-dir") + 1] == "/srv/jobs"
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    # The token zero-to-jupyterhub generated for hub.services.jobs, in its hub Secret.
    assert env["JUPYTERHUB_API_TOKEN"] == {
        "secretKeyRef": {"name": "hub", "key": "hub.services.jobs.apiToken"}
    }
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/services/jobs/"
    assert env["EOSC_PANGEO_DEPLOYMENT"]["configMapKeyRef"]["name"] == "eosc-pangeo-deployment"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"requests", "limits"} <= set(container["resources"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/services/jobs/api/health"


def test_the_job_store_is_a_kept_claim_and_the_lake_stays_read_only():
    values = values_with(**PVC_LAKE, **JOBS)
    manifests = render(values)
    claim = by_kind(manifests, "PersistentVolumeClaim")["eosc-pangeo-jobs"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    pod = jobs_pod(values)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["store"]["persistentVolumeClaim"] == {"claimName": "eosc-pangeo-jobs"}
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/srv/jobs"]["name"] == "store" and not mounts["/srv/jobs"].get("readOnly")
    assert mounts["/lake"]["readOnly"] is True
    # Kernels write their state under HOME: writable despite the read-only root.
    assert volumes[mounts["/home/jovyan"]["name"]] == {"name": "home", "emptyDir": {}}
    # One pod at a time on the claim (ReadWriteOnce): replaced, never rolled.
    deployment = by_kind(manifests, "Deployment")["eosc-pangeo-jobs"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_an_existing_claim_holds_the_job_store_instead():
    values = merge(values_with(**JOBS), {"jobs": {"store": {"existingClaim": "results"}}})
    manifests = render(values)
    assert "PersistentVolumeClaim" not in {m["kind"] for m in manifests}
    volumes = {v["name"]: v for v in jobs_pod(values)["volumes"]}
    assert volumes["store"]["persistentVolumeClaim"] == {"claimName": "results"}


def test_the_hub_knows_the_jobs_service_at_its_pod(tmp_path, chart_with_stand_ins):
    shown = show_hub_config(tmp_path, values_with(**PVC_LAKE, **JOBS), chart_with_stand_ins)
    # One service (z2jh's entry with its token, given the URL by configure_hub).
    assert shown.count("'name': 'jobs'") == 1
    assert f"'url': '{JOBS_URL}'" in shown
    # It may make each job a token of its user.
    assert "'jobs-service'" in shown and "'tokens'" in shown


def test_notebooks_submit_to_the_jobs_service(offline_kubeconfig):
    _, pod = notebook_pod(values_with(**PVC_LAKE, **JOBS))
    env = container_env(pod["spec"]["containers"][0])
    assert env["EOSC_PANGEO_JOBS_URL"] == f"{JOBS_URL}/services/jobs"


def test_jupyterlab_shows_the_batch_jobs_tile_only_with_the_jobs_service(offline_kubeconfig):
    from eosc_pangeo.platform.environment import launcher_directory
    from eosc_pangeo.platform.kube import IMAGE_ENVIRONMENT

    for values, tile in ((values_with(**PVC_LAKE, **JOBS), True), (values_with(**PVC_LAKE), False)):
        _, pod = notebook_pod(values)
        env = container_env(pod["spec"]["containers"][0])
        expected = str(launcher_directory(IMAGE_ENVIRONMENT)) if tile else None
        assert env.get("JUPYTER_APP_LAUNCHER_PATH") == expected


def test_jobs_run_with_the_lake_catalogue_and_gateway_of_notebooks(offline_kubeconfig):
    settings = deployment_settings(render(values_with(**PVC_LAKE, **JOBS)))
    jobs = jobs_environment(load_deployment(settings))
    _, pod = notebook_pod(values_with(**PVC_LAKE, **JOBS))
    notebook = container_env(pod["spec"]["containers"][0])
    for name in (
        "EOSC_PANGEO_LAKE",
        "EOSC_PANGEO_CATALOG_URL",
        "EOSC_PANGEO_GATEWAY_ADDRESS",
        "EOSC_PANGEO_GATEWAY_PROXY_ADDRESS",
        "EOSC_PANGEO_GATEWAY_AUTH",
        "EOSC_PANGEO_NOTEBOOK_IMAGE",
    ):
        assert jobs[name] == notebook[name], name


def test_the_hub_configuration_without_jobs_has_no_jobs_service():
    c = z2jh_like_config()
    configure_hub(c, deployment_settings(render(values_with(**PVC_LAKE))))
    assert [s["name"] for s in c.JupyterHub.services] == ["dask-gateway"]


@pytest.fixture(scope="module")
def users_python() -> str:
    """An interpreter other accounts can run (the clone's may sit in a mode-700 folder)."""
    from eosc_pangeo.platform.environment import user_environment

    return os.path.join(user_environment(), "bin", "python")


@pytest.fixture
def jobs_service(tmp_path, users_python):
    """The jobs pod's command, run as an unprivileged account as in the pod; yields (pid, url)."""
    settings = deployment_settings(render(values_with(**PVC_LAKE, **JOBS)))
    store = tmp_path / "store"
    store.mkdir()
    os.chown(store, NOBODY, NOBODY)
    (port,) = free_ports(1)
    process = subprocess.Popen(
        [users_python, "-m", "eosc_pangeo.platform.kube", "--ip", "127.0.0.1"]
        + ["--port", str(port), "--jobs-dir", str(store)],
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(store),
            "EOSC_PANGEO_DEPLOYMENT": json.dumps(settings),
            "JUPYTERHUB_API_TOKEN": "the-service-token-jobs-must-not-read",
            "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
            "JUPYTERHUB_SERVICE_NAME": "jobs",
        },
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        cwd=store,
    )
    url = f"http://127.0.0.1:{port}/services/jobs"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if requests.get(f"{url}/api/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.3)
        assert process.poll() is None, "the jobs service exited"
        yield process.pid, url
    finally:
        process.terminate()
        process.wait(30)


def read_environ_as_nobody(pid: int) -> subprocess.CompletedProcess:
    """Read ``/proc/<pid>/environ`` as a job would: the same account, no capabilities."""
    return subprocess.run(
        ["cat", f"/proc/{pid}/environ"],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the service as another account: needs root")
def test_the_jobs_pods_command_serves_the_jobs_api(jobs_service):
    _, url = jobs_service
    assert requests.get(f"{url}/api/health", timeout=30).json() == {"status": "ok"}
    # Anything else needs a hub user: without one, the service sends the client to log in.
    answer = requests.get(f"{url}/api/jobs", allow_redirects=False, timeout=30)
    assert answer.status_code == 302


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the service as another account: needs root")
def test_a_job_cannot_read_the_services_token(jobs_service):
    pid, _ = jobs_service
    refused = read_environ_as_nobody(pid)
    assert refused.returncode != 0 and "Permission denied" in refused.stderr
    # Whereas any other process of that account is readable to it (what a job could do).
    other = subprocess.Popen(
        ["sleep", "30"], env={"SECRET": "visible"}, user=NOBODY, group=NOBODY, extra_groups=[]
    )
    try:
        time.sleep(0.2)
        assert "SECRET=visible" in read_environ_as_nobody(other.pid).stdout
    finally:
        other.kill()
        other.wait()
