"""Readers of in-situ source files: Argo profile NetCDF, CF DSG NetCDF and station CSV, to one
long table.

Each reader checks its file completely (structure, units, coordinates, times, QC flags, physically
possible values) and returns an Arrow table in :data:`OBSERVATION_SCHEMA`: one row per
observation, i.e. one level of one profile or one depth of one station at one time. Rows where
no variable was measured are left out. Nothing here touches the lake.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import fsspec
import netCDF4
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import xarray as xr

from . import dsg
from .errors import IngestError
from .manifest import Variable
from .storage import source_name

ARGO = "argo_float"
STATION = "coastal_station"
UTC_MICROSECONDS = pa.timestamp("us", tz="UTC")

#: The measured variables, as the Parquet field metadata and the manifest describe them.
VARIABLES: dict[str, Variable] = {
    "TEMP": Variable(
        standard_name="sea_water_temperature",
        units="degree_Celsius",
        long_name="Sea temperature in-situ ITS-90 scale",
        dims=["obs"],
        dtype="float32",
    ),
    "PSAL": Variable(
        standard_name="sea_water_practical_salinity",
        units="psu",
        long_name="Practical salinity",
        dims=["obs"],
        dtype="float32",
    ),
}
PRESSURE = Variable(
    standard_name="sea_water_pressure",
    units="decibar",
    long_name="Sea water pressure, equals 0 at sea-level",
)
DEPTH = Variable(standard_name="depth", units="m", long_name="Depth below sea level, positive down")

# Spellings of the units that source files use for what the lake stores; anything else (kelvin,
# degree_Fahrenheit, Pa...) is refused rather than converted, so that a mislabelled file is found.
ACCEPTED_UNITS = {
    "TEMP": {
        "degree_celsius",
        "degrees_celsius",
        "degree_c",
        "degrees_c",
        "degc",
        "deg_c",
        "celsius",
        "°c",
    },
    "PSAL": {"psu", "pss-78", "pss78", "1e-3", "0.001", "1"},
    "PRES": {"decibar", "decibars", "dbar"},
}
# Values no instrument in the sea can report, used to catch wrong units and broken files; values
# flagged bad (QC 3 or 4) are exempt, as real-time Argo data carry such values on purpose.
POSSIBLE_RANGE = {"TEMP": (-3.0, 45.0), "PSAL": (0.0, 45.0), "PRES": (-5.0, 12_000.0)}
BAD_QC = (3, 4)
# Argo reference table 2 and OceanSITES share the flags 0..9 (9 = missing value).
QC_FLAGS = range(10)
#: The ACDD global attributes that describe a whole collection (what the catalogue and its
#: DCAT-AP export publish), kept from the sources. Per-file ones (ids, dates, history, the
#: platform, feature type) are not: a collection gathers many platforms' files.
COLLECTION_ATTRIBUTES = (
    "title",
    "summary",
    "keywords",
    "keywords_vocabulary",
    "license",
    "creator_name",
    "creator_email",
    "creator_url",
    "creator_type",
    "creator_institution",
    "institution",
    "publisher_name",
    "publisher_email",
    "publisher_url",
    "project",
    "program",
    "acknowledgement",
    "references",
    "naming_authority",
)


def _field(name: str, type_: pa.DataType, about: Variable | None = None) -> pa.Field:
    if about is None:
        return pa.field(name, type_)
    metadata = {
        key: value
        for key, value in (
            ("units", about.units),
            ("standard_name", about.standard_name),
            ("long_name", about.long_name),
        )
        if value
    }
    return pa.field(name, type_, metadata=metadata)


#: Columns of the observation table, in order; readers fill what their format has, nulls elsewhere.
OBSERVATION_SCHEMA = pa.schema(
    [
        _field("platform_id", pa.string()),
        _field("platform_type", pa.string()),
        _field("source", pa.string()),
        _field("time", UTC_MICROSECONDS),
        _field("lon", pa.float64(), Variable(standard_name="longitude", units="degrees_east")),
        _field("lat", pa.float64(), Variable(standard_name="latitude", units="degrees_north")),
        _field("depth", pa.float32(), DEPTH),
        _field("pressure", pa.float32(), PRESSURE),
        _field("PRES_QC", pa.int8()),
        *[
            f
            for name, about in VARIABLES.items()
            for f in (_field(name, pa.float32(), about), _field(f"{name}_QC", pa.int8()))
        ],
        _field("position_qc", pa.int8()),
        _field("time_qc", pa.int8()),
        _field("cycle_number", pa.int32()),
        _field("data_mode", pa.string()),
    ]
)


@dataclass
class SourceObservations:
    """One source file, read and checked."""

    url: str
    name: str
    size: int
    sha256: str
    table: pa.Table = field(repr=False)
    warnings: list[str] = field(default_factory=list)
    #: Its :data:`COLLECTION_ATTRIBUTES` (a CSV has none).
    attributes: dict[str, object] = field(default_factory=dict)


def read_source_bytes(url: str, fs: fsspec.AbstractFileSystem, path: str) -> bytes:
    """The bytes of a source file (``url``, at ``path`` on ``fs``)."""
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        raise IngestError(url, "does not exist", "check the path") from None


def read_source(url: str, data: bytes) -> SourceObservations:
    """Check and decode one source file, given its bytes.

    Raises
    ------
    IngestError
        If the format is not known or anything in the file is wrong.
    """
    name = source_name(url)
    readers: dict[str, Callable[[str, bytes], tuple[pa.Table, list[str], dict]]] = {
        ".nc": read_netcdf,
        ".csv": lambda url, data: (*read_station_csv(url, data), {}),
    }
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    if suffix not in readers:
        raise IngestError(
            url,
            f"has an unknown format ({suffix or 'no suffix'})",
            "give Argo profile files or CF DSG files (*.nc), or station CSV files (*.csv)",
        )
    table, notes, attributes = readers[suffix](url, data)
    digest = hashlib.sha256(data).hexdigest()
    return SourceObservations(url, name, len(data), digest, table, notes, attributes)


# --- Argo profiles -------------------------------------------------------------------------


def read_netcdf(url: str, data: bytes) -> tuple[pa.Table, list[str], dict[str, object]]:
    """Observations of an Argo profile file (it has ``PLATFORM_NUMBER``) or of any other CF
    Discrete Sampling Geometry file (see :func:`read_dsg`), with the warnings and the file's
    :data:`COLLECTION_ATTRIBUTES`."""
    try:
        nc = netCDF4.Dataset(source_name(url), memory=data)
    except (OSError, RuntimeError, ValueError) as error:
        raise _unreadable(url, error) from None
    try:
        with nc:
            attributes = collection_attributes(nc)
            if "PLATFORM_NUMBER" in nc.variables:
                return (*_argo_observations(url, nc), attributes)
            return (*read_dsg(url, nc), attributes)
    except (OSError, RuntimeError) as error:  # HDF5 finds damage only when reading the data
        raise _unreadable(url, error) from None


def collection_attributes(nc: netCDF4.Dataset) -> dict[str, object]:
    """The file's global :data:`COLLECTION_ATTRIBUTES` that are set, as JSON values."""
    kept = {}
    for name in COLLECTION_ATTRIBUTES:
        value = nc.__dict__.get(name)
        if isinstance(value, np.ndarray | np.generic):
            value = value.tolist()
        if value not in (None, "", []):
            kept[name] = value.strip() if isinstance(value, str) else value
    return kept


