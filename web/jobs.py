"""The job runner: claims queued jobs from SQLite, runs playbooks/user_vm.yml with ansible-runner.

The web processes only write jobs (state ``queued``) and read them; this one worker process
claims them in order, at most ``max_running`` at a time and one at a time per user, runs each
in a thread, and writes progress, the outcome and the user's VM back to SQLite. Every few
seconds it writes the heartbeat ``("runner", now)`` that ``/healthz`` reads.

How a job runs (the AWX way of running ansible-runner inside a service):

- its own private data dir (``tempfile.mkdtemp``, mode 0700), deleted afterwards: nothing of
  a run (events, output, the command's environment) stays on disk;
- ``ident`` = the job id, timeouts in ``settings``, ``suppress_env_files``;
- the extra vars ``user``, ``repo``, ``ref``, ``state`` are checked again with the rules the
  playbook uses (``launch_request.check``) and written to ``env/extravars`` as ``!unsafe``
  strings, never passed as ``extravars=`` (ansible-runner would add them as trusted ``-e``
  JSON, and ansible-core 2.19 would render a ``{{ lookup('pipe', ...) }}`` in them);
- the environment is built, not inherited: the names in ``env_passthrough`` from this
  process's environment, ``envvars``, ``ANSIBLE_CONFIG`` and ``PATH`` (this venv's bin first),
  and what ansible-runner itself sets; nothing else of this process (the web app's OAuth
  secret, say) reaches the playbook;
- a :class:`JobRun` gathers what the events say: the phase, the failed task's ``msg`` (never
  ``res.invocation``, never a ``no_log`` result), a bounded tail of readable output without
  secrets, and the ``set_stats`` data (``artifact_data`` of the ``playbook_on_stats`` event:
  ``ssc_vm`` with the URL and its token).

The configuration is any object with these attributes (web/config.py provides it; missing
ones take the default):

================== =============================================================================
``database``        path of the SQLite database (required by :func:`main`)
``repo_root``       the checkout: project dir, ``ansible.cfg``, the playbook (default: this file's
                    checkout)
``playbook``        playbook to run (default ``<playbook_dir>/user_vm.yml``, ``playbook_dir``
                    defaulting to ``<repo_root>/playbooks``); relative paths are below repo_root
``inventory``       inventory dir (default ``<repo_root>/inventory/localcloud``)
``cloud``           cloud name in clouds.yaml, to read a VM's state after a restart (default
                    ``$OS_CLOUD``; none: VMs stay ``unknown`` until the next job)
``max_running``     jobs running at once, all users (default 4; or ``max_concurrent_jobs``)
``job_timeout``     seconds a job may run (default 3600)
``idle_timeout``    seconds a job may go without output (default 1800; the playbook's cloud
                    waits print nothing for up to user_vm_cloud_timeout, 900 s)
``grace_period``    seconds running jobs get to finish after SIGTERM before they are cancelled
                    (default 30)
``private_data_root`` where private data dirs are made (default: the system's temp dir)
``envvars``         dict of extra environment variables for the playbook (e.g.
                    ``OS_CLIENT_CONFIG_FILE``; or ``job_env``)
``token_secret``    SSC_TOKEN_SECRET for the playbook, unless ``pass_token_secret`` is false
                    (then SSC_TOKEN_SECRET is not passed at all)
``env_passthrough`` names (``PREFIX_*`` allowed) taken from this process's environment
                    (default :data:`ENV_PASSTHROUGH`)
``allowed_hosts``   repository hosts, as the inventory's user_vm_allowed_hosts (default
                    github.com, gitlab.com, codeberg.org)
``allow_http_hosts`` of those, hosts over plain http (default none)
``output_lines``    lines of output kept per job (default 200)
``poll_interval``   seconds between looks for queued jobs (default 1)
``heartbeat_interval`` seconds between heartbeats (default 5)
``vm_refresh_interval`` seconds between readings of the users' VMs from the cloud, for VMs
                    culled or deleted behind the app (default 300; 0: never)
================== =============================================================================
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import fnmatch
import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from web import db

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]

# What a playbook run may see of this process's environment: locale, home, proxies, CA
# bundles, the cloud's settings (OS_*) and the site's token secret.
ENV_PASSTHROUGH = (
    "HOME", "USER", "LOGNAME", "LANG", "LC_*", "TZ", "TMPDIR",
    "OS_*", "SSC_TOKEN_SECRET",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
)

DEFAULTS = {
    "max_running": 4,
    "job_timeout": 3600,
    "idle_timeout": 1800,
    "grace_period": 30,
    "private_data_root": None,
    "envvars": None,
    "env_passthrough": ENV_PASSTHROUGH,
    "allowed_hosts": None,
    "allow_http_hosts": (),
    "output_lines": 200,
    "poll_interval": 1.0,
    "heartbeat_interval": 5.0,
    "cloud": None,
    "vm_refresh_interval": 300,
}

JOB_COLUMNS = ("id", "github_id", "login", "action", "repo", "ref", "state", "phase",
               "message", "created", "started", "finished")

# Phases in the order a job goes through them; a job's phase only moves forward.
START_PHASES = ("queued", "creating", "booting", "building", "starting", "ready")
DELETE_PHASES = ("queued", "deleting", "deleted")

# (task name in roles/user_vm/tasks, event) -> phase. "start": the task begins
# (playbook_on_task_start); "ok": it succeeded (runner_on_ok). "ready" comes from the
# set_stats data at the end, and "failed" from the outcome.
TASK_PHASES = {
    ("Look for the user's VM", "start"): "creating",
    ("Create the VM, or find it", "start"): "creating",
    ("Create the VM, or find it", "ok"): "booting",
    # "building" instead when the image does not hold the repository pre-built (CACHE_TASK)
    ("Wait for Jupyter to answer with the token", "start"): "starting",
    ("Delete the VM with its volumes and floating IP", "start"): "deleting",
    ("Delete the VM with its volumes and floating IP", "ok"): "deleted",
}

# Its result tells (ansible_facts.__user_vm_cache_hit) whether the VM builds the repository.
CACHE_TASK = "Tell whether the image holds the repository pre-built"

# A line of output that may carry a secret is dropped whole (the Jupyter URL has ?token=).
SECRET_LINE = re.compile(r"(?i)token\s*[=:]|authorization|password\s*[=:]|secret\s*[=:]")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Names of environment variables whose values are secrets to keep out of output and messages.
SECRET_NAME = re.compile(r"(?i)secret|password|token|credential|key")
MAX_LINE = 500
MAX_MESSAGE = 2000
SAFE_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


# Other names web/config.py's Config uses for the same settings.
ALIASES = {"max_running": "max_concurrent_jobs", "envvars": "job_env"}


def setting(config, name: str):
    """`config.name` (or its alias), or its default."""
    value = getattr(config, name, None)
    if value is None and name in ALIASES:
        value = getattr(config, ALIASES[name], None)
    if value is None and name in DEFAULTS:
        return DEFAULTS[name]
    return value


def repo_root(config) -> Path:
    return Path(setting(config, "repo_root") or REPO_ROOT).resolve()


def _path(config, value) -> Path:
    """`value` as an absolute path (relative ones are below the checkout)."""
    return (repo_root(config) / value).resolve()


def playbook_path(config) -> Path:
    if setting(config, "playbook"):
        return _path(config, setting(config, "playbook"))
    return _path(config, setting(config, "playbook_dir") or "playbooks") / "user_vm.yml"


def inventory_path(config) -> Path:
    return _path(config, setting(config, "inventory") or "inventory/localcloud")


now = db.now


# --- the queue ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Job:
    """One row of ``jobs``."""

    id: str
    github_id: int
    login: str
    action: str
    repo: str | None
    ref: str | None
    state: str
    phase: str | None
    message: str | None
    created: str | None
    started: str | None
    finished: str | None

    @classmethod
    def from_row(cls, row) -> Job:
        return cls(*(row[i] for i in range(len(JOB_COLUMNS))))


def get_job(conn: sqlite3.Connection, job_id: str) -> Job | None:
    row = conn.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE id = ?",  # noqa: S608
                       (job_id,)).fetchone()
    return Job.from_row(row) if row else None


def claim_next(conn: sqlite3.Connection, max_running: int) -> Job | None:
    """Take the oldest queued job whose user has no running job, if fewer than `max_running`
    jobs run; mark it running (``started`` = now) and return it. One write transaction
    (``BEGIN IMMEDIATE``), so two claimers never take the same job. `conn` must not be inside
    a transaction."""
    with db.transaction(conn):
        (running,) = conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'running'").fetchone()
        if running >= max_running:
            return None
        # The database allows one queued or running job per user (web/db.py); the runner
        # does not rely on it.
        row = conn.execute(
            f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs AS j "  # noqa: S608
            "WHERE j.state = 'queued' AND NOT EXISTS (SELECT 1 FROM jobs AS r "
            "WHERE r.state = 'running' AND r.github_id = j.github_id) "
            "ORDER BY j.rowid LIMIT 1").fetchone()
        if row is None:
            return None
        job = Job.from_row(row)
        started = now()
        phase = "deleting" if job.action == "delete" else "creating"
        conn.execute("UPDATE jobs SET state = 'running', phase = ?, started = ?, message = '' "
                     "WHERE id = ? AND state = 'queued'", (phase, started, job.id))
    return dataclasses.replace(job, state="running", phase=phase, started=started, message="")


def heartbeat(conn: sqlite3.Connection, name: str = db.RUNNER) -> None:
    """Say that the runner is alive (``/healthz`` reads it)."""
    db.beat(conn, name)


# --- the extra vars -------------------------------------------------------------------------


class _Unsafe(str):
    """A string written with the tag ``!unsafe``: Ansible never renders it as a template."""


class _ExtravarsDumper(yaml.SafeDumper):
    pass


def _represent_unsafe(dumper: yaml.SafeDumper, value: _Unsafe) -> yaml.ScalarNode:
    # Ansible reads an empty `!unsafe ""` as None: an empty string, which holds no template,
    # is written untagged.
    return dumper.represent_scalar("!unsafe" if value else "tag:yaml.org,2002:str", str(value),
                                   style='"')


_ExtravarsDumper.add_representer(_Unsafe, _represent_unsafe)


def unsafe_extravars(values: dict[str, str]) -> str:
    """YAML mapping every name of `values` to its string tagged ``!unsafe``, double-quoted
    (every control or non-ASCII character escaped, one line per value); ``""`` untagged."""
    for name, value in values.items():
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"extra var name {name!r} is not a plain identifier")
        if not isinstance(value, str):
            raise TypeError(f"extra var {name} must be a string")
    return yaml.dump({name: _Unsafe(value) for name, value in values.items()},
                     Dumper=_ExtravarsDumper, default_flow_style=False, allow_unicode=False,
                     width=float("inf"), sort_keys=False)


def write_extravars(private_data_dir: str | os.PathLike, values: dict[str, str]) -> Path:
    """Write `values` to ``<private_data_dir>/env/extravars`` (0600) as ``!unsafe`` strings."""
    env_dir = Path(private_data_dir) / "env"
    env_dir.mkdir(mode=0o700, exist_ok=True)
    path = env_dir / "extravars"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(unsafe_extravars(values))
    return path


def _launch_request():
    """The shared check of user input, as the collection ``ssc.repo2docker`` ships it."""
    try:
        from ansible_collections.ssc.repo2docker.plugins.module_utils import launch_request
    except ImportError:
        sys.path.append(str(REPO_ROOT / "var" / "collections"))
        from ansible_collections.ssc.repo2docker.plugins.module_utils import launch_request
    return launch_request


def job_extravars(job: Job, config) -> dict[str, str]:
    """The extra vars of `job`, checked again here (the app checked them too: defence in
    depth). Raises ``LaunchRequestError`` (a ValueError) with a message for the user."""
    rules = _launch_request()
    if job.action == "delete":
        return {"user": rules.check_user(job.login), "state": "absent"}
    if job.action != "start":
        raise ValueError(f"unknown action {job.action!r}")
    allowed = setting(config, "allowed_hosts") or rules.DEFAULT_ALLOWED_HOSTS
    request = rules.check(job.login, job.repo, job.ref or None, allowed_hosts=allowed,
                          allow_http_hosts=setting(config, "allow_http_hosts") or ())
    return {"user": request["user"], "repo": request["repo"], "ref": request["ref"] or "",
            "state": "present"}


# --- one run --------------------------------------------------------------------------------


class JobRun:
    """What one playbook run is and says: its status, its cancelled flag, and what the events
    told. ``event_handler``, ``cancel_callback`` and ``status_handler`` are ansible-runner's
    callbacks; the event handler only looks at a few fields and keeps no event.

    ``on_progress(run)``, if given, is called from ``cancel_callback`` (the job's own thread,
    about once a second) when the phase or the output changed, to write them to the database.
    """

    def __init__(self, job_id: str, action: str = "start", secrets: Iterable[str] = (),
                 output_lines: int = 200, on_progress: Callable[[JobRun], None] | None = None):
        self.job_id = job_id
        self.action = action
        self.phases = DELETE_PHASES if action == "delete" else START_PHASES
        self.phase = "queued"
        self.status = "unstarted"
        self.cancelled = False
        self.failed_task: str | None = None
        self.failed_msg: str | None = None
        self.error_line: str | None = None
        self.stats: dict = {}
        self.builds = False  # the VM builds the repository first (a cache miss)
        self.secrets = {s for s in secrets if s and len(s) >= 8}
        self._lines: collections.deque[str] = collections.deque(maxlen=output_lines)
        self.on_progress = on_progress
        self._changed = False
        self._last_progress = 0.0

    # ansible-runner's callbacks

    def event_handler(self, event: dict) -> bool:
        """Gather what matters of one event. Returns False: ansible-runner then writes no
        event file (they hold results) into the private data dir."""
        kind = event.get("event")
        data = event.get("event_data") or {}
        stdout = event.get("stdout")
        if stdout and _hidden(data.get("res")):
            # ansible-core 2.19 prints a failed no_log task's message (as "[ERROR]: Task
            # failed: ...") though its result is censored: show only that it ran.
            outcome = kind.removeprefix("runner_").replace("item_", "").removeprefix("on_")
            stdout = f"{outcome}: [{data.get('host', '')}] (output hidden: no_log)"
        if stdout:
            for line in ANSI.sub("", stdout).splitlines():
                line = line.rstrip()
                if line and self._shown(line):
                    self._lines.append(line[:MAX_LINE])
                    if kind == "verbose" and "ERROR" in line[:12]:
                        self.error_line = line
            self._changed = True
        if kind == "playbook_on_task_start":
            phase = TASK_PHASES.get((data.get("task"), "start"))
            self._advance("building" if phase == "starting" and self.builds else phase)
        elif kind == "runner_on_ok":
            self._advance(TASK_PHASES.get((data.get("task"), "ok")))
            if data.get("task") == CACHE_TASK:
                facts = (data.get("res") or {}).get("ansible_facts") or {}
                self.builds = _boolean(facts.get("__user_vm_cache_hit")) is False
        elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get(
                "ignore_errors"):
            self.failed_task = data.get("task")
            self.failed_msg = _result_message(data.get("res"))
        elif kind == "playbook_on_stats":
            artifact = data.get("artifact_data")
            if isinstance(artifact, dict):
                self.stats = artifact
                vm = artifact.get("ssc_vm")
                if isinstance(vm, dict):
                    self.secrets.update(_url_secrets(vm.get("url")))
        return False

    def cancel_callback(self) -> bool:
        if self.on_progress and self._changed and time.monotonic() - self._last_progress >= 1:
            self._changed = False
            self._last_progress = time.monotonic()
            try:
                self.on_progress(self)
            except sqlite3.Error:
                log.exception("job %s: could not write its progress", self.job_id)
        return self.cancelled

    def status_handler(self, data: dict, runner_config=None) -> None:
        self.status = data.get("status", self.status)

    # what it gathered

    def _advance(self, phase: str | None) -> None:
        if phase in self.phases and self.phases.index(phase) > self.phases.index(self.phase):
            self.phase = phase
            self._changed = True

    @property
    def vm(self) -> dict | None:
        vm = self.stats.get("ssc_vm")
        return vm if isinstance(vm, dict) else None

    def _shown(self, line: str) -> bool:
        """Whether `line` may be shown: it carries no secret known now, and nothing that
        looks like one."""
        return not SECRET_LINE.search(line) and not any(s in line for s in self.secrets)

    def output(self) -> str:
        """The tail of the output, without a line that carries (or may carry) a secret
        (checked again: secrets such as the URL are learnt at the end)."""
        return "\n".join(line for line in self._lines if self._shown(line))

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "********")
        text = re.sub(r"(?i)(token=)[^\s&\"'#]+", r"\1********", text)
        return re.sub(r"(?i)(token\s+)[0-9a-z]{24,}", r"\1********", text)

    def failure(self) -> str:
        """Why the run failed, for the user."""
        if self.status == "timeout":
            return "The job took too long and was stopped."
        if self.failed_msg:
            where = f"{self.failed_task}: " if self.failed_task else ""
            return self.scrub(where + self.failed_msg)[:MAX_MESSAGE]
        if self.failed_task:
            return f"{self.failed_task}: failed (its output is hidden)"
        if self.error_line:
            return self.scrub(self.error_line)[:MAX_MESSAGE]
        return f"The playbook failed ({self.status})."


def _hidden(res) -> bool:
    """Whether `res` is a ``no_log`` task's (censored) result."""
    return isinstance(res, dict) and bool(res.get("_ansible_no_log") or "censored" in res)


