"""Provenance that travels with results: which lake collections went in, and which calls.

Each analysis function records itself in its result's ``attrs`` (xarray and pandas both have
them) under :data:`PROVENANCE_ATTR`, as a JSON string so that it survives NetCDF and Zarr.
:func:`~eosc_pangeo.analysis.export` turns it into an RO-Crate beside the written file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..lake.manifest import utcnow

PROVENANCE_ATTR = "eosc_pangeo_provenance"
# Tables have no attributes per column: these two (JSON) carry the CF attributes of columns and
# the columns that are coordinates (where a value is), for export to NetCDF.
COLUMN_ATTRS = "eosc_pangeo_column_attrs"
COORDINATE_COLUMNS = "eosc_pangeo_coordinate_columns"


def provenance_of(obj: Any) -> dict[str, list]:
    """The provenance carried by ``obj``: ``{"inputs": [...], "steps": [...]}``.

    A lake dataset (from :func:`eosc_pangeo.open_dataset`) is an input by itself: its ``id``
    and ``product_version`` attributes name the collection and its version.
    """
    attrs = getattr(obj, "attrs", None) or {}
    if PROVENANCE_ATTR in attrs:
        return json.loads(attrs[PROVENANCE_ATTR])
    if "id" in attrs and "product_version" in attrs:
        return {
            "inputs": [{"collection": str(attrs["id"]), "version": int(attrs["product_version"])}],
            "steps": [],
        }
    return {"inputs": [], "steps": []}


def merge(provenances: Iterable[Mapping[str, list]]) -> dict[str, list]:
    """One provenance from several: inputs without repeats, steps in order."""
    inputs, steps = [], []
    for p in provenances:
        inputs += [i for i in p["inputs"] if i not in inputs]
        steps += [s for s in p["steps"] if s not in steps]
    return {"inputs": inputs, "steps": steps}


def record_step(
    result: Any, function: str, *, inputs: Iterable[Any], parameters: Mapping[str, Any]
) -> None:
    """Store on ``result.attrs`` the provenance of ``inputs`` plus this call."""
    provenance = merge(provenance_of(i) for i in inputs)
    provenance["steps"].append(
        {
            "function": function,
            "time": utcnow(),
            "parameters": {k: _jsonable(v) for k, v in parameters.items()},
        }
    )
    result.attrs[PROVENANCE_ATTR] = json.dumps(provenance)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)
