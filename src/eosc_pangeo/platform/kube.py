"""The platform on Kubernetes: hub and gateway configuration for the ``helm/eosc-pangeo`` chart.

The chart renders one JSON document from its values (its ConfigMap ``eosc-pangeo``, key
``deployment.json``) and gives it to the hub and the gateway pods as ``EOSC_PANGEO_DEPLOYMENT``.
Their configuration files then only call into this module::

    # zero-to-jupyterhub's hub.extraConfig
    from eosc_pangeo.platform.kube import configure_hub
    configure_hub(c)

    # the dask-gateway chart's gateway.extraConfig
    from eosc_pangeo.platform.kube import configure_gateway
    configure_gateway(c)

The chart's jobs pod runs ``python -m eosc_pangeo.platform.kube --port ... --jobs-dir ...``
(:func:`serve_jobs`): the jobs service, with what its jobs need from the same settings.

Both build on the pieces the single-machine runner uses (:func:`~.hub.add_dask_gateway`,
:class:`~.gateway.FairUsePolicy` and :class:`~.gateway.FairUseMixin`), so the two deployments
share one code path. What only Kubernetes needs lives here, once for notebooks and for Dask pods
alike: the lake's volume or S3 credentials (:func:`lake_access`), the hardened security
contexts, the profiles gated by groups, and :class:`PlatformKubeBackend`, dask-gateway's
``KubeBackend`` with the platform's fair-use limits.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path
from typing import Any

from dask_gateway_server.backends.kubernetes import KubeBackend, KubeClusterConfig
from dask_gateway_server.traitlets import Type
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel, to_snake
from traitlets import List, Unicode, default
from traitlets.config import Config

from ..config import get_settings
from .gateway import SERVICE_NAME, ClusterUsage, FairUseMixin, UserQuotas
from .hub import (
    JOBS_SERVICE,
    add_dask_gateway,
    add_jobs_service,
    notebook_environment,
    results_environment,
)

#: Where the image (images/Containerfile) installs its Python environment.
IMAGE_ENVIRONMENT = "/opt/eosc-pangeo"
# The image's user (images/Containerfile): not root, group "users" as in Jupyter's images.
USER_ID = 1000
GROUP_ID = 100
LAKE_VOLUME = "eosc-pangeo-lake"
SCRATCH_VOLUME = "scratch"


class DeploymentError(ValueError):
    """The deployment settings the chart rendered are missing or wrong."""


class Model(BaseModel):
    """Fields in the chart's camelCase, unknown fields refused (a typo is an error)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class S3Credentials(Model):
    """S3 keys read from an existing Secret, given as AWS_* variables (s3fs reads them)."""

    secret_name: str
    access_key_id_key: str = "AWS_ACCESS_KEY_ID"
    secret_access_key_key: str = "AWS_SECRET_ACCESS_KEY"
    endpoint_url: str | None = None


class Lake(Model):
    """Where notebooks and Dask workers find the lake."""

    url: str
    mount_path: str = "/lake"
    # A Kubernetes volume source ({"persistentVolumeClaim": ...} or {"nfs": ...}), mounted
    # read-only at mount_path; None when the lake is on an object store.
    volume: dict[str, Any] | None = None
    s3: S3Credentials | None = None


class Resources(Model):
    """CPU (cores) and memory (bytes, or Kubernetes quantities such as ``4G``) of a profile."""

    cpu_guarantee: float | None = None
    cpu_limit: float | None = None
    mem_guarantee: str | None = None
    mem_limit: str | None = None
    gpus: int = 0


class Profile(Model):
    """A server size users pick at spawn; offered only to members of ``groups`` (all if empty)."""

    slug: str
    display_name: str
    description: str = ""
    default: bool = False
    groups: list[str] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)
    image: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)


class Oidc(Model):
    """OpenID Connect login (EGI Check-in and alike); the client secret is a mounted file."""

    issuer_url: str
    client_id: str
    client_secret_file: str
    callback_url: str
    allowed_groups: list[str] = Field(default_factory=list)
    admin_groups: list[str] = Field(default_factory=list)
    groups_claim: str = "eduperson_entitlement"
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    username_claim: str = "sub"


class DaskPods(Model):
    """Requests and limits of one kind of Dask pod."""

    cores: float
    cores_limit: float
    memory: str
    memory_limit: str


