"""eosc-pangeo: analyse Earth-science data next to the data.

A notebook needs nothing more than::

    import eosc_pangeo
    hits = eosc_pangeo.search(variables=["sst"], bbox=(-10, 40, 0, 50), datetime="2020-01/2020-03")
    ds = hits[0].open()                      # only the box and months asked for, lazily
    ds = eosc_pangeo.open_dataset("sst", bbox=(-10, 40, 0, 50), time=("2020-01", "2020-03"))
    client = eosc_pangeo.cluster(workers=4).get_client()   # Gateway, Slurm/PBS or local
    pairs = eosc_pangeo.matchup(ds, argo, radius_km=25, time_window="1D")
    eosc_pangeo.export(pairs, "results/pairs.nc")           # + its RO-Crate provenance

Each entry point loads its libraries when first used: ``import eosc_pangeo`` itself is quick.
"""

from typing import TYPE_CHECKING

from ._lazy import export_lazily
from ._version import __version__

if TYPE_CHECKING:
    from .analysis import export, harmonise, matchup
    from .catalog import open_catalog, search
    from .compute import cluster
    from .lake import open_dataset

__all__ = [
    "__version__",
    "cluster",
    "export",
    "harmonise",
    "matchup",
    "open_catalog",
    "open_dataset",
    "search",
]

export_lazily(
    __name__,
    {
        "cluster": "compute",
        "open_catalog": "catalog",
        "search": "catalog",
        "open_dataset": "lake",
        "export": "analysis",
        "harmonise": "analysis",
        "matchup": "analysis",
    },
)