def _unreadable(url: str, error: Exception) -> IngestError:
    return IngestError(
        url,
        f"cannot be read as NetCDF ({error})",
        "the file is truncated or corrupt; fetch it again",
    )


def _argo_observations(url: str, nc: netCDF4.Dataset) -> tuple[pa.Table, list[str]]:
    """Observations of an Argo profile file (``<WMO>_prof.nc``, N_PROF x N_LEVELS).

    In data mode ``A`` (adjusted) and ``D`` (delayed mode) the ``*_ADJUSTED`` values and flags
    are taken, in ``R`` (real time) the raw ones, as the Argo user manual advises; the
    ``data_mode`` column tells which. Depth comes from pressure and latitude (see
    :func:`depth_from_pressure`). Profiles without a position or a time cannot be placed in
    the lake and are left out with a warning (Argo flags such profiles, e.g. under ice).
    """
    nc.set_auto_chartostring(False)
    for name in ("PLATFORM_NUMBER", "JULD", "LATITUDE", "LONGITUDE", "PRES"):
        if name not in nc.variables:
            raise IngestError(
                url, f"has no {name} variable", "is this an Argo profile file (N_PROF x N_LEVELS)?"
            )
    measured = [name for name in VARIABLES if name in nc.variables]
    if not measured:
        raise IngestError(
            url, f"has none of the variables {', '.join(VARIABLES)}", "nothing to ingest"
        )
    n_prof, n_levels = nc.variables["PRES"].shape
    adjusted = _adjusted_profiles(url, nc, n_prof)
    time = _argo_times(url, nc)
    lat = _profile_values(url, nc, "LATITUDE", n_prof)
    lon = _profile_values(url, nc, "LONGITUDE", n_prof)
    _check_coordinates(url, lon, lat)
    pressure, pressure_qc = _argo_levels(url, nc, "PRES", adjusted, (n_prof, n_levels))
    levels = {name: _argo_levels(url, nc, name, adjusted, (n_prof, n_levels)) for name in measured}
    per_profile = _profile_fields(url, nc, n_prof, time, lon, lat)
    placed = np.isfinite(lat) & np.isfinite(lon) & ~np.isnat(time)
    notes = []
    if not placed.all():
        notes.append(
            f"{source_name(url)}: {int((~placed).sum())} of {n_prof} profiles have no "
            "position or time and were left out"
        )
    has_value = np.zeros((n_prof, n_levels), dtype=bool)
    for values, _ in levels.values():
        has_value |= np.isfinite(values)
    keep = placed[:, None] & np.isfinite(pressure) & has_value
    profile_of_row = np.nonzero(keep)[0]
    columns = {key: _take(value, profile_of_row) for key, value in per_profile.items()}
    columns["pressure"] = pressure[keep]
    columns["PRES_QC"] = pressure_qc[keep]
    columns["depth"] = depth_from_pressure(columns["pressure"], columns["lat"])
    for name, (values, flags) in levels.items():
        columns[name], columns[f"{name}_QC"] = values[keep], flags[keep]
    return _observation_table(columns, ARGO, source_name(url)), notes


