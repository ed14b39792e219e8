"""JupyterHub configuration pieces for Dask Gateway: the service, its access, notebook settings, and
the hook that stops a user's clusters when their notebook server stops.

Each piece edits a traitlets ``Config`` (the ``c`` of ``jupyterhub_config.py``), so the same code
serves the single-machine runner and a Helm chart's ``hub.extraConfig``::

    from eosc_pangeo.platform.hub import add_dask_gateway
    add_dask_gateway(c, gateway_url=..., public_gateway_url=..., scheduler_address=...)

The single-machine runner (:mod:`eosc_pangeo.platform.local`) puts them together with
:mod:`eosc_pangeo.platform.auth`.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from traitlets.config import Config

from .environment import launcher_directory
from .gateway import SERVICE_NAME

#: The hub service that runs the gateway's process (its API is reached through the gate).
GATEWAY_PROCESS = "dask-gateway-server"

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
                    environment = (report.options or {}).get("environment") or {}
                    if environment.get("EOSC_PANGEO_JOB_ID"):
                        continue  # a batch job's: it stops with the job, not with the server
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
    front_url: str,
    front_command: list[str] | None = None,
) -> None:
    """Add Dask Gateway to a hub: service, access, notebook settings and orphan-cluster cleanup.

    The hub's service ``dask-gateway`` is the gate of :mod:`.dashboards` (``front_url``), which
    passes API calls on to the gateway and shows a cluster's dashboard only to its owner; the
    gateway process itself, when the hub runs it, is the service
    ``dask-gateway-server``, which has no URL of its own on the hub.

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
    front_url : str
        Where the hub's proxy reaches the gate (``python -m eosc_pangeo.platform.dashboards``).
    front_command : list of str, optional
        Command that runs the gate as a hub-managed service; None if it runs on its own.
    """
    if command is not None:  # first: the hub starts services in this order
        add_service(c, {"name": GATEWAY_PROCESS, "command": command})
    # Browsers log in to the gate with the hub's OAuth: no "authorize access" page for it.
    front: dict[str, Any] = {
        "name": SERVICE_NAME,
        "url": front_url,
        "display": False,
        "oauth_no_confirm": True,
    }
    if front_command is not None:
        front["command"] = front_command
    add_service(c, front)
    grant_service_access(c, SERVICE_NAME)
    environment = dict(c.Spawner.environment) if "environment" in c.Spawner else {}
    environment.update(
        notebook_environment(public_gateway_url, scheduler_address, notebook_image, dashboard_url)
    )
    c.Spawner.environment = environment
    c.Spawner.post_stop_hook = stop_clusters_on_server_stop(
        f"{gateway_url}/services/{SERVICE_NAME}"
    )


JOBS_SERVICE = "jobs"


def add_jobs_service(
    c: Config,
    *,
    url: str,
    public_url: str,
    command: list[str] | None = None,
    environment: dict[str, str] | None = None,
    user_environment: str | None = None,
) -> None:
    """Add the batch jobs service (:mod:`eosc_pangeo.jobs.service`) to a hub.

    Users and their notebook servers may use it; it may create, for the user who submits a job,
    a token limited to the Dask Gateway, which the job runs with.

    Parameters
    ----------
    c : traitlets.config.Config
        The hub's configuration, edited in place.
    url : str
        Where the hub's proxy reaches the service (e.g. ``http://127.0.0.1:8002``).
    public_url : str
        The service as notebooks reach it; set as ``EOSC_PANGEO_JOBS_URL`` in every server.
    command : list of str, optional
        Command that runs the service as a hub-managed service.
    environment : dict, optional
        The service's ``EOSC_PANGEO_*`` settings: the gateway and lake its jobs use.
    user_environment : str, optional
        The prefix of the users' Python environment: its "Batch jobs" launcher tile
        (:func:`eosc_pangeo.platform.environment.launcher_directory`) is shown in JupyterLab.
    """
    service: dict[str, Any] = {
        "name": JOBS_SERVICE,
        "url": url,
        "display": True,
        "oauth_no_confirm": True,
    }
    if command is not None:
        service["command"] = command
    if environment:
        service["environment"] = dict(environment)
    add_service(c, service)  # merged into a chart's entry of the same name (it holds the token)
    grant_service_access(c, JOBS_SERVICE)
    load_roles = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
    load_roles.append(
        {"name": f"{JOBS_SERVICE}-service", "scopes": ["tokens"], "services": [JOBS_SERVICE]}
    )
    c.JupyterHub.load_roles = load_roles
    spawner_environment = dict(c.Spawner.environment) if "environment" in c.Spawner else {}
    spawner_environment["EOSC_PANGEO_JOBS_URL"] = public_url
    if user_environment is not None:
        spawner_environment["JUPYTER_APP_LAUNCHER_PATH"] = str(launcher_directory(user_environment))
    c.Spawner.environment = spawner_environment


def local_hub(
    c: Config,
    *,
    ip: str,
    port: int,
    hub_port: int,
    proxy_api_port: int,
    state_directory: str,
    user_environment: str,
    homes_directory: str | None = None,
) -> None:
    """A hub on one machine: the pure-Python proxy, local-process servers, state in a directory.

    Run as root, each user's server runs as the Unix account of the same name
    (``LocalProcessSpawner``, its servers forked from a process that has imported them:
    :mod:`.forkserver`), from ``user_environment`` (a Python prefix every user can read).
    Without root, every server runs as the account running the hub, in
    ``homes_directory/<name>`` (``SimpleLocalProcessSpawner``): users are not separated.
    """
    c.JupyterHub.ip = ip
    c.JupyterHub.port = port
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = hub_port
    c.JupyterHub.db_url = f"sqlite:///{os.path.join(state_directory, 'jupyterhub.sqlite')}"
    c.JupyterHub.cookie_secret_file = os.path.join(state_directory, "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = os.path.join(state_directory, "jupyterhub.pid")
    # The pure-Python configurable-http-proxy, with whole websockets (Dask dashboards): .proxy
    c.ConfigurableHTTPProxy.command = [sys.executable, "-m", "eosc_pangeo.platform.proxy"]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api_port}"
    # Servers outlive a hub restart (it finds them again); `eosc-pangeo down` stops them first.
    c.JupyterHub.cleanup_servers = False
    c.Spawner.cmd = [os.path.join(user_environment, "bin", "jupyterhub-singleuser")]
    c.Spawner.default_url = "/lab"
    # A killed server is noticed (and shown stopped) within ~10 s instead of 30.
    c.Spawner.poll_interval = 10
    # Ten servers starting at once on 2 cores take longer than JupyterHub's 60 s default.
    c.Spawner.start_timeout = 300
    c.Spawner.http_timeout = 300
    # Forked from a process that imported JupyterLab once: a server's start costs ~0.2 s of
    # CPU instead of ~2 s (.forkserver).
    if os.geteuid() == 0:
        c.JupyterHub.spawner_class = "eosc_pangeo.platform.forkserver.ForkingLocalProcessSpawner"
    else:
        c.JupyterHub.spawner_class = (
            "eosc_pangeo.platform.forkserver.ForkingSimpleLocalProcessSpawner"
        )
        c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(
            homes_directory or os.path.join(state_directory, "homes"), "{username}"
        )


def user_home(spawner) -> str:
    """Home directory of the spawner's user (their Unix account's, or the simple spawner's)."""
    template = getattr(spawner, "home_dir_template", None)
    if template:
        return template.format(username=spawner.user.name)
    return pwd.getpwnam(spawner.user.name).pw_dir


