"""BinderHub's interface on this site (DESIGN.md flow 7): Binder links, badges and the build
event stream, so that links in course pages, papers and READMEs, Jupyter Book's launch
buttons and tools that speak BinderHub's API launch here. Links are read by
:mod:`web.binderspec`; everything else is the app's own start flow.

    GET  /v2/<provider>/<spec>?urlpath=   sign in if needed; straight to Jupyter at that path
                                          when the visitor's VM serves that repository and
                                          ref (to the progress of a job starting it), else a
                                          confirmation page (a GET starts nothing)
    POST /v2/<provider>/<spec>?urlpath=   the confirmation: queue the start job (the app's
                                          CSRF and same-site checks), then its progress
    GET  /jobs/<id>/binder?urlpath=       the job's progress page; once ready, Jupyter there
    GET  /build/<provider>/<spec>         BinderHub's event stream (text/event-stream) for a
                                          signed-in researcher, same-site requests only
    GET  /badge.svg, /badge_logo.svg      the launch badges (image/svg+xml)
    GET  /binder/link?giturl=&ref=&urlpath=   the launch link and Markdown badge of a repository

Specs are read from the raw request line (``REQUEST_URI``, as waitress gives it): WSGI's
``PATH_INFO`` is unescaped, and ``/v2/git/<escaped URL>/<ref>`` needs its escapes to tell
the URL from the ref (BinderHub's ``get_spec_from_request`` does the same for Tornado).

The ``ready`` event's ``url`` is where the researcher's Jupyter is reached: through the site's
proxy, the VM's own host name, and ``token`` is "" (the proxy adds the Jupyter token
upstream; a browser without a pass for that host is sent through sign-in by the proxy). On a
site without the proxy, ``url`` is the VM's own address without a token, and ``token`` the
Jupyter token, for an ``Authorization: token`` header. No token is ever put in a URL here.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from ansible_collections.ssc.repo2docker.plugins.module_utils.launch_request import (
    LaunchRequestError,
    check,
)
from bottle import HTTPResponse, abort, redirect, request, response

from web import app as site
from web import auth, binderspec, buildlog, db, proxy
from web.binderspec import BinderSpecError, Launch
from web.config import Config
from web.plugin import CROSS_SITE_REFUSED, Visitor

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
HEARTBEAT_SECONDS = 15.0  # below the proxy's 30 s read timeout (deploy/nginx-ssc-web.conf)
POLL_SECONDS = 1.0  # how often the stream reads the job
STREAM_SECONDS = 900.0  # a stream ends after this, so it never holds a server thread long
# The job's phases (web/db.py START_PHASES) as BinderHub names its own.
BINDER_PHASES = {"queued": "waiting", "creating": "waiting", "booting": "fetching",
                 "fetching": "fetching", "building": "building", "starting": "launching",
                 "ready": "ready", "failed": "failed"}
# The phase a line of the launcher's log (web/buildlog.py) is sent under: never ``ready`` or
# ``failed``, which end a BinderHub client's stream and come from the job's own end.
LOG_PHASES = {"fetching": "fetching", "building": "building", "starting": "launching",
              "ready": "launching", "failed": "building"}
PHASE_MESSAGES = {
    "queued": "Your launch is queued.", "creating": "Creating your VM.",
    "booting": "Your VM is booting.", "fetching": "Fetching the repository.",
    "building": "Building the repository's environment with repo2docker.",
    "starting": "Starting Jupyter.",
}


# --- reading a link ------------------------------------------------------------------------


def raw_spec(prefix: str) -> str:
    """The spec after ``<prefix>/`` in the request line, still escaped. Without the raw line
    (a WSGI server other than waitress or gunicorn), the unescaped path escaped again: gh and
    gl links still work, git links only without a ref."""
    uri = request.environ.get("REQUEST_URI") or request.environ.get("RAW_URI")
    path = (uri or quote(request.path)).partition("?")[0].partition("#")[0]
    if not path.startswith("/"):  # an absolute-form request line: scheme://host/path
        path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
    if not path.startswith(prefix + "/"):
        abort(400, "This Binder link could not be read.")
    return path[len(prefix) + 1:]


def requested(provider: str, prefix: str, config: Config) -> Launch:
    """The link of this request as a :class:`Launch`; 400 with the reason if refused."""
    query = {name: site.field(request.query, name) for name in ("urlpath", "labpath",
                                                                  "filepath")}
    try:
        return binderspec.launch(provider, raw_spec(f"{prefix}/{provider}"), query,
                                 config.allowed_hosts, config.allow_http_hosts)
    except (BinderSpecError, LaunchRequestError) as error:
        abort(400, str(error))


def raw_request_path() -> str:
    """This request's path and query as sent (escapes kept), to come back to after sign-in."""
    uri = request.environ.get("REQUEST_URI") or request.environ.get("RAW_URI")
    if uri and uri.startswith("/"):
        return uri
    query = request.query_string
    return quote(request.path) + (f"?{query}" if query else "")


