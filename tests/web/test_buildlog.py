"""The build log (web/buildlog.py): the launcher's records taken from ansible-runner's events
by the job's callbacks (web/events.py), kept in job_log (web/db.py), bounded, without
secrets, gone with their job; and a real ansible-runner run of a stand-in playbook whose
progress task answers in the contract's shape."""

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from tests.web.test_jobs import PLAYBOOKS, REPO, TOKEN, TOKEN_SECRET, claimed, runner_config
from web import buildlog, db, jobs
from web.buildlog import MAX_CHARS, MAX_LINES, Line
from web.events import JobRun

ACTION = "ssc.repo2docker.launch_progress"


def progress(kind: str, records: list[dict], phase: str | None = None, **data) -> dict:
    """An ansible-runner event of the launch_progress task, as its callback plugin makes it
    (ansible_runner/display_callback: event, event_data with task, task_action, res)."""
    res = {"records": records, "phase": phase or records[-1]["phase"], "changed": False}
    if kind == "runner_retry":
        res |= {"attempts": len(records), "retries": 51}
    if kind == "runner_on_failed":
        res |= {"failed": True, "msg": "the launcher failed"}
    return {"event": kind, "uuid": "0", "counter": 1, "stdout": "", "event_data": {
        "playbook": "user_vm.yml", "play": "Start", "task": "Follow the VM's launcher",
        "task_action": ACTION, "resolved_action": ACTION, "host": "localhost",
        "remote_addr": "localhost", "res": res, **data}}


def record(seq: int, phase: str, text: str) -> dict:
    return {"seq": seq, "phase": phase, "text": text}


SCRIPT = [record(1, "fetching", "Fetching https://github.com/binder-examples/requirements"),
          record(2, "fetching", "HEAD is now at 0123abc"),
          record(3, "building", "Step 1/9 : FROM docker.io/library/buildpack-deps:jammy"),
          record(4, "building", f"Jupyter answers at http://10.0.0.5:8888/?token={TOKEN}"),
          record(5, "building", "\x1b[1mStep 2/9\x1b[0m : RUN pip install -r requirements.txt"),
          record(6, "building", "Collecting numpy  10%\rCollecting numpy 100%"),
          record(7, "starting", "Starting Jupyter"),
          record(8, "ready", "Jupyter answers")]


def test_records_advance_the_phase_once_each_and_never_a_secret():
    run = JobRun("j", "start", secrets=[TOKEN_SECRET])
    run.phase = "creating"
    run.event_handler({"event": "runner_on_ok", "event_data": {
        "task": "Create the VM, or find it"}, "stdout": ""})
    phases, taken = [run.phase], []
    for count in range(1, len(SCRIPT) + 1):
        # every retry carries every record so far; each is taken once
        run.event_handler(progress("runner_retry", SCRIPT[:count]))
        phases.append(run.phase)
        taken += run.log.take()
    run.event_handler(progress("runner_on_ok", SCRIPT))
    assert run.log.take() == []
    assert phases == ["booting", "fetching", "fetching", "building", "building", "building",
                      "building", "starting", "starting"]  # ready only from set_stats
    assert [line.seq for line in taken] == [1, 2, 3, 5, 6, 7, 8]  # 4 held the token
    assert taken[3] == Line(5, "building", "Step 2/9 : RUN pip install -r requirements.txt")
    assert taken[4].text == "Collecting numpy 100%"  # what the terminal showed last
    assert run.log.phase == "ready" and run.log.last_seq == 8
    assert all(TOKEN not in line.text for line in taken)


