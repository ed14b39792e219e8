"""The ``eosc-pangeo`` command: a thin layer over the library, one sub-command per task.

Every failure the library raises on purpose (a ``LakeError`` or ``CatalogError``: bad input,
missing collection, ...) ends the command with exit code 1 and its one-line message; anything else
is a bug and shows its traceback. Nothing here holds logic of its own, and the library's modules
load inside the commands, so that ``--help`` is quick.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .catalog.errors import CatalogError
from .demo_sizes import SIZES
from .lake.errors import LakeError
from .lake.storage import DOMAINS, Lake

# Click's plain help, not typer's Rich panels: these load Rich's Markdown, syntax and traceback
# modules (about 120 modules, a third of ``--help``'s start-up).
app = typer.Typer(
    help="eosc-pangeo: a Pangeo platform for Earth-science data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
lake_app = typer.Typer(help="Build, list and check the data lake.", no_args_is_help=True)
app.add_typer(lake_app, name="lake")


class _LazyConsole:
    """A Rich console made when a command first prints: Rich's console loads 45 modules that
    ``--help`` does not need. (Rich has no lazy console of its own.)"""

    def __init__(self, stderr: bool = False) -> None:
        self._stderr = stderr

    @functools.cached_property
    def rich(self):
        """The Rich console itself, for Rich's own classes (progress bars)."""
        from rich.console import Console

        if self._stderr:
            return Console(stderr=True)
        # Wide enough for the tables even when the output is not a terminal (CI logs, pipes).
        return Console(width=None if Console().is_terminal else 140)

    def __getattr__(self, name: str):
        return getattr(self.rich, name)


def Table(*columns, **options):  # noqa: N802  (stands for rich's class, loaded when used)
    """A Rich table, Rich's table module loaded only by the commands that print one."""
    from rich.table import Table

    return Table(*columns, **options)


console = _LazyConsole()
errors = _LazyConsole(stderr=True)

Domain = Enum("Domain", {d.replace("-", "_"): d for d in DOMAINS}, type=str)
Size = Enum("Size", {s: s for s in SIZES}, type=str)


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
    except (LakeError, CatalogError) as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