def _profile_fields(url, nc, n_prof, time, lon, lat) -> dict[str, np.ndarray | pa.Array]:
    """The columns that hold one value per profile."""
    platform = netCDF4.chartostring(_chars(nc, "PLATFORM_NUMBER"))
    return {
        "platform_id": pa.array(np.char.strip(platform.astype(str))),
        "time": time,
        "lon": _normalised_lon(lon),
        "lat": lat,
        "position_qc": _profile_flags(url, nc, "POSITION_QC", n_prof),
        "time_qc": _profile_flags(url, nc, "JULD_QC", n_prof),
        "cycle_number": _profile_values(url, nc, "CYCLE_NUMBER", n_prof),
        "data_mode": pa.array(_data_modes(nc, n_prof)),
    }


def depth_from_pressure(pressure: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Depth (m, positive down) from sea pressure (dbar) and latitude (degrees).

    The UNESCO 1983 formula (Fofonoff and Millard, UNESCO technical papers in marine science
    44), which assumes a standard ocean (0 degC, 35 PSU); it differs from TEOS-10's
    ``gsw.z_from_p`` by less than 0.1 % of depth, well below what depth is used for here
    (selecting and comparing observations).
    """
    p = pressure.astype(np.float64)
    x = np.sin(np.deg2rad(lat)) ** 2
    gravity = 9.780318 * (1.0 + (5.2788e-3 + 2.36e-5 * x) * x) + 1.092e-6 * p
    return ((((-1.82e-15 * p + 2.279e-10) * p - 2.2512e-5) * p + 9.72659) * p) / gravity


def _take(values: np.ndarray | pa.Array | pa.ChunkedArray, rows: np.ndarray):
    return values.take(rows) if isinstance(values, pa.Array | pa.ChunkedArray) else values[rows]


def _numbers(variable: netCDF4.Variable) -> np.ndarray:
    """Values as floats, NaN where the fill value is.

    netCDF4's automatic masking also hides values outside ``valid_min``/``valid_max``: that
    would silently drop spikes flagged bad and values in the wrong units, so only the fill value
    (and ``missing_value``) count as missing here.
    """
    variable.set_auto_mask(False)
    values = np.asarray(variable[:], dtype=np.float64)
    for attribute in ("_FillValue", "missing_value"):
        if attribute in variable.ncattrs():
            values[values == np.float64(variable.getncattr(attribute))] = np.nan
    return values


def _chars(nc: netCDF4.Dataset, name: str) -> np.ndarray:
    variable = nc.variables[name]
    variable.set_auto_mask(False)
    return np.asarray(variable[:])


def _units(url: str, nc: netCDF4.Dataset, name: str) -> None:
    units = getattr(nc.variables[name], "units", None)
    base = name.removesuffix("_ADJUSTED")
    if units is None:
        raise IngestError(
            f"{url}:{name}",
            "has no units attribute",
            f"set units to {VARIABLES.get(base, PRESSURE).units}",
        )
    if units.strip().lower() not in ACCEPTED_UNITS[base]:
        raise IngestError(
            f"{url}:{name}",
            f"has units {units!r}, expected {VARIABLES.get(base, PRESSURE).units}",
            "convert the file; the lake does not guess unit conversions",
        )


def _argo_times(url: str, nc: netCDF4.Dataset) -> np.ndarray:
    juld = nc.variables["JULD"]
    units = getattr(juld, "units", "")
    match = re.fullmatch(r"\s*days since\s+(.+?)\s*", units)
    try:
        reference = pd.Timestamp(match.group(1)) if match else None
    except ValueError:
        reference = None
    if reference is None:
        raise IngestError(
            f"{url}:JULD",
            f"has units {units!r}",
            "Argo times are 'days since 1950-01-01 00:00:00 UTC'",
        )
    if reference.tzinfo is not None:
        reference = reference.tz_convert(None)
    days = _numbers(juld)
    # Argo times are given to the second or better; microseconds keep them exactly.
    offsets = np.rint(days * 86_400e6)
    times = np.full(days.shape, np.datetime64("NaT", "us"), dtype="datetime64[us]")
    known = np.isfinite(offsets)
    times[known] = np.datetime64(reference.to_datetime64(), "us") + offsets[known].astype(
        "timedelta64[us]"
    )
    return times


def _profile_values(url: str, nc: netCDF4.Dataset, name: str, n_prof: int) -> np.ndarray:
    if name not in nc.variables:
        return np.full(n_prof, np.nan)
    values = _numbers(nc.variables[name])
    if values.shape != (n_prof,):
        raise IngestError(
            f"{url}:{name}",
            f"has shape {values.shape}, expected ({n_prof},)",
            "one value per profile (N_PROF)",
        )
    return values


def _check_coordinates(url: str, lon: np.ndarray, lat: np.ndarray) -> None:
    for name, values, low, high in (("LATITUDE", lat, -90, 90), ("LONGITUDE", lon, -180, 360)):
        wrong = np.nonzero((values < low) | (values > high))[0]
        if wrong.size:
            raise IngestError(
                f"{url}:{name}",
                f"profiles {_few(wrong)} are outside [{low}, {high}] ({_few(values[wrong])})",
                "positions must be in degrees north and east",
            )


def _normalised_lon(lon: np.ndarray) -> np.ndarray:
    """Longitudes in [-180, 180), the convention of GeoParquet (CRS84) and Argo."""
    return np.where(lon >= 180, lon - 360, lon)


def _flags(url: str, name: str, chars: np.ndarray) -> np.ndarray:
    """Argo QC characters as numbers; blank (no QC yet) becomes -1, read as null later."""
    codes = chars.view(np.uint8).astype(np.int16) - ord("0")
    blank = (chars == b" ") | (chars == b"")
    wrong = ~blank & ((codes < 0) | (codes > 9))
    if wrong.any():
        rows = np.unique(np.nonzero(wrong)[0])
        raise IngestError(
            f"{url}:{name}",
            f"holds flags {_few(np.unique(chars[wrong]))} that are "
            f"not Argo QC flags (profiles {_few(rows)})",
            "flags are '0'..'9'",
        )
    return np.where(blank, -1, codes).astype(np.int8)


def _profile_flags(url: str, nc: netCDF4.Dataset, name: str, n_prof: int) -> np.ndarray:
    if name not in nc.variables:
        return np.full(n_prof, -1, dtype=np.int8)
    return _flags(url, name, _chars(nc, name).reshape(n_prof))


def _data_modes(nc: netCDF4.Dataset, n_prof: int) -> np.ndarray:
    if "DATA_MODE" not in nc.variables:
        return np.full(n_prof, "R")
    return _chars(nc, "DATA_MODE").reshape(n_prof).astype(str)


def _adjusted_profiles(url: str, nc: netCDF4.Dataset, n_prof: int) -> np.ndarray:
    modes = _data_modes(nc, n_prof)
    unknown = sorted(set(modes) - {"R", "A", "D"})
    if unknown:
        raise IngestError(f"{url}:DATA_MODE", f"holds {unknown}", "data modes are R, A and D")
    return np.isin(modes, ["A", "D"])


def _argo_levels(url, nc, name, adjusted, shape) -> tuple[np.ndarray, np.ndarray]:
    """Values (NaN where missing) and flags of one variable, adjusted where the mode says."""
    chosen = {False: name, True: f"{name}_ADJUSTED"}
    if adjusted.any() and chosen[True] not in nc.variables:
        raise IngestError(
            url,
            f"has profiles in mode A or D but no {chosen[True]}",
            "adjusted profiles need their adjusted values",
        )
    values = np.full(shape, np.nan, dtype=np.float32)
    flags = np.full(shape, -1, dtype=np.int8)
    for use_adjusted in (False, True):
        profiles = adjusted == use_adjusted
        if not profiles.any():
            continue
        variable_name = chosen[use_adjusted]
        _units(url, nc, variable_name)
        variable = nc.variables[variable_name]
        if variable.shape != shape:
            raise IngestError(
                f"{url}:{variable_name}",
                f"has shape {variable.shape}, expected {shape} (N_PROF, N_LEVELS)",
                "the file is not a profile file",
            )
        values[profiles] = _numbers(variable)[profiles]
        if f"{variable_name}_QC" in nc.variables:
            chars = _chars(nc, f"{variable_name}_QC").reshape(shape)
            flags[profiles] = _flags(url, f"{variable_name}_QC", chars[profiles])
    _check_possible(
        f"{url}:{name}",
        name,
        values,
        flags,
        lambda rows: f"profiles {rows}",
        lambda index: index[0],
    )
    return values, flags


def _check_possible(where: str, name: str, values, flags, describe, row_of) -> None:
    """Refuse values outside the possible range unless flagged bad (mislabelled units...)."""
    low, high = POSSIBLE_RANGE[name]
    impossible = ((values < low) | (values > high)) & ~np.isin(flags, BAD_QC)
    if impossible.any():
        index = np.nonzero(impossible)
        raise IngestError(
            where,
            f"{describe(_few(np.unique(row_of(index))))} hold values "
            f"{_few(values[index])} outside [{low:g}, {high:g}] "
            f"{VARIABLES.get(name, PRESSURE).units} and not flagged bad",
            "check the units, or flag the values 4 (bad)",
        )


def _few(values, limit: int = 5) -> str:
    values = list(np.asarray(values).ravel())
    shown = ", ".join(str(v.decode() if isinstance(v, bytes) else v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


# --- CF Discrete Sampling Geometries -------------------------------------------------------

#: What the lake stores, by the standard names DSG files give it. ``sea_water_salinity`` is the
#: name of practical salinity before CF 1.8 (OceanSITES and many moorings still use it).
DSG_VARIABLES = {
    "sea_water_temperature": "TEMP",
    "sea_water_practical_salinity": "PSAL",
    "sea_water_salinity": "PSAL",
}
#: The lake's QC flags are Argo reference table 2, which OceanSITES and Copernicus Marine share,
#: with the names files give their meanings. A file's own flags are translated by their
#: ``flag_meanings``: a flag keeps its number where the lake's flag of that number means the
#: same (6 and 7 both mean "not used"), else takes the first that does (IOOS QARTOD's
#: ``not_evaluated`` is 2 in the file and 0 here, for instance).
LAKE_FLAGS = {
    0: ("no_qc_performed", "no_qc", "not_evaluated", "unknown"),
    1: ("good_data", "good", "pass", "passed"),
    2: ("probably_good_data", "probably_good"),
    3: (
        "bad_data_that_are_potentially_correctable",
        "probably_bad_data",
        "probably_bad",
        "suspect",
        "suspect_or_of_high_interest",
    ),
    4: ("bad_data", "bad", "fail", "failed"),
    5: ("value_changed", "changed"),
    6: ("not_used", "value_below_detection"),
    7: ("not_used", "nominal_value"),
    8: ("interpolated_value", "estimated_value"),
    9: ("missing_value", "missing", "missing_data"),
}
DEPTH_UNITS = {"m", "meter", "meters", "metre", "metres"}
_SUPPORTED = (
    "the lake reads CF DSG files of featureType "
    + ", ".join(dsg.FEATURE_TYPES)
    + ", Argo profile files and station CSVs"
)


def read_dsg(url: str, nc: netCDF4.Dataset) -> tuple[pa.Table, list[str]]:
    """Observations of a CF Discrete Sampling Geometry file, any feature type and layout.

    The variables the lake stores are found by standard name (:data:`DSG_VARIABLES`), their QC
    flags as ``ancillary_variables`` and translated by ``flag_meanings`` to the lake's
    (:data:`LAKE_FLAGS`). Depth is the vertical coordinate (negated where ``positive`` is
    ``up``), or comes from sea water pressure as for Argo; pressure is kept where the file
    has it. The platform id is the ``cf_role`` id of the station or trajectory (of a profile
    cast, for lone profiles), else the file name. Other data variables are left out with a
    warning, as are observations with values but no time or position.
    """
    ds = dsg.open_dsg(nc, url)
    kind = _dsg_feature_type(url, ds)
    measured = _dsg_measured(url, ds)
    geometry = dsg.describe(ds, list(measured.values()), url)
    flags = {lake: dsg.quality_flags(ds, name) for lake, name in measured.items()}
    if geometry.pressure:
        flags["PRES"] = dsg.quality_flags(ds, geometry.pressure)
    flags["position_qc"] = dsg.quality_flags(ds, geometry.latitude)
    flags["time_qc"] = dsg.quality_flags(ds, geometry.time)
    wanted = [
        geometry.time,
        geometry.latitude,
        geometry.longitude,
        geometry.depth,
        geometry.pressure,
        geometry.platform,
        *measured.values(),
        *flags.values(),
    ]
    wanted = list(dict.fromkeys(name for name in wanted if name))
    flat = dsg.flatten(ds, wanted, list(measured.values()), url)

    columns = _dsg_where_and_when(url, ds, geometry, flat)
    has_value = np.zeros(columns["time"].shape, dtype=bool)
    for lake, name in {
        **measured,
        **({"PRES": geometry.pressure} if geometry.pressure else {}),
    }.items():
        _dsg_units(url, ds, name, lake)
        columns["pressure" if lake == "PRES" else lake] = flat[name].astype(np.float32)
        if lake != "PRES":
            has_value |= np.isfinite(columns[lake])
    for name, flag_variable in flags.items():
        column = name if name.endswith("_qc") else f"{name}_QC"
        columns[column] = _dsg_flags(url, ds, flag_variable, flat)
    if "depth" not in columns:
        columns["depth"] = depth_from_pressure(columns["pressure"], columns["lat"]).astype(
            np.float32
        )

    placed = np.isfinite(columns["lat"]) & np.isfinite(columns["lon"]) & ~np.isnat(columns["time"])
    keep = np.nonzero(placed & has_value & np.isfinite(columns["depth"]))[0]
    columns = {key: _take(value, keep) for key, value in columns.items()}
    _check_dsg_values(url, geometry, measured, columns)
    columns["lon"] = _normalised_lon(columns["lon"])
    notes = [
        f"{source_name(url)}: {message}"
        for message in (
            _left_out_variables(ds, wanted, list(measured.values())),
            f"{int((has_value & ~placed).sum())} observations have no position or time and were "
            "left out"
            if (has_value & ~placed).any()
            else None,
        )
        if message
    ]
    platform_type = re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()  # timeSeries -> time_series
    return _observation_table(columns, platform_type, source_name(url)), notes


def _dsg_feature_type(url: str, ds: xr.Dataset) -> str:
    kind = dsg.feature_type(ds)
    if kind is None:
        declared = ds.attrs.get("featureType")
        problem = (
            f"has featureType {declared!r}, which the lake does not read"
            if declared
            else "is neither an Argo profile file (it has no PLATFORM_NUMBER variable) "
            "nor a CF Discrete Sampling Geometry (it has no featureType attribute)"
        )
        raise IngestError(url, problem, _SUPPORTED)
    return kind


def _dsg_where_and_when(url: str, ds: xr.Dataset, geometry: dsg.Geometry, flat: dict) -> dict:
    """The platform, time, position and (if the file has one) depth of every element."""
    time = flat[geometry.time]
    if time.dtype.kind != "M":
        raise IngestError(
            f"{url}:{geometry.time}",
            "holds times that xarray could not decode "
            f"to dates (units {ds[geometry.time].attrs.get('units')!r})",
            "use units '<unit> since <date>' in the standard calendar",
        )
    columns = {
        "platform_id": _dsg_platforms(url, flat.get(geometry.platform), time.shape),
        "time": time.astype("datetime64[us]"),
        "lat": flat[geometry.latitude].astype(np.float64),
        "lon": flat[geometry.longitude].astype(np.float64),
        "pressure": np.full(time.shape, np.nan, dtype=np.float32),
    }
    if geometry.depth:
        columns["depth"] = _dsg_depth(url, ds, geometry.depth, flat[geometry.depth])
    return columns


def _lake_flag(code: int, meaning: str) -> int:
    if meaning in LAKE_FLAGS.get(code, ()):
        return code
    return next(flag for flag, meanings in LAKE_FLAGS.items() if meaning in meanings)


def _check_dsg_values(
    url: str, geometry: dsg.Geometry, measured: dict[str, str], columns: dict
) -> None:
    """Refuse positions off the globe and values no instrument reports, unless flagged bad."""
    for name, values, low, high in (
        (geometry.latitude, columns["lat"], -90, 90),
        (geometry.longitude, columns["lon"], -180, 360),
    ):
        wrong = (values < low) | (values > high)
        if wrong.any():
            raise IngestError(
                f"{url}:{name}",
                f"holds positions {_few(values[wrong])} outside [{low}, {high}]",
                "positions must be in degrees north and east",
            )
    checked = {**measured, **({"PRES": geometry.pressure} if geometry.pressure else {})}
    for lake, name in checked.items():
        values = columns["pressure" if lake == "PRES" else lake]
        _check_possible(
            f"{url}:{name}",
            lake,
            values,
            columns[f"{lake}_QC"],
            lambda found: f"observations {found}",
            lambda index: index[0],
        )


def _left_out_variables(ds: xr.Dataset, used: list[str], measured: list[str]) -> str | None:
    """Which data variables the lake does not store: those with a standard name, on the
    measured variables' dimensions, that are neither flags nor what the lake took."""
    dims = {dim for name in measured for dim in ds.variables[name].dims}
    referenced = {
        other
        for variable in ds.variables.values()
        for attribute in ("coordinates", "ancillary_variables")
        for other in str(variable.attrs.get(attribute, "")).split()
    }
    left_out = [
        name
        for name, variable in ds.variables.items()
        if name not in used
        and name not in referenced
        and set(variable.dims) & dims
        and "standard_name" in variable.attrs
        and "flag_values" not in variable.attrs
        and not str(variable.attrs["standard_name"]).endswith("status_flag")
    ]
    if not left_out:
        return None
    return f"{', '.join(left_out)} left out: the lake stores {', '.join(VARIABLES)} and pressure"


def _dsg_measured(url: str, ds: xr.Dataset) -> dict[str, str]:
    """Lake variable -> the file's variable holding it."""
    measured: dict[str, list[str]] = {}
    for name, variable in ds.variables.items():
        lake = DSG_VARIABLES.get(variable.attrs.get("standard_name"))
        if lake and variable.ndim:
            measured.setdefault(lake, []).append(name)
    for lake, names in measured.items():
        if len(names) > 1:
            raise IngestError(
                url,
                f"has several variables of {VARIABLES[lake].standard_name} ({', '.join(names)})",
                "the lake stores one per observation: ingest a file that keeps the one you want",
            )
    if not measured:
        raise IngestError(
            url,
            f"has no variable of standard_name {', '.join(sorted(DSG_VARIABLES))}",
            "nothing to ingest",
        )
    return {lake: names[0] for lake, names in measured.items()}


def _dsg_units(url: str, ds: xr.Dataset, name: str, lake: str) -> None:
    units = ds.variables[name].attrs.get("units")
    expected = VARIABLES.get(lake, PRESSURE).units
    if units is None:
        raise IngestError(f"{url}:{name}", "has no units attribute", f"set units to {expected}")
    if str(units).strip().lower() not in ACCEPTED_UNITS[lake]:
        raise IngestError(
            f"{url}:{name}",
            f"has units {units!r}, expected {expected}",
            "convert the file; the lake does not guess unit conversions",
        )


def _dsg_depth(url: str, ds: xr.Dataset, name: str, values: np.ndarray) -> np.ndarray:
    attrs = ds.variables[name].attrs
    units = str(attrs.get("units", "")).strip().lower()
    if units not in DEPTH_UNITS:
        raise IngestError(
            f"{url}:{name}",
            f"has units {attrs.get('units')!r}, expected m",
            "give the vertical coordinate in metres",
        )
    up = str(attrs.get("positive", "")).lower() == "up" or attrs.get("standard_name") in (
        "height",
        "altitude",
        "height_above_mean_sea_level",
    )
    return (-values if up else values).astype(np.float32)


def _dsg_flags(url: str, ds: xr.Dataset, name: str | None, flat: dict) -> np.ndarray:
    """A flag variable's values in the lake's flags (-1 where none), by their meanings."""
    n = len(next(iter(flat.values())))
    if name is None:
        return np.full(n, -1, dtype=np.int8)
    values, attrs = flat[name], ds.variables[name].attrs
    if values.dtype.kind == "S":  # Argo and EGO write flags as characters
        return _flags(url, name, values)
    if "flag_masks" in attrs and "flag_values" not in attrs:
        raise IngestError(
            f"{url}:{name}",
            "holds bit-field flags (flag_masks)",
            "the lake reads flags that are values (flag_values, flag_meanings)",
        )
    if "flag_meanings" in attrs and "flag_values" in attrs:
        meanings = str(attrs["flag_meanings"]).split()
        codes = np.atleast_1d(attrs["flag_values"])
        known = {meaning for names in LAKE_FLAGS.values() for meaning in names}
        unknown = [m for m in meanings if m.lower() not in known]
        if unknown or len(meanings) != codes.size:
            problem = (
                f"has flag meanings {_few(unknown)} the lake does not know"
                if unknown
                else f"has {codes.size} flag_values for {len(meanings)} flag_meanings"
            )
            raise IngestError(
                f"{url}:{name}",
                problem,
                "the lake's flags are Argo reference "
                "table 2 (OceanSITES, Copernicus Marine) and IOOS QARTOD",
            )
        lake_flags = {
            code: _lake_flag(code, meaning.lower())
            for code, meaning in zip(codes.tolist(), meanings, strict=True)
        }
    elif "reference table 2" in str(attrs.get("conventions", "")).lower():
        lake_flags = {code: code for code in QC_FLAGS}
    else:
        raise IngestError(
            f"{url}:{name}",
            "holds QC flags without flag_values and flag_meanings",
            "describe the flags as CF section 3.5 says",
        )
    given = np.isfinite(values)
    unexpected = sorted(set(values[given].tolist()) - set(lake_flags))
    if unexpected:
        raise IngestError(
            f"{url}:{name}",
            f"holds flags {_few(unexpected)} that are not among "
            f"its flag_values {_few(list(lake_flags))}",
            "fix the flags",
        )
    codes = np.array(sorted(lake_flags), dtype=np.float64)
    translated = np.full(n, -1, dtype=np.int8)
    translated[given] = np.array([lake_flags[c] for c in codes.tolist()], dtype=np.int8)[
        np.searchsorted(codes, values[given])
    ]
    return translated


def _dsg_platforms(url: str, ids: np.ndarray | None, shape) -> pa.Array:
    if ids is None:  # no cf_role id: the file is the platform
        return pa.array(np.full(shape, source_name(url).rsplit(".", 1)[0]))
    if ids.dtype.kind == "S":
        ids = np.char.decode(ids, "utf-8", errors="replace")
    elif ids.dtype.kind == "f":
        ids = np.array([f"{v:.0f}" for v in ids])
    return pa.array(np.char.strip(ids.astype(str)))


# --- station CSV ---------------------------------------------------------------------------

STATION_COLUMNS = {
    "station_id": pa.string(),
    "time": UTC_MICROSECONDS,
    "lon": pa.float64(),
    "lat": pa.float64(),
    "depth": pa.float64(),
    **{c: t for name in VARIABLES for c, t in ((name, pa.float64()), (f"{name}_QC", pa.int8()))},
}
STATION_REQUIRED = ("station_id", "time", "lon", "lat", "depth")


def read_station_csv(url: str, data: bytes) -> tuple[pa.Table, list[str]]:
    """Observations of a station CSV: ``station_id,time,lon,lat,depth`` and, per variable,
    ``<VAR>,<VAR>_QC`` (times ISO 8601 with a zone, depth in m positive down, flags 0..9).

    Errors name the CSV line numbers (the header is line 1).
    """
    wrong_width = []

    def refuse_row(row) -> str:
        wrong_width.append(row.number)
        return "skip"

    try:
        table = pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(use_threads=False),
            parse_options=pa_csv.ParseOptions(
                invalid_row_handler=refuse_row, ignore_empty_lines=False
            ),
            convert_options=pa_csv.ConvertOptions(column_types=STATION_COLUMNS),
        )
    except pa.ArrowInvalid as error:
        raise _csv_value_error(url, data, error) from None
    if wrong_width:
        raise IngestError(
            url,
            f"lines {_few(wrong_width)} do not have one field per column",
            "fix or remove those lines",
        )
    _check_station_columns(url, table.column_names)
    _check_station_rows(url, table)
    n = table.num_rows
    columns = {
        "platform_id": table["station_id"],
        "time": table["time"],
        "lon": _normalised_lon(table["lon"].to_numpy()),
        "lat": table["lat"],
        "depth": table["depth"],
        **{
            c: table[c]
            for name in VARIABLES
            if name in table.column_names
            for c in (name, f"{name}_QC")
        },
    }
    measured = [columns[name] for name in VARIABLES if name in columns]
    has_value = (
        pc.or_(*[pc.is_valid(v) for v in measured])
        if len(measured) > 1
        else pc.is_valid(measured[0])
    )
    rows = np.nonzero(has_value.to_numpy(zero_copy_only=False))[0]
    if rows.size < n:
        columns = {key: _take(value, rows) for key, value in columns.items()}
    return _observation_table(columns, STATION, source_name(url)), []