class Gateway(Model):
    """How the hub and notebooks reach the gateway, and what users may have."""

    url: str  # the gateway's proxy (traefik) inside the cluster
    scheduler_address: str  # host:port of its TCP proxy, where clients reach schedulers
    dashboard_url: str = f"/services/{SERVICE_NAME}"
    # The dashboards' gate (platform/dashboards.py) runs in the hub pod, as a hub-managed
    # service; the hub's proxy reaches it at hub:<gate_port> (the chart opens that port).
    gate_port: int = 8788
    default_limits: dict[str, Any] = Field(default_factory=dict)
    group_limits: dict[str, dict[str, Any]] = Field(default_factory=dict)
    scheduler: DaskPods


class Jobs(Model):
    """The jobs service (:mod:`eosc_pangeo.jobs.service`), run in its own pod by the chart."""

    # Its Service inside the cluster, where the hub's proxy and notebooks reach it.
    url: str


class Deployment(Model):
    """Everything the hub and the gateway need from the chart's values."""

    image: str
    image_pull_policy: str = "IfNotPresent"
    lake: Lake | None = None
    catalog_url: str | None = None
    read_only_root_filesystem: bool = True
    profiles: list[Profile] = Field(default_factory=list)
    gateway: Gateway | None = None
    oidc: Oidc | None = None
    jobs: Jobs | None = None

    @field_validator("image")
    @classmethod
    def _pinned(cls, image: str) -> str:
        name, _, tag = image.rpartition(":")
        if not name or "/" in tag or tag == "latest":
            raise ValueError(
                f"image {image!r} has no fixed tag: give one (e.g. 2026.12.0) or a digest, "
                "never latest, so that notebooks and workers run the same build"
            )
        return image


def load_deployment(deployment: dict[str, Any] | None = None) -> Deployment:
    """The deployment settings: ``deployment``, or ``EOSC_PANGEO_DEPLOYMENT`` (see config)."""
    raw = get_settings().deployment if deployment is None else deployment
    if not raw:
        raise DeploymentError(
            "EOSC_PANGEO_DEPLOYMENT is empty: the hub and gateway pods get it from the "
            "eosc-pangeo ConfigMap (key deployment.json) of the helm/eosc-pangeo chart"
        )
    try:
        return Deployment.model_validate(raw)
    except ValidationError as error:
        raise DeploymentError(f"EOSC_PANGEO_DEPLOYMENT (deployment.json): {error}") from None


def pod_security_context() -> dict[str, Any]:
    """Pod-level hardening of every platform pod (notebooks, schedulers, workers)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "runAsGroup": GROUP_ID,
        "fsGroup": GROUP_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(read_only_root_filesystem: bool = True) -> dict[str, Any]:
    """Container-level hardening: no privilege escalation, no capabilities at all."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": read_only_root_filesystem,
    }


def lake_access(lake: Lake | None, catalog_url: str | None = None) -> dict[str, Any]:
    """The lake for one pod: ``volumes``, ``volume_mounts`` and ``env`` (Kubernetes dicts).

    The one description of lake access, given to notebooks by the hub and to schedulers and
    workers by the gateway, so that code that reads the lake in a notebook reads it in its
    workers too. A volume is mounted read-only: only the chart's CronJob writes the lake.
    A scratch ``emptyDir`` at ``/tmp`` lets a read-only root file system work.
    """
    volumes: list[dict[str, Any]] = [{"name": SCRATCH_VOLUME, "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": SCRATCH_VOLUME, "mountPath": "/tmp"}]
    env: list[dict[str, Any]] = []
    if catalog_url:
        env.append({"name": "EOSC_PANGEO_CATALOG_URL", "value": catalog_url})
    if lake is not None:
        env.append({"name": "EOSC_PANGEO_LAKE", "value": lake.url})
        if lake.volume is not None:
            volumes.append({"name": LAKE_VOLUME, **lake.volume})
            mounts.append({"name": LAKE_VOLUME, "mountPath": lake.mount_path, "readOnly": True})
        if lake.s3 is not None:
            for variable, key in (
                ("AWS_ACCESS_KEY_ID", lake.s3.access_key_id_key),
                ("AWS_SECRET_ACCESS_KEY", lake.s3.secret_access_key_key),
            ):
                env.append(
                    {
                        "name": variable,
                        "valueFrom": {"secretKeyRef": {"name": lake.s3.secret_name, "key": key}},
                    }
                )
            if lake.s3.endpoint_url:
                # botocore (under s3fs) reads the endpoint from this variable.
                env.append({"name": "AWS_ENDPOINT_URL_S3", "value": lake.s3.endpoint_url})
    return {"volumes": volumes, "volume_mounts": mounts, "env": env}