@contextmanager
def progress_bars() -> Iterator:
    """A rich progress display and a ``progress(stage, done, total)`` callback feeding it."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors.rich,
        transient=False,
    ) as bars:
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
    from . import demo_data

    with progress_bars() as progress:
        written = demo_data.write_demo_data(out_dir, size.value, seed=seed, progress=progress)
    for kind, paths in written.items():
        console.print(f"{kind:<10} {len(paths):>5} files in {paths[0].parent if paths else '-'}")


@lake_app.command("ingest-grid")
def ingest_grid_command(
    files: Annotated[
        list[str],
        typer.Argument(
            help="NetCDF files: paths or fsspec URLs, or quoted glob patterns ('s3://b/sst/*.nc')."
        ),
    ],
    collection: CollectionOption,
    domain: DomainOption,
    lake: LakeOption = None,
    chunking: Annotated[Chunking, typer.Option(help="Chunk for maps, time series or both.")] = (
        Chunking.both
    ),
    values: Annotated[
        StoredValues,
        typer.Option(
            help="Keep the sources' packed values, or decode them to float32 (for sources packed "
            "each their own way, e.g. ERA5 from the CDS); auto: packed if they share it."
        ),
    ] = (StoredValues.auto),
    copy_chunks: Annotated[
        bool,
        typer.Option(
            help="Copy the sources' zlib/shuffle chunks into the map store unchanged where they "
            "suit it (numcodecs codecs, read by zarr-python); --no-copy-chunks compresses "
            "with Blosc-zstd for other Zarr 3 readers."
        ),
    ] = True,
    by_reference: Annotated[
        bool,
        typer.Option(
            help="Copy nothing: the map store is an Icechunk repository of references to the "
            "sources' chunks (with --chunking map; local files). The sources must then stay "
            "where they are, unchanged, and readers need the icechunk package."
        ),
    ] = False,
) -> None:
    """Combine gridded NetCDF files along time into an analysis-ready Zarr collection."""
    from .lake import ingest_grid

    with failures_as_exit(), progress_bars() as progress:
        report = ingest_grid(
            lake,
            collection,
            domain.value,
            files,
            chunking=chunking.value,
            values=values.value,
            copy_chunks=copy_chunks,
            by_reference=by_reference,
            progress=progress,
        )
    print_report(report)


AttributeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--attribute",
        help="An ACDD attribute of the in-situ collection as NAME=VALUE (license=CC-BY-4.0, "
        "title=..., summary=..., creator_name=...); repeat for more. It wins over the sources'.",
    ),
]


def attribute_pairs(values: list[str] | None) -> dict[str, str]:
    """``--attribute NAME=VALUE`` options as a dict; exit 1 naming one without ``=``."""
    pairs = {}
    for value in values or []:
        name, equals, text = value.partition("=")
        if not equals or not name.strip():
            errors.print(
                f"[bold red]error:[/] --attribute {value!r}: give NAME=VALUE", highlight=False
            )
            raise typer.Exit(1)
        pairs[name.strip()] = text.strip()
    return pairs


@lake_app.command("ingest-insitu")
def ingest_insitu_command(
    files: Annotated[
        list[str],
        typer.Argument(
            help="Profile NetCDF and station CSV files: paths, fsspec URLs or quoted glob patterns."
        ),
    ],
    collection: CollectionOption,
    domain: DomainOption,
    lake: LakeOption = None,
    attribute: AttributeOption = None,
) -> None:
    """Turn in-situ profiles and station series into one partitioned GeoParquet table."""
    from .lake import ingest_insitu

    attributes = attribute_pairs(attribute)
    with failures_as_exit(), progress_bars() as progress:
        report = ingest_insitu(
            lake, collection, domain.value, files, attributes=attributes, progress=progress
        )
    print_report(report)


def print_report(report) -> None:
    if not report.added:
        console.print(
            f"{report.collection}: nothing new ({len(report.skipped)} file(s) already "
            f"in version {report.version})"
        )
        return
    rows = f", {report.rows:,} observations" if report.rows is not None else ""
    replaced = f" ({len(report.replaced)} replacing an earlier version)" if report.replaced else ""
    console.print(
        f"{report.collection}: version {report.version}, {len(report.added)} file(s) "
        f"added{replaced}{rows}, {len(report.skipped)} already there"
    )
    for array, path in report.chunks.items():
        console.print(f"  {array}: {path}", highlight=False)


@lake_app.command("list")
def list_command(lake: LakeOption = None, as_json: JsonOption = False) -> None:
    """List the collections of the lake with their extents and sizes."""
    from .lake import list_collections

    with failures_as_exit():
        collections = list_collections(lake)
    if as_json:
        console.print_json(json.dumps([c.model_dump(exclude={"sources"}) for c in collections]))
        return
    table = Table(
        "collection",
        "domain",
        "version",
        "time",
        "bbox",
        "variables",
        "sources",
        title=f"{len(collections)} collection(s) in {Lake.from_url(lake).url}",
    )
    for c in collections:
        time = "..".join(t[:10] for t in c.extent.time) if c.extent.time else "-"
        bbox = ",".join(f"{v:.0f}" for v in c.extent.bbox) if c.extent.bbox else "-"
        table.add_row(
            c.id,
            f"{c.domain} ({c.kind})",
            f"v{c.version}",
            time,
            bbox,
            " ".join(c.variables),
            str(len(c.sources)),
        )
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


class SyncKind(str, Enum):
    grid = "grid"
    insitu = "insitu"


PruneOption = Annotated[
    bool,
    typer.Option(
        "--prune",
        help="Take files gone from the source out of the collection (in-situ only); without "
        "it they are reported as removed and stay.",
    ),
]
SourceOptions = Annotated[
    str | None,
    typer.Option(
        "--options",
        help="The source's fsspec storage options as JSON (endpoint_url, "
        "key_filename...); keep secrets in the environment.",
    ),
]


def source_options(text: str | None) -> dict:
    try:
        options = json.loads(text) if text else {}
    except ValueError as error:
        errors.print(f"[bold red]error:[/] --options: not JSON ({error})", highlight=False)
        raise typer.Exit(1) from None
    if not isinstance(options, dict):
        errors.print("[bold red]error:[/] --options: give a JSON object", highlight=False)
        raise typer.Exit(1)
    return options


@lake_app.command("sync")
def sync_command(
    source: Annotated[
        str | None,
        typer.Argument(
            help="s3://..., an HTTP(S) directory listing or THREDDS catalog.xml, sftp://..., "
            "irods://zone/path or a folder."
        ),
    ] = None,
    lake: LakeOption = None,
    collection: Annotated[str | None, typer.Option(help="Collection id.")] = None,
    domain: Annotated[Domain | None, typer.Option(help="Domain of the collection.")] = None,
    kind: Annotated[SyncKind | None, typer.Option(help="grid or insitu.")] = None,
    include: Annotated[str, typer.Option(help="Glob on file names.")] = "*",
    options: SourceOptions = None,
    prune: PruneOption = False,
    attribute: AttributeOption = None,
    all_sources: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Sync every registered source (lake sources add), then rebuild the "
            "catalogue if anything changed.",
        ),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")] = False,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for another sync of the collection to finish.")
    ] = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Fetch only the new and changed files of a remote repository and ingest them; exit 1 if
    a file failed (the others are synced)."""
    from .lake import sync as lake_sync

    with failures_as_exit(), progress_bars() as progress:
        if all_sources:
            reports = lake_sync.sync_all(lake, dry_run=dry_run, wait=wait, progress=progress)
        elif source and collection and domain and kind:
            reports = [
                lake_sync.sync(
                    lake,
                    source,
                    collection,
                    domain.value,
                    kind.value,
                    include=include,
                    dry_run=dry_run,
                    prune=prune,
                    attributes=attribute_pairs(attribute),
                    wait=wait,
                    storage_options=source_options(options),
                    progress=progress,
                )
            ]
        else:
            errors.print(
                "[bold red]error:[/] give SOURCE with --collection, --domain and --kind, or --all",
                highlight=False,
            )
            raise typer.Exit(1)
    print_sync_reports(reports, as_json)
    if all_sources and any(r.ingested for r in reports):
        from .catalog import build_catalog  # here, not in lake: lake must not import catalog

        with failures_as_exit():
            built = build_catalog(lake)
        errors.print(
            f"catalogue: {len(built.described)} collection(s) described again, "
            f"{len(built.unchanged)} unchanged",
            highlight=False,
        )
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


