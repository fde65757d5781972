"""When a user's VM goes, as its owner sees it (issue 15): its expiry and idle deadline on the
page, "keep it" (a job of action ``extend``), and why a VM went.

The rules are the collection's (plugins/module_utils/culling.py): expiry is a hard limit, a VM
whose Jupyter says it is idle for ``user_vm_idle_hours`` goes, an extension moves the expiry
within the site's cap. The VM's metadata holds its schedule (``ssc_r2d_expires``,
``ssc_r2d_idle_deadline``, ``ssc_r2d_last_activity``, ``ssc_r2d_extensions``); the ``vms``
table keeps a copy (web/db.py's :data:`~web.db.SCHEDULE_COLUMNS`), written

- by a start job (``ssc_vm.expires`` of its set_stats) and an extend job (``ssc_vm.expires``,
  ``extensions``, ``extensions_left``): :func:`record_start`, :func:`record_extension`;
- by every reading of the cloud (web/vms.py), from the server's metadata, which each cull round
  updates: :func:`save_metadata`.

Why a VM went is a finished job of action ``cull`` in its owner's job list, its message the
cull's reason in words (:func:`tell_owner`). It is written after the job runner's own cull run
(``[jobs] cull_interval``: :func:`run_cull` runs playbooks/cull.yml and reads its set_stats
``ssc_culled``), and, when the site culls from its own timer instead, by the reading of the
cloud that finds the VM gone past its recorded expiry or idle deadline (:func:`explain_gone`).

Times are shown in UTC to the minute (``2026-01-31 12:00 UTC``).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

from ansible_collections.ssc.repo2docker.plugins.module_utils import culling

from web import db, jobqueue, playbook
from web.config import Config
from web.events import MAX_MESSAGE, JobRun, boolean
from web.jobqueue import Job

log = logging.getLogger(__name__)

# A time as culling writes it, inside a reason ("expired at 2026-01-31T12:00:00Z").
_METADATA_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:\d\d)?")


# --- times, for people ----------------------------------------------------------------------


def shown(value: str | datetime | None) -> str:
    """A time as the page shows it: ``2026-01-31 12:00 UTC``; "" when unknown or malformed."""
    moment = value if isinstance(value, datetime) else culling.parse_time(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def until(value: str | None, now: datetime | None = None) -> str:
    """How long until `value` (a stored time), in rough words: ``in 3 hours``,
    ``in 25 minutes``, ``now`` once past; "" when unknown."""
    moment = culling.parse_time(value)
    if moment is None:
        return ""
    minutes = int((moment - (now or culling.utcnow())).total_seconds() // 60)
    if minutes <= 0:
        return "now"
    if minutes < 120:
        return f"in {minutes} minute" + ("" if minutes == 1 else "s")
    hours = minutes // 60
    return f"in {hours} hours" if hours < 48 else f"in {hours // 24} days"


def in_words(reason: str) -> str:
    """A cull reason (``expired at …``, ``idle since …``, ``unreachable 3 times in a row``) for
    the VM's owner, its times as :func:`shown` writes them."""
    reason = _METADATA_TIME.sub(lambda found: shown(found.group()) or found.group(), reason)
    if reason.startswith("expired at "):
        return f"it expired at {reason.removeprefix('expired at ')}"
    if reason.startswith("idle since "):
        return f"nobody had used it since {reason.removeprefix('idle since ')}"
    if reason.startswith("unreachable "):
        return f"its Jupyter did not answer, {reason.removeprefix('unreachable ')}"
    return reason or "the site's cleanup removed it"


def gone_message(name: str, reason: str) -> str:
    """The message of a ``cull`` job: ``Your VM ssc-r2d-ada was deleted: it expired at …``."""
    return f"Your VM {name} was deleted: {in_words(reason)}."[:MAX_MESSAGE]


# --- the schedule in the vms table ----------------------------------------------------------


def _metadata_time(value: object) -> str:
    moment = culling.parse_time(value)
    return culling.format_time(moment) if moment else ""


def schedule_columns(metadata: Mapping) -> dict:
    """The ``vms`` columns a server's metadata gives (only the keys it has: a listing without
    metadata changes nothing): ``expires``, ``idle_deadline``, ``last_activity`` (times as
    metadata writes them, "" when malformed) and ``extensions`` (an int)."""
    columns = {}
    for column, key in (("expires", culling.EXPIRES), ("idle_deadline", culling.IDLE_DEADLINE),
                        ("last_activity", culling.LAST_ACTIVITY)):
        if key in metadata:
            columns[column] = _metadata_time(metadata[key])
    if culling.EXTENSIONS in metadata:
        columns["extensions"] = culling.schedule(dict(metadata))["extensions"]
    return columns


