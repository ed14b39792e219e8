"""Dask clusters for notebooks: one :func:`cluster` for Dask Gateway, Slurm/PBS and local runs."""

from .api import cluster
from .spec import ClusterSpec, ClusterStartError, UnsupportedOption

__all__ = ["ClusterSpec", "ClusterStartError", "UnsupportedOption", "cluster"]
