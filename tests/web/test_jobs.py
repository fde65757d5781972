"""The job runner (web/jobs.py and its parts: jobqueue, playbook, events, vms): the queue, the
extra vars file, real ansible-runner runs of the small playbooks in tests/web/playbooks
(localhost, no cloud), restart safety and shutdown."""

import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import ansible_runner
import pytest
import yaml
from ansible.parsing.dataloader import DataLoader

from tests.helpers import process_tree as run_tree
from web import db, jobqueue, jobs, playbook, vms
from web.config import Config
from web.events import CACHE_TASK, TASK_PHASES, JobRun

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).parent / "playbooks"
TOKEN = "5f2a9c41e07b3d68a1f4c2e9b7d0365a8e1c4f7b2d9a6e30"  # the test playbooks' token
TOKEN_SECRET = "tEst-t0ken-secret-" + uuid.uuid4().hex
REPO = "https://github.com/binder-examples/requirements"
# Template expressions, quotes, YAML syntax, line breaks, non-ASCII: all must stay text.
HOSTILE = [
    "{{ lookup('pipe', 'id') }}",
    "{% for x in range(3) %}{{ x }}{% endfor %}",
    "it's \"quoted\" \\ back\\slash",
    "key: value # comment",
    "- item",
    "*alias &anchor !tag %directive @at `tick`",
    "line one\nline two\r\n\ttab",
    "n\u00e9v\u00e9 \uff21\uff22\uff23 \u202e \x00 \x7f",
    "!unsafe '{{ x }}'",
    "",
    " leading and trailing ",
    "x" * 5000,
]


@pytest.fixture
def database(tmp_path):
    """A fresh database: a function returning new connections to it."""
    path = tmp_path / "ssc-web.sqlite3"

    def connect() -> sqlite3.Connection:
        return db.connect(path)

    conn = connect()
    db.init(conn)
    conn.close()
    return connect


@pytest.fixture
def conn(database):
    connection = database()
    yield connection
    connection.close()


def runner_config(private_data_root: Path, playbook: str = "vm.yml") -> Config:
    """Settings for the test playbooks: localhost only, quick polls."""
    return replace(Config(), playbook_dir=PLAYBOOKS, playbook=Path(playbook),
                   inventory=PLAYBOOKS / "hosts.yml", private_data_root=private_data_root,
                   token_secret=TOKEN_SECRET, allowed_hosts=("github.com",), job_timeout=300,
                   idle_timeout=120, max_concurrent=4, poll_interval=0.1,
                   heartbeat_interval=0.1, grace_period=1)


@pytest.fixture
def config(tmp_path) -> Config:
    return runner_config(tmp_path / "jobs")


def state_of(conn, job_id: str) -> sqlite3.Row:
    return conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()


def enqueue(conn, github_id: int, login: str, action: str = "start", repo: str = REPO,
            ref: str = "") -> str:
    return db.enqueue_job(conn, github_id, login, action, repo if action == "start" else "", ref)


def finish(conn, job_id: str, state: str = "succeeded") -> None:
    conn.execute("UPDATE jobs SET state = ?, phase = 'ready' WHERE id = ?", (state, job_id))


# --- the queue ------------------------------------------------------------------------------


def test_claim_takes_the_oldest_queued_job(conn):
    first = enqueue(conn, 1, "alice")
    second = enqueue(conn, 2, "bob", "delete")
    claimed = jobqueue.claim_next(conn, 4)
    assert claimed.id == first
    assert (claimed.state, claimed.phase, claimed.login) == ("running", "creating", "alice")
    row = state_of(conn, first)
    assert row["state"] == "running" and row["started"]
    claimed = jobqueue.claim_next(conn, 4)
    assert (claimed.id, claimed.phase) == (second, "deleting")
    assert jobqueue.claim_next(conn, 4) is None


