#!/usr/bin/python
# Copyright: (c) 2025, ssc-repo2docker developers
# BSD 3-Clause License (see https://opensource.org/licenses/BSD-3-Clause)

DOCUMENTATION = r"""
---
module: cull_plan
short_description: Probe each user VM's Jupyter and decide which VMs go
version_added: 0.1.0
author: ssc-repo2docker developers
description:
  - Asks the Jupyter server of every user VM (a server whose metadata names an owner,
    C(ssc_r2d_owner_id), or C(ssc_r2d_owner) on a VM named by login as VMs were before) how
    it is used, and decides for each whether it goes this round and
    why. It changes nothing itself; C(playbooks/cull.yml) records what it returns in
    I(updates) on the VMs and deletes the ones in I(culled).
  - The probe asks C(/api/status) (last activity, open connections), C(/api/kernels) (each
    kernel's C(execution_state), C(last_activity) and connections) and C(/api/terminals),
    directly (never through a proxy), with the VM's token derived from I(token_secret) and its
    nonce (C(ssc_r2d_nonce)), and with C(no_track_activity) so that the probe is not activity
    itself. A server without a terminals API (HTTP 404) has no terminals.
  - 'The rules (module utility C(culling)): a VM past its expiry (C(ssc_r2d_expires)) goes,
    busy or not. A VM is idle only when its probe succeeds and says so: a busy kernel, an open
    terminal or an open connection is activity now; otherwise the VM goes when its last
    activity is I(idle_hours) old. A probe that fails or times out is never idle: it counts
    one more round in C(ssc_r2d_unreachable), reset by the next probe that succeeds; at
    I(unreachable_report) rounds in a row the VM is flagged (I(attention), and a warning), and
    it goes only when I(unreachable_delete) is set and reached.'
  - A server that is not C(ACTIVE) is not probed and is kept until it expires; its count is
    left alone (Nova refuses metadata updates in some states, such as C(BUILD)).
options:
  servers:
    description:
      - The project's servers, as C(openstack.cloud.server_info) lists them (C(id),
        C(name), C(status), C(metadata), C(addresses)). Servers without C(ssc_r2d_owner_id)
        or C(ssc_r2d_owner) in their metadata are not user VMs and are ignored.
    type: list
    elements: dict
    required: true
  token_secret:
    description: The site's secret the VMs' Jupyter tokens are derived from (at least 32
      characters).
    type: str
    required: true
  port:
    description: Jupyter's port on VMs whose metadata does not say (C(ssc_r2d_port)).
    type: int
    default: 8888
  idle_hours:
    description: Hours without activity after which a VM goes (fractions allowed).
    type: float
    required: true
  probe_timeout:
    description:
      - Seconds of wall-clock time one VM's probe (its three requests) may take; past it the
        probe has failed. The whole round takes at most about
        ceil(VMs / I(concurrency)) times this.
    type: float
    default: 10
  concurrency:
    description: How many VMs are probed at once.
    type: int
    default: 20
  unreachable_report:
    description: Failed probes in a row after which a VM is flagged for the operator.
    type: int
    default: 3
  unreachable_delete:
    description: Failed probes in a row after which a VM goes (0 = never).
    type: int
    default: 0
notes:
  - Read only; it runs in check mode too. Times are UTC, written C(2026-01-31T12:00:00Z).
attributes:
  check_mode:
    support: full
    description: Probes and decides as in a normal run; it never changes anything.
  diff_mode:
    support: none
    description: No diff is reported.
"""

EXAMPLES = r"""
- name: List the servers
  openstack.cloud.server_info:
    cloud: mycloud
  register: all_servers

- name: Decide which user VMs go
  ssc.repo2docker.cull_plan:
    servers: "{{ all_servers.servers }}"
    token_secret: "{{ token_secret }}"
    idle_hours: 4
    unreachable_delete: 12
  register: plan

- name: Say why each goes
  ansible.builtin.debug:
    msg: "{{ plan.culled | map(attribute='reason') | list }}"
"""

