"""Start-up time of ``eosc-pangeo --help`` and ``import eosc_pangeo``, against ``import xarray``.

Each figure is the best of several fresh interpreters (so nothing is cached in memory but the
files), measured in the same run as the baseline, ``python -c "import xarray"``: a notebook's
first line. The library loads xarray, DuckDB, rdflib, dask-gateway... only when an entry point
is first used, so both should take a fraction of xarray's time (target: ``--help`` under 0.5 s).

Run: ``python benchmarks/bench_import.py`` (``--quick``: 3 runs each, else 10).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from common import parse_args, report, time_runs

CLI = str(Path(sys.executable).with_name("eosc-pangeo"))


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    repeat = 3 if args.quick else 10

    def timed(command: list[str]) -> float:
        return time_runs(lambda: subprocess.run(command, check=True, capture_output=True),
                         repeat).best

    xarray = timed([sys.executable, "-c", "import xarray"])
    report("import xarray (baseline)", xarray, "s")
    report("import eosc_pangeo", timed([sys.executable, "-c", "import eosc_pangeo"]), "s",
           baseline=xarray)
    report("eosc-pangeo --help", timed([CLI, "--help"]), "s", baseline=xarray,
           target="< 0.5 s")


if __name__ == "__main__":
    main()
