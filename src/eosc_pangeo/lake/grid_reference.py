"""Grid ingest by reference: the map store as an Icechunk repository of virtual references to
the sources' own chunks, nothing copied or inflated.

A copied-chunk ingest still reads every source byte, inflates each chunk to check it and writes
it again; an ingest by reference records, for each chunk of each data variable, the file, offset
and length of the chunk where the source stores it (VirtualiZarr's chunk manifests), and writes
only the coordinates and the Zarr metadata. The references are committed to an Icechunk
repository (``map.icechunk``): each ingest is one Icechunk commit, which the manifest names
(:attr:`~eosc_pangeo.lake.manifest.ZarrStore.snapshot`), so that readers open exactly the
committed version and a failed ingest leaves the previous one as it was.

The sources stay where they are: the collection reads its values from them, so they must stay
at their recorded ``url``, unchanged (``lake validate`` checks their size and SHA-256, and
Icechunk refuses to read a chunk of a file modified after the ingest). Readers need the
``icechunk`` package (``pip install 'eosc-pangeo[references]'``); zarr-python and xarray then
read the repository's store as any Zarr store.

Only local sources and lakes are ingested by reference for now; the map store keeps the
sources' chunks and compression, so every source must store each variable alike.
"""

from __future__ import annotations

import math
import os
import posixpath
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import h5py
import numpy as np
import xarray as xr

from .errors import Finding, IngestError, LakeError
from .grid_plan import TIME_INDEX_CHUNK
from .hdf5_chunks import raw_chunks
from .manifest import ZarrStore
from .storage import MAP_REFERENCES, Lake, sha256_of, source_fs

if TYPE_CHECKING:
    from .grid_sources import SourceGrid
    from .manifest import Manifest, Progress

BRANCH = "main"
#: Attributes whose NumPy type decides the type packed values decode to (a float32
#: ``scale_factor`` decodes to float32, as netCDF readers do); JSON attributes lose it.
_TYPED_ATTRIBUTES = ("scale_factor", "add_offset")
#: The CF encoding of the times and their bounds (how values are encoded, not stored).
_CF_ENCODING = ("units", "calendar", "dtype", "_FillValue")
_INSTALL = "install them with pip install 'eosc-pangeo[references]'"


def check_options(
    manifest: Manifest | None, by_reference: bool, chunking: str, values: str, collection: str
) -> None:
    """Raise :class:`IngestError` unless an ingest with (or without) ``by_reference`` fits
    the collection and the other options.

    Whether a collection holds references is fixed when it is created. By reference, the map
    store keeps the sources' chunks and their packing: there is no time-series store and
    nothing decoded.
    """
    if manifest is not None and is_by_reference(manifest) != by_reference:
        held = "references to its sources" if is_by_reference(manifest) else "copies of its data"
        flag = "--by-reference" if is_by_reference(manifest) else "--no-by-reference"
        raise IngestError(
            f"collection {collection!r}",
            f"holds {held}",
            f"ingest into it with by_reference={not by_reference} ({flag}); this is chosen "
            "when a collection is created",
        )
    if by_reference and chunking != "map":
        raise IngestError(
            f"chunking {chunking!r}",
            "needs stores chunked by the lake, and an ingest by reference keeps the sources' "
            "own chunks (a map store only)",
            "pass chunking='map' (--chunking map) with by_reference",
        )
    if by_reference and values == "decoded":
        raise IngestError(
            "values 'decoded'",
            "cannot be stored by reference: the references read the sources' values as stored",
            "pass values='auto' or 'packed', or ingest by copy",
        )


def is_by_reference(manifest: Manifest) -> bool:
    """Whether the collection's data are references to its sources (an Icechunk store)."""
    return any(store.references for store in manifest.stores.values())


def plan_references(source: SourceGrid) -> dict[str, ZarrStore]:
    """The store of a new collection ingested by reference: a map store in the chunks of its
    first source, with the types of its packing attributes."""
    check_local(source)
    name = next(iter(source.variables))
    with raw_chunks(source.path, source.local) as h5:
        chunks = h5[name].chunks or h5[name].shape
    types = {
        variable: {
            key: np.asarray(source.dataset[variable].attrs[key]).dtype.name
            for key in _TYPED_ATTRIBUTES
            if key in source.dataset[variable].attrs
        }
        for variable in source.variables
    }
    store = ZarrStore(
        path=MAP_REFERENCES,
        chunking="map",
        chunks=dict(zip(source.variables[name].dims, chunks, strict=True)),
        time_length=0,
        references=True,
        attribute_types={name: types for name, types in types.items() if types},
    )
    return {"map": store}


