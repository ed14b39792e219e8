"""Dask Gateway server configuration: cluster options, fair-use limits and quotas, a safe backend.

Used in the same way by the single-machine runner (the gateway is a hub-managed service started
with ``python -m eosc_pangeo.platform.gateway -f <config.json>``) and by a Helm chart's gateway
(``extraConfig``: ``c.merge(gateway_config(...))``, or the classes below set by name).

Configuration, in dask-gateway's traitlets style::

    c.DaskGateway.backend_class = f"eosc_pangeo.platform.gateway.{backend}"
    c.FairUsePolicy.default_limits = {"max_clusters": 2, "max_user_cores": 8}
    c.FairUsePolicy.group_limits = {"staff": {"max_clusters": 5, "max_user_cores": 32}}

What users may set from a notebook (``worker_cores``, ``worker_memory``, ``image``,
``environment``, ``idle_timeout``) and within which bounds follows from the limits of their groups.
Quotas count the workers' cores and memory (a cluster's scheduler is not counted) over all of a
user's active clusters. Exceeding a quota is refused with a message that says which quota, by how
much, and what to do.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import sys
from dataclasses import dataclass
from typing import Any

from dask_gateway_server.app import DaskGateway
from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.backends.local import (
    LocalBackend,
    LocalClusterConfig,
    UnsafeLocalBackend,
)
from dask_gateway_server.options import Float, Integer, Mapping, Options, String
from dask_gateway_server.proxy import Proxy
from dask_gateway_server.traitlets import Type
from pydantic import BaseModel, ByteSize, ConfigDict, PositiveInt
from traitlets import Dict, Instance, List, Unicode, default
from traitlets import Float as FloatTrait
from traitlets.config import Config, Configurable, LoggingConfigurable

from .loopback import LoopbackFence, free_ports

GiB = 2**30
SERVICE_NAME = "dask-gateway"


class Limits(BaseModel):
    """Limits of one user (resolved from their groups); memory accepts ``"16GiB"`` or bytes.

    ``max_cluster_*`` bound one cluster, its scheduler included (dask-gateway's
    ``cluster_max_*``); ``max_user_*`` bound the workers of all of a user's clusters together.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_worker_cores: PositiveInt = 4
    max_worker_memory: ByteSize = ByteSize(16 * GiB)
    max_cluster_cores: PositiveInt = 16
    max_cluster_memory: ByteSize = ByteSize(64 * GiB)
    max_clusters: PositiveInt = 2
    max_user_cores: PositiveInt = 32
    max_user_memory: ByteSize = ByteSize(128 * GiB)
    idle_timeout: float = 1800.0
    max_idle_timeout: float = 8 * 3600.0


class FairUsePolicy(LoggingConfigurable):
    """Per-cluster limits and per-user quotas, configurable per group."""

    default_limits = Dict(
        help="Limits of every user, as fields of :class:`Limits` (unset fields keep its defaults).",
        config=True,
    )
    group_limits = Dict(
        value_trait=Dict(),
        help="""Limits per JupyterHub group, each applied over ``default_limits``. A user in
        several groups gets, field by field, the most generous of them.""",
        config=True,
    )

    def limits_for(self, groups: set[str] | frozenset[str]) -> Limits:
        """The limits of a user who belongs to ``groups``."""
        candidates = [
            Limits(**{**self.default_limits, **self.group_limits[group]})
            for group in sorted(groups)
            if group in self.group_limits
        ]
        if not candidates:
            return Limits(**self.default_limits)
        return Limits(
            **{name: max(getattr(c, name) for c in candidates) for name in Limits.model_fields}
        )


class UserQuotas(Configurable):
    """Cluster configuration traits that record the owner's quotas (they outlive the request)."""

    user_max_cores = FloatTrait(
        0, help="The owner's total worker cores over all clusters (0: none)."
    )
    user_max_memory = FloatTrait(
        0, help="The owner's total worker bytes over all clusters (0: none)."
    )


class QuotaClusterConfig(UserQuotas, LocalClusterConfig):
    """Local-process cluster configuration with its owner's quotas."""


