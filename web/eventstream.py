"""A job's progress as Server-Sent Events (``GET /jobs/<id>/events``), shaped as BinderHub's
build API sends them, so the job page (web/static/joblog.js) and Binder-style clients read
the build log as it grows::

    data: {"phase": "building", "message": "Step 3/9 : RUN pip install ...\\n"}

Phases as BinderHub's: ``waiting`` (queued, creating and booting the VM), ``fetching``,
``building``, ``launching`` (starting Jupyter), then ``ready`` or ``failed``, the last
event (its message the job's). A log line's event has the ``id`` of its seq, so that a
browser that reconnects (``Last-Event-ID``) gets only the lines it has not had; ``?after=``
does the same for the page's first connection. ``job_phase`` is the job's own phase.

A stream holds one of the server's threads: it ends when the job ends, after
:data:`STREAM_SECONDS` (the browser reconnects, ``retry``), and at most
:class:`Slots` streams run at once (one more gets what there is now, then ends). A comment
line every :data:`HEARTBEAT_SECONDS` keeps proxies from closing it, and tells the server
when the browser has gone.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator

from web import buildlog, db

# The job's phase -> BinderHub's (binderhub/builder.py and binderhub/static/js: waiting,
# fetching, building, built, launching, ready, failed).
BINDER_PHASE = {"queued": "waiting", "creating": "waiting", "booting": "waiting",
                "fetching": "fetching", "building": "building", "starting": "launching",
                "ready": "ready", "deleting": "waiting", "extending": "waiting",
                "culling": "waiting", "failed": "failed"}
# A log line's phase (the launcher's) -> BinderHub's: never ready nor failed, which end the
# stream for its clients (the job's end says those).
LINE_PHASE = {"fetching": "fetching", "building": "building", "starting": "launching",
              "ready": "launching"}
SAYS = {"queued": "Waiting for the job runner...", "creating": "Creating your VM...",
        "booting": "Your VM is booting...", "fetching": "Fetching the repository...",
        "building": "Building the repository's environment (repo2docker)...",
        "starting": "Starting Jupyter...", "deleting": "Deleting your VM...",
        "extending": "Keeping your VM longer..."}
STREAM_SECONDS = 120.0  # the longest a stream lasts; the browser then connects again
HEARTBEAT_SECONDS = 15.0  # BinderHub sends its keepalive every 25 s
POLL_SECONDS = 1.0  # how often the database is read (the job runner writes about as often)
RETRY_MS = 2000  # when a browser connects again after a stream ended
BUSY_RETRY_MS = 10000  # ... after a stream that found every slot taken


class Slots:
    """At most `limit` streams at once in this process (a semaphore; with 0, every stream
    only says what there is and ends)."""

    def __init__(self, limit: int):
        self.limit = max(0, limit)
        self._free = threading.BoundedSemaphore(self.limit)

    def take(self) -> bool:
        return self._free.acquire(blocking=False)

    def give_back(self) -> None:
        self._free.release()


def event(data: dict, event_id: int | None = None) -> str:
    """One event of the stream: ``id`` (if given) and ``data``, JSON on one line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


def binder_phase(job: sqlite3.Row) -> str:
    """BinderHub's phase for the job row `job`."""
    if job["state"] == "succeeded":
        return "ready"
    if job["state"] in ("failed", "interrupted"):
        return "failed"
    return BINDER_PHASE.get(job["phase"], "waiting")


def last_event_id(header: str | None, query: str | None) -> int | None:
    """The seq the browser had last: ``Last-Event-ID`` (on a reconnection), else
    ``?after=``; None if neither is an integer."""
    for value in (header, query):
        if value and value.strip().lstrip("-").isdigit():
            return int(value.strip())
    return None


def stream(conn: sqlite3.Connection, job_id: str, after: int | None, slots: Slots,
           clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], object] = time.sleep) -> Iterator[str]:
    """The events of `job_id` from the line after seq `after`: see the module's text. Ends
    when the job does, after :data:`STREAM_SECONDS`, or at once (after what there is now)
    when no slot is free."""
    held = slots.take()
    try:
        yield f"retry: {RETRY_MS if held else BUSY_RETRY_MS}\n\n"
        start = beat = clock()
        said = None
        while True:
            job = db.job(conn, job_id)
            if job is None:
                return
            lines = buildlog.lines_after(conn, job_id, after)
            for line in lines:
                yield event({"phase": LINE_PHASE.get(line.phase, "building"),
                             "message": line.text + "\n", "job_phase": job["phase"]}, line.seq)
                after = line.seq
            if job["state"] not in db.ACTIVE_STATES:
                yield event({"phase": binder_phase(job), "message": (job["message"] or "")
                             + "\n", "job_phase": job["phase"], "state": job["state"]})
                return
            if job["phase"] != said:
                said = job["phase"]
                yield event({"phase": binder_phase(job),
                             "message": SAYS.get(said, said) + "\n", "job_phase": said})
            if not held or clock() - start >= STREAM_SECONDS:
                return
            if clock() - beat >= HEARTBEAT_SECONDS:
                beat = clock()
                yield ": heartbeat\n\n"
            sleep(POLL_SECONDS)
    finally:
        if held:
            slots.give_back()
