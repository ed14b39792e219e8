"""Dask Gateway backend: clusters run by the platform's gateway (Kubernetes, or local processes).

The option names are those of the platform's gateway server
(:mod:`eosc_pangeo.platform.gateway`); a gateway that does not offer an option the user set is an
error, never a silent drop.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

from dask_gateway import Gateway, GatewayCluster
from dask_gateway.client import ClusterStatus
from distributed.utils import LoopRunner

from ..config import Settings
from .spec import ClusterSpec, ClusterStartError, UnsupportedOption

# User option -> (server option, conversion). Memory is in GiB on the server's form, as in
# dask-gateway's own examples, so that the notebook widget shows readable numbers.
SERVER_OPTIONS = {
    "cores": ("worker_cores", lambda cores: cores),
    "memory": ("worker_memory", lambda memory: memory / 2**30),
    "image": ("image", lambda image: image),
    "env": ("environment", lambda env: env),
    "idle_timeout": ("idle_timeout", lambda seconds: seconds),
}
HEALTH_TIMEOUT = 10.0
POLL_INTERVAL = 0.5


def check_gateway(address: str) -> None:
    """Fail fast with a clear message when nothing answers at the gateway's address."""
    try:
        with urllib.request.urlopen(f"{address}/api/health", timeout=HEALTH_TIMEOUT):
            pass
    except urllib.error.HTTPError as error:
        if error.code != 503:  # 503 is an unhealthy but present gateway: its own errors follow
            raise ClusterStartError(
                f"backend 'gateway': {address}/api/health answered HTTP {error.code}; "
                "is this the Dask Gateway address?"
            ) from None
    except (urllib.error.URLError, OSError) as error:
        raise ClusterStartError(
            f"backend 'gateway': no Dask Gateway answers at {address} ({error}); "
            "is the gateway running and EOSC_PANGEO_GATEWAY_ADDRESS right?"
        ) from None


def requested_options(spec: ClusterSpec, settings: Settings) -> dict:
    """The options of ``spec`` the user set, by user-facing name; ``env`` includes the lake's."""
    requested = {
        "cores": spec.cores,
        "memory": spec.memory,
        "image": spec.image,
        "env": spec.worker_env(settings) or None,
        "idle_timeout": spec.idle_timeout,
    }
    return {name: value for name, value in requested.items() if value is not None}


def start_gateway(spec: ClusterSpec, settings: Settings, deadline: float) -> GatewayCluster:
    """Create a cluster on the gateway and wait (until ``deadline``, a monotonic time) for it.

    Raises
    ------
    UnsupportedOption
        The gateway does not offer one of the options the user set.
    ValueError
        The gateway refused an option value or a quota was exceeded (its message says which).
    ClusterStartError
        No gateway answers, or the cluster did not start before the deadline.
    """
    address = settings.gateway_address
    if not address:
        raise ClusterStartError(
            "backend 'gateway' needs the gateway's address (EOSC_PANGEO_GATEWAY_ADDRESS); "
            "inside the hub it is set for you"
        )
    check_gateway(address)
    connection = {
        "address": address,
        "proxy_address": settings.gateway_proxy_address,
        "auth": settings.gateway_auth,
    }
    # The request is made with an asynchronous gateway client on a loop of its own: a synchronous
    # client closes itself in __del__, which deadlocks when garbage collection happens to run in
    # its loop's thread (dask-gateway 2026.3), and an asynchronous one has no such __del__.
    name = LoopRunner(asynchronous=False).run_sync(
        submit_and_wait, spec, settings, connection, deadline
    )
    return GatewayCluster.from_name(name, shutdown_on_close=True, **connection)


async def submit_and_wait(
    spec: ClusterSpec, settings: Settings, connection: dict, deadline: float
) -> str:
    """Ask the gateway for a cluster with the options of ``spec``; return its name once running."""
    async with Gateway(**connection, asynchronous=True) as gateway:
        options = await gateway.cluster_options()
        for user_name, value in requested_options(spec, settings).items():
            server_name, convert = SERVER_OPTIONS[user_name]
            if server_name not in options:
                raise UnsupportedOption(
                    f"the Dask Gateway at {gateway.address} does not let users set "
                    f"{user_name!r} (no {server_name!r} among its options: {', '.join(options)})"
                )
            options[server_name] = convert(value)
        if spec.image is None and settings.notebook_image and "image" in options:
            options["image"] = settings.notebook_image
        name = await gateway.submit(options)
        try:
            await wait_until_running(gateway, name, deadline)
        except BaseException:
            await gateway.stop_cluster(name)
            raise
    return name


async def wait_until_running(gateway: Gateway, name: str, deadline: float) -> None:
    """Poll the cluster's status; the client's own wait has no timeout."""
    while True:
        status = (await gateway.get_cluster(name)).status
        if status == ClusterStatus.RUNNING:
            return
        if status in (ClusterStatus.FAILED, ClusterStatus.STOPPED):
            raise ClusterStartError(
                f"backend 'gateway': cluster {name} {status.name.lower()} while starting; "
                "the gateway's logs say why"
            )
        if time.monotonic() > deadline:
            raise ClusterStartError(
                f"backend 'gateway': cluster {name} was still {status.name.lower()} at the "
                "start timeout (EOSC_PANGEO_CLUSTER_START_TIMEOUT)"
            )
        await asyncio.sleep(POLL_INTERVAL)