def test_one_job_at_a_time_per_user(conn):
    first = enqueue(conn, 1, "alice")
    assert jobqueue.claim_next(conn, 4).id == first
    # The database refuses a second active job of the same user ...
    with pytest.raises(db.JobConflict):
        enqueue(conn, 1, "alice", "delete")
    # ... and the runner does not rely on it: without the index, the user's next job waits.
    conn.execute("DROP INDEX jobs_one_active_per_user")
    second = enqueue(conn, 1, "alice", "delete")
    other = enqueue(conn, 2, "bob")
    assert jobqueue.claim_next(conn, 4).id == other
    assert jobqueue.claim_next(conn, 4) is None
    assert state_of(conn, second)["state"] == "queued"
    finish(conn, first)
    assert jobqueue.claim_next(conn, 4).id == second


def test_global_limit_queues_the_rest_in_order(conn):
    ids = [enqueue(conn, n, f"user{n}") for n in range(1, 6)]
    assert [jobqueue.claim_next(conn, 2).id for _ in range(2)] == ids[:2]
    assert jobqueue.claim_next(conn, 2) is None
    finish(conn, ids[1], "failed")
    assert jobqueue.claim_next(conn, 2).id == ids[2]
    assert jobqueue.claim_next(conn, 2) is None
    assert [state_of(conn, i)["state"] for i in ids] == [
        "running", "failed", "running", "queued", "queued"]


