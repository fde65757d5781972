"""The job page's live build log: /jobs/<id>/events (web/eventstream.py) as BinderHub's event
stream, for the job's owner only, ending with the job, bounded in time and in number; the
page with its log (kept for failed jobs) and its script, with the refresh as the fallback."""

import json
import threading

import pytest

from tests.web.conftest import SAMPLE
from web import buildlog, db, eventstream
from web.buildlog import Line


def events(text: str) -> list[dict]:
    """The data of each event of a stream's text (comments and retry skipped), with its id."""
    found = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines()
                      if ": " in line and not line.startswith(":"))
        if "data" in fields:
            found.append(json.loads(fields["data"]) | {"id": fields.get("id")})
    return found


@pytest.fixture
def job(alice, site) -> str:
    alice.post("/VM_start", {"giturl": SAMPLE, "csrf": alice.csrf()})
    [row] = site.jobs()
    return row["id"]


def write_log(site, job_id: str, *lines: Line) -> None:
    with site.conn() as conn:
        buildlog.append(conn, job_id, lines)


def test_a_finished_jobs_stream_gives_its_log_and_its_end(alice, site, job):
    write_log(site, job, Line(1, "fetching", "Fetching"),
              Line(2, "building", "Step 1/2 : RUN false"))
    site.sql("UPDATE jobs SET state = 'failed', phase = 'failed', message = 'The build failed.' "
             "WHERE id = ?", job)
    answer = alice.get(f"/jobs/{job}/events")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    assert answer.headers["X-Accel-Buffering"] == "no"
    assert answer.text.startswith("retry: ")
    assert events(answer.text) == [
        {"phase": "fetching", "message": "Fetching\n", "job_phase": "failed", "id": "1"},
        {"phase": "building", "message": "Step 1/2 : RUN false\n", "job_phase": "failed",
         "id": "2"},
        {"phase": "failed", "message": "The build failed.\n", "job_phase": "failed",
         "state": "failed", "id": None}]
    # from where the browser was: Last-Event-ID on a reconnection, ?after= at first
    again = alice.get(f"/jobs/{job}/events", headers={"Last-Event-ID": "1"})
    assert [event["id"] for event in events(again.text)] == ["2", None]
    after = alice.get(f"/jobs/{job}/events?after=2")
    assert [event["phase"] for event in events(after.text)] == ["failed"]


def test_only_the_owner_reads_the_stream(bob, site, job):
    assert bob.get(f"/jobs/{job}/events").status_code == 404
    assert site.browser().get(f"/jobs/{job}/events").status_code == 404


def test_lines_arrive_as_they_are_written_and_the_stream_ends_with_the_job(alice, site, job):
    site.sql("UPDATE jobs SET state = 'running', phase = 'booting' WHERE id = ?", job)
    answer = alice.http.get(f"{site.url}/jobs/{job}/events", stream=True, timeout=30)
    received = []
    done = threading.Event()

    def read():
        for chunk in answer.iter_lines(decode_unicode=True):
            if chunk.startswith("data: "):
                received.append(json.loads(chunk[6:]))
        done.set()

    threading.Thread(target=read, daemon=True).start()
    wait_for(lambda: received, "the first event")
    assert received[0] == {"phase": "waiting", "message": "Your VM is booting...\n",
                           "job_phase": "booting"}
    site.sql("UPDATE jobs SET phase = 'building' WHERE id = ?", job)
    write_log(site, job, Line(3, "building", "Step 1/9 : FROM buildpack-deps:jammy"))
    wait_for(lambda: len(received) >= 3, "the line")
    assert {"phase": "building", "message": "Step 1/9 : FROM buildpack-deps:jammy\n",
            "job_phase": "building"} in received
    assert not done.is_set()
    site.sql("UPDATE jobs SET state = 'succeeded', phase = 'ready', message = 'ssc-r2d-alice "
             "is ready.' WHERE id = ?", job)
    assert done.wait(10), "the stream did not end with the job"
    assert received[-1] == {"phase": "ready", "message": "ssc-r2d-alice is ready.\n",
                            "job_phase": "ready", "state": "succeeded"}


