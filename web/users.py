"""Users are GitHub accounts, known by their account id (``users.github_id``): the id never
changes, while GitHub frees a login when its owner renames the account and anyone may take it.

Access rules by id:

- ``[access] allowed_logins`` and ``blocked_logins`` hold logins (strings) and account ids
  (integers). A login is bound to the account that holds it when the site first sees it (the
  account signs in, or the worker's upkeep or ``ssc-web users`` looks it up on GitHub) and
  the binding is kept (the ``logins`` table): after a rename the rule still names that
  account, and whoever takes the freed login gets nothing of it.
- ``ssc-web users block`` blocks an account (the ``blocks`` table) and ``unblock`` lifts that;
  a blocked user's sessions end and their VM is deleted (a delete job, as the app's own
  delete). ``revoke`` withdraws a registration and ends the user's sessions.
- An organization or team membership (``allowed_orgs``) is read from GitHub at sign-in and
  counts for ``membership_minutes``; then the app sends the browser through GitHub again
  (GitHub answers an app the user authorized already without asking anything), so that
  leaving the organization ends access within that time. No access token is kept for it.

:func:`upkeep` is what the job runner does every minute: prune expired sessions and finished
jobs older than ``job_retention_days``, and enforce blocks.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests
from ansible_collections.ssc.repo2docker.plugins.module_utils import launch_request

from web import auth, db, sessions
from web.config import Config

log = logging.getLogger(__name__)

BLOCKED_JOB = "Cancelled: the account is blocked on this site."


# --- access rules ----------------------------------------------------------------------------


def _logins(entries: tuple[str | int, ...]) -> set[str]:
    return {entry.lower() for entry in entries if isinstance(entry, str)}


def _ids(entries: tuple[str | int, ...]) -> set[int]:
    return {entry for entry in entries if isinstance(entry, int)}


def bind_logins(conn: sqlite3.Connection, config: Config, github_id: int, login: str) -> None:
    """At sign-in (GitHub just said that account `github_id` holds `login`): bind `login` to
    the account if an access rule names it and no account was bound to it before."""
    if login.lower() in _logins(config.allowed_logins) | _logins(config.blocked_logins):
        bind(conn, login, github_id)


def bind(conn: sqlite3.Connection, login: str, github_id: int) -> int:
    """Bind `login` to `github_id` unless it is bound already; the account bound."""
    conn.execute("INSERT INTO logins (login, github_id, resolved) VALUES (?, ?, ?) "
                 "ON CONFLICT (login) DO NOTHING", (login.lower(), github_id, db.now()))
    return conn.execute("SELECT github_id FROM logins WHERE login = ?",
                        (login.lower(),)).fetchone()[0]


def rule_ids(conn: sqlite3.Connection, entries: tuple[str | int, ...]) -> set[int]:
    """The accounts a list of logins and ids names (logins not bound yet name nobody)."""
    logins = sorted(_logins(entries))
    bound = conn.execute(f"SELECT github_id FROM logins WHERE login IN "  # noqa: S608
                         f"({', '.join('?' for _ in logins)})", logins).fetchall() if logins else []
    return _ids(entries) | {row[0] for row in bound}


def is_blocked(conn: sqlite3.Connection, config: Config, github_id: int) -> bool:
    if conn.execute("SELECT 1 FROM blocks WHERE github_id = ?", (github_id,)).fetchone():
        return True
    return github_id in rule_ids(conn, config.blocked_logins)


def access(conn: sqlite3.Connection, config: Config, github_id: int, registered: bool,
           member: bool) -> auth.Access:
    """The rules (:func:`web.auth.decide`) for the account `github_id`, by id."""
    return auth.decide(is_blocked(conn, config, github_id), registered,
                       github_id in rule_ids(conn, config.allowed_logins), member)


# --- what operators do -------------------------------------------------------------------------


class UserError(Exception):
    """An operator's request cannot be done; ``str(error)`` says why."""


@dataclass(frozen=True)
class Account:
    github_id: int
    login: str  # as last seen ("" if never seen)


def parse_account(text: str) -> int | str:
    """``ssc-web users`` ACCOUNT: digits are an account id, anything else a login (``@login``
    for a login of digits only). UserError if it is neither."""
    if text.isdigit() and text.isascii():
        try:
            return int(launch_request.check_user_id(text))
        except launch_request.LaunchRequestError as error:
            raise UserError(str(error)) from None
    login = text.removeprefix("@")
    if not launch_request.is_login(login):
        raise UserError(f"{text!r} is neither a GitHub login nor an account id")
    return login


