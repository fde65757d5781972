"""Filter `ssc.repo2docker.jupyter_token`: a VM's Jupyter token from the site's secret."""

from ansible.errors import AnsibleFilterError
from ansible_collections.ssc.repo2docker.plugins.module_utils.jupyter_token import derive

DOCUMENTATION = r"""
name: jupyter_token
short_description: Derive a VM's Jupyter token from the site secret and the VM's nonce
version_added: 0.1.0
description:
  - Returns HMAC-SHA256(secret, nonce) as 48 hexadecimal characters.
  - Each VM gets a fresh random nonce (kept in its metadata, not secret), so each VM has its
    own unpredictable token, and the controller can compute it again later (to report the
    URL of an existing VM, or to ask Jupyter for its last activity when culling) without the
    token being stored anywhere.
  - Keep the secret secret; handle the result with C(no_log).
positional: nonce
options:
  _input:
    description: The site's token secret (at least 32 characters).
    type: str
    required: true
  nonce:
    description: The VM's nonce.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Compute the token
  ansible.builtin.set_fact:
    token: "{{ user_vm_token_secret | ssc.repo2docker.jupyter_token(nonce) }}"
  no_log: true
"""

RETURN = r"""
_value:
  description: The token.
  type: str
"""


def jupyter_token(secret: str, nonce: str) -> str:
    try:
        return derive(secret, nonce)
    except ValueError as error:
        raise AnsibleFilterError(f"jupyter_token: {error}") from None


class FilterModule:
    def filters(self):
        return {"jupyter_token": jupyter_token}
