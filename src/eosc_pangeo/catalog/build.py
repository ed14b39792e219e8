"""``eosc-pangeo catalog build``: describe the lake as STAC, Intake and a search index.

Everything goes under ``<lake>/_catalog/``::

    stac/catalog.json         static STAC: root -> domain catalogs -> collections -> items
    intake/catalog.yaml       Intake root catalog nesting one catalog per domain
    esm/collection.json       intake-esm catalogue of the climate model output (+ .csv)
    index/                    the stac-geoparquet index that search and the STAC API query

The build is incremental: a collection whose manifest (version and update time) has not changed
since the last build is neither read again nor rewritten.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field

import pystac

from ..lake.manifest import Manifest, list_collections
from ..lake.storage import Lake
from .errors import CatalogNotBuilt
from .esm import ESM_DIR, write_esm_catalog
from .index import CATALOG_DIR, COLLECTIONS_FILE, LAKE_SOURCE, CatalogIndex, ItemQuery
from .intake import INTAKE_DIR, write_intake_catalogs
from .stac import FsspecStacIO, describe_collection, describe_items, lake_catalog

STAC_DIR = "stac"
Progress = Callable[[str, int, int], None]


@dataclass
class BuildReport:
    """What a build did."""

    lake: str
    stac: str = field(metadata={"doc": "URL of the root STAC catalog."})
    intake: str = field(metadata={"doc": "URL of the root Intake catalog."})
    index: str = field(metadata={"doc": "URL of the index folder."})
    esm: str | None = field(
        default=None,
        metadata={
            "doc": "URL of the intake-esm collection JSON; None if no collection is model output."
        },
    )
    described: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    items: int = 0


def build_catalog(
    lake: str | Lake | None = None, *, progress: Progress | None = None, data_url: str | None = None
) -> BuildReport:
    """Describe every collection of the lake in STAC, Intake and the search index.

    Parameters
    ----------
    lake
        Lake URL; default: the configured ``EOSC_PANGEO_LAKE``.
    progress
        Called as ``progress("describe", done, total)``.
    data_url
        Public URL of the lake's data service (``eosc-pangeo serve-data``); default: the
        configured ``EOSC_PANGEO_DATA_URL``. Collections then also get assets (and DCAT-AP
        distributions) at that service, which clients without access to the storage can follow.

    Returns
    -------
    BuildReport
        URLs of what was written and which collections were (re)described.
    """
    lake = Lake.from_url(lake)
    if data_url is None:
        from ..config import get_settings

        data_url = get_settings().data_url
    report_progress = progress or (lambda stage, done, total: None)
    manifests = list_collections(lake)
    index = CatalogIndex.of_lake(lake)
    fingerprints = {c.id: c.fingerprint for c in index.collections(LAKE_SOURCE)}
    stac_root = lake.path(CATALOG_DIR, STAC_DIR)
    report = BuildReport(
        lake=lake.url,
        stac=lake.uri(CATALOG_DIR, STAC_DIR, "catalog.json"),
        intake="",
        index=index.url,
    )

    for done, manifest in enumerate(manifests, 1):
        stac_file = _collection_file(stac_root, manifest)
        if fingerprints.get(manifest.id) == fingerprint(manifest, data_url) and lake.fs.exists(
            stac_file
        ):
            report.unchanged.append(manifest.id)
        else:
            collection = describe_collection(lake, manifest, data_url)
            items = describe_items(lake, manifest)
            index.put(
                LAKE_SOURCE,
                collection.to_dict(include_self_link=False),
                [item.to_dict(include_self_link=False) for item in items],
                fingerprint(manifest, data_url),
            )
            report.described.append(manifest.id)
            report.items += len(items)
        report_progress("describe", done, len(manifests))

    report.removed = sorted(set(fingerprints) - {m.id for m in manifests})
    index.drop(LAKE_SOURCE, report.removed)
    _write_static_catalog(lake, stac_root, manifests, set(report.described), report.removed, index)
    report.intake = write_intake_catalogs(lake, manifests, lake.path(CATALOG_DIR, INTAKE_DIR))
    report.esm = write_esm_catalog(lake, manifests, lake.path(CATALOG_DIR, ESM_DIR))
    return report


def built_index(lake: str | Lake | None = None) -> CatalogIndex:
    """The lake's own index, for commands that read it (search, serve).

    Raises
    ------
    CatalogNotBuilt
        If ``eosc-pangeo catalog build`` never ran on the lake, or the URL holds no lake.
    """
    lake = Lake.from_url(lake)
    index = CatalogIndex.of_lake(lake)
    with lake.reaching():
        built = index.fs.exists(f"{index.root}/{COLLECTIONS_FILE}")
    if built:
        return index
    if not lake.collection_ids():
        raise CatalogNotBuilt(str(lake.not_a_lake()))
    raise CatalogNotBuilt(
        f"the catalogue of the lake {lake.url} was never built: run "
        f"eosc-pangeo catalog build --lake {lake.url}"
    )


def fingerprint(manifest: Manifest, data_url: str | None = None) -> str:
    """What identifies a description of a collection: a new ingest changes it, and so does a
    new data service URL."""
    described = f"{manifest.version}@{manifest.updated}"
    return f"{described} {data_url}" if data_url else described


def _write_static_catalog(
    lake: Lake,
    stac_root: str,
    manifests: list[Manifest],
    changed: set[str],
    removed: list[str],
    index: CatalogIndex,
) -> None:
    """Save the static STAC catalog, rewriting only the collections that changed.

    The whole tree is laid out (so that every link is right) but only the root, the domain
    catalogs and the changed collections with their Items are written: pystac writes a few
    hundred objects a second, too slow to rewrite a large lake on every build.
    """
    stac_io = FsspecStacIO(lake)
    collections = []
    for manifest in manifests:
        indexed = index.collection(manifest.id)
        collection = pystac.Collection.from_dict(indexed.stac)
        if manifest.id in changed:
            items, _ = index.search_items(
                ItemQuery(collections=[manifest.id], limit=max(indexed.item_count, 1))
            )
            collection.add_items(pystac.Item.from_dict(item) for item in items)
        collections.append(collection)
    root = lake_catalog(lake, collections)
    # On an object store the hrefs need the protocol, or pystac takes them for local paths.
    root.normalize_hrefs(stac_root if lake.is_local else lake.fs.unstrip_protocol(stac_root))
    for catalog in [root, *root.get_children()]:
        catalog.save_object(include_self_link=False, stac_io=stac_io)
    for collection in collections:
        if collection.id in changed:
            collection.save(pystac.CatalogType.SELF_CONTAINED, stac_io=stac_io)
    for collection_id in removed:
        for folder in lake.fs.glob(f"{stac_root}/*/{collection_id}"):
            lake.fs.rm(folder, recursive=True)


def _collection_file(stac_root: str, manifest: Manifest) -> str:
    return posixpath.join(stac_root, manifest.domain, manifest.id, "collection.json")
