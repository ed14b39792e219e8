"""The demo lake the example notebooks run against, and a runner that executes a notebook top to
bottom in a real Jupyter kernel (nbclient) with the environment a hub's notebook server has."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest

from eosc_pangeo.catalog import build_catalog
from eosc_pangeo.lake import build_demo_lake

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(scope="session")
def notebook_dir() -> Path:
    """Where the example notebooks are (what users find in their home)."""
    return NOTEBOOKS


@pytest.fixture(scope="session")
def demo_lake():
    """The small demo lake of ``make up``, with its catalogue, readable by every user (the
    gateway's workers run as the hub user)."""
    root = Path(tempfile.mkdtemp(prefix="eosc-notebooks-lake-", dir="/tmp"))
    root.chmod(0o755)
    try:
        url = build_demo_lake(str(root / "lake"), "small")
        build_catalog(url)
        yield url
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def run_notebook(demo_lake, tmp_path):
    """``run_notebook(name, **env)``: execute ``notebooks/<name>.ipynb`` in a fresh kernel whose
    working directory is a temporary home, and return the executed notebook."""
    from nbclient import NotebookClient

    def run(name: str, **env: str) -> nbformat.NotebookNode:
        notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("EOSC_PANGEO_")}
        environment.update({"EOSC_PANGEO_LAKE": demo_lake, **env})
        client = NotebookClient(
            notebook,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        )
        client.execute(env=environment)
        return notebook

    return run
