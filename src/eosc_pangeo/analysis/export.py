"""Export of results: NetCDF (CF-1.10 + ACDD-1.3), CSV, Parquet or Zarr, with an RO-Crate.

"Download results, not data": a result is written with the attributes a data centre expects and
a provenance record beside it, ``<name>-ro-crate-metadata.json``, a detached RO-Crate 1.2 that
names the lake collections and versions that went in (with the checksum of their manifests), the
analysis calls and their parameters, and the versions of the software.

A result is written under a temporary name and moved into place, so that a failed export leaves
nothing half-written; an existing result is only replaced with ``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import tempfile
import uuid
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from ..lake.manifest import WRITERS, software_versions, utcnow
from . import _coords
from ._provenance import COLUMN_ATTRS, COORDINATE_COLUMNS, PROVENANCE_ATTR, merge, provenance_of
from .errors import AnalysisError

Format = Literal["netcdf", "csv", "parquet", "zarr"]
FORMATS: dict[str, Format] = {
    ".nc": "netcdf",
    ".nc4": "netcdf",
    ".netcdf": "netcdf",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".zarr": "zarr",
}
MEDIA_TYPES = {
    "netcdf": "application/netcdf",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "zarr": "application/vnd+zarr",
}
CRATE_SUFFIX = "-ro-crate-metadata.json"
CONVENTIONS = "CF-1.10, ACDD-1.3"
PROJECT_URL = "https://github.com/eosc-pangeo/eosc-pangeo"


def export(
    obj: xr.Dataset | xr.DataArray | pd.DataFrame,
    path_or_url: str | os.PathLike[str],
    format: Format | None = None,
    *,
    attrs: Mapping[str, Any] | None = None,
    variable_attrs: Mapping[str, Mapping[str, Any]] | None = None,
    inputs: Iterable[Any] = (),
    lake: Any = None,
    storage_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> str:
    """Write a result and its provenance record beside it.

    Parameters
    ----------
    obj
        The result: a Dataset or DataArray (any format) or a table (any format; NetCDF
        writes it as CF discrete point features along an ``obs`` dimension).
    path_or_url
        Where to write: a path or an fsspec URL. A relative path goes below the results
        folder (``EOSC_PANGEO_RESULTS_DIR``; in the hub ``~/results``, which JupyterLab's file
        browser shows and downloads), or the working directory when none is set.
    format
        ``netcdf``, ``csv``, ``parquet`` or ``zarr``; default: from the suffix.
    attrs
        Global attributes to set or override (title, summary, creator_name, license...).
    variable_attrs
        Attributes of variables (or columns) to set or override, e.g. ``{"TEMP":
        {"standard_name": "sea_water_temperature", "units": "degC"}}``: CF and ACDD want a
        standard name and units on every data variable.
    inputs
        More inputs to record (lake datasets, results), besides those ``obj`` carries.
    lake
        The lake whose manifests are checksummed (default: the configured one).
    storage_options
        fsspec options for ``path_or_url``.
    overwrite
        Replace an existing result.

    Returns
    -------
    str
        The URL of the result written; the crate is ``<url minus suffix>-ro-crate-metadata.json``.

    Raises
    ------
    AnalysisError
        Unknown format, an existing result, or an object the format cannot hold.
    """
    import fsspec

    url = _in_results_dir(os.fspath(path_or_url))
    format = format or _format_of(url)
    if format not in MEDIA_TYPES:
        raise AnalysisError(
            "format", f"unknown format {format!r}", f"choose among {', '.join(MEDIA_TYPES)}"
        )
    fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    if fs.exists(path) and not overwrite:
        raise AnalysisError(url, "already exists", "pass overwrite=True to replace it")
    provenance = merge([provenance_of(obj), *(provenance_of(i) for i in inputs)])
    data = _prepared(obj, format, attrs or {}, variable_attrs or {}, provenance)
    if format in ("netcdf", "zarr"):  # CSV and Parquet carry no global attributes
        _warn_without_contact(data.attrs)
    from fsspec.implementations.local import LocalFileSystem

    folder = posixpath.dirname(path) or "."
    fs.makedirs(folder, exist_ok=True)
    # Written beside the result on local disks, so that moving it into place is a rename.
    beside = folder if isinstance(fs, LocalFileSystem) else None
    with tempfile.TemporaryDirectory(prefix=".eosc-pangeo-export-", dir=beside) as scratch:
        local = os.path.join(scratch, posixpath.basename(path))
        _write(data, local, format)
        size, sha256 = _size_and_checksum(local)
        crate = _crate(
            posixpath.basename(path),
            format,
            size,
            sha256,
            provenance,
            data,
            lake,
            parameters={"format": format, "attrs": dict(attrs or {})},
        )
        _replace(fs, local, path, overwrite)
    with fs.open(crate_path(path), "w") as out:
        json.dump(crate, out, indent=2)
    return fs.unstrip_protocol(path)


def crate_path(url: str) -> str:
    """Where :func:`export` puts the provenance record of the result at ``url``:
    ``results/pairs.nc`` -> ``results/pairs-ro-crate-metadata.json``."""
    stem, suffix = posixpath.splitext(url.rstrip("/"))
    return (stem if suffix in FORMATS else url.rstrip("/")) + CRATE_SUFFIX


CONTACT_ATTRIBUTES = (
    "creator_name",
    "creator_email",
    "publisher_name",
    "publisher_email",
    "publisher_url",
)


def _contact_settings() -> dict[str, str]:
    """The contact attributes configured for this user and platform (``EOSC_PANGEO_CREATOR_*``,
    ``EOSC_PANGEO_PUBLISHER_*``)."""
    from ..config import get_settings

    settings = get_settings()
    return {key: value for key in CONTACT_ATTRIBUTES if (value := getattr(settings, key))}


def _warn_without_contact(attrs: Mapping[str, Any]) -> None:
    """Warn (from the caller's line) when a result names no creator or publisher e-mail."""
    missing = [key for key in CONTACT_ATTRIBUTES if key.endswith("_email") and not attrs.get(key)]
    if missing:
        # An e-mail cannot be made up: say which ones a data centre will ask for, and how to
        # give them once for every export.
        given = ", ".join(f"{key!r}: ..." for key in missing)
        variables = " and ".join(f"EOSC_PANGEO_{key.upper()}" for key in missing)
        warnings.warn(
            f"export: the result has no {' or '.join(missing)}, which ACDD-1.3 "
            f"recommends and data centres ask for; pass attrs={{{given}}} or set "
            f"{variables}",
            UserWarning,
            stacklevel=3,
        )


def _in_results_dir(url: str) -> str:
    """``url`` below the configured results folder when it is a relative path."""
    from ..config import get_settings

    results = get_settings().results_dir
    if not results or "://" in url or os.path.isabs(url):
        return url
    folder = os.path.expanduser(results)
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, url)


