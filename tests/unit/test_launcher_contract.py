"""The controller↔VM contract (plugins/module_utils/launcher_contract.py) is the one source of
the launcher's paths and unit: the unit repo2docker_image puts into the image waits for and hands
the launcher exactly the files user_server's user-data writes, and starts the unit it names."""

import json
import os
import shlex
import subprocess
import types
from pathlib import Path

import yaml

# importable as Ansible imports it: tests/unit/conftest.py puts var/collections on sys.path
from ansible_collections.ssc.repo2docker.plugins.module_utils import launcher_contract

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(__file__).parent / "playbooks" / "launcher_contract.yml"
LAUNCHER = ROOT / "roles" / "repo2docker_image" / "files" / "repo2docker-launcher"
CONTRACT = launcher_contract.CONTRACT


def _load(name: str, path: Path) -> types.ModuleType:
    """The Python file at path as a module (no bytecode written next to it: the launcher's
    directory is copied into images)."""
    module = types.ModuleType(name)
    module.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)  # noqa: S102
    return module


def _rendered() -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run the playbook; (its run, each task's result on localhost)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1")
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(PLAYBOOK)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    tasks = json.loads(result.stdout)["plays"][0]["tasks"]
    return result, [task["hosts"]["localhost"] for task in tasks]


def _unit_lines(text: str) -> dict[str, str]:
    """KEY=value lines of a systemd unit (comments and sections left out)."""
    return dict(line.split("=", 1) for line in text.splitlines()
                if "=" in line and not line.startswith("#"))


def test_the_contract_is_every_constant_by_its_lowercase_name():
    names = {name: value for name, value in vars(launcher_contract).items()
             if name.isupper() and name not in ("CONTRACT", "CONSOLE_PREFIX")}
    assert {name.lower(): value for name, value in names.items()} == CONTRACT
    assert all(value.startswith("/") for key, value in CONTRACT.items() if key != "launcher_unit")


def test_the_roles_read_the_contract_and_nothing_else():
    result, (shown, unknown) = _rendered()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    msg = shown["msg"]
    assert msg["lookup"] == list(CONTRACT.values())
    assert msg["repo2docker_image"] == CONTRACT
    assert msg["user_vm"] == {key: CONTRACT[key] for key in ("launcher_unit", "launcher_state")}
    assert unknown["failed"] and "launcher_config" in unknown["msg"]


def test_the_image_unit_runs_the_launcher_on_what_user_server_writes():
    """What broke every user VM when an operator moved the launcher's config: the unit waited
    for a file user_server never wrote."""
    user_server = _load("user_server", ROOT / "plugins" / "modules" / "user_server.py")
    cloud_config = yaml.safe_load(user_server.user_data(
        {"repo": "https://github.com/ada/analysis", "commit": "a" * 40, "port": 8888},
        "T" * 32))
    written = [entry["path"] for entry in cloud_config["write_files"]]
    started = {command[-1] for command in cloud_config["runcmd"]}

    result, (shown, _) = _rendered()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    unit = _unit_lines(shown["msg"]["unit"])
    settings, jupyter_env, state = (CONTRACT["launch_settings"], CONTRACT["jupyter_env"],
                                    CONTRACT["launcher_state"])
    assert written == [settings, jupyter_env]
    assert started == {CONTRACT["launcher_unit"]}
    assert unit["ConditionPathExists"] == settings
    assert shlex.split(unit["ExecStart"]) == [CONTRACT["launcher"], "run", settings,
                                              jupyter_env, state]


def test_the_launcher_serves_from_the_paths_it_is_given(tmp_path):
    """`run SETTINGS JUPYTER_ENV STATE` reads and writes those files, none of its own: a bad
    settings file fails before Docker is asked anything, recorded in STATE."""
    settings, jupyter_env = tmp_path / "launch.json", tmp_path / "jupyter.env"
    state = tmp_path / "state" / "state.json"
    settings.write_text(json.dumps({"repo": "https://github.com/ada/analysis",
                                    "commit": "a" * 40, "port": 0}))
    jupyter_env.write_text("JUPYTER_TOKEN=" + "T" * 32 + "\n")
    launcher = _load("repo2docker_launcher", LAUNCHER)

    assert launcher.main(["run", str(settings), str(jupyter_env), str(state)]) == 1
    recorded = json.loads(state.read_text())
    assert recorded["phase"] == "failed"
    assert recorded["reason"] == f"{settings}: port must be a number from 1 to 65535"
    assert launcher.main(["run", str(settings)]) == 2  # the usage: every path is needed
