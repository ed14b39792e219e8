"""Notebooks and scripts for the jobs tests, written as users write them."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from eosc_pangeo.config import Settings

# The known answer: the sum of range(n) computed on the job's cluster, with the cluster's type.
SUM_ON_CLUSTER = """\
import json
from eosc_pangeo import cluster

with cluster() as dask_cluster, dask_cluster.get_client() as client:
    total = client.submit(sum, range(n)).result()
    kind = type(dask_cluster).__name__
with open("answer.json", "w") as answer:
    json.dump({"total": total, "label": label, "cluster": kind}, answer)
"""


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    """A notebook with a papermill ``parameters`` cell, then ``cells``."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    parameters_cell = nbformat.v4.new_code_cell(parameters)
    parameters_cell.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters_cell, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nbformat.write(notebook, path)
    return path


@pytest.fixture
def make_notebook():
    """``make_notebook(path, parameters_source, *cell_sources)``: see :func:`write_notebook`."""
    return write_notebook


@pytest.fixture
def sum_notebook(tmp_path) -> Path:
    return write_notebook(tmp_path / "sum.ipynb", 'n = 10\nlabel = "default"', SUM_ON_CLUSTER)


@pytest.fixture
def settings(tmp_path) -> Settings:
    """A fresh job store, and no gateway or batch system unless a test asks for one."""
    return Settings(jobs_dir=str(tmp_path / "jobs"), cluster_start_timeout=60)
