"""Intake catalogs of the lake: a root catalog that nests one catalog per domain.

Every entry opens with plain Intake, no eosc-pangeo needed on the reader's side::

    cat = intake.open_catalog("<lake>/_catalog/intake/catalog.yaml")
    ds = cat.ocean.sst.to_dask()              # intake-xarray, engine zarr
    df = cat.ocean.argo.to_dask()             # intake-parquet, engine pyarrow

Grids get one entry per Zarr store (``sst`` for maps, ``sst_timeseries`` for the store chunked
for time series). In-situ entries list the committed Parquet files of the manifest rather than
the folder, so that files left by an interrupted ingest are never read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from ..lake.kinds import kind_of
from ..lake.manifest import Manifest
from ..lake.storage import DOMAINS, Lake, atomic_write
from .stac import DOMAIN_TITLES

INTAKE_DIR = "intake"
ROOT_FILE = "catalog.yaml"


def write_intake_catalogs(lake: Lake, manifests: Iterable[Manifest], folder: str) -> str:
    """Write the root catalog and one catalog per domain under ``folder`` (a path in the lake's
    file system); return the root catalog's URL."""
    by_domain: dict[str, dict[str, Any]] = {d: {} for d in DOMAINS}
    for manifest in manifests:
        by_domain[manifest.domain].update(intake_entries(lake, manifest))
    root_entries = {}
    for domain, entries in by_domain.items():
        if not entries:
            continue
        name = domain.replace("-", "_")  # an attribute name: cat.solid_earth
        _write_yaml(
            lake,
            f"{folder}/{domain}.yaml",
            {
                "metadata": {"version": 1, "domain": domain},
                "description": f"{DOMAIN_TITLES[domain]} collections of the lake {lake.url}",
                "sources": entries,
            },
        )
        root_entries[name] = {
            "description": f"{DOMAIN_TITLES[domain]} collections",
            "driver": "intake.catalog.local.YAMLFileCatalog",
            "args": {"path": f"{{{{ CATALOG_DIR }}}}/{domain}.yaml"},
        }
    _write_yaml(
        lake,
        f"{folder}/{ROOT_FILE}",
        {
            "metadata": {"version": 1},
            "description": f"eosc-pangeo data lake at {lake.url}, by domain",
            "sources": root_entries,
        },
    )
    return lake.fs.unstrip_protocol(f"{folder}/{ROOT_FILE}")


def intake_entries(lake: Lake, manifest: Manifest) -> dict[str, dict[str, Any]]:
    """The Intake entries of one collection, by entry name."""
    description = str(manifest.attributes.get("title") or manifest.id)
    metadata = {
        "collection": manifest.id,
        "domain": manifest.domain,
        "variables": {
            name: v.model_dump(exclude={"dtype"}, exclude_none=True)
            for name, v in manifest.variables.items()
        },
        "bbox": list(manifest.extent.bbox) if manifest.extent.bbox else None,
        "time": list(manifest.extent.time) if manifest.extent.time else None,
    }
    return kind_of(manifest).intake_entries(lake, manifest, description, metadata)


def _write_yaml(lake: Lake, path: str, content: dict[str, Any]) -> None:
    atomic_write(lake.fs, path, yaml.safe_dump(content, sort_keys=False).encode())


def open_catalog(lake: str | Lake | None = None):
    """The lake's root Intake catalog: ``open_catalog().ocean.sst.to_dask()``.

    Parameters
    ----------
    lake
        Lake URL; default: the configured ``EOSC_PANGEO_LAKE``. Run ``eosc-pangeo catalog
        build`` once for the catalog to exist.
    """
    import intake

    lake = Lake.from_url(lake)
    return intake.open_catalog(
        lake.uri("_catalog", INTAKE_DIR, ROOT_FILE), storage_options=lake.storage_options or None
    )