def _format_of(url: str) -> Format:
    suffix = posixpath.splitext(url.rstrip("/"))[1].lower()
    if suffix not in FORMATS:
        raise AnalysisError(
            url,
            f"no format for the suffix {suffix or '(none)'!r}",
            f"use one of {', '.join(FORMATS)} or pass format=",
        )
    return FORMATS[suffix]


# --- content -------------------------------------------------------------------------------


def _prepared(
    obj,
    format: Format,
    attrs: Mapping[str, Any],
    variable_attrs: Mapping[str, Mapping[str, Any]],
    provenance: dict,
):
    if isinstance(obj, xr.DataArray):
        obj = obj.to_dataset(name=obj.name or "value")
    if format in ("csv", "parquet"):
        frame = obj if isinstance(obj, pd.DataFrame) else obj.to_dataframe().reset_index()
        frame = frame.copy()
        frame.attrs = {}
        return frame
    if isinstance(obj, pd.DataFrame):
        obj = _table_as_dataset(obj)
    elif not isinstance(obj, xr.Dataset):
        raise AnalysisError(
            "obj",
            f"cannot export a {type(obj).__name__}",
            "give an xarray Dataset or DataArray, or a pandas DataFrame",
        )
    ds = obj.copy()
    for what in _COORDINATE_ATTRS:
        name = _coords.grid_coordinate(ds, what, required=False)
        if name is not None and name in ds.coords:
            for key, value in _COORDINATE_ATTRS[what](ds[name]).items():
                ds[name].attrs.setdefault(key, value)
    for name, extra in variable_attrs.items():
        if name not in ds.variables:
            raise AnalysisError(
                f"variable_attrs[{name!r}]",
                "is not a variable of the result",
                f"choose among {sorted(map(str, ds.variables))}",
            )
        ds[name].attrs.update(extra)
    ds.attrs = _global_attributes(ds, attrs, provenance)
    for name, variable in ds.variables.items():
        variable.attrs.pop(PROVENANCE_ATTR, None)
        # A source's valid range does not bound what was derived from it (an anomaly of SST is
        # not within 271..313 K), and a packed source's range is in packed units.
        for key in ("valid_min", "valid_max", "valid_range"):
            variable.attrs.pop(key, None)
        variable.attrs.setdefault("long_name", str(variable.attrs.get("standard_name", name)))
        variable.attrs.setdefault(
            "coverage_content_type", "coordinate" if name in ds.coords else "physicalMeasurement"
        )
    return ds