def kubespawner_profiles(profiles: list[Profile]) -> list[dict[str, Any]]:
    """KubeSpawner ``profile_list`` entries for ``profiles`` (without the group gate)."""
    entries = []
    for profile in profiles:
        override: dict[str, Any] = {}
        resources = profile.resources
        for name, value in (
            ("cpu_guarantee", resources.cpu_guarantee),
            ("cpu_limit", resources.cpu_limit),
            ("mem_guarantee", resources.mem_guarantee),
            ("mem_limit", resources.mem_limit),
            ("image", profile.image),
        ):
            if value is not None:
                override[name] = value
        if resources.gpus:
            override["extra_resource_limits"] = {"nvidia.com/gpu": str(resources.gpus)}
        if profile.node_selector:
            override["node_selector"] = profile.node_selector
        if profile.tolerations:
            override["tolerations"] = profile.tolerations
        entries.append(
            {
                "slug": profile.slug,
                "display_name": profile.display_name,
                "description": profile.description,
                "default": profile.default,
                "kubespawner_override": override,
            }
        )
    return entries


def profiles_for(profiles: list[Profile], groups: set[str]) -> list[dict[str, Any]]:
    """The profiles a member of ``groups`` may pick (a profile without groups is for all)."""
    allowed = [p for p in profiles if not p.groups or groups & set(p.groups)]
    return kubespawner_profiles(allowed)


def gated_profile_list(profiles: list[Profile]):
    """A KubeSpawner ``profile_list`` callable: each user sees the profiles of their groups.

    With OIDC, the groups are those of the identity provider's claim (the authenticator
    manages them), so an EGI Check-in VO entitlement can open the GPU profile.
    """

    def profile_list(spawner) -> list[dict[str, Any]]:
        return profiles_for(profiles, {group.name for group in spawner.user.groups})

    return profile_list


def configure_hub(c: Config, deployment: dict[str, Any] | None = None) -> Deployment:
    """Configure a zero-to-jupyterhub hub: Dask Gateway, lake, hardening, profiles, login.

    Runs after the chart's own ``jupyterhub_config.py`` (as ``hub.extraConfig``), so what it
    sets wins over the jupyterhub chart's ``singleuser`` values for image, environment,
    volumes and security contexts: one image and one lake description for notebooks and
    workers, whatever was set there.
    """
    spec = load_deployment(deployment)
    c.KubeSpawner.image = spec.image
    c.KubeSpawner.image_pull_policy = spec.image_pull_policy
    c.KubeSpawner.uid = USER_ID
    c.KubeSpawner.gid = GROUP_ID
    c.KubeSpawner.fs_gid = GROUP_ID
    c.KubeSpawner.pod_security_context = pod_security_context()
    c.KubeSpawner.container_security_context = container_security_context(
        spec.read_only_root_filesystem
    )
    lake = lake_access(spec.lake, spec.catalog_url)
    c.KubeSpawner.volumes = [*_existing(c.KubeSpawner, "volumes", []), *lake["volumes"]]
    c.KubeSpawner.volume_mounts = [
        *_existing(c.KubeSpawner, "volume_mounts", []),
        *lake["volume_mounts"],
    ]
    if spec.gateway is not None:
        add_dask_gateway(
            c,
            gateway_url=spec.gateway.url,
            # Notebooks talk to the gateway's proxy directly (no detour through the hub's).
            public_gateway_url=f"{spec.gateway.url}/services/{SERVICE_NAME}",
            scheduler_address=spec.gateway.scheduler_address,
            notebook_image=lambda spawner: spawner.image,
            dashboard_url=spec.gateway.dashboard_url,
            front_url=f"http://hub:{spec.gateway.gate_port}",
            front_command=[
                sys.executable,
                "-m",
                "eosc_pangeo.platform.dashboards",
                "--ip",
                "0.0.0.0",
                "--port",
                str(spec.gateway.gate_port),
                "--upstream",
                spec.gateway.url,
            ],
        )
    if spec.jobs is not None:
        # Its own pod (a Deployment with the job store on a volume), not started by the hub;
        # notebooks reach its Service directly, with their token in a header.
        add_jobs_service(
            c,
            url=spec.jobs.url,
            public_url=f"{spec.jobs.url}/services/{JOBS_SERVICE}",
            user_environment=IMAGE_ENVIRONMENT,
        )
    # zero-to-jupyterhub sets KubeSpawner.environment (singleuser.extraEnv), which hides
    # Spawner.environment: merge ours in, the chart's extraEnv winning.
    c.KubeSpawner.environment = {
        **_existing(c.Spawner, "environment", {}),
        **results_environment(),
        **{variable["name"]: variable.get("value", variable) for variable in lake["env"]},
        **_existing(c.KubeSpawner, "environment", {}),
    }
    if spec.profiles:
        c.KubeSpawner.profile_list = gated_profile_list(spec.profiles)
    if spec.oidc is not None:
        # platform/auth.py owns OpenID Connect: one implementation for every deployment.
        from .auth import configure_oidc

        oidc = spec.oidc
        configure_oidc(
            c,
            issuer_url=oidc.issuer_url,
            client_id=oidc.client_id,
            client_secret=Path(oidc.client_secret_file).read_text().strip(),
            callback_url=oidc.callback_url,
            allowed_groups=tuple(oidc.allowed_groups),
            admin_groups=tuple(oidc.admin_groups),
            groups_claim=oidc.groups_claim,
            scopes=tuple(oidc.scopes),
            username_claim=oidc.username_claim,
        )
    return spec


