"""The site values the app shares with the playbooks, read from the inventory they run with.

An operator writes where repositories may come from once, in the site's inventory (e.g.
``group_vars/all/user_vm.yml``), as the role ``user_vm`` reads it:

    user_vm_allowed_hosts: [github.com, gitlab.com, gitlab.example.org]   # host[:port][/prefix]
    user_vm_allow_http_hosts: []                                   # of those, plain http://
    user_vm_case_insensitive_hosts: []     # more hosts where Owner/Name is owner/name
    user_vm_subgroup_hosts: []             # more hosts with <group>/<subgroup>/.../<name>

The web app checks a request with the same values before it queues a job, and the job
runner again before it starts the playbook. They are read here with Ansible's own inventory
and variable managers, as the playbooks see them for ``localhost`` (the host the playbooks
run on: ``all``'s group vars and the host's own, templates rendered), falling back to the
role's defaults (``roles/user_vm/defaults/main.yml``), as the role does.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from web import REPO_ROOT

ROLE_DEFAULTS = REPO_ROOT / "roles" / "user_vm" / "defaults" / "main.yml"
HOST = "localhost"  # the playbooks' hosts (playbooks/user_vm.yml)
ALLOWED_HOSTS = "user_vm_allowed_hosts"
ALLOW_HTTP_HOSTS = "user_vm_allow_http_hosts"
CASE_INSENSITIVE_HOSTS = "user_vm_case_insensitive_hosts"
SUBGROUP_HOSTS = "user_vm_subgroup_hosts"
SETTINGS = (ALLOWED_HOSTS, ALLOW_HTTP_HOSTS, CASE_INSENSITIVE_HOSTS, SUBGROUP_HOSTS)


class RepositoryHosts(NamedTuple):
    """The role's repository settings, each a tuple of ``host[:port][/prefix]`` strings."""

    allowed: tuple[str, ...]  # user_vm_allowed_hosts
    allow_http: tuple[str, ...]  # user_vm_allow_http_hosts
    case_insensitive: tuple[str, ...]  # user_vm_case_insensitive_hosts
    subgroups: tuple[str, ...]  # user_vm_subgroup_hosts


class InventoryError(Exception):
    """The inventory could not be read, or gives an unusable value; says which and why."""


def repository_hosts(inventory: str | Path, role_defaults: Path = ROLE_DEFAULTS
                     ) -> RepositoryHosts:
    """``user_vm_allowed_hosts``, ``user_vm_allow_http_hosts``,
    ``user_vm_case_insensitive_hosts`` and ``user_vm_subgroup_hosts`` as the playbooks see
    them for ``localhost`` with the inventory `inventory` (a file or a directory), each a
    tuple of ``host[:port][/prefix]`` strings (entries not checked here). Raises
    InventoryError when
    the inventory is missing or no inventory plugin can parse it, or a value is not a list
    of strings."""
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.utils.vars import combine_vars
    from ansible.vars.manager import VariableManager
    from ansible.vars.plugins import get_vars_from_inventory_sources

    source = str(Path(inventory).resolve())
    if not Path(source).exists():
        raise InventoryError(f"{inventory} does not exist")
    loader = DataLoader()
    try:
        # InventoryManager.parse_sources, parsing once: parse_source says whether a plugin
        # parsed it (parse_sources only warns), then its post-processing and the vars
        # plugins of the "inventory" stage (group_vars/ with ANSIBLE_RUN_VARS_PLUGINS=start;
        # with the default, "demand", get_vars reads them)
        manager = InventoryManager(loader, sources=[source], parse=False)
        if not manager.parse_source(source):
            raise InventoryError(f"{inventory} could not be parsed as an inventory (see "
                                 "the warnings above)")
        manager.reconcile_inventory()
        for entity in (*manager.groups.values(), *manager.hosts.values()):
            entity.vars = combine_vars(entity.vars, get_vars_from_inventory_sources(
                loader, [source], [entity], "inventory"))
        variables = VariableManager(loader=loader, inventory=manager).get_vars(
            host=manager.get_host(HOST))
        defaults = loader.load_from_file(str(role_defaults)) or {}
        values = {**defaults, **variables}
        templar = Templar(loader, variables=values)
        found = {name: templar.template(values.get(name))
                 for name in SETTINGS}
    except AnsibleError as error:
        raise InventoryError(f"{inventory}: {error.message}") from None
    for name, value in found.items():
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise InventoryError(f"{inventory}: {name} must be a list of host[:port][/prefix] "
                                 f"strings, not {value!r}")
    # str(): plain strings, not Ansible's tagged ones
    return RepositoryHosts(*(tuple(str(item) for item in found[name]) for name in SETTINGS))
