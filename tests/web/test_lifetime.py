"""When a VM goes, as its owner sees it (web/lifetime.py, issue 15): the schedule on the page,
"keep it" (POST /VM_extend and the extend job), why a VM went (the job runner's cull run and
the reading of the cloud), and a database made before these columns and actions. No cloud:
the small playbooks in tests/web/playbooks stand in for user_vm.yml and cull.yml."""

import sqlite3
import threading
import time
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from openstack.compute.v2.server import Server

from tests.web.conftest import SAMPLE, forms
from tests.web.test_jobs import PLAYBOOKS, claimed, runner_config
from web import db, jobs, lifetime, vms
from web.db import _sql_list

NOW = datetime(2026, 1, 31, 10, 0, tzinfo=UTC)


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "ssc-web.sqlite3"

    def connect() -> sqlite3.Connection:
        return db.connect(path)

    with closing(connect()) as conn:
        db.init(conn)
    return connect


@pytest.fixture
def conn(database):
    with closing(database()) as connection:
        yield connection


def vm_row(conn, github_id: int, login: str, **schedule) -> sqlite3.Row:
    db.save_vm(conn, github_id, login, name=f"ssc-r2d-{login}", repo=SAMPLE, state="ready",
               url="http://10.0.0.9:8888/", address="10.0.0.9", token="t" * 48)
    db.save_schedule(conn, github_id, **schedule)
    return db.vm_of(conn, github_id)


# --- the database ---------------------------------------------------------------------------

VERSION_2_JOBS = """CREATE TABLE jobs (
    id TEXT PRIMARY KEY, github_id INTEGER NOT NULL, login TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('start', 'delete')), repo TEXT DEFAULT '',
    ref TEXT DEFAULT '', state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'interrupted')),
    phase TEXT NOT NULL DEFAULT 'queued' CHECK (phase IN ('queued', 'creating', 'booting',
        'building', 'starting', 'ready', 'deleting', 'deleted', 'failed')),
    message TEXT DEFAULT '', output TEXT DEFAULT '', created TEXT NOT NULL, started TEXT,
    finished TEXT)"""
VERSION_2_VMS = """CREATE TABLE vms (github_id INTEGER PRIMARY KEY, login TEXT NOT NULL,
    name TEXT DEFAULT '', repo TEXT DEFAULT '', ref TEXT DEFAULT '', url TEXT DEFAULT '',
    state TEXT DEFAULT '', updated TEXT, address TEXT DEFAULT '', token TEXT DEFAULT '')"""


def test_a_database_made_before_gets_the_columns_and_actions(tmp_path):
    with closing(db.connect(tmp_path / "old.sqlite3")) as conn:
        conn.execute(VERSION_2_JOBS)
        conn.execute(VERSION_2_VMS)
        conn.execute("INSERT INTO jobs (id, github_id, login, action, state, phase, created) "
                     "VALUES ('a', 1, 'alice', 'start', 'succeeded', 'ready', '2025')")
        conn.execute("INSERT INTO vms (github_id, login, name, state) "
                     "VALUES (1, 'alice', 'ssc-r2d-alice', 'ready')")
        db.init(conn)
        db.init(conn)  # the second time changes nothing
        assert (db.job(conn, "a")["login"], db.job(conn, "a")["phase"]) == ("alice", "ready")
        vm = db.vm_of(conn, 1)
        assert (vm["expires"], vm["extensions"], vm["extensions_left"]) == ("", 0, None)
        job_id = db.enqueue_job(conn, 1, "alice", "extend")
        conn.execute("UPDATE jobs SET phase = 'extended' WHERE id = ?", (job_id,))
        indexes = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs'")}
        assert {"jobs_one_active_per_user", "jobs_of_user", "jobs_by_state"} <= indexes
        with pytest.raises(db.JobConflict):
            db.enqueue_job(conn, 1, "alice", "delete")
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'jobs'").fetchone()
        assert f"action IN {_sql_list(db.ACTIONS)}" in sql


def test_cull_rows_are_recorded_never_queued(conn):
    with pytest.raises(ValueError):
        db.enqueue_job(conn, 1, "alice", "cull")
    job_id = db.add_finished_job(conn, 1, "alice", "cull", "culled", "gone")
    row = db.job(conn, job_id)
    assert (row["state"], row["phase"], row["message"]) == ("succeeded", "culled", "gone")
    assert row["finished"] and db.current_job(conn, 1) is None
    with pytest.raises(ValueError):
        db.save_schedule(conn, 1, token="x")  # only the schedule's columns


# --- words and times ------------------------------------------------------------------------


