"""The one image of notebooks, schedulers and workers: linted, built offline, checked inside.

The build (images/build.sh: debootstrap base, wheelhouse, buildah) takes minutes, hence the
``image`` mark (``-m image`` runs only these, ``-m "not image"`` skips them); CI runs them.
Inside, commands run with ``buildah run --isolation chroot`` (``podman run`` cannot set its
rlimits in this sandbox).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
IMAGES = ROOT / "images"


def test_the_containerfile_passes_hadolint():
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run(
        [str(hadolint), str(IMAGES / "Containerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_lock_pins_the_versions_of_the_projects_venv():
    """images/requirements.txt is current (else: make image-lock)."""
    sys.path.insert(0, str(IMAGES))
    try:
        from lock import ROOT as REQUIREMENT
        from lock import closure
    finally:
        sys.path.remove(str(IMAGES))
    lines = (IMAGES / "requirements.txt").read_text().splitlines()
    locked = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert locked == closure(REQUIREMENT), "images/requirements.txt is stale: run make image-lock"
    for name in ("dask", "distributed", "jupyterhub", "jupyterlab", "dask-labextension"):
        assert locked[name] == version(name)


@pytest.fixture(scope="module")
def image():
    """The image built by images/build.sh, removed afterwards."""
    tag = f"test-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        ["bash", str(IMAGES / "build.sh"), tag],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    name = result.stdout.strip().splitlines()[-1]
    yield name
    subprocess.run(["buildah", "rmi", name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def container(image):
    name = subprocess.run(
        ["buildah", "from", "--pull-never", image], capture_output=True, text=True, check=True
    ).stdout.strip()
    yield name
    subprocess.run(["buildah", "rm", name], capture_output=True, check=False)


def inside(container: str, *command: str) -> str:
    result = subprocess.run(
        ["buildah", "run", "--isolation", "chroot", container, "--", *command],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{command}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    return result.stdout


IMPORTS = """
import json, importlib, importlib.metadata as m
for module in ["eosc_pangeo", "eosc_pangeo.platform.kube", "eosc_pangeo.catalog.api", "xarray",
               "zarr", "dask.array", "distributed", "dask_gateway", "jupyterlab",
               "dask_labextension", "kubespawner", "oauthenticator", "jupyterhub_idle_culler",
               "dask_gateway_server.backends.kubernetes",
               # The chart's data service and the lake's sync CronJob run this image too.
               "eosc_pangeo.access.app", "xpublish_opendap", "xpublish_edr", "gunicorn",
               "eosc_pangeo.lake.sync", "paramiko", "siphon"]:
    importlib.import_module(module)
print(json.dumps({d: m.version(d) for d in
                  ["eosc-pangeo", "dask", "distributed", "jupyterhub", "dask-gateway-server"]}))
"""


@pytest.mark.image
def test_the_stack_imports_in_the_versions_of_the_project(container):
    versions = json.loads(inside(container, "python", "-c", IMPORTS))
    for name, found in versions.items():
        assert found == version(name), name


@pytest.mark.image
def test_the_command_line_and_the_notebook_server_run(container):
    assert "catalog" in inside(container, "eosc-pangeo", "--help")
    assert inside(container, "jupyterhub-singleuser", "--version").strip() == version("jupyterhub")
    assert "dask-gateway-server" in inside(container, "dask-gateway-server", "--help")


@pytest.mark.image
def test_the_image_runs_as_its_unprivileged_user(container):
    assert inside(container, "id", "-u").strip() == "1000"
    assert inside(container, "id", "-g").strip() == "100"


@pytest.mark.image
def test_jupyterlab_is_quiet_offline_and_has_the_batch_jobs_tile_where_the_hub_points(container):
    from eosc_pangeo.platform.environment import LAB_OVERRIDES, LAUNCHER_ENTRIES, launcher_directory
    from eosc_pangeo.platform.kube import IMAGE_ENVIRONMENT

    settings = f"{IMAGE_ENVIRONMENT}/share/jupyter/lab/settings/overrides.json"
    assert json.loads(inside(container, "cat", settings)) == LAB_OVERRIDES
    tile = launcher_directory(IMAGE_ENVIRONMENT) / "jp_app_launcher_eosc_pangeo.yaml"
    assert json.loads(inside(container, "cat", str(tile))) == LAUNCHER_ENTRIES