def test_concurrent_claimers_never_take_a_job_twice(database):
    conn = database()
    ids = {enqueue(conn, n, f"user{n}") for n in range(1, 41)}
    conn.close()
    taken: list[str] = []
    lock = threading.Lock()

    def claimer():
        own = database()
        while (job := jobqueue.claim_next(own, 1000)) is not None:
            with lock:
                taken.append(job.id)
        own.close()

    threads = [threading.Thread(target=claimer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(ids)


def test_heartbeat(conn):
    db.beat(conn)
    first = db.runner_heartbeat(conn)
    time.sleep(0.01)
    db.beat(conn)
    assert db.runner_heartbeat(conn) > first


# --- the extra vars -------------------------------------------------------------------------


class _Tagged(yaml.SafeLoader):
    """Loads `!unsafe` scalars as ("!unsafe", value)."""


_Tagged.add_constructor("!unsafe", lambda loader, node: ("!unsafe", loader.construct_scalar(node)))


def test_extravars_file_round_trips_as_unsafe_strings(tmp_path):
    values = {f"v{n}": value for n, value in enumerate(HOSTILE)}
    path = playbook.write_extravars(tmp_path, values)
    assert path == tmp_path / "env" / "extravars"
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text(encoding="ascii")
    # One line per value, each tagged.
    assert len(text.splitlines()) == len(values)
    assert all(line.split(": ", 1)[1].startswith('!unsafe "') or line.endswith(': ""')
               for line in text.splitlines())
    # Every non-empty value is tagged; "" (Ansible would read `!unsafe ""` as None) is not.
    tagged = yaml.load(text, Loader=_Tagged)  # noqa: S506 (a SafeLoader, plus one tag)
    assert tagged == {k: ("!unsafe", v) if v else v for k, v in values.items()}
    # And Ansible's own loader reads back exactly the strings.
    assert DataLoader().load_from_file(str(path)) == values


def test_extravars_refuses_what_it_cannot_write_safely(tmp_path):
    with pytest.raises(ValueError, match="identifier"):
        playbook.unsafe_extravars({"bad name": "x"})
    with pytest.raises(TypeError):
        playbook.unsafe_extravars({"user": ["a"]})


def test_job_extravars_checks_again(config):
    def job(**fields):
        base = {"id": "j", "github_id": 1, "login": "Alice", "action": "start", "repo": REPO,
                "ref": "", "state": "running", "phase": "creating", "message": "",
                "created": "", "started": "", "finished": ""}
        return jobqueue.Job(**{**base, **fields})

    assert playbook.job_extravars(job(repo=REPO + "/"), config) == {
        "user_id": "1", "user": "Alice", "repo": REPO, "ref": "", "state": "present"}
    assert playbook.job_extravars(job(action="delete", repo=""), config) == {
        "user_id": "1", "user": "Alice", "state": "absent"}
    assert playbook.job_extravars(job(action="extend", repo="", login="legacy-"), config) == {
        "user_id": "1", "user": "legacy-", "state": "extended"}
    for fields in ({"repo": "https://github.com/a/{{ lookup('pipe', 'id') }}"},
                   {"ref": "{{ x }}"}, {"login": "-alice"}, {"github_id": 0},
                   {"repo": "https://evil.example/a/b"},
                   {"repo": "ext::sh -c touch% /tmp/x"}):
        with pytest.raises(ValueError):
            playbook.job_extravars(job(**fields), config)


# --- the event handler ----------------------------------------------------------------------


def test_event_handler_maps_tasks_to_phases_and_keeps_only_safe_parts():
    run = JobRun("j", "start", secrets=[TOKEN_SECRET])
    events = [
        ("playbook_on_task_start", {"task": "Check the request before anything reaches the cloud"}),
        ("playbook_on_task_start", {"task": "Create the VM, or find it"}),
        ("runner_on_ok", {"task": "Create the VM, or find it"}),
        ("playbook_on_task_start", {"task": "Look for the user's VM"}),  # never backwards
        ("playbook_on_task_start", {"task": "Wait for Jupyter to answer with the token"}),
        ("runner_on_failed", {"task": "Wait for Jupyter to answer with the token",
                              "ignore_errors": True, "res": {"msg": "not yet"}}),
    ]
    phases = []
    for kind, data in events:
        assert run.event_handler({"event": kind, "event_data": data, "stdout": ""}) is False
        phases.append(run.phase)
    assert phases == ["queued", "creating", "booting", "booting", "starting", "starting"]
    assert run.failed_msg is None  # an ignored failure is not the job's

    run.event_handler({"event": "runner_on_failed", "stdout": f"fatal: secret {TOKEN_SECRET}",
                       "event_data": {"task": "Derive the VM's Jupyter token", "res": {
                           "censored": "the output has been hidden", "_ansible_no_log": True}}})
    assert run.failed_msg is None
    assert run.failure() == "Derive the VM's Jupyter token: failed (its output is hidden)"
    run.event_handler({"event": "runner_on_failed", "stdout": "", "event_data": {
        "task": "Create the VM, or find it",
        "res": {"msg": "Quota exceeded", "invocation": {"module_args": {"token": "VALUE"}}}}})
    assert run.failure() == "Create the VM, or find it: Quota exceeded"
    assert "VALUE" not in run.failure()
    assert TOKEN_SECRET not in run.output()

    miss = JobRun("m", "start")
    for kind, data in [
        ("runner_on_ok", {"task": "Create the VM, or find it"}),
        ("runner_on_ok", {"task": "Tell whether the image holds the repository pre-built",
                          "res": {"ansible_facts": {"__user_vm_cache_hit": False}}}),
        ("playbook_on_task_start", {"task": "Wait for Jupyter to answer with the token"}),
    ]:
        miss.event_handler({"event": kind, "event_data": data, "stdout": ""})
    assert miss.phase == "building"  # the VM builds the repository before Jupyter starts

    delete = JobRun("d", "delete")
    delete.event_handler({"event": "playbook_on_task_start",
                          "event_data": {"task": "Delete the VM with its volumes and floating IP"}})
    assert delete.phase == "deleting"
    delete.event_handler({"event": "runner_on_ok",
                          "event_data": {"task": "Delete the VM with its volumes and floating IP"}})
    assert delete.phase == "deleted"


def test_output_is_a_bounded_tail_without_secrets():
    run = JobRun("j", output_lines=5)
    for n in range(10):
        run.event_handler({"event": "runner_on_ok", "event_data": {},
                           "stdout": f"\x1b[0;32mline {n}\x1b[0m\r\n"})
    assert run.output().splitlines() == [f"line {n}" for n in range(5, 10)]
    run.event_handler({"event": "playbook_on_stats", "event_data": {"artifact_data": {
        "ssc_vm": {"url": f"http://10.0.0.5:8888/?token={TOKEN}"}}}, "stdout": ""})
    for line in (f"ok => http://10.0.0.5:8888/?token={TOKEN}", f"raw {TOKEN}",
                 "Authorization: token abc", "password: hunter2"):
        run.event_handler({"event": "verbose", "event_data": {}, "stdout": line})
    assert run.output().splitlines() == [f"line {n}" for n in range(5, 10)]
    assert run.scrub(f"see http://x/?token={TOKEN} and token {'a' * 40}") == (
        "see http://x/?token=******** and token ********")


# --- real runs ------------------------------------------------------------------------------


def claimed(conn, github_id: int, login: str, action: str = "start", **fields) -> jobqueue.Job:
    job_id = enqueue(conn, github_id, login, action, **fields)
    job = jobqueue.claim_next(conn, 4)
    assert job.id == job_id
    return job


def test_a_run_that_publishes_ssc_vm_succeeds_and_records_the_url(database, conn, config):
    job = claimed(conn, 7, "Alice", ref="main")
    progress = []
    run = JobRun(job.id, job.action)
    run.event_handler = _spy(run.event_handler, lambda: progress.append(run.phase))

    assert jobs.run_job(config, job, database, run) == "succeeded"

    row = state_of(conn, job.id)
    assert (row["state"], row["phase"]) == ("succeeded", "ready")
    assert row["message"] == "ssc-r2d-7 is ready (image ssc-repo2docker-test, cache hit)."
    assert row["finished"] >= row["started"]
    assert "creating" in progress and "booting" in progress and "starting" in progress
    vm = db.vm_of(conn, 7)
    assert dict(vm) | {"updated": None} == {
        "github_id": 7, "login": "Alice", "name": "ssc-r2d-7", "repo": REPO, "ref": "main",
        "url": "http://127.0.0.1:8888/", "state": "ready", "updated": None,
        "address": "127.0.0.1", "token": TOKEN,  # the token apart, never in the URL
        "expires": "2099-01-01T00:00:00Z", "idle_deadline": "", "last_activity": "",
        "extensions": 0, "extensions_left": None}
    # The output is readable, and holds neither the URL nor the token.
    assert "TASK [Create the VM, or find it]" in row["output"]
    assert (f"arrived user_id=7 user=Alice repo={REPO} ref=main state=present"
            in unfolded(row["output"]))
    assert TOKEN not in row["output"] and TOKEN not in row["message"]
    # Nothing of the run stays on disk.
    assert list(config.private_data_root.iterdir()) == []

    delete = claimed(conn, 7, "Alice", "delete")
    assert jobs.run_job(config, delete, database) == "succeeded"
    row = state_of(conn, delete.id)
    assert (row["state"], row["phase"], row["message"]) == (
        "succeeded", "deleted", "ssc-r2d-7 was deleted.")
    assert db.vm_of(conn, 7) is None


def unfolded(output: str) -> str:
    """`output` with YAML's folding of long lines undone (white space runs as one space)."""
    return " ".join(output.split())


def _spy(handler, after):
    def spied(event):
        result = handler(event)
        after()
        return result
    return spied


def test_a_failed_run_keeps_the_message_and_no_secret(database, conn, config):
    config = replace(config, playbook=PLAYBOOKS / "fail.yml")
    job = claimed(conn, 8, "bob")
    assert jobs.run_job(config, job, database) == "failed"
    row = state_of(conn, job.id)
    assert (row["state"], row["phase"]) == ("failed", "failed")
    # in the owner's words (web/explain.py): no task name, no hint meant for the operators
    assert row["message"] == ("This site has no image to start VMs from yet. Please try "
                              "later, or tell the site's operators.")
    assert "TASK [Fail when there is no image to boot]" in row["output"]
    assert "TASK [Show the token secret" in row["output"]
    for secret in (TOKEN, TOKEN_SECRET, "token="):
        assert secret not in row["output"]
        assert secret not in row["message"]
    assert db.vm_of(conn, 8) is None
    assert list(config.private_data_root.iterdir()) == []


def test_a_no_log_failure_stays_hidden(database, conn, config):
    config = replace(config, playbook=PLAYBOOKS / "fail_hidden.yml")
    job = claimed(conn, 9, "carol")
    assert jobs.run_job(config, job, database) == "failed"
    row = state_of(conn, job.id)
    assert row["message"] == ("Starting your VM failed. Please try again; if it fails again, "
                              "tell the site's operators.")
    assert "hidden message" not in row["output"] and TOKEN not in row["output"]


def test_a_refused_request_fails_without_a_run(database, conn, config):
    marker = Path(f"/tmp/ssc-r2d-refused-{uuid.uuid4().hex}")
    job = claimed(conn, 10, "dave", repo=f"https://github.com/a/b{{{{ lookup('pipe', "
                                          f"'touch {marker}') }}}}")
    assert jobs.run_job(config, job, database) == "failed"
    row = state_of(conn, job.id)
    assert row["state"] == "failed" and row["message"].startswith("repo ")
    assert "refused" in row["message"] and row["output"] == ""
    assert not marker.exists()


def test_a_template_fed_past_the_validator_reaches_the_playbook_as_text(config, tmp_path):
    """Straight into the job layer, no check: the expression arrives as literal text and
    nothing runs. The control run shows that the same value passed as ansible-runner's
    extravars= (trusted -e JSON) is executed by this Ansible: the threat is real."""
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    expression = f"{{{{ lookup('pipe', 'touch {marker}') }}}}"
    extravars = {"user_id": expression, "user": expression, "repo": expression,
                 "ref": expression, "state": "present"}

    run = playbook.run_playbook(config, "template-as-text", extravars, JobRun("t"))

    assert run.status == "successful", run.output()
    assert run.vm["user"] == run.vm["repo"] == run.vm["ref"] == expression
    assert f"user_id={expression} user={expression} repo={expression}" in unfolded(run.output())
    assert not marker.exists()

    (tmp_path / "control").mkdir()
    control = ansible_runner.run(
        private_data_dir=str(tmp_path / "control"), project_dir=str(ROOT),
        playbook=str(PLAYBOOKS / "vm.yml"), inventory=str(PLAYBOOKS / "hosts.yml"),
        extravars=extravars, suppress_env_files=True, quiet=True,
        envvars={"PATH": playbook.job_environment(config)["PATH"],
                 "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")})
    assert control.status == "successful"
    assert marker.exists(), "ansible-runner's extravars= no longer renders templates"


def test_the_environment_is_chosen_not_inherited(config, monkeypatch):
    monkeypatch.setenv("SSC_WEB_GITHUB_CLIENT_SECRET", "do-not-pass-me-" + uuid.uuid4().hex)
    monkeypatch.setenv("OS_CLOUD", "somecloud")
    config = replace(config, env={"OS_CLIENT_CONFIG_FILE": "/etc/openstack/clouds.yaml"})
    env = playbook.job_environment(config)
    assert "SSC_WEB_GITHUB_CLIENT_SECRET" not in env
    assert env["OS_CLOUD"] == "somecloud"
    assert env["OS_CLIENT_CONFIG_FILE"] == "/etc/openstack/clouds.yaml"
    assert env["SSC_TOKEN_SECRET"] == TOKEN_SECRET
    assert env["ANSIBLE_CONFIG"] == str(ROOT / "ansible.cfg")
    assert env["PATH"].split(":")[0].endswith("/bin")
    config = replace(config, pass_token_secret=False)
    monkeypatch.setenv("SSC_TOKEN_SECRET", TOKEN_SECRET)
    assert "SSC_TOKEN_SECRET" not in playbook.job_environment(config)


def test_the_playbook_sees_only_the_chosen_environment(config, monkeypatch, tmp_path):
    leaked = "do-not-pass-me-" + uuid.uuid4().hex
    monkeypatch.setenv("SSC_WEB_GITHUB_CLIENT_SECRET", leaked)
    env_playbook = tmp_path / "env.yml"
    env_playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.set_stats:\n        data:\n          ssc_vm:\n"
        "            client_secret: \"{{ lookup('ansible.builtin.env', "
        "'SSC_WEB_GITHUB_CLIENT_SECRET') }}\"\n"
        "            token_secret_length: \"{{ lookup('ansible.builtin.env', "
        "'SSC_TOKEN_SECRET') | length }}\"\n")
    config = replace(config, playbook=env_playbook)
    run = playbook.run_playbook(config, "environment", {"user": "alice"}, JobRun("e"))
    assert run.status == "successful", run.output()
    assert run.vm["client_secret"] == ""
    assert int(run.vm["token_secret_length"]) == len(TOKEN_SECRET)