def check_local(source: SourceGrid) -> None:
    """Raise :class:`IngestError` unless the source is a file of this machine's disks."""
    if not source.local:
        raise IngestError(
            source.url,
            "is not a file on this machine's disks: an ingest by reference reads its sources "
            "in place, and does so from local files only",
            "copy the files to a local disk first, or ingest them by copy",
        )


class ReferenceRepository:
    """The Icechunk repository of a by-reference map store, opened for one ingest.

    Use as a context manager: on leaving with an exception after :meth:`commit`, the branch is
    set back to the snapshot the manifest names, so that the next ingest and every reader go
    on from the previous version. A new repository is deleted with its collection's folder by
    the caller's :class:`~eosc_pangeo.lake.transaction.Transaction`.

    Parameters
    ----------
    lake, collection_path
        Where the collection is.
    info
        The manifest's record of the store (its ``snapshot`` is the committed version, None
        for a new store).
    folders
        The folders of every source the store references: Icechunk reads virtual chunks only
        from containers the repository declares and the reader authorises.
    """

    def __init__(
        self, lake: Lake, collection_path: str, info: ZarrStore, folders: Sequence[str]
    ) -> None:
        if not lake.is_local:
            raise IngestError(
                lake.url,
                "is not a lake on this machine's disks: Icechunk repositories of references "
                "are written to local lakes only",
                "ingest into a local lake, or ingest by copy",
            )
        self.path = f"{collection_path}/{info.path}"
        self.info = info
        #: The snapshot the manifest names before this ingest (None for a new store).
        self.previous = info.snapshot
        self.folders = sorted(set(folders))
        self.committed: str | None = None

    def __enter__(self) -> ReferenceRepository:
        icechunk = _icechunk("an ingest by reference")
        config = icechunk.RepositoryConfig.default()
        for prefix in map(container_prefix, self.folders):
            config.set_virtual_chunk_container(
                icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(prefix))
            )
        storage = icechunk.local_filesystem_storage(self.path)
        access = local_access(icechunk, map(container_prefix, self.folders))
        if self.previous is None:
            self.repository = icechunk.Repository.create(storage, config, access)
        else:
            self.repository = icechunk.Repository.open(storage, config, access)
            if self.repository.lookup_branch(BRANCH) != self.previous:
                # A commit that no manifest names (an ingest killed before its manifest).
                self.repository.reset_branch(BRANCH, self.previous)
        self.session = self.repository.writable_session(BRANCH)
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is not None and self.committed and self.previous is not None:
            self.repository.reset_branch(BRANCH, self.previous)

    def write(
        self, sources: list[SourceGrid], times: np.ndarray, start: int, progress: Progress
    ) -> None:
        """Write the references of ``sources`` (whose times, sorted, are ``times``) at the
        time steps from ``start`` on: a new store when ``start`` is 0, appended otherwise."""
        dataset = virtual_dataset(sources, times, progress)
        time_name = sources[0].time_name
        if start == 0:
            for name, variable in dataset.variables.items():
                if variable.dims[:1] == (time_name,) and name not in sources[0].variables:
                    # Read whole at every open: one chunk for decades, not one per file,
                    # compressed by Zarr's default codecs rather than stored as in the source.
                    variable.encoding = {
                        **{k: v for k, v in variable.encoding.items() if k in _CF_ENCODING},
                        "chunks": (TIME_INDEX_CHUNK, *variable.shape[1:]),
                    }
            dataset.vz.to_icechunk(self.session.store)
        else:
            self._check_alike(dataset, sources[0])
            dataset.vz.to_icechunk(self.session.store, append_dim=time_name)

    def _check_alike(self, dataset: xr.Dataset, first: SourceGrid) -> None:
        """Raise :class:`IngestError` unless the new references (of files laid out like
        ``first``) are chunked and compressed as the store's arrays: a Zarr array has one
        chunk shape and one list of codecs."""
        import zarr

        group = zarr.open_group(self.session.store, mode="r")
        for name in first.variables:  # the references (bounds are data variables too)
            new, stored = dataset[name].data.metadata, group[name].metadata
            if new.chunks != stored.chunks:
                problem = f"stores it in chunks {new.chunks}, the collection in {stored.chunks}"
            elif (new.codecs, new.data_type) != (stored.codecs, stored.data_type):
                problem = (
                    f"stores it as {new.data_type} with codecs {new.codecs}, the collection "
                    f"as {stored.data_type} with {stored.codecs}"
                )
            else:
                continue
            raise IngestError(
                f"{first.url}:{name}",
                problem,
                "references keep the sources' chunks, which must be alike: ingest these "
                "files into a collection of their own, or by copy",
            )

    def commit(self, attributes: dict, message: str) -> str:
        """Set the store's global attributes and commit: return the new snapshot's id."""
        import zarr

        group = zarr.open_group(self.session.store, mode="r+", zarr_format=3)
        # At once: attrs.update writes the group's metadata again for each attribute.
        group.update_attributes(attributes)
        self.committed = self.session.commit(message)
        # The containers of new source folders, saved once their references are committed.
        self.repository.save_config()
        return self.committed

    def history(self) -> str:
        """The store's ``history`` attribute as committed ("" for a new store)."""
        import zarr

        if self.previous is None:
            return ""
        return zarr.open_group(self.session.store, mode="r").attrs.get("history", "")


