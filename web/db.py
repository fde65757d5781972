"""The SQLite database the web processes and the job runner share: users, sessions, jobs
(with their build logs), each user's VM as last known, and the runner's heartbeat.

One file in WAL mode, so that any number of web workers read while the runner writes. Every
connection is in autocommit mode (``isolation_level=None``): a single statement is its own
transaction, and :func:`transaction` groups several (``BEGIN IMMEDIATE``).

Timestamps are UTC ISO 8601 text with microseconds (``2025-01-02T03:04:05.678901Z``), so that
they sort as text. Queued jobs run in the order they were enqueued: ``ORDER BY rowid``.

At most one queued or running job per user is a rule of the database itself (a partial unique
index): :func:`enqueue_job` raises :class:`JobConflict` when the user already has one, and no
race between two web workers can break it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

# Columns added since version 1, for databases made before: (table, column, definition).
ADDED_COLUMNS = (("vms", "address", "TEXT DEFAULT ''"), ("vms", "token", "TEXT DEFAULT ''"),
                 *((("vms", column, definition) for column, definition in (
                     ("expires", "TEXT DEFAULT ''"), ("idle_deadline", "TEXT DEFAULT ''"),
                     ("last_activity", "TEXT DEFAULT ''"), ("extensions", "INTEGER DEFAULT 0"),
                     ("extensions_left", "INTEGER DEFAULT NULL")))))
# "extend": keep the VM longer ("keep it"); "cull": a row the job runner records, finished,
# for the owner of a VM the site's cull run deleted (web/lifetime.py), never queued.
ACTIONS = ("start", "delete", "extend", "cull")
JOB_STATES = ("queued", "running", "succeeded", "failed", "interrupted")
ACTIVE_STATES = ("queued", "running")
# A job's phases, in the order a job of each action goes through them: its phase only moves
# forward, and "failed" may end either. The jobs table's CHECK, the job runner's progress
# (web/events.py) and the job page all take them from here.
# "fetching", "building", "starting": as the VM's launcher reports them (web/buildlog.py).
START_PHASES = ("queued", "creating", "booting", "fetching", "building", "starting", "ready")
DELETE_PHASES = ("queued", "deleting", "deleted")
EXTEND_PHASES = ("queued", "extending", "extended")
CULL_PHASES = ("queued", "culling", "culled")
PHASES_OF = {"start": START_PHASES, "delete": DELETE_PHASES, "extend": EXTEND_PHASES,
             "cull": CULL_PHASES}
PHASES = tuple(dict.fromkeys((*START_PHASES, *DELETE_PHASES, *EXTEND_PHASES, *CULL_PHASES,
                              "failed")))
RUNNER = "runner"  # the heartbeat name of the job runner


def phases_of(action: str) -> tuple[str, ...]:
    """The phases a job of `action` (one of :data:`ACTIONS`) goes through, in order."""
    return PHASES_OF.get(action, START_PHASES)


def _sql_list(values: tuple[str, ...]) -> str:
    """`values` as an SQL list of string literals: ``('a', 'b')`` (they hold no quote)."""
    assert not any("'" in value for value in values)
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS users (
    github_id INTEGER PRIMARY KEY,
    login TEXT NOT NULL,
    registered INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    github_id INTEGER NULL REFERENCES users(github_id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    oauth_state TEXT,
    pkce_verifier TEXT,
    next TEXT,
    created TEXT NOT NULL,
    expires TEXT NOT NULL,
    -- allowed through a configured organization or team, as GitHub said at sign-in
    member INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sessions_expires ON sessions(expires);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    github_id INTEGER NOT NULL,
    login TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN {_sql_list(ACTIONS)}),
    repo TEXT DEFAULT '',
    ref TEXT DEFAULT '',
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN {_sql_list(JOB_STATES)}),
    phase TEXT NOT NULL DEFAULT 'queued' CHECK (phase IN {_sql_list(PHASES)}),
    message TEXT DEFAULT '',
    output TEXT DEFAULT '',
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_active_per_user
    ON jobs(github_id) WHERE state IN {_sql_list(ACTIVE_STATES)};
CREATE INDEX IF NOT EXISTS jobs_of_user ON jobs(github_id, created);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state);
CREATE TABLE IF NOT EXISTS vms (
    github_id INTEGER PRIMARY KEY,
    login TEXT NOT NULL,
    name TEXT DEFAULT '',
    repo TEXT DEFAULT '',
    ref TEXT DEFAULT '',
    url TEXT DEFAULT '',
    state TEXT DEFAULT '',
    updated TEXT,
    -- where the site's proxy reaches its Jupyter (the fixed address) and the token it adds
    address TEXT DEFAULT '',
    token TEXT DEFAULT '',
    -- when it goes (web/lifetime.py): its expiry, when it goes if nobody uses it and its last
    -- activity (as its metadata says, times as stored), extensions made and still allowed
    -- (NULL: not known yet)
    expires TEXT DEFAULT '',
    idle_deadline TEXT DEFAULT '',
    last_activity TEXT DEFAULT '',
    extensions INTEGER DEFAULT 0,
    extensions_left INTEGER DEFAULT NULL
);
CREATE INDEX IF NOT EXISTS vms_by_name ON vms(name);
-- A browser's pass to one VM's host name (web/proxy.py): the one-time ticket of the
-- redirect from the app, then the id in that host's cookie. It ends with the app session.
CREATE TABLE IF NOT EXISTS vm_passes (
    id TEXT PRIMARY KEY,
    ticket TEXT UNIQUE,
    ticket_expires TEXT,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    vm_name TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS vm_passes_of_session ON vm_passes(session_id);
CREATE TABLE IF NOT EXISTS heartbeat (
    name TEXT PRIMARY KEY,
    at TEXT NOT NULL
);
"""


