"""The intake-esm catalogue of the lake's climate model output (ESM collection JSON + CSV).

Climate scientists open CMIP-style output with intake-esm; this writes, for every grid
collection whose attributes say which model run it is (:data:`REQUIRED`), one CSV row per Zarr
store and the ESM collection JSON that describes the columns (the esmcat 0.1 specification)::

    <lake>/_catalog/esm/collection.json
    <lake>/_catalog/esm/collection.csv

Then, with intake-esm only (or :func:`open_esm_catalog`, which finds the lake's)::

    cat = intake.open_esm_datastore("<lake>/_catalog/esm/collection.json")
    dsets = cat.search(variable_id="tas", chunking="map").to_dataset_dict()

Datasets are grouped as the Pangeo CMIP6 catalogue groups them (activity, institution, model,
experiment, table, grid), with the lake's ``chunking`` too (``map`` or ``timeseries``, the two
copies of a collection); the variables of a group are merged and its members joined along a new
``member_id`` dimension. Nothing is written when no collection carries CMIP attributes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from ..lake.manifest import Manifest
from ..lake.storage import Lake, atomic_write
from .index import CatalogError

ESM_DIR = "esm"
JSON_FILE = "collection.json"
CSV_FILE = "collection.csv"
#: The attributes that name a model run's output (CMIP6 global attributes); ``member_id`` may
#: instead come from ``variant_label`` (see :func:`member_id`).
REQUIRED = ("source_id", "experiment_id", "table_id", "variable_id", "grid_label")
GROUP_BY = (
    "activity_id",
    "institution_id",
    "source_id",
    "experiment_id",
    "table_id",
    "grid_label",
    "chunking",
)
COLUMNS = (
    *dict.fromkeys((*GROUP_BY, "member_id", "variable_id", "frequency", "collection", "domain")),
    "path",
)


def member_id(attributes: dict) -> str | None:
    """The member of a run: ``member_id`` if given, else ``variant_label`` prefixed with the
    ``sub_experiment_id`` when there is one, as the CMIP6 data reference syntax builds it."""
    if attributes.get("member_id"):
        return str(attributes["member_id"])
    variant = attributes.get("variant_label")
    if not variant:
        return None
    sub_experiment = str(attributes.get("sub_experiment_id", "none"))
    return str(variant) if sub_experiment == "none" else f"{sub_experiment}-{variant}"


def esm_rows(lake: Lake, manifest: Manifest) -> list[dict[str, str]]:
    """The catalogue rows of one collection (one per Zarr store); none if it is not a grid or
    lacks one of the CMIP attributes."""
    attributes = manifest.attributes
    member = member_id(attributes)
    if manifest.kind != "grid" or member is None or not all(attributes.get(a) for a in REQUIRED):
        return []
    return [
        {
            **{name: str(attributes.get(name, "")) for name in COLUMNS},
            "member_id": member,
            "chunking": store.chunking,
            "collection": manifest.id,
            "domain": manifest.domain,
            "path": lake.uri(manifest.domain, manifest.id, store.path),
        }
        for store in manifest.stores.values()
    ]


def write_esm_catalog(lake: Lake, manifests: Iterable[Manifest], folder: str) -> str | None:
    """Write the ESM collection JSON and CSV under ``folder`` (a path in the lake's file system)
    and return the JSON's URL; remove them and return None when no collection qualifies."""
    rows = [row for manifest in manifests for row in esm_rows(lake, manifest)]
    json_path, csv_path = f"{folder}/{JSON_FILE}", f"{folder}/{CSV_FILE}"
    if not rows:
        for path in (json_path, csv_path):
            if lake.fs.exists(path):
                lake.fs.rm(path)
        return None
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda row: row["path"]))
    atomic_write(lake.fs, csv_path, table.getvalue().encode())
    description = {
        "esmcat_version": "0.1.0",
        "id": "eosc-pangeo-lake",
        "description": f"Climate model output in the eosc-pangeo data lake at {lake.url}",
        # A URL: intake-esm resolves a relative one against a local folder, also for a JSON
        # read from an object store.
        "catalog_file": lake.fs.unstrip_protocol(csv_path),
        "attributes": [{"column_name": name} for name in COLUMNS if name != "path"],
        "assets": {"column_name": "path", "format": "zarr"},
        "aggregation_control": {
            "variable_column_name": "variable_id",
            "groupby_attrs": list(GROUP_BY),
            "aggregations": [
                {"type": "union", "attribute_name": "variable_id"},
                {
                    "type": "join_new",
                    "attribute_name": "member_id",
                    "options": {"coords": "minimal", "compat": "override"},
                },
            ],
        },
    }
    # Written last: a reader that finds the JSON finds the CSV it names.
    atomic_write(lake.fs, json_path, json.dumps(description, indent=2).encode())
    return lake.fs.unstrip_protocol(json_path)


def open_esm_catalog(lake: str | Lake | None = None):
    """The lake's intake-esm catalogue, as ``intake.open_esm_datastore`` opens it.

    Parameters
    ----------
    lake
        Lake URL; default: the configured ``EOSC_PANGEO_LAKE``. Its storage options are passed
        on; give them to ``to_dataset_dict(storage_options=...)`` too for a lake on S3.

    Raises
    ------
    CatalogError
        If the lake has no such catalogue: ``eosc-pangeo catalog build`` writes it when the
        lake holds grids with CMIP attributes.
    """
    import intake

    lake = Lake.from_url(lake)
    path = lake.path("_catalog", ESM_DIR, JSON_FILE)
    if not lake.fs.exists(path):
        raise CatalogError(
            f"{lake.url} has no intake-esm catalogue ({path}): run "
            "'eosc-pangeo catalog build'; it lists grids with CMIP attributes "
            "(source_id, experiment_id, table_id, variable_id, grid_label)"
        )
    return intake.open_esm_datastore(
        lake.fs.unstrip_protocol(path), storage_options=lake.storage_options or None
    )
