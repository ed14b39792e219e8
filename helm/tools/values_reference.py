"""Write docs/helm-values.md, the reference of the chart's values, from values.schema.json.

The schema validates the values when Helm installs the chart and documents them here: one
source for both. Defaults come from values.yaml. Run after changing either::

    .venv/bin/python helm/tools/values_reference.py     # or: make helm-values
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).parents[1] / "eosc-pangeo"
REFERENCE = Path(__file__).parents[2] / "docs" / "helm-values.md"

HEADER = """\
# Helm values reference

Generated from `helm/eosc-pangeo/values.schema.json` by `helm/tools/values_reference.py`
(`make helm-values`); do not edit. Defaults are those of `values.yaml`. The values of the
subcharts (`jupyterhub`, `dask-gateway`) are documented by their own charts; the ones listed
here are those this chart relies on.

| Value | Type | Default | Description |
|---|---|---|---|
"""


def rows(schema: dict[str, Any], defaults: Any, path: str = "") -> list[str]:
    """One table row per value, depth first, in the schema's order."""
    lines = []
    for name, prop in schema.get("properties", {}).items():
        value_path = f"{path}.{name}" if path else name
        default = defaults.get(name) if isinstance(defaults, dict) else None
        kind = prop.get("type", "")
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        if "enum" in prop:
            kind = " \\| ".join(f"`{v}`" for v in prop["enum"])
        shown = "" if isinstance(default, dict) and prop.get("properties") else _cell(default)
        description = prop.get("description", "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{value_path}` | {kind} | {shown} | {description} |")
        if prop.get("properties"):
            lines += rows(prop, default or {}, value_path)
        elif isinstance(prop.get("additionalProperties"), dict) and prop[
            "additionalProperties"
        ].get("properties"):
            lines += rows(prop["additionalProperties"], {}, f"{value_path}.<name>")
        elif prop.get("items", {}).get("properties"):
            lines += rows(prop["items"], {}, f"{value_path}[]")
    return lines


def _cell(value: Any) -> str:
    if value is None or value == {} and not isinstance(value, list):
        return ""
    text = json.dumps(value)
    if len(text) > 60:
        return "see values.yaml"
    return f"`{text}`".replace("|", "\\|")


def reference() -> str:
    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    return HEADER + "\n".join(rows(schema, defaults)) + "\n"


def main() -> None:
    REFERENCE.write_text(reference())
    print(REFERENCE, file=sys.stderr)


if __name__ == "__main__":
    main()
