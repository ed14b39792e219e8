"""The two kinds of collection, each behind one interface, found from the manifest's ``kind``.

As xarray's ``BackendEntrypoint`` gives each engine one object that opens its files, each kind
of collection (``grid``: Zarr stores; ``insitu``: GeoParquet files) has one
:class:`CollectionKind` that ingests, reads, checks and lays out its data, and says how Intake
opens it. Code that serves both kinds asks :func:`kind_of` for the manifest's kind instead of
testing ``manifest.kind``. The catalogue's STAC description of each kind needs pystac, so it is
kept beside the rest of the STAC code, in one registry keyed by the same names
(``eosc_pangeo.catalog.stac.DESCRIPTIONS``).

The implementations import their libraries when called: importing this module stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import LakeError

if TYPE_CHECKING:
    from .errors import Finding
    from .manifest import IngestReport, Manifest
    from .storage import Lake


class CollectionKind:
    """What every kind of collection does; one subclass per kind, registered in :data:`KINDS`."""

    #: The manifest's ``kind``.
    name: ClassVar[str]

    def ingest(
        self, lake: str | Lake, collection: str, domain: str, files: Sequence[str], **options
    ) -> IngestReport:
        """Ingest source files into the collection (``options`` are the kind's own)."""
        raise NotImplementedError

    def read(
        self,
        lake: str | Lake,
        collection: str,
        *,
        bbox=None,
        time=None,
        variables: Sequence[str] | None = None,
    ):
        """The collection's data in ``bbox`` and the ``time`` period, ``variables`` only (each
        None for all): a lazy Dataset for a grid, a DataFrame for observations."""
        raise NotImplementedError

    def check(self, lake: Lake, collection_path: str, manifest: Manifest) -> list[Finding]:
        """Every check ``lake validate`` makes of the collection's data."""
        raise NotImplementedError

    def data_paths(self, manifest: Manifest) -> dict[str, str | list[str]]:
        """Where the data is, relative to the collection's folder, by part: each store of a
        grid, the files of observations."""
        raise NotImplementedError

    def intake_entries(
        self, lake: Lake, manifest: Manifest, description: str, metadata: dict[str, Any]
    ) -> dict[str, dict[str, Any]]:
        """The Intake entries (driver and arguments) that open the collection, by name."""
        raise NotImplementedError


class GridKind(CollectionKind):
    """Gridded data: one or two Zarr stores of the same fields (``map.zarr``,
    ``timeseries.zarr``), read as one lazy Dataset."""

    name = "grid"

    def ingest(self, lake, collection, domain, files, **options):
        from .grid_write import ingest_grid

        return ingest_grid(lake, collection, domain, files, **options)

    def read(self, lake, collection, *, bbox=None, time=None, variables=None):
        from .grid import open_grid

        return open_grid(lake, collection, bbox=bbox, time=time, variables=variables)

    def check(self, lake, collection_path, manifest):
        from .grid import check_grid

        return check_grid(lake, collection_path, manifest)

    def data_paths(self, manifest):
        return {name: store.path for name, store in manifest.stores.items()}

    def intake_entries(self, lake, manifest, description, metadata):
        options = {"storage_options": lake.storage_options} if lake.storage_options else {}
        # intake-xarray's zarr driver opens Zarr stores by URL; an Icechunk repository of
        # references (an ingest by reference) is opened through icechunk's own sessions, so it
        # has no entry: eosc_pangeo.open_dataset reads it.
        stores = {
            name: path
            for name, path in self.data_paths(manifest).items()
            if not manifest.stores[name].references
        }
        return {
            manifest.id if name == "map" else f"{manifest.id}_{name}": {
                "description": f"{description} (chunked for {'maps' if name == 'map' else name})",
                "driver": "zarr",
                "args": {
                    "urlpath": lake.uri(manifest.domain, manifest.id, path),
                    "engine": "zarr",
                    "consolidated": True,
                    "chunks": {},
                    **options,
                },
                "metadata": metadata,
            }
            for name, path in stores.items()
        }


class InsituKind(CollectionKind):
    """In-situ observations: one long GeoParquet table in month folders, read as a DataFrame."""

    name = "insitu"

    def ingest(self, lake, collection, domain, files, **options):
        from .insitu import ingest_insitu

        return ingest_insitu(lake, collection, domain, files, **options)

    def read(self, lake, collection, *, bbox=None, time=None, variables=None):
        from .insitu import read_insitu

        return read_insitu(lake, collection, bbox=bbox, time=time, variables=variables)

    def check(self, lake, collection_path, manifest):
        from .insitu import check_insitu

        return check_insitu(lake, collection_path, manifest)

    def data_paths(self, manifest):
        return {"observations": [f.path for f in manifest.files]}

    def intake_entries(self, lake, manifest, description, metadata):
        options = {"storage_options": lake.storage_options} if lake.storage_options else {}
        return {
            manifest.id: {
                "description": description,
                "driver": "parquet",
                "args": {
                    "urlpath": [
                        lake.uri(manifest.domain, manifest.id, path)
                        for path in self.data_paths(manifest)["observations"]
                    ],
                    "engine": "pyarrow",
                    **options,
                },
                "metadata": metadata,
            }
        }


#: Every kind of collection, by the name its manifests give.
KINDS: dict[str, CollectionKind] = {kind.name: kind for kind in (GridKind(), InsituKind())}


def kind_of(manifest_or_kind: Manifest | str) -> CollectionKind:
    """The interface of a manifest's kind (or of a kind's name).

    Raises
    ------
    LakeError
        For a kind no interface is registered for.
    """
    name = getattr(manifest_or_kind, "kind", manifest_or_kind)
    try:
        return KINDS[name]
    except KeyError:
        raise LakeError(
            f"no collection kind {name!r} (kinds: {', '.join(KINDS)}): is the "
            "manifest from a newer eosc-pangeo?"
        ) from None
