"""cluster() on a LocalCluster, and the options every backend shares."""

from __future__ import annotations

import subprocess
import sys

import pytest

from eosc_pangeo.compute import ClusterSpec, UnsupportedOption, cluster
from eosc_pangeo.compute.api import choose_backend
from eosc_pangeo.config import Settings

LAKE = Settings(lake="s3://bucket/lake", storage_options={"endpoint_url": "http://127.0.0.1:9000"})


def test_auto_picks_the_gateway_when_its_address_is_configured():
    settings = Settings(gateway_address="http://hub/services/dask-gateway", jobqueue="slurm")
    assert choose_backend("auto", settings) == "gateway"


def test_auto_picks_the_sites_batch_system_without_a_gateway():
    assert choose_backend("auto", Settings(jobqueue="pbs")) == "pbs"


def test_auto_picks_a_local_cluster_when_nothing_is_configured():
    assert choose_backend("auto", Settings()) == "local"


def test_an_unknown_backend_is_an_error():
    with pytest.raises(ValueError, match="backend must be"):
        cluster(backend="yarn", settings=Settings())


def test_a_fixed_size_and_adaptive_scaling_exclude_each_other():
    with pytest.raises(ValueError, match="not both"):
        ClusterSpec.from_user(workers=2, adaptive=(1, 4))


def test_memory_is_given_in_bytes_or_as_text():
    assert ClusterSpec.from_user(memory="2GiB").memory == 2 * 2**30


def test_workers_get_the_lake_settings_and_the_users_variables():
    spec = ClusterSpec.from_user(env={"OMP_NUM_THREADS": "1"})
    assert spec.worker_env(LAKE) == {
        "EOSC_PANGEO_LAKE": "s3://bucket/lake",
        "EOSC_PANGEO_STORAGE_OPTIONS": '{"endpoint_url": "http://127.0.0.1:9000"}',
        "OMP_NUM_THREADS": "1",
    }


def test_a_local_cluster_computes_with_the_lake_settings_on_its_workers():
    def worker_settings():
        from eosc_pangeo.config import Settings

        return Settings().lake, Settings().storage_options

    with (
        cluster(workers=2, cores=1, memory="1GiB", backend="local", settings=LAKE) as local,
        local.get_client() as client,
    ):
        assert len(client.scheduler_info()["workers"]) == 2
        assert client.submit(worker_settings).result() == (LAKE.lake, LAKE.storage_options)


def test_a_local_cluster_adapts_between_its_bounds():
    with (
        cluster(adaptive=(1, 3), backend="local", settings=Settings()) as local,
        local.get_client() as client,
    ):
        assert len(client.scheduler_info()["workers"]) >= 1
        assert client.submit(sum, [1, 2]).result() == 3


def test_a_local_cluster_cannot_use_another_image():
    with pytest.raises(UnsupportedOption, match="backend 'local'.*cannot use image"):
        cluster(backend="local", image="/opt/conda/envs/other", settings=Settings())


def test_a_local_cluster_accepts_its_own_environment_as_image():
    with cluster(workers=0, backend="local", image=sys.prefix, settings=Settings()) as local:
        assert local.scheduler_address.startswith("tcp://127.0.0.1")


UNGUARDED = """\
from eosc_pangeo import cluster
from eosc_pangeo.config import Settings

with cluster(workers=1, backend="local", settings=Settings(cluster_start_timeout=600)) as c:
    print("started", len(c.scheduler_info["workers"]))
"""


def run_script(tmp_path, *, from_stdin: bool) -> subprocess.CompletedProcess:
    """Run UNGUARDED as a user would: ``python script.py`` or ``python - < script.py``."""
    script = tmp_path / "script.py"
    script.write_text(UNGUARDED)
    command = [sys.executable, "-"] if from_stdin else [sys.executable, str(script)]
    # Far below the start timeout of 600 s: only failing fast passes.
    return subprocess.run(
        command,
        input=UNGUARDED if from_stdin else None,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_script_without_main_guard_fails_at_once_saying_how_to_fix_it(tmp_path):
    result = run_script(tmp_path, from_stdin=False)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "ClusterStartError" in last and 'if __name__ == "__main__":' in last
    assert "script.py, line 4" in last


def test_a_script_read_from_standard_input_fails_at_once_saying_how_to_fix_it(tmp_path):
    result = run_script(tmp_path, from_stdin=True)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "standard input" in last and "save it to a file" in last


def test_a_guarded_script_starts_its_local_cluster(tmp_path):
    script = tmp_path / "guarded.py"
    body = "\n".join("    " + line for line in UNGUARDED.splitlines()[3:])
    script.write_text(
        "\n".join(UNGUARDED.splitlines()[:3]) + '\nif __name__ == "__main__":\n' + body + "\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "started 1" in result.stdout
