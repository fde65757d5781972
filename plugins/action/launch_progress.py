"""Action plugin of ssc.repo2docker.launch_progress: the module's read, bounded in wall-clock
time across the retries of an `until` loop.

Ansible runs every retry of a task in the same worker process (each with a new action plugin
instance), so the wait's state lives here, by task and host: the highest record number seen
and when it grew. A build that keeps writing records is not cut off; one that goes quiet for
`build_idle_timeout` is. The bounds (seconds; 0 = none), measured on the controller's clock:
- `ready_timeout`: while the launcher is not building (the VM booting, Jupyter starting),
  counted from `started` (set once before the loop) and again from the end of a build;
- `build_idle_timeout`: no new record while building;
- `build_timeout`: building in all.
"""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase

BOUNDS = ("ready_timeout", "build_idle_timeout", "build_timeout")


class Wait:
    """One wait for one VM's launch: what the retries so far have seen."""

    def __init__(self, started: float) -> None:
        self.seen = 0  # highest seq so far
        self.progress_at = started  # time.time() when it last grew
        self.waiting_since: float | None = started  # start of the current non-building stretch
        self.building_since: float | None = None

    def over(self, result: dict, bounds: dict[str, int], now: float) -> str | None:
        """Why the wait must end now, given this retry's result (in a researcher's words),
        or None."""
        records = result.get("records") or []
        if records and records[-1]["seq"] > self.seen:
            self.seen, self.progress_at = records[-1]["seq"], now
        phase = result.get("phase", "")
        if phase == "ready":
            return None
        if phase == "building":
            if self.building_since is None:
                self.building_since = now
            self.waiting_since = None
            idle, total = bounds["build_idle_timeout"], bounds["build_timeout"]
            if idle and now - self.progress_at > idle:
                return (f"The build of your environment made no progress for {duration(idle)}: "
                        "it was stopped. Try again, or simplify the repository's environment.")
            if total and now - self.building_since > total:
                return (f"The build of your environment took longer than {duration(total)}, "
                        "the most this site allows.")
            return None
        if self.waiting_since is None:
            self.waiting_since = now  # a build just ended
        ready = bounds["ready_timeout"]
        if ready and now - self.waiting_since > ready:
            return f"Your environment did not start within {duration(ready)}."
        return None


# The waits of this worker process (one task on one host), by task and host.
_WAITS: dict[str, Wait] = {}


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        key = f"{self._task._uuid}/{(task_vars or {}).get('inventory_hostname', '')}"
        wait = _WAITS.setdefault(key, Wait(float(args.get("started") or time.time())))
        result.update(self._execute_module(module_name="ssc.repo2docker.launch_progress",
                                           module_args=args, task_vars=task_vars))
        if result.get("failed"):
            return result
        stop = wait.over(result, {k: int(args.get(k) or 0) for k in BOUNDS}, time.time())
        if stop:
            result.update(failed=True, msg=stop, timed_out=True)
        return result


def duration(seconds: int) -> str:
    """A duration as a person says it: '45 seconds', '20 minutes'."""
    if seconds < 120:
        return f"{seconds} seconds" if seconds != 1 else "1 second"
    return f"{round(seconds / 60)} minutes"
