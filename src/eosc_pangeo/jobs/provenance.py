"""The provenance record of a job: what went in, what ran it, what it read and wrote."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path
from typing import Any

from ..config import Settings
from .model import Job, State, utcnow
from .store import JobDirectory, atomic_write_text

PACKAGES = (
    "eosc-pangeo",
    "dask",
    "distributed",
    "xarray",
    "zarr",
    "numpy",
    "pandas",
    "pyarrow",
    "fsspec",
    "papermill",
    "nbclient",
    "ipykernel",
    "dask-gateway",
    "dask-jobqueue",
)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def software_versions() -> dict[str, Any]:
    from ..lake.manifest import software_versions as installed

    versions = installed(PACKAGES)
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "executable": sys.executable,
        "packages": versions,
    }


def lake_versions(settings: Settings) -> dict[str, Any]:
    """The committed version of every collection of the job's lake (from their manifests).

    Taken when the job starts and again when it ends: a collection whose version changed in
    between is listed in ``changed_during_job`` (the job may have read either version).
    """
    if not settings.lake:
        return {}
    from ..lake import Lake, list_collections

    lake = Lake.from_url(settings.lake, settings.storage_options)
    try:
        manifests = list_collections(lake)
    except Exception as error:  # an unreachable lake must not lose the job's record
        return {"url": lake.url, "error": f"{type(error).__name__}: {error}"}
    return {
        "url": lake.url,
        "collections": {
            m.id: {"domain": m.domain, "version": m.version, "updated": m.updated}
            for m in manifests
        },
    }


def write_provenance(
    directory: JobDirectory,
    job: Job,
    state: State,
    reason: str | None,
    settings: Settings,
    lake_before: dict[str, Any],
) -> None:
    source = directory.input / job.name
    lake_after = lake_versions(settings)
    before = lake_before.get("collections", {})
    after = lake_after.get("collections", {})
    changed = sorted(
        name for name in set(before) | set(after) if before.get(name) != after.get(name)
    )
    results = [
        {
            "path": str(path.relative_to(directory.work)),
            "size": path.stat().st_size,
            "sha256": sha256_file(path),
        }
        for path in sorted(directory.work.rglob("*"))
        if path.is_file()
    ]
    record = {
        "format": "eosc-pangeo/job-provenance/1",
        "job": job.id,
        "user": job.user,
        "input": {
            "name": job.name,
            "kind": job.kind,
            "submitted_from": job.source,
            "sha256": sha256_file(source),
        },
        "parameters": job.parameters,
        "backend": job.backend,
        "workers": job.workers,
        "host": job.host,
        "native_id": job.native_id,
        "created": job.created,
        "started": job.started,
        "finished": utcnow(),
        "state": state.value,
        "reason": reason,
        "software": software_versions(),
        "lake": {**lake_before, "changed_during_job": changed},
        "results": results,
    }
    atomic_write_text(directory.provenance, json.dumps(record, indent=1))
