# Copyright: (c) 2025, ssc-repo2docker developers
# BSD 3-Clause License (see https://opensource.org/licenses/BSD-3-Clause)
"""When a user VM goes, as pure functions: its expiry, idle culling, and extensions.

Used by the modules ``ssc.repo2docker.cull_plan`` (``playbooks/cull.yml``) and
``ssc.repo2docker.user_server_expiry`` (``playbooks/user_vm.yml -e state=extended``). The web
app can import it as ``ansible_collections.ssc.repo2docker.plugins.module_utils.culling`` to
read a VM's schedule from its metadata (:func:`schedule`). Standard library only; every time
is an aware datetime in UTC, written to metadata as ``2026-01-31T12:00:00Z``.

The rules (issue 15, after jupyterhub-idle-culler and Jupyter Server's own kernel culling,
whose ``cull_busy`` and ``cull_connected`` are off by default):

- Expiry (metadata ``ssc_r2d_expires``) is a hard limit: a VM past it goes, busy or not.
- A VM is idle only when its Jupyter answered the probe and said so. A probe that failed or
  timed out is never idle: it counts one more round in ``ssc_r2d_unreachable``, which the next
  probe that succeeds resets. A VM unreachable for ``unreachable_report`` rounds in a row is
  flagged for the operator; it is deleted only when ``unreachable_delete`` is set and reached.
- A busy kernel, an open terminal or an open connection is activity now. Otherwise the VM's
  last activity is the latest of Jupyter's own ``last_activity`` (API requests, kernel
  messages, terminals) and each kernel's and terminal's ``last_activity``; a VM whose last
  activity is ``idle_hours`` old or older goes.
- An extension ("keep it") moves the expiry ``hours`` past the later of the expiry and now,
  at most ``max_extensions`` times, and to at most ``max_lifetime_hours`` after creation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ansible_collections.ssc.repo2docker.plugins.module_utils.ownership import (
    owner_id_of,
    owner_login_of,
)

CREATED = "ssc_r2d_created"
EXPIRES = "ssc_r2d_expires"
EXTENSIONS = "ssc_r2d_extensions"
LAST_ACTIVITY = "ssc_r2d_last_activity"
IDLE_DEADLINE = "ssc_r2d_idle_deadline"
UNREACHABLE = "ssc_r2d_unreachable"
PORT = "ssc_r2d_port"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class ProbeError(ValueError):
    """Jupyter answered, but not with what its REST API documents."""


class ExtensionRefused(Exception):
    """An extension the site's limits do not allow; ``str(error)`` is for the researcher."""


@dataclass(frozen=True)
class CullRules:
    """The site's culling settings (the role's ``user_vm_idle_hours``,
    ``user_vm_cull_unreachable_report`` and ``user_vm_cull_unreachable_delete``).

    `idle_hours`: hours without activity after which a VM goes (> 0, fractions allowed);
    `unreachable_report`: rounds in a row a VM's probe must fail before it is flagged for the
    operator (>= 1); `unreachable_delete`: rounds in a row after which an unreachable VM goes
    (0: never). Raises ValueError for values outside those ranges."""

    idle_hours: float
    unreachable_report: int = 3
    unreachable_delete: int = 0

    def __post_init__(self) -> None:
        if not self.idle_hours > 0:
            raise ValueError(f"idle_hours must be more than 0, not {self.idle_hours}")
        if self.unreachable_report < 1:
            raise ValueError("unreachable_report must be at least 1")
        if self.unreachable_delete < 0:
            raise ValueError("unreachable_delete must be 0 (never) or more")

    @property
    def idle(self) -> timedelta:
        return timedelta(hours=self.idle_hours)


# --- times ----------------------------------------------------------------------------------


