"""OPeNDAP (DAP 2) for grid collections: ``.dds``, ``.das`` and ``.dods`` with hyperslabs.

Packed variables are sent as the lake stores them, integers with their ``scale_factor``,
``add_offset`` and ``_FillValue`` attributes, as THREDDS and Hyrax do: pydap, netCDF-C and
xarray decode them on the client, and the answer is half the bytes of decoded floats (and
compresses better).

The DAP objects and their XDR encoding come from xpublish-opendap and opendap-protocol
(:mod:`.dap_objects`). What is ours is the check in front of them: a constraint is parsed
strictly (a malformed one, a name that is not in the dataset or an index outside the data is a
400 that says so) and its size is known before any chunk is read, so that a request over the
client's limit is refused with 413 and the way to split it.
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
