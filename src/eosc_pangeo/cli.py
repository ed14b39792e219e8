"""The ``eosc-pangeo`` command: a thin layer over the library, one sub-command per task.

Every failure the library raises on purpose (bad input, missing collection, ...) ends the command
with exit code 1 and its one-line message; nothing here holds logic of its own.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import demo_data
from .lake import DOMAINS, Lake, LakeError

app = typer.Typer(help="eosc-pangeo: a Pangeo platform for Earth-science data.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
lake_app = typer.Typer(help="Build, list and check the data lake.", no_args_is_help=True)
app.add_typer(lake_app, name="lake")

# Wide enough for the tables even when the output is not a terminal (CI logs, pipes).
console = Console(width=None if Console().is_terminal else 140)
errors = Console(stderr=True)

Domain = Enum("Domain", {d.replace("-", "_"): d for d in DOMAINS}, type=str)
Size = Enum("Size", {s: s for s in demo_data.SIZES}, type=str)


class Chunking(str, Enum):
    map = "map"
    timeseries = "timeseries"
    both = "both"


class StoredValues(str, Enum):
    auto = "auto"
    packed = "packed"
    decoded = "decoded"


LakeOption = Annotated[
    str | None,
    typer.Option("--lake", help="Lake URL (path, file://, s3://...); default: EOSC_PANGEO_LAKE."),
]

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
CollectionOption = Annotated[str, typer.Option(help="Collection id, unique in the lake.")]
DomainOption = Annotated[Domain, typer.Option(help="Scientific domain of the collection.")]


@contextmanager
def failures_as_exit() -> Iterator[None]:
    """Turn the library's deliberate errors into a one-line message and exit code 1."""
    try:
        yield
    except (LakeError, ValueError) as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


@contextmanager
def progress_bars() -> Iterator:
    """A rich progress display and a ``progress(stage, done, total)`` callback feeding it."""
    with Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=errors, transient=False) as bars:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield progress


@app.command("demo-data")
def demo_data_command(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the source files into.")],
    size: Annotated[Size, typer.Option(help="small: seconds; large: benchmark scale.")] = "small",
    seed: Annotated[int, typer.Option(help="Seed of the random fields.")] = 0,
) -> None:
    """Write deterministic sample source files (NetCDF, CSV) as data centres publish them."""
    with progress_bars() as progress:
        written = demo_data.write_demo_data(out_dir, size.value, seed=seed, progress=progress)
    for kind, paths in written.items():
        console.print(f"{kind:<10} {len(paths):>5} files in {paths[0].parent if paths else '-'}")


@lake_app.command("ingest-grid")
def ingest_grid_command(
    files: Annotated[list[str], typer.Argument(
        help="NetCDF files: paths or fsspec URLs, or quoted glob patterns ('s3://b/sst/*.nc').")],
    collection: CollectionOption,
    domain: DomainOption,
    lake: LakeOption = None,
    chunking: Annotated[Chunking, typer.Option(help="Chunk for maps, time series or both.")] = (
        Chunking.both),
    values: Annotated[StoredValues, typer.Option(
        help="Keep the sources' packed values, or decode them to float32 (for sources packed "
             "each their own way, e.g. ERA5 from the CDS); auto: packed if they share it.")] = (
        StoredValues.auto),
) -> None:
    """Combine gridded NetCDF files along time into an analysis-ready Zarr collection."""
    from .lake import ingest_grid

    with failures_as_exit(), progress_bars() as progress:
        report = ingest_grid(lake, collection, domain.value, files, chunking=chunking.value,
                             values=values.value, progress=progress)
    print_report(report)


@lake_app.command("ingest-insitu")
def ingest_insitu_command(
    files: Annotated[list[str], typer.Argument(
        help="Profile NetCDF and station CSV files: paths, fsspec URLs or quoted glob patterns.")],
    collection: CollectionOption,
    domain: DomainOption,
    lake: LakeOption = None,
) -> None:
    """Turn in-situ profiles and station series into one partitioned GeoParquet table."""
    from .lake import ingest_insitu

    with failures_as_exit(), progress_bars() as progress:
        report = ingest_insitu(lake, collection, domain.value, files, progress=progress)
    print_report(report)


def print_report(report) -> None:
    if not report.added:
        console.print(f"{report.collection}: nothing new ({len(report.skipped)} file(s) already "
                      f"in version {report.version})")
        return
    rows = f", {report.rows:,} observations" if report.rows is not None else ""
    replaced = f" ({len(report.replaced)} replacing an earlier version)" if report.replaced else ""
    console.print(f"{report.collection}: version {report.version}, {len(report.added)} file(s) "
                  f"added{replaced}{rows}, {len(report.skipped)} already there")


