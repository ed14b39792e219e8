"""Start-up time of ``eosc-pangeo --help`` and ``import eosc_pangeo``, against ``import xarray``.

Each figure is the best of several fresh interpreters (so nothing is cached in memory but the
files), measured in the same run as the baselines: ``python -c "import xarray"``, a notebook's
first line, and ``python -c pass``, the interpreter's own start-up (the floor of any command;
on a loaded machine both grow, their ratio less). The library loads xarray, DuckDB, rdflib,
dask-gateway... only when an entry point is first used, so both should take a fraction of
xarray's time (target: ``--help`` under 0.5 s).

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
        return time_runs(
            lambda: subprocess.run(command, check=True, capture_output=True), repeat
        ).best

    bare = timed([sys.executable, "-c", "pass"])
    report("python -c pass (baseline)", bare, "s")
    xarray = timed([sys.executable, "-c", "import xarray"])
    report("import xarray (baseline)", xarray, "s")
    report(
        "import eosc_pangeo",
        timed([sys.executable, "-c", "import eosc_pangeo"]),
        "s",
        baseline=xarray,
    )
    cli_help = timed([CLI, "--help"])
    report("eosc-pangeo --help", cli_help, "s", baseline=xarray, target="< 0.5 s")
    # How many interpreter start-ups --help costs: the part our imports add.
    report("eosc-pangeo --help vs python -c pass", cli_help, "s", baseline=bare)


if __name__ == "__main__":
    main()
