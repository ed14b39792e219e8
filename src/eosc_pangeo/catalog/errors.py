"""Errors of the meta-catalogue: each says what was wrong and what to do about it."""

from __future__ import annotations


class CatalogError(ValueError):
    """A deliberate error of the catalogue: bad query, unknown collection, clashing source."""


class UnknownCollection(CatalogError):
    """A query named a collection the index does not hold."""


class CatalogNotBuilt(CatalogError):
    """A lake whose catalogue index was never built (or a URL that holds no lake)."""