# --- restart safety and shutdown ------------------------------------------------------------


def test_recover_marks_running_jobs_interrupted_and_reads_their_vms_again(conn):
    running = claimed(conn, 11, "erin")
    db.save_vm(conn, 11, "erin", name="ssc-r2d-erin", repo=REPO, url="http://10.0.0.9:8888/?token=x",
               state="ready")
    queued = enqueue(conn, 12, "frank")
    refreshed = []

    def refresh(github_id, login):
        refreshed.append((github_id, login, db.vm_of(conn, github_id)["state"]))

    interrupted = jobs.recover(conn, refresh)

    assert [job.id for job in interrupted] == [running.id]
    row = state_of(conn, running.id)
    assert (row["state"], row["phase"]) == ("interrupted", "failed")
    assert "stopped while this job ran" in row["message"] and row["finished"]
    assert state_of(conn, queued)["state"] == "queued"  # queued jobs simply run later
    assert refreshed == [(11, "erin", "unknown")]
    assert jobs.recover(conn, refresh) == []


class FakeCloud:
    """Just what refresh_vm asks of an openstacksdk connection: its servers, listed, and each
    server's Neutron ports and floating IPs (a server's ``ports`` and ``floating_ips``
    attributes here, as openstacksdk's network proxy returns them from Neutron)."""

    def __init__(self, *servers):
        self.listed = list(servers)
        self.compute = self.network = self

    def servers(self, name=None):
        return [s for s in self.listed if s.name.startswith(name.lstrip("^"))]

    def ports(self, device_id=None):
        return [port for s in self.listed if s.id == device_id for port in s.ports]

    def ips(self, port_id=None):
        return [ip for s in self.listed for ip in s.floating_ips if ip["port_id"] == port_id]