def lookup_login(config: Config, login: str) -> int | None:
    """The account id GitHub gives for `login` (``GET /users/{login}``, public), or None if
    there is no such user. UserError if GitHub cannot be asked."""
    try:
        answer = requests.get(f"{config.github_api_url}/users/{login}", headers=dict(
            auth.API_HEADERS), timeout=config.github_timeout, allow_redirects=False)
    except requests.RequestException as error:
        raise UserError(f"GitHub could not be asked who {login} is: {type(error).__name__}"
                        ) from None
    if answer.status_code == 404:
        return None
    try:
        found = answer.json().get("id") if answer.status_code == 200 else None
    except (ValueError, AttributeError):
        found = None
    if not isinstance(found, int) or isinstance(found, bool):
        raise UserError(f"GitHub answered {answer.status_code} when asked who {login} is")
    return found


def find(conn: sqlite3.Connection, config: Config, text: str,
         ask_github: bool = True) -> Account:
    """The account ACCOUNT names: an id as given; a login: the user who signed in with it (if
    only one did), else the account a rule bound it to, else as GitHub says now. UserError if
    unknown or ambiguous."""
    wanted = parse_account(text)
    if isinstance(wanted, int):
        row = db.user(conn, wanted)
        return Account(wanted, row["login"] if row else "")
    bound = conn.execute("SELECT github_id FROM logins WHERE login = ?",
                         (wanted.lower(),)).fetchone()
    rows = conn.execute("SELECT github_id, login FROM users WHERE lower(login) = ?",
                        (wanted.lower(),)).fetchall()
    if len(rows) == 1:
        return Account(rows[0]["github_id"], rows[0]["login"])
    if len(rows) > 1:
        raise UserError(f"several accounts signed in as {wanted} (one was renamed): give the "
                        f"account id, one of {', '.join(str(r['github_id']) for r in rows)}")
    if bound:
        row = db.user(conn, bound[0])
        return Account(bound[0], row["login"] if row else wanted)
    found = lookup_login(config, wanted) if ask_github else None
    if found is None:
        raise UserError(f"no user {wanted} has signed in here, and GitHub knows no such user")
    return Account(found, wanted)


def revoke(conn: sqlite3.Connection, account: Account) -> int:
    """Withdraw the account's registration and end its sessions at once; the sessions
    ended."""
    with db.transaction(conn):
        conn.execute("UPDATE users SET registered = 0 WHERE github_id = ?", (account.github_id,))
        return sessions.end_all(conn, account.github_id)


def block(conn: sqlite3.Connection, account: Account) -> list[str]:
    """Block the account: record it, end its sessions, cancel its queued jobs and delete its
    VM (a delete job). What was done, in words."""
    with db.transaction(conn):
        conn.execute("INSERT INTO blocks (github_id, login, created) VALUES (?, ?, ?) "
                     "ON CONFLICT (github_id) DO NOTHING",
                     (account.github_id, account.login, db.now()))
    return enforce(conn, account.github_id)


def unblock(conn: sqlite3.Connection, config: Config, account: Account) -> bool:
    """Lift an operator's block; False if there was none. UserError if the configuration
    blocks the account (only the file can lift that)."""
    done = conn.execute("DELETE FROM blocks WHERE github_id = ?",
                        (account.github_id,)).rowcount > 0
    if is_blocked(conn, config, account.github_id):
        raise UserError(f"{account.login or account.github_id} is blocked by [access] "
                        "blocked_logins in the configuration file: remove it there")
    return done


def enforce(conn: sqlite3.Connection, github_id: int) -> list[str]:
    """What a block does to the account `github_id`: end its sessions, cancel its queued
    jobs, queue a delete of its VM (unless a job of its runs: the next upkeep does it then).
    What was done, in words."""
    done = []
    with db.transaction(conn):
        ended = sessions.end_all(conn, github_id)
        cancelled = conn.execute(
            "UPDATE jobs SET state = 'failed', phase = 'failed', message = ?, finished = ? "
            "WHERE github_id = ? AND state = 'queued'", (BLOCKED_JOB, db.now(), github_id)
        ).rowcount
    if ended:
        done.append(f"{ended} session(s) ended")
    if cancelled:
        done.append(f"{cancelled} queued job(s) cancelled")
    vm = db.vm_of(conn, github_id)
    if vm is not None and vm["state"] not in ("", "deleted"):
        row = db.user(conn, github_id)
        try:
            job_id = db.enqueue_job(conn, github_id, row["login"] if row else vm["login"],
                                    "delete", vm["repo"] or "", vm["ref"] or "")
            done.append(f"delete job {job_id} queued for {vm['name'] or 'the VM'}")
        except db.JobConflict as running:
            done.append(f"the VM is deleted once job {running.job_id} ends")
    return done


