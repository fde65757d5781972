"""What every route of the app shares (:class:`SitePlugin`, a Bottle plugin): this thread's
database connection, the visitor (session, user, access), the settings and the GitHub
sign-in, given to a route when it asks for them by parameter name; and, for every request
that may change something, the cross-site and CSRF checks.
"""

from __future__ import annotations

import inspect
import sqlite3
import threading
from dataclasses import dataclass

from bottle import abort, request

from web import auth, db, sessions, users
from web.config import Config
from web.proxy import AuthCache

SAFE_METHODS = ("GET", "HEAD")
CSRF_REFUSED = ("This form could not be accepted: it was sent without this page's security "
                "token, or from another site. Go back, reload the page and try again.")
CROSS_SITE_REFUSED = "Requests from other sites cannot change anything here."
VISITOR = "ssc.visitor"  # where the request's environ keeps the visitor (for error pages)


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
    def membership_stale(self) -> bool:
        """Admitted only by a membership that must be read from GitHub again."""
        return (self.signed_in and self.session.membership_stale
                and self.access is not None and not self.access.allowed)

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""


def session_cookie(config: Config) -> str:
    """The session cookie's name: ``__Host-`` (Secure, this host only) unless the site is
    plain HTTP on this machine."""
    return "__Host-ssc_session" if config.secure_cookies else "ssc_session"


class SitePlugin:
    """Bottle plugin: gives a route, by the names of its parameters, ``conn`` (this thread's
    database connection), ``visitor`` (a :class:`Visitor`), ``config``, ``github`` (the
    :class:`web.auth.GitHubSignIn`), ``connect`` (a function returning ``conn``, for a
    route that handles a failing database itself or reads no visitor) and ``auth_cache``
    (the proxy's :class:`web.proxy.AuthCache`). Refuses every non-GET request that comes
    from another site or lacks the session's CSRF token (form field ``csrf``).

    The visitor is read for every route that asks for ``conn`` or ``visitor`` and for every
    non-GET request; a route asking for neither (``/healthz``) reads nothing."""

    name = "ssc_site"
    api = 2

    def __init__(self, config: Config, conn_factory, github: auth.GitHubSignIn):
        self.config = config
        self.conn_factory = conn_factory
        self.github = github
        self.local = threading.local()
        self.cookie = session_cookie(config)
        self.auth_cache = AuthCache(config.auth_cache_seconds)

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
        access = users.access(conn, self.config, user["github_id"], bool(user["registered"]),
                              session.member_now())
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
        reads_visitor = "conn" in wanted or "visitor" in wanted
        given = {"config": self.config, "github": self.github, "connect": self.connection,
                 "auth_cache": self.auth_cache}
        given = {name: value for name, value in given.items() if name in wanted}

        def wrapper(*args, **kwargs):
            if reads_visitor or request.method not in SAFE_METHODS:
                conn = self.connection()
                visitor = self.visitor(conn)
                request.environ[VISITOR] = visitor
                if request.method not in SAFE_METHODS:
                    self.check_same_site()
                    if visitor.session is None or not visitor.session.csrf_matches(
                            request.forms.get("csrf")):
                        abort(403, CSRF_REFUSED)
                if "conn" in wanted:
                    kwargs["conn"] = conn
                if "visitor" in wanted:
                    kwargs["visitor"] = visitor
            return callback(*args, **given, **kwargs)

        return wrapper