def serves(vm: sqlite3.Row | None, wanted: Launch) -> bool:
    """Whether `vm` (a ``vms`` row) serves the repository and ref of `wanted`."""
    return (vm is not None and vm["state"] not in ("", "deleted")
            and binderspec.same_repo(vm["repo"], wanted.repo) and (vm["ref"] or "") == wanted.ref)


def same_start(job: sqlite3.Row, wanted: Launch) -> bool:
    """Whether `job` (a ``jobs`` row) starts the repository and ref of `wanted`."""
    return (job["action"] == "start" and binderspec.same_repo(job["repo"], wanted.repo)
            and (job["ref"] or "") == wanted.ref)


def jupyter_at(config: Config, vm: sqlite3.Row | None, path: str) -> str:
    """Where the owner of `vm` opens its Jupyter at `path` (checked): through the proxy,
    ``/vm/<name>?path=`` (its pass, then that path on the VM's host); on a site without the
    proxy, the VM's own address as the app's pages give it. "" if the VM is not ready."""
    link = proxy.jupyter_link(config, vm)
    if not link:
        return ""
    path = binderspec.check_path(path)
    if config.vms_domain:
        return (f"{config.base_url}/vm/{vm['name']}"
                + (f"?path={quote(path, safe='')}" if path != "/" else ""))
    address, _, query = link.partition("?")
    route, _, path_query = path.partition("?")
    joined = "&".join(part for part in (path_query, query) if part)
    return address.rstrip("/") + route + (f"?{joined}" if joined else "")


# --- pages ---------------------------------------------------------------------------------


def launch_page(provider: str, spec: str, conn: sqlite3.Connection, visitor: Visitor,
                config: Config, github: auth.GitHubSignIn):
    """``GET /v2/<provider>/<spec>``: straight to Jupyter, or the confirmation page."""
    wanted = requested(provider, "/v2", config)
    if not visitor.signed_in or visitor.membership_stale:
        site.begin_sign_in(config, github, raw_request_path())
    site.allowed_only(visitor, config, come_back_to=raw_request_path())
    site.validated(visitor, config, wanted.repo, wanted.ref)
    vm, job = db.vm_of(conn, visitor.github_id), db.current_job(conn, visitor.github_id)
    if job is None and serves(vm, wanted):
        link = jupyter_at(config, vm, wanted.path)
        if link:
            redirect(link, 303)
    if job is not None and same_start(job, wanted):
        redirect(f"{config.base_url}/jobs/{job['id']}/binder?urlpath="
                 f"{quote(wanted.path, safe='')}", 303)
    other = vm if vm is not None and vm["state"] not in ("", "deleted") and not serves(
        vm, wanted) else None
    return site.render("binder", title="Launch a Binder link", visitor=visitor,
                       wanted=wanted, action=raw_request_path(), job=job, other=other,
                       link=binderspec.link_for(config.base_url, wanted.repo, wanted.ref,
                                                wanted.path.lstrip("/")))


def launch(provider: str, spec: str, conn: sqlite3.Connection, visitor: Visitor, config: Config):
    """``POST /v2/<provider>/<spec>``: queue the start job, then its progress page."""
    wanted = requested(provider, "/v2", config)
    site.allowed_only(visitor, config)
    checked = site.validated(visitor, config, wanted.repo, wanted.ref)
    job_id = queue_start(conn, visitor, checked["repo"], checked["ref"] or "")
    site.go(config, f"/jobs/{job_id}/binder?urlpath={quote(wanted.path, safe='')}")


def queue_start(conn: sqlite3.Connection, visitor: Visitor, repo: str, ref: str) -> str:
    """Queue a start job of `visitor`'s (checked `repo`, `ref`); 409 if they have a job."""
    try:
        job_id = db.enqueue_job(conn, visitor.github_id, visitor.login, "start", repo, ref)
    except db.JobConflict as conflict:
        abort(409, site.JOB_CONFLICT.format(conflict.job_id))
    log.info("job %s queued from a Binder link: start %s for %s", job_id, repo, visitor.login)
    return job_id


