"""``cluster()``: one call that gives a ready Dask cluster on the gateway, on HPC or locally."""

from __future__ import annotations

import time
from typing import Literal

from distributed.deploy.cluster import Cluster

from ..config import Settings, get_settings
from .gateway import start_gateway
from .local import start_local
from .spec import BACKENDS, ClusterOptionError, ClusterSpec, ClusterStartError

Backend = Literal["auto", "gateway", "slurm", "pbs", "local"]


def choose_backend(backend: str, settings: Settings) -> str:
    """Resolve ``"auto"``: the gateway if configured, else the site's batch system, else local."""
    if backend == "auto":
        if settings.gateway_address:
            return "gateway"
        return settings.jobqueue or "local"
    if backend not in BACKENDS:
        raise ClusterOptionError(f"backend must be 'auto' or one of {BACKENDS}, got {backend!r}")
    return backend


def cluster(
    workers: int | None = None,
    cores: int | None = None,
    memory: int | str | None = None,
    adaptive: tuple[int, int] | None = None,
    backend: Backend = "auto",
    image: str | None = None,
    env: dict[str, str] | None = None,
    idle_timeout: float | None = None,
    *,
    settings: Settings | None = None,
) -> Cluster:
    """Start a Dask cluster and return it once its workers are up.

    The same call runs unchanged in the hub (Dask Gateway), on an HPC front end (Slurm, PBS
    through dask-jobqueue) and on a laptop (LocalCluster).

    Parameters
    ----------
    workers : int, optional
        Number of workers (default ``settings.cluster_workers``: 1, or the ``--workers`` of a
        batch job). Not together with ``adaptive``.
    cores : int, optional
        Cores (threads) per worker; default: the backend's (site's) default.
    memory : int or str, optional
        Memory per worker, bytes or a string such as ``"4GiB"``; default: the backend's.
    adaptive : (int, int), optional
        ``(minimum, maximum)`` workers: the cluster grows and shrinks with the work.
    backend : {"auto", "gateway", "slurm", "pbs", "local"}
        ``"auto"`` picks the gateway when its address is configured (as inside the hub), else the
        site's batch system (``EOSC_PANGEO_JOBQUEUE``), else a LocalCluster.
    image : str, optional
        Software environment of the workers: a container image on Kubernetes, the path of a Python
        environment on local processes and HPC. Default: the notebook's own.
    env : dict of str to str, optional
        Extra environment variables for the workers. The lake's settings and credentials are
        always passed on.
    idle_timeout : float, optional
        Seconds without work after which the cluster shuts itself down.
    settings : Settings, optional
        Platform settings; default: :func:`eosc_pangeo.config.get_settings`.

    Returns
    -------
    distributed.deploy.Cluster
        A ``GatewayCluster``, ``SLURMCluster``, ``PBSCluster`` or ``LocalCluster``;
        ``cluster.get_client()`` gives a connected client.

    Raises
    ------
    ClusterOptionError
        An invalid option; :class:`UnsupportedOption` when the chosen backend cannot honour it
        (e.g. ``image`` with ``"local"``).
    ValueError
        An option the gateway's limits or quotas refuse (dask-gateway's message says which).
    ClusterStartError
        The backend is unreachable, or workers did not start within
        ``settings.cluster_start_timeout`` seconds.

    Examples
    --------
    >>> from eosc_pangeo import cluster
    >>> with cluster(workers=4, cores=2, memory="8GiB") as c, c.get_client() as client:
    ...     client.submit(sum, [1, 2]).result()
    3
    """
    settings = settings or get_settings()
    if workers is None and adaptive is None:
        workers = settings.cluster_workers
    spec = ClusterSpec.from_user(
        workers=workers,
        cores=cores,
        memory=memory,
        adaptive=adaptive,
        image=image,
        env=env,
        idle_timeout=idle_timeout,
    )
    chosen = choose_backend(backend, settings)
    deadline = time.monotonic() + settings.cluster_start_timeout
    if chosen == "gateway":
        dask_cluster = start_gateway(spec, settings, deadline)
    elif chosen == "local":
        dask_cluster = start_local(spec, settings)
    else:
        # Imported here: dask_jobqueue installs a signal handler at import, which fails outside
        # the main thread, and workers import eosc_pangeo (for its settings) in task threads.
        from .jobqueue import start_jobqueue

        dask_cluster = start_jobqueue(chosen, spec, settings)
    try:
        if spec.adaptive is not None:
            dask_cluster.adapt(minimum=spec.adaptive[0], maximum=spec.adaptive[1])
        else:
            dask_cluster.scale(spec.workers)
        wait_for_workers(dask_cluster, chosen, spec.workers, deadline)
    except BaseException:
        dask_cluster.close()
        raise
    return dask_cluster


def wait_for_workers(dask_cluster: Cluster, backend: str, count: int, deadline: float) -> None:
    """Block until ``count`` workers are connected, or raise before ``deadline``."""
    if count == 0:
        return
    with dask_cluster.get_client() as client:
        try:
            client.wait_for_workers(count, timeout=max(deadline - time.monotonic(), 1.0))
        except TimeoutError:
            connected = len(client.scheduler_info(n_workers=-1)["workers"])
            raise ClusterStartError(
                f"backend {backend!r}: {connected} of {count} workers started within the start "
                "timeout (EOSC_PANGEO_CLUSTER_START_TIMEOUT); the jobs or pods may be queued "
                "or failing, see the backend's logs"
            ) from None