def _table_as_dataset(frame: pd.DataFrame) -> xr.Dataset:
    """A table as CF point features: one ``obs`` dimension, coordinates as CF wants them."""
    frame = frame.reset_index(drop=True)
    columns = {}
    for name, series in frame.items():
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            series = series.dt.tz_convert(None)
        if series.dtype == object or isinstance(series.dtype, pd.StringDtype):
            series = series.astype(str)
        elif pd.api.types.is_extension_array_dtype(series.dtype):
            series = series.astype(float)  # nullable integers: NaN where missing
        columns[str(name)] = ("obs", series.to_numpy())
    ds = xr.Dataset(columns)
    ds.attrs = {k: v for k, v in frame.attrs.items() if k not in (COLUMN_ATTRS, COORDINATE_COLUMNS)}
    for name, attrs in json.loads(frame.attrs.get(COLUMN_ATTRS, "{}")).items():
        if name in ds.variables:
            ds[name].attrs.update(attrs)
    found = {
        what: _coords.table_column(ds.variables, what, required=False)
        for what in ("latitude", "longitude", "time", "vertical")
    }
    for what, name in found.items():
        if name is not None:
            ds[name].attrs.update(_COORDINATE_ATTRS[what](ds[name]))
    coords = [n for n in found.values() if n is not None]
    coords += [
        n
        for n in json.loads(frame.attrs.get(COORDINATE_COLUMNS, "[]"))
        if n in ds.variables and n not in coords
    ]
    ds = ds.set_coords(coords)
    if {"latitude", "longitude", "time"} <= {k for k, v in found.items() if v}:
        ds.attrs["featureType"] = "point"
        for name in ds.data_vars:
            ds[name].attrs["coordinates"] = " ".join(coords)
        ds.attrs["cdm_data_type"] = "Point"
    return ds