def print_sync_reports(reports, as_json: bool) -> None:
    if as_json:
        summaries = [r.summary() for r in reports]
        console.print_json(json.dumps(summaries[0] if len(summaries) == 1 else summaries))
        return
    table = Table(
        "collection",
        "source",
        "new",
        "changed",
        "unchanged",
        "removed",
        "failed",
        "bytes",
        title="lake sync"
        + (" (dry run: nothing changed)" if reports and reports[0].dry_run else ""),
    )
    for r in reports:
        table.add_row(
            r.collection,
            r.source,
            str(len(r.new)),
            str(len(r.changed)),
            str(len(r.unchanged)),
            f"{len(r.removed)}{' (pruned)' if r.pruned else ''}",
            str(len(r.failed)),
            f"{r.bytes_transferred:,}",
        )
    console.print(table)
    for r in reports:
        for name, reason in r.failed.items():
            errors.print(
                f"[bold red]failed[/] {r.collection}/{name}: {reason}",
                highlight=False,
                soft_wrap=True,
            )


sources_app = typer.Typer(
    help="Sources that `lake sync --all` keeps collections in step with.", no_args_is_help=True
)
lake_app.add_typer(sources_app, name="sources")


@sources_app.command("add")
def sources_add_command(
    source: Annotated[str, typer.Argument(help="The source URL, as for lake sync.")],
    collection: CollectionOption,
    domain: DomainOption,
    kind: Annotated[SyncKind, typer.Option(help="grid or insitu.")],
    lake: LakeOption = None,
    include: Annotated[str, typer.Option(help="Glob on file names.")] = "*",
    options: SourceOptions = None,
    prune: PruneOption = False,
    attribute: AttributeOption = None,
) -> None:
    """Register (or replace) the source of a collection."""
    from .lake import sync as lake_sync

    with failures_as_exit():
        lake_sync.add_source(
            lake,
            lake_sync.RegisteredSource(
                collection=collection,
                source=source,
                domain=domain.value,
                kind=kind.value,
                include=include,
                prune=prune,
                attributes=attribute_pairs(attribute),
                storage_options=source_options(options),
            ),
        )
    console.print(f"{collection}: syncs from {source}", highlight=False)