def parse_time(value: object) -> datetime | None:
    """A time as the metadata or Jupyter writes it (ISO 8601, ``Z`` or an offset, with or
    without fractions of a second; no zone means UTC) as an aware UTC datetime; None for an
    empty or malformed value."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """`value` as the metadata holds times: UTC, to the second, ``2026-01-31T12:00:00Z``."""
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _count(value: object) -> int:
    """A counter kept in metadata (a string of digits); 0 when absent or malformed."""
    text = str(value or "").strip()
    return int(text) if text.isdigit() else 0


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else f"{count} {noun}s"


def _times(count: int) -> str:
    return f"{count} time" + ("" if count == 1 else "s")


# --- what Jupyter says ----------------------------------------------------------------------


def activity(status: object, kernels: object, terminals: object) -> dict:
    """What a Jupyter server's answers say about its use.

    `status` is ``GET /api/status`` (a dict: ``last_activity``, ``started``, ``connections``),
    `kernels` is ``GET /api/kernels`` (a list of dicts: ``execution_state``,
    ``last_activity``, ``connections``), `terminals` is ``GET /api/terminals`` (a list of
    dicts: ``last_activity``; [] when the server has no terminals API). Returns a dict:
    ``last_activity`` (the latest time any of them gives, aware UTC), ``busy_kernels``,
    ``terminals`` and ``connections`` (counts). Raises ProbeError when an answer has not
    that shape or gives no time at all."""
    if not isinstance(status, dict):
        raise ProbeError("/api/status did not answer with a JSON object")
    if not isinstance(kernels, list) or not all(isinstance(k, dict) for k in kernels):
        raise ProbeError("/api/kernels did not answer with a list of kernels")
    if not isinstance(terminals, list) or not all(isinstance(t, dict) for t in terminals):
        raise ProbeError("/api/terminals did not answer with a list of terminals")
    times = [parse_time(status.get("last_activity")), parse_time(status.get("started"))]
    times += [parse_time(item.get("last_activity")) for item in kernels + terminals]
    known = [time for time in times if time is not None]
    if not known:
        raise ProbeError("/api/status gave neither last_activity nor started")
    connections = max(_number(status.get("connections")),
                      sum(_number(kernel.get("connections")) for kernel in kernels))
    return {
        "last_activity": max(known),
        "busy_kernels": sum(1 for k in kernels if k.get("execution_state") == "busy"),
        "terminals": len(terminals),
        "connections": connections,
    }


def _number(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


# --- the cull decision ----------------------------------------------------------------------


def decide(server: dict, probe: dict | None, now: datetime, rules: CullRules) -> dict:
    """Whether a user VM goes this round, and why.

    `server` is the server as ``openstack.cloud.server_info`` lists it (``id``, ``name``,
    ``status``, ``metadata``); `probe` is what probing its Jupyter gave (``{"ok": True,
    "status": ..., "kernels": ..., "terminals": ...}`` or ``{"ok": False, "error": "..."}``),
    None when it was not probed because the server is not ACTIVE. Returns a dict:

    - ``id``, ``name``: the server's; ``owner_id``: its owner's GitHub account id
      (``ssc_r2d_owner_id``, "" on a VM named by login that no run has marked yet);
      ``owner``: its owner's login, for people (``ssc_r2d_owner_login``, else the older
      ``ssc_r2d_owner``);
    - ``decision``: ``delete`` or ``keep``; ``reason``: why, for people (``expired at …``,
      ``idle since …``, ``busy kernel``, ``2 open terminals``, ``open connection``,
      ``unreachable 3 times in a row``, ``active at …``, ``the server is SHUTOFF``);
    - ``expires``, ``last_activity``, ``idle_deadline``: times as the metadata writes them
      (``idle_deadline`` is when the VM goes if nobody uses it; None when unknown);
    - ``unreachable``: failed probes in a row, this one included; ``attention``: true when
      that reached ``rules.unreachable_report`` (for the operator); ``error``: why the probe
      failed ("" when it did not);
    - ``metadata``: what to record on the VM when it is kept (keys whose value changes).
    """
    metadata = dict(server.get("metadata") or {})
    expires = parse_time(metadata.get(EXPIRES))
    unreachable = _count(metadata.get(UNREACHABLE))
    decision = {
        "id": server.get("id"), "name": server.get("name"), "owner_id": owner_id_of(server),
        "owner": owner_login_of(server),
        "decision": "keep", "reason": "", "expires": metadata.get(EXPIRES) or None,
        "last_activity": metadata.get(LAST_ACTIVITY) or None,
        "idle_deadline": metadata.get(IDLE_DEADLINE) or None,
        "unreachable": unreachable, "attention": False, "error": "", "metadata": {},
    }
    if expires is not None and expires <= now:
        return {**decision, "decision": "delete", "reason": f"expired at {format_time(expires)}"}
    status = str(server.get("status") or "").upper()
    if probe is None or status != "ACTIVE":
        return {**decision, "reason": f"the server is {status or 'in no known state'}"}
    error, seen = probe.get("error") or "the probe failed", None
    if probe.get("ok"):
        try:
            seen = activity(probe.get("status"), probe.get("kernels"), probe.get("terminals"))
        except ProbeError as problem:
            error = str(problem)
    if seen is None:
        return _unreachable(decision, unreachable + 1, error, rules)
    return _reachable(decision, seen, metadata, now, rules)


def _unreachable(decision: dict, count: int, error: str, rules: CullRules) -> dict:
    gone = bool(rules.unreachable_delete) and count >= rules.unreachable_delete
    return {**decision, "decision": "delete" if gone else "keep",
            "reason": f"unreachable {_times(count)} in a row", "unreachable": count,
            "attention": count >= rules.unreachable_report, "error": error,
            "metadata": {} if gone else {UNREACHABLE: str(count)}}


def _reachable(decision: dict, seen: dict, metadata: dict, now: datetime,
               rules: CullRules) -> dict:
    busy = [(seen["busy_kernels"], "busy kernel"), (seen["terminals"], "open terminal"),
            (seen["connections"], "open connection")]
    in_use = [_plural(count, noun) for count, noun in busy if count]
    last = now if in_use else seen["last_activity"]
    if not in_use and now - last >= rules.idle:
        return {**decision, "decision": "delete", "reason": f"idle since {format_time(last)}",
                "last_activity": format_time(last), "unreachable": 0}
    recorded = {LAST_ACTIVITY: format_time(last),
                IDLE_DEADLINE: format_time(last + rules.idle), UNREACHABLE: "0"}
    changes = {key: value for key, value in recorded.items()
               if metadata.get(key, "0" if key == UNREACHABLE else None) != value}
    return {**decision, "reason": in_use[0] if in_use else f"active at {format_time(last)}",
            "last_activity": recorded[LAST_ACTIVITY],
            "idle_deadline": recorded[IDLE_DEADLINE], "unreachable": 0, "metadata": changes}


def jupyter_url(server: dict, default_port: int) -> str | None:
    """``http://<address>:<port>`` of a VM's Jupyter: its first fixed address (the controller
    reaches VMs on the project network, as the site's proxy does; a floating address only when
    the VM lists no fixed one), and the port in its metadata (``ssc_r2d_port``) or
    `default_port`. None when it has no address."""
    entries = [entry for listed in (server.get("addresses") or {}).values()
               for entry in listed or []]
    floating = [e["addr"] for e in entries if e.get("OS-EXT-IPS:type") == "floating"]
    fixed = [e["addr"] for e in entries if e.get("OS-EXT-IPS:type") != "floating"]
    address = (fixed or floating or [None])[0]
    if not address:
        return None
    port = _count((server.get("metadata") or {}).get(PORT)) or default_port
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"


# --- extensions -----------------------------------------------------------------------------


def extend(metadata: dict, now: datetime, hours: float, max_extensions: int,
           max_lifetime_hours: float = 0, extension: int | None = None) -> dict:
    """A VM's expiry after one more extension ("keep it"), from its metadata.

    The new expiry is `hours` after the later of the current expiry and `now`, cut to
    `max_lifetime_hours` after the VM's creation (``ssc_r2d_created``; 0: no such cap). At
    most `max_extensions` extensions are made (counted in ``ssc_r2d_extensions``).
    `extension`, when given, names the extension asked for (1 for the first): when the VM
    has had that many already, the request is a repeat and nothing changes, so a retried
    request does not extend twice.

    Returns a dict: ``changed``, ``expires`` (the new or current expiry, as metadata writes
    it), ``extensions`` (the count after), ``metadata`` (keys to set; {} when unchanged).
    Raises ExtensionRefused, with a message for the researcher, when the site's limits or a
    stale `extension` forbid it, and ValueError for a bad site setting."""
    if not hours > 0:
        raise ValueError(f"the extension must be more than 0 hours, not {hours}")
    if max_extensions < 0 or max_lifetime_hours < 0:
        raise ValueError("max_extensions and max_lifetime_hours must be 0 or more")
    count = _count(metadata.get(EXTENSIONS))
    expires = parse_time(metadata.get(EXPIRES))
    if expires is None:
        raise ExtensionRefused("This VM has no expiry recorded, so there is none to move.")
    unchanged = {"changed": False, "expires": format_time(expires), "extensions": count,
                 "metadata": {}}
    if extension is not None:
        if 1 <= extension <= count:
            return unchanged
        if extension != count + 1:
            raise ExtensionRefused(f"This VM has had {count} extensions, so extension "
                                   f"{extension} cannot be the next; reload and try again.")
    if count >= max_extensions:
        raise ExtensionRefused(
            "This site does not let VMs be kept longer; it goes at "
            f"{format_time(expires)}." if max_extensions == 0 else
            f"This VM has been kept longer {_times(count)}, the most this site allows; it "
            f"goes at {format_time(expires)}.")
    new = max(expires, now) + timedelta(hours=hours)
    created = parse_time(metadata.get(CREATED))
    if max_lifetime_hours and created is not None:
        new = min(new, created + timedelta(hours=max_lifetime_hours))
        if new <= expires:
            raise ExtensionRefused(
                f"This VM already lives as long as this site allows ({max_lifetime_hours:g} "
                f"hours from its start); it goes at {format_time(expires)}.")
    return {"changed": True, "expires": format_time(new), "extensions": count + 1,
            "metadata": {EXPIRES: format_time(new), EXTENSIONS: str(count + 1)}}


def schedule(metadata: dict) -> dict:
    """A VM's schedule as its metadata records it, for a page to show: ``expires`` (when it
    goes, busy or not), ``idle_deadline`` (when it goes if nobody uses it, as of the last cull
    round), ``last_activity`` (aware UTC datetimes, None when not recorded), ``extensions``
    (made so far) and ``unreachable`` (cull rounds in a row whose probe failed)."""
    return {
        "expires": parse_time(metadata.get(EXPIRES)),
        "idle_deadline": parse_time(metadata.get(IDLE_DEADLINE)),
        "last_activity": parse_time(metadata.get(LAST_ACTIVITY)),
        "extensions": _count(metadata.get(EXTENSIONS)),
        "unreachable": _count(metadata.get(UNREACHABLE)),
    }
