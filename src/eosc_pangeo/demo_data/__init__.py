"""Deterministic, physically plausible sample data, written the way data centres publish it.

Four kinds of source files are generated offline from a seed alone:

``sst``
    ``sst/YYYYMMDD-sst.nc``: one CF/ACDD NetCDF-4 file per day of a GHRSST-L4-like analysis.
``climate``
    ``climate/tas_Amon_EOSC-ESM_historical_r1i1p1f1_gn_YYYY01-YYYY12.nc``: CMIP6-style monthly
    near-surface air temperature, one file per decade.
``argo``
    ``argo/<WMO>-prof.nc``: Argo multi-profile files (format 3.1), one per float.
``stations``
    ``stations/<station_id>.csv``: hourly coastal station series with OceanSITES variable codes.

and, apart from the sizes, :func:`write_dsg` writes ``dsg/<featureType>-<layout>.nc``: every CF
Discrete Sampling Geometry feature type in every layout, small.

One module per kind (:mod:`.sst`, :mod:`.climate`, :mod:`.argo`, :mod:`.stations`, :mod:`.dsg`)
shares the helpers of :mod:`._common`: seeds, atomic files, the land mask and the ocean.

Every random stream is ``numpy.random.default_rng([seed, stream, index])``, with ``stream`` a
fixed number per kind and purpose and ``index`` the file's number, so that each file can be
regenerated alone, in any order, and the same seed gives byte-identical values. The land mask is
a fixed function of position (not of the seed), so every kind, size and seed shares one ocean.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..demo_sizes import SIZES
from ._common import Progress
from .argo import ArgoSpec, write_argo
from .climate import ClimateSpec, write_climate
from .dsg import write_dsg
from .sst import SstSpec, write_sst
from .stations import StationSpec, write_stations

__all__ = [
    "KINDS",
    "SIZES",
    "ArgoSpec",
    "ClimateSpec",
    "Progress",
    "Spec",
    "SstSpec",
    "StationSpec",
    "specs_for_size",
    "write_argo",
    "write_climate",
    "write_demo_data",
    "write_dsg",
    "write_sst",
    "write_stations",
]

KINDS = ("sst", "climate", "argo", "stations")

Spec = SstSpec | ClimateSpec | ArgoSpec | StationSpec


def specs_for_size(size: str) -> dict[str, Spec]:
    """Return the spec of each kind that :func:`write_demo_data` uses for ``size``.

    Parameters
    ----------
    size
        One of :data:`SIZES`.

    Returns
    -------
    dict
        Kind name -> spec.
    """
    if size == "small":
        return {
            "sst": SstSpec(days=10, resolution=2.0),
            "climate": ClimateSpec(2000, 2019, 5.0),
            "argo": ArgoSpec(floats=5, profiles=10),
            "stations": StationSpec(stations=3, days=10),
        }
    if size == "medium":
        return {
            "sst": SstSpec(days=60, resolution=0.5),
            "climate": ClimateSpec(1950, 2019, 2.5),
            "argo": ArgoSpec(floats=50, profiles=36),
            "stations": StationSpec(stations=10, days=60),
        }
    if size == "large":
        # 3400 floats (about the size of the real Argo array) put argo + stations above
        # 10 million observations with a margin of a few per cent, whatever the seed.
        return {
            "sst": SstSpec(days=366, resolution=0.25),
            "climate": ClimateSpec(1850, 2019, 1.0),
            "argo": ArgoSpec(floats=3400, profiles=36),
            "stations": StationSpec(stations=40, days=366),
        }
    raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")


def write_demo_data(
    out_dir: str | os.PathLike[str],
    size: str = "small",
    *,
    seed: int = 0,
    kinds: Sequence[str] = KINDS,
    progress: Progress | None = None,
    workers: int | None = None,
) -> dict[str, list[Path]]:
    """Write the sample data of ``size`` under ``out_dir``, one sub-folder per kind.

    Parameters
    ----------
    out_dir
        Folder to write into (created if needed); existing files of the same names are replaced.
    size
        One of :data:`SIZES`: ``small`` takes a second, ``large`` a few minutes and a few GB.
    seed
        The same seed gives the same values, whatever the order or subset of files written.
    kinds
        Kinds to write, among :data:`KINDS`.
    progress
        Optional ``progress(kind, done, total)``, called after each file.
    workers
        Processes writing files at once; by default one per available CPU when a kind has
        many files, else one. The values do not depend on it.

    Returns
    -------
    dict
        Kind -> sorted paths of the files written.
    """
    specs = specs_for_size(size)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown kinds {unknown}; choose among {', '.join(KINDS)}")
    writers = {
        "sst": write_sst,
        "climate": write_climate,
        "argo": write_argo,
        "stations": write_stations,
    }
    return {
        kind: writers[kind](specs[kind], out_dir, seed=seed, progress=progress, workers=workers)
        for kind in kinds
    }