def test_only_the_progress_tasks_results_are_read():
    run = JobRun("j", "start")
    lines = [record(1, "building", "Step 1/2")]
    other = progress("runner_on_ok", lines)
    other["event_data"] |= {"task_action": "ansible.builtin.debug",
                            "resolved_action": "ansible.builtin.debug"}
    run.event_handler(other)
    run.event_handler(progress("playbook_on_task_start", lines))
    run.event_handler(progress("runner_on_ok", [{"seq": "1", "phase": "building",
                                                 "text": "not in the contract's shape"}],
                               "nonsense"))
    run.event_handler(progress("runner_on_ok", [record(True, "building", "a boolean seq")],
                               "nonsense"))
    assert run.log.take() == [] and run.phase == "queued"
    short = progress("runner_on_ok", lines)
    short["event_data"] |= {"task_action": "launch_progress"}
    del short["event_data"]["resolved_action"]
    run.event_handler(short)
    assert [line.seq for line in run.log.take()] == [1]


def test_a_failed_progress_task_is_the_jobs_failure_with_its_log():
    run = JobRun("j", "start")
    run.status = "failed"
    lines = [record(1, "fetching", "Fetching"), record(2, "building", "Step 1/2 : RUN false"),
             record(3, "building", "The command '/bin/sh -c false' returned a non-zero code: 1"),
             record(4, "failed", "repo2docker failed")]
    run.event_handler(progress("runner_on_failed", lines))
    assert run.failed_action == ACTION and run.failed_msg == "the launcher failed"
    assert run.phase == "building"
    assert [line.text for line in run.log.tail][-2:] == [
        "The command '/bin/sh -c false' returned a non-zero code: 1", "repo2docker failed"]


def test_memory_is_bounded():
    run = JobRun("j", "start")
    many = [record(n, "building", f"line {n} " + "x" * 2000) for n in range(MAX_LINES + 50)]
    run.event_handler(progress("runner_retry", many))
    taken = run.log.take()
    assert len(taken) == MAX_LINES and taken[0].seq == 50
    assert max(len(line.text) for line in taken) == MAX_CHARS
    assert len(run.log.tail) == buildlog.TAIL


# --- job_log ---------------------------------------------------------------------------------


@pytest.fixture
def conn(tmp_path):
    conn = db.connect(tmp_path / "ssc-web.sqlite3")
    db.init(conn)
    yield conn
    conn.close()


def test_the_log_is_kept_bounded_and_goes_with_its_job(conn):
    job_id = db.enqueue_job(conn, 1, "alice", "start", REPO)
    other = db.add_finished_job(conn, 2, "bob", "start", "ready", "done", REPO)
    buildlog.append(conn, job_id, [Line(1, "fetching", "one"), Line(2, "building", "two")])
    buildlog.append(conn, job_id, [Line(2, "building", "again"), Line(3, "building", "three")])
    buildlog.append(conn, other, [Line(1, "building", "bob's")])
    assert [line.text for line in buildlog.lines_after(conn, job_id)] == ["one", "two", "three"]
    assert buildlog.lines_after(conn, job_id, 2) == [Line(3, "building", "three")]
    assert buildlog.lines_after(conn, job_id, 3) == []

    buildlog.append(conn, job_id, [Line(n, "building", "y" * 900) for n in range(4, 1100)])
    kept = buildlog.lines_after(conn, job_id)
    assert len(kept) == MAX_LINES and kept[-1].seq == 1099 and kept[0].seq == 100
    assert {len(line.text) for line in kept} == {MAX_CHARS}

    conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
    assert conn.execute("SELECT COUNT(*) FROM job_log WHERE job_id = ?",
                        (job_id,)).fetchone()[0] == 0
    assert [line.text for line in buildlog.lines_after(conn, other)] == ["bob's"]


