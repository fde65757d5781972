"""ssc.repo2docker.cull_plan: how it probes a Jupyter server (against a small stand-in that
answers as Jupyter Server's REST API does, or hangs, or drips), and the module itself run by
ansible-playbook on servers whose Jupyter is that stand-in. Real Jupyter on real VMs:
tests/localcloud/test_cull.py."""

import json
import os
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from ansible_collections.ssc.repo2docker.plugins.module_utils.culling import format_time
from ansible_collections.ssc.repo2docker.plugins.module_utils.jupyter_token import derive
from ansible_collections.ssc.repo2docker.plugins.modules import cull_plan, user_server_expiry
from ansible_collections.ssc.repo2docker.plugins.modules.cull_plan import probe, probe_all

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(__file__).parent / "playbooks" / "cull_plan.yml"
SECRET = "s" * 40
NONCE = "nonce-of-the-vm"
TOKEN = derive(SECRET, NONCE)


def ago(**delta) -> str:
    return format_time(datetime.now(UTC) - timedelta(**delta))


class Jupyter(ThreadingHTTPServer):
    """Answers GET /api/status, /api/kernels and /api/terminals like Jupyter Server, for the
    token TOKEN. `answers` maps a path to (HTTP status, JSON body); `stall` to seconds to
    wait before answering; `drip` makes it send its answer a byte a second."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.answers = {
            "/api/status": (200, {"started": ago(hours=9), "last_activity": ago(hours=6),
                                  "connections": 0, "kernels": 0}),
            "/api/kernels": (200, []),
            "/api/terminals": (200, []),
        }
        self.stall: dict[str, float] = {}
        self.drip = False
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Jupyter

    def do_GET(self):
        self.server.requests.append(self.path)
        path = self.path.partition("?")[0]
        time.sleep(self.server.stall.get(path, 0))
        code, body = self.server.answers.get(path, (404, {"message": "Not Found"}))
        if self.headers.get("Authorization") != f"token {TOKEN}":
            code, body = 403, {"message": "Forbidden"}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for index in range(len(data)):
            if not self.server.drip:
                self.wfile.write(data)
                break
            self.wfile.write(data[index:index + 1])
            self.wfile.flush()
            time.sleep(1)

    def log_message(self, *args):
        pass


@pytest.fixture
def jupyter():
    server = Jupyter()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_probe_reads_status_kernels_and_terminals_without_being_activity(jupyter):
    jupyter.answers["/api/kernels"] = (200, [{"id": "k", "execution_state": "busy",
                                              "last_activity": ago(hours=5), "connections": 0}])
    result = probe(jupyter.url, TOKEN, 5)
    assert result["ok"] is True
    assert result["kernels"][0]["execution_state"] == "busy"
    assert result["status"]["connections"] == 0 and result["terminals"] == []
    # /api/status is never activity to Jupyter; listings are unless the request says so
    assert jupyter.requests == ["/api/status", "/api/kernels?no_track_activity=1",
                                "/api/terminals?no_track_activity=1"]


def test_a_server_without_terminals_has_none(jupyter):
    del jupyter.answers["/api/terminals"]
    assert probe(jupyter.url, TOKEN, 5)["terminals"] == []


def test_a_refused_token_is_a_failed_probe(jupyter):
    assert probe(jupyter.url, "wrong", 5) == {"ok": False,
                                              "error": "/api/status answered HTTP 403"}


def test_a_server_error_is_a_failed_probe(jupyter):
    jupyter.answers["/api/kernels"] = (500, {"message": "oops"})
    assert probe(jupyter.url, TOKEN, 5) == {"ok": False,
                                            "error": "/api/kernels answered HTTP 500"}


def test_nothing_listening_is_a_failed_probe(jupyter):
    url = jupyter.url
    jupyter.shutdown()
    jupyter.server_close()
    result = probe(url, TOKEN, 5)
    assert result["ok"] is False and "/api/status" in result["error"]


def test_a_server_that_does_not_answer_in_time_is_a_failed_probe(jupyter):
    jupyter.stall["/api/kernels"] = 5
    started = time.monotonic()
    assert probe(jupyter.url, TOKEN, 1) == {"ok": False, "error": "no answer within 1 s"}
    assert time.monotonic() - started < 3


def test_the_time_limit_holds_for_a_server_that_drips_its_answer(jupyter):
    jupyter.drip = True  # each byte within the socket timeout, the answer far beyond it
    started = time.monotonic()
    results = probe_all([("vm", jupyter.url, TOKEN)], timeout=1, concurrency=5)
    assert results == {"vm": {"ok": False, "error": "no answer within 1 s"}}
    assert time.monotonic() - started < 3


def test_vms_are_probed_concurrently(jupyter):
    jupyter.stall["/api/status"] = 1
    started = time.monotonic()
    results = probe_all([(n, jupyter.url, TOKEN) for n in range(6)], timeout=5, concurrency=6)
    assert all(result["ok"] for result in results.values()) and len(results) == 6
    assert time.monotonic() - started < 4  # not six seconds one after the other


# --- the module, through ansible-playbook ---------------------------------------------------

OWNERS = {"ssc-r2d-idle": "101", "ssc-r2d-busy": "102", "ssc-r2d-silent": "103",
          "ssc-r2d-new": "105"}


def vm(name: str, url: str, **metadata) -> dict:
    """A user VM marked with its owner's account id; one named by login as VMs were before
    (marked with the login only) when OWNERS does not give it an id."""
    host, _, port = url.removeprefix("http://").partition(":")
    login = name.removeprefix("ssc-r2d-")
    owner = ({"ssc_r2d_owner_id": OWNERS[name], "ssc_r2d_owner_login": login.title()}
             if name in OWNERS else {"ssc_r2d_owner": login})
    return {"id": f"id-{name}", "name": name, "status": "ACTIVE",
            "addresses": {"private": [{"addr": host, "OS-EXT-IPS:type": "fixed"}]},
            "metadata": {**owner, "ssc_r2d_nonce": NONCE, "ssc_r2d_port": port,
                         "ssc_r2d_expires": format_time(datetime.now(UTC) + timedelta(hours=9)),
                         **metadata}}


def run_plan(tmp_path: Path, servers: list, **options) -> dict:
    """The module's result, run by the playbook tests/unit/playbooks/cull_plan.yml."""
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"servers": servers, "token_secret": SECRET,
                                 "options": options}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1")
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(PLAYBOOK),
         "-e", f"@{extra}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = json.loads(result.stdout)
    return output["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_the_module_decides_for_every_user_vm_and_says_why(jupyter, tmp_path):
    other = Jupyter()
    threading.Thread(target=other.serve_forever, daemon=True).start()
    other.answers["/api/kernels"] = (200, [{"id": "k", "execution_state": "busy",
                                            "last_activity": ago(hours=8), "connections": 0}])
    silent = Jupyter()  # listens, never answers in time
    silent.stall["/api/status"] = 10
    threading.Thread(target=silent.serve_forever, daemon=True).start()
    try:
        servers = [
            vm("ssc-r2d-idle", jupyter.url),
            vm("ssc-r2d-busy", other.url),
            vm("ssc-r2d-silent", silent.url, ssc_r2d_unreachable="2"),
            vm("ssc-r2d-old", jupyter.url, ssc_r2d_expires=ago(minutes=1)),
            {**vm("ssc-r2d-new", jupyter.url), "status": "BUILD"},
            {"id": "id-x", "name": "not-a-user-vm", "status": "ACTIVE", "metadata": {}},
        ]
        task = run_plan(tmp_path, servers, idle_hours=4, probe_timeout=2)
        idle_since = jupyter.answers["/api/status"][1]["last_activity"]
    finally:
        for server in (other, silent):
            server.shutdown()
            server.server_close()
    assert task.get("failed") is not True, task
    reasons = {d["name"]: (d["decision"], d["reason"]) for d in task["servers"]}
    assert reasons == {
        "ssc-r2d-busy": ("keep", "busy kernel"),
        "ssc-r2d-idle": ("delete", f"idle since {idle_since}"),
        "ssc-r2d-new": ("keep", "the server is BUILD"),
        "ssc-r2d-old": ("delete", reasons["ssc-r2d-old"][1]),
        "ssc-r2d-silent": ("keep", "unreachable 3 times in a row"),
    }
    assert reasons["ssc-r2d-old"][1].startswith("expired at ")
    assert [c["name"] for c in task["culled"]] == ["ssc-r2d-idle", "ssc-r2d-old"]
    # by account id, with the login for people; a VM named by login has only its login
    assert [(c["owner_id"], c["owner"]) for c in task["culled"]] == [("101", "Idle"),
                                                                     ("", "old")]
    assert task["attention"] == ["ssc-r2d-silent"]
    assert any("ssc-r2d-silent" in warning for warning in task.get("warnings", []))
    busy = next(d for d in task["servers"] if d["name"] == "ssc-r2d-busy")
    assert (busy["last_activity"], busy["idle_deadline"]) == (
        task["now"], format_time(datetime.fromisoformat(task["now"]) + timedelta(hours=4)))
    assert {u["name"]: u["metadata"] for u in task["updates"]} == {
        "ssc-r2d-busy": {"ssc_r2d_last_activity": busy["last_activity"],
                         "ssc_r2d_idle_deadline": busy["idle_deadline"]},
        "ssc-r2d-silent": {"ssc_r2d_unreachable": "3"},
    }
    assert task["changed"] is False
    assert SECRET not in json.dumps(task)


def test_the_module_refuses_bad_settings(tmp_path):
    task = run_plan(tmp_path, [], idle_hours=0)
    assert task["failed"] is True and "idle_hours must be more than 0" in task["msg"]
    task = run_plan(tmp_path, [], idle_hours=1, probe_timeout=0)
    assert task["failed"] is True and "probe_timeout" in task["msg"]


# --- documentation --------------------------------------------------------------------------

@pytest.mark.parametrize("module, spec, returned", [
    (cull_plan, cull_plan.ARGUMENT_SPEC, {"now", "servers", "culled", "attention", "updates"}),
    (user_server_expiry, user_server_expiry.UserServerExpiryModule.argument_spec,
     {"name", "expires", "previous_expires", "extensions", "extensions_left"}),
])
def test_documented_options_are_the_argument_spec(module, spec, returned):
    documented = yaml.safe_load(module.DOCUMENTATION)
    assert set(documented["options"]) == set(spec)
    for name, option in spec.items():
        assert documented["options"][name]["type"] == option.get("type", "str"), name
        assert documented["options"][name].get("default") == option.get("default"), name
        assert documented["options"][name].get("required", False) == option.get(
            "required", False), name
    examples = yaml.safe_load(module.EXAMPLES)
    keywords = {"name", "register", "check_mode"}
    modules = {next(key for key in task if key not in keywords) for task in examples}
    assert f"ssc.repo2docker.{module.__name__.rpartition('.')[2]}" in modules
    assert all(name.count(".") == 2 for name in modules)  # FQCN
    assert set(yaml.safe_load(module.RETURN)) == returned
