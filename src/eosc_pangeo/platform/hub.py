"""JupyterHub configuration pieces for Dask Gateway: the service, its access, notebook settings, and
the hook that stops a user's clusters when their notebook server stops.

Each piece edits a traitlets ``Config`` (the ``c`` of ``jupyterhub_config.py``), so the same code
serves the single-machine runner and a Helm chart's ``hub.extraConfig``::

    from eosc_pangeo.platform.hub import add_dask_gateway
    add_dask_gateway(c, gateway_url=..., public_gateway_url=..., scheduler_address=...)
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from traitlets.config import Config

from .gateway import SERVICE_NAME

log = logging.getLogger(__name__)


def grant_service_access(
    c: Config, service_name: str, roles: tuple[str, ...] = ("user", "server")
) -> None:
    """Let users (and their notebook servers' tokens) use a hub service.

    Without ``access:services!service=<name>`` in both the ``user`` role (tokens a user makes)
    and the ``server`` role (the token inside a notebook), the service answers 401. Merged into
    any role definitions already in ``c.JupyterHub.load_roles``.
    """
    scope = f"access:services!service={service_name}"
    load_roles = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
    for role_name in roles:
        role = next((r for r in load_roles if r["name"] == role_name), None)
        if role is None:
            # Redefining a default role replaces its scopes: keep the defaults.
            role = {"name": role_name, "scopes": list(DEFAULT_ROLE_SCOPES[role_name])}
            load_roles.append(role)
        if scope not in role["scopes"]:
            role["scopes"].append(scope)
    c.JupyterHub.load_roles = load_roles


# JupyterHub's own scopes for its default roles (jupyterhub.roles.get_default_roles).
DEFAULT_ROLE_SCOPES = {
    "user": ("self",),
    "server": ("users:activity!user", "access:servers!server"),
}


def stop_clusters_on_server_stop(gateway_url: str) -> Callable[[Any], Awaitable[None]]:
    """A ``Spawner.post_stop_hook`` that stops all of the user's Dask Gateway clusters.

    Orphan clusters (left running after the notebook that made them is gone) are the most
    common waste on Pangeo hubs. The hook runs in the hub when a user's last running server
    stops; it acts with a short-lived token of that user, so the gateway's own permission checks
    apply and no admin power is needed.

    Parameters
    ----------
    gateway_url : str
        The gateway's API URL as the hub reaches it (e.g. its internal service URL + prefix).
    """

    async def stop_user_clusters(spawner) -> None:
        user = spawner.user
        if any(other.active for other in user.spawners.values() if other is not spawner):
            return  # another server of this user still runs and may use the clusters
        from dask_gateway import Gateway, JupyterHubAuth
        from jupyterhub import orm

        token = user.new_api_token(
            note="stop Dask clusters after the server stopped",
            expires_in=300,
            scopes=[f"access:services!service={SERVICE_NAME}"],
        )
        try:
            async with Gateway(
                gateway_url, auth=JupyterHubAuth(api_token=token), asynchronous=True
            ) as gateway:
                for report in await gateway.list_clusters():
                    log.info("Stopping cluster %s of %s: server stopped", report.name, user.name)
                    await gateway.stop_cluster(report.name)
        finally:
            orm_token = orm.APIToken.find(user.db, token)
            if orm_token is not None:
                user.db.delete(orm_token)
                user.db.commit()

    return stop_user_clusters


def notebook_environment(
    public_gateway_url: str,
    scheduler_address: str,
    notebook_image: str | Callable[[Any], str] | None = None,
    dashboard_url: str | None = None,
) -> dict[str, Any]:
    """Settings every notebook server gets, so that clusters find the gateway by themselves.

    Both ``eosc_pangeo.cluster()`` (``EOSC_PANGEO_*``) and a plain ``dask_gateway.Gateway()``
    (``DASK_GATEWAY__*``, dask's configuration) work with no arguments, and both start clusters
    in the notebook's own image: ``notebook_image`` may be a callable of the spawner (JupyterHub
    calls it at spawn time), so that a profile's image is the one passed on.
    """
    env: dict[str, Any] = {
        "EOSC_PANGEO_GATEWAY_ADDRESS": public_gateway_url,
        "EOSC_PANGEO_GATEWAY_PROXY_ADDRESS": f"gateway://{scheduler_address}",
        "EOSC_PANGEO_GATEWAY_AUTH": "jupyterhub",
        "DASK_GATEWAY__ADDRESS": public_gateway_url,
        "DASK_GATEWAY__PROXY_ADDRESS": f"gateway://{scheduler_address}",
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
    }
    if dashboard_url:
        env["DASK_GATEWAY__PUBLIC_ADDRESS"] = dashboard_url
    if notebook_image:
        env["EOSC_PANGEO_NOTEBOOK_IMAGE"] = notebook_image
        env["DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE"] = notebook_image
    return env


def add_service(c: Config, service: dict[str, Any]) -> None:
    """Add a hub service, merged into one of the same name if ``c`` already has it.

    A chart may have declared the service already (zero-to-jupyterhub's ``hub.services``
    gives it its API token); two entries of one name would stop the hub.
    """
    services = list(c.JupyterHub.services) if "services" in c.JupyterHub else []
    existing = next((s for s in services if s["name"] == service["name"]), None)
    if existing is None:
        services.append(service)
    else:
        existing.update(service)
    c.JupyterHub.services = services


def add_dask_gateway(
    c: Config,
    *,
    gateway_url: str,
    public_gateway_url: str,
    scheduler_address: str,
    command: list[str] | None = None,
    notebook_image: str | Callable[[Any], str] | None = None,
    dashboard_url: str | None = None,
) -> None:
    """Add Dask Gateway to a hub: service, access, notebook settings and orphan-cluster cleanup.

    Parameters
    ----------
    c : traitlets.config.Config
        The hub's configuration, edited in place.
    gateway_url : str
        The gateway's HTTP proxy as the hub reaches it, without the service prefix
        (e.g. ``http://127.0.0.1:8001``); the hub's proxy routes ``/services/dask-gateway/`` to it.
    public_gateway_url : str
        The gateway as notebooks reach it (e.g. ``http://hub.example.org/services/dask-gateway``).
    scheduler_address : str
        ``host:port`` where notebooks reach schedulers (the gateway's TCP proxy).
    command : list of str, optional
        Command that runs the gateway as a hub-managed service; None if it runs on its own
        (e.g. as a Kubernetes deployment).
    notebook_image : str or callable, optional
        Image (or Python environment) of notebook servers, or a callable of the spawner that
        returns it; clusters default to it.
    dashboard_url : str, optional
        Base of the dashboard links shown in notebooks, if not ``public_gateway_url``.
    """
    service: dict[str, Any] = {"name": SERVICE_NAME, "url": gateway_url, "display": False}
    if command is not None:
        service["command"] = command
    add_service(c, service)
    grant_service_access(c, SERVICE_NAME)
    environment = dict(c.Spawner.environment) if "environment" in c.Spawner else {}
    environment.update(
        notebook_environment(public_gateway_url, scheduler_address, notebook_image, dashboard_url)
    )
    c.Spawner.environment = environment
    c.Spawner.post_stop_hook = stop_clusters_on_server_stop(
        f"{gateway_url}/services/{SERVICE_NAME}"
    )


def local_hub(
    c: Config, *, ip: str, port: int, hub_port: int, proxy_api_port: int, state_directory: str
) -> None:
    """A hub on one machine: the pure-Python proxy, local-process servers, state in a directory.

    Runs as root too (as in a container): notebook servers then need ``allow_root``.
    """
    bin_directory = os.path.dirname(sys.executable)
    c.JupyterHub.ip = ip
    c.JupyterHub.port = port
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = hub_port
    c.JupyterHub.db_url = f"sqlite:///{os.path.join(state_directory, 'jupyterhub.sqlite')}"
    c.JupyterHub.cookie_secret_file = os.path.join(state_directory, "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = os.path.join(state_directory, "jupyterhub.pid")
    c.ConfigurableHTTPProxy.command = [os.path.join(bin_directory, "configurable-http-proxy")]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api_port}"
    c.JupyterHub.spawner_class = "simple"
    c.Spawner.cmd = [os.path.join(bin_directory, "jupyterhub-singleuser")]
    if os.geteuid() == 0:
        c.Spawner.args = ["--ServerApp.allow_root=True"]