def job_page(job_id: str, conn: sqlite3.Connection, visitor: Visitor, config: Config,
             github: auth.GitHubSignIn):
    """``GET /jobs/<id>/binder?urlpath=``: the app's progress page; when the job has made the
    VM ready, a redirect to Jupyter at the path."""
    site.signed_in_page(conn, visitor, config, github)
    row = site.own_job(conn, visitor, job_id)
    try:
        path = binderspec.check_path(site.field(request.query, "urlpath") or "/")
    except BinderSpecError as error:
        abort(400, str(error))
    view = site.job_view(conn, config, row)
    if view["jupyter_url"]:
        view["jupyter_url"] = jupyter_at(config, db.vm_of(conn, visitor.github_id), path)
        redirect(view["jupyter_url"], 303)
    return site.render("job", title="Job progress", visitor=visitor, job=view)


def link_page(visitor: Visitor, config: Config):
    """``GET /binder/link?giturl=&ref=&urlpath=``: the launch link and badge, ready to copy."""
    giturl = site.field(request.query, "giturl")
    try:
        repo, ref = binderspec.parse("git", quote(giturl, safe="") + "/" + quote(
            site.field(request.query, "ref") or binderspec.DEFAULT_REF, safe="/"),
            config.allowed_hosts, config.allow_http_hosts)
        path = binderspec.open_path(site.field(request.query, "urlpath"))
    except (BinderSpecError, LaunchRequestError) as error:
        abort(400, str(error))
    link = binderspec.link_for(config.base_url, repo, ref, path.lstrip("/"))
    return site.render("binder_link", title="Binder link and badge", visitor=visitor,
                       repo=repo, ref=ref, link=link,
                       badge=binderspec.badge_markdown(config.base_url, link))


def badge(name: str):
    """``GET /badge.svg``, ``/badge_logo.svg``: the launch badge (BinderHub's URLs)."""
    body = (STATIC / name).read_bytes()
    return HTTPResponse(body, 200, {"Content-Type": "image/svg+xml",
                                    "Cache-Control": "public, max-age=86400"})


# --- the event stream ----------------------------------------------------------------------


def event(data: dict) -> str:
    """One Server-Sent Event with `data` as JSON (BinderHub's ``data: {...}\\n\\n``)."""
    return f"data: {json.dumps(data)}\n\n"


def job_log(conn: sqlite3.Connection, job_id: str, after: int) -> list[dict]:
    """The job's build log records after `after` (a seq), oldest first, each ``{"seq": int,
    "phase": str, "text": str}``: the launcher's records the job runner keeps
    (web/buildlog.py). The one place the stream reads the log."""
    return [{"seq": line.seq, "phase": line.phase, "text": line.text}
            for line in buildlog.lines_after(conn, job_id, after)]