RETURN = r"""
now:
  description: The time of this round.
  returned: always
  type: str
  sample: "2026-01-31T12:00:00Z"
servers:
  description: One decision per user VM, by name.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The server's id.
      type: str
    name:
      description: The server's name.
      type: str
    owner_id:
      description: The GitHub account id of the VM's owner (C(ssc_r2d_owner_id)); "" for a
        VM named by login that no run of the role C(ssc.repo2docker.user_vm) has marked yet.
      type: str
      sample: "583231"
    owner:
      description: The login of the VM's owner, for people (C(ssc_r2d_owner_login), else
        C(ssc_r2d_owner)).
      type: str
    decision:
      description: C(delete) or C(keep).
      type: str
      sample: keep
    reason:
      description:
        - Why, for people. C(expired at <time>), C(idle since <time>), C(unreachable <n>
          time(s) in a row) (deleted only past I(unreachable_delete)), or, for VMs kept,
          C(busy kernel), C(<n> busy kernels), C(open terminal), C(open connection) (and
          their plurals), C(active at <time>), C(the server is <status>).
      type: str
      sample: busy kernel
    expires:
      description: When the VM goes, busy or not (C(ssc_r2d_expires)); null when unknown.
      type: str
    last_activity:
      description: Its last activity (now when it is in use); null when never seen.
      type: str
    idle_deadline:
      description: When it goes if nobody uses it (last activity + I(idle_hours)); null when
        unknown.
      type: str
    unreachable:
      description: Failed probes in a row, this round's included.
      type: int
    attention:
      description: Whether I(unreachable) reached I(unreachable_report).
      type: bool
    error:
      description: Why this round's probe failed ("" when it did not).
      type: str
      sample: no answer within 10 s
culled:
  description: The VMs that go (C(decision=delete)), with C(id), C(name), C(owner_id),
    C(owner) and C(reason).
  returned: always
  type: list
  elements: dict
attention:
  description: Names of the VMs unreachable for I(unreachable_report) rounds in a row or more.
  returned: always
  type: list
  elements: str
updates:
  description: What to record on the VMs that stay (C(id), C(name), C(metadata)), for
    C(openstack.cloud.server_metadata); only keys whose value changes
    (C(ssc_r2d_last_activity), C(ssc_r2d_idle_deadline), C(ssc_r2d_unreachable)).
  returned: always
  type: list
  elements: dict
"""

import http.client
import json
import threading
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ssc.repo2docker.plugins.module_utils.culling import (
    CullRules,
    ProbeError,
    decide,
    format_time,
    jupyter_url,
    utcnow,
)
from ansible_collections.ssc.repo2docker.plugins.module_utils.jupyter_token import derive
from ansible_collections.ssc.repo2docker.plugins.module_utils.ownership import is_user_vm