@sources_app.command("list")
def sources_list_command(lake: LakeOption = None, as_json: JsonOption = False) -> None:
    """The registered sources."""
    from .lake import sync as lake_sync

    with failures_as_exit():
        entries = lake_sync.list_sources(lake)
    if as_json:
        console.print_json(json.dumps([e.model_dump() for e in entries]))
        return
    table = Table(
        "collection",
        "domain",
        "kind",
        "source",
        "include",
        "prune",
        title=f"{len(entries)} registered source(s)",
    )
    for e in entries:
        table.add_row(e.collection, e.domain, e.kind, e.source, e.include, str(e.prune))
    console.print(table)


@sources_app.command("remove")
def sources_remove_command(
    collection: Annotated[str, typer.Argument(help="Collection id.")],
    lake: LakeOption = None,
) -> None:
    """Forget a collection's source (its data stays)."""
    from .lake import sync as lake_sync

    with failures_as_exit():
        lake_sync.remove_source(lake, collection)
    console.print(f"{collection}: no longer synced", highlight=False)


StateOption = Annotated[
    Path,
    typer.Option("--state", help="The platform's state directory (configuration, users, logs)."),
]
DEFAULT_STATE = Path("var/platform")


@contextmanager
def platform_failures() -> Iterator[None]:
    from .platform.auth import UserStoreError
    from .platform.local import PlatformError

    with failures_as_exit():
        try:
            yield
        except (PlatformError, UserStoreError, RuntimeError) as error:
            errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None


@app.command("up")
def up_command(
    state: StateOption = DEFAULT_STATE,
    lake: Annotated[
        str | None,
        typer.Option(
            help="Lake to serve (default: a demo lake in the shared directory, built if absent)."
        ),
    ] = None,
    ip: Annotated[str, typer.Option(help="Interface the hub listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The hub's port (0: any free one).")] = 8000,
    size: Annotated[Size, typer.Option(help="Size of the demo data.")] = "small",
    oidc: Annotated[
        Path | None,
        typer.Option(
            help="JSON file of OpenID Connect settings (issuer_url, client_id, client_secret, "
            "allowed_groups...): log in through that provider, not with passwords."
        ),
    ] = None,
) -> None:
    """Run the platform on this machine: JupyterHub (with its proxy), Dask Gateway, the STAC
    API and the idle culler, until `eosc-pangeo down`. A second `up` reuses the state."""
    from .platform import local

    with platform_failures(), progress_bars() as progress:
        platform = local.prepare(
            state,
            ip=ip,
            port=port,
            lake=lake,
            oidc=local.load_oidc_settings(oidc) if oidc else None,
        )
        local.ensure_demo_lake(platform, size.value, progress=progress)
        local.start(platform)
    console.print(
        f"JupyterHub   {platform.url}\n"
        f"admin        {platform.admin_name} (password in "
        f"{platform.admin_password_file}, mode 600)\n"
        f"lake         {platform.lake}\nSTAC API     {platform.catalog_url}\n"
        f"logs         {platform.log}\nstop with    eosc-pangeo down --state {state}",
        highlight=False,
    )


@app.command("down")
def down_command(state: StateOption = DEFAULT_STATE) -> None:
    """Stop the platform: users' servers and clusters, the hub, its proxy and services."""
    from .platform import local

    with platform_failures():
        stopped = local.stop(local.PlatformState.load(state))
    console.print("stopped" if stopped else "not running")


@app.command("status")
def status_command(state: StateOption = DEFAULT_STATE, as_json: JsonOption = False) -> None:
    """Say what runs and where (exit 1 if the hub does not run)."""
    from .platform import local

    with platform_failures():
        report = local.status(local.PlatformState.load(state))
    if as_json:
        console.print_json(json.dumps(report))
    else:
        hub = report["hub"]
        running = f"running (pid {hub['pid']})" if hub["running"] else "stopped"
        console.print(f"hub          {running} at {report['url']}", highlight=False)
        for name, up in report.get("services", {}).items():
            console.print(f"{name:<13}{'answers' if up else 'DOES NOT ANSWER'}", highlight=False)
        if "dashboards" in report:
            console.print(f"dashboards   {report['dashboards']}", highlight=False)
        if "servers" in report:
            console.print(f"servers      {', '.join(report['servers']) or '-'}", highlight=False)
        console.print(
            f"state        {report['state']}\nlake         {report['lake']}\n"
            f"log          {report['log']}",
            highlight=False,
        )
    if not report["hub"]["running"]:
        raise typer.Exit(1)


