"""CF Discrete Sampling Geometries, any feature type in any layout, as one value per observation.

Most in-situ data is published as CF DSG (CF conventions chapter 9 and appendix H): moorings
and OceanSITES as ``timeSeries`` or ``timeSeriesProfile``, gliders (IOOS Glider DAC, EGO) as
``trajectory`` or ``trajectoryProfile``, CTD casts as ``profile``, and so are Copernicus Marine's
in-situ products. Each feature type comes in four layouts:

orthogonal multidimensional
    every instance has the same elements: data ``(instance, element)``, the element
    coordinate ``(element)`` shared (e.g. ``time(time)``, ``z(z)``);
incomplete multidimensional
    data and element coordinates ``(instance, element)``, padded with fill values;
contiguous ragged
    the elements of all instances one after another along the sample dimension, a count
    variable (attribute ``sample_dimension``) saying how many each instance has;
indexed ragged
    elements in any order, an index variable (attribute ``instance_dimension``) naming the
    instance of each.

The two-level types (``timeSeriesProfile``, ``trajectoryProfile``) nest profiles in stations or
trajectories, each level in one of these layouts (appendix H.5, H.6).

xarray decodes times and fill values and cf-xarray finds coordinates by their CF attributes
(``standard_name``, ``axis``, ``units``); neither turns the ragged and multidimensional layouts
into a flat table (cf-xarray knows ``cf_role`` but not the layouts), so that part is written here:
:func:`flatten` maps every variable to the observation it belongs to, through the count and
index variables, and broadcasts the rest. What the lake keeps of it, and how, is
:mod:`.insitu_sources`' business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cf_xarray  # noqa: F401  (registers the .cf accessor)
import numpy as np
import xarray as xr

from .errors import IngestError

#: The feature types read, as spelt in ``featureType`` (CF 1.11, section 9.4).
FEATURE_TYPES = ("timeSeries", "trajectory", "profile", "timeSeriesProfile", "trajectoryProfile")
#: The instance whose id names the platform: the station of a time series (of profiles), the
#: vehicle of a trajectory (of profiles), the cast of a lone profile.
PLATFORM_ROLE = {
    "timeSeries": "timeseries_id",
    "timeSeriesProfile": "timeseries_id",
    "trajectory": "trajectory_id",
    "trajectoryProfile": "trajectory_id",
    "profile": "profile_id",
}
# Standard names that place an observation on the vertical (CF section 4.3 and the table).
DEPTH_NAMES = {"depth", "height", "altitude", "height_above_mean_sea_level"}
PRESSURE_NAMES = {"sea_water_pressure", "sea_water_pressure_due_to_sea_water"}


@dataclass(frozen=True)
class Geometry:
    """What a DSG file is and which of its variables say where and when.

    Attributes are variable names; ``platform`` is None when the file has no ``cf_role``
    variable for :data:`PLATFORM_ROLE` (CF recommends, not requires, one).
    """

    feature_type: str
    time: str
    latitude: str
    longitude: str
    depth: str | None
    pressure: str | None
    platform: str | None


def feature_type(ds: xr.Dataset) -> str | None:
    """The file's feature type among :data:`FEATURE_TYPES`, None if it declares none of them.

    ``featureType`` is matched without regard to case, as CF asks; THREDDS' ``cdm_data_type``
    (ACDD) is taken when ``featureType`` is absent.
    """
    declared = ds.attrs.get("featureType", ds.attrs.get("cdm_data_type"))
    if not isinstance(declared, str):
        return None
    by_lower = {name.lower(): name for name in FEATURE_TYPES}
    return by_lower.get(declared.strip().lower())


def describe(ds: xr.Dataset, measured: Sequence[str], url: str) -> Geometry:
    """Find the feature type, layout, coordinates and platform id of a DSG file.

    Coordinates are looked for among those the measured variables name (their ``coordinates``
    attribute and dimension coordinates), by CF attributes, with cf-xarray.

    Raises
    ------
    IngestError
        If the time, latitude or longitude cannot be found, or is found twice.
    """
    kind = feature_type(ds)
    listed = _coordinates_of(ds, measured)
    chosen = {}
    for key in ("time", "latitude", "longitude"):
        names = _cf_coordinates(ds, listed, key) or _cf_coordinates(
            ds, [n for n in ds.variables if n not in measured], key)
        if len(names) != 1:
            problem = (f"has no {key} coordinate" if not names else
                       f"has several {key} coordinates ({', '.join(names)})")
            raise IngestError(url, f"{problem} for {', '.join(measured)}",
                              f"name exactly one {key} variable in the data variables' "
                              "coordinates attribute, with CF standard_name and units")
        chosen[key] = names[0]
    # Coordinates the data variables name come first; then any variable of the file (pressure
    # is a coordinate of profiles, but a data variable of gliders and moorings).
    depth = _one(ds, url, [n for n in listed if _is_depth(ds.variables[n])] or
                 [n for n, v in ds.variables.items() if _is_depth(v) and n not in measured],
                 "depth")
    pressure = _one(ds, url, [n for n in listed if _is_pressure(ds.variables[n])] or
                    [n for n, v in ds.variables.items() if _is_pressure(v)],
                    "sea_water_pressure")
    if depth is None and pressure is None:
        raise IngestError(url, "has no vertical coordinate (depth or sea water pressure)",
                          "give the observations a depth (standard_name depth, units m, "
                          "positive down), even a scalar one for instruments at a fixed depth")
    roles = ds.cf.cf_roles
    platform = next(iter(roles.get(PLATFORM_ROLE[kind], [])), None)
    return Geometry(kind, chosen["time"], chosen["latitude"], chosen["longitude"],
                    depth, pressure, platform)


def flatten(ds: xr.Dataset, names: Sequence[str], url: str) -> dict[str, np.ndarray]:
    """The values of ``names`` at every element of the file, as 1-D arrays of one length.

    Instance variables (a station's position, a profile's time) are repeated for each of their
    elements, through the count and index variables of ragged arrays; in multidimensional
    arrays every variable is broadcast over the instance and element dimensions. Padding
    (incomplete arrays) is kept: its elements have missing values, to be left out by the caller.
    """
    to_sample = _sample_indices(ds, url)
    variables = {}
    for name in names:
        variable = ds.variables[name]
        if variable.dtype.kind == "S" and variable.dtype.itemsize == 1 and variable.ndim \
                and variable.dims[-1] not in _element_dims(ds, to_sample):
            variable = _joined_chars(variable)
        for dim, (sample_dim, index) in to_sample.items():
            if dim in variable.dims:
                variable = variable.isel({dim: xr.Variable((sample_dim,), index)})
        variables[name] = variable
    shape: dict[str, int] = {}
    for variable in variables.values():
        for dim, size in zip(variable.dims, variable.shape, strict=True):
            shape.setdefault(dim, size)
    return {name: np.asarray(variable.set_dims(shape).transpose(*shape).values).reshape(-1)
            for name, variable in variables.items()}


def quality_flags(ds: xr.Dataset, name: str) -> str | None:
    """The QC flag variable of ``name``: among its ``ancillary_variables`` the one with
    ``flag_values`` and ``flag_meanings`` (CF 3.5), else ``<name>_QC`` (OceanSITES, EGO,
    Copernicus Marine); None if it has none."""
    ancillary = str(ds.variables[name].attrs.get("ancillary_variables", "")).split()
    flagged = [a for a in ancillary if a in ds.variables and (
        "flag_meanings" in ds.variables[a].attrs
        or str(ds.variables[a].attrs.get("standard_name", "")).endswith(("status_flag",
                                                                           "quality_flag")))]
    if flagged:
        return flagged[0]
    return f"{name}_QC" if f"{name}_QC" in ds.variables else None


def _coordinates_of(ds: xr.Dataset, measured: Sequence[str]) -> list[str]:
    """The variables that the measured ones name as coordinates or dimensions."""
    names: dict[str, None] = {}
    for name in measured:
        variable = ds.variables[name]
        listed = str(variable.attrs.get("coordinates", "")).split()
        for candidate in [*listed, *variable.dims]:
            if candidate in ds.variables and candidate not in measured:
                names[candidate] = None
    return list(names)


def _cf_coordinates(ds: xr.Dataset, names: Sequence[str], key: str) -> list[str]:
    """Which of ``names`` cf-xarray takes for the ``key`` coordinate (time, latitude...)."""
    subset = xr.Dataset(coords={name: ds.variables[name] for name in names})
    return list(subset.cf.coordinates.get(key, []))


def _is_depth(variable: xr.Variable) -> bool:
    """A vertical coordinate in length units: by standard name, or ``axis: Z``."""
    return variable.attrs.get("standard_name") in DEPTH_NAMES or (
        variable.attrs.get("axis") == "Z" and not _is_pressure(variable))


def _is_pressure(variable: xr.Variable) -> bool:
    return variable.attrs.get("standard_name") in PRESSURE_NAMES


def _one(ds: xr.Dataset, url: str, names: list[str], what: str) -> str | None:
    names = list(dict.fromkeys(names))
    if len(names) > 1:
        raise IngestError(url, f"has several {what} variables ({', '.join(names)})",
                          "keep one per file; the lake stores one depth and one pressure per "
                          "observation")
    return names[0] if names else None


def _sample_indices(ds: xr.Dataset, url: str) -> dict[str, tuple[str, np.ndarray]]:
    """For each instance dimension of a ragged array: the sample dimension, and the index of
    the instance each sample belongs to."""
    parent: dict[str, tuple[str, np.ndarray]] = {}
    for name, variable in ds.variables.items():
        if "sample_dimension" in variable.attrs:
            sample = variable.attrs["sample_dimension"]
            counts = np.nan_to_num(np.asarray(variable.values, dtype=np.float64)).astype(int)
            if sample not in ds.sizes or variable.ndim != 1 or counts.sum() != ds.sizes[sample]:
                raise IngestError(f"{url}:{name}", f"counts {int(counts.sum())} elements of "
                                  f"sample dimension {sample!r} of "
                                  f"{ds.sizes.get(sample, 'no')} elements",
                                  "a contiguous ragged array's counts add up to its length")
            parent[sample] = (variable.dims[0], np.repeat(np.arange(counts.size), counts))
        elif "instance_dimension" in variable.attrs:
            instance = variable.attrs["instance_dimension"]
            index = np.asarray(variable.values, dtype=np.float64)
            size = ds.sizes.get(instance, 0)
            wrong = ~((index >= 0) & (index < size))
            if variable.ndim != 1 or wrong.any():
                raise IngestError(f"{url}:{name}", f"holds {int(wrong.sum())} indexes that are "
                                  f"not instances of dimension {instance!r} ({size} instances)",
                                  "an indexed ragged array's indexes are 0-based instance "
                                  "numbers")
            parent[variable.dims[0]] = (instance, index.astype(int))
    result = {}
    samples = set(parent) - {dim for dim, _ in parent.values()}
    for sample in samples:
        dim, index = sample, np.arange(ds.sizes[sample])
        while dim in parent:
            dim, step = parent[dim]
            index = step[index]
            result[dim] = (sample, index)
    return result


def _element_dims(ds: xr.Dataset, to_sample: dict[str, tuple[str, np.ndarray]]) -> set[str]:
    """Dimensions that count instances or elements (not characters of a string)."""
    dims = set(to_sample) | {sample for sample, _ in to_sample.values()}
    for variable in ds.variables.values():
        if variable.dtype.kind != "S":
            dims.update(variable.dims)
    return dims


def _joined_chars(variable: xr.Variable) -> xr.Variable:
    """A char array (..., strlen) as strings (...), trailing blanks and NULs removed."""
    width = variable.shape[-1]
    joined = np.ascontiguousarray(variable.values).view(f"S{width}")[..., 0]
    strings = np.char.strip(np.char.decode(joined, "utf-8", errors="replace"), " \x00")
    return xr.Variable(variable.dims[:-1], strings, variable.attrs)