NONCE = "ssc_r2d_nonce"
MAX_ANSWER = 1 << 20  # bytes read from one answer
# Listing kernels or terminals is API activity to Jupyter unless the request says otherwise.
UNTRACKED = "?no_track_activity=1"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str, token: str, deadline: float) -> object:
    """GET `url` with the token; its JSON. The socket timeout is the time left until
    `deadline` (time.monotonic()). Raises TimeoutError past it, urllib's errors, and
    ValueError for an answer that is not JSON."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    if not url.startswith("http://"):  # jupyter_url's, never a user's
        raise ValueError(f"not an http:// URL: {url}")
    request = urllib.request.Request(url, headers={  # noqa: S310 (http:// only, above)
        "Authorization": f"token {token}", "Accept": "application/json"})
    with _DIRECT.open(request, timeout=left) as response:
        return json.loads(response.read(MAX_ANSWER))


def probe(base: str, token: str, timeout: float) -> dict:
    """Ask the Jupyter server at `base` (``http://host:port``) about its use, within about
    `timeout` seconds. Returns ``{"ok": True, "status": ..., "kernels": ..., "terminals":
    ...}`` (the three answers' JSON) or ``{"ok": False, "error": <why>}``; never raises for
    a network or HTTP failure."""
    deadline = time.monotonic() + timeout
    path = "/api/status"
    try:
        status = _get(base + path, token, deadline)
        path = "/api/kernels"
        kernels = _get(base + path + UNTRACKED, token, deadline)
        path = "/api/terminals"
        try:
            terminals = _get(base + path + UNTRACKED, token, deadline)
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise
            terminals = []  # a server without the terminals extension
    except urllib.error.HTTPError as error:
        return {"ok": False, "error": f"{path} answered HTTP {error.code}"}
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, TimeoutError):
            return {"ok": False, "error": f"no answer within {timeout:g} s"}
        return {"ok": False, "error": f"{path}: {getattr(reason, 'strerror', None) or reason}"}
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {timeout:g} s"}
    except ValueError:
        return {"ok": False, "error": f"{path} did not answer JSON"}
    except OSError as error:  # a connection reset while reading, ...
        return {"ok": False, "error": f"{path}: {error.strerror or error}"}
    except http.client.HTTPException as error:  # not HTTP at all
        return {"ok": False, "error": f"{path}: {type(error).__name__}"}
    return {"ok": True, "status": status, "kernels": kernels, "terminals": terminals}


def probe_all(targets: list, timeout: float, concurrency: int) -> dict:
    """Probe `targets` (``(key, base URL, token)`` triples), `concurrency` at a time, each
    in a daemon thread given `timeout` seconds of wall-clock time: one that takes longer (a
    server dripping its answer) is a failed probe, and its thread is left to die with the
    process. Returns {key: probe result}."""
    results = {}
    for start in range(0, len(targets), max(1, concurrency)):
        running = {}
        for key, base, token in targets[start:start + max(1, concurrency)]:
            box = {}
            thread = threading.Thread(
                target=lambda box=box, base=base, token=token: box.update(
                    result=probe(base, token, timeout)), daemon=True)
            thread.start()
            running[key] = (thread, box)
        deadline = time.monotonic() + timeout + 0.5
        for key, (thread, box) in running.items():
            thread.join(max(0.0, deadline - time.monotonic()))
            results[key] = box.get("result") or {
                "ok": False, "error": f"no answer within {timeout:g} s"}
    return results


def _target(server: dict, secret: str, port: int) -> tuple:
    """(URL, token) to probe `server` with. Raises ProbeError when there is none (no nonce
    to derive the token from, no address)."""
    nonce = (server.get("metadata") or {}).get(NONCE)
    if not nonce:
        raise ProbeError(f"no {NONCE} in its metadata to derive its token from")
    url = jupyter_url(server, port)
    if url is None:
        raise ProbeError("the server has no address")
    return url, derive(secret, nonce)


ARGUMENT_SPEC = dict(
    servers=dict(type="list", elements="dict", required=True),
    token_secret=dict(type="str", required=True, no_log=True),
    port=dict(type="int", default=8888),
    idle_hours=dict(type="float", required=True),
    probe_timeout=dict(type="float", default=10),
    concurrency=dict(type="int", default=20),
    unreachable_report=dict(type="int", default=3),
    unreachable_delete=dict(type="int", default=0),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        rules = CullRules(params["idle_hours"], params["unreachable_report"],
                          params["unreachable_delete"])
        derive(params["token_secret"], "check")
    except ValueError as error:
        module.fail_json(msg=str(error))
    if not params["probe_timeout"] > 0 or params["concurrency"] < 1:
        module.fail_json(msg="probe_timeout and concurrency must be more than 0")

    servers = sorted((s for s in params["servers"] if is_user_vm(s)),
                     key=lambda server: (server.get("name") or "", server.get("id") or ""))
    targets, probes = [], {}
    for server in servers:
        if str(server.get("status") or "").upper() != "ACTIVE":
            continue
        try:
            targets.append((server["id"], *_target(server, params["token_secret"],
                                                   params["port"])))
        except ProbeError as error:
            probes[server["id"]] = {"ok": False, "error": str(error)}
    probes.update(probe_all(targets, params["probe_timeout"], params["concurrency"]))
    now = utcnow()
    decisions = [decide(s, probes.get(s["id"]), now, rules) for s in servers]
    for decision in decisions:
        if decision["attention"]:
            module.warn(f"{decision['name']} ({decision['owner']}) is {decision['reason']}: "
                        f"{decision['error']}")
    module.exit_json(
        changed=False, now=format_time(now),
        servers=[{k: v for k, v in d.items() if k != "metadata"} for d in decisions],
        culled=[{k: d[k] for k in ("id", "name", "owner_id", "owner", "reason")}
                for d in decisions if d["decision"] == "delete"],
        attention=[d["name"] for d in decisions if d["attention"]],
        updates=[{"id": d["id"], "name": d["name"], "metadata": d["metadata"]}
                 for d in decisions if d["decision"] == "keep" and d["metadata"]],
    )


if __name__ == "__main__":
    main()
