"""Run every ``bench_*.py`` of this folder, each in its own process, and print their output.

A benchmark that crashes does not stop the others; the exit status is non-zero if any failed.
Options (``--quick``) are passed on to every benchmark. New ``bench_*.py`` files are picked up
without changing this script.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks() -> list[Path]:
    """The benchmark scripts of this folder, in name order."""
    return sorted(HERE.glob("bench_*.py"))


def run(script: Path, options: list[str]) -> int:
    """Run one benchmark with this interpreter, its output going straight to ours."""
    print(f"=== {script.name} {' '.join(options)}".rstrip(), flush=True)
    started = time.perf_counter()
    command = [sys.executable, str(script), *options]
    status = subprocess.run(command, check=False, cwd=HERE.parent).returncode
    print(
        f"=== {script.name}: {'ok' if status == 0 else f'FAILED (exit {status})'} in "
        f"{time.perf_counter() - started:.0f} s\n",
        flush=True,
    )
    return status


def main() -> int:
    options = sys.argv[1:]
    failed = [script.name for script in benchmarks() if run(script, options) != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