def _result_message(res) -> str | None:
    """The ``msg`` of a failed task's result; nothing from a ``no_log`` result (censored),
    never ``invocation`` (the module's arguments)."""
    if not isinstance(res, dict) or _hidden(res):
        return None
    msg = res.get("msg")
    if msg and isinstance(res.get("results"), list) and "items failed" in str(msg):
        items = [_result_message(item) for item in res["results"]
                 if isinstance(item, dict) and item.get("failed")]
        msg = "; ".join(item for item in items if item) or msg
    if msg is None:
        return None
    if not isinstance(msg, str):
        msg = json.dumps(msg, default=str)
    return re.sub(r"\n\s*\n+", "\n", msg.strip())


def _url_secrets(url) -> set[str]:
    """The URL and the token in it."""
    if not isinstance(url, str) or not url:
        return set()
    found = {url}
    found.update(re.findall(r"token=([^&#\s]+)", url))
    return found


def job_environment(config, venv_bin: str | None = None) -> dict[str, str]:
    """The environment variables a playbook run gets (ansible-runner adds its own)."""
    patterns = setting(config, "env_passthrough")
    pass_secret = getattr(config, "pass_token_secret", True)
    env = {name: value for name, value in os.environ.items()
           if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
           and (pass_secret or name != "SSC_TOKEN_SECRET")}
    if pass_secret and getattr(config, "token_secret", ""):
        env["SSC_TOKEN_SECRET"] = config.token_secret
    env.update({str(k): str(v) for k, v in (setting(config, "envvars") or {}).items()})
    env.setdefault("ANSIBLE_CONFIG", str(repo_root(config) / "ansible.cfg"))
    env["ANSIBLE_NOCOLOR"] = "1"
    venv_bin = venv_bin or str(Path(sys.prefix) / "bin")
    path = env.get("PATH") or os.environ.get("PATH") or os.defpath
    env["PATH"] = os.pathsep.join([venv_bin, *(p for p in path.split(os.pathsep)
                                               if p and p != venv_bin)])
    return env