@dataclass(frozen=True)
class ClusterUsage:
    """What one cluster asks for, with its owner's quotas, whatever the backend's records."""

    name: str
    username: str
    workers: int
    worker_cores: float
    worker_memory: float
    user_max_cores: float
    user_max_memory: float

    @classmethod
    def from_config(cls, name: str, username: str, workers: int, config: Any) -> ClusterUsage:
        """From a cluster config as an object (database backends) or a dict (Kubernetes)."""
        get = config.get if isinstance(config, dict) else lambda key: getattr(config, key)
        return cls(
            name,
            username,
            workers,
            get("worker_cores"),
            get("worker_memory"),
            get("user_max_cores") or 0,
            get("user_max_memory") or 0,
        )

    @property
    def cores(self) -> float:
        return self.workers * self.worker_cores

    @property
    def memory(self) -> float:
        return self.workers * self.worker_memory


class SafeLocalBackend(LocalBackend):
    """``LocalBackend`` that gives its user only the cluster's own working directory.

    dask-gateway-server 2026.3.0 passes ``set_file_permissions`` a list that holds the single
    characters of the TLS file paths (``paths.extend(path)`` on a string), ``"/"`` among them:
    run as root, the stock backend chowns ``/`` to the cluster's user. Here the ownership change
    walks the working directory (always the first path) and nothing else.
    """

    def set_file_permissions(self, paths: list[str], username: str) -> None:
        workdir = paths[0]
        entry = pwd.getpwnam(username)
        owner = (entry.pw_uid, entry.pw_gid)
        os.lchown(workdir, *owner)
        for root, directories, files in os.walk(workdir):
            for name in directories + files:
                os.lchown(os.path.join(root, name), *owner)