def test_reasons_in_the_researchers_words():
    assert lifetime.gone_message("ssc-r2d-ada", "expired at 2026-01-31T12:00:00Z") == (
        "Your VM ssc-r2d-ada was deleted: it expired at 2026-01-31 12:00 UTC.")
    assert lifetime.in_words("idle since 2026-01-30T08:15:00Z") == (
        "nobody had used it since 2026-01-30 08:15 UTC")
    assert lifetime.in_words("unreachable 3 times in a row") == (
        "its Jupyter did not answer, 3 times in a row")
    assert lifetime.until("2026-01-31T13:00:00Z", NOW) == "in 3 hours"
    assert lifetime.until("2026-01-31T10:30:00Z", NOW) == "in 30 minutes"
    assert lifetime.until("2026-02-03T10:00:00Z", NOW) == "in 3 days"
    assert lifetime.until("2026-01-31T09:00:00Z", NOW) == "now"
    assert lifetime.shown("not a time") == "" and lifetime.until(None, NOW) == ""


def test_the_schedule_comes_from_the_metadata_it_has():
    metadata = {"ssc_r2d_expires": "2026-02-01T10:00:00Z", "ssc_r2d_extensions": "1",
                "ssc_r2d_idle_deadline": "garbage", "ssc_r2d_owner": "ada"}
    assert lifetime.schedule_columns(metadata) == {
        "expires": "2026-02-01T10:00:00Z", "idle_deadline": "", "extensions": 1}
    assert lifetime.schedule_columns({}) == {}  # a listing without metadata changes nothing


def test_why_a_vm_went_from_its_recorded_schedule(conn):
    expired = vm_row(conn, 1, "ada", expires="2026-01-31T09:00:00Z")
    assert lifetime.explain_gone(expired, NOW) == "expired at 2026-01-31T09:00:00Z"
    idle = vm_row(conn, 2, "bea", expires="2026-02-01T00:00:00Z",
                  idle_deadline="2026-01-31T09:59:00Z", last_activity="2026-01-31T05:59:00Z")
    assert lifetime.explain_gone(idle, NOW) == "idle since 2026-01-31T05:59:00Z"
    alive = vm_row(conn, 3, "cy", expires="2026-02-01T00:00:00Z",
                   idle_deadline="2026-01-31T11:00:00Z")
    assert lifetime.explain_gone(alive, NOW) is None  # deleted by someone: no reason known


def test_the_page_view(conn):
    vm = vm_row(conn, 1, "ada", expires="2026-01-31T12:00:00Z",
                idle_deadline="2026-01-31T11:00:00Z", last_activity="2026-01-31T07:00:00Z")
    view = lifetime.page_view(vm, [], NOW)
    assert (view["expires"], view["expires_in"], view["idle_deadline"], view["idle_in"]) == (
        "2026-01-31 12:00 UTC", "in 2 hours", "2026-01-31 11:00 UTC", "in 60 minutes")
    assert view["can_extend"] and not view["cap"]
    db.save_schedule(conn, 1, extensions_left=0)
    view = lifetime.page_view(db.vm_of(conn, 1), [], NOW)
    assert not view["can_extend"] and "as many times as this site allows" in view["cap"]
    gone = {"action": "cull", "message": "Your VM x was deleted: it expired at …",
            "finished": "2026-01-31T12:01:00.000000Z", "state": "succeeded"}
    assert lifetime.page_view(None, [gone])["gone"] == (
        "Your VM x was deleted: it expired at … (2026-01-31 12:01 UTC)")


# --- "keep it": the job ---------------------------------------------------------------------


def test_an_extend_job_records_the_new_expiry(database, conn, tmp_path):
    config = runner_config(tmp_path / "jobs")
    vm_row(conn, 5, "ada", expires="2099-01-01T00:00:00Z", extensions=1)
    job = claimed(conn, 5, "ada", "extend")
    assert jobs.run_job(config, job, database) == "succeeded"
    row = db.job(conn, job.id)
    assert (row["state"], row["phase"]) == ("succeeded", "extended")
    assert row["message"] == ("Your VM is kept until 2099-01-02 00:00 UTC. That was the last "
                              "time this site lets you keep it longer: save your work "
                              "elsewhere before then.")
    vm = db.vm_of(conn, 5)
    assert (vm["expires"], vm["extensions"], vm["extensions_left"], vm["url"]) == (
        "2099-01-02T00:00:00Z", 2, 0, "http://10.0.0.9:8888/")
    assert "arrived user_id=5 user=ada repo= ref= state=extended" in " ".join(row["output"].split())


def test_a_refused_extension_says_why_without_the_task(database, conn, tmp_path):
    config = runner_config(tmp_path / "jobs")
    vm_row(conn, 6, "capped", expires="2099-01-03T00:00:00Z")
    job = claimed(conn, 6, "capped", "extend")
    assert jobs.run_job(config, job, database) == "failed"
    row = db.job(conn, job.id)
    assert row["message"] == ("This VM has been kept longer 2 times, the most this site "
                              "allows; it goes at 2099-01-03T00:00:00Z.")
    assert db.vm_of(conn, 6)["expires"] == "2099-01-03T00:00:00Z"


