"""Researchers reach their Jupyter through the site's proxy (nginx, deploy/nginx-ssc-web.conf),
at a host name of its own per VM, ``<scheme>://<vm name>.<vms_domain>/``, and only the VM's
owner gets through. The routes here are the proxy's side of the app:

    GET /vm/<name>[?path=]  (app's origin) the owner's way in: a one-time ticket, and a 303 to
                            ``<vm url>/_ssc/pass?ticket=…[&next=<path>]``; sign-in first if
                            needed, 404 for a VM that is not the visitor's (another user, a
                            signed-out visitor after signing in)
    GET /proxy/pass?ticket=[&next=] (the VM's host: nginx sends ``/_ssc/pass`` here) takes
                            the ticket, sets the pass cookie for that host only, 303 to ``/``
                            (or to `next`, a path checked as a Binder link's)
    GET /proxy/auth         (nginx ``auth_request``, Host = the VM's host) 200 with
                            ``X-SSC-Upstream: <fixed address>`` and ``X-SSC-Token: <token>``
                            for the VM's owner; 401 without a valid pass (nginx turns it
                            into a redirect to /vm/<name>), 403 for a request from another
                            origin (nginx answers 403)

The proxy puts ``Authorization: token <X-SSC-Token>`` on the request it passes to the VM, so
the Jupyter token is never in a URL, page, redirect, cookie or log; the browser holds only the
pass, a random id (the ``vm_passes`` table) that ends with the app session it came from
(signing out ends it) and works on that one host. A separate origin per VM keeps a
repository's JavaScript away from the app and from other researchers' VMs (as JupyterHub's
subdomains do, CVE-2024-28233).

:class:`AuthCache` keeps a granted answer for ``auth_cache_seconds`` (5 s by default): the
proxy asks once per request (each file, API call and WebSocket), so most answers come from
memory; a sign-out, block or deleted VM takes effect within that time.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlsplit

from bottle import abort, redirect, request, response

from web import auth, db, users
from web.config import Config

if TYPE_CHECKING:
    from web.plugin import Visitor

TICKET_LIFETIME = timedelta(seconds=60)
PASS_PATH = "/_ssc/pass"  # noqa: S105 (a path) on the VM's host; nginx sends it to /proxy/pass
UPSTREAM_HEADER = "X-SSC-Upstream"
TOKEN_HEADER = "X-SSC-Token"  # noqa: S105 (a header name)
TICKET = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
VM_NAME = re.compile(r"[a-z0-9-]{1,63}")  # one DNS label (user_vm names them ssc-r2d-...)


# --- the VM's addresses as the playbook reports them ---------------------------------------


def url_token(url: str) -> str:
    """The ``token`` query value of `url` ("" if none): the URL older playbooks reported."""
    return parse_qs(urlsplit(url).query).get("token", [""])[0]


def direct_url(url: str) -> str:
    """`url` without its query and fragment: the VM's own Jupyter address, no token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path or '/'}" if parts.netloc else ""


def jupyter_link(config: Config, vm: sqlite3.Row | None) -> str:
    """Where the page sends the owner of `vm` (a ready ``vms`` row): its host name through the
    proxy; without ``[proxy] vms_domain``, its own address with the token (a site that gives
    VMs floating IPs and no proxy: the token then travels in the URL, in clear); "" if
    none."""
    if vm is None or vm["state"] != "ready" or not vm["url"]:
        return ""
    if config.vms_domain:
        return config.vm_url(vm["name"]) if vm["name"] and vm["token"] else ""
    url = vm["url"]
    if not url.startswith(("http://", "https://")):
        return ""
    token = vm["token"] or url_token(url)
    return f"{direct_url(url)}?token={token}" if token else url


# --- passes --------------------------------------------------------------------------------


def vm_name_of_host(config: Config, host: str | None) -> str:
    """The VM name in a ``Host`` header of ``<name>.<vms_domain>``, `name` one label of
    :data:`VM_NAME` as in ``/vm/<name>`` ("" for any other host)."""
    if not host or not config.vms_domain:
        return ""
    host = host.lower()
    suffix = "." + config.vms_domain
    if ":" not in config.vms_domain:
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if not host.endswith(suffix):
        return ""
    name = host[: -len(suffix)]
    return name if VM_NAME.fullmatch(name) else ""


def pass_cookie(config: Config) -> str:
    """The pass cookie's name: ``__Host-`` (Secure, that host only) unless plain HTTP here."""
    return "__Host-ssc_vm" if config.secure_cookies else "ssc_vm"


def issue_ticket(conn: sqlite3.Connection, session_id: str, vm_name: str) -> str:
    """A new pass for `vm_name` under the app session `session_id`: its one-time ticket."""
    ticket = secrets.token_urlsafe(32)
    expires = db.format_time(datetime.now(UTC) + TICKET_LIFETIME)
    with db.transaction(conn):
        conn.execute("DELETE FROM vm_passes WHERE ticket IS NOT NULL AND ticket_expires <= ?",
                     (db.now(),))
        conn.execute("INSERT INTO vm_passes (id, ticket, ticket_expires, session_id, vm_name) "
                     "VALUES (?, ?, ?, ?, ?)",
                     (secrets.token_urlsafe(32), ticket, expires, session_id, vm_name))
    return ticket