def local_access(icechunk, prefixes: Iterable[str]) -> dict:
    """Icechunk's authorisation to read virtual chunks from the local folders ``prefixes``:
    the no-credentials sentinel of icechunk 2 (which deprecates None), None before it."""
    credentials = getattr(icechunk, "credentials", None)
    local = getattr(credentials, "LocalFileSystemAccess", None)
    return icechunk.containers_credentials(dict.fromkeys(prefixes, local))


def container_prefix(folder: str) -> str:
    """The Icechunk virtual chunk container of the local files in ``folder``."""
    return f"file://{folder.rstrip('/')}/"


def virtual_dataset(sources: list[SourceGrid], times: np.ndarray, progress: Progress) -> xr.Dataset:
    """The sources as one virtual dataset along time: each data variable a VirtualiZarr
    ``ManifestArray`` of references to the sources' chunks, the other variables (times,
    bounds, coordinates) in memory.

    VirtualiZarr parses the first source's data variables (array metadata, codecs,
    attributes); their chunks' places in the other sources are read with h5py: its parser
    would also parse each one's every attribute into a Dataset, 30 to 45 ms a file where
    reading the chunk index takes well under one; they are checked to store each variable as
    the first does. The other variables are the ones the ingest has read already (the first
    source's coordinates, every source's times and bounds): VirtualiZarr loading them again
    through Zarr took about 10 ms.
    """
    require("virtualizarr", "an ingest by reference")
    from obspec_utils.registry import ObjectStoreRegistry
    from obstore.store import LocalStore
    from virtualizarr import open_virtual_dataset
    from virtualizarr.parsers import HDFParser

    reference = sources[0]
    first = open_virtual_dataset(
        file_url(reference.path),
        registry=ObjectStoreRegistry({"file://": LocalStore()}),
        parser=HDFParser(
            drop_variables=[n for n in reference.dataset.variables if n not in reference.variables]
        ),
        loadable_variables=[],
    )
    arrays = _manifest_arrays(sources, first, progress)
    variables = {
        name: xr.Variable(first[name].dims, arrays[name], first[name].attrs) for name in arrays
    }
    t = reference.time_name
    kept = set(reference.template_names) | set(reference.dataset.coords)
    for name, variable in reference.dataset.variables.items():
        if name in arrays or name not in kept:
            continue
        if name == t:
            values = times
        elif t in variable.dims:
            values = np.concatenate([s.time_values[name] for s in sources], axis=0)
        else:
            values = variable.values
        encoding = {k: v for k, v in variable.encoding.items() if k in _CF_ENCODING}
        variables[name] = xr.Variable(variable.dims, values, variable.attrs, encoding)
    dataset = xr.Dataset(variables)
    return dataset.set_coords([name for name in reference.dataset.coords if name in kept])