def secret_values(env: dict[str, str]) -> set[str]:
    """Values of variables whose names say they are secrets."""
    return {value for name, value in env.items() if SECRET_NAME.search(name) and value}


# --- the processes of a run -----------------------------------------------------------------
# ansible-runner ends a cancelled or timed-out run with SIGKILL to ansible-playbook's process
# group, but ansible-core's workers each call setsid(): they, and the modules they run, would
# go on acting on the cloud. A run's processes are found instead by what they all share, the
# private data dir in ansible-playbook's command line, and by descent from those.

JOB_DIR_PREFIX = "ssc-r2d-job-"


def processes() -> dict[int, tuple[int, bytes]]:
    """Every live process of this machine (not the zombies, which act no more): pid ->
    (parent pid, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # it ended meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        state, parent = stat[stat.rindex(b")") + 2:].split()[:2]
        if state not in (b"Z", b"X"):
            found[int(entry.name)] = (int(parent), cmdline)
    return found


def processes_of(private_data_dir: str | os.PathLike) -> set[int]:
    """The processes of the run in `private_data_dir`: those with it in their command line
    (``-e @<dir>/env/extravars``), and their descendants."""
    marker = os.fsencode(os.path.abspath(private_data_dir))
    table = processes()
    found = with_descendants({pid for pid, (_, cmdline) in table.items()
                              if any(arg.endswith(marker) or marker + b"/" in arg
                                     for arg in cmdline.split(b"\0"))}, table)
    found.discard(os.getpid())
    return found


def with_descendants(pids: set[int], table: dict[int, tuple[int, bytes]] | None = None
                     ) -> set[int]:
    """`pids` and all their descendants (in `table`, default :func:`processes`)."""
    table = processes() if table is None else table
    found = set(pids)
    while True:
        more = {pid for pid, (parent, _) in table.items() if parent in found} - found
        if not more:
            return found
        found |= more


def end_processes_of(private_data_dir: str | os.PathLike, attempts: int = 50) -> set[int]:
    """SIGKILL every process of the run in `private_data_dir` until none is left (a process
    may fork while it is looked for). Returns the pids killed."""
    killed: set[int] = set()
    for _ in range(attempts):
        pids = processes_of(private_data_dir)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed |= pids
        time.sleep(0.1)
    return killed


def clean_leftover_runs(config) -> list[str]:
    """End the processes of runs a previous worker left behind (it was killed, not stopped),
    and delete their private data dirs. Only below a configured ``private_data_root``: the
    system's temp dir may hold other workers' runs. Returns the dirs cleaned."""
    root = setting(config, "private_data_root")
    if not root or not _path(config, root).is_dir():
        return []
    cleaned = []
    for leftover in sorted(_path(config, root).glob(JOB_DIR_PREFIX + "*")):
        killed = end_processes_of(leftover)
        if killed:
            log.warning("%s: ended %d process(es) of an earlier run", leftover.name, len(killed))
        shutil.rmtree(leftover, ignore_errors=True)
        cleaned.append(str(leftover))
    return cleaned


def run_playbook(config, job_id: str, extravars: dict[str, str], run: JobRun) -> JobRun:
    """Run the configured playbook with `extravars` (taken as already checked: this layer
    only makes sure they stay data) and return `run`, filled by the events. The private data
    dir is made fresh and deleted after."""
    import ansible_runner

    parent = setting(config, "private_data_root")
    if parent:
        parent = _path(config, parent)
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_data_dir = tempfile.mkdtemp(prefix=JOB_DIR_PREFIX, dir=parent)
    try:
        os.chmod(private_data_dir, 0o700)
        write_extravars(private_data_dir, extravars)
        env = job_environment(config)
        run.secrets.update(s for s in secret_values(env) if len(s) >= 8)
        runner_config = ansible_runner.RunnerConfig(
            private_data_dir=private_data_dir,
            project_dir=str(repo_root(config)),
            playbook=str(playbook_path(config)),
            inventory=str(inventory_path(config)),
            ident=job_id if SAFE_IDENT.fullmatch(job_id) else uuid.uuid4().hex,
            envvars=env,
            settings={
                "job_timeout": int(setting(config, "job_timeout")),
                "idle_timeout": int(setting(config, "idle_timeout")),
                "pexpect_timeout": 1,  # how often cancel_callback runs
                "suppress_output_file": True,
                "suppress_ansible_output": True,
            },
            suppress_env_files=True,
            quiet=True,
        )
        runner_config.prepare()
        # Inherit only what was chosen: drop every variable of this process that
        # ansible-runner copied unchanged and that is not in `env`.
        runner_config.env = {name: value for name, value in runner_config.env.items()
                             if name in env or os.environ.get(name) != value}
        runner = ansible_runner.Runner(runner_config, event_handler=run.event_handler,
                                       cancel_callback=run.cancel_callback,
                                       status_handler=run.status_handler)
        status, _rc = runner.run()
        run.status = "canceled" if run.cancelled and status != "successful" else status
    finally:
        # After a cancellation or a timeout, ansible-core's workers outlive ansible-playbook.
        killed = end_processes_of(private_data_dir)
        if killed:
            log.warning("job %s: ended %d process(es) left of its run", job_id, len(killed))
        shutil.rmtree(private_data_dir, ignore_errors=True)
    return run


def _save_progress(conn: sqlite3.Connection, run: JobRun) -> None:
    conn.execute("UPDATE jobs SET phase = ?, output = ? WHERE id = ? AND state = 'running'",
                 (run.phase, run.output(), run.job_id))


def finish(conn: sqlite3.Connection, job_id: str, state: str, phase: str, message: str,
           output: str = "") -> None:
    """Record the end of the job `job_id`."""
    conn.execute("UPDATE jobs SET state = ?, phase = ?, message = ?, output = ?, finished = ? "
                 "WHERE id = ?", (state, phase, message, output, now(), job_id))


INTERRUPTED = ("The job runner stopped while this job ran; the VM's state is read again from "
               "the cloud. Start or delete again if needed.")


def record(conn: sqlite3.Connection, job: Job, run: JobRun) -> str:
    """Write `run`'s outcome: the job's state, phase, message and output, and the user's VM.
    Returns the job's state."""
    output = run.output()
    vm = run.vm or {}
    if run.status == "canceled":
        finish(conn, job.id, "interrupted", "failed", INTERRUPTED, output)
        return "interrupted"
    if run.status == "successful" and job.action == "start" and vm.get("url"):
        details = [f"image {vm['image']}" if vm.get("image") else "",
                   {True: "cache hit", False: "built"}.get(_boolean(vm.get("cache_hit")), "")]
        details = ", ".join(d for d in details if d)
        message = f"{vm.get('name')} is ready" + (f" ({details})." if details else ".")
        with db.transaction(conn):
            db.save_vm(conn, job.github_id, job.login, name=str(vm.get("name") or ""),
                       repo=str(vm.get("repo") or job.repo or ""),
                       ref=str(vm.get("ref") if vm.get("ref") is not None else job.ref or ""),
                       url=str(vm["url"]), state="ready")
            finish(conn, job.id, "succeeded", "ready", message, output)
        return "succeeded"
    if run.status == "successful" and job.action == "delete" and vm.get("state") == "absent":
        message = (f"{vm.get('name')} was deleted." if _boolean(vm.get("deleted"))
                   else f"{vm.get('name')} did not exist.")
        with db.transaction(conn):
            conn.execute("DELETE FROM vms WHERE github_id = ?", (job.github_id,))
            finish(conn, job.id, "succeeded", "deleted", message, output)
        return "succeeded"
    message = (run.failure() if run.status != "successful"
               else "The playbook ended without reporting the VM (no ssc_vm in set_stats).")
    finish(conn, job.id, "failed", "failed", message, output)
    return "failed"