def take_ticket(conn: sqlite3.Connection, ticket: str, vm_name: str) -> tuple[str, int] | None:
    """The pass id that `ticket` opens for `vm_name`, and the seconds its app session has left;
    the ticket is spent at once. None for an unknown, spent, expired or other VM's ticket."""
    if not TICKET.fullmatch(ticket or ""):
        return None
    row = conn.execute(
        "UPDATE vm_passes SET ticket = NULL WHERE ticket = ? RETURNING id, ticket_expires, "
        "vm_name, (SELECT expires FROM sessions WHERE id = session_id) AS expires",
        (ticket,)).fetchone()
    if row is None or row["vm_name"] != vm_name or row["expires"] is None:
        return None
    now = datetime.now(UTC)
    if db.parse_time(row["ticket_expires"]) <= now:
        return None
    return row["id"], int((db.parse_time(row["expires"]) - now).total_seconds())


GRANT = """
SELECT p.vm_name, s.expires, s.member, s.member_until, u.github_id, u.registered, v.name,
       v.state, v.address, v.token
FROM vm_passes p JOIN sessions s ON s.id = p.session_id
JOIN users u ON u.github_id = s.github_id JOIN vms v ON v.github_id = s.github_id
WHERE p.id = ? AND p.ticket IS NULL
"""


def grant(conn: sqlite3.Connection, config: Config, pass_id: str,
          vm_name: str) -> tuple[str, str] | None:
    """``(address, token)`` of `vm_name` if the pass `pass_id` is its owner's: the pass is for
    that VM, its app session is live, the user still allowed, and the VM ready; else None."""
    row = conn.execute(GRANT, (pass_id,)).fetchone()
    if (row is None or row["vm_name"] != vm_name or row["name"] != vm_name
            or row["state"] != "ready" or not row["address"] or not row["token"]
            or db.parse_time(row["expires"]) <= datetime.now(UTC)):
        return None
    member = bool(row["member"]) and (row["member_until"] or "") > db.now()
    if not users.access(conn, config, row["github_id"], bool(row["registered"]),
                        member).allowed:
        return None
    return row["address"], row["token"]


class AuthCache:
    """Granted answers by (pass id, VM name), each kept ``seconds`` (thread-safe)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.answers: dict[tuple[str, str], tuple[float, tuple[str, str]]] = {}
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[str, str] | None:
        found = self.answers.get(key)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, key: tuple[str, str], answer: tuple[str, str]) -> None:
        if self.seconds <= 0:
            return
        with self.lock:
            if len(self.answers) > 10000:
                now = time.monotonic()
                self.answers = {k: v for k, v in self.answers.items() if v[0] >= now}
            self.answers[key] = (time.monotonic() + self.seconds, answer)


# --- routes --------------------------------------------------------------------------------


def enter(name: str, conn: sqlite3.Connection, visitor: Visitor, config: Config,
          github: auth.GitHubSignIn):
    """``GET /vm/<name>``: the owner's way to the VM's host name (see the module's doc)."""
    from web.app import allowed_only, signed_in_page  # the app's page helpers

    if not config.vms_domain:
        abort(404, "This site does not serve VMs through its proxy.")
    signed_in_page(conn, visitor, config, github)
    allowed_only(visitor, config)
    vm = db.vm_of(conn, visitor.github_id)
    if vm is None or vm["name"] != name or not jupyter_link(config, vm):
        abort(404, "There is no such VM among yours, or it is not ready.")
    path = opened_path(request.query.get("path") or "/")
    ticket = issue_ticket(conn, visitor.session.id, name)
    then = f"&next={quote(path, safe='')}" if path != "/" else ""
    redirect(f"{config.vm_url(name).rstrip('/')}{PASS_PATH}?ticket={ticket}{then}", 303)


def take_pass(conn: sqlite3.Connection, config: Config):
    """``GET /proxy/pass?ticket=`` on the VM's host: the pass cookie, then its Jupyter."""
    name = vm_name_of_host(config, request.get_header("Host"))
    if not name:
        abort(404, "Not found.")
    taken = take_ticket(conn, request.query.get("ticket") or "", name)
    if taken is None:
        abort(403, f"This link was used already or is too old. Open your VM again from "
                   f"{config.base_url}/.")
    pass_id, seconds = taken
    response.set_cookie(pass_cookie(config), pass_id, path="/", httponly=True,
                        samesite="Lax", secure=config.secure_cookies, max_age=seconds)
    redirect(config.vm_url(name).rstrip("/") + opened_path(request.query.get("next") or "/"),
             303)


def opened_path(path: str) -> str:
    """`path` (``/lab/tree/x.ipynb``: where a Binder link opens Jupyter, web/binderspec.py) if
    it is a plain path of the VM's host; 400 otherwise."""
    from web.binderspec import BinderSpecError, check_path

    try:
        return check_path(path)
    except BinderSpecError as error:
        abort(400, str(error))


def authorize(connect, config: Config, auth_cache: AuthCache) -> str:
    """``GET /proxy/auth``: nginx's subrequest for each request to a VM's host name. An empty
    body; the answer is the status and, for 200, the two headers."""
    name = vm_name_of_host(config, request.get_header("Host"))
    origin = request.get_header("Origin")
    pass_id = request.get_cookie(pass_cookie(config))
    if not name or not pass_id:
        response.status = 401
        return ""
    if origin is not None and origin.lower() != config.vm_url(name).rstrip("/"):
        response.status = 403  # another site's page (or another VM's) asking
        return ""
    key = (pass_id, name)
    answer = auth_cache.get(key)
    if answer is None:
        answer = grant(connect(), config, pass_id, name)
        if answer is None:
            response.status = 401
            return ""
        auth_cache.put(key, answer)
    response.set_header(UPSTREAM_HEADER, answer[0])
    response.set_header(TOKEN_HEADER, answer[1])
    return ""
