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
import netCDF4
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


def open_dsg(nc: netCDF4.Dataset, url: str) -> xr.Dataset:
    """An open NetCDF file as xarray decodes it (CF times, fill values, scales), with char
    arrays kept as chars: flags are single chars per observation, ids are joined by
    :func:`flatten`. Blank is what a char's fill value stands for, not NaN.

    Raises
    ------
    IngestError
        If xarray cannot decode it (its message names the variable).
    """
    try:
        ds = xr.open_dataset(
            xr.backends.NetCDF4DataStore(nc),
            concat_characters=False,
            decode_coords=False,
            decode_timedelta=False,
        )
    except ValueError as error:
        raise IngestError(
            url,
            f"cannot be decoded as CF ({error})",
            "fix the attributes it names (time units, fill values)",
        ) from None
    for name, variable in ds.variables.items():
        if variable.encoding.get("dtype") == np.dtype("S1") and variable.dtype.kind == "O":
            values = variable.values
            blank = np.array([not isinstance(v, bytes) for v in values.ravel()]).reshape(
                values.shape
            )
            ds[name] = variable.copy(data=np.where(blank, b" ", values).astype("S1"))
    return ds


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
    """Find the feature type, coordinates and platform id of a DSG file.

    Each coordinate is recognised by its CF attributes (cf-xarray) among, first, the variables
    the measured ones name (``coordinates`` attribute, dimensions); then those on the measured
    variables' dimensions (IOOS Glider DAC files name no coordinates, and carry a second,
    scalar, position per profile); then those on fewer of them (scalars of a single feature);
    then any (a ragged array's instance variables).

    Raises
    ------
    IngestError
        If the time, latitude, longitude or vertical coordinate cannot be found, or is found
        twice at the first level that has one.
    """
    kind = feature_type(ds)
    tiers = _candidate_tiers(ds, measured)
    chosen = {}
    for key in ("time", "latitude", "longitude"):
        names = _first_found(tiers, lambda tier, key=key: _cf_coordinates(ds, tier, key))
        if len(names) != 1:
            problem = (
                f"has no {key} coordinate"
                if not names
                else f"has several {key} coordinates ({', '.join(names)})"
            )
            raise IngestError(
                url,
                f"{problem} for {', '.join(measured)}",
                f"name exactly one {key} variable in the data variables' "
                "coordinates attribute, with CF standard_name and units",
            )
        chosen[key] = names[0]
    # Pressure is a coordinate of profiles, but a data variable of gliders and moorings.
    vertical = {}
    for what, test in (("depth", _is_depth), ("sea_water_pressure", _is_pressure)):
        names = _first_found(
            tiers, lambda tier, test=test: [n for n in tier if test(ds.variables[n])]
        )
        if len(names) > 1:
            raise IngestError(
                url,
                f"has several {what} variables ({', '.join(names)})",
                "keep one per file; the lake stores one depth and one pressure per observation",
            )
        vertical[what] = names[0] if names else None
    if vertical["depth"] is None and vertical["sea_water_pressure"] is None:
        raise IngestError(
            url,
            "has no vertical coordinate (depth or sea water pressure)",
            "give the observations a depth (standard_name depth, units m, "
            "positive down), even a scalar one for instruments at a fixed depth",
        )
    platform = next(iter(ds.cf.cf_roles.get(PLATFORM_ROLE[kind], [])), None)
    return Geometry(
        kind,
        chosen["time"],
        chosen["latitude"],
        chosen["longitude"],
        vertical["depth"],
        vertical["sea_water_pressure"],
        platform,
    )


def flatten(
    ds: xr.Dataset, names: Sequence[str], data: Sequence[str], url: str
) -> dict[str, np.ndarray]:
    """The values of ``names`` at every element of the ``data`` variables, as 1-D arrays of one
    length.

    Instance variables (a station's position, a profile's time) are repeated for each of their
    elements, through the count and index variables of ragged arrays; in multidimensional
    arrays every variable is broadcast over the instance and element dimensions. Padding
    (incomplete arrays) is kept: its elements have missing values, to be left out by the caller.

    Raises
    ------
    IngestError
        If a variable varies along a dimension the data do not have: it cannot be placed at
        one element (the positions of a file that is no DSG, on a dimension of their own).
    """
    to_sample = _sample_indices(ds, url)
    character_dims = _character_dims(ds, to_sample)
    variables = {}
    for name in dict.fromkeys([*data, *names]):
        variable = ds.variables[name]
        if variable.dtype.kind == "S" and variable.ndim and variable.dims[-1] in character_dims:
            variable = _joined_chars(variable)
        for dim, (sample_dim, index) in to_sample.items():
            if dim in variable.dims:
                variable = variable.isel({dim: xr.Variable((sample_dim,), index)})
        variables[name] = variable
    shape = {
        dim: size
        for name in data
        for dim, size in zip(variables[name].dims, variables[name].shape, strict=True)
    }
    for name, variable in variables.items():
        foreign = [
            d
            for d, n in zip(variable.dims, variable.shape, strict=True)
            if d not in shape and n > 1
        ]
        if foreign:
            raise IngestError(
                f"{url}:{name}",
                f"varies along {', '.join(foreign)}, a dimension "
                f"that {', '.join(data)} do not have",
                "CF DSG files give coordinates on the instance or observation "
                "dimensions of the data (CF chapter 9)",
            )
        variables[name] = variable.squeeze([d for d in variable.dims if d not in shape])
    return {
        name: np.asarray(variables[name].set_dims(shape).transpose(*shape).values).reshape(-1)
        for name in names
    }