def jobs_environment(spec: Deployment) -> dict[str, str]:
    """The settings of the jobs service, which its jobs run with: what a notebook gets.

    The lake, the catalogue and the gateway (its jobs' clusters start there, in the platform
    image), as :func:`configure_hub` gives them to notebooks and the single-machine runner to
    its jobs service; secrets stay in the pod's own environment.
    """
    lake = lake_access(spec.lake, spec.catalog_url)
    environment = {v["name"]: v["value"] for v in lake["env"] if "value" in v}
    if spec.gateway is not None:
        environment.update(
            notebook_environment(
                f"{spec.gateway.url}/services/{SERVICE_NAME}",
                spec.gateway.scheduler_address,
                spec.image,
            )
        )
    return environment


# prctl(2) option; no maintained Python binding of prctl is in the image, hence ctypes.
PR_SET_DUMPABLE = 4


def protect_from_jobs() -> None:
    """Make this process's memory and environment unreadable to its jobs.

    Jobs run users' code under this pod's one account; the service holds a hub token that may
    make tokens for any user. A process that is not dumpable can only be read (``/proc/<pid>/
    environ``, ``mem``) with ``CAP_SYS_PTRACE``, which the pod drops. Its children become
    dumpable again when they exec, so jobs keep their usual behaviour.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def serve_jobs() -> None:
    """Run the jobs service in the chart's jobs pod (arguments as ``eosc_pangeo.jobs.service``).

    Every user's jobs run in this one pod, as its account (Kubernetes gives the pod no way to
    switch users): see docs/kubernetes.md for what this means and what was not done.
    """
    spec = load_deployment()
    if spec.jobs is None:
        raise DeploymentError("deployment.json has no jobs section: is jobs.enabled set?")
    protect_from_jobs()
    os.environ.update(jobs_environment(spec))
    get_settings.cache_clear()  # read again, with the settings just set
    from ..jobs.service import main

    main()


def _snake_keys(fields: dict[str, Any]) -> dict[str, Any]:
    return {to_snake(name): value for name, value in fields.items()}


def _existing(section: Any, name: str, empty: Any) -> Any:
    """A trait's value already in a config section, or ``empty``."""
    return section[name] if name in section else empty


class KubeQuotaClusterConfig(UserQuotas, KubeClusterConfig):
    """Kubernetes cluster configuration with its owner's quotas."""