def save_metadata(conn: sqlite3.Connection, row: Mapping, metadata: Mapping) -> bool:
    """Copy the schedule of a server's `metadata` to its ``vms`` `row` where it differs;
    returns whether it did."""
    changes = {column: value for column, value in schedule_columns(metadata).items()
               if row[column] != value}
    db.save_schedule(conn, row["github_id"], **changes)
    return bool(changes)


def record_start(conn: sqlite3.Connection, github_id: int, vm: Mapping) -> None:
    """After a start job: the VM's expiry from its ``ssc_vm``; a VM made by this job starts
    with no idle deadline, activity or extension known."""
    columns: dict = {"expires": _metadata_time(vm.get("expires"))}
    if boolean(vm.get("created")) is not False:
        columns.update(idle_deadline="", last_activity="", extensions=0, extensions_left=None)
    db.save_schedule(conn, github_id, **columns)


def _count(value: object) -> int | None:
    text = str(value if value is not None else "").strip()
    return int(text) if text.isdigit() else None


# --- "keep it" ------------------------------------------------------------------------------


def extend_message(expires: str, left: int | None) -> str:
    """What a successful extend job says: the new expiry, and how many more are allowed."""
    message = f"Your VM is kept until {shown(expires) or 'later'}."
    if left == 0:
        return message + (" That was the last time this site lets you keep it longer: save "
                          "your work elsewhere before then.")
    if left:
        return message + f" You can keep it longer {left} more time" + ("s." if left > 1 else ".")
    return message


def record_extension(conn: sqlite3.Connection, job: Job, run: JobRun, output: str) -> str:
    """Write how an extend job went (its run not cancelled): the new expiry on the VM's row
    and in the job's message, or why it was refused in the researcher's words (the
    collection's refusals are written for them; never a task name). Returns the job's
    state."""
    vm = run.vm or {}
    if run.status == "successful" and vm.get("state") == "extended":
        expires = _metadata_time(vm.get("expires"))
        left = _count(vm.get("extensions_left"))
        with db.transaction(conn):
            columns = {"expires": expires, "extensions_left": left}
            if _count(vm.get("extensions")) is not None:
                columns["extensions"] = _count(vm.get("extensions"))
            db.save_schedule(conn, job.github_id, **columns)
            jobqueue.finish(conn, job.id, "succeeded", "extended", extend_message(expires, left),
                            output)
        return "succeeded"
    if run.failed_msg:
        message = run.scrub(run.failed_msg)[:MAX_MESSAGE]
    elif run.status == "timeout":
        message = "Keeping your VM longer took too long and was stopped. Please try again."
    else:
        message = ("Your VM could not be kept longer: the site could not change it. Please "
                   "try again later, or ask the site's operators.")
    jobqueue.finish(conn, job.id, "failed", "failed", message, output)
    return "failed"


# --- why a VM went --------------------------------------------------------------------------


def tell_owner(conn: sqlite3.Connection, github_id: int, login: str, name: str, reason: str,
               repo: str = "", ref: str = "") -> str | None:
    """Record for the user a finished job of action ``cull`` saying that their VM `name` went
    and why (`reason` as culling words it), unless their latest job says so already. Call it
    inside a transaction. Returns the job's id, or None."""
    message = gone_message(name, reason)
    latest = db.jobs_of(conn, github_id, 1)
    if latest and latest[0]["action"] == "cull" and latest[0]["message"] == message:
        return None
    return db.add_finished_job(conn, github_id, login, "cull", "culled", message, repo, ref)


def explain_gone(row: Mapping, now: datetime | None = None) -> str | None:
    """Why the VM of the ``vms`` `row`, found gone from the cloud, went, when its recorded
    schedule tells: ``expired at …`` past its expiry, ``idle since …`` past its idle
    deadline; None otherwise (deleted by someone, for a reason unknown here)."""
    now = now or culling.utcnow()
    expires = culling.parse_time(row["expires"])
    if expires is not None and expires <= now:
        return f"expired at {culling.format_time(expires)}"
    deadline = culling.parse_time(row["idle_deadline"])
    last = culling.parse_time(row["last_activity"])
    if deadline is not None and deadline <= now and last is not None:
        return f"idle since {culling.format_time(last)}"
    return None