users_app = typer.Typer(
    help="Accounts of the platform run by `eosc-pangeo up`.", no_args_is_help=True
)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add_command(
    name: Annotated[str, typer.Argument(help="User name (also their Unix account, as root).")],
    admin: Annotated[bool, typer.Option("--admin", help="Hub administrator.")] = False,
    group: Annotated[
        list[str] | None,
        typer.Option("--group", help="Hub group (repeat); `ingest` may write the lake."),
    ] = None,
    password_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the password (first line); default: generate one and print it once."
        ),
    ] = None,
    state: StateOption = DEFAULT_STATE,
) -> None:
    """Add an account (or replace its password, admin flag and groups)."""
    from .platform import auth, local

    with platform_failures():
        platform = local.PlatformState.load(state)
        password = (
            (password_file.read_text().splitlines() or [""])[0]
            if password_file
            else auth.new_password()
        )
        local.add_account(platform, name, password, admin=admin, groups=tuple(group or ()))
    console.print(
        f"added {name}" + ("" if password_file else f", password: {password}"), highlight=False
    )


@users_app.command("list")
def users_list_command(state: StateOption = DEFAULT_STATE, as_json: JsonOption = False) -> None:
    """List the accounts with their groups."""
    from .platform import local

    with platform_failures():
        users = local.PlatformState.load(state).users.load()
    rows = [{"name": n, "admin": u.admin, "groups": u.groups} for n, u in users.items()]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table("user", "admin", "groups", title=f"{len(rows)} user(s)")
    for row in rows:
        table.add_row(row["name"], "yes" if row["admin"] else "", ", ".join(row["groups"]))
    console.print(table)


@users_app.command("remove")
def users_remove_command(
    name: Annotated[str, typer.Argument(help="User name.")],
    state: StateOption = DEFAULT_STATE,
) -> None:
    """Remove an account: they can no longer log in; a running hub stops their server. Their
    home directory (and Unix account) is kept."""
    from .platform import local

    with platform_failures():
        local.remove_account(local.PlatformState.load(state), name)
    console.print(f"removed {name}", highlight=False)


# --- catalog ----------------------------------------------------------------------------------

catalog_app = typer.Typer(
    help="Describe, search, serve and export the meta-catalogue.", no_args_is_help=True
)
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("build")
def catalog_build_command(
    lake: LakeOption = None,
    data_url: Annotated[
        str | None,
        typer.Option(
            help="Public URL of the data service (serve-data) for assets and distributions; "
            "default: EOSC_PANGEO_DATA_URL."
        ),
    ] = None,
) -> None:
    """Describe the lake as STAC, Intake and a stac-geoparquet index under LAKE/_catalog."""
    from .catalog import build_catalog

    with failures_as_exit(), progress_bars() as progress:
        report = build_catalog(lake, progress=progress, data_url=data_url)
    console.print(
        f"described {len(report.described)} collection(s) ({report.items} items), "
        f"{len(report.unchanged)} unchanged, {len(report.removed)} removed"
    )
    for name, url in (
        ("STAC", report.stac),
        ("Intake", report.intake),
        ("index", report.index),
        ("ESM", report.esm),
    ):
        if url:
            console.print(f"{name:<7}{url}", highlight=False)


