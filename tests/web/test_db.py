"""web/db.py: the schema and functions the app and the job runner share."""

import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import pytest

from web import db


@pytest.fixture
def conn(tmp_path):
    with closing(db.connect(tmp_path / "deep" / "ssc-web.sqlite3")) as conn:
        db.init(conn)
        yield conn


def test_connection_settings(conn, tmp_path):
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10000
    assert conn.row_factory is sqlite3.Row
    assert (tmp_path / "deep").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "deep" / "ssc-web.sqlite3").stat().st_mode & 0o777 == 0o600


def test_init_is_idempotent(conn):
    db.save_user(conn, 1, "alice")
    db.init(conn)
    db.init(conn)
    assert db.user(conn, 1)["login"] == "alice"
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master "
                                             "WHERE type = 'table'")}
    assert {"users", "sessions", "jobs", "vms", "heartbeat"} <= tables


def test_users(conn):
    db.save_user(conn, 7, "alice")
    assert tuple(db.user(conn, 7))[:3] == (7, "alice", 0)
    db.save_user(conn, 7, "alice-renamed")  # logins change; the id stays
    db.register_user(conn, 7)
    assert tuple(db.user(conn, 7))[:3] == (7, "alice-renamed", 1)
    assert db.user(conn, 8) is None


def test_jobs(conn):
    first = db.enqueue_job(conn, 1, "alice", "start", "https://github.com/a/b", "main")
    assert len(first) == 32
    row = db.job(conn, first)
    assert (row["state"], row["phase"], row["repo"], row["ref"], row["message"],
            row["output"], row["started"], row["finished"]) == (
        "queued", "queued", "https://github.com/a/b", "main", "", "", None, None)
    assert db.current_job(conn, 1)["id"] == first
    with pytest.raises(db.JobConflict) as conflict:
        db.enqueue_job(conn, 1, "alice", "delete")
    assert conflict.value.job_id == first
    other = db.enqueue_job(conn, 2, "bob", "start", "https://github.com/c/d")
    conn.execute("UPDATE jobs SET state = 'running' WHERE id = ?", (first,))
    with pytest.raises(db.JobConflict):
        db.enqueue_job(conn, 1, "alice", "delete")
    conn.execute("UPDATE jobs SET state = 'succeeded', phase = 'ready' WHERE id = ?", (first,))
    assert db.current_job(conn, 1) is None
    second = db.enqueue_job(conn, 1, "alice", "delete")
    assert db.job(conn, second)["repo"] == "" and db.job(conn, second)["ref"] == ""
    assert [job["id"] for job in db.jobs_of(conn, 1, 10)] == [second, first]
    assert [job["id"] for job in db.jobs_of(conn, 1, 1)] == [second]
    assert [job["id"] for job in db.jobs_of(conn, 2, 10)] == [other]
    assert db.job(conn, "nothing") is None


def test_the_schema_refuses_what_is_not_a_job(conn):
    with pytest.raises(ValueError):
        db.enqueue_job(conn, 1, "alice", "reboot")
    job_id = db.enqueue_job(conn, 1, "alice", "start", "https://github.com/a/b")
    for column, value in (("state", "done"), ("phase", "compiling")):
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(f"UPDATE jobs SET {column} = ? WHERE id = ?",  # noqa: S608
                         (value, job_id))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO jobs (id, github_id, login, action, created) "
                     "VALUES ('x', 1, 'alice', 'reboot', '')")


def test_the_schema_takes_the_phases_from_their_one_list(conn):
    """db.PHASES (the CHECK's) is every phase of every action, and "failed"."""
    assert set(db.PHASES) == {*db.START_PHASES, *db.DELETE_PHASES, *db.EXTEND_PHASES,
                              *db.CULL_PHASES, "failed"}
    assert set(db.PHASES_OF) == set(db.ACTIONS)
    for action, phases in db.PHASES_OF.items():
        assert db.phases_of(action) == phases
    job_id = db.enqueue_job(conn, 1, "alice", "start", "https://github.com/a/b")
    for phase in db.PHASES:
        conn.execute("UPDATE jobs SET phase = ? WHERE id = ?", (phase, job_id))


def test_one_active_job_per_user_under_concurrency(tmp_path):
    path = tmp_path / "race.sqlite3"
    with closing(db.connect(path)) as conn:
        db.init(conn)
    made, conflicts = [], []
    barrier = threading.Barrier(8)

    def enqueue():
        with closing(db.connect(path)) as conn:
            barrier.wait()
            try:
                made.append(db.enqueue_job(conn, 1, "alice", "start", "https://github.com/a/b"))
            except db.JobConflict:
                conflicts.append(1)

    threads = [threading.Thread(target=enqueue) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1 and len(conflicts) == 7


def test_vms(conn):
    assert db.vm_of(conn, 1) is None
    db.save_vm(conn, 1, "alice", name="ssc-r2d-alice", repo="https://github.com/a/b",
               url="http://10.0.0.5:8888/?token=t", state="ready")
    vm = db.vm_of(conn, 1)
    assert (vm["name"], vm["state"], vm["url"]) == ("ssc-r2d-alice", "ready",
                                                    "http://10.0.0.5:8888/?token=t")
    db.save_vm(conn, 1, "alice", name="ssc-r2d-alice", state="deleted")
    assert (db.vm_of(conn, 1)["state"], db.vm_of(conn, 1)["url"]) == ("deleted", "")


def test_heartbeat(conn):
    assert db.runner_heartbeat(conn) is None
    db.beat(conn)
    first = db.runner_heartbeat(conn)
    assert first.tzinfo is not None
    db.beat(conn)
    assert db.runner_heartbeat(conn) >= first
    assert conn.execute("SELECT count(*) FROM heartbeat").fetchone()[0] == 1


def test_times_sort_as_text():
    assert db.parse_time(db.now()).tzinfo is not None
    assert db.parse_time("2025-01-02T03:04:05Z").year == 2025
    assert db.parse_time("2025-01-02 03:04:05").tzinfo is not None


def test_transaction_rolls_back(conn):
    with pytest.raises(RuntimeError), db.transaction(conn):
        db.save_user(conn, 1, "alice")
        raise RuntimeError
    assert db.user(conn, 1) is None


def test_the_app_and_the_runner_processes_see_each_others_writes(tmp_path):
    """The app opens a connection per thread while the runner, another process, writes. A
    new connection must not drop the locks of this process's others (closing any descriptor
    of the file does): the runner would take itself for the last one, delete the WAL, and
    the app would go on reading a deleted file, never seeing the runner's heartbeat."""
    path = tmp_path / "ssc-web.sqlite3"
    first = db.connect(path)
    db.init(first)
    second = db.connect(path)  # another serving thread's connection
    runner = ("import sys; from web import db\n"
              "conn = db.connect(sys.argv[1]); conn.close()\n"
              "conn = db.connect(sys.argv[1]); db.beat(conn); conn.close()\n")
    subprocess.run([sys.executable, "-c", runner, str(path)], check=True,
                   cwd=Path(__file__).resolve().parents[2])
    assert db.runner_heartbeat(first) is not None
    assert db.runner_heartbeat(second) is not None