def test_a_start_job_records_the_expiry(database, conn, tmp_path):
    config = runner_config(tmp_path / "jobs")
    job = claimed(conn, 7, "ada")
    assert jobs.run_job(config, job, database) == "succeeded"
    vm = db.vm_of(conn, 7)
    assert (vm["expires"], vm["idle_deadline"], vm["extensions_left"]) == (
        "2099-01-01T00:00:00Z", "", None)


# --- why a VM went --------------------------------------------------------------------------


def test_the_runners_cull_run_tells_each_owner_why(database, conn, tmp_path):
    config = replace(runner_config(tmp_path / "jobs"), cull_playbook=PLAYBOOKS / "cull.yml")
    vm_row(conn, 11, "erin", expires="2026-01-31T12:00:00Z")
    db.save_user(conn, 12, "Frank")  # no row: known by the owner in the metadata
    vm_row(conn, 14, "gina")  # kept
    told = lifetime.run_cull(config, database)
    assert told == ["erin", "Frank"]  # zed is no user here: skipped
    [erin] = db.jobs_of(conn, 11)
    assert (erin["action"], erin["state"], erin["phase"], erin["repo"]) == (
        "cull", "succeeded", "culled", SAMPLE)
    assert erin["message"] == ("Your VM ssc-r2d-erin was deleted: it expired at 2026-01-31 "
                               "12:00 UTC.")
    assert db.vm_of(conn, 11) is None and db.vm_of(conn, 14) is not None
    [frank] = db.jobs_of(conn, 12)
    assert frank["message"] == ("Your VM ssc-r2d-frank was deleted: nobody had used it since "
                                "2026-01-30 08:15 UTC.")
    assert lifetime.run_cull(config, database) == []  # told once
    assert len(db.jobs_of(conn, 11)) == len(db.jobs_of(conn, 12)) == 1
    assert list(config.private_data_root.iterdir()) == []


def test_a_dry_run_or_odd_stats_record_nothing(conn):
    vm_row(conn, 11, "erin")
    culled = [{"name": "ssc-r2d-erin", "owner": "erin", "reason": "expired at x"}]
    assert lifetime.record_culled(conn, {"ssc_culled": culled, "ssc_cull_dry_run": "True"}) == []
    assert lifetime.record_culled(conn, {"ssc_culled": "ssc-r2d-erin"}) == []
    assert lifetime.record_culled(conn, {"ssc_culled": ["ssc-r2d-erin", 7, None]}) == []
    assert db.jobs_of(conn, 11) == [] and db.vm_of(conn, 11) is not None


def test_a_culled_vm_whose_owner_has_a_job_keeps_its_row_for_the_job(conn):
    vm_row(conn, 11, "erin")
    db.enqueue_job(conn, 11, "erin", "start", SAMPLE)
    culled = [{"name": "ssc-r2d-erin", "owner": "erin", "reason": "idle since x"}]
    assert lifetime.record_culled(conn, {"ssc_culled": culled}) == ["erin"]
    assert db.vm_of(conn, 11) is not None
    assert [job["action"] for job in db.jobs_of(conn, 11)] == ["cull", "start"]


def test_the_worker_culls_every_cull_interval(database, conn, tmp_path):
    config = replace(runner_config(tmp_path / "jobs"), cull_playbook=PLAYBOOKS / "cull.yml",
                     cull_interval=3600)
    vm_row(conn, 11, "erin", expires="2026-01-31T12:00:00Z")
    worker = jobs.Worker(config, database, cloud=lambda: None)
    thread = threading.Thread(target=worker.serve)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not db.jobs_of(conn, 11):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        worker.stopping.set()
        thread.join(60)
    assert not thread.is_alive()
    assert [job["action"] for job in db.jobs_of(conn, 11)] == ["cull"]


def test_a_reading_of_the_cloud_explains_a_vm_culled_by_the_sites_timer(conn):
    past = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.now(UTC) + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    vm_row(conn, 1, "expired", expires=past)
    vm_row(conn, 2, "removed", expires=later)
    vm_row(conn, 3, "kept", expires=past)
    servers = [Server(name="ssc-r2d-kept", status="ACTIVE", metadata={
        "ssc_r2d_owner": "kept", "ssc_r2d_expires": later, "ssc_r2d_extensions": "1",
        "ssc_r2d_idle_deadline": later, "ssc_r2d_last_activity": past})]
    listed_at = db.now()
    assert sorted(vms.reconcile_vms(conn, servers, listed_at)) == ["expired", "removed"]
    [told] = db.jobs_of(conn, 1)
    assert told["action"] == "cull" and "it expired at" in told["message"]
    assert db.jobs_of(conn, 2) == []  # deleted by someone: nothing made up
    kept = db.vm_of(conn, 3)
    assert (kept["expires"], kept["idle_deadline"], kept["last_activity"], kept["extensions"]) \
        == (later, later, past, 1)


