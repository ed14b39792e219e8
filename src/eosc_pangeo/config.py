"""The platform's settings: one object, read from ``EOSC_PANGEO_*`` environment variables.

No other module reads environment variables; they take a :class:`Settings` (or call
:func:`get_settings`) instead, so that a notebook, a CLI call and a service see the same values.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings of eosc-pangeo.

    Every field can be set with an environment variable ``EOSC_PANGEO_<FIELD>``; dict fields take
    JSON, e.g. ``EOSC_PANGEO_STORAGE_OPTIONS='{"endpoint_url": "http://127.0.0.1:9000"}'``.
    """

    model_config = SettingsConfigDict(env_prefix="EOSC_PANGEO_", extra="ignore")

    lake: str | None = Field(
        default=None,
        description="fsspec URL of the data lake, e.g. /data/lake or s3://bucket/lake.",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec storage options for the lake (credentials, endpoint_url, ...).",
    )
    catalog_url: str | None = Field(
        default=None,
        description="URL of the meta-catalogue (STAC API or static catalog); default: the lake's.",
    )
    data_url: str | None = Field(
        default=None,
        description="Public URL of the lake's data service (eosc-pangeo serve-data): the "
        "catalogue's assets and DCAT-AP distributions point there too.",
    )
    results_dir: str | None = Field(
        default=None,
        description="Where export() writes a result given by a relative path (~ allowed); the "
        "hub sets ~/results, which JupyterLab's file browser shows and downloads.",
    )
    creator_name: str | None = Field(
        default=None,
        description="Who exported a result (ACDD creator_name); the hub sets the user's name.",
    )
    creator_email: str | None = Field(
        default=None,
        description="The exporter's e-mail (ACDD creator_email, which data centres expect).",
    )
    publisher_name: str | None = Field(
        default=None,
        description="Who publishes results made on this platform (ACDD publisher_name): the "
        "operator; users' servers inherit the hub's setting.",
    )
    publisher_email: str | None = Field(
        default=None, description="The publisher's e-mail (ACDD publisher_email)."
    )
    publisher_url: str | None = Field(
        default=None, description="The publisher's web page (ACDD publisher_url)."
    )
    gateway_address: str | None = Field(
        default=None, description="Dask Gateway address; set inside the hub."
    )
    gateway_proxy_address: str | None = Field(
        default=None, description="Dask Gateway scheduler proxy address, if not the gateway's."
    )
    gateway_auth: str = Field(
        default="jupyterhub", description="Dask Gateway authentication: jupyterhub, simple, ..."
    )
    jobqueue: Literal["slurm", "pbs"] | None = Field(
        default=None,
        description="Batch system of this HPC site, used by cluster(backend='auto') when no "
        "gateway is configured; its queue, account, walltime... come from dask-jobqueue's "
        "configuration.",
    )
    notebook_image: str | None = Field(
        default=None,
        description="Image (or Python environment path) of this notebook; clusters use it by "
        "default so that workers run the same versions. Set by the hub in each notebook server.",
    )
    cluster_log_directory: str = Field(
        default="~/.cache/eosc-pangeo/cluster-logs",
        description="Folder of the batch jobs' worker logs (one per user: ~ is the user's home; "
        "it must be visible from the compute nodes), unless the site's dask-jobqueue "
        "configuration sets log-directory. cluster() reports it as cluster.log_directory.",
    )
    cluster_start_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds cluster() waits for a backend to give the requested workers.",
    )
    jobs_dir: str = Field(
        default="~/.local/share/eosc-pangeo/jobs",
        description="Where batch jobs keep their records and results, one folder per user; on "
        "HPC a file system the batch nodes see (home or work, not /tmp).",
    )
    jobs_url: str | None = Field(
        default=None,
        description="The hub's jobs service; set inside the hub, where `eosc-pangeo run` and "
        "`jobs` act through it.",
    )
    hub_api_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("EOSC_PANGEO_HUB_API_TOKEN", "JUPYTERHUB_API_TOKEN"),
        description="The user's hub token (JUPYTERHUB_API_TOKEN in notebook servers): sent to "
        "the platform's own catalogue at catalog_url and to its jobs service, and to no other "
        "address.",
    )
    job_id: str | None = Field(
        default=None,
        description="Set inside a batch job: its id, which tags the clusters it starts.",
    )
    job_parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Set inside a script job: its parameters (JSON), see jobs.parameters().",
    )
    cluster_workers: int = Field(
        default=1,
        ge=0,
        description="Workers cluster() starts when the call gives no number; a batch job run "
        "with --workers N sets it.",
    )
    deployment: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings of a Kubernetes deployment (JSON rendered by the helm/eosc-pangeo "
        "chart): read by the hub's and the gateway's configuration, see "
        "eosc_pangeo.platform.kube.",
    )
    ingest_memory_limit: int = Field(
        default=2 * 1024**3,
        description="Bytes of decoded data an ingest holds in memory at once (per time block).",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (read once from the environment)."""
    return Settings()
