"""Server-side sessions of signed-in users: the cookie carries only a random id; everything
else is a row of the ``sessions`` table.

A row is written only once GitHub has said who the user is (the callback): a sign-in under way
lives in a signed cookie of the browser's (web/pending.py), so anonymous requests write
nothing. A session lasts ``session_hours`` and has its own CSRF token. Signing in always makes
a new id, except that the same account signing in again (another tab, a membership read again)
keeps its session. Whether an organization or team admitted the user (``member``) counts until
``member_until`` (web/users.py reads it again then).
"""

from __future__ import annotations

import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from web import db

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


def new_id() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Session:
    id: str
    github_id: int | None
    csrf: str
    expires: datetime
    member: bool
    member_until: datetime | None = None

    @property
    def signed_in(self) -> bool:
        return self.github_id is not None

    def member_now(self, now: datetime | None = None) -> bool:
        """Admitted by an organization or team, as read from GitHub recently enough."""
        now = now or datetime.now(UTC)
        return self.member and self.member_until is not None and self.member_until > now

    @property
    def membership_stale(self) -> bool:
        """A membership that admitted the user must be read from GitHub again."""
        return self.member and not self.member_now()

    def csrf_matches(self, presented: str | None) -> bool:
        """Constant-time comparison with the session's CSRF token."""
        return bool(presented) and hmac.compare_digest(
            presented.encode("utf-8", "replace"), self.csrf.encode())


def load(conn: sqlite3.Connection, session_id: str | None) -> Session | None:
    """The live session with this id, or None (unknown, malformed or expired)."""
    if not session_id or not SESSION_ID.fullmatch(session_id):
        return None
    row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
    if row is None or row["github_id"] is None:
        return None
    expires = db.parse_time(row["expires"])
    if expires <= datetime.now(UTC):
        conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        return None
    until = db.parse_time(row["member_until"]) if row["member_until"] else None
    return Session(row["id"], row["github_id"], row["csrf"], expires, bool(row["member"]),
                   until)


def start_signed_in(conn: sqlite3.Connection, github_id: int, member: bool,
                    lifetime: timedelta, member_for: timedelta) -> str:
    """A new signed-in session (a new id, a new CSRF token) lasting `lifetime`, whose
    membership counts for `member_for`; returns its id."""
    session_id = new_id()
    created = datetime.now(UTC)
    conn.execute(
        "INSERT INTO sessions (id, github_id, csrf, created, expires, member, member_until) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (session_id, github_id, secrets.token_urlsafe(32), db.format_time(created),
         db.format_time(created + lifetime), int(member),
         db.format_time(created + member_for) if member else ""))
    return session_id


def renew_membership(conn: sqlite3.Connection, session_id: str, member: bool,
                     member_for: timedelta) -> None:
    """What GitHub says now of the session user's membership, counting for `member_for`."""
    until = db.format_time(datetime.now(UTC) + member_for) if member else ""
    conn.execute("UPDATE sessions SET member = ?, member_until = ? WHERE id = ?",
                 (int(member), until, session_id))


def end(conn: sqlite3.Connection, session_id: str) -> None:
    conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))


def end_all(conn: sqlite3.Connection, github_id: int) -> int:
    """End every session of the user (their VM passes go with them); how many there were."""
    return conn.execute("DELETE FROM sessions WHERE github_id = ?", (github_id,)).rowcount


def purge_expired(conn: sqlite3.Connection) -> int:
    """Delete the expired sessions (and any row of a sign-in of older versions); how many."""
    return conn.execute("DELETE FROM sessions WHERE expires <= ? OR github_id IS NULL",
                        (db.now(),)).rowcount
