"""lake sync from each kind of repository, on loopback: S3 (moto's server, which is also how an
iRODS S3 API endpoint is reached), a THREDDS catalogue, SFTP (OpenSSH's sshd), a folder.

Each: the first sync ingests every file, the second transfers nothing, a changed file is
fetched again."""

from __future__ import annotations

import os
import shutil
import uuid

import pytest
from sync_servers import file_server, sshd  # noqa: F401 - fixtures

from eosc_pangeo import demo_data
from eosc_pangeo.lake import read_manifest
from eosc_pangeo.lake.sync import sync


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sst")
    first = demo_data.write_sst(demo_data.SstSpec(days=3, resolution=10.0), folder / "v1")
    other = demo_data.write_sst(demo_data.SstSpec(days=3, resolution=10.0), folder / "v2", seed=3)
    return first, other


def three_syncs(lake, source, replace, days, **options):
    """First sync, unchanged sync, then the second day replaced upstream and synced."""
    first = sync(lake, source, "sst", "ocean", "grid", include="*.nc", **options)
    second = sync(lake, source, "sst", "ocean", "grid", include="*.nc", **options)
    replace(days[1][1])
    third = sync(lake, source, "sst", "ocean", "grid", include="*.nc", **options)
    return first, second, third


def check(first, second, third, days):
    names = [p.name for p in days[0]]
    assert (first.new, first.failed) == (names, {})
    assert (second.unchanged, second.bytes_transferred) == (names, 0)
    assert third.changed == [names[1]]
    assert third.bytes_transferred == days[1][1].stat().st_size


@pytest.mark.s3
def test_sync_from_s3(local_lake, s3_server, days):
    import s3fs

    s3 = s3fs.S3FileSystem(**s3_server)
    bucket = f"src-{uuid.uuid4().hex[:10]}"
    s3.mkdir(bucket)
    for path in days[0]:
        s3.put_file(str(path), f"{bucket}/sst/{path.name}")

    def replace(path):
        s3.put_file(str(path), f"{bucket}/sst/{path.name}")

    reports = three_syncs(
        local_lake, f"s3://{bucket}/sst", replace, days, storage_options=s3_server
    )
    check(*reports, days)
    source = read_manifest(local_lake, local_lake.collection_path("ocean", "sst")).sources[0]
    assert source.url == f"s3://{bucket}/sst/{source.name}" and len(source.etag) == 32


@pytest.mark.s3
def test_a_file_changed_by_another_client_is_seen_by_the_next_sync_of_the_process(
    local_lake, s3_server, days
):
    """fsspec keeps listings per file system, and a process shares one per source: a sync
    (sync_all, a service) must list the source afresh, not see the previous sync's listing."""
    import s3fs

    bucket = f"src-{uuid.uuid4().hex[:10]}"
    uploader = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    uploader.mkdir(bucket)
    for path in days[0]:
        uploader.put_file(str(path), f"{bucket}/sst/{path.name}")
    source = f"s3://{bucket}/sst"
    sync(local_lake, source, "sst", "ocean", "grid", storage_options=s3_server)
    uploader.put_file(str(days[1][1]), f"{bucket}/sst/{days[1][1].name}")

    report = sync(local_lake, source, "sst", "ocean", "grid", storage_options=s3_server)

    assert report.changed == [days[1][1].name]


def test_sync_from_a_thredds_catalog(local_lake, file_server, days):  # noqa: F811
    (file_server.root / "sst").mkdir()
    for path in days[0]:
        shutil.copy(path, file_server.root / "sst")
    catalog = f"{file_server.url}/thredds/catalog/sst/catalog.xml"
    reports = three_syncs(
        local_lake, catalog, lambda p: shutil.copy(p, file_server.root / "sst"), days
    )
    check(*reports, days)
    source = read_manifest(local_lake, local_lake.collection_path("ocean", "sst")).sources[0]
    assert source.url == f"{file_server.url}/thredds/fileServer/sst/{source.name}"


def replaced_later(path, folder):
    """Copy ``path`` into ``folder`` dated a minute later: SFTP gives whole seconds, and a data
    centre's new version is not written in the second of the old one."""
    copy = shutil.copy(path, folder)
    stat = os.stat(copy)
    os.utime(copy, (stat.st_atime, stat.st_mtime + 60))


def test_sync_over_sftp(local_lake, sshd, tmp_path, days):  # noqa: F811
    folder = tmp_path / "remote"
    folder.mkdir()
    for path in days[0]:
        shutil.copy(path, folder)

    def replace(path):
        replaced_later(path, folder)

    reports = three_syncs(local_lake, sshd.url(folder), replace, days, storage_options=sshd.options)
    check(*reports, days)


def test_sync_from_a_folder(local_lake, tmp_path, days):
    folder = tmp_path / "remote"
    folder.mkdir()
    for path in days[0]:
        shutil.copy(path, folder)
    reports = three_syncs(local_lake, str(folder), lambda p: shutil.copy(p, folder), days)
    check(*reports, days)