def _boolean(value) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def run_job(config, job: Job, connect: Callable[[], sqlite3.Connection],
            run: JobRun | None = None) -> str:
    """Run one claimed job to its end and record it; returns its final state. A failure of
    the job itself (a refused request, a failed playbook, an error starting it) does not
    raise: the job is marked failed with the reason."""
    conn = connect()
    try:
        try:
            extravars = job_extravars(job, config)
        except ValueError as error:
            finish(conn, job.id, "failed", "failed", str(error))
            return "failed"
        if run is None:
            run = JobRun(job.id, job.action, output_lines=int(setting(config, "output_lines")))
        run.phase = "deleting" if job.action == "delete" else "creating"
        run.on_progress = lambda current: _save_progress(conn, current)
        try:
            run_playbook(config, job.id, extravars, run)
        except Exception as error:
            log.exception("job %s: the run failed", job.id)
            finish(conn, job.id, "failed", "failed",
                   run.scrub(f"The job could not run: {type(error).__name__}: {error}")
                   [:MAX_MESSAGE], run.output())
            return "failed"
        return record(conn, job, run)
    finally:
        conn.close()


# --- restart safety -------------------------------------------------------------------------


def recover(conn: sqlite3.Connection,
            refresh: Callable[[int, str], object] | None = None) -> list[Job]:
    """Mark the jobs a previous runner left ``running`` as ``interrupted``, mark their users'
    VMs ``unknown``, then (if `refresh` is given) read each of those VMs again with
    ``refresh(github_id, login)`` (an error there is logged; the VM stays unknown). Returns
    the interrupted jobs."""
    with db.transaction(conn):
        rows = conn.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs "  # noqa: S608
                            "WHERE state = 'running' ORDER BY rowid").fetchall()
        jobs = [Job.from_row(row) for row in rows]
        for job in jobs:
            finish(conn, job.id, "interrupted", "failed", INTERRUPTED)
            conn.execute("UPDATE vms SET state = 'unknown', updated = ? WHERE github_id = ?",
                         (now(), job.github_id))
    for job in jobs:
        log.warning("job %s (%s for %s) was interrupted", job.id, job.action, job.login)
    if refresh:
        for github_id, login in dict.fromkeys((job.github_id, job.login) for job in jobs):
            try:
                refresh(github_id, login)
            except Exception:
                log.exception("could not read %s's VM from the cloud; it stays unknown", login)
    return jobs


