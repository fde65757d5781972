"""The job runner's side of the ``jobs`` table (web/db.py): claim the next queued job, write
its progress and its end.

The web processes only enqueue jobs (:func:`web.db.enqueue_job`) and read them; the one job
runner claims them in order (``ORDER BY rowid``), at most ``max_concurrent`` at a time and one
at a time per user, and records how each went.
"""

from __future__ import annotations

import dataclasses
import sqlite3

from web import db

JOB_COLUMNS = ("id", "github_id", "login", "action", "repo", "ref", "state", "phase",
               "message", "created", "started", "finished")
_SELECT = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs"  # noqa: S608 (constants only)


@dataclasses.dataclass(frozen=True)
class Job:
    """One row of ``jobs`` (without its output)."""

    id: str
    github_id: int
    login: str
    action: str
    repo: str | None
    ref: str | None
    state: str
    phase: str | None
    message: str | None
    created: str | None
    started: str | None
    finished: str | None

    @classmethod
    def from_row(cls, row) -> Job:
        return cls(*(row[i] for i in range(len(JOB_COLUMNS))))


def first_phase(action: str) -> str:
    """The phase a job of `action` is in once claimed: ``creating`` or ``deleting``."""
    return db.phases_of(action)[1]


def get_job(conn: sqlite3.Connection, job_id: str) -> Job | None:
    row = conn.execute(f"{_SELECT} WHERE id = ?", (job_id,)).fetchone()
    return Job.from_row(row) if row else None


def claim_next(conn: sqlite3.Connection, max_concurrent: int) -> Job | None:
    """Take the oldest queued job whose user has no running job, if fewer than
    `max_concurrent` jobs run; mark it running (``started`` = now, its :func:`first_phase`)
    and return it. One write transaction (``BEGIN IMMEDIATE``), so two claimers never take
    the same job. `conn` must not be inside a transaction."""
    with db.transaction(conn):
        (running,) = conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'running'").fetchone()
        if running >= max_concurrent:
            return None
        # The database allows one queued or running job per user (web/db.py); the runner
        # does not rely on it.
        row = conn.execute(
            f"{_SELECT} AS j WHERE j.state = 'queued' AND NOT EXISTS "  # noqa: S608
            "(SELECT 1 FROM jobs AS r WHERE r.state = 'running' "
            "AND r.github_id = j.github_id) ORDER BY j.rowid LIMIT 1").fetchone()
        if row is None:
            return None
        job = Job.from_row(row)
        started = db.now()
        phase = first_phase(job.action)
        conn.execute("UPDATE jobs SET state = 'running', phase = ?, started = ?, message = '' "
                     "WHERE id = ? AND state = 'queued'", (phase, started, job.id))
    return dataclasses.replace(job, state="running", phase=phase, started=started, message="")


def running_jobs(conn: sqlite3.Connection) -> list[Job]:
    """The jobs marked running, oldest first."""
    rows = conn.execute(f"{_SELECT} WHERE state = 'running' ORDER BY rowid").fetchall()
    return [Job.from_row(row) for row in rows]


def save_progress(conn: sqlite3.Connection, job_id: str, phase: str, output: str) -> None:
    """Write a running job's phase and output so far."""
    conn.execute("UPDATE jobs SET phase = ?, output = ? WHERE id = ? AND state = 'running'",
                 (phase, output, job_id))


def finish(conn: sqlite3.Connection, job_id: str, state: str, phase: str, message: str,
           output: str = "") -> None:
    """Record the end of the job `job_id`: its final state (``succeeded``, ``failed`` or
    ``interrupted``), last phase, message for the user and output (``finished`` = now)."""
    conn.execute("UPDATE jobs SET state = ?, phase = ?, message = ?, output = ?, finished = ? "
                 "WHERE id = ?", (state, phase, message, output, db.now(), job_id))