def seed_home(notebooks: str) -> Callable[[Any], None]:
    """A ``Spawner.pre_spawn_hook`` copying the example notebooks into ``~/notebooks`` once.

    Only the first start copies (a marker file remembers it), so later starts never overwrite
    a user's edits nor bring back a notebook they deleted.
    """

    def copy_notebooks(spawner) -> None:
        home = user_home(spawner)
        marker = os.path.join(home, ".eosc-pangeo", "notebooks-copied")
        if os.path.exists(marker):
            return
        owner = None
        if os.geteuid() == 0:
            entry = pwd.getpwnam(spawner.user.name)
            owner = (entry.pw_uid, entry.pw_gid)
        target = os.path.join(home, "notebooks")
        made = []
        for directory in (home, os.path.dirname(marker), target):
            if not os.path.isdir(directory):
                os.makedirs(directory, mode=0o700 if directory == home else 0o755)
                made.append(directory)
        for name in sorted(os.listdir(notebooks)):
            source, copy = os.path.join(notebooks, name), os.path.join(target, name)
            if os.path.isfile(source) and not os.path.exists(copy):
                shutil.copyfile(source, copy)
                made.append(copy)
        with open(marker, "w") as file:
            file.write("The example notebooks were copied into ~/notebooks on the first start.\n")
        made.append(marker)
        if owner is not None:
            for path in made:
                os.chown(path, *owner)

    return copy_notebooks


