"""``import eosc_pangeo`` and ``eosc-pangeo --help`` load no heavy library: each entry point loads
its own when first used (how long that takes is measured in benchmarks/bench_import.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "xarray",
    "zarr",
    "dask",
    "distributed",
    "dask_gateway",
    "dask_jobqueue",
    "duckdb",
    "rdflib",
    "stac_geoparquet",
    "pystac",
    "pyarrow",
    "pandas",
    "numpy",
    "netCDF4",
    "fsspec",
    "pydantic",
    "compliance_checker",
    "eosc_pangeo.demo_data",
)


def loaded_after(statement: str) -> list[str]:
    """The HEAVY modules a fresh interpreter holds after running ``statement``."""
    script = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return [m for m in HEAVY if m in json.loads(result.stdout.splitlines()[-1])]


@pytest.mark.parametrize(
    "statement",
    [
        "import eosc_pangeo",
        "import eosc_pangeo.lake",
        "import eosc_pangeo.catalog",
        "import eosc_pangeo.compute",
        "from eosc_pangeo.cli import app",
    ],
)
def test_importing_loads_no_heavy_library(statement):
    assert loaded_after(statement) == []


def test_an_entry_point_loads_its_libraries_on_first_use():
    assert "duckdb" in loaded_after("import eosc_pangeo; eosc_pangeo.search")


def test_a_function_named_like_its_module_stays_the_function():
    # catalog/search.py defines search(): importing the module must not replace the function.
    statement = (
        "import eosc_pangeo.catalog.index, eosc_pangeo.catalog.search, "
        "eosc_pangeo.lake.validate\n"
        "import eosc_pangeo.catalog as c, eosc_pangeo.lake as l\n"
        "assert callable(c.search) and callable(l.validate), (c.search, l.validate)"
    )
    loaded_after(statement)
