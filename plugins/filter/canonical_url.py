"""Filter `ssc.repo2docker.canonical_url`: the one spelling of a repository URL."""

from ansible.errors import AnsibleFilterError
from ansible_collections.ssc.repo2docker.plugins.module_utils.launch_request import (
    canonical_url as _canonical_url,
)

DOCUMENTATION = r"""
name: canonical_url
short_description: The one spelling of a repository URL, so that two spellings compare equal
version_added: 0.1.0
description:
  - Returns the repository URL with its scheme and host in lower case, without a trailing
    C(/) and without C(.git) at the end, and with the path after the host in lower case on
    hosts that find repositories whatever the case of owner and name (github.com,
    gist.github.com, gitlab.com, codeberg.org, and the entries of I(case_insensitive_hosts)).
  - So C(https://github.com/Owner/Repo.git/) and C(https://github.com/owner/repo) give the
    same URL. The collection compares and records repositories in this spelling only, in
    the launch request's checked C(repo), the image's list of pre-built repositories, a VM's
    metadata and the launcher's image name.
  - The rules are those of C(canonical_url) in the module utility
    C(ansible_collections.ssc.repo2docker.plugins.module_utils.launch_request), which the web
    app uses too. A URL with credentials, C(%)-encoding, a query, a fragment, a scheme other
    than C(https://) or C(http://), or path parts other than letters, digits, C(.), C(_) and
    C(-) fails the task.
positional: case_insensitive_hosts
options:
  _input:
    description: The repository URL, C(http[s]://host[:port]/a/.../name[.git]).
    type: str
    required: true
  case_insensitive_hosts:
    description:
      - More hosts that ignore the case of owner and name, each C(host[:port][/prefix]);
        the path after the prefix is folded. The role C(ssc.repo2docker.user_vm) passes
        C(user_vm_case_insensitive_hosts).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Compare a VM's repository with a request's
  ansible.builtin.set_fact:
    same_repository: >-
      {{ (server.metadata.ssc_r2d_repo | ssc.repo2docker.canonical_url(hosts))
      == (repo | ssc.repo2docker.canonical_url(hosts)) }}
  vars:
    hosts: "{{ user_vm_case_insensitive_hosts }}"
"""

RETURN = r"""
_value:
  description: The URL in its canonical spelling.
  type: str
  sample: https://github.com/binder-examples/requirements
"""


def canonical_url(url: str, case_insensitive_hosts: list[str] | None = None) -> str:
    try:
        return _canonical_url(url, case_insensitive_hosts or ())
    except ValueError as error:  # LaunchRequestError, or a bad case_insensitive_hosts entry
        raise AnsibleFilterError(f"canonical_url: {error}") from None


class FilterModule:
    def filters(self):
        return {"canonical_url": canonical_url}
