"""What one playbook run says: ansible-runner's callbacks for a job (:class:`JobRun`), kept
apart from the code that starts the run (web/playbook.py), as AWX keeps its runner callback.

The event handler runs for every event, so it is cheap and keeps no event: it reads the
phase from the role's task names (:data:`TASK_PHASES`) and from the VM launcher's records
(the build log, web/buildlog.py: fetching, building, starting), the failed task's ``msg``
(never ``res.invocation``, never a ``no_log`` result), a bounded tail of readable output
without secrets, and the ``set_stats`` data (``artifact_data`` of the ``playbook_on_stats``
event: ``ssc_vm`` with the URL and its token).
"""

from __future__ import annotations

import collections
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterable

from web import db
from web.buildlog import LaunchLog

log = logging.getLogger(__name__)

# (task name in roles/user_vm/tasks, event) -> phase. "start": the task begins
# (playbook_on_task_start); "ok": it succeeded (runner_on_ok). "ready" comes from the
# set_stats data at the end, and "failed" from the outcome (web/jobs.py).
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
MAX_LINE = 500  # characters kept of an output line
MAX_MESSAGE = 2000  # characters of a job's message
MIN_SECRET = 8  # shorter values are not looked for in the output (they would match by chance)


class JobRun:
    """What one playbook run is and says: its status, its cancelled flag, and what the events
    told. ``event_handler``, ``cancel_callback`` and ``status_handler`` are ansible-runner's
    callbacks; the event handler only looks at a few fields and keeps no event.

    `secrets` are values never shown (the output drops a line holding one, messages replace
    them); `output_lines` lines of output are kept. ``on_progress(run)``, if given, is called
    from ``cancel_callback`` (the job's own thread, about once a second) when the phase or
    the output changed, to write them to the database.
    """

    def __init__(self, job_id: str, action: str = "start", secrets: Iterable[str] = (),
                 output_lines: int = 200, on_progress: Callable[[JobRun], None] | None = None):
        self.job_id = job_id
        self.action = action
        self.phases = db.phases_of(action)
        self.phase = "queued"
        self.status = "unstarted"
        self.cancelled = False
        self.failed_task: str | None = None
        self.failed_action: str | None = None  # the failed task's module, as written
        self.failed_msg: str | None = None
        self.error_line: str | None = None
        self.stats: dict = {}
        self.builds = False  # the VM builds the repository first (a cache miss)
        self.secrets: set[str] = set()
        self.add_secrets(secrets)
        self._lines: collections.deque[str] = collections.deque(maxlen=output_lines)
        self.log = LaunchLog()  # the build log (web/buildlog.py)
        self.on_progress = on_progress
        self._changed = False
        self._last_progress = 0.0

    def add_secrets(self, values: Iterable[str]) -> None:
        """Never show `values` (those shorter than :data:`MIN_SECRET` are ignored)."""
        self.secrets.update(value for value in values if value and len(value) >= MIN_SECRET)

    # ansible-runner's callbacks

    def event_handler(self, event: dict) -> bool:
        """Gather what matters of one event. Returns False: ansible-runner then writes no
        event file (they hold results) into the private data dir."""
        kind = event.get("event")
        data = event.get("event_data") or {}
        self._read_output(kind, data, event.get("stdout"))
        if self.log.read(kind, data, self._shown):
            self._changed = True
            self._advance(self.log.job_phase)
        if kind == "playbook_on_task_start":
            phase = TASK_PHASES.get((data.get("task"), "start"))
            self._advance("building" if phase == "starting" and self.builds else phase)
        elif kind == "runner_on_ok":
            self._advance(TASK_PHASES.get((data.get("task"), "ok")))
            if data.get("task") == CACHE_TASK:
                facts = (data.get("res") or {}).get("ansible_facts") or {}
                self.builds = boolean(facts.get("__user_vm_cache_hit")) is False
        elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get(
                "ignore_errors"):
            self.failed_task = data.get("task")
            self.failed_action = data.get("task_action")
            self.failed_msg = _result_message(data.get("res"))
        elif kind == "playbook_on_stats":
            artifact = data.get("artifact_data")
            if isinstance(artifact, dict):
                self.stats = artifact
                vm = artifact.get("ssc_vm")
                if isinstance(vm, dict):
                    self.secrets.update(_url_secrets(vm.get("url")))
                    if isinstance(vm.get("token"), str) and vm["token"]:
                        self.secrets.add(vm["token"])
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

    def _read_output(self, kind: str | None, data: dict, stdout: str | None) -> None:
        if stdout and _hidden(data.get("res")):
            # ansible-core 2.19 prints a failed no_log task's message (as "[ERROR]: Task
            # failed: ...") though its result is censored: show only that it ran.
            outcome = kind.removeprefix("runner_").replace("item_", "").removeprefix("on_")
            stdout = f"{outcome}: [{data.get('host', '')}] (output hidden: no_log)"
        if not stdout:
            return
        for line in ANSI.sub("", stdout).splitlines():
            line = line.rstrip()
            if line and self._shown(line):
                self._lines.append(line[:MAX_LINE])
                if kind == "verbose" and "ERROR" in line[:12]:
                    self.error_line = line
        self._changed = True

    def _advance(self, phase: str | None) -> None:
        if phase in self.phases and self.phases.index(phase) > self.phases.index(self.phase):
            self.phase = phase
            self._changed = True

    @property
    def vm(self) -> dict | None:
        """The ``ssc_vm`` the playbook published with ``set_stats``, if any."""
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
        """`text` with every known secret, and anything that looks like a token, masked."""
        for secret in self.secrets:
            text = text.replace(secret, "********")
        text = re.sub(r"(?i)(token=)[^\s&\"'#]+", r"\1********", text)
        return re.sub(r"(?i)(token\s+)[0-9a-z]{24,}", r"\1********", text)

    def failure(self) -> str:
        """Why the run failed, for the user (at most :data:`MAX_MESSAGE` characters)."""
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


def boolean(value) -> bool | None:
    """A boolean from `value` as set_stats or facts carry it (a bool, or "true"/"false" in
    any case); None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


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
