"""Re-sync of a repository where a few files changed, against downloading it all again.

The source is an S3 bucket on a local moto server holding 1,000 daily SST files (``--quick``:
100) of which 10 (``--quick``: 5), spread over the record, are then replaced by new versions.
After a first ``lake sync`` has ingested them all, 5 re-syncs (``--quick``: 2), each after
new versions of the same files, are timed (listing, fetching and ingesting apart) and their
bytes counted; the median is set against the baseline a data-centre user has without it:
download every file of the bucket again (s3fs ``get``, the same parallelism fsspec gives),
timed in the same run. Targets: bytes within 2 % of the changed files' size; the re-sync's
time dominated by the listing (more than half of it, median over the rounds: the changed
files' fetch and ingest are small beside it).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import common

from eosc_pangeo import demo_data
from eosc_pangeo.lake import Lake
from eosc_pangeo.lake.sync import sync


def moto_server() -> tuple[subprocess.Popen, dict]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise SystemExit("moto_server did not start") from None
            time.sleep(0.1)
    return process, {"endpoint_url": f"http://127.0.0.1:{port}", "key": "bench", "secret": "bench"}


def versions(spec: demo_data.SstSpec, seed: int) -> list[Path]:
    """The daily files of ``spec`` from ``seed``, generated once (cached under var/)."""
    folder = common.cached_dir("sst-sync", spec, seed)
    common.build_once(
        folder, lambda tmp: demo_data.write_sst(spec, tmp, seed=seed, workers=os.cpu_count())
    )
    return sorted((folder / "sst").iterdir())


def main() -> None:
    args = common.parse_args(__doc__)
    files, changed, rounds = (100, 5, 2) if args.quick else (1000, 10, 5)
    spec = demo_data.SstSpec(days=files, resolution=10.0)
    first, other = versions(spec, seed=0), versions(spec, seed=1)
    process, options = moto_server()
    try:
        run(first, other, changed, options, rounds)
    finally:
        process.terminate()
        process.wait(timeout=10)


def run(first: list[Path], other: list[Path], changed: int, options: dict, rounds: int) -> None:
    import s3fs

    s3 = s3fs.S3FileSystem(**options)
    bucket = f"src-{uuid.uuid4().hex[:8]}"
    s3.mkdir(bucket)
    s3.put([str(p) for p in first], f"{bucket}/sst/")
    source = f"s3://{bucket}/sst"
    with tempfile.TemporaryDirectory(prefix="bench-sync-", dir=common.VAR) as scratch:
        lake = Lake(str(Path(scratch) / "lake"))
        start = time.perf_counter()
        initial = sync(lake, source, "sst", "ocean", "grid", storage_options=options)
        print(
            f"first sync: {len(initial.new)} files, {initial.bytes_transferred:,} bytes in "
            f"{time.perf_counter() - start:.1f} s"
        )
        resyncs = []
        for round_ in range(rounds):
            # Each round's changed files are new versions of the previous round's.
            replaced = spread(other if round_ % 2 == 0 else first, changed)
            s3.put([str(p) for p in replaced], f"{bucket}/sst/")
            start = time.perf_counter()
            report = sync(lake, source, "sst", "ocean", "grid", storage_options=options)
            resyncs.append((time.perf_counter() - start, report))
            assert sorted(report.changed) == sorted(p.name for p in replaced), report
            assert not report.new and not report.failed
            print(
                f"re-sync {round_ + 1}: {_shares(*resyncs[-1])}, {report.bytes_transferred:,} B",
                flush=True,
            )
        changed_bytes = common.total_bytes(replaced)

        download = Path(scratch) / "download"
        start = time.perf_counter()
        s3.get(f"{bucket}/sst/", str(download), recursive=True)
        full = time.perf_counter() - start
        full_bytes = common.total_bytes(sorted(download.rglob("*.nc")))

    resync, report = sorted(resyncs, key=lambda r: r[0])[len(resyncs) // 2]
    total = len(first)
    common.report(
        f"re-sync of {total} files, {changed} changed: bytes",
        report.bytes_transferred,
        "B",
        baseline=full_bytes,
        target="bytes within 2% of the changed files'",
    )
    print(
        f"bytes transferred / changed files' size: "
        f"{report.bytes_transferred / changed_bytes:.4f} ({changed_bytes:,} B changed)"
    )
    common.report(
        f"re-sync of {total} files, {changed} changed: time (median of {rounds})",
        resync,
        "s",
        baseline=full,
        target="faster than a full re-download",
    )
    listing = report.seconds["list"]
    common.report(
        f"re-sync of {total} files, {changed} changed: list + fetch",
        listing + report.seconds["fetch"],
        "s",
        baseline=full,
        target="the transfer side, without the ingest",
    )
    shares = [r.seconds["list"] / t for t, r in resyncs]
    ingests = [r.seconds["ingest"] / t for t, r in resyncs]
    share = statistics.median(shares)
    print(
        f"median re-sync: {_shares(resync, report)}\n"
        f"listing share by round: {', '.join(f'{s:.0%}' for s in shares)}, median {share:.0%} "
        f"(target: above 50 %: {'met' if share > 0.5 else 'NOT met'}); ingest share by round: "
        f"{', '.join(f'{s:.0%}' for s in ingests)}, median {statistics.median(ingests):.0%}"
    )


def spread(files: list[Path], count: int) -> list[Path]:
    """``count`` of ``files`` spread over the record, as reprocessed days are."""
    return files[:: len(files) // count][:count]


def _shares(seconds: float, report) -> str:
    """A re-sync's time, its stages' and their shares of it."""
    stages = report.seconds
    rest = seconds - sum(stages.values())
    return (
        f"{seconds:.2f} s: list {stages['list']:.2f} s ({stages['list'] / seconds:.0%}), "
        f"fetch {stages['fetch']:.2f} s, ingest {stages['ingest']:.2f} s "
        f"({stages['ingest'] / seconds:.0%}), record {stages['record']:.2f} s, "
        f"the rest (lock, manifest, plan) {rest:.2f} s"
    )


if __name__ == "__main__":
    main()
