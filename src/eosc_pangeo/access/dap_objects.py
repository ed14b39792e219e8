"""OPeNDAP (DAP 2) objects of a grid collection, built by xpublish-opendap's conversion and
encoded by opendap-protocol, for the projections :mod:`.opendap` has checked.

Imported on the first OPeNDAP request, not with the package: opendap-protocol imports
``dask.array``, about a second that the hub, which reads the service's policy, need not pay.
"""

from __future__ import annotations

import opendap_protocol as dap
import xarray as xr
import xpublish_opendap.dap_xarray as xpublish_dap

from .opendap import Projection


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
    if projections is None:
        return xpublish_dap.dap_dataset(ds, name)
    dataset = dap.Dataset(name=name)
    structures: dict[str, dap.Structure] = {}
    for projection in projections:
        variable = ds[projection.variable]
        sliced = variable[tuple(slice(r.start, r.stop, r.step) for r in projection.ranges)]
        grid, _, member = projection.path.partition(".")
        if member:
            # One member of a grid, which is what pydap and netCDF-C ask for a variable's
            # values (``sst.sst[...]``): DAP 2 answers it alone, in a structure named after
            # the grid, as Hyrax and THREDDS do. Sending the whole grid would add its maps,
            # which for a point series (a year of times) outweigh the values themselves.
            if grid not in structures:
                structures[grid] = dap.Structure(name=grid)
                dataset.append(structures[grid])
            structures[grid].append(_array(sliced))
        elif variable.ndim == 1 and projection.variable in ds.dims:
            dataset.append(xpublish_dap.dap_dimension(sliced))
        else:
            dims = {dim: xpublish_dap.dap_dimension(sliced[dim]) for dim in sliced.dims}
            dataset.append(xpublish_dap.dap_grid(sliced, dims))
    dataset.append(*(xpublish_dap.dap_attribute(key, value) for key, value in ds.attrs.items()))
    return dataset


class ShapedArray(dap.Array):
    """An array declared with all its dimensions (``Int16 sst[time = 9][lat = 1][lon = 1]``):
    opendap-protocol's own declares one, named after the array, as a grid's maps are."""

    def __init__(self, variable: xr.DataArray) -> None:
        super().__init__(
            name=variable.name, data=variable.data, dtype=xpublish_dap.dap_dtype(variable)
        )
        self.dims = variable.dims
        self.append(
            *(xpublish_dap.dap_attribute(key, value) for key, value in variable.attrs.items())
        )

    def dds(self, constraint: str = "", slicing=None):
        shape = "".join(
            f"[{dim} = {length}]" for dim, length in zip(self.dims, self.data.shape, strict=True)
        )
        yield f"{self.indent}{self.dtype()} {self.name}{shape};\n"


def _array(variable: xr.DataArray) -> dap.Array:
    """``variable`` alone as a DAP array: a dimension's coordinate as xpublish-opendap encodes
    it, any other variable with each of its dimensions declared."""
    if variable.ndim == 1 and variable.name in variable.dims:
        return xpublish_dap.dap_dimension(variable)
    return ShapedArray(variable)


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
