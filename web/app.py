"""The Bottle app: sign-in, the user's VM, start and delete as jobs, job progress, health.

Routes (the original tool's ``/``, ``/register/<secret>``, ``/VM_start``, ``/VM_run`` and
``/VM_delete`` keep working as links; a GET never changes anything):

    GET  /                        sign in; once allowed: your VM, the start form, your jobs
    GET  /register/<secret>       confirm registration      POST: register (then allowed)
    GET  /VM_start?giturl=&ref=   confirm a start           POST: queue a start job
    GET  /VM_run?giturl=&ref=     the same as /VM_start
    GET  /VM_delete               confirm deleting your VM  POST: queue a delete job
    GET  /jobs/<id>, /jobs/<id>.json   a job's progress (its owner only; others get 404)
    GET  /healthz                 app, database and job runner alive (JSON; 503 if not)
    GET  /auth/login?next=/path   sign in with GitHub       GET /auth/callback: back from it
    POST /auth/logout

Cross-cutting concerns live in :class:`SitePlugin`: a database connection per thread, the
visitor (session, user, access) and, for every POST, the cross-site and CSRF checks.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bottle import (
    Bottle,
    HTTPError,
    abort,
    redirect,
    request,
    response,
    template,
)

from web import auth, db, sessions
from web.config import Config
from web.validation import LaunchRequestError, check

log = logging.getLogger(__name__)

TEMPLATES = [str(Path(__file__).resolve().parent / "templates")]  # one list: Bottle caches by it
SAFE_METHODS = ("GET", "HEAD")
JOB_ID = "re:[0-9a-f]{32}"
START_PHASES = ("queued", "creating", "booting", "building", "starting", "ready")
DELETE_PHASES = ("queued", "deleting", "deleted")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not "no-referrer": browsers then send "Origin: null" with every POST, which the
    # same-site check refuses. "same-origin" keeps URLs from other sites all the same.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
CSRF_REFUSED = ("This form could not be accepted: it was sent without this page's security "
                "token, or from another site. Go back, reload the page and try again.")
CROSS_SITE_REFUSED = "Requests from other sites cannot change anything here."


@dataclass(frozen=True)
class Visitor:
    """Who is asking: their session (if any), their user row and access once signed in."""

    session: sessions.Session | None = None
    user: sqlite3.Row | None = None
    access: auth.Access | None = None

    @property
    def signed_in(self) -> bool:
        return self.user is not None

    @property
    def allowed(self) -> bool:
        return self.access is not None and self.access.allowed

    @property
    def github_id(self) -> int:
        return self.user["github_id"]

    @property
    def login(self) -> str:
        return self.user["login"]

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""


class SitePlugin:
    """Bottle plugin: gives routes ``conn`` (this thread's database connection) and
    ``visitor`` when they ask for them by name, and refuses every non-GET request that comes
    from another site or lacks the session's CSRF token (form field ``csrf``)."""

    name = "ssc_site"
    api = 2

    def __init__(self, config: Config, conn_factory):
        self.config = config
        self.conn_factory = conn_factory
        self.local = threading.local()
        self.cookie = "__Host-ssc_session" if config.secure_cookies else "ssc_session"

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = self.conn_factory()
        return conn

    def visitor(self, conn: sqlite3.Connection) -> Visitor:
        session = sessions.load(conn, request.get_cookie(self.cookie))
        if session is None or not session.signed_in:
            return Visitor(session)
        user = db.user(conn, session.github_id)
        if user is None:
            return Visitor(None)
        access = auth.decide(self.config, user["login"], bool(user["registered"]),
                             session.member)
        return Visitor(session, user, access)

    def check_same_site(self) -> None:
        origin = request.get_header("Origin")
        if origin is not None and origin.lower() != self.config.origin:
            abort(403, CROSS_SITE_REFUSED)
        fetch_site = request.get_header("Sec-Fetch-Site")
        if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
            abort(403, CROSS_SITE_REFUSED)

    def apply(self, callback, route):
        wanted = inspect.signature(route.callback).parameters  # follows __wrapped__

        def wrapper(*args, **kwargs):
            conn = self.connection()
            visitor = self.visitor(conn)
            request.environ["ssc.visitor"] = visitor
            if request.method not in SAFE_METHODS:
                self.check_same_site()
                if visitor.session is None or not visitor.session.csrf_matches(
                        request.forms.get("csrf")):
                    abort(403, CSRF_REFUSED)
            if "conn" in wanted:
                kwargs["conn"] = conn
            if "visitor" in wanted:
                kwargs["visitor"] = visitor
            return callback(*args, **kwargs)

        return wrapper


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


def make_app(config: Config, conn_factory=None) -> Bottle:
    """The web trigger as a WSGI app. `conn_factory()` opens a database connection (one is
    made per serving thread); by default :func:`web.db.connect` on ``config.database``."""
    if conn_factory is None:
        def conn_factory():
            return db.connect(config.database)

    app = Bottle(catchall=True, autojson=True)
    plugin = SitePlugin(config, conn_factory)
    db.init(plugin.connection())
    app.install(plugin)
    github = auth.GitHubSignIn(config)
    lifetime = timedelta(hours=config.session_hours)

    # --- helpers -------------------------------------------------------------------------

    def set_session_cookie(session_id: str, max_age: int) -> None:
        response.set_cookie(plugin.cookie, session_id, path="/", httponly=True,
                            samesite="Lax", secure=config.secure_cookies, max_age=max_age)

    def go(path: str, code: int = 303):
        redirect(config.base_url + path, code)

    def begin_sign_in(conn: sqlite3.Connection, next_path: str):
        sessions.purge_expired(conn)
        wanted = github.begin()
        session_id = sessions.start_pending(conn, wanted.state, wanted.verifier,
                                            auth.safe_next(next_path))
        set_session_cookie(session_id, int(sessions.PENDING_LIFETIME.total_seconds()))
        redirect(wanted.url, 302)

    def here() -> str:
        query = request.query_string
        return request.path + (f"?{query}" if query else "")

    def signed_in_page(conn: sqlite3.Connection, visitor: Visitor) -> None:
        """On a GET for signed-in users, send others to sign in and back here."""
        if not visitor.signed_in:
            begin_sign_in(conn, here())

    def allowed_only(visitor: Visitor) -> None:
        if not visitor.signed_in:
            abort(403, "Please sign in first.")
        if not visitor.allowed:
            abort(403, not_allowed_message(visitor))

    def not_allowed_message(visitor: Visitor) -> str:
        if visitor.access and visitor.access.why == "blocked":
            return (f"The GitHub account {visitor.login} is blocked on this site: it cannot "
                    "start or delete VMs.")
        return (f"The GitHub account {visitor.login} is not allowed to start VMs on this site "
                "yet. Ask the site's operators for the registration link"
                + (", or to be added to one of the organizations or teams they admit."
                   if config.allowed_orgs else "."))

    def validated(visitor: Visitor, giturl: str, ref: str) -> dict:
        try:
            return check(visitor.login, giturl, ref or None, config.allowed_hosts,
                         config.allow_http_hosts)
        except LaunchRequestError as error:
            abort(400, str(error))

    def own_job(conn: sqlite3.Connection, visitor: Visitor, job_id: str) -> sqlite3.Row:
        row = db.job(conn, job_id)
        if row is None or not visitor.signed_in or row["github_id"] != visitor.github_id:
            abort(404, "There is no such job among yours.")
        return row

    def job_view(conn: sqlite3.Connection, row: sqlite3.Row) -> dict:
        vm = db.vm_of(conn, row["github_id"])
        url = ""
        if (row["action"] == "start" and row["state"] == "succeeded" and vm is not None
                and vm["state"] == "ready" and safe_link(vm["url"])):
            url = vm["url"]
        return {
            "id": row["id"], "action": row["action"], "repo": row["repo"] or "",
            "ref": row["ref"] or "", "state": row["state"], "phase": row["phase"],
            "message": row["message"] or "", "output": row["output"] or "",
            "created": row["created"], "started": row["started"], "finished": row["finished"],
            "done": row["state"] not in db.ACTIVE_STATES, "jupyter_url": url,
            "phases": list(START_PHASES if row["action"] == "start" else DELETE_PHASES),
        }

    # --- errors --------------------------------------------------------------------------

    def error_page(error: HTTPError):
        for key, value in SECURITY_HEADERS.items():
            response.set_header(key, value)
        message = error.body if isinstance(error.body, str) else "Something went wrong."
        if error.status_code >= 500 and error.status_code != 502:
            message = "Something went wrong on our side. Please try again later."
        if request.path.endswith(".json") or request.path == "/healthz":
            response.content_type = "application/json"
            return json.dumps({"error": message, "status": error.status_code})
        visitor = request.environ.get("ssc.visitor") or Visitor()
        return render("error", title=error.status_line, status=error.status_code,
                      message=message, visitor=visitor)

    for code in (400, 403, 404, 405, 409, 413, 500, 502, 503):
        app.error(code)(error_page)

    @app.hook("after_request")
    def security_headers():
        for key, value in SECURITY_HEADERS.items():
            response.set_header(key, value)

    # --- pages ---------------------------------------------------------------------------

    @app.get("/")
    def index(conn: sqlite3.Connection, visitor: Visitor):
        values = {"visitor": visitor, "vm": None, "job": None, "jobs": [],
                  "default_repo": config.default_repo, "jupyter_url": "",
                  "why_not": ""}
        if visitor.signed_in:
            vm = db.vm_of(conn, visitor.github_id)
            values.update(vm=vm, job=db.current_job(conn, visitor.github_id),
                          jobs=db.jobs_of(conn, visitor.github_id, 5))
            if vm is not None and vm["state"] == "ready" and safe_link(vm["url"]):
                values["jupyter_url"] = vm["url"]
            if not visitor.allowed:
                values["why_not"] = not_allowed_message(visitor)
        return render("index", title="Your Jupyter VM", **values)

    @app.get("/register/<secret>")
    def register_page(secret: str, conn: sqlite3.Connection, visitor: Visitor):
        if not secret_matches(secret):
            abort(404, "Not found.")
        signed_in_page(conn, visitor)
        return render("register", title="Register", visitor=visitor, secret=secret)

    @app.post("/register/<secret>")
    def register(secret: str, conn: sqlite3.Connection, visitor: Visitor):
        if not secret_matches(secret):
            abort(404, "Not found.")
        if not visitor.signed_in:
            abort(403, "Please sign in first.")
        db.register_user(conn, visitor.github_id)
        log.info("registered: %s (%s)", visitor.login, visitor.github_id)
        go("/")

    wanted_secret = hashlib.sha256(config.registration_secret.encode()).digest()

    def secret_matches(secret: str) -> bool:
        """Constant time, whatever the length of the guess."""
        guess = hashlib.sha256(secret.encode("utf-8", "replace")).digest()
        return hmac.compare_digest(guess, wanted_secret)

    def start_page(conn: sqlite3.Connection, visitor: Visitor):
        signed_in_page(conn, visitor)
        allowed_only(visitor)
        query = request.query
        giturl = field(query, "giturl") or config.default_repo
        if not giturl:
            abort(400, "No repository was given: add ?giturl=<the repository's https URL>.")
        wanted = validated(visitor, giturl, field(query, "ref"))
        return render("start", title="Start a VM", visitor=visitor, action=request.path,
                      repo=wanted["repo"],
                      ref=wanted["ref"] or "", job=db.current_job(conn, visitor.github_id),
                      vm=db.vm_of(conn, visitor.github_id))

    def start(conn: sqlite3.Connection, visitor: Visitor):
        allowed_only(visitor)
        forms = request.forms
        wanted = validated(visitor, field(forms, "giturl"), field(forms, "ref"))
        try:
            job_id = db.enqueue_job(conn, visitor.github_id, visitor.login, "start", wanted["repo"],
                                wanted["ref"] or "")
        except db.JobConflict as conflict:
            abort(409, "You already have a job queued or running: wait for it to finish "
                       f"(see /jobs/{conflict.job_id}), then try again.")
        log.info("job %s queued: start %s for %s", job_id, wanted["repo"], visitor.login)
        go(f"/jobs/{job_id}")

    for path in ("/VM_start", "/VM_run"):
        app.get(path)(start_page)
        app.post(path)(start)

    @app.get("/VM_delete")
    def delete_page(conn: sqlite3.Connection, visitor: Visitor):
        signed_in_page(conn, visitor)
        allowed_only(visitor)
        return render("delete", title="Delete your VM", visitor=visitor,
                      vm=db.vm_of(conn, visitor.github_id),
                      job=db.current_job(conn, visitor.github_id))

    @app.post("/VM_delete")
    def delete(conn: sqlite3.Connection, visitor: Visitor):
        allowed_only(visitor)  # acts on the caller's own VM; no field names another
        vm = db.vm_of(conn, visitor.github_id)
        try:
            job_id = db.enqueue_job(conn, visitor.github_id, visitor.login, "delete",
                                    (vm["repo"] or "") if vm else "",
                                    (vm["ref"] or "") if vm else "")
        except db.JobConflict as conflict:
            abort(409, "You already have a job queued or running: wait for it to finish "
                       f"(see /jobs/{conflict.job_id}), then try again.")
        log.info("job %s queued: delete the VM of %s", job_id, visitor.login)
        go(f"/jobs/{job_id}")

    @app.get(f"/jobs/<job_id:{JOB_ID}>")
    def job_page(job_id: str, conn: sqlite3.Connection, visitor: Visitor):
        signed_in_page(conn, visitor)
        view = job_view(conn, own_job(conn, visitor, job_id))
        return render("job", title="Job progress", visitor=visitor, job=view)

    @app.get(f"/jobs/<job_id:{JOB_ID}>.json")
    def job_json(job_id: str, conn: sqlite3.Connection, visitor: Visitor):
        return job_view(conn, own_job(conn, visitor, job_id))

    @app.get("/healthz", skip=[plugin])
    def healthz():
        status = {"app": "ok", "database": "ok", "runner": "ok", "runner_heartbeat": None}
        try:
            conn = plugin.connection()
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

    # --- sign-in -------------------------------------------------------------------------

    @app.get("/auth/login")
    def login(conn: sqlite3.Connection, visitor: Visitor):
        next_path = auth.safe_next(field(request.query, "next"))
        if visitor.signed_in:
            go(next_path)
        begin_sign_in(conn, next_path)

    @app.get("/auth/callback")
    def callback(conn: sqlite3.Connection):
        pending = sessions.take_pending(conn, request.get_cookie(plugin.cookie))
        query = request.query
        state = field(query, "state")
        if pending is None or not hmac.compare_digest(
                state.encode("utf-8", "replace"), pending.oauth_state.encode()):
            abort(400, "This sign-in could not be matched to your browser: it took longer "
                       "than 10 minutes, was started elsewhere, or cookies are blocked. "
                       "Please sign in again.")
        if field(query, "error"):
            abort(403, "Sign-in was cancelled on GitHub "
                       f"({field(query, 'error')[:60]}). You can sign in again any time.")
        code = field(query, "code")
        if not code:
            abort(400, "GitHub sent no authorization code. Please sign in again.")
        try:
            who = github.finish(code, pending.pkce_verifier)
        except auth.SignInError as error:
            abort(502, str(error))
        member = auth.member_of_allowed(config, who)
        db.save_user(conn, who.id, who.login)
        session_id = sessions.start_signed_in(conn, who.id, member, lifetime)
        set_session_cookie(session_id, int(lifetime.total_seconds()))
        log.info("signed in: %s (%s)", who.login, who.id)
        go(auth.safe_next(pending.next))

    @app.post("/auth/logout")
    def logout(conn: sqlite3.Connection, visitor: Visitor):
        if visitor.session is not None:
            sessions.end(conn, visitor.session.id)
        response.delete_cookie(plugin.cookie, path="/", secure=config.secure_cookies,
                               httponly=True, samesite="Lax")
        go("/")

    return app


def safe_link(url: str | None) -> bool:
    """Only http(s) links are shown (never ``javascript:`` or the like)."""
    return bool(url) and url.startswith(("http://", "https://"))