def _manifest_arrays(sources: list[SourceGrid], first: xr.Dataset, progress: Progress) -> dict:
    """``{data variable: ManifestArray}`` over every source, from the first's array metadata
    and each source's chunk index."""
    from virtualizarr.manifests import ChunkManifest, ManifestArray

    names = list(sources[0].variables)
    steps = sum(len(source.times) for source in sources)
    metadata = {name: first[name].data.metadata for name in names}
    index = {name: _empty_index(steps, metadata[name].chunks, first[name].shape) for name in names}
    expected: dict[str, _Layout] = {}  # the first source's, which the others must match
    first_step = 0
    for done, source in enumerate(sources, start=1):
        check_local(source)
        with raw_chunks(source.path, True) as h5:
            for name in names:
                chunks = metadata[name].chunks
                dataset = _dataset(h5, source, name)
                layout = _layout(dataset)
                expected.setdefault(name, layout)
                _check_layout(source, name, layout, dataset.shape, expected[name], chunks)
                rows = slice(first_step // chunks[0], (first_step + len(source.times)) // chunks[0])
                _read_index(
                    dataset, layout, file_url(source.path), chunks, [a[rows] for a in index[name]]
                )
        first_step += len(source.times)
        progress("reference", done, len(sources))
    arrays = {}
    for name in names:
        paths, offsets, lengths = index[name]
        # The paths are absolute file:// URLs made here: VirtualiZarr need not check each one.
        manifest = ChunkManifest.from_arrays(
            paths=paths, offsets=offsets, lengths=lengths, validate_paths=False
        )
        shape = (steps, *first[name].shape[1:])
        arrays[name] = ManifestArray(metadata[name].update_shape(shape), manifest)
    return arrays


def _empty_index(
    steps: int, chunks: tuple[int, ...], shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paths, offsets and lengths of the chunks of ``steps`` time steps, none known yet (an
    empty path is a chunk the source never wrote: it reads as the fill value)."""
    grid = (
        steps // chunks[0],
        *(math.ceil(n / c) for n, c in zip(shape[1:], chunks[1:], strict=True)),
    )
    return (
        np.full(grid, "", dtype=np.dtypes.StringDType()),
        np.zeros(grid, dtype=np.uint64),
        np.zeros(grid, dtype=np.uint64),
    )


def _dataset(h5: h5py.File | None, source: SourceGrid, name: str) -> h5py.h5d.DatasetID:
    """The HDF5 dataset of variable ``name`` (h5py's low-level look-up: its ``h5[name]``
    takes as long as reading the chunk index)."""
    if h5 is None:
        raise IngestError(
            source.url, "cannot be read as HDF5", "the file is truncated or corrupt; fetch it again"
        )
    return h5py.h5d.open(h5.id, name.encode())


class _Layout(NamedTuple):
    """How an HDF5 dataset stores its values. All but the chunks must be alike in every
    source for one Zarr array to reference their chunks."""

    dtype: str
    #: The shape but along time.
    shape: tuple[int, ...]
    #: The HDF5 filters with their parameters.
    filters: tuple
    #: None if the dataset is contiguous.
    chunks: tuple[int, ...] | None


def _layout(dataset: h5py.h5d.DatasetID) -> _Layout:
    """How ``dataset`` stores its values."""
    plist = dataset.get_create_plist()
    filters = tuple(plist.get_filter(i)[:3] for i in range(plist.get_nfilters()))
    chunks = plist.get_chunk() if plist.get_layout() == h5py.h5d.CHUNKED else None
    return _Layout(dataset.dtype.str, dataset.shape[1:], filters, chunks)


def _check_layout(
    source: SourceGrid,
    name: str,
    layout: _Layout,
    shape: tuple[int, ...],
    expected: _Layout,
    chunks: tuple[int, ...],
) -> None:
    """Raise :class:`IngestError` unless the source stores ``name`` (of ``shape``) as the
    first source does, in whole chunks of ``chunks`` along time."""
    stored = layout.chunks or shape
    problem = None
    if layout._replace(chunks=None) != expected._replace(chunks=None):
        problem = "is stored with another dtype, shape or compression than in the first file"
    elif tuple(stored) != tuple(chunks):
        problem = f"is stored in chunks {stored}, the first file's in {chunks}"
    elif len(source.times) % chunks[0]:
        problem = f"holds {len(source.times)} time steps, not whole chunks of {chunks[0]}"
    if problem:
        raise IngestError(
            f"{source.url}:{name}",
            problem,
            "references keep the sources' own chunks, which must be alike: ingest these files "
            "by copy (without --by-reference)",
        )


def _read_index(
    dataset: h5py.h5d.DatasetID, layout: _Layout, url: str, chunks, index: list[np.ndarray]
) -> None:
    """Fill ``index`` (paths, offsets, lengths of one source's chunks, by chunk position)
    from the HDF5 dataset's chunk index."""
    paths, offsets, lengths = index
    if layout.chunks is None:
        offset = dataset.get_offset()
        if offset is not None:
            paths[(0,) * paths.ndim] = url
            offsets[(0,) * paths.ndim] = offset
            lengths[(0,) * paths.ndim] = dataset.get_storage_size()
        return

    def add(chunk) -> None:
        position = tuple(o // c for o, c in zip(chunk.chunk_offset, chunks, strict=True))
        paths[position], offsets[position], lengths[position] = url, chunk.byte_offset, chunk.size

    dataset.chunk_iter(add)


def file_url(path: str) -> str:
    """The ``file://`` URL of a local path, as references and containers name files."""
    return f"file://{posixpath.abspath(path)}"


def folders_of(manifest: Manifest) -> list[str]:
    """The folders of the collection's sources (local paths or ``file://`` URLs)."""
    return [posixpath.dirname(source.url.removeprefix("file://")) for source in manifest.sources]


def snapshot_store(lake: Lake, collection_path: str, info: ZarrStore):
    """The read-only Zarr store of the snapshot the manifest names."""
    icechunk = _icechunk("reading a collection ingested by reference")
    storage = icechunk.local_filesystem_storage(f"{collection_path}/{info.path}")
    config = icechunk.Repository.fetch_config(storage)
    prefixes = list(config.virtual_chunk_containers) if config else []
    access = local_access(icechunk, prefixes)
    repository = icechunk.Repository.open(storage, authorize_virtual_chunk_access=access)
    return repository.readonly_session(snapshot_id=info.snapshot).store


def open_references(
    lake: Lake, collection_path: str, info: ZarrStore, *, chunks, mask_and_scale: bool
) -> xr.Dataset:
    """The store of references as a lazy Dataset, decoded as xarray decodes the sources.

    The packing attributes get back their types (a float32 ``scale_factor`` stays float32),
    so that values decode to the same bits as ``xr.open_dataset`` gives on the sources.
    """
    store = snapshot_store(lake, collection_path, info)
    raw = xr.open_zarr(store, consolidated=False, chunks=chunks, decode_cf=False)
    for name, types in info.attribute_types.items():
        if name in raw:
            for key, dtype in types.items():
                raw[name].attrs[key] = np.dtype(dtype).type(raw[name].attrs[key])
    decoded = xr.decode_cf(raw, mask_and_scale=mask_and_scale)
    decoded.set_close(raw.close)
    return decoded


def check_sources(lake: Lake, manifest: Manifest) -> list[Finding]:
    """One finding per source of a collection ingested by reference: the file is still at
    its recorded place, with its recorded size and SHA-256."""
    findings = []
    for source in manifest.sources:
        fs, path = source_fs(lake, source.url)
        hint = (
            "the collection reads its values there: put back the file that was ingested "
            "(or ingest the collection again, by copy)"
        )
        if not fs.exists(path):
            ok, message = False, f"{source.name} is missing from {source.url}: {hint}"
        elif (size := fs.size(path)) != source.size:
            ok, message = (
                False,
                f"{source.name} at {source.url} has changed: {size} bytes, "
                f"{source.size} when ingested; {hint}",
            )
        elif sha256_of(fs, path) != source.sha256:
            ok, message = (
                False,
                f"{source.name} at {source.url} has changed: its SHA-256 is not the one "
                f"recorded when it was ingested; {hint}",
            )
        else:
            ok, message = True, f"{source.name} in place, size and SHA-256 as ingested"
        findings.append(Finding(manifest.id, "referenced-source", ok, message, source.url))
    return findings


def _icechunk(purpose: str):
    """The icechunk module (:func:`require`), without its warning that local storage is unsafe
    for concurrent commits, unless ``ICECHUNK_LOG`` says otherwise: the lake commits to a
    collection under its own lock (one ingest at a time, :mod:`~eosc_pangeo.lake.lock`), and
    icechunk printed the warning at every opening of such a collection, in every notebook."""
    icechunk = require("icechunk", purpose)
    if "ICECHUNK_LOG" not in os.environ:
        icechunk.set_logs_filter("warn,icechunk::storage::object_store=error")
    return icechunk


def require(module: str, purpose: str):
    """Import ``module`` (one of the optional packages of references), or raise
    :class:`LakeError` saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise LakeError(
            f"{purpose} needs the packages virtualizarr and icechunk (no {module} here): {_INSTALL}"
        ) from None
