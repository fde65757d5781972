"""The Bottle app: sign-in, the user's VM, start and delete as jobs, job progress, health.

Routes (the original tool's ``/``, ``/register/<secret>``, ``/VM_start``, ``/VM_run`` and
``/VM_delete`` keep working as links; a GET changes nothing but sign-in and VM-pass rows, and
writes nothing at all before GitHub sends a signing-in browser back):

    GET  /                        sign in; once allowed: your VM, the start form, your jobs
    GET  /register/<secret>       confirm registration      POST: register (then allowed)
    GET  /VM_start?giturl=&ref=   confirm a start           POST: queue a start job
    GET  /VM_run?giturl=&ref=     the same as /VM_start
    GET  /VM_delete               confirm deleting your VM  POST: queue a delete job
    POST /VM_extend               "keep it": queue an extend job (web/lifetime.py)
    GET  /jobs/<id>, /jobs/<id>.json   a job's progress (its owner only; others get 404)
    GET  /jobs/<id>/events        its build log live, as Server-Sent Events (web/eventstream.py)
    GET  /static/joblog.js        the job page's script that shows them
    GET  /healthz                 app, database and job runner alive (JSON; 503 if not)
    GET  /auth/login?next=/path   sign in with GitHub       GET /auth/callback: back from it
    POST /auth/logout
    GET  /vm/<name>, /proxy/pass, /proxy/auth   the way to a VM through the site's proxy
                                  (web/proxy.py; the last two for nginx, on the VM's host)
    /v2/…, /build/…, /badge.svg, /binder/link   BinderHub's interface (web/binder.py)

Each route is a function of this module that asks for what it needs by parameter name
(``conn``, ``visitor``, ``config``, ``github``, ``connect``): :class:`web.plugin.SitePlugin`
gives it, and does the cross-site and CSRF checks. :func:`make_app` wires them (:data:`ROUTES`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ansible_collections.ssc.repo2docker.plugins.module_utils.launch_request import (
    LaunchRequestError,
    canonical_url,
    check,
)
from bottle import Bottle, HTTPError, abort, redirect, request, response, static_file, template

from web import auth, buildlog, db, eventstream, pending, proxy, sessions, users
from web.config import Config
from web.lifetime import page_view
from web.plugin import VISITOR, SitePlugin, Visitor, session_cookie

log = logging.getLogger(__name__)

TEMPLATES = [str(Path(__file__).resolve().parent / "templates")]  # one list: Bottle caches by it
STATIC = Path(__file__).resolve().parent / "static"
STREAMS = "ssc.event_streams"  # the app's eventstream.Slots, in its config
JOB_ID = "re:[0-9a-f]{32}"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "script-src 'self'; connect-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not "no-referrer": browsers then send "Origin: null" with every POST, which the
    # same-site check refuses. "same-origin" keeps URLs from other sites all the same.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
ERROR_CODES = (400, 403, 404, 405, 409, 413, 500, 502, 503)
JOB_CONFLICT = ("You already have a job queued or running: wait for it to finish "
                "(see /jobs/{}), then try again.")


# --- helpers -------------------------------------------------------------------------------


def render(name: str, **values) -> str:
    return template(name, template_lookup=TEMPLATES, **values)


def field(source, name: str) -> str:
    """A query or form field as text (UTF-8), "" when absent; 400 if it is not UTF-8."""
    raw = source.get(name)
    if raw is None:
        return ""
    try:
        return raw.encode("latin1").decode("utf-8")
    except UnicodeError:
        abort(400, f"The field {name} is not valid UTF-8 text.")


def set_session_cookie(config: Config, session_id: str, max_age: int) -> None:
    response.set_cookie(session_cookie(config), session_id, path="/", httponly=True,
                        samesite="Lax", secure=config.secure_cookies, max_age=max_age)


def go(config: Config, path: str, code: int = 303):
    """Redirect to `path` of this site."""
    redirect(config.base_url + path, code)


def begin_sign_in(config: Config, github: auth.GitHubSignIn, next_path: str):
    """Send the browser to GitHub, to come back to `next_path` once signed in. The sign-in
    under way is a signed cookie of its own (web/pending.py): nothing is written here."""
    wanted = github.begin()
    for name in pending.to_drop(config, request.cookies):
        response.delete_cookie(name, path="/", secure=config.secure_cookies, httponly=True,
                               samesite="Lax")
    value = pending.pack(config, pending.PendingSignIn(
        wanted.state, wanted.verifier, auth.safe_next(next_path), time.time()))
    response.set_cookie(pending.cookie_name(config, wanted.state), value, path="/",
                        httponly=True, samesite="Lax", secure=config.secure_cookies,
                        max_age=pending.LIFETIME)
    redirect(wanted.url, 302)


def signed_in_page(conn: sqlite3.Connection, visitor: Visitor, config: Config,
                   github: auth.GitHubSignIn) -> None:
    """On a GET for signed-in users, send others to sign in and back here, and a user whom
    only an organization or team admitted through GitHub again once that is to be read
    again (web/users.py)."""
    if not visitor.signed_in or visitor.membership_stale:
        query = request.query_string
        begin_sign_in(config, github, request.path + (f"?{query}" if query else ""))


# A Binder link opened by someone not yet registered: the registration comes back to it.
AFTER_REGISTER_COOKIE = "ssc_after_register"
AFTER_REGISTER_SECONDS = 86400


def allowed_only(visitor: Visitor, config: Config, come_back_to: str = "") -> None:
    """403 unless `visitor` may start VMs. `come_back_to` (a ``/v2/`` Binder link's path):
    the link the registration link then leads back to (a cookie of this site's, a day)."""
    if not visitor.signed_in:
        abort(403, "Please sign in first.")
    if not visitor.allowed:
        refused = HTTPError(403, not_allowed_message(visitor, config))
        if come_back_to.startswith("/v2/") and not visitor.membership_stale:
            refused.set_cookie(AFTER_REGISTER_COOKIE, come_back_to, path="/register",
                               httponly=True, samesite="Lax", secure=config.secure_cookies,
                               max_age=AFTER_REGISTER_SECONDS)
        raise refused


def after_register(config: Config) -> str:
    """Where a registration leads: the Binder link that sent the visitor here, else "/"."""
    wanted = request.get_cookie(AFTER_REGISTER_COOKIE) or ""
    response.delete_cookie(AFTER_REGISTER_COOKIE, path="/register",
                           secure=config.secure_cookies, httponly=True, samesite="Lax")
    return wanted if wanted.startswith("/v2/") and "\\" not in wanted and all(
        " " < c <= "~" for c in wanted) else "/"


def not_allowed_message(visitor: Visitor, config: Config) -> str:
    if visitor.membership_stale:
        return ("Your membership of the site's organizations or teams must be checked with "
                "GitHub again: reload the page, or sign in again.")
    if visitor.access and visitor.access.why == "blocked":
        return (f"The GitHub account {visitor.login} is blocked on this site: it cannot "
                "start or delete VMs.")
    return (f"The GitHub account {visitor.login} is not allowed to start VMs on this site "
            "yet. Ask the site's operators for the registration link"
            + (", or to be added to one of the organizations or teams they admit."
               if config.allowed_orgs else "."))


def validated(visitor: Visitor, config: Config, giturl: str, ref: str) -> dict:
    """The request checked with the shared rules and the site's hosts; 400 if refused."""
    try:
        return check(visitor.login, giturl, ref or None, config.allowed_hosts,
                     config.allow_http_hosts, config.case_insensitive_hosts,
                     config.subgroup_hosts)
    except LaunchRequestError as error:
        abort(400, str(error))


def serves_another(config: Config, vm: sqlite3.Row | None, repo: str) -> bool:
    """Whether `vm` (the user's, from the database) serves another repository than `repo`
    (a checked, canonical URL), whatever spelling the VM's metadata recorded it in."""
    if vm is None or vm["state"] in ("", "deleted"):
        return False
    try:
        return canonical_url(vm["repo"] or "", config.case_insensitive_hosts) != repo
    except ValueError:
        return True


def secret_matches(config: Config, secret: str) -> bool:
    """Whether `secret` is the registration secret; constant time, whatever the length of
    the guess."""
    guess = hashlib.sha256(secret.encode("utf-8", "replace")).digest()
    return hmac.compare_digest(guess, hashlib.sha256(config.registration_secret.encode())
                               .digest())


def own_job(conn: sqlite3.Connection, visitor: Visitor, job_id: str) -> sqlite3.Row:
    row = db.job(conn, job_id)
    if row is None or not visitor.signed_in or row["github_id"] != visitor.github_id:
        abort(404, "There is no such job among yours.")
    return row


def job_view(conn: sqlite3.Connection, config: Config, row: sqlite3.Row) -> dict:
    """A job as its page and ``/jobs/<id>.json`` show it."""
    url = ""
    if row["action"] == "start" and row["state"] == "succeeded":
        url = proxy.jupyter_link(config, db.vm_of(conn, row["github_id"]))
    return {
        "id": row["id"], "action": row["action"], "repo": row["repo"] or "",
        "ref": row["ref"] or "", "state": row["state"], "phase": row["phase"],
        "message": row["message"] or "", "output": row["output"] or "",
        "created": row["created"], "started": row["started"], "finished": row["finished"],
        "done": row["state"] not in db.ACTIVE_STATES, "jupyter_url": url,
        "phases": list(db.phases_of(row["action"])),
        "log": [{"seq": line.seq, "phase": line.phase, "text": line.text}
                for line in buildlog.lines_after(conn, row["id"])],
    }


def enqueue(conn: sqlite3.Connection, visitor: Visitor, config: Config, action: str,
            repo: str, ref: str):
    """Queue a job of `visitor`'s and go to its page; 409 if they have one already."""
    try:
        job_id = db.enqueue_job(conn, visitor.github_id, visitor.login, action, repo, ref)
    except db.JobConflict as conflict:
        abort(409, JOB_CONFLICT.format(conflict.job_id))
    log.info("job %s queued: %s", job_id, f"start {repo} for {visitor.login}"
             if action == "start" else f"{action} the VM of {visitor.login}")
    go(config, f"/jobs/{job_id}")


# --- errors and headers --------------------------------------------------------------------


def error_page(error: HTTPError):
    for key, value in SECURITY_HEADERS.items():
        response.set_header(key, value)
    message = error.body if isinstance(error.body, str) else "Something went wrong."
    if error.status_code >= 500 and error.status_code != 502:
        message = "Something went wrong on our side. Please try again later."
    if request.path.endswith(".json") or request.path == "/healthz":
        response.content_type = "application/json"
        return json.dumps({"error": message, "status": error.status_code})
    visitor = request.environ.get(VISITOR) or Visitor()
    return render("error", title=error.status_line, status=error.status_code,
                  message=message, visitor=visitor)


def security_headers():
    for key, value in SECURITY_HEADERS.items():
        response.set_header(key, value)


# --- pages ---------------------------------------------------------------------------------


def index(conn: sqlite3.Connection, visitor: Visitor, config: Config,
          github: auth.GitHubSignIn):
    if visitor.membership_stale:
        signed_in_page(conn, visitor, config, github)
    values = {"visitor": visitor, "vm": None, "job": None, "jobs": [], "lifetime": None,
              "default_repo": config.default_repo, "jupyter_url": "", "why_not": ""}
    if visitor.signed_in:
        vm = db.vm_of(conn, visitor.github_id)
        values.update(vm=vm, job=db.current_job(conn, visitor.github_id),
                      jobs=db.jobs_of(conn, visitor.github_id, 5))
        values["lifetime"] = page_view(vm, values["jobs"])
        values["jupyter_url"] = proxy.jupyter_link(config, vm)
        if not visitor.allowed:
            values["why_not"] = not_allowed_message(visitor, config)
    return render("index", title="Your Jupyter VM", **values)


def register_page(secret: str, conn: sqlite3.Connection, visitor: Visitor, config: Config,
                  github: auth.GitHubSignIn):
    if not secret_matches(config, secret):
        abort(404, "Not found.")
    signed_in_page(conn, visitor, config, github)
    return render("register", title="Register", visitor=visitor, secret=secret)


def register(secret: str, conn: sqlite3.Connection, visitor: Visitor, config: Config):
    if not secret_matches(config, secret):
        abort(404, "Not found.")
    if not visitor.signed_in:
        abort(403, "Please sign in first.")
    db.register_user(conn, visitor.github_id)
    log.info("registered: %s (%s)", visitor.login, visitor.github_id)
    go(config, after_register(config))


def start_page(conn: sqlite3.Connection, visitor: Visitor, config: Config,
               github: auth.GitHubSignIn):
    signed_in_page(conn, visitor, config, github)
    allowed_only(visitor, config)
    giturl = field(request.query, "giturl") or config.default_repo
    if not giturl:
        abort(400, "No repository was given: add ?giturl=<the repository's https URL>.")
    wanted = validated(visitor, config, giturl, field(request.query, "ref"))
    vm = db.vm_of(conn, visitor.github_id)
    return render("start", title="Start a VM", visitor=visitor, action=request.path,
                  repo=wanted["repo"], ref=wanted["ref"] or "",
                  job=db.current_job(conn, visitor.github_id), vm=vm,
                  serves_another=serves_another(config, vm, wanted["repo"]))


def start(conn: sqlite3.Connection, visitor: Visitor, config: Config):
    allowed_only(visitor, config)
    forms = request.forms
    wanted = validated(visitor, config, field(forms, "giturl"), field(forms, "ref"))
    enqueue(conn, visitor, config, "start", wanted["repo"], wanted["ref"] or "")


def delete_page(conn: sqlite3.Connection, visitor: Visitor, config: Config,
                github: auth.GitHubSignIn):
    signed_in_page(conn, visitor, config, github)
    allowed_only(visitor, config)
    return render("delete", title="Delete your VM", visitor=visitor,
                  vm=db.vm_of(conn, visitor.github_id),
                  job=db.current_job(conn, visitor.github_id))


def delete(conn: sqlite3.Connection, visitor: Visitor, config: Config):
    allowed_only(visitor, config)  # acts on the caller's own VM; no field names another
    vm = db.vm_of(conn, visitor.github_id)
    enqueue(conn, visitor, config, "delete", (vm["repo"] or "") if vm else "",
            (vm["ref"] or "") if vm else "")


def extend(conn: sqlite3.Connection, visitor: Visitor, config: Config):
    """Keep the caller's own VM longer: queue an extend job (no field names a VM); 409
    without a VM, or when the site's cap is known to be reached."""
    allowed_only(visitor, config)
    vm = db.vm_of(conn, visitor.github_id)
    if vm is None or vm["state"] in ("", "deleted"):
        abort(409, "You have no VM to keep longer: start one first.")
    cap = page_view(vm, [])["cap"]
    if cap:
        abort(409, cap)
    enqueue(conn, visitor, config, "extend", vm["repo"] or "", vm["ref"] or "")


def job_page(job_id: str, conn: sqlite3.Connection, visitor: Visitor, config: Config,
             github: auth.GitHubSignIn):
    signed_in_page(conn, visitor, config, github)
    view = job_view(conn, config, own_job(conn, visitor, job_id))
    return render("job", title="Job progress", visitor=visitor, job=view)


def job_json(job_id: str, conn: sqlite3.Connection, visitor: Visitor, config: Config):
    return job_view(conn, config, own_job(conn, visitor, job_id))


def job_events(job_id: str, conn: sqlite3.Connection, visitor: Visitor):
    """The job's progress as Server-Sent Events (web/eventstream.py); 404 as the job page
    for anyone but its owner."""
    own_job(conn, visitor, job_id)
    response.content_type = "text/event-stream; charset=utf-8"
    response.set_header("X-Accel-Buffering", "no")  # nginx: pass each event on at once
    after = eventstream.last_event_id(request.get_header("Last-Event-ID"),
                                      request.query.get("after"))
    return eventstream.stream(conn, job_id, after, request.app.config[STREAMS])


def job_script():
    return static_file("joblog.js", root=str(STATIC), mimetype="text/javascript",
                       charset="utf-8")


def healthz(connect, config: Config):
    status = {"app": "ok", "database": "ok", "runner": "ok", "runner_heartbeat": None}
    try:
        conn = connect()
        conn.execute("SELECT 1 FROM jobs LIMIT 1").fetchall()
        beat = db.runner_heartbeat(conn)
    except sqlite3.Error as error:
        log.error("healthz: the database failed: %s", error)
        status.update(database="error", runner="unknown")
    else:
        if beat is None:
            status["runner"] = "missing"
        else:
            status["runner_heartbeat"] = db.format_time(beat)
            age = (datetime.now(UTC) - beat).total_seconds()
            if age > config.runner_stale_seconds:
                status["runner"] = "stale"
    healthy = status["database"] == "ok" and status["runner"] == "ok"
    response.status = 200 if healthy else 503
    return status


# --- sign-in -------------------------------------------------------------------------------


def login(visitor: Visitor, config: Config, github: auth.GitHubSignIn):
    next_path = auth.safe_next(field(request.query, "next"))
    if visitor.signed_in and not visitor.membership_stale:
        go(config, next_path)
    begin_sign_in(config, github, next_path)


def callback(conn: sqlite3.Connection, visitor: Visitor, config: Config,
             github: auth.GitHubSignIn):
    query = request.query
    state = field(query, "state")
    started = pending.find(config, request.cookies, state)
    if started is None:
        abort(400, "This sign-in could not be matched to your browser: it took longer "
                   "than 10 minutes, was started elsewhere, or cookies are blocked. "
                   "Please sign in again.")
    # used once: the browser forgets it (other sign-ins under way keep theirs)
    response.delete_cookie(pending.cookie_name(config, state), path="/",
                           secure=config.secure_cookies, httponly=True, samesite="Lax")
    if field(query, "error"):
        abort(403, "Sign-in was cancelled on GitHub "
                   f"({field(query, 'error')[:60]}). You can sign in again any time.")
    code = field(query, "code")
    if not code:
        abort(400, "GitHub sent no authorization code. Please sign in again.")
    try:
        who = github.finish(code, started.verifier)
    except auth.SignInError as error:
        abort(502, str(error))
    member = auth.member_of_allowed(config, who)
    lifetime = timedelta(hours=config.session_hours)
    member_for = timedelta(minutes=config.membership_minutes)
    with db.transaction(conn):
        db.save_user(conn, who.id, who.login)
        users.bind_logins(conn, config, who.id, who.login)
        if visitor.signed_in and visitor.github_id == who.id:
            # the same account again (another tab's sign-in, a membership read again): the
            # session stays, with what GitHub says now, so that the other tabs' forms work
            sessions.renew_membership(conn, visitor.session.id, member, member_for)
            session_id = None
        else:
            if visitor.session is not None:  # another account: that session ends
                sessions.end(conn, visitor.session.id)
            session_id = sessions.start_signed_in(conn, who.id, member, lifetime, member_for)
    if session_id:
        set_session_cookie(config, session_id, int(lifetime.total_seconds()))
    log.info("signed in: %s (%s)", who.login, who.id)
    go(config, auth.safe_next(started.next))


def logout(conn: sqlite3.Connection, visitor: Visitor, config: Config):
    if visitor.session is not None:
        sessions.end(conn, visitor.session.id)
    response.delete_cookie(session_cookie(config), path="/", secure=config.secure_cookies,
                           httponly=True, samesite="Lax")
    go(config, "/")


# --- wiring --------------------------------------------------------------------------------

ROUTES = (
    ("GET", "/", index),
    ("GET", "/register/<secret>", register_page),
    ("POST", "/register/<secret>", register),
    ("GET", "/VM_start", start_page),
    ("POST", "/VM_start", start),
    ("GET", "/VM_run", start_page),
    ("POST", "/VM_run", start),
    ("GET", "/VM_delete", delete_page),
    ("POST", "/VM_delete", delete),
    ("POST", "/VM_extend", extend),
    ("GET", f"/jobs/<job_id:{JOB_ID}>", job_page),
    ("GET", f"/jobs/<job_id:{JOB_ID}>.json", job_json),
    ("GET", f"/jobs/<job_id:{JOB_ID}>/events", job_events),
    ("GET", "/static/joblog.js", job_script),
    ("GET", "/healthz", healthz),
    ("GET", "/auth/login", login),
    ("GET", "/auth/callback", callback),
    ("POST", "/auth/logout", logout),
    ("GET", f"/vm/<name:re:{proxy.VM_NAME.pattern}>", proxy.enter),
    ("GET", "/proxy/pass", proxy.take_pass),
    ("GET", "/proxy/auth", proxy.authorize),
)


def make_app(config: Config, conn_factory=None) -> Bottle:
    """The web trigger as a WSGI app. `conn_factory()` opens a database connection (one is
    made per serving thread); by default :func:`web.db.connect` on ``config.database``."""
    if conn_factory is None:
        def conn_factory():
            return db.connect(config.database)

    app = Bottle(catchall=True, autojson=True)
    # An event stream holds a serving thread: leave at least half of them to the rest.
    app.config[STREAMS] = eventstream.Slots(config.threads // 2)
    plugin = SitePlugin(config, conn_factory, auth.GitHubSignIn(config))
    db.init(plugin.connection())
    app.install(plugin)
    for code in ERROR_CODES:
        app.error(code)(error_page)
    app.add_hook("after_request", security_headers)
    from web import binder  # Binder links, badges and event stream (imports this module)

    for method, path, route in (*ROUTES, *binder.routes()):
        app.route(path, method, route)
    return app
