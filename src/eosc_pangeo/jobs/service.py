"""The hub's jobs service: each user's batch jobs over a small REST API and a page.

Run by JupyterHub as a managed service (see :func:`eosc_pangeo.platform.hub.add_jobs_service`)::

    python -m eosc_pangeo.jobs.service --port 8002 --jobs-dir /srv/eosc-pangeo/jobs

Everything is per user: requests are authenticated by the hub (API token or OAuth cookie, through
``jupyterhub.services.auth``) and reach only the store of the user who makes them. A job
submitted here runs with a token of its user that the service asks the hub for, scoped to what a
job needs (the Dask Gateway), never with the service's own token. Run as root (as the hub runs
it), the service starts each job as its user's Unix account, in the users' Python environment
(``--python``): what the job writes is the user's, and it can write only what the user can.

The service keeps nothing in memory: the job store is the state, so a restarted service lists
every job, and jobs that ran meanwhile (their runners are not its children's children: they lead
their own sessions) have gone on running and recorded how they ended.

API (below the service's prefix, e.g. ``/services/jobs/``):

=======  ===========================  ==============================================
GET      ``api/jobs``                 the user's jobs (JSON), newest first
POST     ``api/jobs``                 submit ``{"name", "content", "parameters", "backend",
                                      "workers"}``; 201 with the job
GET      ``api/jobs/<id>``            one job
POST     ``api/jobs/<id>/cancel``     cancel it
POST     ``api/jobs/<id>/rerun``      run it again as a new job, ``{"parameters"}`` over
                                      its own; 201 with the new job
GET      ``api/jobs/<id>/log``        its log (text)
GET      ``api/jobs/<id>/results``    executed notebook, results, logs, provenance (zip)
GET      ````                         a page listing the jobs with download links
=======  ===========================  ==============================================
"""

from __future__ import annotations

import argparse
import html
import json
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import requests
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import ioloop, web

from ..config import Settings
from . import api
from .accounts import Account
from .model import JobError, JobNotFound, ParameterError

SERVICE_NAME = "jobs"
# What a job's own token may do: start clusters on the gateway, nothing else.
JOB_TOKEN_SCOPES = ["access:services!service=dask-gateway"]
JOB_TOKEN_LIFETIME = 7 * 24 * 3600