def same_site_only(config: Config) -> None:
    """403 for a request a page of another site made (``Origin``, ``Sec-Fetch-Site``), as the
    app's own check for forms (web/plugin.py): a GET here may start a VM."""
    origin = request.get_header("Origin")
    fetch_site = request.get_header("Sec-Fetch-Site")
    if ((origin is not None and origin.lower() != config.origin)
            or (fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"))):
        abort(403, CROSS_SITE_REFUSED)


def build_stream(provider: str, spec: str, conn: sqlite3.Connection, visitor: Visitor,
                 config: Config):
    """``GET /build/<provider>/<spec>``: BinderHub's event stream (see the module's doc)."""
    same_site_only(config)
    if "text/event-stream" not in (request.get_header("Accept") or "").lower():
        abort(400, "This is an event stream: ask for it with Accept: text/event-stream.")
    if not visitor.signed_in:
        abort(403, "Please sign in first.")
    site.allowed_only(visitor, config)
    response.content_type = "text/event-stream"
    response.set_header("Cache-Control", "no-cache")
    response.set_header("X-Accel-Buffering", "no")  # nginx passes each event at once
    try:
        wanted = requested_for_stream(provider, visitor, config)
    except (BinderSpecError, LaunchRequestError) as error:
        return [event({"phase": "failed", "message": f"{error}\n"})]
    vm, job = db.vm_of(conn, visitor.github_id), db.current_job(conn, visitor.github_id)
    if job is None and serves(vm, wanted) and proxy.jupyter_link(config, vm):
        return [event(ready_event(config, vm, wanted))]
    if job is not None and not same_start(job, wanted):
        return [event({"phase": "failed", "message": site.JOB_CONFLICT.format(job["id"])
                       + "\n"})]
    if job is None and vm is not None and vm["state"] not in ("", "deleted"):
        return [event({"phase": "failed", "message": (
            f"Your VM serves {vm['repo']}: open {config.base_url}/{wanted.binder_request} "
            "to replace it.\n")})]
    job_id = job["id"] if job is not None else queue_start(conn, visitor, wanted.repo,
                                                           wanted.ref)
    return follow(conn, config, visitor, job_id, wanted)


def requested_for_stream(provider: str, visitor: Visitor, config: Config) -> Launch:
    """The link of this stream, checked as the start form checks it (raises, for the stream
    to say why in a ``failed`` event)."""
    query = {name: site.field(request.query, name) for name in ("urlpath", "labpath",
                                                                  "filepath")}
    wanted = binderspec.launch(provider, raw_spec(f"/build/{provider}"), query,
                               config.allowed_hosts, config.allow_http_hosts)
    check(visitor.login, wanted.repo, wanted.ref or None, config.allowed_hosts,
          config.allow_http_hosts)
    return wanted


def ready_event(config: Config, vm: sqlite3.Row, wanted: Launch) -> dict:
    """BinderHub's ``ready`` event for `vm`: ``url`` and ``token`` (see the module's doc)."""
    if config.vms_domain:
        url, token = config.vm_url(vm["name"]), ""
    else:
        url, token = proxy.direct_url(vm["url"]), vm["token"] or proxy.url_token(vm["url"])
    return {"phase": "ready", "message": f"server running at {url}\n", "url": url,
            "token": token, "repo_url": wanted.repo, "binder_request": wanted.binder_request,
            "binder_launch_host": config.base_url + "/"}


def follow(conn: sqlite3.Connection, config: Config, visitor: Visitor, job_id: str,
           wanted: Launch) -> Iterator[str]:
    """The events of the job `job_id` until it ends, or :data:`STREAM_SECONDS`: one per phase
    it reaches, its log lines as ``building`` messages, a heartbeat comment every
    :data:`HEARTBEAT_SECONDS`."""
    started = last_beat = time.monotonic()
    phase, seq = "", 0
    yield ":heartbeat\n\n"
    while True:
        row = db.job(conn, job_id)
        for record in job_log(conn, job_id, seq):
            seq = max(seq, int(record["seq"]))
            yield event({"phase": LOG_PHASES.get(record["phase"], "building"),
                         "message": f"{record['text']}\n"})
        if row["phase"] != phase and row["state"] in db.ACTIVE_STATES:
            phase = row["phase"]
            yield event({"phase": BINDER_PHASES.get(phase, "waiting"),
                         "message": PHASE_MESSAGES.get(phase, phase) + "\n"})
        if row["state"] == "succeeded":
            vm = db.vm_of(conn, visitor.github_id)
            if proxy.jupyter_link(config, vm):
                yield event(ready_event(config, vm, wanted))
            else:
                yield event({"phase": "failed", "message": "The VM is not ready.\n"})
            return
        if row["state"] not in db.ACTIVE_STATES:
            yield event({"phase": "failed", "message": (row["message"] or
                                                       "The launch did not finish.") + "\n"})
            return
        now = time.monotonic()
        if now - started > STREAM_SECONDS:
            yield event({"phase": "failed", "message": (
                "This stream ends here; the launch goes on: follow it at "
                f"{config.base_url}/jobs/{job_id}\n")})
            return
        if now - last_beat >= HEARTBEAT_SECONDS:
            last_beat = now
            yield ":heartbeat\n\n"
        time.sleep(POLL_SECONDS)


def badge_route(name: str):
    def serve():
        return badge(name)
    serve.__name__ = f"badge_{name.split('.')[0]}"
    return serve


def routes() -> tuple:
    """``(method, path, function)`` of this module's routes, for :func:`web.app.make_app`.
    (The ``spec`` in a route's path is read again from the request line: :func:`raw_spec`.)"""
    return (
        ("GET", "/v2/<provider>/<spec:path>", launch_page),
        ("POST", "/v2/<provider>/<spec:path>", launch),
        ("GET", f"/jobs/<job_id:{site.JOB_ID}>/binder", job_page),
        ("GET", "/build/<provider>/<spec:path>", build_stream),
        ("GET", "/badge.svg", badge_route("badge.svg")),
        ("GET", "/badge_logo.svg", badge_route("badge_logo.svg")),
        ("GET", "/binder/link", link_page),
    )