def quality_flags(ds: xr.Dataset, name: str) -> str | None:
    """The QC flag variable of ``name``: among its ``ancillary_variables`` the one with
    ``flag_values`` and ``flag_meanings`` (CF 3.5), else ``<name>_QC`` (OceanSITES, EGO,
    Copernicus Marine); None if it has none."""
    ancillary = str(ds.variables[name].attrs.get("ancillary_variables", "")).split()
    flagged = [
        a
        for a in ancillary
        if a in ds.variables
        and (
            "flag_meanings" in ds.variables[a].attrs
            or str(ds.variables[a].attrs.get("standard_name", "")).endswith(
                ("status_flag", "quality_flag")
            )
        )
    ]
    if flagged:
        return flagged[0]
    return f"{name}_QC" if f"{name}_QC" in ds.variables else None


def _candidate_tiers(ds: xr.Dataset, measured: Sequence[str]) -> list[list[str]]:
    """Where to look for coordinates, in order (see :func:`describe`)."""
    named: dict[str, None] = {}
    for name in measured:
        variable = ds.variables[name]
        for candidate in [*str(variable.attrs.get("coordinates", "")).split(), *variable.dims]:
            if candidate in ds.variables and candidate not in measured:
                named[candidate] = None
    dims = {dim for name in measured for dim in ds.variables[name].dims}
    others = [n for n, v in ds.variables.items() if n not in measured and n not in named]
    return [
        list(named),
        [n for n in others if ds.variables[n].dims and set(ds.variables[n].dims) == dims],
        [n for n in others if set(ds.variables[n].dims) <= dims],
        others,
    ]


def _cf_coordinates(ds: xr.Dataset, names: Sequence[str], key: str) -> list[str]:
    """Which of ``names`` cf-xarray takes for the ``key`` coordinate (time, latitude...)."""
    # A variable named like a dimension it does not lie along cannot be a coordinate here.
    subset = xr.Dataset(
        coords={
            name: ds.variables[name]
            for name in names
            if name not in ds.dims or ds.variables[name].dims == (name,)
        }
    )
    return list(subset.cf.coordinates.get(key, []))


def _is_depth(variable: xr.Variable) -> bool:
    """A vertical coordinate in length units: by standard name, or ``axis: Z``."""
    return variable.attrs.get("standard_name") in DEPTH_NAMES or (
        variable.attrs.get("axis") == "Z" and not _is_pressure(variable)
    )


def _is_pressure(variable: xr.Variable) -> bool:
    return variable.attrs.get("standard_name") in PRESSURE_NAMES


def _first_found(tiers: list[list[str]], find) -> list[str]:
    """What ``find`` finds in the first tier where it finds anything."""
    return next((found for tier in tiers if (found := find(tier))), [])


def _sample_indices(ds: xr.Dataset, url: str) -> dict[str, tuple[str, np.ndarray]]:
    """For each instance dimension of a ragged array: the sample dimension, and the index of
    the instance each sample belongs to."""
    parent: dict[str, tuple[str, np.ndarray]] = {}
    for name, variable in ds.variables.items():
        if "sample_dimension" in variable.attrs:
            sample = variable.attrs["sample_dimension"]
            counts = np.nan_to_num(np.asarray(variable.values, dtype=np.float64)).astype(int)
            if sample not in ds.sizes or variable.ndim != 1 or counts.sum() != ds.sizes[sample]:
                raise IngestError(
                    f"{url}:{name}",
                    f"counts {int(counts.sum())} elements of "
                    f"sample dimension {sample!r} of "
                    f"{ds.sizes.get(sample, 'no')} elements",
                    "a contiguous ragged array's counts add up to its length",
                )
            parent[sample] = (variable.dims[0], np.repeat(np.arange(counts.size), counts))
        elif "instance_dimension" in variable.attrs:
            instance = variable.attrs["instance_dimension"]
            index = np.asarray(variable.values, dtype=np.float64)
            size = ds.sizes.get(instance, 0)
            wrong = ~((index >= 0) & (index < size))
            if variable.ndim != 1 or wrong.any():
                raise IngestError(
                    f"{url}:{name}",
                    f"holds {int(wrong.sum())} indexes that are "
                    f"not instances of dimension {instance!r} ({size} instances)",
                    "an indexed ragged array's indexes are 0-based instance numbers",
                )
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


def _character_dims(ds: xr.Dataset, to_sample: dict[str, tuple[str, np.ndarray]]) -> set[str]:
    """Dimensions that only char arrays have: the characters of strings (``name_strlen``),
    not instances or elements (Argo-style flags are chars along the observations)."""
    elements = set(to_sample) | {sample for sample, _ in to_sample.values()}
    for variable in ds.variables.values():
        if variable.dtype.kind != "S":
            elements.update(variable.dims)
    return {dim for dim in ds.dims if dim not in elements}


def _joined_chars(variable: xr.Variable) -> xr.Variable:
    """A char array (..., strlen) as strings (...), trailing blanks and NULs removed."""
    width = variable.shape[-1]
    joined = np.ascontiguousarray(variable.values).view(f"S{width}")[..., 0]
    strings = np.char.strip(np.char.decode(joined, "utf-8", errors="replace"), " \x00")
    return xr.Variable(variable.dims[:-1], strings, variable.attrs)
