"""A scientist's first minutes, in a real browser (Debian's Chromium driven by playwright):
log in through the form, open the discovery notebook, run it, see a table and a plot."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Screenshots of the run, kept as test artifacts (docs/images/ holds a few for the user guide).
ARTIFACTS = REPO / "var" / "test-artifacts" / "browser"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]


@pytest.fixture(scope="session")
def chromium() -> str:
    result = subprocess.run([str(REPO / ".ci" / "chromium-up.sh")], capture_output=True,
                            text=True, timeout=900, check=False)
    if result.returncode == 2:
        pytest.skip(f"no Chromium on this machine: {result.stderr.strip()}")
    assert result.returncode == 0, f".ci/chromium-up.sh failed:\n{result.stderr}"
    return shutil.which("chromium")


@pytest.fixture
def page(chromium):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(120_000)
        yield page
        browser.close()


def test_a_user_logs_in_and_runs_the_discovery_notebook(platform, page):
    name = platform.add_user("browser")
    page.goto(f"{platform.url}/hub/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", platform.passwords[name])
    page.screenshot(path=str(ARTIFACTS / "01-login.png"))
    page.click("#login_submit")
    try:
        # Not "load": JupyterLab keeps fetching for long after its page is there.
        page.wait_for_url(f"**/user/{name}/lab**", timeout=240_000, wait_until="commit")
        page.wait_for_selector("#jp-main-dock-panel", timeout=240_000)
    finally:
        page.screenshot(path=str(ARTIFACTS / "01b-after-login.png"))
    page.goto(f"{platform.url}/user/{name}/lab/tree/notebooks/01-discover-data.ipynb",
              wait_until="commit")
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    # Keys sent before the kernel is idle are lost: wait for it.
    # Keys sent before the kernel is idle are lost: wait for the status bar to say so.
    page.get_by_text("(ipykernel) | Idle").wait_for(timeout=180_000)
    page.screenshot(path=str(ARTIFACTS / "02-notebook.png"))
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    page.wait_for_selector(".jp-OutputArea-output img", timeout=180_000)
    table = page.locator(".jp-OutputArea-output table")
    assert table.count() >= 1
    assert table.first.locator("tbody tr").count() >= 1
    assert page.locator(".jp-OutputArea-output[data-mime-type*=error]").count() == 0
    page.screenshot(path=str(ARTIFACTS / "03-results.png"), full_page=True)


def test_a_user_finds_their_jobs_in_jupyterlab_and_downloads_the_results(platform, page):
    import io
    import time
    import zipfile

    import requests

    name = platform.add_user("jobs")
    session = platform.session(name)
    jobs = f"{platform.url}/services/jobs/api/jobs"
    script = "open('answer.txt', 'w').write(str(sum(range(10))))\n"
    job = requests.post(jobs, headers=session.headers, timeout=60, json={
        "name": "answer.py", "content": script, "backend": "local"}).json()
    deadline = time.monotonic() + 180
    while (state := requests.get(f"{jobs}/{job['id']}", headers=session.headers,
                                 timeout=60).json()["state"]) not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, f"job {job['id']} still {state}"
        time.sleep(1)
    assert state == "succeeded"

    page.goto(f"{platform.url}/hub/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", platform.passwords[name])
    page.click("#login_submit")
    page.wait_for_url(f"**/user/{name}/lab**", timeout=240_000, wait_until="commit")
    try:
        page.locator(".jp-LauncherCard", has_text="Batch jobs").click()
        row = page.frame_locator("iframe").locator("tr", has_text=job["id"])
        row.get_by_text("succeeded").wait_for()
    finally:
        page.screenshot(path=str(ARTIFACTS / "04-jobs-panel.png"))
    with page.expect_download() as download:
        row.get_by_role("link", name="results (zip)").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert archive.read("results/answer.txt") == b"45"

    row.get_by_role("button", name="rerun").click()  # back on the page, which reloads itself
    rows = page.frame_locator("iframe").locator("tr", has_text="answer.py")
    rows.nth(1).wait_for()
    rows.first.get_by_text("succeeded").wait_for(timeout=180_000)
    newest = requests.get(jobs, headers=session.headers, timeout=60).json()["jobs"][0]
    assert (newest["rerun_of"], newest["state"]) == (job["id"], "succeeded")
