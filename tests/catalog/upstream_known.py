"""Known disagreements between packages we depend on, for tests to mark."""

import pytest


def intake_esm_refused_by_zarr() -> bool:
    """intake-esm gives zarr ``storage_options={}`` for every store, which zarr >= 3.4 refuses
    for local ones (it accepts them only with fsspec URLs): then a local lake's intake-esm
    catalogue cannot be opened with intake-esm, whatever the catalogue holds."""
    import zarr
    from packaging.version import Version

    return Version(zarr.__version__) >= Version("3.4")


#: Expected to fail where intake-esm and zarr disagree; strict, so a fix upstream is noticed.
INTAKE_ESM_LOCAL = pytest.mark.xfail(
    intake_esm_refused_by_zarr(),
    strict=True,
    reason="intake-esm passes storage_options={} that zarr >= 3.4 refuses for local stores",
)