def open_cloud(config):
    """An openstacksdk connection to the configured cloud (clouds.yaml from
    ``OS_CLIENT_CONFIG_FILE`` in ``envvars`` or the environment), or None without a cloud
    name."""
    envvars = setting(config, "envvars") or {}
    cloud = setting(config, "cloud") or envvars.get("OS_CLOUD") or os.environ.get("OS_CLOUD")
    if not cloud:
        return None
    import openstack.config
    import openstack.connection

    config_file = envvars.get("OS_CLIENT_CONFIG_FILE") or os.environ.get("OS_CLIENT_CONFIG_FILE")
    loader = openstack.config.OpenStackConfig(config_files=[config_file] if config_file else None)
    return openstack.connection.Connection(config=loader.get_one(cloud=cloud))


def _addresses(server) -> set[str]:
    return {entry.get("addr") for entries in (server.addresses or {}).values()
            for entry in entries if isinstance(entry, dict)}


def _owned_by(server, login: str) -> bool:
    """`server` exists and is `login`'s (by its metadata, when it says)."""
    if server is None:
        return False
    owner = dict(getattr(server, "metadata", None) or {}).get("ssc_r2d_owner")
    return owner is None or owner == login.lower()


def refresh_vm(conn: sqlite3.Connection, github_id: int, login: str, cloud) -> str | None:
    """Read `login`'s VM from the cloud (`cloud`: an openstacksdk connection) and update its
    ``vms`` row. Gone (or not the user's): the row is deleted, returns None. There: the row
    gets the server's name, repository and ref (from its metadata) and a state, returned:
    ``ready`` when it is ACTIVE and the stored URL points at one of its addresses (a finished
    job reported it; the URL, with its token, stays as stored), ``unknown`` when it is ACTIVE
    but no finished job saw its Jupyter answer (starting again reports it), otherwise the
    server's status in lower case (``build``, ``error``, ...)."""
    name = _launch_request().vm_name(login)
    server = cloud.compute.find_server(name, ignore_missing=True)
    metadata = dict(getattr(server, "metadata", None) or {}) if server else {}
    if not _owned_by(server, login):
        conn.execute("DELETE FROM vms WHERE github_id = ?", (github_id,))
        return None
    row = conn.execute("SELECT url FROM vms WHERE github_id = ?", (github_id,)).fetchone()
    url = (row[0] if row else "") or ""
    if url and urlsplit(url).hostname not in _addresses(server):
        url = ""
    status = (server.status or "unknown").lower()
    state = ("ready" if url else "unknown") if status == "active" else status
    db.save_vm(conn, github_id, login, name=server.name or name,
               repo=metadata.get("ssc_r2d_repo", ""), ref=metadata.get("ssc_r2d_ref", ""),
               url=url, state=state)
    return state


