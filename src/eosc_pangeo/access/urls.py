"""The data service's URL layout: the one place that knows where a collection is served.

The catalogue imports this module to point STAC assets and DCAT-AP distributions at the
service, so it imports nothing of the project.
"""

from __future__ import annotations


def collection_urls(base: str, manifest) -> dict[str, str]:
    """URLs of a collection at the data service ``base`` (its public URL, no trailing slash).

    Parameters
    ----------
    base
        The service's public URL, e.g. ``https://data.example.org``.
    manifest
        The collection's manifest (its ``id``, ``kind`` and ``stores``).
    """
    cid = manifest.id
    if manifest.kind == "insitu":
        return {"parquet": f"{base}/parquet/{cid}/", "edr": f"{base}/edr/{cid}"}
    urls = {"zarr": f"{base}/zarr/{cid}"}
    if "timeseries" in manifest.stores and "map" in manifest.stores:
        urls["zarr-timeseries"] = f"{base}/zarr-timeseries/{cid}"
    urls["opendap"] = f"{base}/opendap/{cid}"
    urls["edr"] = f"{base}/edr/{cid}"
    return urls
