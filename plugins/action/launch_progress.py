# Copyright: (c) 2025, ssc-repo2docker developers
# BSD 3-Clause License (see https://opensource.org/licenses/BSD-3-Clause)
"""Action plugin of ssc.repo2docker.launch_progress: the module's read, bounded in wall-clock
time across the retries of an `until` loop.

Ansible runs every retry of a task through the same action plugin instance, so this one
remembers, between retries, the highest record number seen and when it grew: a build that
keeps writing records is not cut off, one that goes quiet for `build_idle_timeout` is.
The bounds (seconds; 0 = none), all measured on the controller's clock:
- `ready_timeout`: while the launcher is not building (the VM booting, starting Jupyter),
  counted from `started` (or the first retry) and again from the end of a build;
- `build_idle_timeout`: no new record while building;
- `build_timeout`: building in all.
"""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase

BOUNDS = ("ready_timeout", "build_idle_timeout", "build_timeout")


class ActionModule(ActionBase):
    _supports_check_mode = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._seen = 0  # highest seq so far
        self._progress_at: float | None = None  # time.time() when it last grew
        self._waiting_since: float | None = None  # start of the current non-building stretch
        self._building_since: float | None = None

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        now = time.time()
        started = float(args.get("started") or now)
        if self._waiting_since is None:
            self._waiting_since = self._progress_at = started
        result.update(self._execute_module(module_name="ssc.repo2docker.launch_progress",
                                           module_args=args, task_vars=task_vars))
        if result.get("failed"):
            return result
        stop = self._over(result, {k: int(args.get(k) or 0) for k in BOUNDS}, time.time())
        if stop:
            result.update(failed=True, msg=stop, timed_out=True)
        return result

    def _over(self, result: dict, bounds: dict[str, int], now: float) -> str | None:
        """Why the wait must end now (in a researcher's words), or None."""
        records = result.get("records") or []
        if records and records[-1]["seq"] > self._seen:
            self._seen, self._progress_at = records[-1]["seq"], now
        phase = result.get("phase", "")
        if phase == "ready":
            return None
        if phase == "building":
            if self._building_since is None:
                self._building_since = now
            self._waiting_since = None
            idle, total = bounds["build_idle_timeout"], bounds["build_timeout"]
            if idle and now - self._progress_at > idle:
                return (f"The build of your environment made no progress for {minutes(idle)}: "
                        "it was stopped. Try again, or simplify the repository's environment.")
            if total and now - self._building_since > total:
                return (f"The build of your environment took longer than {minutes(total)}, "
                        "the most this site allows.")
            return None
        if self._waiting_since is None:
            self._waiting_since = now  # a build just ended
        ready = bounds["ready_timeout"]
        if ready and now - self._waiting_since > ready:
            return (f"Your environment did not start within {minutes(ready)}.")
        return None


def minutes(seconds: int) -> str:
    """A duration as a person says it: '45 seconds', '1 minute', '20 minutes'."""
    if seconds < 120:
        return f"{seconds} seconds" if seconds != 1 else "1 second"
    return f"{round(seconds / 60)} minutes"
