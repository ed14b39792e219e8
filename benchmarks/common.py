"""Helpers shared by the benchmark scripts: cached sample data, timers, result lines.

Sample data is generated once under ``var/bench-data/<kind>-<spec-hash>/`` (``var/`` is
git-ignored) and reused by later runs; a ``.complete`` marker written last tells a finished
folder from one interrupted mid-way.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import multiprocessing
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from eosc_pangeo import demo_data

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
BENCH_DATA = VAR / "bench-data"
SEED = 0
_COMPLETE = ".complete"

_WRITERS = {
    demo_data.SstSpec: ("sst", demo_data.write_sst),
    demo_data.ArgoSpec: ("argo", demo_data.write_argo),
    demo_data.StationSpec: ("stations", demo_data.write_stations),
}


def argument_parser(description: str) -> argparse.ArgumentParser:
    """A parser of the options every benchmark accepts: ``--quick`` for a smoke run < 1 min."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="small data, few repetitions (smoke run)"
    )
    return parser


def parse_args(description: str) -> argparse.Namespace:
    """Parse the options every benchmark accepts (see :func:`argument_parser`)."""
    return argument_parser(description).parse_args()


# --------------------------------------------------------------------------------------------
# Cached data
# --------------------------------------------------------------------------------------------


def spec_hash(*parts: object) -> str:
    """A short, stable hash of ``repr`` of ``parts`` (dataclass specs have a stable repr)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def cached_dir(kind: str, *parts: object) -> Path:
    """The cache folder of ``kind`` built from ``parts``: ``var/bench-data/<kind>-<hash>``."""
    return BENCH_DATA / f"{kind}-{spec_hash(kind, *parts)}"


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` was fully built by :func:`build_once`."""
    return (folder / _COMPLETE).exists()


def build_once(folder: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp)`` into a fresh sibling of ``folder`` and move it there, unless cached.

    Building into a temporary folder and renaming it means an interrupted run leaves no
    half-built cache behind.
    """
    if is_complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    build(tmp)
    (tmp / _COMPLETE).touch()
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def source_files(
    spec: demo_data.SstSpec | demo_data.ArgoSpec | demo_data.StationSpec,
) -> list[Path]:
    """Generate (once) the source files of ``spec`` with seed 0 and return them, sorted.

    Files are written by one process per CPU; the values do not depend on it.
    """
    kind, write = _WRITERS[type(spec)]
    folder = cached_dir(kind, spec, SEED)

    def build(tmp: Path) -> None:
        started = time.perf_counter()
        write(spec, tmp, seed=SEED, workers=os.cpu_count())
        print(f"# generated {kind} data in {time.perf_counter() - started:.0f} s: {folder}")

    build_once(folder, build)
    return sorted((folder / kind).iterdir())


def total_bytes(files: list[Path]) -> int:
    """Sum of the sizes of ``files`` in bytes."""
    return sum(f.stat().st_size for f in files)


def scratch_dir(prefix: str) -> tempfile.TemporaryDirectory:
    """A temporary folder under ``var/`` (same disk as the data, unlike a tmpfs ``/tmp``)."""
    VAR.mkdir(exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=f"bench-{prefix}-", dir=VAR)


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of repeated runs of one callable."""

    runs: tuple[float, ...]

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


def time_runs(
    func: Callable[[], object],
    repeat: int,
    *,
    before: Callable[[], None] | None = None,
) -> Timing:
    """Call ``func`` ``repeat`` times; ``before`` (untimed) runs ahead of each call."""
    runs = []
    for _ in range(repeat):
        if before is not None:
            before()
        started = time.perf_counter()
        func()
        runs.append(time.perf_counter() - started)
    return Timing(tuple(runs))


def drop_page_cache() -> bool:
    """Flush dirty pages and drop the OS page cache (needs root); return whether it worked.

    Cold-cache runs then read every byte from disk, as the first user of a file would.
    """
    subprocess.run(["sync"], check=False)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def evict_from_page_cache(paths: Iterable[Path]) -> None:
    """Flush dirty pages and ask the kernel to drop ``paths`` from the page cache (no root
    needed): the files are then read from disk, while the libraries' code stays in memory,
    as on a machine that has run the software before."""
    subprocess.run(["sync"], check=False)
    for path in paths:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


@dataclass(frozen=True)
class ChildRun:
    """Wall-clock seconds of one call made in a fresh process, and that process's peak RSS."""

    seconds: float
    peak_rss: int


def run_in_child(func: Callable[..., object], *args: object) -> ChildRun:
    """Call ``func(*args)`` in a fresh (spawned) process; time it there and watch its memory.

    A fresh process per call keeps each measurement's peak RSS free of what earlier ones left
    allocated. The time covers the call only, not the interpreter start or the imports.
    ``func`` must be a module-level function of an importable module (or of the script).
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_timed_call, args=(sender, func, args))
    child.start()
    sender.close()
    peak = _watch_rss(child)
    seconds = receiver.recv() if receiver.poll() else None
    child.join()
    if child.exitcode != 0 or seconds is None:
        raise RuntimeError(f"{func.__name__} failed in its process (exit code {child.exitcode})")
    return ChildRun(seconds, peak)


def _timed_call(sender, func: Callable[..., object], args: tuple) -> None:
    started = time.perf_counter()
    func(*args)
    sender.send(time.perf_counter() - started)


def _watch_rss(child: multiprocessing.Process, period: float = 0.02) -> int:
    """Peak RSS of ``child`` and its own children, sampled every ``period`` s until it ends.

    Sampling misses spikes shorter than the period, so the figure is a lower bound.
    """
    peak = 0
    try:
        process = psutil.Process(child.pid)
    except psutil.NoSuchProcess:
        return peak
    while child.is_alive():
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            family = [process, *process.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in family))
        time.sleep(period)
    return peak


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def report(
    name: str,
    value: float,
    unit: str,
    *,
    baseline: float | None = None,
    higher_is_better: bool = False,
    target: str = "",
) -> None:
    """Print one result line: ``name: value unit (baseline: value unit) ratio: Nx target: ...``.

    The ratio is how many times better ``value`` is than ``baseline``: baseline / value for
    times, value / baseline for throughputs (``higher_is_better``).
    """
    line = f"{name}: {_fmt(value)} {unit}"
    if baseline is not None:
        ratio = value / baseline if higher_is_better else baseline / value
        line += f" (baseline: {_fmt(baseline)} {unit}) ratio: {ratio:.3g}x"
    if target:
        line += f" target: {target}"
    print(line, flush=True)


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
