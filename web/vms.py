"""The users' VMs as the cloud has them: read one user's VM again (after an interrupted job),
and bring the ``vms`` rows in line with the cloud every ``vm_refresh_interval`` seconds (a VM
culled by playbooks/cull.yml or deleted by an operator leaves its owner's page; one gone past
its recorded expiry or idle deadline leaves its owner a ``cull`` job saying why; the schedule
each cull round writes to a VM's metadata reaches its page: web/lifetime.py).

A VM is the user's by their GitHub account id, as roles/user_vm finds it (one rule, module
utility ``ownership``): the server marked with the id (``ssc_r2d_owner_id``), else one named
by the login as VMs were before ids (``ssc-r2d-<login>``) and marked with no id. A VM marked
with another account's id is never the user's, whatever login they now sign in with.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable
from urllib.parse import urlsplit

from ansible_collections.ssc.repo2docker.plugins.module_utils import (
    launch_request,
    ownership,
    server_address,
)

from web import db, lifetime
from web.config import Config

log = logging.getLogger(__name__)


def open_cloud(config: Config):
    """An openstacksdk connection to the cloud ``OS_CLOUD`` names (in the settings' ``env``,
    else this process's environment), with clouds.yaml from ``OS_CLIENT_CONFIG_FILE`` (the
    same way), or None without a cloud name."""
    cloud = config.env.get("OS_CLOUD") or os.environ.get("OS_CLOUD")
    if not cloud:
        return None
    import openstack.config
    import openstack.connection

    config_file = (config.env.get("OS_CLIENT_CONFIG_FILE")
                   or os.environ.get("OS_CLIENT_CONFIG_FILE"))
    loader = openstack.config.OpenStackConfig(config_files=[config_file] if config_file else None)
    return openstack.connection.Connection(config=loader.get_one(cloud=cloud))


def list_vms(cloud) -> list:
    """Every server of the cloud (an openstacksdk connection) whose name is a user VM's."""
    # Nova's name filter is a regular expression
    return list(cloud.compute.servers(name=f"^{launch_request.VM_NAME_PREFIX}"))


def _addresses(cloud, server) -> set[str]:
    """The server's fixed and floating addresses as Neutron has them (module utility
    ``server_address``): Nova's ``addresses`` lists a new floating IP only once Neutron has
    told it, so a URL at a floating IP reported a moment ago would read as stale there."""
    ports = [dict(port) for port in cloud.network.ports(device_id=server.id)]
    floating = [dict(ip) for port in ports for ip in cloud.network.ips(port_id=port["id"])]
    found = server_address.server_addresses(ports, floating)
    return {address for address in (found["fixed_ip"], *found["floating_ips"]) if address}


def owned_vm(servers: Iterable, github_id: int, login: str):
    """The VM of account `github_id` (login `login`) among `servers`, or None."""
    return ownership.find_owned(servers, github_id, login)[0]


def refresh_vm(conn: sqlite3.Connection, github_id: int, login: str, cloud) -> str | None:
    """Read the VM of account `github_id` (login `login`) from the cloud (`cloud`: an
    openstacksdk connection) and update its
    ``vms`` row. Gone (or not the user's): the row is deleted, returns None. There: the row
    gets the server's name, repository and ref (from its metadata) and a state, returned:
    ``ready`` when it is ACTIVE and the stored URL points at one of its addresses (from
    Neutron; a finished
    job reported it; the URL, the address and the token stay as stored), ``unknown`` when it
    is ACTIVE but no finished job saw its Jupyter answer (starting again reports it), otherwise the
    server's status in lower case (``build``, ``error``, ...)."""
    name = launch_request.vm_name(github_id)
    server = owned_vm(list_vms(cloud), github_id, login)
    if server is None:
        db.delete_vm(conn, github_id)
        return None
    metadata = dict(getattr(server, "metadata", None) or {})
    row = db.vm_of(conn, github_id)
    url = (row["url"] if row else "") or ""
    if url and urlsplit(url).hostname not in _addresses(cloud, server):
        url = ""
    status = (server.status or "unknown").lower()
    state = ("ready" if url else "unknown") if status == "active" else status
    db.save_vm(conn, github_id, login, name=server.name or name,
               repo=metadata.get("ssc_r2d_repo", ""), ref=metadata.get("ssc_r2d_ref", ""),
               url=url, state=state, address=(row["address"] or "") if url else "",
               token=(row["token"] or "") if url else "")
    lifetime.save_metadata(conn, db.vm_of(conn, github_id), metadata)
    return state


def reconcile_vms(conn: sqlite3.Connection, servers: Iterable, listed_at: str) -> list[str]:
    """Bring the ``vms`` rows in line with `servers` (the cloud's, as listed at `listed_at`,
    a stored timestamp) where the cloud changed behind the app: a VM culled or deleted by an
    operator is gone from its owner's page (and its owner told why, when its expiry or idle
    deadline had passed: :func:`web.lifetime.explain_gone`); one in ERROR says so; the
    schedule in a VM's metadata is copied to its row. Rows of users with a queued or running
    job, and rows written since the listing, are left to the jobs. Returns the logins whose
    row changed (beyond its schedule)."""
    servers = list(servers)
    changed = []
    with db.transaction(conn):
        for row in db.vms_left_to_the_cloud(conn, listed_at):
            github_id, login, state = row["github_id"], row["login"], row["state"]
            server = owned_vm(servers, github_id, login)
            if server is None:
                reason = lifetime.explain_gone(row)
                if reason:
                    lifetime.tell_owner(conn, github_id, login, row["name"] or
                                        launch_request.vm_name(github_id), reason,
                                        row["repo"] or "", row["ref"] or "")
                db.delete_vm(conn, github_id)
            else:
                lifetime.save_metadata(conn, row, dict(getattr(server, "metadata", None) or {}))
                if (server.status or "").upper() in ("ACTIVE", state.upper()):
                    continue
                db.set_vm_state(conn, github_id, (server.status or "unknown").lower())
            changed.append(login)
    for login in changed:
        log.info("%s's VM changed in the cloud: its row was brought in line", login)
    return changed
