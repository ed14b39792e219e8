"""Grid ingest throughput, in MB of source NetCDF per second, against two references.

The data are the first 92 days (January to March 2020) of the 366 daily global 0.25-degree SST
files of the ``large`` demo size (``--days 366`` ingests the whole year). Measured in the same run,
each in a fresh process with a cold page cache (``--cold sources``: only the source files are
dropped from it, the libraries' code stays in memory as on a machine that ran them before):

``lake map (copied chunks)``
    ``eosc_pangeo.lake.ingest_grid`` with ``chunking="map"``: the files' chunks (one day of
    the globe each, deflate + shuffle) suit the map store, so they are copied unchanged (each
    inflated once to check it).
``lake map (encoded)``
    The same with ``copy_chunks=False``: the path of layouts that cannot be copied, the
    values inflated from the HDF5 chunks and compressed again with Blosc-zstd.
``lake both``
    ``chunking="both"``: the map store copied, and a timeseries store encoded from the
    inflated values.
``lake map (by reference)``
    ``ingest_grid(..., chunking="map", by_reference=True)``: nothing copied or inflated, the
    map store an Icechunk repository of references to the files' chunks (VirtualiZarr); the
    files are read for their checksums, metadata and chunk indexes only.
``plain to_zarr``
    ``xr.open_mfdataset(files).to_zarr(store)``: what a user would write without the lake;
    the lake should beat it.
``floor``
    Reading every source byte and writing as many bytes, in 1 MiB blocks: no decoding, no
    compression. The lake should stay within 2x of it.

With ``--rounds N`` the methods run in turn N times (interleaved, so that a change of load on
a shared machine hits them alike) and the median run of each is reported. ``--methods`` runs
some of them only (the floor always runs), e.g. ``--methods "lake map (by reference)"``.

Nothing is fsync'ed: every method leaves its writes to the OS alike. Peak RSS is that of the
process doing the work, sampled every 20 ms. Each process imports the libraries every method
uses (the lake's writers, VirtualiZarr, Icechunk, as xarray and zarr for plain ``to_zarr``)
before its call is timed: the lake imports them lazily, and on a loaded 2-core machine the
imports alone took 1.5 to 10 s, which measured the machine's load rather than the ingest.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import common
import xarray as xr
import zarr

from eosc_pangeo import demo_data, lake
from eosc_pangeo.lake import grid_reference, grid_write  # noqa: F401  (imported before timing)
from eosc_pangeo.lake.grid_reference import require

# What an ingest by reference imports when it runs, imported before the timed call.
for _module in (
    "virtualizarr",
    "virtualizarr.parsers",
    "icechunk",
    "obstore.store",
    "obspec_utils.registry",
):
    require(_module, "the benchmark of the ingest by reference")

LARGE = demo_data.specs_for_size("large")["sst"]
QUICK = demo_data.SstSpec(days=30, resolution=1.0)
DAYS = 92
BLOCK = 1024**2


def lake_both(files: list[Path], out: Path) -> None:
    """The lake's ingest into two stores (map + timeseries)."""
    report = lake.ingest_grid(str(out), "sst", "ocean", files, chunking="both")
    assert report.chunks["map.zarr/analysed_sst"] == "copied", report.chunks


def lake_map_copied(files: list[Path], out: Path) -> None:
    """The lake's ingest into the map store only, the sources' chunks copied."""
    report = lake.ingest_grid(str(out), "sst", "ocean", files, chunking="map")
    assert report.chunks["map.zarr/analysed_sst"] == "copied", report.chunks


def lake_map_encoded(files: list[Path], out: Path) -> None:
    """The lake's ingest into the map store only, every chunk decoded and encoded again."""
    report = lake.ingest_grid(str(out), "sst", "ocean", files, chunking="map", copy_chunks=False)
    assert report.chunks["map.zarr/analysed_sst"].startswith("encoded"), report.chunks


def lake_map_by_reference(files: list[Path], out: Path) -> None:
    """The lake's ingest by reference: references to the sources' chunks, nothing copied."""
    report = lake.ingest_grid(str(out), "sst", "ocean", files, chunking="map", by_reference=True)
    assert set(report.chunks.values()) == {"referenced"}, report.chunks