def test_a_database_of_version_3_gets_the_log_and_keeps_its_jobs(tmp_path):
    """A database made before the log (and before the phase "fetching"): its jobs stay, the
    table and its trigger come, and a later rebuild of the jobs table keeps the trigger."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, github_id INTEGER NOT NULL, login TEXT "
            "NOT NULL, action TEXT NOT NULL CHECK (action IN ('start', 'delete')), repo TEXT "
            "DEFAULT '', ref TEXT DEFAULT '', state TEXT NOT NULL DEFAULT 'queued', phase TEXT "
            "NOT NULL DEFAULT 'queued' CHECK (phase IN ('queued', 'creating', 'booting', "
            "'building', 'starting', 'ready', 'failed')), message TEXT DEFAULT '', output TEXT "
            "DEFAULT '', created TEXT NOT NULL, started TEXT, finished TEXT);"
            "INSERT INTO jobs (id, github_id, login, action, state, phase, created) VALUES "
            "('a', 1, 'alice', 'start', 'failed', 'failed', '2025-01-01T00:00:00Z');"
            "PRAGMA user_version = 3;")
    old.close()
    conn = db.connect(path)
    try:
        db.init(conn)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
        assert db.job(conn, "a")["login"] == "alice"
        conn.execute("UPDATE jobs SET phase = 'fetching' WHERE id = 'a'")  # the new phase
        buildlog.append(conn, "a", [Line(1, "building", "kept")])
        db.init(conn)  # nothing changes the second time
        assert [line.text for line in buildlog.lines_after(conn, "a")] == ["kept"]
        # a future change of the jobs table's CHECKs rebuilds it: the log and its trigger stay
        conn.execute("BEGIN IMMEDIATE")
        db._rebuild_jobs(conn)
        conn.execute("COMMIT")
        assert [line.text for line in buildlog.lines_after(conn, "a")] == ["kept"]
        conn.execute("DELETE FROM jobs WHERE id = 'a'")
        assert buildlog.lines_after(conn, "a") == []
    finally:
        conn.close()


# --- a real run -------------------------------------------------------------------------------


def launch_script(tmp_path: Path, records: list[dict]) -> dict:
    script = tmp_path / "launcher.json"
    script.write_text(json.dumps(records))
    return {"LAUNCH_SCRIPT": str(script)}


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "runs.sqlite3"
    conn = db.connect(path)
    db.init(conn)
    conn.close()
    return lambda: db.connect(path)


def test_a_run_writes_the_log_as_it_goes_and_succeeds(database, tmp_path):
    config = replace(runner_config(tmp_path / "jobs", "launch.yml"),
                     env=launch_script(tmp_path, SCRIPT))
    conn = database()
    job = claimed(conn, 7, "alice")
    seen = []
    run = JobRun(job.id, job.action)
    handler = run.event_handler

    def spy(event):
        answer = handler(event)
        seen.append(run.phase)
        return answer

    run.event_handler = spy
    assert jobs.run_job(config, job, database, run) == "succeeded"
    assert {"fetching", "building", "starting"} <= set(seen)
    lines = buildlog.lines_after(conn, job.id)
    assert [line.seq for line in lines] == [1, 2, 3, 5, 6, 7, 8]
    assert all(TOKEN not in line.text for line in lines)
    assert db.job(conn, job.id)["phase"] == "ready"
    conn.close()


def test_a_failed_build_fails_the_job_with_its_last_lines(database, tmp_path):
    failing = [*SCRIPT[:3], record(4, "building", "Step 2/2 : RUN exit 3"),
               record(5, "building", "The command '/bin/sh -c exit 3' returned a non-zero "
                                     "code: 3"),
               record(6, "failed", "repo2docker exited with 1")]
    config = replace(runner_config(tmp_path / "jobs", "launch.yml"),
                     env=launch_script(tmp_path, failing))
    conn = database()
    job = claimed(conn, 8, "bob")
    assert jobs.run_job(config, job, database) == "failed"
    row = db.job(conn, job.id)
    assert row["message"].startswith("The repository's build failed (repo2docker).")
    assert "returned a non-zero code: 3" in row["message"]
    for internal in ("Follow the VM's launcher", "launch_progress", "/tmp", str(PLAYBOOKS)):
        assert internal not in row["message"]
    assert [line.seq for line in buildlog.lines_after(conn, job.id)] == [1, 2, 3, 4, 5, 6]
    conn.close()