def server(status="ACTIVE", address="10.0.0.9", owner_id="11", name="ssc-r2d-11", login="erin",
           floating_ip=None):
    """A server as openstacksdk gives it; `floating_ip` is known to Neutron only, as right
    after it was attached (Nova's ``addresses`` shows the fixed address alone)."""
    marks = {"ssc_r2d_owner_id": owner_id, "ssc_r2d_owner_login": login} if owner_id else {
        "ssc_r2d_owner": login}
    port = {"id": f"port-{name}", "network_id": "private",
            "fixed_ips": [{"ip_address": address}]}
    floating = [{"floating_ip_address": floating_ip, "port_id": port["id"]}] if floating_ip else []
    return SimpleNamespace(id=f"id-{name}", name=name, status=status,
                           addresses={"private": [{"addr": address,
                                                   "OS-EXT-IPS:type": "fixed"}]},
                           metadata={**marks, "ssc_r2d_repo": REPO, "ssc_r2d_ref": "main"},
                           ports=[port], floating_ips=floating)


def test_refresh_vm(conn):
    url = "http://10.0.0.9:8888/?token=x"

    def stored(state="unknown"):
        db.save_vm(conn, 11, "erin", name="ssc-r2d-11", repo=REPO, url=url, state=state)

    stored()
    assert vms.refresh_vm(conn, 11, "erin", FakeCloud(server())) == "ready"
    vm = db.vm_of(conn, 11)
    assert (vm["url"], vm["ref"], vm["state"]) == (url, "main", "ready")

    stored()  # the same name, another machine: the stored URL is not its
    cloud = FakeCloud(server(address="10.0.0.10"))
    assert vms.refresh_vm(conn, 11, "erin", cloud) == "unknown"
    assert db.vm_of(conn, 11)["url"] == ""

    stored()
    cloud = FakeCloud(server(status="ERROR"))
    assert vms.refresh_vm(conn, 11, "erin", cloud) == "error"

    stored()
    assert vms.refresh_vm(conn, 11, "erin", FakeCloud()) is None
    assert db.vm_of(conn, 11) is None

    # Interrupted before any report: the VM exists, no URL known yet.
    assert vms.refresh_vm(conn, 11, "erin", FakeCloud(server())) == "unknown"
    assert db.vm_of(conn, 11)["name"] == "ssc-r2d-11"


