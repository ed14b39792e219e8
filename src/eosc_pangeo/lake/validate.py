"""``lake validate``: check every collection against the lake's promises."""

from __future__ import annotations

from pydantic import ValidationError

from .errors import Finding
from .kinds import kind_of
from .manifest import Manifest
from .storage import MANIFEST, Lake


def validate(lake: str | Lake | None = None, collection: str | None = None) -> list[Finding]:
    """Check the lake's collections (or one) and return every finding, passed or failed.

    Parameters
    ----------
    lake
        Lake URL; default: the configured lake.
    collection
        Only this collection (raises :class:`~eosc_pangeo.lake.CollectionNotFound` if absent).

    Raises
    ------
    NotALake
        If the lake holds no collection: nothing to check is a failure, not a pass.
    """
    lake = Lake.from_url(lake)
    if collection is not None:
        paths = [lake.find_collection(collection)]
    else:
        paths = sorted(p.rsplit("/", 1)[0] for p in lake.manifest_paths())
        if not paths:
            raise lake.not_a_lake()
    findings = []
    for path in paths:
        name = path.rsplit("/", 1)[-1]
        try:
            manifest = Manifest.model_validate_json(lake.fs.cat_file(f"{path}/{MANIFEST}"))
        except ValidationError as error:
            findings.append(
                Finding(name, "manifest", False, f"unreadable manifest: {error}", MANIFEST)
            )
            continue
        findings.append(_check_sources(manifest))
        findings.extend(kind_of(manifest).check(lake, path, manifest))
    return findings


def _check_sources(manifest: Manifest) -> Finding:
    incomplete = [s.name for s in manifest.sources if len(s.sha256) != 64 or s.size <= 0]
    return Finding(
        manifest.id,
        "provenance",
        not incomplete,
        f"sources without size or sha256: {incomplete}"
        if incomplete
        else f"{len(manifest.sources)} sources with size and sha256",
        MANIFEST,
    )
