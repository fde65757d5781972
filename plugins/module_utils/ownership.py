# Copyright: (c) 2025, ssc-repo2docker developers
# BSD 3-Clause License (see https://opensource.org/licenses/BSD-3-Clause)
"""Which server is a user's VM: the one rule, shared by roles/user_vm (through the filter
``ssc.repo2docker.owned_vm``), the modules and the web app.

A researcher is their GitHub account's number, not its login: GitHub frees a login when its
owner renames the account, and someone else may then take it. So a VM is named
``ssc-r2d-<account id>`` and carries its owner's id in its metadata (``ssc_r2d_owner_id``),
with the login only for people to read (``ssc_r2d_owner_login``).

VMs made before that are named by the login (``ssc-r2d-<login in lower case>``) and carry
only ``ssc_r2d_owner`` (the login in lower case). Such a VM is still the user's who gives that
login, until it is marked with an id (roles/user_vm marks it with the request's id the first
time it finds it): from then on it is that account's only, under any login, and a new holder
of the freed login does not find it.

Pure Python, standard library only. Servers are mappings or objects (openstacksdk's) with
``id``, ``name`` and ``metadata``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

VM_NAME_PREFIX = "ssc-r2d-"
OWNER_ID = "ssc_r2d_owner_id"
OWNER_LOGIN = "ssc_r2d_owner_login"
LEGACY_OWNER = "ssc_r2d_owner"  # the login in lower case, on VMs named by login


def _field(server: object, key: str) -> object:
    if isinstance(server, Mapping):
        return server.get(key)
    return getattr(server, key, None)


def metadata_of(server: object) -> dict:
    """The server's metadata as a plain dict ({} when it has none)."""
    return dict(_field(server, "metadata") or {})


def owner_id_of(server: object) -> str:
    """The account id a server's metadata names (``ssc_r2d_owner_id``), "" for none."""
    return str(metadata_of(server).get(OWNER_ID) or "")


def owner_login_of(server: object) -> str:
    """The owner's login as the metadata has it, for people to read ("" for none)."""
    metadata = metadata_of(server)
    return str(metadata.get(OWNER_LOGIN) or metadata.get(LEGACY_OWNER) or "")


def is_user_vm(server: object) -> bool:
    """Whether `server` is a user VM: its metadata names an owner, by id or (older VMs) by
    login."""
    metadata = metadata_of(server)
    return bool(metadata.get(OWNER_ID) or metadata.get(LEGACY_OWNER))


def vm_name_for_id(user_id: str | int) -> str:
    """``ssc-r2d-<id>``: a valid host name label for any GitHub account id."""
    return f"{VM_NAME_PREFIX}{user_id}"


def legacy_vm_name(login: str) -> str:
    """The name a VM made before ids had: ``ssc-r2d-<login in lower case>``."""
    return f"{VM_NAME_PREFIX}{login.lower()}"


def find_owned(servers: Iterable, user_id: str | int, login: str) -> tuple[object | None, bool]:
    """The VM of account `user_id` (GitHub login `login`) among `servers`, and whether it
    still has to be marked with the id: ``(server, adopt)``, ``(None, False)`` for none.

    Marked with `user_id` (``ssc_r2d_owner_id``): the account's, whatever its name (the one
    named ``ssc-r2d-<id>`` first). Else a VM named by `login` (``ssc-r2d-<login>``, any case)
    and marked with no id: the account's, to be marked (``adopt`` true). A VM marked with
    another id is never the account's, whatever its name.
    """
    user_id = str(user_id)
    servers = list(servers)
    marked = [s for s in servers if owner_id_of(s) == user_id]
    if marked:
        marked.sort(key=lambda s: (_field(s, "name") != vm_name_for_id(user_id),
                                   str(_field(s, "name") or ""), str(_field(s, "id") or "")))
        return marked[0], False
    legacy = legacy_vm_name(login) if login else None
    for server in servers:
        if (legacy and str(_field(server, "name") or "").lower() == legacy
                and not owner_id_of(server)
                and metadata_of(server).get(LEGACY_OWNER) in (None, "", login.lower())):
            return server, True
    return None, False