# --- the page and the route -----------------------------------------------------------------


def test_the_page_shows_when_the_vm_goes_and_keep_it(alice, site):
    with site.conn() as conn:
        vm_row(conn, site.user_id("alice"), "alice", expires="2099-01-01T00:00:00Z",
               idle_deadline="2098-12-31T20:00:00Z", last_activity="2098-12-31T16:00:00Z")
    page = alice.get("/").text
    assert "2099-01-01 00:00 UTC" in page and "2098-12-31 20:00 UTC" in page
    assert "last used 2098-12-31 16:00 UTC" in page
    keep = forms(page)["/VM_extend"]
    answer = alice.post("/VM_extend", {"csrf": keep["csrf"]})
    assert answer.status_code == 303
    [job] = site.jobs()
    assert (job["action"], job["state"], job["login"], job["repo"]) == (
        "extend", "queued", "alice", SAMPLE)
    assert answer.headers["Location"] == f"{site.url}/jobs/{job['id']}"
    view = alice.get(f"/jobs/{job['id']}.json").json()
    assert view["phases"] == ["queued", "extending", "extended"]
    assert "Keep your VM longer" in alice.get(f"/jobs/{job['id']}").text
    page = alice.get("/").text
    assert "/VM_extend" not in forms(page)  # not while a job runs
    assert alice.post("/VM_extend", {"csrf": keep["csrf"]}).status_code == 409


def test_keep_it_refuses_without_a_vm_or_past_the_cap(alice, site):
    csrf = alice.csrf()
    answer = alice.post("/VM_extend", {"csrf": csrf})
    assert answer.status_code == 409 and "no VM to keep longer" in answer.text
    with site.conn() as conn:
        vm_row(conn, site.user_id("alice"), "alice", expires="2099-01-01T00:00:00Z",
               extensions_left=0)
    page = alice.get("/").text
    assert "/VM_extend" not in forms(page)
    assert "as many times as this site allows: it goes at 2099-01-01 00:00 UTC" in page
    answer = alice.post("/VM_extend", {"csrf": csrf})
    assert answer.status_code == 409 and "as many times as this site allows" in answer.text
    assert site.jobs() == []


def test_keep_it_against_hostile_requests(alice, bob, site):
    alice_id = site.user_id("alice")
    with site.conn() as conn:
        vm_row(conn, alice_id, "alice", expires="2099-01-01T00:00:00Z")
    assert alice.post("/VM_extend", {}).status_code == 403  # no CSRF token
    assert alice.post("/VM_extend", {"csrf": "x" * 43}).status_code == 403
    assert bob.post("/VM_extend", {"csrf": alice.csrf()}).status_code == 403  # not bob's
    assert alice.post("/VM_extend", {"csrf": alice.csrf()},
                      headers={"Origin": "https://evil.example"}).status_code == 403
    assert alice.get("/VM_extend").status_code == 405  # a GET changes nothing
    stranger = site.browser()
    assert stranger.post("/VM_extend", {"csrf": "x"}).status_code == 403
    assert site.jobs() == []
    # Fields naming another VM, user or time are not read: bob has no VM to keep.
    answer = bob.post("/VM_extend", {"csrf": bob.csrf(), "user": "alice", "name": "ssc-r2d-alice",
                                     "github_id": str(alice_id), "hours": "99999",
                                     "expires": "{{ lookup('pipe', 'id') }}"})
    assert answer.status_code == 409
    answer = alice.post("/VM_extend", {"csrf": alice.csrf(), "hours": "99999",
                                       "extension": "-1\n{{7*7}}"})
    assert answer.status_code == 303
    [job] = site.jobs()
    assert (job["github_id"], job["action"], job["repo"], job["ref"]) == (
        alice_id, "extend", SAMPLE, "")


def test_the_page_says_why_the_last_vm_went(alice, site):
    with site.conn() as conn:
        db.add_finished_job(conn, site.user_id("alice"), "alice", "cull", "culled",
                            lifetime.gone_message("ssc-r2d-alice",
                                                  "idle since 2026-01-30T08:15:00Z <b>"), SAMPLE)
    page = alice.get("/").text
    assert "You have no VM at the moment." in page
    assert ("Your VM ssc-r2d-alice was deleted: nobody had used it since 2026-01-30 08:15 UTC "
            "&lt;b&gt;.") in page
    assert page.count("nobody had used it since") == 2  # and in the job list
