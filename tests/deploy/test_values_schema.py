"""The values schema validates and documents every value; the reference is generated from it."""

from __future__ import annotations

import json
import sys

import yaml

from .conftest import CHART, helm

sys.path.insert(0, str(CHART.parent / "tools"))
from values_reference import REFERENCE, reference  # noqa: E402

sys.path.pop(0)


def schema_properties(schema: dict, path: str = ""):
    for name, prop in schema.get("properties", {}).items():
        yield f"{path}{name}", prop
        yield from schema_properties(prop, f"{path}{name}.")
        for nested in (prop.get("items"), prop.get("additionalProperties")):
            if isinstance(nested, dict):
                yield from schema_properties(nested, f"{path}{name}[].")


def test_every_value_of_the_schema_is_described():
    schema = json.loads((CHART / "values.schema.json").read_text())
    undocumented = [path for path, prop in schema_properties(schema) if not prop.get("description")]
    assert undocumented == []


def test_every_default_value_is_known_to_the_schema():
    """Our own values are closed (additionalProperties false): a value the schema does not know
    fails validation, so the defaults with the one required value set must pass."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    image = {"name": "registry.example.org/eosc-pangeo", "tag": "0.1.0"}
    helm.Chart.load(CHART).validate_schema({**values, "image": image})


def test_the_committed_values_reference_is_current():
    assert REFERENCE.read_text() == reference(), "run: make helm-values"
