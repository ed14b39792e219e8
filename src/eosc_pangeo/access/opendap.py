"""OPeNDAP (DAP 2) for grid collections: ``.dds``, ``.das`` and ``.dods`` with hyperslabs.

Packed variables are sent as the lake stores them, integers with their ``scale_factor``,
``add_offset`` and ``_FillValue`` attributes, as THREDDS and Hyrax do: pydap, netCDF-C and
xarray decode them on the client, and the answer is half the bytes of decoded floats (and
compresses better).

The DAP objects and their XDR encoding come from xpublish-opendap and opendap-protocol. What
is ours is the check in front of them: a constraint is parsed strictly (a malformed one, a name
that is not in the dataset or an index outside the data is a 400 that says so) and its size is
known before any chunk is read, so that a request over the client's limit is refused with 413
and the way to split it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import unquote

import xarray as xr

from .errors import BadRequest, TooLarge

# name(.name)*([i] | [start:stop] | [start:stride:stop])*
_PROJECTION = re.compile(r"^([A-Za-z_][\w\-]*(?:\.[A-Za-z_][\w\-]*)?)((?:\[[^\[\]]*\])*)$")
_HYPERSLAB = re.compile(r"\[([^\[\]]*)\]")


@dataclass(frozen=True)
class Projection:
    """One requested variable: its path as the constraint names it and its index ranges."""

    path: str
    variable: str
    ranges: tuple[range, ...]

    @property
    def size(self) -> int:
        return math.prod(len(r) for r in self.ranges)


def parse_constraint(query: str, ds: xr.Dataset) -> list[Projection]:
    """The projections of a DAP 2 constraint expression on ``ds``.

    Parameters
    ----------
    query
        The URL's query string (``analysed_sst[0:1:9][10:20][30:40],lat``), still quoted.
    ds
        The dataset the constraint applies to.

    Raises
    ------
    BadRequest
        Selections (``&...``), unknown names, malformed or out-of-range hyperslabs.
    """
    text = unquote(query).strip()
    if not text:
        return [_whole(name, ds) for name in ds.variables]
    projection_part, _, selection = text.partition("&")
    if selection:
        raise BadRequest(
            f"DAP selections ('&{selection}') are not supported on grids: "
            "subset with hyperslabs, e.g. ?sst[0:1:9][10:20][30:40]"
        )
    return [_projection(item.strip(), ds) for item in projection_part.split(",") if item.strip()]


def _whole(name: str, ds: xr.Dataset) -> Projection:
    return Projection(str(name), str(name), tuple(range(n) for n in ds[name].shape))


def _projection(item: str, ds: xr.Dataset) -> Projection:
    match = _PROJECTION.match(item)
    if match is None:
        raise BadRequest(f"malformed DAP projection {item!r}: write name[start:stride:stop]...")
    path, slabs = match.groups()
    grid, _, member = path.partition(".")
    if grid not in ds.variables or (member and member != grid and member not in ds[grid].dims):
        known = ", ".join(map(str, ds.variables))
        raise BadRequest(f"no variable {path!r} in the dataset (variables: {known})")
    variable = member or grid
    shape = ds[variable].shape if member and member != grid else ds[grid].shape
    dims = ds[variable].dims if member and member != grid else ds[grid].dims
    hyperslabs = _HYPERSLAB.findall(slabs)
    if hyperslabs and len(hyperslabs) != len(shape):
        raise BadRequest(
            f"{path} has {len(shape)} dimensions ({', '.join(map(str, dims))}) "
            f"but the constraint gives {len(hyperslabs)} hyperslabs"
        )
    if not hyperslabs:
        return Projection(path, variable, tuple(range(n) for n in shape))
    return Projection(
        path,
        variable,
        tuple(
            _hyperslab(text, length, f"{path}[{dim}]")
            for text, length, dim in zip(hyperslabs, shape, dims, strict=True)
        ),
    )


def _hyperslab(text: str, length: int, where: str) -> range:
    parts = text.split(":")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise BadRequest(
            f"{where}: hyperslab [{text}] must be [i], [start:stop] or "
            "[start:stride:stop] with integers"
        ) from None
    if len(numbers) == 1:
        start, stride, stop = numbers[0], 1, numbers[0]
    elif len(numbers) == 2:
        (start, stop), stride = numbers, 1
    elif len(numbers) == 3:
        start, stride, stop = numbers
    else:
        raise BadRequest(f"{where}: hyperslab [{text}] has more than three parts")
    if stride < 1 or not 0 <= start <= stop < length:
        raise BadRequest(
            f"{where}: [{text}] is outside the data, which has {length} values "
            f"(indices 0..{length - 1}; stop is inclusive, stride >= 1)"
        )
    return range(start, stop + 1, stride)


def check_size(projections: list[Projection], ds: xr.Dataset, limit: int) -> int:
    """Bytes the projections read; :class:`TooLarge` above ``limit``, with how to split."""
    total = sum(p.size * ds[p.variable].dtype.itemsize for p in projections)
    if total > limit:
        biggest = max(projections, key=lambda p: p.size * ds[p.variable].dtype.itemsize)
        dims = ", ".join(map(str, ds[biggest.variable].dims))
        raise TooLarge(
            f"the request reads {total / 1e6:.1f} MB, over this client's limit of "
            f"{limit / 1e6:.1f} MB: split it along {dims} of {biggest.path} with "
            "hyperslabs, e.g. a few time steps per request"
        )
    return total


def dap_dataset(
    ds: xr.Dataset,
    name: str,
    projections: list[Projection] | None = None,
    *,
    with_data: bool = True,
):
    """The DAP object tree of ``ds``, or of just the ``projections`` asked for, already sliced.

    xpublish-opendap converts the variables; the slicing is done here, on the lazy arrays (so
    only the chunks asked for are read, from the store the lake routes the slice to), because
    opendap-protocol reads ``[start:stride:stop]`` as a Python slice and applies one hyperslab
    to every projection of a request. ``with_data=False`` (``.dds``, ``.das``) reads no values.
    """
    ds = _typed_fill_values(ds)
    if not with_data:
        # The conversion takes each array's data: dask arrays keep it unread.
        ds = ds.chunk()
    import opendap_protocol as dap
    from xpublish_opendap.dap_xarray import dap_attribute, dap_dimension, dap_grid

    if projections is None:
        from xpublish_opendap.dap_xarray import dap_dataset as convert

        return convert(ds, name)
    dataset = dap.Dataset(name=name)
    for projection in projections:
        variable = ds[projection.variable]
        sliced = variable[tuple(slice(r.start, r.stop, r.step) for r in projection.ranges)]
        if variable.ndim == 1 and projection.variable in ds.dims:
            dataset.append(dap_dimension(sliced))
        else:
            dims = {dim: dap_dimension(sliced[dim]) for dim in sliced.dims}
            dataset.append(dap_grid(sliced, dims))
    for key, value in ds.attrs.items():
        dataset.append(dap_attribute(key, value))
    return dataset


#: Attributes that hold data values, so must have the variable's own type in DAP 2.
_VALUE_ATTRIBUTES = ("_FillValue", "missing_value", "valid_min", "valid_max")


def _typed_fill_values(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with its fill and valid values typed as their variables, as netCDF-C requires.

    Zarr gives an ``int16`` variable's ``_FillValue`` as a Python int, which xpublish-opendap
    would declare ``Int32``; netCDF-C refuses a ``_FillValue`` of another type than its
    variable's.
    """
    ds = ds.copy(deep=False)
    for variable in ds.variables.values():
        typed = {
            key: variable.dtype.type(variable.attrs[key])
            for key in _VALUE_ATTRIBUTES
            if key in variable.attrs and variable.dtype.kind in "iuf"
        }
        variable.attrs.update(typed)
    return ds
