"""export(): NetCDF that passes IOOS compliance-checker's CF and ACDD checks, other formats, and
an RO-Crate beside every result naming the lake collections, versions and calls behind it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from eosc_pangeo import demo_data
from eosc_pangeo.analysis import AnalysisError, anomalies, crate_path, export, matchup
from eosc_pangeo.lake import ingest_grid, open_grid

# What a scientist says about themselves and a surface field; the rest export fills in.
CONTACT = {
    "creator_name": "Alice Martin",
    "creator_email": "alice.martin@example.org",
    "publisher_email": "data@example.org",
}


@pytest.fixture(scope="module")
def sst_lake(tmp_path_factory) -> str:
    """A lake holding 5 days of the demo SST on a 10-degree grid (collection ``sst``)."""
    root = tmp_path_factory.mktemp("export-lake")
    files = demo_data.write_sst(
        demo_data.SstSpec(start=dt.date(2020, 1, 1), days=5, resolution=10.0), root / "sources"
    )
    ingest_grid(str(root / "lake"), "sst", "ocean", [str(f) for f in files])
    return str(root / "lake")


def compliance_report(path: str, tmp_path: Path) -> tuple[bool, dict]:
    """Run IOOS compliance-checker's CF 1.10 and ACDD 1.3 checks, offline: the file names the
    standard name table that compliance-checker ships, so none is downloaded."""
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    report = tmp_path / "report.json"
    passed, _ = ComplianceChecker.run_checker(
        path,
        ["cf:1.10", "acdd:1.3"],
        0,
        "normal",
        output_filename=str(report),
        output_format="json",
    )
    results = json.loads(report.read_text())
    failed = {
        suite: {
            c["name"]: c["msgs"]
            for p in ("high_priorities", "medium_priorities")
            for c in r[p]
            if c["value"][0] != c["value"][1]
        }
        for suite, r in results.items()
    }
    return passed, failed


def test_an_sst_anomaly_map_passes_the_cf_and_acdd_checks(sst_lake, tmp_path):
    sst = open_grid(sst_lake, "sst")
    anomaly = anomalies(sst[["analysed_sst"]], period="dayofyear").assign_coords(depth=0.0)
    path = export(anomaly, tmp_path / "anomaly.nc", attrs=CONTACT)
    passed, failed = compliance_report(path.removeprefix("file://"), tmp_path)
    assert failed == {"cf:1.10": {}, "acdd:1.3": {}}
    assert passed


def test_a_matchup_table_passes_the_cf_and_acdd_checks(sst_lake, tmp_path):
    # compliance-checker 6.1 raises inside check_domain_variables on featureType point files
    # (it looks for a cf_role that point features do not have); the other checks all run.
    sst = open_grid(sst_lake, "sst")
    obs = pd.DataFrame(
        {
            "platform": ["6900001", "6900002"],
            "lat": [43.2, -10.4],
            "lon": [-20.1, 150.3],
            "pressure": [5.0, 8.0],
            "time": pd.to_datetime(["2020-01-02T10:00", "2020-01-03T02:00"], utc=True),
            "TEMP": [14.1, 27.9],
        }
    )
    pairs = matchup(sst, obs, radius_km=800, time_window="1D")
    path = export(
        pairs,
        tmp_path / "pairs.nc",
        attrs=CONTACT,
        variable_attrs={"TEMP": {"standard_name": "sea_water_temperature", "units": "degC"}},
    )
    passed, failed = compliance_report(path.removeprefix("file://"), tmp_path)
    assert failed == {"cf:1.10": {}, "acdd:1.3": {}}
    assert passed
    written = xr.open_dataset(path.removeprefix("file://"))
    assert written.attrs["featureType"] == "point"
    assert written["analysed_sst_mean"].attrs["cell_methods"] == "area: time: mean"


def test_the_contact_configured_once_passes_the_checks_without_attrs(
    sst_lake, tmp_path, settings_env
):
    settings_env(
        creator_name="Alice Martin",
        creator_email="alice.martin@example.org",
        publisher_name="Example data centre",
        publisher_email="data@example.org",
    )
    sst = open_grid(sst_lake, "sst")[["analysed_sst"]].assign_coords(depth=0.0)
    path = export(sst, tmp_path / "mean.nc")
    passed, failed = compliance_report(path.removeprefix("file://"), tmp_path)
    assert failed == {"cf:1.10": {}, "acdd:1.3": {}}
    written = xr.open_dataset(path.removeprefix("file://"))
    assert (written.attrs["creator_email"], written.attrs["publisher_name"]) == (
        "alice.martin@example.org",
        "Example data centre",
    )


def test_a_result_without_contact_e_mails_warns_how_to_give_them(sst_lake, tmp_path):
    sst = open_grid(sst_lake, "sst")[["analysed_sst"]].mean("time")
    with pytest.warns(
        UserWarning,
        match="no creator_email or publisher_email.*"
        "EOSC_PANGEO_CREATOR_EMAIL and "
        "EOSC_PANGEO_PUBLISHER_EMAIL",
    ) as caught:
        export(sst, tmp_path / "mean.nc")
    assert caught[0].filename == __file__  # the warning points at the caller's line


def test_the_crate_names_the_collection_version_manifest_and_calls(sst_lake, tmp_path):
    sst = open_grid(sst_lake, "sst")
    obs = pd.DataFrame({"lat": [43.2], "lon": [-20.1], "time": [pd.Timestamp("2020-01-02")]})
    pairs = matchup(sst, obs, radius_km=800, time_window="1D")
    path = export(pairs, tmp_path / "pairs.parquet", lake=sst_lake)
    crate = json.loads(Path(crate_path(path.removeprefix("file://"))).read_text())
    graph = {entity["@id"]: entity for entity in crate["@graph"]}
    assert (
        graph["pairs-ro-crate-metadata.json"]["conformsTo"]["@id"]
        == "https://w3id.org/ro/crate/1.2"
    )
    assert graph["./"]["hasPart"] == [{"@id": "pairs.parquet"}]
    manifest = Path(sst_lake, "ocean", "sst", "_manifest.json").read_bytes()
    collection = graph["#collection-sst-v1"]
    assert collection["identifier"] == "sst" and collection["version"] == "1"
    assert collection["sha256"] == hashlib.sha256(manifest).hexdigest()
    steps = [e for e in crate["@graph"] if e["@type"] == "CreateAction"]
    assert [s["name"] for s in steps] == [
        "eosc_pangeo.analysis.matchup",
        "eosc_pangeo.analysis.export",
    ]
    parameters = {p["name"]: json.loads(p["value"]) for p in steps[0]["additionalProperty"]}
    assert parameters["radius_km"] == 800 and parameters["time_window"] == "1 days 00:00:00"
    assert steps[0]["object"] == [{"@id": "#collection-sst-v1"}]
    result = graph["pairs.parquet"]
    written = Path(path.removeprefix("file://")).read_bytes()
    assert result["sha256"] == hashlib.sha256(written).hexdigest()
    software = {
        e["name"]: e["version"] for e in crate["@graph"] if e["@type"] == "SoftwareApplication"
    }
    assert {"eosc-pangeo", "xarray", "numpy"} <= set(software)


@pytest.mark.parametrize("name", ["result.csv", "result.parquet", "result.zarr", "result.nc"])
def test_every_format_reads_back_the_same_values(name, tmp_path):
    table = pd.DataFrame(
        {
            "lat": [1.0, 2.0],
            "lon": [3.0, 4.0],
            "value": [0.5, np.nan],
            "time": pd.to_datetime(["2020-01-01", "2020-01-02"]),
        }
    )
    path = export(table, tmp_path / name).removeprefix("file://")
    if name.endswith(".csv"):
        back = pd.read_csv(path, parse_dates=["time"])
    elif name.endswith(".parquet"):
        back = pd.read_parquet(path)
    else:
        back = xr.open_dataset(path, engine=None).to_dataframe().reset_index(drop=True)
    np.testing.assert_array_equal(back["value"], table["value"])
    assert (back["time"].values == table["time"].values).all()
    assert Path(crate_path(path)).exists()


def test_an_existing_result_is_not_replaced_unless_asked(tmp_path):
    table = pd.DataFrame({"value": [1.0]})
    path = export(table, tmp_path / "r.csv").removeprefix("file://")
    with pytest.raises(AnalysisError, match="already exists.*overwrite=True"):
        export(pd.DataFrame({"value": [2.0]}), tmp_path / "r.csv")
    assert pd.read_csv(path)["value"].tolist() == [1.0]
    export(pd.DataFrame({"value": [2.0]}), tmp_path / "r.csv", overwrite=True)
    assert pd.read_csv(path)["value"].tolist() == [2.0]


def test_a_relative_path_lands_in_the_results_folder(tmp_path, settings_env):
    settings_env(results_dir=str(tmp_path / "results"))
    path = export(pd.DataFrame({"value": [1.0]}), "r.csv").removeprefix("file://")
    assert Path(path) == tmp_path / "results" / "r.csv"
    assert pd.read_csv(path)["value"].tolist() == [1.0]


def test_a_failed_export_leaves_nothing_behind(tmp_path):
    cube = xr.Dataset({"v": (("x",), [1.0])}, attrs={"bad": {"nested": "dict"}})
    # Zarr refuses nothing here but NetCDF cannot hold an object variable
    cube["obj"] = ("x", np.array([object()], dtype=object))
    with pytest.raises((TypeError, ValueError)):
        export(cube, tmp_path / "r.nc")
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_suffix_is_refused_with_the_formats_to_choose():
    with pytest.raises(AnalysisError, match=r"no format for the suffix '.txt'.*\.nc"):
        export(pd.DataFrame({"v": [1]}), "result.txt")


@pytest.mark.s3
def test_a_result_is_exported_to_an_object_store_with_its_crate(s3_server):
    import s3fs

    fs = s3fs.S3FileSystem(**s3_server)
    fs.mkdir("results-bucket")
    table = pd.DataFrame({"lat": [1.0], "lon": [2.0], "value": [3.5]})
    url = export(table, "s3://results-bucket/alice/r.parquet", storage_options=s3_server)
    assert url == "s3://results-bucket/alice/r.parquet"
    with fs.open(url) as f:
        assert pd.read_parquet(f)["value"].tolist() == [3.5]
    crate = json.loads(fs.cat_file(crate_path(url)))
    assert {"@id": "r.parquet"} in crate["@graph"][1]["hasPart"]
