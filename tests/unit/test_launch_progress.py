"""Launch feedback without a cloud: the launcher's console records (written by
roles/repo2docker_image/files/repo2docker-launcher), their parser
(plugins/module_utils/launch_progress.py), the module's documented arguments, and the bounds
the action plugin puts on a wait. The whole path on the local cloud is in
tests/integration/test_launch_feedback.py."""

import importlib.util
import json
import types
from pathlib import Path

import pytest
import yaml
from ansible_collections.ssc.repo2docker.plugins.module_utils import launcher_contract
from ansible_collections.ssc.repo2docker.plugins.module_utils.launch_progress import (
    failure,
    latest_phase,
    parse_records,
)

from tests.helpers import assert_documented_options

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "roles" / "repo2docker_image" / "files" / "repo2docker-launcher"


def _load(name: str, path: Path) -> types.ModuleType:
    """A Python file as a module, without bytecode next to it (the launcher's directory is
    copied into images)."""
    module = types.ModuleType(name)
    module.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)  # noqa: S102
    return module


def _import(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


launcher = _load("launcher", LAUNCHER)
module = _import("launch_progress_module", ROOT / "plugins" / "modules" / "launch_progress.py")
action = _import("launch_progress_action", ROOT / "plugins" / "action" / "launch_progress.py")


def line(seq, phase, text="", prefix="ssc-r2d: ") -> str:
    return prefix + json.dumps({"seq": seq, "phase": phase, "text": text})


# --- the launcher writes what the parser reads ---------------------------------------------

def test_the_launcher_and_the_controller_use_one_prefix():
    assert launcher.CONSOLE_PREFIX == launcher_contract.CONSOLE_PREFIX


def test_the_launchers_records_parse_back_in_order_without_the_token(tmp_path):
    console = tmp_path / "console"
    writer = launcher.Console(path=str(console), secrets=("s3cret-token",))
    writer.record("fetching", "Fetching https://example.org/a/b")
    writer.record("building", "Step 1/3 : FROM base")
    writer.record("starting", "http://0.0.0.0:8888/?token=s3cret-token")
    noise = "[  OK  ] Started systemd-journald.service\n"
    records = parse_records(noise + console.read_text() + "login: ")
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert [r["phase"] for r in records] == ["fetching", "building", "starting"]
    assert "s3cret-token" not in console.read_text()
    assert records[2]["text"] == "http://0.0.0.0:8888/?token=<token>"


def test_a_failed_build_reports_the_lines_before_repo2dockers_traceback():
    output = ["Step 2/3 : RUN frobnicate", "/bin/sh: 1: frobnicate: not found",
              "", "The command '/bin/sh -c frobnicate' returned a non-zero code: 127",
              "Traceback (most recent call last):", '  File "x.py", line 1', "BuildError"]
    text = launcher.last_error_lines(output)
    assert "frobnicate: not found" in text and "Traceback" not in text
    assert text.splitlines()[-1].endswith("non-zero code: 127")
    assert launcher.last_error_lines(["a", "b"]) == "a\nb"


# --- the parser ----------------------------------------------------------------------------

def test_records_are_found_behind_a_console_prefix_and_sorted():
    output = "\n".join(["[ 12.3] " + line(1, "fetching", "f"), line(3, "ready", "r"),
                        "cloud-init: ok", line(2, "building", "b")])
    records = parse_records(output)
    assert records == [{"seq": 1, "phase": "fetching", "text": "f"},
                       {"seq": 2, "phase": "building", "text": "b"},
                       {"seq": 3, "phase": "ready", "text": "r"}]
    assert latest_phase(records) == "ready"
    assert failure(records) is None


@pytest.mark.parametrize("bad", [
    "ssc-r2d: not json", "ssc-r2d: [1, 2]", line(0, "building"), line(True, "building"),
    line(1, "dancing"), "ssc-r2d: " + json.dumps({"seq": 1, "phase": "ready", "text": 3}),
    line(1, "ready", prefix="other: "),
])
def test_lines_that_are_not_records_are_skipped(bad):
    assert parse_records(bad) == []


def test_nothing_yet_is_an_empty_phase():
    assert parse_records("") == []
    assert latest_phase([]) == ""


def test_a_failed_record_is_the_failure():
    records = parse_records("\n".join([line(1, "fetching"), line(2, "building", "Step 1"),
                                       line(3, "failed", "frobnicate: not found")]))
    assert latest_phase(records) == "failed"
    assert failure(records) == "frobnicate: not found"


def test_after_a_reboot_only_the_launchers_latest_run_counts():
    output = "\n".join([line(1, "fetching"), line(2, "failed", "old"), "reboot",
                        line(1, "fetching", "again"), line(2, "building", "now")])
    records = parse_records(output)
    assert [(r["seq"], r["text"]) for r in records] == [(1, "again"), (2, "now")]
    assert failure(records) is None


def test_a_log_cut_at_its_start_keeps_what_is_left():
    records = parse_records("\n".join([line(41, "building", "x"), line(42, "ready")]))
    assert [r["seq"] for r in records] == [41, 42]


def test_a_repeated_number_keeps_its_first_record():
    records = parse_records("\n".join([line(1, "fetching", "a"), line(2, "building", "b"),
                                       line(2, "building", "c")]))
    assert [r["text"] for r in records] == ["a", "b"]


# --- the module's arguments ----------------------------------------------------------------

def test_documented_options_are_the_argument_spec():
    assert_documented_options(module.DOCUMENTATION, module.LaunchProgressModule.argument_spec)
    (example,) = yaml.safe_load(module.EXAMPLES)
    assert "ssc.repo2docker.launch_progress" in example
    assert set(yaml.safe_load(module.RETURN)) == {"records", "phase", "server_status"}


def test_the_module_reads_only():
    assert module.LaunchProgressModule.module_kwargs == {"supports_check_mode": True}


# --- the action plugin's bounds ------------------------------------------------------------

BOUNDS = {"ready_timeout": 60, "build_idle_timeout": 30, "build_timeout": 300}


def waiting(started: float = 0.0):
    """The action plugin's state of a wait that began at `started`."""
    return action.Wait(started)


def progress(*records) -> dict:
    records = [{"seq": i + 1, "phase": phase, "text": ""} for i, phase in enumerate(records)]
    return {"records": records, "phase": latest_phase(records)}


def test_a_vm_that_never_reports_ends_at_the_ready_timeout():
    plugin = waiting()
    assert plugin.over(progress(), BOUNDS, 59) is None
    assert "did not start within 60 seconds" in plugin.over(progress(), BOUNDS, 61)


def test_a_build_that_keeps_progressing_outlives_the_ready_timeout():
    plugin = waiting()
    phases = ["fetching", "building"]
    for now in range(10, 290, 10):
        phases.append("building")
        assert plugin.over(progress(*phases), BOUNDS, now) is None
    message = plugin.over(progress(*phases, "building"), BOUNDS, 320)
    assert "longer than 5 minutes" in message


def test_a_build_that_goes_quiet_is_stopped_at_the_idle_timeout():
    plugin = waiting()
    assert plugin.over(progress("fetching", "building"), BOUNDS, 5) is None
    assert plugin.over(progress("fetching", "building"), BOUNDS, 30) is None
    assert "no progress for 30 seconds" in plugin.over(progress("fetching", "building"),
                                                          BOUNDS, 36)


def test_after_a_build_jupyter_gets_the_ready_timeout_again():
    plugin = waiting()
    assert plugin.over(progress("fetching", "building"), BOUNDS, 50) is None
    assert plugin.over(progress("fetching", "building", "building"), BOUNDS, 100) is None
    assert plugin.over(progress("fetching", "building", "building", "starting"), BOUNDS,
                        110) is None
    assert plugin.over(progress("fetching", "building", "building", "starting"), BOUNDS,
                        165) is None
    assert "did not start" in plugin.over(
        progress("fetching", "building", "building", "starting"), BOUNDS, 171)


def test_ready_ends_the_wait_whatever_the_time():
    assert waiting().over(progress("fetching", "starting", "ready"), BOUNDS, 10**6) is None