def test_refresh_vm_reads_a_new_floating_ip_from_neutron(conn):
    # Reported at its floating IP a moment ago; Nova's addresses do not list it yet.
    url = "http://192.0.2.7:8888/"
    db.save_vm(conn, 11, "erin", name="ssc-r2d-11", repo=REPO, url=url, state="unknown")
    assert vms.refresh_vm(conn, 11, "erin", FakeCloud(server(floating_ip="192.0.2.7"))) == "ready"
    assert db.vm_of(conn, 11)["url"] == url
    # Released since: the URL is stale.
    assert vms.refresh_vm(conn, 11, "erin", FakeCloud(server())) == "unknown"
    assert db.vm_of(conn, 11)["url"] == ""


def test_refresh_vm_finds_the_vm_by_account_id_not_by_login(conn):
    # Renamed (same id, new login): still the VM marked with the id, whatever its name.
    legacy_marked = server(name="ssc-r2d-erin", owner_id="11", login="erin")
    assert vms.refresh_vm(conn, 11, "erin-renamed", FakeCloud(legacy_marked)) == "unknown"
    assert db.vm_of(conn, 11)["name"] == "ssc-r2d-erin"
    # A new holder of the freed login (another id) gets none of it.
    assert vms.refresh_vm(conn, 12, "erin", FakeCloud(legacy_marked)) is None
    assert db.vm_of(conn, 12) is None
    # A VM named by login and marked with no id yet is still its login's.
    legacy = server(name="ssc-r2d-erin", owner_id="", login="erin")
    assert vms.refresh_vm(conn, 12, "Erin", FakeCloud(legacy)) == "unknown"


