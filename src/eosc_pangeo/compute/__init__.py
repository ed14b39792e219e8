"""Dask clusters for notebooks: one :func:`cluster` for Dask Gateway, Slurm/PBS and local runs."""

from eosc_pangeo.compute.api import cluster
from eosc_pangeo.compute.spec import ClusterSpec, ClusterStartError, UnsupportedOption

__all__ = ["ClusterSpec", "ClusterStartError", "UnsupportedOption", "cluster"]