class FairUseMixin(LoggingConfigurable):
    """Options bounded by the user's limits, and per-user quotas, for a db-based gateway backend.

    A backend class using it defines :meth:`image_config` (what an ``image`` means to it) and uses
    a ``cluster_config_class`` with the :class:`UserQuotas` traits. The records of clusters are
    read through :meth:`cluster_usage` and :meth:`user_clusters`, which read the gateway's
    database here; a backend that keeps them elsewhere (Kubernetes) overrides both.
    """

    policy = Instance(FairUsePolicy)

    @default("policy")
    def _default_policy(self) -> FairUsePolicy:
        return FairUsePolicy(parent=self)

    default_image = Unicode(help="Image of clusters when the user gives none.", config=True)

    def image_config(self, image: str) -> dict[str, Any]:
        """Cluster configuration that makes scheduler and workers run ``image``."""
        raise NotImplementedError

    async def get_cluster_options(self, user) -> Options:
        limits = self.policy.limits_for(user.groups)
        base_environment = dict(self.cluster_config_class(parent=self).environment)

        def to_configuration(options, user) -> dict[str, Any]:
            return {
                "worker_cores": options.worker_cores,
                "worker_memory": int(options.worker_memory * GiB),
                # The server's environment first; users add variables, the lake's among them.
                "environment": {**base_environment, **options.environment},
                "idle_timeout": options.idle_timeout,
                "cluster_max_cores": min(limits.max_cluster_cores, limits.max_user_cores),
                "cluster_max_memory": min(limits.max_cluster_memory, limits.max_user_memory),
                "user_max_cores": limits.max_user_cores,
                "user_max_memory": limits.max_user_memory,
                **self.image_config(options.image),
            }

        return Options(
            Integer(
                "worker_cores", default=1, min=1, max=limits.max_worker_cores, label="Worker cores"
            ),
            Float(
                "worker_memory",
                default=min(2.0, limits.max_worker_memory / GiB),
                min=0.25,
                max=limits.max_worker_memory / GiB,
                label="Worker memory (GiB)",
            ),
            String("image", default=self.default_image, label="Image"),
            Mapping("environment", default={}, label="Environment variables"),
            Float(
                "idle_timeout",
                default=limits.idle_timeout,
                min=10,  # short-lived clusters for scripts and tests cost nothing to allow
                max=limits.max_idle_timeout,
                label="Idle timeout (s)",
            ),
            handler=to_configuration,
        )

    def cluster_usage(self, cluster_name: str) -> ClusterUsage | None:
        """The usage of cluster ``cluster_name``, None if unknown."""
        record = self.db.get_cluster(cluster_name)
        if record is None:
            return None
        return ClusterUsage.from_config(record.name, record.username, record.count, record.config)

    def user_clusters(self, username: str) -> list[ClusterUsage]:
        """The usage of each of ``username``'s active clusters."""
        return [
            ClusterUsage.from_config(c.name, c.username, c.count, c.config)
            for c in self.db.list_clusters(username=username)
        ]

    async def start_cluster(self, user, cluster_options):
        limits = self.policy.limits_for(user.groups)
        active = self.user_clusters(user.name)
        if len(active) >= limits.max_clusters:
            raise PublicException(
                f"Quota exceeded: user {user.name} may run {limits.max_clusters} clusters at "
                f"once and has {len(active)} ({', '.join(c.name for c in active)}). Shut one "
                "down (cluster.shutdown(), or Gateway().stop_cluster(name)) and try again."
            )
        return await super().start_cluster(user, cluster_options)

    def workers_within_quota(self, cluster: ClusterUsage, count: int) -> tuple[int, str]:
        """How many of ``count`` workers the owner's quotas allow ``cluster``, and why not more."""
        others = [c for c in self.user_clusters(cluster.username) if c.name != cluster.name]
        used_cores = sum(c.cores for c in others)
        used_memory = sum(c.memory for c in others)
        allowed, reason = count, ""
        for quota, used, per_worker, unit, what in (
            (cluster.user_max_cores, used_cores, cluster.worker_cores, 1, "cores"),
            (cluster.user_max_memory, used_memory, cluster.worker_memory, GiB, "GiB of memory"),
        ):
            if not quota:
                continue
            fit = max(int((quota - used) // per_worker), 0)
            if fit < allowed:
                allowed = fit
                reason = (
                    f"Quota exceeded: user {cluster.username} may use {quota / unit:g} {what} "
                    f"for workers over all clusters; {len(others)} other cluster(s) use "
                    f"{used / unit:g}, so cluster {cluster.name} can have at most {fit} "
                    f"worker(s) of {per_worker / unit:g} {what}, not {count}. Scale down or "
                    "shut down another cluster first."
                )
        return allowed, reason

    async def forward_message_to_scheduler(self, cluster, msg):
        requested = {"scale": msg.get("count"), "adapt": msg.get("maximum")}.get(msg["op"])
        if requested is not None:
            usage = self.cluster_usage(cluster.name)
            allowed, reason = self.workers_within_quota(usage, requested)
            if allowed < requested:
                raise PublicException(reason)
        return await super().forward_message_to_scheduler(cluster, msg)

    async def on_cluster_heartbeat(self, cluster_name, msg):
        # Adaptive scaling happens in the scheduler, out of sight of the API checks above; the
        # heartbeat is where its requests reach the backend, so the quota is enforced here too.
        usage = self.cluster_usage(cluster_name)
        if usage is not None and msg["count"] > usage.workers:
            allowed, reason = self.workers_within_quota(usage, msg["count"])
            if allowed < msg["count"]:
                self.log.info("Cluster %s capped at %d workers: %s", cluster_name, allowed, reason)
                msg = {**msg, "count": max(allowed, usage.workers)}
        return await super().on_cluster_heartbeat(cluster_name, msg)


class EnvironmentImages(FairUseMixin):
    """Clusters as local processes with fair use; an ``image`` is the path of a Python
    environment (a venv or conda prefix) among ``allowed_environments``; by default the
    notebook's, so workers run the same versions."""

    cluster_config_class = Type(
        "eosc_pangeo.platform.gateway.QuotaClusterConfig",
        klass="eosc_pangeo.platform.gateway.QuotaClusterConfig",
        help="The cluster config class to use",
        config=True,
    )

    allowed_environments = List(
        Unicode(),
        help="Python environments users may run clusters in (default: the gateway's own).",
        config=True,
    )

    @default("allowed_environments")
    def _default_allowed_environments(self) -> list[str]:
        return [sys.prefix]

    @default("default_image")
    def _default_default_image(self) -> str:
        return sys.prefix

    def image_config(self, image: str) -> dict[str, Any]:
        allowed = {os.path.realpath(path) for path in self.allowed_environments}
        if os.path.realpath(image) not in allowed:
            raise ValueError(
                f"image {image!r} is not one of this platform's Python environments: "
                f"{', '.join(sorted(self.allowed_environments))}"
            )
        # dask >= 2026 ships one `dask` command (no `dask-scheduler` / `dask-worker`).
        dask_command = os.path.join(image, "bin", "dask")
        return {
            "scheduler_cmd": [dask_command, "scheduler"],
            "worker_cmd": [dask_command, "worker"],
        }


class ClustersOutliveTheGateway(LoggingConfigurable):
    """Clusters that keep running while the gateway restarts, unless the platform goes down.

    With its database in a file, a new gateway finds the clusters the last one left (their
    processes, TLS credentials and proxy routes) and users keep computing across a restart of the
    hub, which stops and starts its managed services. ``eosc-pangeo down`` creates
    ``stop_clusters_file`` before it stops the hub: that gateway stops every cluster on its way out.
    """

    stop_clusters_file = Unicode(
        "",
        config=True,
        help="If this file exists when the gateway stops, every cluster is stopped with it.",
    )

    async def cleanup(self):
        if self.stop_clusters_file and os.path.exists(self.stop_clusters_file):
            self.stop_clusters_on_shutdown = True
        await super().cleanup()


#: What the gateway's HTTP proxy port is called among the fenced ports of :mod:`.loopback`.
PROXY_FENCE = "gateway-proxy"


class DashboardsForTheGatewayOnly(LoggingConfigurable):
    """Dashboards that, on loopback, only the gateway's account may open (see :mod:`.loopback`).

    A scheduler's dashboard answers anyone who connects, and so does the gateway's HTTP proxy at
    ``/clusters/<name>/``; users reach both through the dashboards' gate (:mod:`.dashboards`),
    which runs as root like the hub and the gateway. So both ports are fenced for the gateway's
    account: the proxy's from the gateway's start to its end, a scheduler's dashboard from
    before its scheduler starts (the gateway picks the port) until the cluster stops. Clusters
    that outlive a gateway keep their fences; its successor drops those of clusters that ended
    meanwhile. Workers serve no pages of their own (neither dashboard nor metrics): no route of
    the gateway ever led to them.

    Where fences are unavailable (no root, no netfilter) the gateway says so in its log and
    runs unfenced; a fence that fails later fails its cluster instead.
    """

    fence_label = Unicode(
        "",
        config=True,
        help="Names this platform's loopback fences (see eosc_pangeo.platform.loopback); "
        "empty: dashboards are not fenced.",
    )

    fence = Instance(LoopbackFence, allow_none=True)

    def dashboard_port(self, cluster) -> int:
        """The port picked for ``cluster``'s dashboard (and fenced before it listens)."""
        if cluster.name not in self._dashboard_ports:
            self._dashboard_ports[cluster.name] = free_ports(1)[0]
        return self._dashboard_ports[cluster.name]

    async def setup(self, app):
        self._dashboard_ports: dict[str, int] = {}
        self.fence = await asyncio.to_thread(self._usable_fence)
        await super().setup(app)
        if self.fence is not None:
            active = {cluster.name for cluster in self.db.active_clusters()}
            swept = await asyncio.to_thread(self.fence.sweep, frozenset(active | {PROXY_FENCE}))
            if swept:
                self.log.info("Dropped the loopback fences of ended clusters %s", swept)

    def _usable_fence(self) -> LoopbackFence | None:
        """The fence, with the proxy's port kept already; None (said in the log) if none."""
        if not self.fence_label:
            return None
        fence = LoopbackFence(self.fence_label, owner_uid=os.geteuid())
        reason = fence.unavailable()
        if reason is None:
            try:
                fence.keep(PROXY_FENCE, port_of(Proxy(parent=self).address))
            except RuntimeError as error:
                reason = str(error)
        if reason is not None:
            self.log.warning(
                "Dask dashboards are NOT fenced on loopback (%s): every local account can open "
                "them at their schedulers' ports and at the gateway's proxy (see "
                "docs/platform.md, 'Dask dashboards'). Run as root with iptables to fence them.",
                reason,
            )
            return None
        self.log.info("Dask dashboards on loopback are for uid %d only", fence.owner_uid)
        return fence

    async def cleanup(self):
        await super().cleanup()
        if self.fence is not None:
            await asyncio.to_thread(self.fence.release, PROXY_FENCE)

    async def do_start_cluster(self, cluster):
        if self.fence is not None:
            await asyncio.to_thread(self.fence.keep, cluster.name, self.dashboard_port(cluster))
        async for state in super().do_start_cluster(cluster):
            yield state

    def get_scheduler_command(self, cluster) -> list[str]:
        command = super().get_scheduler_command(cluster)
        if self.fence is None:
            return command
        at = command.index("--dashboard-address") + 1
        return [
            *command[:at],
            f"{self.default_host}:{self.dashboard_port(cluster)}",
            *command[at + 1 :],
        ]

    def get_worker_command(self, cluster, worker_name, scheduler_address=None) -> list[str]:
        return [
            *super().get_worker_command(cluster, worker_name, scheduler_address),
            "--no-dashboard",
        ]

    def get_worker_env(self, cluster) -> dict[str, str]:
        # A worker's HTTP server runs even without its dashboard: with no routes (metrics,
        # health), its port serves nothing.
        return {**super().get_worker_env(cluster), "DASK_DISTRIBUTED__WORKER__HTTP__ROUTES": "[]"}

    async def _check_cluster_proxied(self, cluster):
        # Also where a successor gateway meets the clusters it found; and a scheduler whose
        # picked port was taken meanwhile serves its dashboard elsewhere: fence what it reports.
        if self.fence is not None and not cluster.added_to_proxies and cluster.dashboard_address:
            await asyncio.to_thread(
                self.fence.keep, cluster.name, port_of(cluster.dashboard_address)
            )
        await super()._check_cluster_proxied(cluster)

    async def do_stop_cluster(self, cluster):
        # Before the cluster is recorded stopped: a stopped cluster has no fence left.
        try:
            await super().do_stop_cluster(cluster)
        finally:
            self._dashboard_ports.pop(cluster.name, None)
            if self.fence is not None:
                await asyncio.to_thread(self.fence.release, cluster.name)


def port_of(address: str) -> int:
    """The port of ``host:port`` or ``scheme://host:port``."""
    return int(address.rsplit(":", 1)[1])


class PlatformLocalBackend(
    DashboardsForTheGatewayOnly, ClustersOutliveTheGateway, EnvironmentImages, SafeLocalBackend
):
    """Clusters run as the hub user's namesake system user (the gateway runs as root), their
    dashboards fenced on loopback for root."""


class SingleAccountLocalBackend(
    DashboardsForTheGatewayOnly, ClustersOutliveTheGateway, EnvironmentImages, UnsafeLocalBackend
):
    """Clusters run as the account running the gateway: for a platform started without root,
    where users are not separated from each other (see docs/platform.md); its dashboards cannot
    be fenced, which its log says."""


def gateway_config(
    *,
    api_address: str,
    proxy_address: str,
    scheduler_address: str,
    prefix: str = f"/services/{SERVICE_NAME}",
    state_directory: str,
    default_limits: dict[str, Any] | None = None,
    group_limits: dict[str, dict[str, Any]] | None = None,
    environments: list[str] | None = None,
    backend: str = "PlatformLocalBackend",
    database: str | None = None,
    database_key: str | None = None,
    fence_label: str | None = None,
) -> Config:
    """Configuration of a gateway run as a JupyterHub service with local-process clusters.

    Parameters
    ----------
    api_address : str
        ``host:port`` of the gateway's private API server.
    proxy_address : str
        ``host:port`` of the gateway's HTTP proxy: the hub's proxy routes ``prefix`` to it.
    scheduler_address : str
        ``host:port`` where clients reach schedulers (TLS, routed by cluster name).
    prefix : str
        The service's URL path on the hub.
    state_directory : str
        Where the clusters' working directories go (it must be traversable by users).
    default_limits, group_limits : dict
        See :class:`FairUsePolicy`.
    environments : list of str
        Python environments users may choose as ``image``; the first is the default.
    backend : str
        ``PlatformLocalBackend`` (run as root: clusters run as their users) or
        ``SingleAccountLocalBackend`` (without root: clusters run as the gateway's account).
    database : str, optional
        A private file for the gateway's database: clusters then outlive a restart of the
        gateway, and are stopped with it only once ``<database>.stop-clusters`` exists (see
        :class:`ClustersOutliveTheGateway`). Without it, the database stays in memory and
        clusters stop with the gateway.
    database_key : str, optional
        The Fernet key (32 url-safe base64 bytes) that encrypts the clusters' credentials in
        ``database``; required with it.
    fence_label : str, optional
        Names the platform's loopback fences, which keep the clusters' dashboards and the
        gateway's HTTP proxy for the gateway's account, root (see
        :class:`DashboardsForTheGatewayOnly`). Without it, or without root, they are open to
        every local account.

    Returns
    -------
    traitlets.config.Config
        JSON-serialisable (see :func:`write_gateway_config`).
    """
    environments = environments or [sys.prefix]
    c = Config()
    c.DaskGateway.address = api_address
    c.DaskGateway.backend_class = f"eosc_pangeo.platform.gateway.{backend}"
    c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"
    # Only tokens with access:services!service=dask-gateway may use the gateway.
    c.JupyterHubAuthenticator.jupyterhub_service_name = SERVICE_NAME
    c.Proxy.address = proxy_address
    c.Proxy.tcp_address = scheduler_address
    c.Proxy.prefix = prefix
    c[backend].clusters_directory = os.path.join(state_directory, "clusters")
    c[backend].allowed_environments = environments
    c[backend].default_image = environments[0]
    # Schedulers call the API server itself, not through the HTTP proxy: that may be fenced.
    c[backend].api_url = f"http://{api_address}/api"
    if fence_label:
        c[backend].fence_label = fence_label
    if database is None:
        c[backend].stop_clusters_on_shutdown = True
    else:
        if not database_key:
            raise ValueError(f"the gateway's database {database} needs a key to encrypt it")
        c[backend].db_url = f"sqlite:///{database}"
        c[backend].db_encrypt_keys = [database_key]
        c[backend].stop_clusters_on_shutdown = False
        c[backend].stop_clusters_file = stop_clusters_file(database)
    c.FairUsePolicy.default_limits = default_limits or {}
    c.FairUsePolicy.group_limits = group_limits or {}
    return c


def stop_clusters_file(database: str) -> str:
    """The file whose presence makes the gateway of ``database`` stop its clusters as it stops."""
    return f"{database}.stop-clusters"


def write_gateway_config(config: Config, path: str) -> str:
    """Write ``config`` as a JSON file that ``dask-gateway-server -f`` (and :func:`main`) load;
    readable by its owner only (it may hold the database's key)."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        os.fchmod(file.fileno(), 0o600)
        json.dump(config, file, indent=2)
    return path


def check_backend_is_safe(backend_class: type, euid: int) -> None:
    """Refuse, as root, a LocalBackend that keeps the stock ``set_file_permissions``.

    That method chowns ``/`` (see :class:`SafeLocalBackend`); ``UnsafeLocalBackend``, which
    changes no ownership at all, is fine.
    """
    if (
        euid == 0
        and issubclass(backend_class, LocalBackend)
        and backend_class.set_file_permissions is LocalBackend.set_file_permissions
    ):
        raise ValueError(
            f"{backend_class.__module__}.{backend_class.__name__} would chown / to the users of "
            "its clusters when run as root; use eosc_pangeo.platform.gateway.PlatformLocalBackend "
            "(or SafeLocalBackend)"
        )


def main(argv: list[str] | None = None) -> None:
    """Run the gateway (same command line as ``dask-gateway-server``, e.g. ``-f config.json``)."""
    gateway = DaskGateway.instance()
    gateway.initialize(argv)
    check_backend_is_safe(gateway.backend_class, os.geteuid())
    gateway.start()


if __name__ == "__main__":
    main()
