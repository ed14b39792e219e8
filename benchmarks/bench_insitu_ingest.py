"""In-situ ingest: time, observations per second and peak memory of ``ingest_insitu``.

The data are the ``large`` demo Argo floats (3400 multi-profile NetCDF files) and coastal
stations (40 hourly CSVs), more than 10 million observations: the source files that
``bench_insitu_query.py`` uses, generated once and cached. Measured in the same run, each in a
fresh process with a cold page cache:

``ingest``
    ``eosc_pangeo.lake.ingest_insitu`` of every file into a new collection of a new lake. It
    decodes the files in worker processes, spooling each to a local Arrow file (one record
    batch per month), then merges and writes month by month: its memory should be bounded by
    about one month of rows, not by the ingest.
``decode all``
    What an ingest that holds every row must hold before it writes anything: every file
    decoded with ``insitu_sources.read_source`` in worker processes (a ``ProcessPoolExecutor``
    of one process per CPU, as the ingest uses), the tables sent back to the parent and
    concatenated into one in-memory Arrow table. It writes nothing, so its time is a floor of
    any ingest's (decoding dominates) and its memory the peak such an ingest cannot go below.

With ``--scale N`` (N years of the same floats and stations: about 100 million observations for
N = 10) the baseline is instead the ingest of one year, measured in the same run: an ingest's
rate should not fall, nor its memory grow, with the size of what it ingests. (Decoding all would
hold N times the rows in memory.)

Peak RSS is that of the measured process and its worker processes together, sampled every
20 ms; forked workers count the pages they share with their parent once each, alike in both.
The largest RSS of the measured process alone and of one worker (``getrusage``, exact) are
printed too.
"""

from __future__ import annotations

import json
import os
import resource
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import common
import pyarrow as pa
from bench_insitu_query import COLLECTION, argument_parser, sources

from eosc_pangeo import lake
from eosc_pangeo._processes import pool_context
from eosc_pangeo.lake.insitu_sources import read_source


def ingest(files: list[Path], out: Path) -> None:
    """The lake's ingest of ``files`` into a new lake under ``out``."""
    report = lake.ingest_insitu(str(out / "lake"), COLLECTION, "ocean", [str(f) for f in files])
    write_figures(out, rows=report.rows)


def decode_all(files: list[Path], out: Path) -> None:
    """The baseline: every file decoded in worker processes, into one in-memory table."""
    with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=pool_context()) as pool:
        tables = list(pool.map(decode_one, files, chunksize=8))
    table = pa.concat_tables(tables)
    write_figures(out, rows=table.num_rows, bytes=table.nbytes)


def decode_one(path: Path) -> pa.Table:
    """The observations of one source file, read and checked."""
    return read_source(str(path), path.read_bytes()).table


def write_figures(out: Path, **figures: int) -> None:
    """Save ``figures`` and the peak RSS of this process and of its largest worker (exact)."""
    kib = 1024  # ru_maxrss is in KiB on Linux
    figures["self_peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib
    figures["worker_peak_rss"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib
    (out / "figures.json").write_text(json.dumps(figures))


METHODS = {"ingest": ingest, "decode all": decode_all}


def measure(func, files: list[Path]) -> tuple[common.ChildRun, dict]:
    """One cold-cache run of ``func(files, scratch)`` in its own process, and its figures.

    The scratch folder (and the lake in it) is removed afterwards.
    """
    with common.scratch_dir("insitu-ingest") as scratch:
        common.drop_page_cache()
        run = common.run_in_child(func, files, Path(scratch))
        return run, json.loads((Path(scratch) / "figures.json").read_text())


def main() -> None:
    args = argument_parser(__doc__.splitlines()[0]).parse_args()
    if args.scale > 1:
        compare_scales(args.quick, args.scale)
        return
    _, planned, argo_files, station_files = sources(args.quick)
    files = argo_files + station_files
    size_mb = common.total_bytes(files) / 1e6
    cold = common.drop_page_cache()
    print(
        f"# {len(argo_files)} Argo files + {len(station_files)} station CSVs, {size_mb:.0f} MB, "
        f"{planned} observations in the files; {os.cpu_count()} CPUs; "
        f"{'cold' if cold else 'warm (cannot drop the page cache)'} cache, one run each"
    )
    runs, figures = {}, {}
    for name, func in METHODS.items():
        runs[name], figures[name] = measure(func, files)
        print_run(name, runs[name], figures[name])
    rows = figures["ingest"]["rows"]
    assert rows == figures["decode all"]["rows"], (
        f"ingest {rows} rows, decoding {figures['decode all']['rows']}"
    )
    print(
        f"# the decoded table holds {figures['decode all']['bytes'] / 1e6:.0f} MB of Arrow "
        f"buffers ({rows} rows)"
    )
    ingest_run, decode_run = runs["ingest"], runs["decode all"]
    common.report(
        "insitu ingest",
        rows / ingest_run.seconds,
        "observations/s",
        baseline=rows / decode_run.seconds,
        higher_is_better=True,
    )
    common.report("insitu ingest time", ingest_run.seconds, "s", baseline=decode_run.seconds)
    common.report(
        "insitu ingest peak RSS",
        ingest_run.peak_rss / 1e6,
        "MB",
        baseline=decode_run.peak_rss / 1e6,
        target="> 1x",
    )
    print(
        f"# ingest / decode all: {ingest_run.seconds / decode_run.seconds:.2f}x the time, "
        f"{ingest_run.peak_rss / decode_run.peak_rss:.2f}x the peak RSS"
    )


def print_run(name: str, run: common.ChildRun, figures: dict) -> None:
    print(
        f"# {name}: {run.seconds:.1f} s, {figures['rows']} rows, peak RSS "
        f"{run.peak_rss / 1e6:.0f} MB with its workers, "
        f"{figures['self_peak_rss'] / 1e6:.0f} MB alone, largest worker "
        f"{figures['worker_peak_rss'] / 1e6:.0f} MB",
        flush=True,
    )


def compare_scales(quick: bool, scale: int) -> None:
    """Ingest one year and ``scale`` years of the same floats and stations, in one run."""
    runs, figures = {}, {}
    for years in (1, scale):
        _, planned, argo_files, station_files = sources(quick, years)
        files = argo_files + station_files
        print(
            f"# {years} year(s): {len(argo_files)} Argo files + {len(station_files)} station "
            f"CSVs, {common.total_bytes(files) / 1e6:.0f} MB, {planned} observations",
            flush=True,
        )
        runs[years], figures[years] = measure(ingest, files)
        print_run(f"ingest of {years} year(s)", runs[years], figures[years])
    rate = {years: figures[years]["rows"] / runs[years].seconds for years in runs}
    common.report(
        f"insitu ingest of {scale} years, {figures[scale]['rows']} observations",
        rate[scale],
        "observations/s",
        baseline=rate[1],
        higher_is_better=True,
        target="~1x",
    )
    common.report(
        f"insitu ingest peak RSS, {scale} years",
        runs[scale].peak_rss / 1e6,
        "MB",
        baseline=runs[1].peak_rss / 1e6,
        target="~1x (not growing)",
    )


if __name__ == "__main__":
    main()