def wait_for(condition, what: str, seconds: float = 10) -> None:
    finished = threading.Event()
    for _ in range(int(seconds * 20)):
        if condition():
            return
        finished.wait(0.05)
    raise AssertionError(f"no {what} within {seconds} s")


def test_a_stream_is_bounded_in_time_and_beats(site, job):
    """The generator itself, with a clock that the test moves on: heartbeats every
    HEARTBEAT_SECONDS, the end after STREAM_SECONDS, and its slot given back."""
    site.sql("UPDATE jobs SET state = 'running', phase = 'building' WHERE id = ?", job)
    now = [0.0]
    slots = eventstream.Slots(1)
    with site.conn() as conn:
        chunks = list(eventstream.stream(
            conn, job, None, slots, clock=lambda: now[0],
            sleep=lambda seconds: now.__setitem__(0, now[0] + seconds)))
    assert chunks[0] == f"retry: {eventstream.RETRY_MS}\n\n"
    heartbeats = chunks.count(": heartbeat\n\n")
    expected = eventstream.STREAM_SECONDS / eventstream.HEARTBEAT_SECONDS
    assert expected - 1 <= heartbeats <= expected
    assert slots.take(), "the slot was not given back"


def test_when_every_slot_is_taken_a_stream_says_what_there_is_and_ends(site, job):
    site.sql("UPDATE jobs SET state = 'running', phase = 'fetching' WHERE id = ?", job)
    write_log(site, job, Line(1, "fetching", "Fetching"))
    slots = eventstream.Slots(1)
    assert slots.take()
    with site.conn() as conn:
        text = "".join(eventstream.stream(conn, job, None, slots, sleep=pytest.fail))
    assert text.startswith(f"retry: {eventstream.BUSY_RETRY_MS}\n\n")
    assert [event["message"] for event in events(text)] == [
        "Fetching\n", "Fetching the repository...\n"]


def test_the_page_shows_the_log_live_and_keeps_it_for_a_failed_job(alice, site, job):
    site.sql("UPDATE jobs SET state = 'running', phase = 'building' WHERE id = ?", job)
    write_log(site, job, Line(1, "building", "Step 1/2 : RUN <b>false</b>"))
    page = alice.get(f"/jobs/{job}").text
    assert f'data-events="/jobs/{job}/events?after=1"' in page
    assert "Step 1/2 : RUN &lt;b&gt;false&lt;/b&gt;" in page
    assert '<script src="/static/joblog.js" defer></script>' in page
    # without JavaScript the page refreshes itself; with it, the script follows the stream
    assert '<noscript><meta http-equiv="refresh" content="3"></noscript>' in page
    script = alice.get("/static/joblog.js")
    assert script.status_code == 200
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert "new EventSource(" in script.text
    csp = script.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp

    site.sql("UPDATE jobs SET state = 'failed', phase = 'failed', message = 'The build failed.' "
             "WHERE id = ?", job)
    page = alice.get(f"/jobs/{job}").text
    assert "Step 1/2 : RUN &lt;b&gt;false&lt;/b&gt;" in page and "The build failed." in page
    assert "data-events" not in page and "joblog.js" not in page and "refresh" not in page
    assert alice.get(f"/jobs/{job}.json").json()["log"] == [
        {"seq": 1, "phase": "building", "text": "Step 1/2 : RUN <b>false</b>"}]


def test_the_job_log_goes_with_the_job(site, job):
    write_log(site, job, Line(1, "building", "x"))
    site.sql("DELETE FROM jobs WHERE id = ?", job)
    with site.conn() as conn:
        assert buildlog.lines_after(conn, job) == []
        assert db.job(conn, job) is None
