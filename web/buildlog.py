"""A start job's build log: what the VM's launcher says while it fetches the repository,
builds it with repo2docker and starts Jupyter, from ansible-runner's events to the
``job_log`` table (web/db.py) and back to the job page and its event stream.

The playbook follows the launcher with the task ``ssc.repo2docker.launch_progress``; each of
its results (events ``runner_retry`` while it waits, then ``runner_on_ok`` or
``runner_on_failed``) carries every record so far::

    event_data.task_action   "ssc.repo2docker.launch_progress" (as written in the play)
    event_data.res.records   [{"seq": 1, "phase": "fetching", "text": "Cloning ..."}, ...]
    event_data.res.phase     the launcher's phase now

``seq`` orders the records and tells the new ones (:class:`LaunchLog` keeps the highest
seen). Phases: ``fetching``, ``building``, ``starting``, ``ready``, ``failed``.

Bounds: a line keeps :data:`MAX_CHARS` characters, a job :data:`MAX_LINES` lines (the
newest), and a run holds at most :data:`MAX_LINES` lines not yet written.
"""

from __future__ import annotations

import collections
import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from web import db

# The task's action as ansible-runner reports it (task_action: as written in the play;
# resolved_action: the FQCN, ansible-core 2.15 and later).
PROGRESS_ACTIONS = ("ssc.repo2docker.launch_progress", "launch_progress")
RECORD_EVENTS = ("runner_retry", "runner_on_ok", "runner_on_failed")
LAUNCHER_PHASES = ("fetching", "building", "starting", "ready", "failed")
# The launcher's phase -> the job's (web/db.py START_PHASES); the job is "ready" only once
# the playbook has seen Jupyter answer, and "failed" only when the run fails.
JOB_PHASE = {"fetching": "fetching", "building": "building", "starting": "starting",
             "ready": "starting"}
MAX_LINES = 1000  # lines kept per job (the newest) and held by a run between writes
MAX_CHARS = 500  # characters kept of a line
TAIL = 40  # the latest lines a run keeps for the failure's explanation (web/explain.py)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Line:
    """One line of the build log: the launcher's ``seq``, its phase, the text (one line or a
    few, never a secret)."""

    seq: int
    phase: str
    text: str


def is_progress(data: dict) -> bool:
    """Whether the event data `data` is of a ``launch_progress`` task."""
    return (data.get("task_action") in PROGRESS_ACTIONS
            or data.get("resolved_action") == PROGRESS_ACTIONS[0])


def clean(text: str, shown: Callable[[str], bool]) -> str:
    """`text` as the log keeps it: colours and control characters out, what a terminal
    overwrote (``\\r``) dropped, every line that `shown` refuses (a secret) dropped whole,
    at most :data:`MAX_CHARS` characters."""
    lines = []
    for line in ANSI.sub("", text).split("\n"):
        line = CONTROL.sub("", line.rstrip("\r").rsplit("\r", 1)[-1]).rstrip()
        if line and shown(line):
            lines.append(line)
    return "\n".join(lines)[:MAX_CHARS]


class LaunchLog:
    """The build log of one run as its events bring it: :meth:`read` takes the new records
    of an event, :meth:`take` hands over those not yet written, :attr:`tail` the latest,
    :attr:`phase` the launcher's phase now (None before its first record), :attr:`job_phase`
    the furthest job phase its records told (:data:`JOB_PHASE`; None before)."""

    def __init__(self) -> None:
        self.last_seq: int | None = None
        self.phase: str | None = None
        self.job_phase: str | None = None
        self.pending: collections.deque[Line] = collections.deque(maxlen=MAX_LINES)
        self.tail: collections.deque[Line] = collections.deque(maxlen=TAIL)

    def read(self, kind: str | None, data: dict, shown: Callable[[str], bool]) -> bool:
        """Take the new records of the event `kind` with `data` if it is a result of
        ``launch_progress``; `shown(line)` tells a line that may be shown. Returns whether
        anything changed (a record, the phase)."""
        if kind not in RECORD_EVENTS or not is_progress(data):
            return False
        res = data.get("res")
        if not isinstance(res, dict):
            return False
        changed = False
        records = res.get("records")
        for record in records if isinstance(records, list) else ():
            line = self._line(record, shown)
            if line is not None:
                changed = True
                if line.text:
                    self.pending.append(line)
                    self.tail.append(line)
        phase = res.get("phase")
        if phase in LAUNCHER_PHASES and phase != self.phase:
            self.phase, changed = phase, True
            self._reach(phase)
        return changed

    def _reach(self, phase: str) -> None:
        known = list(JOB_PHASE.values())
        wanted = JOB_PHASE.get(phase)
        if wanted and (self.job_phase is None
                       or known.index(wanted) > known.index(self.job_phase)):
            self.job_phase = wanted

    def _line(self, record, shown: Callable[[str], bool]) -> Line | None:
        """The line of `record` if it is new (its text "" when nothing may be shown); None
        for a record seen before or not in the contract's shape."""
        if not isinstance(record, dict):
            return None
        seq, phase, text = record.get("seq"), record.get("phase"), record.get("text")
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(text, str):
            return None
        if self.last_seq is not None and seq <= self.last_seq:
            return None
        self.last_seq = seq
        phase = phase if phase in LAUNCHER_PHASES else ""
        if phase:
            self.phase = phase
            self._reach(phase)
        return Line(seq, phase, clean(text, shown))

    def take(self) -> list[Line]:
        """The lines read since the last call, in order (at most :data:`MAX_LINES`)."""
        lines = list(self.pending)
        self.pending.clear()
        return lines


# --- the job_log table ----------------------------------------------------------------------


def append(conn: sqlite3.Connection, job_id: str, lines: Iterable[Line]) -> None:
    """Add `lines` to the log of `job_id` (a line seen before is kept as it was) and keep
    only its :data:`MAX_LINES` newest. `conn` must not be inside a transaction."""
    rows = [(job_id, line.seq, line.phase, line.text[:MAX_CHARS]) for line in lines]
    if not rows:
        return
    with db.transaction(conn):
        conn.executemany("INSERT OR IGNORE INTO job_log (job_id, seq, phase, text) "
                         "VALUES (?, ?, ?, ?)", rows)
        conn.execute("DELETE FROM job_log WHERE job_id = ? AND seq < (SELECT seq FROM job_log "
                     "WHERE job_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                     (job_id, job_id, MAX_LINES - 1))


def lines_after(conn: sqlite3.Connection, job_id: str, after: int | None = None,
                limit: int = MAX_LINES) -> list[Line]:
    """The lines of `job_id`'s log whose seq is above `after` (all when None), in order, at
    most `limit`."""
    rows = conn.execute(
        "SELECT seq, phase, text FROM job_log WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        (job_id, -(2 ** 63) if after is None else after, limit)).fetchall()
    return [Line(row["seq"], row["phase"], row["text"]) for row in rows]
