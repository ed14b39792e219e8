"""Packages whose exports load on first use, so that ``import eosc_pangeo`` and
``eosc-pangeo --help`` import no heavy library (xarray, zarr, duckdb, rdflib, dask-gateway...).

Written by hand because PEP 562's module ``__getattr__`` alone is not enough here: several
exports share their name with the submodule defining them (``catalog.search``, ``lake.validate``),
and the import system replaces a package's attribute with a submodule when it first loads one. So
the package's module class gets a property per export, whose setter ignores that replacement.
"""

from __future__ import annotations

import importlib
import sys
import types


def export_lazily(package: str, exports: dict[str, str]) -> None:
    """Make ``package.<name>`` import ``package.<exports[name]>`` when first used.

    Parameters
    ----------
    package
        The package's ``__name__``.
    exports
        Exported name -> the submodule (relative to ``package``) that defines it.
    """
    module = sys.modules[package]
    overrides: dict[str, object] = {}

    def exported(name: str, submodule: str) -> property:
        def get(self):
            if name in overrides:
                return overrides[name]
            return getattr(importlib.import_module(f"{package}.{submodule}"), name)

        def set_(self, value) -> None:
            if isinstance(value, types.ModuleType) and value.__name__ == f"{package}.{name}":
                return  # the import system announcing the submodule of the same name
            overrides[name] = value  # e.g. a test's monkeypatch

        def delete(self) -> None:
            overrides.pop(name, None)

        return property(get, set_, delete)

    namespace = {name: exported(name, submodule) for name, submodule in exports.items()}
    module.__class__ = type("LazyPackage", (types.ModuleType,), namespace)