def reconcile_vms(conn: sqlite3.Connection, servers: Iterable, listed_at: str) -> list[str]:
    """Bring the ``vms`` rows in line with `servers` (the cloud's, as listed at `listed_at`)
    where the cloud changed behind the app: a VM culled (playbooks/cull.yml) or deleted by
    an operator is gone from its owner's page; one in ERROR says so. Rows of users with a
    queued or running job, and rows written since the listing, are left to the jobs.
    Returns the logins whose row changed."""
    by_name = {server.name: server for server in servers}
    changed = []
    with db.transaction(conn):
        rows = conn.execute(
            "SELECT github_id, login, state FROM vms AS v WHERE updated < ? AND NOT EXISTS "
            "(SELECT 1 FROM jobs AS j WHERE j.github_id = v.github_id "
            "AND j.state IN ('queued', 'running'))", (listed_at,)).fetchall()
        for github_id, login, state in rows:
            server = by_name.get(_launch_request().vm_name(login))
            if not _owned_by(server, login):
                conn.execute("DELETE FROM vms WHERE github_id = ?", (github_id,))
            elif (server.status or "").upper() not in ("ACTIVE", state.upper()):
                conn.execute("UPDATE vms SET state = ?, updated = ? WHERE github_id = ?",
                             ((server.status or "unknown").lower(), now(), github_id))
            else:
                continue
            changed.append(login)
    for login in changed:
        log.info("%s's VM changed in the cloud: its row was brought in line", login)
    return changed