class JobsHandler(HubOAuthenticated, web.RequestHandler):
    """Base: the authenticated hub user's name, JSON errors with the library's messages."""

    @property
    def settings_(self) -> Settings:
        return self.application.settings["eosc_settings"]

    @property
    def user_name(self) -> str:
        return self.current_user["name"]

    def write_error(self, status_code: int, **kwargs) -> None:
        error = kwargs.get("exc_info", (None, None))[1]
        message = getattr(error, "log_message", None) or str(error or self._reason)
        self.finish({"status": status_code, "message": message})

    def job_token(
        self, note: str = "eosc-pangeo batch job", lifetime: int = JOB_TOKEN_LIFETIME
    ) -> str:
        """A token of the requesting user for a job, from the hub, scoped to the gateway."""
        response = requests.post(
            url_path_join(self.hub_auth.api_url, "users", self.user_name, "tokens"),
            headers={"Authorization": f"token {self.hub_auth.api_token}"},
            json={"note": note, "scopes": JOB_TOKEN_SCOPES, "expires_in": lifetime},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["token"]

    def account(self) -> Account | None:
        """The Unix account the user's jobs run as: theirs when the service runs as root."""
        if os.geteuid() != 0:
            return None
        try:
            return Account.of(self.user_name, self.application.settings["job_python"])
        except JobError as error:
            raise web.HTTPError(403, str(error)) from None

    def submission(self) -> dict:
        """What every submission for the user gets: their account, and a token of theirs."""
        return {
            "settings": self.settings_,
            "user": self.user_name,
            "account": self.account(),
            "environment": {"JUPYTERHUB_API_TOKEN": self.job_token()},
        }

    def job_or_404(self, job_id: str):
        try:
            return api.get_job(job_id, self.settings_, self.user_name)
        except JobNotFound as error:
            raise web.HTTPError(404, str(error)) from None


class ListHandler(JobsHandler):
    @web.authenticated
    def get(self) -> None:
        jobs = api.list_jobs(self.settings_, self.user_name)
        self.finish({"jobs": [job.model_dump(mode="json") for job in jobs]})

    @web.authenticated
    def post(self) -> None:
        body = json.loads(self.request.body or b"{}")
        name = Path(body.get("name", "")).name
        if not name or not isinstance(body.get("content"), str):
            raise web.HTTPError(400, "give the notebook or script as {'name', 'content'}")
        with tempfile.TemporaryDirectory() as staging:
            source = Path(staging) / name
            source.write_text(body["content"])
            try:
                job = api.submit(
                    source,
                    body.get("parameters") or {},
                    backend=body.get("backend"),
                    workers=body.get("workers"),
                    **self.submission(),
                )
            except (ParameterError, JobError) as error:
                raise web.HTTPError(400, str(error)) from None
        self.set_status(201)
        self.finish(job.model_dump(mode="json"))


class RerunHandler(JobsHandler):
    """JSON ``{"parameters"}`` from the API; the page's rerun button posts a form (with the
    hub's xsrf token, which cookie-authenticated posts need) and is sent back to the page."""

    @web.authenticated
    def post(self, job_id: str) -> None:
        self.job_or_404(job_id)
        from_page = self.request.headers.get("Content-Type", "").startswith(
            "application/x-www-form-urlencoded"
        )
        body = {} if from_page else json.loads(self.request.body or b"{}")
        try:
            job = api.rerun(job_id, body.get("parameters") or {}, **self.submission())
        except (ParameterError, JobError) as error:
            raise web.HTTPError(400, str(error)) from None
        if from_page:
            self.redirect(self.application.settings["page_url"], status=303)
            return
        self.set_status(201)
        self.finish(job.model_dump(mode="json"))


class JobHandler(JobsHandler):
    @web.authenticated
    def get(self, job_id: str) -> None:
        self.finish(self.job_or_404(job_id).model_dump(mode="json"))


class CancelHandler(JobsHandler):
    @web.authenticated
    async def post(self, job_id: str) -> None:
        self.job_or_404(job_id)
        token = self.job_token(note="stop the clusters of a cancelled job", lifetime=600)
        # Blocking (it waits for the runner to stop): off the service's event loop.
        job = await ioloop.IOLoop.current().run_in_executor(
            None, api.cancel, job_id, self.settings_, self.user_name, token
        )
        self.finish(job.model_dump(mode="json"))


class LogHandler(JobsHandler):
    @web.authenticated
    def get(self, job_id: str) -> None:
        self.job_or_404(job_id)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("".join(api.follow_log(job_id, settings=self.settings_, user=self.user_name)))


class ResultsHandler(JobsHandler):
    @web.authenticated
    def get(self, job_id: str) -> None:
        self.job_or_404(job_id)
        with tempfile.TemporaryDirectory() as staging:
            try:
                folder = api.get_results(
                    job_id, Path(staging) / job_id, self.settings_, self.user_name
                )
            except JobError as error:
                raise web.HTTPError(409, str(error)) from None
            archive = shutil.make_archive(str(folder), "zip", folder)
            self.set_header("Content-Type", "application/zip")
            self.set_header("Content-Disposition", f'attachment; filename="{job_id}.zip"')
            self.finish(Path(archive).read_bytes())


class HealthHandler(web.RequestHandler):
    """Unauthenticated: for the hub runner's and probes' readiness checks."""

    def get(self) -> None:
        self.finish({"status": "ok"})


class PageHandler(JobsHandler):
    """The jobs of the user, in the browser, with their logs and results to download."""

    @web.authenticated
    def get(self) -> None:
        rows = []
        jobs = api.list_jobs(self.settings_, self.user_name)
        # Reloaded while a job has not ended, so that its state and links appear by themselves.
        refresh = (
            "<meta http-equiv='refresh' content='5'>"
            if any(not job.state.terminal for job in jobs)
            else ""
        )
        for job in jobs:
            links = f'<a href="api/jobs/{job.id}/log">log</a>'
            if job.state.terminal:
                links += (
                    f' <a href="api/jobs/{job.id}/results">results (zip)</a>'
                    f' <form method="post" action="api/jobs/{job.id}/rerun" style="display:inline">'
                    f'<input type="hidden" name="_xsrf" value="{self.xsrf_token.decode()}">'
                    '<button type="submit">rerun</button></form>'
                )
            rows.append(
                "<tr>"
                + "".join(
                    f"<td>{html.escape(str(v))}</td>"
                    for v in (
                        job.id,
                        job.name,
                        job.backend,
                        job.state.value,
                        job.created,
                        job.reason or "",
                    )
                )
                + f"<td>{links}</td></tr>"
            )
        self.finish(
            f"<!doctype html><html><head><meta charset='utf-8'>{refresh}<title>Jobs</title>"
            "</head><body>"
            f"<h1>Batch jobs of {html.escape(self.user_name)}</h1>"
            "<p>Submit with <code>eosc-pangeo run NOTEBOOK -p NAME=VALUE</code> in a terminal "
            "of your notebook server.</p><table border='1'><tr><th>id</th><th>name</th>"
            "<th>backend</th><th>state</th><th>created</th><th>reason</th><th></th></tr>"
            + "".join(rows)
            + "</table></body></html>"
        )


def make_app(
    prefix: str,
    settings: Settings,
    job_python: str = sys.executable,
) -> web.Application:
    prefix = prefix.rstrip("/") + "/"
    job = r"(\d{8}T\d{6}-[0-9a-f]{6})"
    return web.Application(
        [
            (prefix, PageHandler),
            (url_path_join(prefix, "api/health"), HealthHandler),
            (url_path_join(prefix, "api/jobs"), ListHandler),
            (url_path_join(prefix, f"api/jobs/{job}"), JobHandler),
            (url_path_join(prefix, f"api/jobs/{job}/cancel"), CancelHandler),
            (url_path_join(prefix, f"api/jobs/{job}/rerun"), RerunHandler),
            (url_path_join(prefix, f"api/jobs/{job}/log"), LogHandler),
            (url_path_join(prefix, f"api/jobs/{job}/results"), ResultsHandler),
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
        ],
        cookie_secret=secrets.token_bytes(32),
        eosc_settings=settings,
        job_python=job_python,
        page_url=prefix,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", default=f"/services/{SERVICE_NAME}/")
    parser.add_argument("--jobs-dir", required=True)
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter jobs run with (the users' environment's)",
    )
    arguments = parser.parse_args()
    settings = Settings(jobs_dir=arguments.jobs_dir)
    make_app(arguments.prefix, settings, arguments.python).listen(
        arguments.port, address=arguments.ip
    )
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
