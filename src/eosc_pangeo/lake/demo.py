"""A demo lake built from generated sample data, for ``make up``, tutorials and tests."""

from __future__ import annotations

import tempfile
from collections.abc import Callable

from .. import demo_data
from .kinds import kind_of
from .storage import Lake

# collection id -> (sample kind, domain, how it is ingested)
DEMO_COLLECTIONS = {
    "sst": ("sst", "ocean", "grid"),
    "tas": ("climate", "atmosphere", "grid"),
    "argo": ("argo", "ocean", "insitu"),
    "stations": ("stations", "ocean", "insitu"),
}


def build_demo_lake(
    lake: str | Lake | None,
    size: str = "small",
    *,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> str:
    """Generate sample sources and ingest them into ``lake``; return the lake's URL.

    Re-running is cheap: the sources are regenerated identically and every ingest is a no-op.
    """
    lake = Lake.from_url(lake)
    with tempfile.TemporaryDirectory(prefix="eosc-pangeo-demo-") as sources:
        files = demo_data.write_demo_data(sources, size, seed=seed, progress=progress)
        for collection, (kind, domain, how) in DEMO_COLLECTIONS.items():
            paths = [str(p) for p in files[kind]]
            kind_of(how).ingest(
                lake,
                collection,
                domain,
                paths,
                progress=progress
                and (
                    lambda stage, done, total, name=collection: progress(
                        f"{name} {stage}", done, total
                    )
                ),
            )
    return lake.url