class JobConflict(Exception):
    """The user already has a queued or running job: ``job_id`` is that job's id."""

    def __init__(self, job_id: str | None):
        self.job_id = job_id
        super().__init__(f"a job of this user is already queued or running ({job_id})")


def now() -> str:
    """The current UTC time as stored: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """A stored timestamp (any ISO 8601 form; without a zone, UTC) as an aware datetime."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_creating = threading.Lock()


def _create(path: Path) -> None:
    """Create the database file, owner only, if it is missing. Never opens an existing one:
    closing any descriptor of a file drops every POSIX lock this process holds on it, the
    locks by which SQLite's other connections tell each other apart (a connection of
    another process would then think itself the last, and delete the WAL under us)."""
    with _creating:
        if path.exists():
            return
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process made it
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))


def connect(path: str | Path, timeout: float = 10.0) -> sqlite3.Connection:
    """A connection to the database file `path` (created, mode 0600, with its directory,
    0700): rows as :class:`sqlite3.Row`, WAL, foreign keys on, waiting up to `timeout`
    seconds for a lock. Autocommit: use :func:`transaction` to group statements. One
    connection per thread."""
    if str(path) != ":memory:":
        _create(Path(path))
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on an exception)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _jobs_vocabulary_outdated(conn: sqlite3.Connection) -> bool:
    """Whether the jobs table was made with other actions or phases than :data:`ACTIONS` and
    :data:`PHASES` in its CHECKs (SQLite cannot alter a CHECK)."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"
                       ).fetchone()
    return row is not None and not (f"action IN {_sql_list(ACTIONS)}" in row["sql"]
                                    and f"phase IN {_sql_list(PHASES)}" in row["sql"])


def _rebuild_jobs(conn: sqlite3.Connection) -> None:
    """Make the jobs table again with the current schema, keeping every row and the triggers
    on it (SQLite's own procedure for a schema change ALTER TABLE cannot make; its indexes
    are made after)."""
    create = next(statement for statement in SCHEMA.split(";")
                  if "CREATE TABLE IF NOT EXISTS jobs (" in statement)
    triggers = [row["sql"] for row in conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'jobs'")]
    conn.execute(create.replace("IF NOT EXISTS jobs (", "jobs_rebuilt ("))
    old = [row["name"] for row in conn.execute("PRAGMA table_info(jobs)")]
    new = {row["name"] for row in conn.execute("PRAGMA table_info(jobs_rebuilt)")}
    columns = ", ".join(name for name in old if name in new)
    conn.execute(f"INSERT INTO jobs_rebuilt ({columns}) SELECT {columns} FROM jobs")  # noqa: S608
    conn.execute("DROP TABLE jobs")
    conn.execute("ALTER TABLE jobs_rebuilt RENAME TO jobs")
    for trigger in triggers:
        conn.execute(trigger)


# --- migrations: each step brings the schema to its version, once (PRAGMA user_version) ---


# --- migration 4: users by their GitHub account id (web/users.py) ---------------------------
# ``logins``: a login an access rule names (``[access]`` lists, in lower case), bound to the
# account that held it when the site first saw it, and kept: a rename or a freed login
# cannot take over or escape the rule. ``blocks``: accounts blocked by the operator
# (``ssc-web users block``). ``sessions.member_until``: until when the organization or team
# membership read at sign-in counts (web/users.py). Pending sign-ins live in signed cookies
# now (web/pending.py): the sessions rows without a user go.
MIGRATION_4 = """
CREATE TABLE IF NOT EXISTS logins (
    login TEXT PRIMARY KEY,
    github_id INTEGER NOT NULL,
    resolved TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blocks (
    github_id INTEGER PRIMARY KEY,
    login TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_of_user ON sessions(github_id);
CREATE INDEX IF NOT EXISTS jobs_by_finished ON jobs(finished);
DELETE FROM sessions WHERE github_id IS NULL;
"""


def _migrate_4(conn: sqlite3.Connection) -> None:
    known = {row["name"] for row in conn.execute("PRAGMA table_info(sessions)")}
    if "member_until" not in known:
        conn.execute("ALTER TABLE sessions ADD COLUMN member_until TEXT DEFAULT ''")
    for statement in MIGRATION_4.split(";"):
        if statement.strip():
            conn.execute(statement)


def _add_job_log(conn: sqlite3.Connection) -> None:
    """Version 5: ``job_log``, a start job's build log as the VM's launcher reported it
    (web/buildlog.py writes and bounds it): one row per line, ``seq`` the launcher's own
    number. Its rows go with their job (a trigger: a foreign key's cascade would empty it
    whenever :func:`_rebuild_jobs` drops the jobs table)."""
    conn.execute("CREATE TABLE IF NOT EXISTS job_log (job_id TEXT NOT NULL, "
                 "seq INTEGER NOT NULL, phase TEXT NOT NULL DEFAULT '', "
                 "text TEXT NOT NULL DEFAULT '', PRIMARY KEY (job_id, seq)) WITHOUT ROWID")
    conn.execute("CREATE TRIGGER IF NOT EXISTS job_log_goes_with_its_job AFTER DELETE ON jobs "
                 "BEGIN DELETE FROM job_log WHERE job_id = OLD.id; END")


# (version, step), in order. A step runs on a database whose user_version is below its
# version, inside init's transaction; write it so that running it again changes nothing.
MIGRATIONS = ((4, _migrate_4), (5, _add_job_log))
SCHEMA_VERSION = MIGRATIONS[-1][0]


def init(conn: sqlite3.Connection) -> None:
    """Create the tables and indexes that are missing, add the columns and actions added
    since (:data:`ADDED_COLUMNS`, the jobs table's CHECKs), run the :data:`MIGRATIONS` the
    database has not had; safe to call from every process."""
    with transaction(conn):
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        for table, column, definition in ADDED_COLUMNS:
            known = {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}
            if known and column not in known:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        if _jobs_vocabulary_outdated(conn):
            _rebuild_jobs(conn)
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        for number, step in MIGRATIONS:
            if version < number:
                step(conn)
        conn.execute(f"PRAGMA user_version = {max(version, SCHEMA_VERSION)}")


# --- users ---------------------------------------------------------------------------------


def save_user(conn: sqlite3.Connection, github_id: int, login: str) -> sqlite3.Row:
    """Create the user or update their login (logins change; the id does not)."""
    conn.execute(
        "INSERT INTO users (github_id, login, registered, created) VALUES (?, ?, 0, ?) "
        "ON CONFLICT (github_id) DO UPDATE SET login = excluded.login",
        (github_id, login, now()))
    return user(conn, github_id)


def user(conn: sqlite3.Connection, github_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM users WHERE github_id = ?", (github_id,)).fetchone()


def register_user(conn: sqlite3.Connection, github_id: int) -> None:
    """Mark the user as registered (through the registration link)."""
    conn.execute("UPDATE users SET registered = 1 WHERE github_id = ?", (github_id,))


# --- jobs ----------------------------------------------------------------------------------


def enqueue_job(conn: sqlite3.Connection, github_id: int, login: str, action: str,
                repo: str = "", ref: str = "") -> str:
    """Queue a job and return its id (32 hex digits). `repo` and `ref` must already be
    validated ("" for a delete, and ref "" for the repository's default branch). Raises
    :class:`JobConflict` when the user has a queued or running job, ValueError for an
    unknown action (or ``cull``, which is never queued: :func:`add_finished_job`)."""
    if action not in ACTIONS or action == "cull":
        raise ValueError(f"unknown action {action!r}")
    job_id = uuid.uuid4().hex
    try:
        conn.execute(
            "INSERT INTO jobs (id, github_id, login, action, repo, ref, state, phase, message, "
            "output, created) VALUES (?, ?, ?, ?, ?, ?, 'queued', 'queued', '', '', ?)",
            (job_id, github_id, login, action, repo or "", ref or "", now()))
    except sqlite3.IntegrityError as error:
        active = current_job(conn, github_id)
        if active is None:
            raise
        raise JobConflict(active["id"]) from error
    return job_id


def add_finished_job(conn: sqlite3.Connection, github_id: int, login: str, action: str,
                     phase: str, message: str, repo: str = "", ref: str = "") -> str:
    """Record a job that was done outside the queue (the site's cull run deleting the user's
    VM: action ``cull``), as succeeded and finished now; returns its id. ValueError for an
    unknown action or phase."""
    if action not in ACTIONS or phase not in PHASES:
        raise ValueError(f"unknown action {action!r} or phase {phase!r}")
    job_id, moment = uuid.uuid4().hex, now()
    conn.execute(
        "INSERT INTO jobs (id, github_id, login, action, repo, ref, state, phase, message, "
        "output, created, started, finished) "
        "VALUES (?, ?, ?, ?, ?, ?, 'succeeded', ?, ?, '', ?, ?, ?)",
        (job_id, github_id, login, action, repo, ref, phase, message, moment, moment, moment))
    return job_id


def job(conn: sqlite3.Connection, job_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()


def jobs_of(conn: sqlite3.Connection, github_id: int, limit: int = 20) -> list[sqlite3.Row]:
    """The user's jobs, newest first."""
    return conn.execute("SELECT * FROM jobs WHERE github_id = ? ORDER BY rowid DESC LIMIT ?",
                        (github_id, limit)).fetchall()


def current_job(conn: sqlite3.Connection, github_id: int) -> sqlite3.Row | None:
    """The user's queued or running job, or None."""
    return conn.execute(f"SELECT * FROM jobs WHERE github_id = ? "  # noqa: S608
                        f"AND state IN {_sql_list(ACTIVE_STATES)}", (github_id,)).fetchone()


# --- VMs -----------------------------------------------------------------------------------


def vm_of(conn: sqlite3.Connection, github_id: int) -> sqlite3.Row | None:
    """The user's VM as last known (written by the job runner), or None."""
    return conn.execute("SELECT * FROM vms WHERE github_id = ?", (github_id,)).fetchone()


def save_vm(conn: sqlite3.Connection, github_id: int, login: str, *, name: str = "",
            repo: str = "", ref: str = "", url: str = "", state: str = "",
            address: str = "", token: str = "") -> None:
    """Record the user's VM as now known (a whole row: unspecified fields become ""). `url`
    is its Jupyter's own address without the token, `address` its fixed address (where the
    site's proxy reaches it), `token` the token the proxy adds (never shown, never in a URL)."""
    conn.execute(
        "INSERT INTO vms (github_id, login, name, repo, ref, url, state, updated, address, "
        "token) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (github_id) DO UPDATE SET "
        "login = excluded.login, name = excluded.name, repo = excluded.repo, "
        "ref = excluded.ref, url = excluded.url, state = excluded.state, "
        "updated = excluded.updated, address = excluded.address, token = excluded.token",
        (github_id, login, name, repo, ref, url, state, now(), address, token))


SCHEDULE_COLUMNS = ("expires", "idle_deadline", "last_activity", "extensions", "extensions_left")


def save_schedule(conn: sqlite3.Connection, github_id: int, **values: str | int | None) -> None:
    """Change only the given columns of :data:`SCHEDULE_COLUMNS` of the user's VM (when it
    goes: web/lifetime.py). ValueError for another column name."""
    unknown = set(values) - set(SCHEDULE_COLUMNS)
    if unknown:
        raise ValueError(f"not a schedule column: {', '.join(sorted(unknown))}")
    if values:
        assignments = ", ".join(f"{column} = ?" for column in values)
        conn.execute(f"UPDATE vms SET {assignments} WHERE github_id = ?",  # noqa: S608
                     (*values.values(), github_id))


def delete_vm(conn: sqlite3.Connection, github_id: int) -> None:
    """Forget the user's VM (deleted, or gone from the cloud)."""
    conn.execute("DELETE FROM vms WHERE github_id = ?", (github_id,))


def set_vm_state(conn: sqlite3.Connection, github_id: int, state: str) -> None:
    """Change only the state of the user's VM (``unknown`` after an interrupted job, the
    cloud's status in lower case after a reading of the cloud)."""
    conn.execute("UPDATE vms SET state = ?, updated = ? WHERE github_id = ?",
                 (state, now(), github_id))


def vms_left_to_the_cloud(conn: sqlite3.Connection, before: str) -> list[sqlite3.Row]:
    """The VM rows written before `before` (a stored timestamp) whose users have no queued
    or running job: the rows a reading of the cloud may correct (the others are the jobs' to
    write)."""
    return conn.execute(
        "SELECT * FROM vms AS v WHERE updated < ? "  # noqa: S608
        "AND NOT EXISTS (SELECT 1 FROM jobs AS j WHERE j.github_id = v.github_id "
        f"AND j.state IN {_sql_list(ACTIVE_STATES)})", (before,)).fetchall()


# --- heartbeat -----------------------------------------------------------------------------


def beat(conn: sqlite3.Connection, name: str = RUNNER) -> None:
    """Record that the process `name` is alive now."""
    conn.execute("INSERT INTO heartbeat (name, at) VALUES (?, ?) "
                 "ON CONFLICT (name) DO UPDATE SET at = excluded.at", (name, now()))


def runner_heartbeat(conn: sqlite3.Connection, name: str = RUNNER) -> datetime | None:
    """When the job runner last said it was alive, or None if it never did."""
    row = conn.execute("SELECT at FROM heartbeat WHERE name = ?", (name,)).fetchone()
    return parse_time(row["at"]) if row else None