@lake_app.command("list")
def list_command(lake: LakeOption = None, as_json: JsonOption = False) -> None:
    """List the collections of the lake with their extents and sizes."""
    from .lake import list_collections

    with failures_as_exit():
        collections = list_collections(lake)
    if as_json:
        console.print_json(json.dumps([c.model_dump(exclude={"sources"}) for c in collections]))
        return
    table = Table("collection", "domain", "version", "time", "bbox", "variables", "sources",
                  title=f"{len(collections)} collection(s) in {Lake.from_url(lake).url}")
    for c in collections:
        time = "..".join(t[:10] for t in c.extent.time) if c.extent.time else "-"
        bbox = ",".join(f"{v:.0f}" for v in c.extent.bbox) if c.extent.bbox else "-"
        table.add_row(c.id, f"{c.domain} ({c.kind})", f"v{c.version}", time, bbox,
                      " ".join(c.variables), str(len(c.sources)))
    console.print(table)


@lake_app.command("validate")
def validate_command(
    collection: Annotated[str | None, typer.Argument(help="Only this collection.")] = None,
    lake: LakeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check formats, CF/GeoParquet metadata and checksums; exit 1 if anything fails."""
    from .lake import validate

    with failures_as_exit():
        findings = validate(lake, collection)
    failed = [f for f in findings if not f.ok]
    if as_json:
        console.print_json(json.dumps([f.__dict__ for f in findings]))
    else:
        table = Table("collection", "check", "target", "result", title="lake validate")
        for f in findings:
            mark = "[green]ok[/]" if f.ok else "[bold red]FAIL[/]"
            table.add_row(f.collection, f.check, f.target, f"{mark} {f.message}")
        console.print(table)
        console.print(f"{len(findings) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


@app.command("up")
def up_command(
    lake: LakeOption = None,
    size: Annotated[Size, typer.Option(help="Size of the demo data.")] = "small",
) -> None:
    """Run the platform on this machine (today: build the demo lake and its catalogue, and show
    what they hold)."""
    from .catalog import build_catalog
    from .lake import build_demo_lake

    with failures_as_exit(), progress_bars() as progress:
        lake_url = build_demo_lake(lake, size.value, progress=progress)
        catalog = build_catalog(lake_url, progress=progress)
    list_command(lake_url, as_json=False)
    console.print(f"lake     {lake_url}\nSTAC     {catalog.stac}\nIntake   {catalog.intake}\n"
                  f"try      {sys.argv[0]} catalog search --lake {lake_url} -v sst --bbox "
                  "-30,30,0,60", highlight=False)


# --- catalog ----------------------------------------------------------------------------------

catalog_app = typer.Typer(help="Describe, search, serve and export the meta-catalogue.",
                          no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("build")
def catalog_build_command(
    lake: LakeOption = None,
    data_url: Annotated[str | None, typer.Option(
        help="Public URL of the data service (serve-data) for assets and distributions; "
        "default: EOSC_PANGEO_DATA_URL.")] = None,
) -> None:
    """Describe the lake as STAC, Intake and a stac-geoparquet index under LAKE/_catalog."""
    from .catalog import build_catalog

    with failures_as_exit(), progress_bars() as progress:
        report = build_catalog(lake, progress=progress, data_url=data_url)
    console.print(f"described {len(report.described)} collection(s) ({report.items} items), "
                  f"{len(report.unchanged)} unchanged, {len(report.removed)} removed")
    for name, url in (("STAC", report.stac), ("Intake", report.intake), ("index", report.index)):
        console.print(f"{name:<7}{url}", highlight=False)


@catalog_app.command("search")
def catalog_search_command(
    bbox: Annotated[str | None, typer.Option(help="west,south,east,north in degrees.")] = None,
    datetime: Annotated[str | None, typer.Option(
        help="Time or interval: 2020-01, 2020-01-01/2020-03-31, ../2020-06-30.")] = None,
    variable: Annotated[list[str] | None, typer.Option(
        "--variable", "-v", help="Variable (standard name, alias such as sst, or word); repeat "
        "for several.")] = None,
    q: Annotated[str | None, typer.Option("--q", "-q", help="Free text.")] = None,
    domain: Annotated[list[Domain] | None, typer.Option(help="Only these domains.")] = None,
    collection: Annotated[list[str] | None, typer.Option(help="Only these collections.")] = None,
    limit: Annotated[int, typer.Option(help="Most hits shown.")] = 10,
    lake: LakeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Find collections across domains by place, time, variable and words."""
    from .catalog import search

    with failures_as_exit():
        hits = search(bbox=bbox, datetime=datetime, variables=variable, q=q,
                      domain=[d.value for d in domain or []], collections=collection,
                      limit=limit, lake=lake)
    if as_json:
        console.print_json(hits.to_dataframe().to_json(orient="records"))
        return
    table = Table("score", "collection", "domain", "kind", "title", "variables", "items",
                  title=f"{len(hits)} hit(s)")
    for hit in hits:
        table.add_row(f"{hit.score:.2f}", hit.id, hit.domain or "-", hit.kind, hit.title,
                      ", ".join(hit.variables), str(hit.matched_items))
    console.print(table)


@catalog_app.command("serve")
def catalog_serve_command(
    lake: LakeOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
) -> None:
    """Serve the catalogue index as a STAC API 1.0 (item and collection search, free text)."""
    from .catalog.api import serve

    with failures_as_exit():
        serve(lake, host=host, port=port)


@app.command("serve-data")
def serve_data_command(
    lake: LakeOption = None,
    policy: Annotated[Path | None, typer.Option(
        help="Access policy (YAML): public collections, API keys, hub tokens, limits; "
        "default: nothing public, no keys.")] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8090,
    prefix: Annotated[str, typer.Option(help="URL prefix, e.g. /services/eosc-data.")] = "",
) -> None:
    """Serve the lake to clients outside the hub: Zarr over HTTP, OPeNDAP, EDR, GeoParquet."""
    from .access import AccessPolicy
    from .access.app import serve
    from .access.errors import AccessError

    try:
        access = AccessPolicy.from_file(policy) if policy else None
    except AccessError as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    with failures_as_exit():
        serve(lake, policy=access, host=host, port=port, prefix=prefix)


@catalog_app.command("harvest")
def catalog_harvest_command(
    source: Annotated[str, typer.Argument(
        help="STAC API URL, static STAC catalog.json, or Intake catalog .yaml.")],
    lake: LakeOption = None,
    domain: Annotated[Domain | None, typer.Option(
        help="Domain of harvested collections that do not say.")] = None,
) -> None:
    """Harvest an external catalogue into the index (incremental; a broken source changes
    nothing and exits 1)."""
    from .catalog.harvest import harvest

    with failures_as_exit():
        report = harvest(source, lake=lake, domain=domain.value if domain else None)
    if not report.ok:
        errors.print(f"[bold red]error:[/] {source} skipped: {report.error}", highlight=False)
        raise typer.Exit(1)
    console.print(f"{report.kind} {source}: {len(report.added)} added, {len(report.updated)} "
                  f"updated, {len(report.unchanged)} unchanged, {len(report.removed)} removed, "
                  f"{report.items} items", highlight=False)
    for collection, reason in report.skipped.items():
        errors.print(f"[yellow]skipped[/] {collection}: {reason}", highlight=False)


class DcatFormat(str, Enum):
    turtle = "turtle"
    jsonld = "jsonld"


@catalog_app.command("export-dcat")
def catalog_export_dcat_command(
    lake: LakeOption = None,
    format: Annotated[DcatFormat, typer.Option("--format", help="RDF serialisation.")] = (
        DcatFormat.turtle),
    base_uri: Annotated[str | None, typer.Option(
        help="Public URL of the catalogue (its STAC API); dataset URIs hang below it.")] = None,
    output: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
) -> None:
    """Export the catalogue as DCAT-AP (GeoDCAT-AP spatial properties) for EOSC portals."""
    from .catalog.dcat import export_dcat

    with failures_as_exit():
        text = export_dcat(lake, format=format.value, base_uri=base_uri)
    if output is None:
        print(text)
    else:
        output.write_text(text)
        console.print(f"wrote {output}", highlight=False)


@catalog_app.command("load-pgstac")
def catalog_load_pgstac_command(
    dsn: Annotated[str, typer.Option(
        help="PostgreSQL database migrated with `pypgstac migrate`, e.g. "
        "postgresql://user:pass@host:5432/stac.")],
    lake: LakeOption = None,
) -> None:
    """Upsert the catalogue index into a pgstac database, for stac-fastapi-pgstac (needs the
    pgstac extra; incremental)."""
    from .catalog.pgstac import load_into_pgstac

    with failures_as_exit():
        items = load_into_pgstac(lake, dsn)
    console.print(f"loaded {items} item(s) into pgstac", highlight=False)