def user_servers(c: Config, *, lake: str, catalog_url: str, notebooks: str | None = None) -> None:
    """What every user's server gets: the lake, the catalogue, the example notebooks.

    Parameters
    ----------
    lake : str
        The lake's URL as notebooks reach it (read-only for them).
    catalog_url : str
        The STAC API (the hub's catalogue service).
    notebooks : str, optional
        Folder of example notebooks copied into each home on first start.
    """
    environment = dict(c.Spawner.environment) if "environment" in c.Spawner else {}
    environment.update(
        {"EOSC_PANGEO_LAKE": lake, "EOSC_PANGEO_CATALOG_URL": catalog_url, **results_environment()}
    )
    c.Spawner.environment = environment
    if notebooks:
        c.Spawner.pre_spawn_hook = seed_home(notebooks)


def results_environment() -> dict[str, Any]:
    """Where users' exported results go and whom they name (for every deployment).

    ``export("pairs.nc")`` lands in ``~/results``, which JupyterLab's file browser shows and
    downloads; the result names the user as its creator, and the platform operator's
    ``EOSC_PANGEO_PUBLISHER_*`` settings (read by the hub) as its publisher.
    """
    from ..config import get_settings

    settings = get_settings()
    return {
        "EOSC_PANGEO_RESULTS_DIR": "~/results",
        "EOSC_PANGEO_CREATOR_NAME": lambda spawner: spawner.user.name,
        **{
            f"EOSC_PANGEO_{key.upper()}": value
            for key in ("publisher_name", "publisher_email", "publisher_url")
            if (value := getattr(settings, key))
        },
    }


def add_catalog(c: Config, *, url: str, command: list[str] | None = None) -> None:
    """Add the STAC API as a hub service at ``/services/catalog/``, usable by every user."""
    from .catalog_service import SERVICE_NAME as CATALOG

    service: dict[str, Any] = {"name": CATALOG, "url": url, "display": False}
    if command is not None:
        service["command"] = command
    services = list(c.JupyterHub.services) if "services" in c.JupyterHub else []
    c.JupyterHub.services = [*services, service]
    grant_service_access(c, CATALOG)


def add_data_service(c: Config, *, url: str, command: list[str] | None = None) -> None:
    """Add the data service (:mod:`eosc_pangeo.access`) at ``/services/eosc-data/``.

    It serves the lake to clients outside the hub too, under its own access policy; hub users'
    tokens are accepted because their roles get the service's scope.
    """
    from ..access.policy import DATA_SERVICE

    service: dict[str, Any] = {"name": DATA_SERVICE, "url": url, "display": False}
    if command is not None:
        service["command"] = command
    services = list(c.JupyterHub.services) if "services" in c.JupyterHub else []
    c.JupyterHub.services = [*services, service]
    grant_service_access(c, DATA_SERVICE)


def add_idle_culler(c: Config, *, timeout: int = 3600) -> None:
    """Stop servers idle for ``timeout`` seconds (jupyterhub-idle-culler, as a hub service);
    their clusters then stop too (:func:`stop_clusters_on_server_stop`)."""
    services = list(c.JupyterHub.services) if "services" in c.JupyterHub else []
    c.JupyterHub.services = [
        *services,
        {
            "name": "idle-culler",
            "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={timeout}"],
        },
    ]
    roles = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
    c.JupyterHub.load_roles = [
        *roles,
        {
            "name": "idle-culler",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"],
        },
    ]


def poll_services(seconds: int) -> None:
    """Check every ``seconds`` that the hub's managed services run; one that died is restarted.

    JupyterHub restarts a managed service when its spawner's poll finds the process gone
    (every 30 s by default). ``JupyterHub.service_check_interval`` does not do that: it only
    logs services that do not answer. The services' spawners are built without the hub's
    configuration, so ``c.Spawner.poll_interval`` does not reach them and the interval can only
    be set as the default of their class (a process-wide change, in the hub process only).
    """
    from jupyterhub.services.service import _ServiceSpawner

    _ServiceSpawner.poll_interval.default_value = seconds