# --- upkeep ------------------------------------------------------------------------------------


ASK_AGAIN = 3600.0  # seconds before GitHub is asked again about a login it did not know
ASK_AT_MOST = 10  # logins asked about per upkeep (github.com allows 60 anonymous calls an hour)
_asked: dict[tuple[str, str], float] = {}  # (API, login) -> when last asked (this process)


def resolve_rule_logins(conn: sqlite3.Connection, config: Config) -> list[str]:
    """Bind the logins the rules name that no account has signed in with yet, as GitHub
    says now (``GET /users/{login}``), so that renaming the account before its first sign-in
    does not escape a block. A login GitHub does not know is asked about again after
    :data:`ASK_AGAIN`. Returns the logins bound."""
    wanted = sorted(_logins(config.allowed_logins) | _logins(config.blocked_logins))
    known = {row[0] for row in conn.execute("SELECT login FROM logins")}
    now, bound = time.monotonic(), []
    api = config.github_api_url
    for login in [name for name in wanted if name not in known
                  and now - _asked.get((api, name), -ASK_AGAIN) >= ASK_AGAIN][:ASK_AT_MOST]:
        _asked[api, login] = now
        try:
            found = lookup_login(config, login)
        except UserError as error:
            log.warning("%s", error)
            break
        if found is not None:
            bind(conn, login, found)
            bound.append(login)
            log.info("the access rules' login %s is the account %s", login, found)
    return bound


def blocked_ids(conn: sqlite3.Connection, config: Config) -> set[int]:
    listed = {row[0] for row in conn.execute("SELECT github_id FROM blocks")}
    return listed | rule_ids(conn, config.blocked_logins)


def upkeep(conn: sqlite3.Connection, config: Config,
           now: datetime | None = None) -> dict[str, int]:
    """Bind the rules' logins not seen yet (:func:`resolve_rule_logins`); prune expired
    sessions and the finished jobs older than ``job_retention_days``; delete the VMs of
    blocked users (blocked in the file, or whose VM a running job held
    back at the block). Counts of what was done."""
    now = now or datetime.now(UTC)
    resolve_rule_logins(conn, config)
    before = db.format_time(now - timedelta(days=config.job_retention_days))
    with db.transaction(conn):
        expired = sessions.purge_expired(conn)
        pruned = conn.execute(
            "DELETE FROM jobs WHERE finished IS NOT NULL AND finished < ? AND state NOT IN "
            "('queued', 'running')", (before,)).rowcount
    blocked = 0
    for github_id in sorted(blocked_ids(conn, config)):
        vm = db.vm_of(conn, github_id)
        if (vm is not None and vm["state"] not in ("", "deleted")
                and db.current_job(conn, github_id) is None):
            done = enforce(conn, github_id)
            blocked += 1
            log.info("blocked account %s: %s", github_id, "; ".join(done) or "nothing to do")
    return {"sessions": expired, "jobs": pruned, "blocked": blocked}


def listing(conn: sqlite3.Connection, config: Config) -> list[dict]:
    """Every known account (signed in, bound by a rule or blocked) and what applies to it,
    for ``ssc-web users list``."""
    ids = {row[0] for row in conn.execute(
        "SELECT github_id FROM users UNION SELECT github_id FROM logins "
        "UNION SELECT github_id FROM blocks")}
    now = db.now()
    rows = []
    for github_id in sorted(ids):
        user = db.user(conn, github_id)
        bound = [row[0] for row in conn.execute(
            "SELECT login FROM logins WHERE github_id = ? ORDER BY login", (github_id,))]
        vm = db.vm_of(conn, github_id)
        live = conn.execute("SELECT count(*) FROM sessions WHERE github_id = ? AND expires > ?",
                            (github_id, now)).fetchone()[0]
        member = conn.execute("SELECT count(*) FROM sessions WHERE github_id = ? AND member = 1 "
                              "AND member_until > ?", (github_id, now)).fetchone()[0]
        why = access(conn, config, github_id, bool(user and user["registered"]),
                     bool(member)).why
        if why == "blocked":
            by_operator = conn.execute("SELECT 1 FROM blocks WHERE github_id = ?",
                                       (github_id,)).fetchone()
            why = "blocked (ssc-web users)" if by_operator else "blocked (file)"
        rows.append({
            "github_id": github_id, "login": user["login"] if user else "",
            "rule_logins": bound, "registered": bool(user and user["registered"]),
            "access": why,
            "sessions": live, "vm": f"{vm['name']} ({vm['state']})" if vm else "",
        })
    return rows