def plain_to_zarr(files: list[Path], out: Path) -> None:
    """The baseline without the lake: one ``open_mfdataset`` and one ``to_zarr``."""
    with xr.open_mfdataset(files) as ds, warnings.catch_warnings():
        # zarr's note that consolidated metadata is not in the Zarr 3 spec yet.
        warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
        ds.to_zarr(out / "plain.zarr", mode="w")


def copy_floor(files: list[Path], out: Path) -> None:
    """The floor: read every source byte and write as many, in blocks, through Python."""
    for source in files:
        with source.open("rb") as reader, (out / source.name).open("wb") as writer:
            while block := reader.read(BLOCK):
                writer.write(block)


METHODS = {
    "floor read+write": copy_floor,
    "plain to_zarr": plain_to_zarr,
    "lake map (copied chunks)": lake_map_copied,
    "lake map (encoded)": lake_map_encoded,
    "lake both": lake_both,
    "lake map (by reference)": lake_map_by_reference,
}
FLOOR, PLAIN = "floor read+write", "plain to_zarr"
LAKE = [name for name in METHODS if name.startswith("lake")]


def measure(func, files: list[Path], cold: str) -> tuple[common.ChildRun, int]:
    """One cold-cache run of ``func(files, scratch)`` in its own process, and the bytes it wrote.

    ``cold`` is what is dropped from the page cache first: ``"all"`` (the libraries' code
    too), or the ``"sources"`` alone. The scratch folder is removed afterwards.
    """
    with common.scratch_dir("ingest") as scratch:
        if cold == "all":
            common.drop_page_cache()
        else:
            common.evict_from_page_cache(files)
        run = common.run_in_child(func, files, Path(scratch))
        written = sum(f.stat().st_size for f in Path(scratch).rglob("*") if f.is_file())
        return run, written


def main() -> None:
    parser = common.argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=DAYS, help=f"files to ingest (default {DAYS})")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of every method in turn (interleaved); medians reported",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=list(METHODS),
        default=list(METHODS),
        metavar="METHOD",
        help="methods to run (default all; the floor always runs): " + ", ".join(METHODS),
    )
    parser.add_argument(
        "--cold",
        choices=["all", "sources"],
        default="all",
        help="drop the whole page cache before each run (default; needs root), or the "
        "source files only (the libraries' code stays in memory)",
    )
    args = parser.parse_args()
    methods = {name: METHODS[name] for name in METHODS if name == FLOOR or name in args.methods}
    spec = QUICK if args.quick else LARGE
    files = common.source_files(spec)[: args.days]
    size_mb = common.total_bytes(files) / 1e6
    print(
        f"# {len(files)} daily files, {size_mb:.0f} MB of NetCDF, grid "
        f"{180 / spec.resolution:.0f} x {360 / spec.resolution:.0f}; cold cache ({args.cold}), "
        f"{args.rounds} interleaved round(s), median of each method"
    )
    rounds = {name: [] for name in methods}
    for _ in range(args.rounds):
        for name, func in methods.items():
            run, written = measure(func, files, args.cold)
            rounds[name].append(run)
            print(
                f"# {name}: {run.seconds:.2f} s, wrote {written / 1e6:.0f} MB, peak RSS "
                f"{run.peak_rss / 1e6:.0f} MB",
                flush=True,
            )
    runs = {
        name: sorted(done, key=lambda run: run.seconds)[len(done) // 2]
        for name, done in rounds.items()
    }
    throughput = {name: size_mb / run.seconds for name, run in runs.items()}
    for name in (FLOOR, PLAIN):
        if name in runs:
            common.report(f"ingest {name}", throughput[name], "MB/s")
    for name in (name for name in LAKE if name in runs):
        if PLAIN in runs:
            common.report(
                f"ingest {name} vs plain to_zarr",
                throughput[name],
                "MB/s",
                baseline=throughput[PLAIN],
                higher_is_better=True,
                target="> 1x",
            )
        common.report(
            f"ingest {name} vs floor",
            throughput[name],
            "MB/s",
            baseline=throughput[FLOOR],
            higher_is_better=True,
            target=">= 0.5x",
        )
    for name, run in runs.items():
        baseline = runs[PLAIN].peak_rss / 1e6 if PLAIN in runs and name != PLAIN else None
        common.report(f"peak RSS {name}", run.peak_rss / 1e6, "MB", baseline=baseline)


if __name__ == "__main__":
    main()
