"""Lookup `ssc.repo2docker.launcher_contract`: the controller↔VM contract's paths and unit name
(plugins/module_utils/launcher_contract.py), for the roles, which cannot import Python."""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.ssc.repo2docker.plugins.module_utils.launcher_contract import CONTRACT

DOCUMENTATION = r"""
name: launcher_contract
short_description: Where a user VM's launcher and the controller meet (paths, unit name)
version_added: 0.1.0
author: ssc-repo2docker developers
description:
  - Returns the values of the module utility
    C(ansible_collections.ssc.repo2docker.plugins.module_utils.launcher_contract), the one
    place they are written. The module C(ssc.repo2docker.user_server) imports them; the roles
    read them through this lookup.
  - C(launcher) is the launcher's path on the VM, C(launcher_unit) its systemd unit,
    C(launch_settings) the JSON file naming what to serve, C(jupyter_env) the file holding the
    Jupyter token, C(launcher_state) the JSON file where the launcher records its progress.
options:
  _terms:
    description: Names of the values wanted.
    type: list
    elements: str
    choices: [launcher, launcher_unit, launch_settings, jupyter_env, launcher_state]
    required: true
"""

EXAMPLES = r"""
- name: Read the launcher's state on a user VM
  ansible.builtin.command:
    argv: [cat, "{{ lookup('ssc.repo2docker.launcher_contract', 'launcher_state') }}"]
  changed_when: false
"""

RETURN = r"""
_raw:
  description: The value of each name, in order (a path, or the unit's name).
  type: list
  elements: str
"""


class LookupModule(LookupBase):
    def run(self, terms: list, variables: dict | None = None, **kwargs) -> list[str]:
        """The contract's value for each term; an unknown name fails with the known ones."""
        self.set_options(var_options=variables, direct=kwargs)
        unknown = [term for term in terms if term not in CONTRACT]
        if unknown:
            raise AnsibleLookupError(f"launcher_contract: no value named {unknown}; "
                                     f"known: {sorted(CONTRACT)}")
        return [CONTRACT[term] for term in terms]