def _check_station_columns(url: str, names: list[str]) -> None:
    missing = [c for c in STATION_REQUIRED if c not in names]
    if missing:
        raise IngestError(
            url,
            f"has no column {', '.join(missing)}",
            f"station CSVs have the header {','.join(STATION_COLUMNS)}",
        )
    unknown = [c for c in names if c not in STATION_COLUMNS]
    if unknown:
        raise IngestError(
            url,
            f"has columns the lake does not know: {', '.join(unknown)}",
            "rename them to the lake's columns or remove them; the lake's are "
            f"{', '.join(STATION_COLUMNS)}",
        )
    for name in VARIABLES:
        if (name in names) != (f"{name}_QC" in names):
            raise IngestError(
                url,
                f"has only one of the columns {name}, {name}_QC",
                "each variable comes with its QC flags",
            )
    if not any(name in names for name in VARIABLES):
        raise IngestError(
            url, f"has none of the variables {', '.join(VARIABLES)}", "nothing to ingest"
        )


def _check_station_rows(url: str, table: pa.Table) -> None:
    def line_numbers(mask) -> np.ndarray:
        return np.nonzero(np.asarray(mask))[0] + 2

    for name in STATION_REQUIRED:
        missing = line_numbers(table[name].is_null().to_numpy(zero_copy_only=False))
        if missing.size:
            raise IngestError(
                f"{url}:{name}",
                f"is empty on lines {_few(missing)}",
                "every observation needs a station, time and position",
            )
    bounds = {"lat": (-90, 90), "lon": (-180, 360), "depth": (0, 11_000)}
    for name, (low, high) in bounds.items():
        values = table[name].to_numpy()
        wrong = line_numbers((values < low) | (values > high))
        if wrong.size:
            raise IngestError(
                f"{url}:{name}",
                f"lines {_few(wrong)} are outside [{low}, {high}]",
                "positions in degrees, depth in metres positive down",
            )
    for name in VARIABLES:
        if name not in table.column_names:
            continue
        flags = table[f"{name}_QC"].to_numpy(zero_copy_only=False)
        flags = np.where(pd.isna(flags), -1, flags)
        wrong = line_numbers(~np.isin(flags, [-1, *QC_FLAGS]))
        if wrong.size:
            raise IngestError(
                f"{url}:{name}_QC",
                f"lines {_few(wrong)} hold flags that are not 0..9",
                "use the OceanSITES/Argo QC flags",
            )
        values = table[name].to_numpy(zero_copy_only=False).astype(np.float64)
        _check_possible(
            f"{url}:{name}",
            name,
            values,
            flags,
            lambda rows: f"lines {rows}",
            lambda index: index[0] + 2,
        )


