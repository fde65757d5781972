"""Helpers for tests that use the local cloud: clients, SSH, keys, Docker labels."""

import json
import os
import runpy
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import openstack
import openstack.config
import openstack.connection
import requests
import yaml

from localcloud import github

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
VAR = ROOT / "var" / "localcloud"
RECORD = ROOT / "var" / "test-record.jsonl"
# The paths and the unit a user VM's launcher and the controller agree on, by their lowercase
# names (launcher, launcher_unit, launch_settings, jupyter_env, launcher_state), read from the
# one file that holds them.
LAUNCHER_CONTRACT = runpy.run_path(
    str(ROOT / "plugins" / "module_utils" / "launcher_contract.py"))["CONTRACT"]
# How ssc.repo2docker.user_server marks a boot volume it made before its server
# (boot_volume_metadata, BOOT_VOLUME_OF) and the statuses Cinder deletes (DELETABLE).
BOOT_VOLUME = runpy.run_path(str(ROOT / "plugins" / "module_utils" / "boot_volume.py"))


@dataclass
class LocalCloud:
    clouds_yaml: Path
    var_dir: Path
    record: Path
    # server containers already on the Docker engine when the session's cloud started: ones a
    # killed run left that the engine cannot stop (`localcloud down` warns of them)
    foreign_containers: frozenset[str] = frozenset()

    def server_containers(self) -> list[str]:
        """Names of the server containers on the Docker engine that this cloud made."""
        return sorted(set(labelled("container", "io.localcloud.server"))
                      - self.foreign_containers)

    @property
    def env(self) -> dict:
        env = dict(os.environ)
        env.update(OS_CLIENT_CONFIG_FILE=str(self.clouds_yaml), OS_CLOUD="localcloud",
                   PATH=f"{BIN}:{env.get('PATH', '')}", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
        return env

    _connections: dict = field(default_factory=dict, repr=False, compare=False)

    def connect(self, cloud: str = "localcloud") -> openstack.connection.Connection:
        """The session's openstacksdk connection to `cloud` (one per cloud name, made on first
        use and kept: one HTTP session and one token, not one per call)."""
        if cloud not in self._connections:
            config = openstack.config.OpenStackConfig(config_files=[str(self.clouds_yaml)])
            self._connections[cloud] = openstack.connection.Connection(
                config=config.get_one(cloud=cloud))
        return self._connections[cloud]

    def cli(self, *args: str, cloud: str = "localcloud", check: bool = True,
            parse: bool = True):
        """Run the real `openstack` CLI; JSON output parsed."""
        command = [str(BIN / "openstack"), "--os-cloud", cloud, *args]
        if parse:
            command += ["-f", "json"]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True,
                                timeout=600, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{result.stderr}")
        if not check:
            return result
        if not (parse and result.stdout.strip()):
            return result.stdout
        # Under the full suite the CLI has once put a stray byte before its JSON; the JSON
        # document is what the tests check.
        start = min(i for i in (result.stdout.find("{"), result.stdout.find("[")) if i >= 0)
        return json.loads(result.stdout[start:])

    def request_counts(self, token: str) -> dict[str, int]:
        """Requests each service of the local cloud has had (its control API's count)."""
        return requests.get("http://127.0.0.1:8770/localcloud/requests", timeout=60,
                            headers={"X-Auth-Token": token}).json()["requests"]

    def localcloud(self, *args: str) -> str:
        return subprocess.run([str(BIN / "localcloud"), *args], check=True, text=True,
                              capture_output=True, timeout=900, cwd=ROOT).stdout




def ssh(address: str, key: Path, command: str, check: bool = True, timeout: int = 600) -> str:
    """Run a command on a server as its default user, with the keypair's private key."""
    result = subprocess.run(
        ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o",
         "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
         "-o", "ConnectTimeout=10", f"debian@{address}", command],
        capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"ssh {address} {command!r} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result.stdout


def new_key(directory: Path, name: str = "id_ed25519") -> Path:
    key = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def labelled(kind: str, label: str) -> list[str]:
    """Names of Docker containers or volumes carrying a label."""
    command = ["docker", "ps", "-a"] if kind == "container" else ["docker", "volume", "ls"]
    fmt = "{{.Names}}" if kind == "container" else "{{.Name}}"
    output = subprocess.run([*command, "--filter", f"label={label}", "--format", fmt],
                            check=True, capture_output=True, text=True).stdout
    return output.split()


Form = github.AuthorizePage  # the authorize page's form


def sign_in(authorization_url: str, login: str = "alice", orgs: str = "", **fields) -> str:
    """Open the stand-in's authorize page, fill it in, submit it: the Location it sends us
    to."""
    return github.approve(authorization_url, login, orgs, **fields)


def process_tree(marker: str) -> set[str]:
    """Pids (from ps) of the live processes (zombies act no more) with `marker` in their
    command line, and of all their descendants."""
    table = [(pid, ppid, args) for pid, ppid, state, args in (
        line.split(None, 3) for line in subprocess.run(
            ["ps", "-ww", "-eo", "pid=,ppid=,state=,args="], capture_output=True, text=True,
            check=True).stdout.splitlines()) if state != "Z"]
    found = {pid for pid, _, args in table if marker in args}
    while True:
        more = {pid for pid, ppid, _ in table if ppid in found} - found
        if not more:
            return found
        found |= more


def run_module(env: dict, module: str, args: dict, timeout: float = 1800,
               check: bool = False) -> dict:
    """One run of a module of the collection, as `ansible localhost -m module -a args` with
    the project's venv as the interpreter (with --check when `check`): the task's result
    (ansible.posix.json's)."""
    result = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={BIN / 'python'}", "-m", module,
         "-a", json.dumps(args), *(["--check"] if check else [])],
        env={**env, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
             "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    try:
        output = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(result.stdout[-4000:] + result.stderr[-4000:]) from None
    return output["plays"][0]["tasks"][0]["hosts"]["localhost"]


# os-getConsoleOutput's `length` as real Nova (Zed) takes it, checked against realcloud
# (tests/realcloud/test_console_output.py) and held by the local cloud
# (tests/localcloud/test_servers.py): accepted values and what each gives, then refused ones.
CONSOLE_LENGTHS_ACCEPTED = [None, 0, 1, 2, -1, "2", "0", "-1", 10**6, "1000000"]
# (2.0 is left out: Zed refuses it, Nova 34's schema, which the contract check applies, takes
# it as an integer; the two releases disagree, so the suite does not ask.)
CONSOLE_LENGTHS_REFUSED = [-2, "-2", "abc", " 2", 1.5, True, [2]]


def nova_console_tail(output: str, length: int | str | None) -> str:
    """What Nova answers for `length` given the whole console output (length null):
    nova.compute.manager's _tail_log, `lines[-int(length):]` after splitting on newlines,
    so 0 gives nothing and a negative n drops the first -n lines (-1: all but the first)."""
    if length is None:
        return output
    lines = int(length)
    return "" if lines == 0 else "\n".join(output.split("\n")[-lines:])


def console_answers(conn, server_id: str) -> dict:
    """For each length in CONSOLE_LENGTHS_ACCEPTED and CONSOLE_LENGTHS_REFUSED (and with no
    length): (status code, whether the output is nova_console_tail's of the whole output, or
    the error message). A console still being written to is read again, up to 5 times."""
    def ask(argument: dict):
        response = conn.compute.post(f"/servers/{server_id}/action",
                                     json={"os-getConsoleOutput": argument})
        return response.status_code, response.json()

    answers = {}
    cases = [("omitted", {})] + [(repr(length), {"length": length}) for length in
                                 CONSOLE_LENGTHS_ACCEPTED + CONSOLE_LENGTHS_REFUSED]
    for name, argument in cases:
        for _ in range(5):
            before = ask({})[1]["output"]
            status, body = ask(argument)
            if ask({})[1]["output"] == before:
                break
        if status == 200:
            answers[name] = (status, body["output"] == nova_console_tail(
                before, argument.get("length")))
        else:
            answers[name] = (status, next(iter(body.values()))["message"])
    return answers


def assert_console_answers_as_novas(conn, server_id: str) -> None:
    """The server's os-getConsoleOutput answers every length as real Nova does: the right
    tail for each accepted one, Nova's 400 for the others and for an unknown key."""
    answers = console_answers(conn, server_id)
    accepted = ["omitted", *map(repr, CONSOLE_LENGTHS_ACCEPTED)]
    assert {name: answers[name] for name in accepted} == {name: (200, True)
                                                          for name in accepted}
    refused = {name: answers[name] for name in map(repr, CONSOLE_LENGTHS_REFUSED)}
    assert {status for status, _ in refused.values()} == {400}, refused
    assert refused["-2"][1] == refused["'-2'"][1] == (
        "Invalid input for field/attribute length. Value: -2. -2 is less than the minimum of -1")
    assert refused["'abc'"][1] == ("Invalid input for field/attribute length. Value: abc. "
                                   "'abc' does not match '^-?[0-9]+$'")
    extra = conn.compute.post(f"/servers/{server_id}/action",
                              json={"os-getConsoleOutput": {"lines": 2}})
    assert extra.status_code == 400


def wait_for(check, timeout: float = 300, interval: float = 1.0):
    """`check()`'s first truthy value, asked every `interval` seconds; AssertionError after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"gave up waiting after {timeout} s")


def assert_documented_options(documentation: str, argument_spec: dict) -> dict:
    """A module's DOCUMENTATION options are its argument_spec (names, types, defaults,
    required) and it extends openstack.cloud's fragment; the parsed DOCUMENTATION."""
    documented = yaml.safe_load(documentation)
    assert documented["extends_documentation_fragment"] == ["openstack.cloud.openstack"]
    assert set(documented["options"]) == set(argument_spec)
    for name, option in argument_spec.items():
        assert documented["options"][name]["type"] == option["type"]
        assert documented["options"][name].get("default") == option.get("default")
        assert documented["options"][name].get("required", False) == option.get(
            "required", False)
    return documented