def _owner_of(conn: sqlite3.Connection, name: str, owner_id: str,
              owner: str) -> tuple[sqlite3.Row | None, sqlite3.Row | None]:
    """The ``vms`` row of the VM `name`, else the user whose GitHub account id is `owner_id`
    (its metadata's ``ssc_r2d_owner_id``), else, for a VM no run has marked with an id yet,
    the user whose login is `owner` (the older ``ssc_r2d_owner``): ``(vm_row, user_row)``,
    either None."""
    row = conn.execute("SELECT * FROM vms WHERE name = ?", (name,)).fetchone() if name else None
    if row is not None:
        return row, None
    if owner_id:
        return None, conn.execute("SELECT github_id, login FROM users WHERE github_id = ?",
                                  (int(owner_id) if owner_id.isdigit() else -1,)).fetchone()
    if not owner:
        return None, None
    user = conn.execute("SELECT github_id, login FROM users WHERE lower(login) = ? "
                        "ORDER BY github_id LIMIT 1", (owner.lower(),)).fetchone()
    return None, user


def record_culled(conn: sqlite3.Connection, stats: Mapping) -> list[str]:
    """Tell the owner of each VM a cull run deleted (its set_stats: ``ssc_culled``, a list of
    decisions with ``name``, ``owner``, ``reason``; nothing for a dry run) why it went, and
    forget the VM's row unless a job of theirs is queued or running. Returns the logins
    told (not those told so already). A VM whose owner is not known here (no row, no user)
    is logged and skipped."""
    if boolean(stats.get("ssc_cull_dry_run")):
        return []
    culled = stats.get("ssc_culled")
    told = []
    for decision in culled if isinstance(culled, list) else []:
        if not isinstance(decision, Mapping):
            continue
        name, reason = str(decision.get("name") or ""), str(decision.get("reason") or "")
        with db.transaction(conn):
            row, user = _owner_of(conn, name, str(decision.get("owner_id") or ""),
                                  str(decision.get("owner") or ""))
            if row is None and user is None:
                log.warning("culled %s (%s): its owner is not a user of this site", name, reason)
                continue
            github_id, login = (row or user)["github_id"], (row or user)["login"]
            new = tell_owner(conn, github_id, login, name, reason,
                             (row["repo"] or "") if row else "", (row["ref"] or "") if row else "")
            if row is not None and db.current_job(conn, github_id) is None:
                db.delete_vm(conn, github_id)
        if new:
            told.append(login)
            log.info("culled %s of %s: %s", name, login, reason)
    return told


def run_cull(config: Config, connect: Callable[[], sqlite3.Connection],
             run: JobRun | None = None) -> list[str]:
    """Run ``playbooks/cull.yml`` (``cull_playbook`` below ``playbook_dir``) with the site's
    inventory and record what it culled (:func:`record_culled`); returns the logins told. A
    failed run records nothing (the next reading of the cloud explains what it can)."""
    run = run or JobRun(f"cull-{uuid.uuid4().hex}", "cull", output_lines=config.output_lines)
    playbook.run_playbook(replace(config, playbook=config.cull_playbook), run.job_id, {}, run)
    if run.status != "successful":
        log.warning("the cull run failed: %s", run.failure())
        return []
    conn = connect()
    try:
        return record_culled(conn, run.stats)
    finally:
        conn.close()


# --- the page -------------------------------------------------------------------------------


def page_view(vm: Mapping | None, jobs: list[Mapping], now: datetime | None = None) -> dict:
    """What the researcher's page says of when their VM goes, from its ``vms`` row `vm` and
    their latest `jobs` (newest first): ``expires`` and ``expires_in``, ``idle_deadline``
    and ``last_activity`` (as :func:`shown` and :func:`until` write them, "" when unknown),
    ``can_extend`` (the "keep it" button), ``cap`` (why it cannot be kept longer),
    ``refused`` (the last "keep it" failed: why), and ``gone`` (no VM: why the last one went,
    when a cull job says)."""
    latest = jobs[0] if jobs else None
    view = {"expires": "", "expires_in": "", "idle_deadline": "", "idle_in": "",
            "last_activity": "", "can_extend": False, "cap": "", "refused": "", "gone": ""}
    if vm is None or vm["state"] in ("", "deleted"):
        if latest is not None and latest["action"] == "cull":
            view["gone"] = f"{latest['message']} ({shown(latest['finished'])})"
        return view
    view.update(expires=shown(vm["expires"]), expires_in=until(vm["expires"], now),
                idle_deadline=shown(vm["idle_deadline"]), idle_in=until(vm["idle_deadline"], now),
                last_activity=shown(vm["last_activity"]))
    if vm["expires"] and vm["extensions_left"] == 0:
        view["cap"] = (f"You have kept this VM longer as many times as this site allows: it "
                       f"goes at {view['expires']}. Save your work elsewhere before then.")
    view["can_extend"] = bool(vm["expires"]) and not view["cap"]
    if latest is not None and latest["action"] == "extend" and latest["state"] == "failed":
        view["refused"] = latest["message"] or ""
    return view