_COORDINATE_ATTRS = {
    "latitude": lambda v: {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"},
    "longitude": lambda v: {"standard_name": "longitude", "units": "degrees_east", "axis": "X"},
    "time": lambda v: {"standard_name": "time", "axis": "T"},
    "vertical": lambda v: (
        (
            {"standard_name": "sea_water_pressure", "units": "dbar"}
            if "pres" in str(v.name).lower()
            else {"standard_name": "depth", "units": "m"}
        )
        | {"axis": "Z", "positive": "down"}
    ),
}


def _global_attributes(ds: xr.Dataset, given: Mapping[str, Any], provenance: dict) -> dict:
    """CF and ACDD global attributes: the object's, the caller's, then what the data says."""
    inputs = ", ".join(f"{i['collection']} v{i['version']}" for i in provenance["inputs"])
    steps = [s["function"].rsplit(".", 1)[-1] for s in provenance["steps"]]
    attrs = {k: v for k, v in ds.attrs.items() if k != PROVENANCE_ATTR}
    # A lake collection's own identity is not the result's.
    for key in ("id", "product_version", "date_modified", "date_created", "date_issued"):
        attrs.pop(key, None)
    attrs.update(given)
    attrs.update({k: v for k, v in _contact_settings().items() if not attrs.get(k)})
    now = utcnow()
    defaults = {
        "Conventions": CONVENTIONS,
        "title": "eosc-pangeo analysis result",
        "summary": f"Result of {', '.join(steps) or 'an analysis'} computed on the eosc-pangeo "
        f"platform" + (f" from {inputs}" if inputs else "") + ".",
        "keywords": ", ".join(_keywords(ds)),
        "id": str(uuid.uuid4()),
        "naming_authority": "eu.eosc-pangeo",
        "source": inputs or "user data",
        "processing_level": "derived product",
        "creator_name": "eosc-pangeo user",
        "creator_type": "person",
        "institution": "eosc-pangeo",
        "project": "EOSC Pangeo",
        "publisher_name": "eosc-pangeo",
        "publisher_url": PROJECT_URL,
        "creator_url": PROJECT_URL,
        "acknowledgement": "Computed on the eosc-pangeo platform from the inputs named in source.",
        "comment": "Provenance (inputs, calls, software): the RO-Crate "
        "*-ro-crate-metadata.json beside this file.",
        "license": "see the licences of the inputs",
        # The table IOOS compliance-checker ships, which the test suite checks names against.
        "standard_name_vocabulary": "CF Standard Name Table v93",
        "date_created": now,
        "date_modified": now,
        "history": f"{now} eosc_pangeo.analysis.export ({', '.join(steps) or 'no steps'})",
        "product_version": "1",
    }
    for key, value in defaults.items():
        attrs.setdefault(key, value)
    attrs["Conventions"] = CONVENTIONS
    attrs.update(_extents(ds))
    return {k: _attribute_value(v) for k, v in attrs.items()}


def _keywords(ds: xr.Dataset) -> list[str]:
    words = [
        str(ds[n].attrs.get("standard_name") or ds[n].attrs.get("long_name") or n)
        for n in ds.data_vars
    ]
    return list(dict.fromkeys(words))


def _extents(ds: xr.Dataset) -> dict[str, Any]:
    """ACDD extents measured on the data: bounds, vertical range, time coverage."""
    out = {}
    for what, key in (("latitude", "lat"), ("longitude", "lon")):
        name = _coords.grid_coordinate(ds, what, required=False)
        if name is not None and ds[name].size:
            values = np.asarray(ds[name].values, dtype=float)
            out[f"geospatial_{key}_min"] = float(np.nanmin(values))
            out[f"geospatial_{key}_max"] = float(np.nanmax(values))
            out[f"geospatial_{key}_units"] = "degrees_north" if key == "lat" else "degrees_east"
    if "geospatial_lat_min" in out and "geospatial_lon_min" in out:
        s, n = out["geospatial_lat_min"], out["geospatial_lat_max"]
        w, e = out["geospatial_lon_min"], out["geospatial_lon_max"]
        out["geospatial_bounds"] = f"POLYGON (({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}))"
        out["geospatial_bounds_crs"] = "EPSG:4326"
    name = _coords.grid_coordinate(ds, "vertical", required=False)
    if name is not None and ds[name].size:
        values = np.asarray(ds[name].values, dtype=float)
        out["geospatial_vertical_min"] = float(np.nanmin(values))
        out["geospatial_vertical_max"] = float(np.nanmax(values))
        out["geospatial_vertical_units"] = str(ds[name].attrs.get("units", "m"))
        out["geospatial_vertical_positive"] = str(ds[name].attrs.get("positive", "down"))
        out["geospatial_bounds_vertical_crs"] = (
            "EPSG:5831" if out["geospatial_vertical_positive"] == "down" else "EPSG:5829"
        )
    name = _coords.grid_coordinate(ds, "time", required=False)
    if name is not None and ds[name].size and ds[name].dtype.kind in "MO":
        times = pd.DatetimeIndex(_coords.as_datetime64(ds[name].values, name).ravel()).dropna()
        if len(times):
            out["time_coverage_start"] = times.min().strftime("%Y-%m-%dT%H:%M:%SZ")
            out["time_coverage_end"] = times.max().strftime("%Y-%m-%dT%H:%M:%SZ")
            out["time_coverage_duration"] = (times.max() - times.min()).isoformat()
            steps = np.diff(np.unique(times.values))
            if steps.size:
                out["time_coverage_resolution"] = pd.Timedelta(np.median(steps)).isoformat()
    return out


def _attribute_value(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str | int | float | np.number | np.ndarray):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, int | float) for v in value):
        return np.asarray(value)
    return str(value)


# --- writing -------------------------------------------------------------------------------


def _write(data, local: str, format: Format) -> None:
    if format == "csv":
        data.to_csv(local, index=False)
    elif format == "parquet":
        data.to_parquet(local, index=False)
    elif format == "netcdf":
        data.to_netcdf(local, engine="netcdf4", format="NETCDF4", encoding=_netcdf_encoding(data))
    else:
        data.to_zarr(local, mode="w-", consolidated=True)


def _netcdf_encoding(ds: xr.Dataset) -> dict:
    """Compressed data; coordinates without _FillValue and times as float64 (CF rules); 64-bit
    integers as 32-bit where they fit, for readers of CF before 1.9."""
    encoding = {}
    for name, variable in ds.variables.items():
        kind = variable.dtype.kind
        enc = {"zlib": True, "complevel": 4} if kind in "fiuMm" and variable.ndim else {}
        if name in ds.coords:
            enc["_FillValue"] = None
        if kind in "Mm":
            enc["dtype"] = "float64"
        elif (
            kind in "iu"
            and variable.dtype.itemsize == 8
            and variable.size
            and np.iinfo(np.int32).min <= variable.min()
            and variable.max() <= np.iinfo(np.int32).max
        ):
            enc["dtype"] = "int32"
        encoding[name] = enc
    return encoding


