"""Dask clusters for notebooks: one :func:`cluster` for Dask Gateway, Slurm/PBS and local runs.

``cluster`` loads distributed and the backends' clients (dask-gateway, dask-jobqueue) when first
used.
"""

from typing import TYPE_CHECKING

from .._lazy import export_lazily

if TYPE_CHECKING:
    from .api import cluster
    from .spec import ClusterOptionError, ClusterSpec, ClusterStartError, UnsupportedOption

__all__ = [
    "ClusterOptionError",
    "ClusterSpec",
    "ClusterStartError",
    "UnsupportedOption",
    "cluster",
]

export_lazily(
    __name__,
    {
        "cluster": "api",
        "ClusterOptionError": "spec",
        "ClusterSpec": "spec",
        "ClusterStartError": "spec",
        "UnsupportedOption": "spec",
    },
)
