"""A scientist's first minutes, in a real browser (Debian's Chromium driven by playwright):
log in through the form, open the discovery notebook, run it, see a table and a plot; see one's
own cluster's live dashboard and be refused another's; find one's batch jobs in JupyterLab."""

from __future__ import annotations


def test_a_user_logs_in_and_runs_the_discovery_notebook(platform, page, artifacts):
    name = platform.add_user("browser")
    page.goto(f"{platform.url}/hub/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", platform.passwords[name])
    page.screenshot(path=str(artifacts / "01-login.png"))
    page.click("#login_submit")
    try:
        # Not "load": JupyterLab keeps fetching for long after its page is there.
        page.wait_for_url(f"**/user/{name}/lab**", timeout=240_000, wait_until="commit")
        page.wait_for_selector("#jp-main-dock-panel", timeout=240_000)
    finally:
        page.screenshot(path=str(artifacts / "01b-after-login.png"))
    page.goto(
        f"{platform.url}/user/{name}/lab/tree/notebooks/01-discover-data.ipynb", wait_until="commit"
    )
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    # Keys sent before the kernel is idle are lost: wait for the status bar to say so.
    try:
        page.get_by_text("(ipykernel) | Idle").wait_for(timeout=180_000)
    finally:
        page.screenshot(path=str(artifacts / "02-notebook.png"))
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    page.wait_for_selector(".jp-OutputArea-output img", timeout=180_000)
    table = page.locator(".jp-OutputArea-output table")
    assert table.count() >= 1
    assert table.first.locator("tbody tr").count() >= 1
    assert page.locator(".jp-OutputArea-output[data-mime-type*=error]").count() == 0
    page.screenshot(path=str(artifacts / "03-results.png"), full_page=True)


def _log_in(page, platform, name: str) -> None:
    page.goto(f"{platform.url}/hub/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", platform.passwords[name])
    page.click("#login_submit")
    # Logged in once off the login page: to the spawn page, or straight to JupyterLab when the
    # server starts within the hub's wait (it is forked in a fraction of a second).
    page.wait_for_url(lambda url: "/hub/login" not in url, wait_until="commit")


def test_a_cluster_owner_sees_the_live_dashboard_and_another_user_a_refusal(
    platform, page, artifacts
):
    owner, other = platform.add_user("dashowner"), platform.add_user("dashother")
    with platform.gateway(platform.session(owner)) as gateway:
        cluster = gateway.new_cluster()
        try:
            _log_in(page, platform, other)
            refused = page.goto(cluster.dashboard_link)
            assert refused.status == 403
            assert f"{other} may not see the dashboard" in page.content()
            page.context.clear_cookies()
            _log_in(page, platform, owner)
            page.goto(cluster.dashboard_link)
            # Bokeh draws the plots only once its websocket (through the gate) is up.
            page.wait_for_selector(".bk-Canvas, .bk-canvas, canvas", timeout=60_000)
            page.screenshot(path=str(artifacts / "04-dashboard.png"))
        finally:
            cluster.shutdown()


def test_a_user_finds_their_jobs_in_jupyterlab_and_downloads_the_results(platform, page, artifacts):
    import io
    import time
    import zipfile
    from pathlib import Path

    import requests

    name = platform.add_user("jobs")
    session = platform.session(name)
    jobs = f"{platform.url}/services/jobs/api/jobs"
    script = "open('answer.txt', 'w').write(str(sum(range(10))))\n"
    job = requests.post(
        jobs,
        headers=session.headers,
        timeout=60,
        json={"name": "answer.py", "content": script, "backend": "local"},
    ).json()
    deadline = time.monotonic() + 180
    while (
        state := requests.get(f"{jobs}/{job['id']}", headers=session.headers, timeout=60).json()[
            "state"
        ]
    ) not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, f"job {job['id']} still {state}"
        time.sleep(1)
    assert state == "succeeded"
    _log_in(page, platform, name)
    page.wait_for_url(f"**/user/{name}/lab**", timeout=240_000, wait_until="commit")
    try:
        page.locator(".jp-LauncherCard", has_text="Batch jobs").click()
        row = page.frame_locator("iframe").locator("tr", has_text=job["id"])
        row.get_by_text("succeeded").wait_for()
    finally:
        page.screenshot(path=str(artifacts / "05-jobs-panel.png"))
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
