"""The example notebooks run top to bottom against the demo lake and show what they promise:
plots (images), tables, and results written with their provenance."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.slow
ALICE = "pgalice"  # a hub user of the `platform` fixture


def outputs(notebook, mime: str) -> list[str]:
    return [
        output["data"][mime]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if mime in output.get("data", {})
    ]


def test_there_are_eight_stories_committed_without_outputs(notebook_dir):
    names = sorted(p.stem for p in notebook_dir.glob("*.ipynb"))
    assert len(names) >= 8
    for name in names:
        cells = json.loads((notebook_dir / f"{name}.ipynb").read_text())["cells"]
        assert all(
            not c.get("outputs") and not c.get("execution_count")
            for c in cells
            if c["cell_type"] == "code"
        ), name


def test_discovering_data_shows_a_table_of_hits_and_a_plot(run_notebook):
    notebook = run_notebook("01-discover-data")
    assert any(
        "<table" in html and "stations" in html and "sst" in html
        for html in outputs(notebook, "text/html")
    )
    assert len(outputs(notebook, "image/png")) >= 2


@pytest.mark.parametrize(
    "name, images",
    [
        ("02-argo-profiles", 3),
        ("03-satellite-sst", 3),
        ("04-climate-model", 3),
        ("06-harmonisation", 3),
    ],
)
def test_a_story_runs_and_plots(run_notebook, name, images):
    assert len(outputs(run_notebook(name), "image/png")) >= images


def test_the_matchup_story_exports_its_pairs_with_their_provenance(run_notebook, tmp_path):
    notebook = run_notebook("05-matchups")
    assert len(outputs(notebook, "image/png")) >= 1
    crate = json.loads((tmp_path / "results" / "sst-matchups-ro-crate-metadata.json").read_text())
    inputs = {e["identifier"] for e in crate["@graph"] if e.get("identifier")}
    assert inputs == {"sst"}
    assert (tmp_path / "results" / "sst-matchups.nc").stat().st_size > 0


def test_the_gateway_story_scales_out_on_the_hubs_gateway(run_notebook, platform):
    notebook = run_notebook(
        "07-dask-gateway",
        EOSC_PANGEO_GATEWAY_ADDRESS=platform.gateway_address,
        EOSC_PANGEO_GATEWAY_PROXY_ADDRESS=f"gateway://{platform.scheduler_address}",
        EOSC_PANGEO_GATEWAY_AUTH="jupyterhub",
        EOSC_PANGEO_CLUSTER_START_TIMEOUT="60",
        JUPYTERHUB_API_TOKEN=platform.tokens[ALICE],
    )
    printed = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "GatewayCluster" in printed and "2 workers computed it" in printed
    assert len(outputs(notebook, "image/png")) >= 1


def test_the_slurm_story_runs_the_same_analysis_in_batch_jobs(run_notebook, slurm_site, tmp_path):
    site = tmp_path / "dask-site"
    site.mkdir()
    nested: dict = {}
    for key, value in slurm_site.items():
        *parents, leaf = key.split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    (site / "jobqueue.yaml").write_text(yaml.safe_dump(nested))
    notebook = run_notebook("08-slurm", EOSC_PANGEO_JOBQUEUE="slurm", DASK_CONFIG=str(site))
    printed = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "SLURMCluster" in printed and "#SBATCH" in printed
    assert len(outputs(notebook, "image/png")) >= 1
