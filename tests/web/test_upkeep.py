"""Bounded storage (web/users.py's upkeep, which the job runner runs every minute), and
migration 4 of web/db.py (users by account id)."""

from __future__ import annotations

from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from web import db, sessions, users
from web.config import Config


def test_upkeep_prunes_expired_sessions_and_old_jobs(tmp_path):
    config = replace(Config(), job_retention_days=30)
    with closing(db.connect(tmp_path / "db.sqlite3")) as conn:
        db.init(conn)
        db.save_user(conn, 1, "alice")
        live = sessions.start_signed_in(conn, 1, False, timedelta(hours=1), timedelta(0))
        gone = sessions.start_signed_in(conn, 1, False, timedelta(hours=1), timedelta(0))
        conn.execute("UPDATE sessions SET expires = '2000-01-01T00:00:00.000000Z' "
                     "WHERE id = ?", (gone,))
        old = db.add_finished_job(conn, 1, "alice", "cull", "culled", "expired")
        recent = db.add_finished_job(conn, 1, "alice", "cull", "culled", "expired")
        queued = db.enqueue_job(conn, 1, "alice", "start", "https://github.com/a/b")
        long_ago = db.format_time(datetime.now(UTC) - timedelta(days=31))
        conn.execute("UPDATE jobs SET finished = ?, created = ? WHERE id IN (?, ?)",
                     (long_ago, long_ago, old, queued))
        conn.execute("UPDATE jobs SET finished = NULL WHERE id = ?", (queued,))
        done = users.upkeep(conn, config)
        assert done == {"sessions": 1, "jobs": 1, "blocked": 0}
        assert [row[0] for row in conn.execute("SELECT id FROM sessions")] == [live]
        assert {row[0] for row in conn.execute("SELECT id FROM jobs")} == {recent, queued}


def test_upkeep_deletes_the_vm_of_a_user_blocked_in_the_file(tmp_path):
    config = replace(Config(), blocked_logins=("alice",))
    with closing(db.connect(tmp_path / "db.sqlite3")) as conn:
        db.init(conn)
        db.save_user(conn, 7, "alice")
        users.bind_logins(conn, config, 7, "alice")
        db.save_vm(conn, 7, "alice", name="ssc-r2d-7", state="ready")
        job = db.enqueue_job(conn, 7, "alice", "start", "https://github.com/a/b")
        conn.execute("UPDATE jobs SET state = 'running' WHERE id = ?", (job,))
        assert users.upkeep(conn, config)["blocked"] == 0  # a running job holds it back
        conn.execute("UPDATE jobs SET state = 'succeeded' WHERE id = ?", (job,))
        assert users.upkeep(conn, config)["blocked"] == 1
        assert db.current_job(conn, 7)["action"] == "delete"
        assert users.upkeep(conn, config)["blocked"] == 0  # queued once


def test_a_login_is_bound_once(tmp_path):
    config = replace(Config(), allowed_logins=("old-name", 99))
    with closing(db.connect(tmp_path / "db.sqlite3")) as conn:
        db.init(conn)
        users.bind_logins(conn, config, 1, "Old-Name")
        users.bind_logins(conn, config, 2, "old-name")  # a later holder of the login
        users.bind_logins(conn, config, 3, "someone")  # no rule names it: not bound
        assert users.rule_ids(conn, config.allowed_logins) == {1, 99}
        assert [tuple(row)[:2] for row in conn.execute("SELECT * FROM logins")] == [
            ("old-name", 1)]


def test_migration_4_from_a_version_3_database(tmp_path):
    path = tmp_path / "old.sqlite3"
    with closing(db.connect(path)) as conn:
        db.init(conn)  # then made to look like version 3
        conn.execute("DROP TABLE logins")
        conn.execute("DROP TABLE blocks")
        conn.execute("ALTER TABLE sessions DROP COLUMN member_until")
        conn.execute("PRAGMA user_version = 3")
        db.save_user(conn, 1, "alice")
        conn.execute("INSERT INTO sessions (id, github_id, csrf, created, expires) "
                     "VALUES ('pending', NULL, 'x', '2025-01-01', '2999-01-01'), "
                     "('signed-in', 1, 'y', '2025-01-01', '2999-01-01')")
    with closing(db.connect(path)) as conn:
        db.init(conn)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION == 5
        assert [row[0] for row in conn.execute("SELECT id FROM sessions")] == ["signed-in"]
        assert conn.execute("SELECT member_until FROM sessions").fetchone()[0] == ""
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert {"logins", "blocks", "sessions_of_user"} <= tables
        db.init(conn)  # and again: nothing changes
