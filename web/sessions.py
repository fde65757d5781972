"""Server-side sessions: the cookie carries only a random id; everything else is a row of the
``sessions`` table.

A session is either *pending* (a sign-in under way: the OAuth ``state``, the PKCE verifier and
where to go next, for 10 minutes) or *signed in* (a GitHub id, for ``session_hours``). Each has
its own CSRF token. Signing in never reuses the pending session's id.
"""

from __future__ import annotations

import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from web import db

PENDING_LIFETIME = timedelta(minutes=10)
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


def new_id() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Session:
    id: str
    github_id: int | None
    csrf: str
    oauth_state: str | None
    pkce_verifier: str | None
    next: str | None
    expires: datetime
    member: bool

    @property
    def signed_in(self) -> bool:
        return self.github_id is not None

    def csrf_matches(self, presented: str | None) -> bool:
        """Constant-time comparison with the session's CSRF token."""
        return bool(presented) and hmac.compare_digest(
            presented.encode("utf-8", "replace"), self.csrf.encode())


def load(conn: sqlite3.Connection, session_id: str | None) -> Session | None:
    """The live session with this id, or None (unknown, malformed or expired)."""
    if not session_id or not SESSION_ID.fullmatch(session_id):
        return None
    row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
    if row is None:
        return None
    expires = db.parse_time(row["expires"])
    if expires <= datetime.now(UTC):
        conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        return None
    return Session(row["id"], row["github_id"], row["csrf"], row["oauth_state"],
                   row["pkce_verifier"], row["next"], expires, bool(row["member"]))


def start_pending(conn: sqlite3.Connection, oauth_state: str, pkce_verifier: str,
                  next_path: str) -> str:
    """A new pending session for a sign-in under way; returns its id."""
    return _insert(conn, None, PENDING_LIFETIME, oauth_state=oauth_state,
                   pkce_verifier=pkce_verifier, next=next_path)


def take_pending(conn: sqlite3.Connection, session_id: str | None) -> Session | None:
    """The pending session, removed at once: its state and verifier are used only once."""
    session = load(conn, session_id)
    if session is None or session.signed_in or not session.oauth_state:
        return None  # a signed-in session stays as it is
    conn.execute("DELETE FROM sessions WHERE id = ?", (session.id,))
    return session


def start_signed_in(conn: sqlite3.Connection, github_id: int, member: bool,
                    lifetime: timedelta) -> str:
    """A new signed-in session (a new id, a new CSRF token); returns its id."""
    return _insert(conn, github_id, lifetime, member=int(member))


def end(conn: sqlite3.Connection, session_id: str) -> None:
    conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))


def purge_expired(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM sessions WHERE expires <= ?", (db.now(),))


def _insert(conn: sqlite3.Connection, github_id: int | None, lifetime: timedelta,
            **fields) -> str:
    session_id = new_id()
    created = datetime.now(UTC)
    values = {"id": session_id, "github_id": github_id, "csrf": secrets.token_urlsafe(32),
              "created": db.format_time(created),
              "expires": db.format_time(created + lifetime)} | fields
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    conn.execute(f"INSERT INTO sessions ({columns}) VALUES ({marks})",  # noqa: S608
                 tuple(values.values()))
    return session_id