class PlatformKubeBackend(FairUseMixin, KubeBackend):
    """dask-gateway's ``KubeBackend`` with the platform's fair-use limits and quotas.

    Clusters are ``DaskCluster`` objects run by dask-gateway's controller; their records live
    in the backend's informer cache, not in a database, hence :meth:`cluster_usage` and
    :meth:`user_clusters`. An ``image`` must be one of ``allowed_images`` (the platform's own,
    by default the notebook image), so users cannot run arbitrary code images on the nodes.
    """

    cluster_config_class = Type(
        "eosc_pangeo.platform.kube.KubeQuotaClusterConfig",
        klass="eosc_pangeo.platform.kube.KubeQuotaClusterConfig",
        help="The cluster config class to use",
        config=True,
    )

    allowed_images = List(Unicode(), help="Images users may run clusters in.", config=True)

    @default("allowed_images")
    def _default_allowed_images(self) -> list[str]:
        return [self.default_image]

    def image_config(self, image: str) -> dict[str, Any]:
        if image not in self.allowed_images:
            raise ValueError(
                f"image {image!r} is not one of this platform's images: "
                f"{', '.join(self.allowed_images)}"
            )
        return {"image": image}

    def cluster_usage(self, cluster_name: str) -> ClusterUsage | None:
        cluster = self.clusters.get(cluster_name)
        if cluster is None:
            return None
        return ClusterUsage.from_config(
            cluster.name, cluster.username, self._replicas(cluster_name), cluster.config
        )

    def user_clusters(self, username: str) -> list[ClusterUsage]:
        return [
            ClusterUsage.from_config(c.name, c.username, self._replicas(c.name), c.config)
            for c in self.username_to_clusters.get(username, {}).values()
            if c.status <= c.status.RUNNING
        ]

    def _replicas(self, cluster_name: str) -> int:
        """Workers the cluster's DaskCluster object asks for (its ``spec.replicas``)."""
        obj = self.informer.get(cluster_name) or {}
        return int(obj.get("spec", {}).get("replicas", 0))


def configure_gateway(c: Config, deployment: dict[str, Any] | None = None) -> Deployment:
    """Configure the dask-gateway chart's gateway: fair use, one image, the lake, hardening.

    Runs after the chart's own configuration (as ``gateway.extraConfig``). Schedulers and
    workers get the notebook image, the lake's volume or credentials and environment, and the
    same security contexts as notebooks (:func:`lake_access`, :func:`pod_security_context`).
    """
    spec = load_deployment(deployment)
    if spec.gateway is None:
        raise DeploymentError("deployment.json has no gateway section: is dask-gateway enabled?")
    gateway = spec.gateway
    c.DaskGateway.backend_class = "eosc_pangeo.platform.kube.PlatformKubeBackend"
    images = [spec.image, *(p.image for p in spec.profiles if p.image)]
    c.PlatformKubeBackend.default_image = spec.image
    c.PlatformKubeBackend.allowed_images = list(dict.fromkeys(images))
    # The chart's values are camelCase, the fields of Limits snake_case.
    c.FairUsePolicy.default_limits = _snake_keys(gateway.default_limits)
    c.FairUsePolicy.group_limits = {
        group: _snake_keys(limits) for group, limits in gateway.group_limits.items()
    }

    lake = lake_access(spec.lake, spec.catalog_url)
    # KubeClusterConfig.environment holds plain values; secret references go in the container.
    c.KubeClusterConfig.environment = {
        variable["name"]: variable["value"] for variable in lake["env"] if "value" in variable
    }
    secret_env = [variable for variable in lake["env"] if "valueFrom" in variable]
    container = {
        "securityContext": container_security_context(spec.read_only_root_filesystem),
        "volumeMounts": lake["volume_mounts"],
        "env": secret_env,
    }
    pod = {"securityContext": pod_security_context(), "volumes": lake["volumes"]}
    c.KubeClusterConfig.image = spec.image
    c.KubeClusterConfig.image_pull_policy = spec.image_pull_policy
    c.KubeClusterConfig.worker_extra_container_config = container
    c.KubeClusterConfig.scheduler_extra_container_config = container
    c.KubeClusterConfig.worker_extra_pod_config = pod
    c.KubeClusterConfig.scheduler_extra_pod_config = pod
    c.KubeClusterConfig.scheduler_cores = gateway.scheduler.cores
    c.KubeClusterConfig.scheduler_cores_limit = gateway.scheduler.cores_limit
    c.KubeClusterConfig.scheduler_memory = gateway.scheduler.memory
    c.KubeClusterConfig.scheduler_memory_limit = gateway.scheduler.memory_limit
    # Workers' limits default to their requests (what the user chose within their limits):
    # guaranteed QoS, so a busy node never evicts a worker for another user's.
    return spec


if __name__ == "__main__":
    serve_jobs()
