"""Filter `ssc.repo2docker.owned_vm`: a user's VM among the cloud's servers, by account id."""

from ansible.errors import AnsibleFilterError
from ansible_collections.ssc.repo2docker.plugins.module_utils.ownership import find_owned

DOCUMENTATION = r"""
name: owned_vm
short_description: Pick a user's VM among servers by the owner's GitHub account id
version_added: 0.1.0
description:
  - Returns the server that is the VM of GitHub account I(user_id) (login I(login)), the rule
    of the module utility C(ownership) that the web app shares.
  - A server whose metadata C(ssc_r2d_owner_id) is I(user_id) is the account's, whatever its
    name (C(ssc-r2d-<user_id>) first).
  - Else a server named by the login as VMs were before (C(ssc-r2d-<login in lower case>))
    that no account id is written on is the account's, and C(adopt) says that the id is to
    be written on it. A server marked with another id is never the account's; whoever takes
    a login that its owner gave up gets none of their VM.
positional: user_id, login
options:
  _input:
    description: Servers, as C(openstack.cloud.server_info) lists them (C(id), C(name),
      C(metadata)).
    type: list
    elements: dict
    required: true
  user_id:
    description: The GitHub account id.
    type: str
    required: true
  login:
    description: The account's login.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Pick the user's VM
  ansible.builtin.set_fact:
    found: "{{ listed.servers | ssc.repo2docker.owned_vm(user_id, login) }}"
"""

RETURN = r"""
_value:
  description: C(servers), the user's VM in a list (empty for none), and C(adopt), whether
    the account id is still to be written on it.
  type: dict
  sample: {"servers": [{"id": "9f0c", "name": "ssc-r2d-583231", "metadata": {}}], "adopt": false}
"""


def owned_vm(servers: list, user_id: str, login: str) -> dict:
    if not isinstance(servers, list):
        raise AnsibleFilterError("owned_vm: its input must be a list of servers")
    server, adopt = find_owned(servers, str(user_id), str(login))
    return {"servers": [server] if server is not None else [], "adopt": adopt}


class FilterModule:
    def filters(self):
        return {"owned_vm": owned_vm}