@catalog_app.command("search")
def catalog_search_command(
    bbox: Annotated[str | None, typer.Option(help="west,south,east,north in degrees.")] = None,
    datetime: Annotated[
        str | None,
        typer.Option(help="Time or interval: 2020-01, 2020-01-01/2020-03-31, ../2020-06-30."),
    ] = None,
    variable: Annotated[
        list[str] | None,
        typer.Option(
            "--variable",
            "-v",
            help="Variable (standard name, alias such as sst, or word); repeat for several.",
        ),
    ] = None,
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
        hits = search(
            bbox=bbox,
            datetime=datetime,
            variables=variable,
            q=q,
            domain=[d.value for d in domain or []],
            collections=collection,
            limit=limit,
            lake=lake,
        )
    if as_json:
        console.print_json(hits.to_dataframe().to_json(orient="records"))
        return
    table = Table(
        "score",
        "collection",
        "domain",
        "kind",
        "title",
        "variables",
        "items",
        title=f"{len(hits)} hit(s)",
    )
    for hit in hits:
        table.add_row(
            f"{hit.score:.2f}",
            hit.id,
            hit.domain or "-",
            hit.kind,
            hit.title,
            ", ".join(hit.variables),
            str(hit.matched_items),
        )
    console.print(table)


@catalog_app.command("serve")
def catalog_serve_command(
    lake: LakeOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    public_url: Annotated[
        str | None,
        typer.Option(
            help="Public URL of this API, for the DCAT-AP at /dcat; default: each request's "
            "own (proxy headers honoured)."
        ),
    ] = None,
) -> None:
    """Serve the catalogue index as a STAC API 1.0 (item and collection search, free text),
    and as DCAT-AP 3 at /dcat for EOSC and CKAN harvesters."""
    from .catalog.api import serve

    with failures_as_exit():
        serve(lake, host=host, port=port, public_url=public_url)


@app.command("serve-data")
def serve_data_command(
    lake: LakeOption = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            help="Access policy (YAML): public collections, API keys, hub tokens, limits; "
            "default: nothing public, no keys."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8090,
    prefix: Annotated[str, typer.Option(help="URL prefix, e.g. /services/eosc-data.")] = "",
    workers: Annotated[
        int,
        typer.Option(
            help="Worker processes (they share the port and the rate limits); about one per core."
        ),
    ] = 1,
) -> None:
    """Serve the lake to clients outside the hub: Zarr over HTTP, OPeNDAP, EDR, GeoParquet."""
    from .access import AccessPolicy
    from .access.app import serve
    from .access.errors import AccessError

    try:
        access = AccessPolicy.from_file(policy) if policy else None
        with failures_as_exit():
            serve(lake, policy=access, host=host, port=port, prefix=prefix, workers=workers)
    except AccessError as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


@catalog_app.command("harvest")
def catalog_harvest_command(
    source: Annotated[
        str,
        typer.Argument(
            help="STAC API URL, static STAC catalog.json, Intake catalog .yaml, or DCAT-AP "
            "catalogue (CKAN/D4Science endpoint or RDF file; pages followed)."
        ),
    ],
    lake: LakeOption = None,
    domain: Annotated[
        Domain | None, typer.Option(help="Domain of harvested collections that do not say.")
    ] = None,
) -> None:
    """Harvest an external catalogue into the index (incremental; a broken source changes
    nothing and exits 1)."""
    from .catalog.harvest import harvest

    with failures_as_exit():
        report = harvest(source, lake=lake, domain=domain.value if domain else None)
    if not report.ok:
        errors.print(f"[bold red]error:[/] {source} skipped: {report.error}", highlight=False)
        raise typer.Exit(1)
    console.print(
        f"{report.kind} {source}: {len(report.added)} added, {len(report.updated)} "
        f"updated, {len(report.unchanged)} unchanged, {len(report.removed)} removed, "
        f"{report.items} items",
        highlight=False,
    )
    for collection, reason in report.skipped.items():
        errors.print(f"[yellow]skipped[/] {collection}: {reason}", highlight=False)


class DcatFormat(str, Enum):
    turtle = "turtle"
    xml = "xml"
    jsonld = "jsonld"


@catalog_app.command("export-dcat")
def catalog_export_dcat_command(
    lake: LakeOption = None,
    format: Annotated[DcatFormat, typer.Option("--format", help="RDF serialisation.")] = (
        DcatFormat.turtle
    ),
    base_uri: Annotated[
        str | None,
        typer.Option(
            help="Public URL of the catalogue (its STAC API); dataset URIs hang below it."
        ),
    ] = None,
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
    dsn: Annotated[
        str,
        typer.Option(
            help="PostgreSQL database migrated with `pypgstac migrate`, e.g. "
            "postgresql://user:pass@host:5432/stac."
        ),
    ],
    lake: LakeOption = None,
) -> None:
    """Upsert the catalogue index into a pgstac database, for stac-fastapi-pgstac (needs the
    pgstac extra; incremental)."""
    from .catalog.pgstac import load_into_pgstac

    with failures_as_exit():
        items = load_into_pgstac(lake, dsn)
    console.print(f"loaded {items} item(s) into pgstac", highlight=False)


# --- batch jobs -------------------------------------------------------------------------------

jobs_app = typer.Typer(help="List, follow and cancel your batch jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
results_app = typer.Typer(help="Download what a batch job produced.", no_args_is_help=True)
app.add_typer(results_app, name="results")


class JobBackend(str, Enum):
    local = "local"
    gateway = "gateway"
    slurm = "slurm"
    pbs = "pbs"


JobId = Annotated[str, typer.Argument(help="Job id, as `eosc-pangeo run` printed it.")]


@app.command("run")
def run_command(
    path: Annotated[Path, typer.Argument(help="Notebook (.ipynb) or Python script (.py).")],
    parameter: Annotated[
        list[str] | None,
        typer.Option(
            "--parameter", "-p", help="NAME=VALUE for a declared parameter; repeat for several."
        ),
    ] = None,
    backend: Annotated[
        JobBackend | None,
        typer.Option(
            help="Where the job and its cluster() run; default: the gateway in the hub, the site's "
            "batch system on HPC, else local."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Workers of the job's cluster() calls that give no number.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the end; exit 1 unless the job succeeded.")
    ] = False,
) -> None:
    """Run a parameterised notebook or script as a batch job; print its id."""
    from . import jobs

    store = jobs.jobs_backend()
    with failures_as_exit():
        job = store.submit(
            path, parameter or [], backend=backend.value if backend else None, workers=workers
        )
    print(job.id)
    if wait:
        with failures_as_exit():
            job = store.wait(job.id)
        errors.print(
            f"{job.id} {job.state.value}" + (f": {job.reason}" if job.reason else ""),
            highlight=False,
            soft_wrap=True,
        )
        if job.state != jobs.State.succeeded:
            raise typer.Exit(1)


@jobs_app.command("rerun")
def jobs_rerun_command(
    job_id: JobId,
    parameter: Annotated[
        list[str] | None,
        typer.Option(
            "--parameter",
            "-p",
            help="NAME=VALUE instead of the first run's value; repeat for several.",
        ),
    ] = None,
) -> None:
    """Run a job's notebook or script again as a new job (same input, backend and parameters,
    but those given); print the new job's id. The first job's results stay."""
    from . import jobs

    with failures_as_exit():
        job = jobs.jobs_backend().rerun(job_id, parameter or [])
    print(job.id)


@jobs_app.command("list")
def jobs_list_command(as_json: JsonOption = False) -> None:
    """Your jobs, newest first, with their state."""
    from . import jobs

    with failures_as_exit():
        listed = jobs.jobs_backend().list_jobs()
    if as_json:
        console.print_json(json.dumps([j.model_dump(mode="json") for j in listed]))
        return
    table = Table(
        "id",
        "name",
        "backend",
        "state",
        "created",
        "finished",
        "reason",
        title=f"{len(listed)} job(s)",
    )
    for j in listed:
        table.add_row(
            j.id, j.name, j.backend, j.state.value, j.created, j.finished or "-", j.reason or ""
        )
    console.print(table)


@jobs_app.command("show")
def jobs_show_command(job_id: JobId) -> None:
    """A job's record: parameters, backend, state and reason, times."""
    from . import jobs

    with failures_as_exit():
        job = jobs.jobs_backend().get_job(job_id)
    console.print_json(job.model_dump_json())


@jobs_app.command("logs")
def jobs_logs_command(
    job_id: JobId,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Until the job ends.")] = False,
) -> None:
    """A job's log (runner, kernel or script output)."""
    from .jobs import jobs_backend

    with failures_as_exit():
        for chunk in jobs_backend().follow_log(job_id, follow=follow):
            sys.stdout.write(chunk)
            sys.stdout.flush()


@jobs_app.command("cancel")
def jobs_cancel_command(job_id: JobId) -> None:
    """Cancel a job: its runner and its clusters stop."""
    from . import jobs

    with failures_as_exit():
        job = jobs.jobs_backend().cancel(job_id)
    console.print(
        f"{job.id} {job.state.value}" + (f": {job.reason}" if job.reason else ""), highlight=False
    )


@results_app.command("get")
def results_get_command(
    job_id: JobId,
    dest: Annotated[Path, typer.Argument(help="New or empty folder to copy the results into.")],
) -> None:
    """Download a job's executed notebook, result files, logs and provenance record."""
    from . import jobs

    with failures_as_exit():
        where = jobs.jobs_backend().get_results(job_id, dest)
    console.print(f"results of {job_id} in {where}", highlight=False)