def _csv_value_error(url: str, data: bytes, error: pa.ArrowInvalid) -> IngestError:
    """Say which lines of which column hold a value of the wrong kind."""
    match = re.search(r"In CSV column #(\d+)", str(error))
    text = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, on_bad_lines="skip")
    if match is None or int(match.group(1)) >= len(text.columns):
        return IngestError(url, f"cannot be read as CSV ({error})", "check the file")
    column = text.columns[int(match.group(1))]
    raw = text[column].str.strip()
    given = raw != ""
    if STATION_COLUMNS[column] == UTC_MICROSECONDS:
        parsed = pd.to_datetime(raw.where(given), utc=True, errors="coerce", format="ISO8601")
        zoned = raw.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
        wrong = given & (parsed.isna() | ~zoned)
        expected = "ISO 8601 times with a zone, e.g. 2024-01-31T12:00:00Z"
    elif STATION_COLUMNS[column] == pa.float64():
        wrong = given & pd.to_numeric(raw.where(given), errors="coerce").isna()
        expected = "numbers"
    else:
        wrong = given & ~raw.isin([str(flag) for flag in QC_FLAGS])
        expected = "QC flags 0..9"
    lines = np.nonzero(wrong.to_numpy())[0] + 2
    if not lines.size:
        return IngestError(f"{url}:{column}", f"cannot be read ({error})", "check the column")
    return IngestError(
        f"{url}:{column}",
        f"lines {_few(lines)} hold {_few(raw[wrong].to_numpy())}, not {expected}",
        "fix those values or leave them empty when missing",
    )


# --- common --------------------------------------------------------------------------------


def _observation_table(columns: dict, platform_type: str, source: str) -> pa.Table:
    """An Arrow table in :data:`OBSERVATION_SCHEMA` from arrays; absent columns are null."""
    n = len(columns["time"])
    constant = {"platform_type": platform_type, "source": source}
    arrays = []
    for schema_field in OBSERVATION_SCHEMA:
        name = schema_field.name
        if name in constant:
            arrays.append(pa.repeat(pa.scalar(constant[name]), n))
        elif name not in columns:
            arrays.append(pa.nulls(n, schema_field.type))
        else:
            arrays.append(_as_arrow(columns[name], schema_field.type))
    return pa.Table.from_arrays(arrays, schema=OBSERVATION_SCHEMA)


def _as_arrow(values, type_: pa.DataType) -> pa.Array:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        return values.cast(type_)
    if values.dtype.kind == "f":
        return pa.array(values, mask=np.isnan(values)).cast(type_)
    if values.dtype.kind == "i" and pa.types.is_int8(type_):
        return pa.array(values, mask=values < 0)  # -1 stands for "no flag"
    return pa.array(values).cast(type_)
