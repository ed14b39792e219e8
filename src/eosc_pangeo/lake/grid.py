"""Gridded collections read: open a collection's Zarr stores as one lazy Dataset, select from
it, and check its stores.

``map.zarr``
    few time steps per chunk and whole (or large) fields: fast maps and spatial statistics.
``timeseries.zarr``
    about a year (or ten, for monthly data) per chunk and small spatial tiles: a point time
    series over years reads a handful of chunks instead of one per time step.

Ingesting is in :mod:`~eosc_pangeo.lake.grid_write` (:func:`ingest_grid`, importable from here
as before the split).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import cf_xarray  # noqa: F401  (registers the .cf accessor used to find axes)
import numpy as np
import xarray as xr
import zarr

from ..geometry import check_bbox, grid_longitude_ranges
from .errors import Finding, LakeError, SelectionError, UnknownVariable
from .grid_backend import GridBackend
from .grid_plan import CHUNK_BYTES_BOUNDS, source_codecs_accepted
from .grid_reference import check_sources, is_by_reference, open_references, snapshot_store
from .grid_sources import seconds
from .grid_write import ingest_grid  # noqa: F401  (its home before the split)
from .manifest import Manifest, ZarrStore, read_manifest
from .storage import Lake, zarr_store


def open_grid(
    lake: str | Lake,
    collection: str,
    *,
    chunking: Literal["auto", "map", "timeseries"] = "auto",
    bbox: tuple[float, float, float, float] | None = None,
    time: tuple[object, object] | None = None,
    variables: Sequence[str] | None = None,
    chunks: int | str | dict | None = None,
    mask_and_scale: bool = True,
) -> xr.Dataset:
    """Open a gridded collection as a lazy :class:`xarray.Dataset`.

    Parameters
    ----------
    lake, collection
        Where to read.
    chunking
        Which store to read when the collection has both. ``"auto"`` reads each request
        (what ``.sel``/``.isel`` and ``bbox``/``time`` select, once loaded) from the store it
        touches fewer chunks of: a point or small-box series from the time-series store, a map
        from the map store (see :mod:`~eosc_pangeo.lake.grid_backend`). The values are the
        same, bit for bit, whichever store is read.
    bbox
        ``(west, south, east, north)`` in degrees: only this region is returned; ``west > east``
        crosses the antimeridian.
    time
        ``(start, end)``: only this period is returned (either end may be None).
    variables
        Data variables to keep (default: all).
    chunks
        As for :func:`xarray.open_dataset`: None (the default) gives lazily indexed arrays,
        read when their values are needed; ``{}`` gives dask arrays chunked as the map store
        (the store read, if ``chunking`` names one), for computations over whole arrays.
    mask_and_scale
        As for :func:`xarray.open_dataset`: False keeps packed variables as stored (integers
        with their ``scale_factor``, ``add_offset`` and ``_FillValue`` attributes), as the
        data service sends them over OPeNDAP.

    Raises
    ------
    SelectionError
        For a bad ``bbox``, a store the collection does not have, or (:class:`UnknownVariable`)
        a variable it does not hold.
    """
    if bbox is not None:
        bbox = check_bbox(bbox, SelectionError)
    lake = Lake.from_url(lake)
    collection_path = lake.find_collection(collection)
    manifest = read_manifest(lake, collection_path)
    if manifest.kind != "grid":
        raise LakeError(
            f"collection {collection!r} holds in-situ observations, not a grid: "
            f"read it with eosc_pangeo.lake.read_insitu(lake, {collection!r}, ...)"
        )
    if chunking != "auto" and chunking not in manifest.stores:
        raise SelectionError(
            f"collection {manifest.id!r} has no {chunking!r} store "
            f"(it has {', '.join(manifest.stores)})"
        )
    names = list(manifest.stores) if chunking == "auto" else [chunking]
    if is_by_reference(manifest):
        with source_codecs_accepted():
            ds = open_references(
                lake,
                collection_path,
                manifest.stores["map"],
                chunks=chunks,
                mask_and_scale=mask_and_scale,
            )
        return select(ds, bbox, time, variables)
    stores = {
        name: zarr_store(lake, f"{collection_path}/{manifest.stores[name].path}") for name in names
    }
    with source_codecs_accepted():
        if len(stores) == 1:
            ds = xr.open_zarr(
                next(iter(stores.values())),
                consolidated=True,
                chunks=chunks,
                mask_and_scale=mask_and_scale,
            )
        else:
            ds = xr.open_dataset(
                stores, engine=GridBackend, chunks=chunks, mask_and_scale=mask_and_scale
            )
    return select(ds, bbox, time, variables)


def check_grid(lake: Lake, collection_path: str, manifest: Manifest) -> list[Finding]:
    """Check every store of a gridded collection: consolidated metadata, CF attributes,
    monotonic coordinates, unique times, chunk sizes, and agreement with the manifest; for a
    collection ingested by reference, also that every source is still in place, unchanged."""
    findings = check_sources(lake, manifest) if is_by_reference(manifest) else []
    for info in manifest.stores.values():
        try:
            with source_codecs_accepted():
                checks = list(_store_checks(lake, collection_path, info))
            for check, ok, message, target in checks:
                findings.append(Finding(manifest.id, check, ok, message, target))
        except Exception as error:  # noqa: BLE001  (a store too broken to check is the finding)
            findings.append(
                Finding(
                    manifest.id, "readable", False, f"{type(error).__name__}: {error}", info.path
                )
            )
    return findings


def _store_checks(lake: Lake, collection_path: str, info: ZarrStore):
    """Yield (check, ok, message, target) for one Zarr store (or Icechunk store of
    references, opened at the manifest's snapshot: Icechunk needs no consolidated metadata)."""
    if info.references:
        store = snapshot_store(lake, collection_path, info)
        group = zarr.open_group(store, mode="r")
        yield "snapshot", True, f"opens at the manifest's snapshot {info.snapshot}", info.path
    else:
        store = zarr_store(lake, f"{collection_path}/{info.path}")
        try:
            group = zarr.open_group(store, mode="r", use_consolidated=True)
        except ValueError as error:
            yield "consolidated-metadata", False, f"no consolidated metadata ({error})", info.path
            return
        yield "consolidated-metadata", True, "opens from consolidated metadata", info.path
    ds = xr.open_zarr(store, consolidated=not info.references, chunks=None)
    time_name = ds.cf["T"].name
    yield (
        "manifest",
        ds.sizes[time_name] == info.time_length,
        f"time length {ds.sizes[time_name]}, manifest says {info.time_length}",
        info.path,
    )
    bounds = {ds[c].attrs.get("bounds") for c in ds.coords}
    for name in sorted(set(ds.data_vars) - bounds):
        missing = [a for a in ("units", "standard_name") if a not in ds[name].attrs]
        yield (
            "cf-attributes",
            not missing,
            f"missing {', '.join(missing)}" if missing else "units and standard_name set",
            f"{info.path}:{name}",
        )
    for axis in ("T", "Y", "X"):
        values = ds.cf[axis].values
        steps = np.diff(values) if values.dtype.kind in "fiu" else seconds(values)
        monotonic = bool(np.all(steps > 0) or np.all(steps < 0))
        yield (
            "monotonic",
            monotonic,
            f"{axis} axis {'is' if monotonic else 'is not'} strictly monotonic",
            f"{info.path}:{ds.cf[axis].name}",
        )
    duplicates = int(ds.indexes[time_name].duplicated().sum())
    yield "unique-times", duplicates == 0, f"{duplicates} duplicated times", info.path
    low, high = CHUNK_BYTES_BOUNDS
    for name, array in group.arrays():
        if array.ndim >= 3:
            nbytes = math.prod(array.chunks) * array.dtype.itemsize
            yield (
                "chunk-size",
                low <= nbytes <= high,
                f"chunks of {nbytes / 1024:.0f} KiB "
                f"(bounds {low // 1024} KiB..{high // 1024**2} MiB)",
                f"{info.path}:{name}",
            )


def select(ds: xr.Dataset, bbox, time, variables) -> xr.Dataset:
    """The part of a gridded Dataset in ``bbox`` and the ``time`` period, with ``variables``
    only (each may be None for all), as :func:`open_grid` selects it."""
    if variables is not None:
        unknown = set(variables) - set(ds.data_vars)
        if unknown:
            raise UnknownVariable(
                f"no variable {', '.join(sorted(unknown))} (variables: "
                f"{', '.join(sorted(ds.data_vars))})"
            )
        ds = ds[list(variables)]
    if time is not None:
        ds = ds.cf.sel(T=slice(*time))
    if bbox is not None:
        west, south, east, north = bbox
        lat = ds.cf["Y"]
        ds = ds.cf.sel(Y=slice(north, south) if lat[0] > lat[-1] else slice(south, north))
        ds = _select_longitudes(ds, west, east)
    return ds


def _select_longitudes(ds: xr.Dataset, west: float, east: float) -> xr.Dataset:
    """The longitudes from ``west`` to ``east`` (west > east crosses the antimeridian), on a grid
    in either convention (-180..180 or 0..360), labelled in the box's own convention and
    contiguous: ``(-10, 10)`` on a 0..360 grid gives -10..10, ``(170, -170)`` gives 170..190."""
    x = ds.cf["X"].name
    parts = []
    for start, stop, shift in grid_longitude_ranges(ds[x].values, west, east):
        part = ds.sel({x: slice(start, stop)})
        parts.append(part.assign_coords({x: part[x] + shift}) if shift else part)
    if len(parts) == 1:
        return parts[0]
    return xr.concat(
        parts, dim=x, data_vars="minimal", coords="minimal", compat="override", join="override"
    )