def _size_and_checksum(local: str) -> tuple[int, str | None]:
    if os.path.isdir(local):  # Zarr: a folder has a size but no single checksum
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(local) for f in fs)
        return size, None
    digest = hashlib.sha256()
    with open(local, "rb") as f:
        for block in iter(lambda: f.read(8 * 1024**2), b""):
            digest.update(block)
    return os.path.getsize(local), digest.hexdigest()


def _replace(fs, local: str, path: str, overwrite: bool) -> None:
    """Move the finished result into place (a rename on local disks; an upload elsewhere)."""
    from fsspec.implementations.local import LocalFileSystem

    if overwrite and fs.exists(path):
        fs.rm(path, recursive=True)
    if isinstance(fs, LocalFileSystem):
        os.replace(local, path)  # a file or a Zarr folder, within one file system
    else:
        fs.put(local, path, recursive=os.path.isdir(local))


# --- provenance ----------------------------------------------------------------------------


def _crate(
    name: str,
    format: Format,
    size: int,
    sha256: str | None,
    provenance: dict,
    data,
    lake,
    parameters: dict,
) -> dict:
    """The RO-Crate 1.2 (JSON-LD) of one result: written by hand because ro-crate-py builds
    crates as folders holding the data, and this one is a detached record beside a result."""
    software = software_versions(
        (*WRITERS, "cf-units", "cftime", "cf-xarray", "scipy", "pandas", "dask")
    )
    tools = [
        {"@id": f"#software-{n}", "@type": "SoftwareApplication", "name": n, "version": v}
        for n, v in software.items()
    ]
    inputs = [_input_entity(i, lake) for i in provenance["inputs"]]
    result = {
        "@id": name,
        "@type": "Dataset" if format == "zarr" else "File",
        "name": name,
        "encodingFormat": MEDIA_TYPES[format],
        "contentSize": size,
        "dateCreated": utcnow(),
    }
    if sha256:
        result["sha256"] = sha256
    if isinstance(data, xr.Dataset):
        result["variableMeasured"] = [str(v) for v in data.data_vars]
        result["description"] = str(data.attrs.get("summary", ""))
    actions = []
    for n, step in enumerate(
        [
            *provenance["steps"],
            {"function": "eosc_pangeo.analysis.export", "time": utcnow(), "parameters": parameters},
        ]
    ):
        actions.append(
            {
                "@id": f"#step-{n}",
                "@type": "CreateAction",
                "name": step["function"],
                "endTime": step["time"],
                "instrument": {"@id": "#software-eosc-pangeo"},
                "object": [{"@id": i["@id"]} for i in inputs],
                "result": {"@id": name},
                "additionalProperty": [
                    {"@type": "PropertyValue", "name": k, "value": json.dumps(v)}
                    for k, v in step["parameters"].items()
                ],
            }
        )
    return {
        "@context": "https://w3id.org/ro/crate/1.2/context",
        "@graph": [
            {
                "@id": posixpath.splitext(name)[0] + CRATE_SUFFIX,
                "@type": "CreativeWork",
                "conformsTo": {"@id": "https://w3id.org/ro/crate/1.2"},
                "about": {"@id": "./"},
            },
            {
                "@id": "./",
                "@type": "Dataset",
                "name": f"eosc-pangeo result {name}",
                "datePublished": utcnow(),
                "hasPart": [{"@id": name}],
                "mentions": [{"@id": a["@id"]} for a in actions],
            },
            result,
            *inputs,
            *actions,
            *tools,
        ],
    }


def _input_entity(collection: dict, lake) -> dict:
    entity = {
        "@id": f"#collection-{collection['collection']}-v{collection['version']}",
        "@type": "Dataset",
        "identifier": collection["collection"],
        "version": str(collection["version"]),
    }
    entity.update(_manifest_facts(collection, lake))
    return entity


def _manifest_facts(collection: dict, lake) -> dict:
    """URL and manifest checksum of a lake collection, if the lake holds that version still."""
    from ..lake.errors import LakeError
    from ..lake.manifest import read_manifest
    from ..lake.storage import MANIFEST, Lake

    try:
        lake = Lake.from_url(lake)
        path = lake.find_collection(collection["collection"])
        manifest = read_manifest(lake, path)
        raw = lake.fs.cat_file(posixpath.join(path, MANIFEST))
    except (LakeError, ValueError, OSError):
        return {"description": "not found in the configured lake: no manifest checksum"}
    facts = {"url": lake.fs.unstrip_protocol(path), "lakeManifest": MANIFEST}
    if manifest.version == collection["version"]:
        facts["sha256"] = hashlib.sha256(raw).hexdigest()
    else:
        facts["description"] = (
            f"the lake now holds version {manifest.version}: the manifest "
            "of the version read is no longer there to checksum"
        )
    return facts