def test_worker_runs_the_queue_and_beats(database, conn, config):
    config = replace(config, max_concurrent=2)
    ids = [enqueue(conn, 21, "gina"), enqueue(conn, 22, "hank"),
           enqueue(conn, 23, "ivy", "delete")]
    worker = jobs.Worker(config, database, cloud=lambda: None)
    thread = threading.Thread(target=worker.serve)
    thread.start()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            states = [state_of(conn, i)["state"] for i in ids]
            assert states.count("running") <= 2
            if all(state in ("succeeded", "failed") for state in states):
                break
            time.sleep(0.2)
        assert db.runner_heartbeat(conn) is not None
    finally:
        worker.stopping.set()
        thread.join(30)
    assert not thread.is_alive()
    assert [state_of(conn, i)["state"] for i in ids] == ["succeeded"] * 3, [
        dict(state_of(conn, i)) for i in ids]
    assert db.vm_of(conn, 21)["state"] == "ready"


def test_stop_cancels_what_outlives_the_grace_period(database, conn, config):
    config = replace(config, playbook=PLAYBOOKS / "sleep.yml")
    job_id = enqueue(conn, 31, "jack")
    db.save_vm(conn, 31, "jack", name="ssc-r2d-jack", state="ready")
    worker = jobs.Worker(config, database, cloud=lambda: None)
    assert [job.id for job in worker.poll(conn)] == [job_id]
    deadline = time.monotonic() + 60
    while "TASK [Create the VM" not in (state_of(conn, job_id)["output"] or ""):
        assert time.monotonic() < deadline, dict(state_of(conn, job_id))
        time.sleep(0.2)
    worker.stop(grace=0.5)
    row = state_of(conn, job_id)
    assert (row["state"], row["phase"]) == ("interrupted", "failed")
    assert "stopped while this job ran" in row["message"]
    assert db.vm_of(conn, 31)["state"] == "unknown"
    assert worker.poll(conn) == []  # stopped: claims nothing more
    assert list(config.private_data_root.iterdir()) == []



def test_the_real_playbook_refuses_what_slipped_past(config, tmp_path):
    """playbooks/user_vm.yml itself, on the local inventory: its first task checks the request
    before anything reaches the cloud, so a template expression fed past the job layer's check
    is refused there, as text, and nothing runs (no cloud is contacted)."""
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    # The default playbook (playbooks/user_vm.yml), on the example site's inventory.
    config = replace(config, playbook_dir=Config().playbook_dir, playbook=Config().playbook,
                     inventory=ROOT / "inventory" / "example")
    expression = f"https://github.com/a/{{{{ lookup('pipe', 'touch {marker}') }}}}"
    run = playbook.run_playbook(config, "real-playbook", {
        "user_id": "1", "user": "alice", "repo": expression, "ref": "", "state": "present"},
        JobRun("r"))
    assert run.status == "failed"
    assert run.failed_task == "Check the request before anything reaches the cloud"
    assert run.failure().startswith(
        "Check the request before anything reaches the cloud: repo "
        "\"https://github.com/a/{{ lookup('pipe', 'touch ")
    assert "refused" in run.failure()
    assert not marker.exists()