# --- the worker -----------------------------------------------------------------------------


class Worker:
    """Claims queued jobs and runs each in a thread; see :func:`main`.

    `connect()` returns a new SQLite connection (each thread has its own); `cloud()` an
    openstacksdk connection or None (default: :func:`open_cloud` of `config`)."""

    def __init__(self, config, connect: Callable[[], sqlite3.Connection],
                 cloud: Callable[[], object] | None = None):
        self.config = config
        self.connect = connect
        self.cloud = cloud or (lambda: open_cloud(config))
        self.stopping = threading.Event()
        self.threads: dict[str, threading.Thread] = {}
        self.runs: dict[str, JobRun] = {}
        self._lock = threading.Lock()

    def _refresher(self, conn: sqlite3.Connection) -> Callable[[int, str], object] | None:
        try:
            cloud = self.cloud()
        except Exception:
            log.exception("cannot reach the cloud: the VMs of interrupted jobs stay unknown")
            return None
        if cloud is None:
            return None
        return lambda github_id, login: refresh_vm(conn, github_id, login, cloud)

    def recover(self) -> list[Job]:
        """End what runs of a killed worker left, then :func:`recover`, reading the VMs from
        the cloud."""
        clean_leftover_runs(self.config)
        conn = self.connect()
        try:
            return recover(conn, self._refresher(conn))
        finally:
            conn.close()

    def poll(self, conn: sqlite3.Connection) -> list[Job]:
        """Start every job that may start now, each in a thread; returns them."""
        self._reap()
        started = []
        while not self.stopping.is_set():
            job = claim_next(conn, int(setting(self.config, "max_running")))
            if job is None:
                break
            run = JobRun(job.id, job.action,
                         output_lines=int(setting(self.config, "output_lines")))
            thread = threading.Thread(target=self._run, args=(job, run),
                                      name=f"job-{job.id}", daemon=True)
            with self._lock:
                self.runs[job.id] = run
                self.threads[job.id] = thread
            thread.start()
            started.append(job)
        return started

    def _run(self, job: Job, run: JobRun) -> None:
        try:
            state = run_job(self.config, job, self.connect, run)
            log.info("job %s (%s for %s): %s", job.id, job.action, job.login, state)
            if state == "interrupted":
                conn = self.connect()
                try:
                    conn.execute("UPDATE vms SET state = 'unknown', updated = ? "
                                 "WHERE github_id = ?", (now(), job.github_id))
                    refresh = self._refresher(conn)
                    if refresh:
                        refresh(job.github_id, job.login)
                finally:
                    conn.close()
        except Exception:
            log.exception("job %s: could not record its end", job.id)

    def _reap(self) -> None:
        with self._lock:
            for job_id in [i for i, t in self.threads.items() if not t.is_alive()]:
                del self.threads[job_id]
                self.runs.pop(job_id, None)

    @property
    def running(self) -> int:
        with self._lock:
            return sum(thread.is_alive() for thread in self.threads.values())

    def stop(self, grace: float | None = None) -> None:
        """Claim nothing more; give running jobs `grace` seconds (default ``grace_period``)
        to end, then cancel the others (recorded as interrupted) and wait for them."""
        self.stopping.set()
        grace = float(setting(self.config, "grace_period") if grace is None else grace)
        deadline = time.monotonic() + grace
        with self._lock:
            threads = dict(self.threads)
        for thread in threads.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            for job_id, run in self.runs.items():
                if threads.get(job_id) and threads[job_id].is_alive():
                    log.warning("job %s: cancelled at shutdown", job_id)
                    run.cancelled = True
        for thread in threads.values():
            thread.join()
        self._reap()

    def reconcile(self, conn: sqlite3.Connection) -> list[str]:
        """:func:`reconcile_vms` with the cloud's servers now (nothing without a cloud)."""
        cloud = self.cloud()
        if cloud is None:
            return []
        listed_at = now()
        prefix = _launch_request().VM_NAME_PREFIX  # Nova's name filter is a regex
        servers = list(cloud.compute.servers(name=f"^{prefix}"))
        return reconcile_vms(conn, servers, listed_at)

    def serve(self) -> None:
        """Recover, then beat and poll until :attr:`stopping` is set (and reconcile the VMs
        with the cloud every ``vm_refresh_interval`` seconds); then :meth:`stop`."""
        self.recover()
        conn = self.connect()
        try:
            last_beat = last_reconcile = -float("inf")
            while not self.stopping.is_set():
                interval = float(setting(self.config, "vm_refresh_interval"))
                if interval and time.monotonic() - last_reconcile >= interval:
                    last_reconcile = time.monotonic()
                    try:
                        self.reconcile(conn)
                    except Exception:
                        log.exception("could not read the VMs from the cloud; trying later")
                try:
                    if (time.monotonic() - last_beat
                            >= float(setting(self.config, "heartbeat_interval"))):
                        heartbeat(conn)
                        last_beat = time.monotonic()
                    self.poll(conn)
                except sqlite3.OperationalError:
                    log.exception("the database is busy or unavailable; trying again")
                self.stopping.wait(float(setting(self.config, "poll_interval")))
        finally:
            conn.close()
            self.stop()


def database_connector(config) -> Callable[[], sqlite3.Connection]:
    """A function returning a new connection to ``config.database`` (tables made once)."""
    path = _path(config, config.database)

    def connect() -> sqlite3.Connection:
        return db.connect(path)

    conn = connect()
    try:
        db.init(conn)
    finally:
        conn.close()
    return connect


def main(config) -> int:
    """The worker process: recover what a previous one left running, then claim and run
    queued jobs until SIGTERM or SIGINT; then claim nothing more, give running jobs
    ``grace_period`` seconds, cancel the rest and record them as interrupted. Run it under a
    service manager that signals only this process (systemd ``KillMode=mixed``): it ends
    the playbook runs itself, each in its own session."""
    worker = Worker(config, database_connector(config))

    def _stop(signum, frame):
        log.info("signal %s: stopping", signal.Signals(signum).name)
        worker.stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    worker.serve()
    return 0