def test_a_cancelled_playbook_does_not_outlive_the_runner(database, conn, config):
    """ansible-runner kills ansible-playbook's process group, but ansible-core's workers
    each have a session of their own: they and their modules must be ended too."""
    config = replace(config, playbook=PLAYBOOKS / "sleep.yml")
    job_id = enqueue(conn, 32, "jill")
    worker = jobs.Worker(config, database, cloud=lambda: None)
    worker.poll(conn)
    deadline = time.monotonic() + 60
    while "TASK [Create the VM" not in (state_of(conn, job_id)["output"] or ""):
        assert time.monotonic() < deadline, dict(state_of(conn, job_id))
        time.sleep(0.2)
    running = run_tree(str(config.private_data_root))
    assert len(running) >= 3  # ansible-playbook, its worker, the wait_for module
    worker.stop(grace=0.5)
    left = running & run_tree("")
    for pid in left:  # do not leave them to act
        subprocess.run(["kill", "-9", pid], check=False)
    assert left == set()


def test_a_new_worker_ends_what_a_killed_one_left(database, conn, config):
    """A worker killed outright (SIGKILL, the machine's OOM killer) leaves its runs going and
    their private data dirs on disk: the next worker ends those runs and deletes the dirs
    before it claims anything."""
    config = replace(config, playbook=PLAYBOOKS / "sleep.yml")
    job_id = enqueue(conn, 33, "joan")
    db.save_vm(conn, 33, "joan", name="ssc-r2d-joan", state="ready")
    script = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
              "from tests.web.test_jobs import _serve_worker; _serve_worker()")
    env = {**os.environ, "WORKER_JOBS": str(config.private_data_root),
           "WORKER_DATABASE": str(config.private_data_root.parent / "ssc-web.sqlite3")}
    killed = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=ROOT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "TASK [Create the VM" not in (state_of(conn, job_id)["output"] or ""):
            assert time.monotonic() < deadline, dict(state_of(conn, job_id))
            time.sleep(0.2)
    finally:
        killed.kill()
        killed.wait()
    left = run_tree(str(config.private_data_root))
    assert left and list(config.private_data_root.iterdir())  # what the next worker finds
    worker = jobs.Worker(config, database, cloud=lambda: None)
    assert [job.id for job in worker.recover()] == [job_id]
    try:
        assert left & run_tree("") == set()
        assert list(config.private_data_root.iterdir()) == []
        row = state_of(conn, job_id)
        assert (row["state"], row["phase"]) == ("interrupted", "failed")
        assert db.vm_of(conn, 33)["state"] == "unknown"
    finally:
        for pid in left & run_tree(""):
            subprocess.run(["kill", "-9", pid], check=False)


def _serve_worker() -> None:
    """A worker process on the database and jobs dir the environment names (the test above
    kills it)."""
    config = runner_config(Path(os.environ["WORKER_JOBS"]), "sleep.yml")
    path = Path(os.environ["WORKER_DATABASE"])
    jobs.Worker(config, lambda: db.connect(path), cloud=lambda: None).serve()


def test_the_tasks_named_for_progress_are_the_roles_own():
    """A task renamed in roles/user_vm would silently freeze the progress shown to users."""
    def named(tasks: list[dict]) -> set[str]:  # blocks' tasks too
        return {name for task in tasks for name in (
            {task.get("name")} | named([t for key in ("block", "rescue", "always")
                                        for t in task.get(key) or []]))}

    names = {name for path in (ROOT / "roles" / "user_vm" / "tasks").glob("*.yml")
             for name in named(yaml.safe_load(path.read_text()) or [])}
    wanted = {task for task, _ in TASK_PHASES} | {CACHE_TASK}
    assert wanted <= names, wanted - names
