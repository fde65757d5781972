#!/usr/bin/python
# Copyright: (c) 2025, ssc-repo2docker developers
# BSD 3-Clause License (see https://opensource.org/licenses/BSD-3-Clause)

DOCUMENTATION = r"""
---
module: launch_request
short_description: Check a launch request's user input (GitHub account, repository URL, git ref)
version_added: 0.1.0
author: ssc-repo2docker developers
description:
  - Checks the values of a request to launch a VM, the GitHub account's id I(user_id) and
    login I(user), the repository URL I(repo) and the git ref I(ref), and returns them
    checked, with the repository URL rebuilt from its checked parts in its one canonical
    spelling (so that every spelling of a repository is one image and one VM) and the name
    of the user's VM, C(ssc-r2d-<user_id>).
  - The account id is the user's identity in the cloud (VM name, owner metadata); the login
    is shown to people and names the VM that a user had before VMs were named by id
    (I(legacy_vm_name)), since GitHub frees a login when its owner renames the account.
  - The rules live in one place, the module utility
    C(ansible_collections.ssc.repo2docker.plugins.module_utils.launch_request), which the web
    app imports too; this module only hands it the options.
  - The first invalid value fails the task with a message that names the field and says why;
    nothing else runs.
  - The values are data. The module never templates them; when they come from a user, pass
    them as extra vars tagged C(!unsafe) so that Ansible does not template them either.
  - The module never changes anything; it always reports C(changed=false).
options:
  user_id:
    description:
      - The user's GitHub account id (the REST API's C(id) of the user), a positive whole
        number; it never changes when the login does.
    type: str
    required: true
  user:
    description:
      - The user's GitHub login, for display, as GitHub applies its rules - 1 to 39 ASCII
        letters, digits and hyphens, not first; older accounts may have a login that ends in
        a hyphen or has two in a row, and an Enterprise Managed User's ends in
        C(_<shortcode>).
    type: str
    required: true
  repo:
    description:
      - The repository URL, C(https://<host>[:port][/prefix]/<owner>/<name>[.git]) where
        C(<host>[:port][/prefix]) is an entry of I(allowed_hosts); the host is compared
        without regard to case and exactly (no sub-domains), a port is accepted only when the
        entry names it.
      - I(owner) and I(name) start with an ASCII letter or digit and have only letters, digits,
        C(.), C(_) and C(-), at most 100 characters, no C(..); I(name) may end in C(.git) once.
      - On gitlab.com and the hosts of I(subgroup_hosts), a project may sit in groups and
        subgroups, C(<group>/<subgroup>/.../<name>), at most 20 groups deep (GitLab's limit).
      - One trailing C(/) is dropped. Refused are credentials or any C(@), C(%)-encoding,
        backslashes, a query, a fragment, white space, control or non-ASCII characters, other
        schemes (C(file://), C(git://), C(ssh://)), git's C(transport::address) form (C(ext::)),
        scp-like C(git@host:path), a leading C(-), other paths and more than 2000 characters.
      - Omit it for a request that names no repository, such as deleting the user's VM; the
        module then checks I(user_id) and I(user) (and I(ref), if given) and returns
        C(repo=null).
    type: str
  ref:
    description:
      - The branch, tag, commit id or full ref name to launch. Empty or absent means the
        repository's default branch.
      - Must be a valid ref name by the rules of C(git check-ref-format --allow-onelevel), at
        most 255 characters, not start with C(-), and have only ASCII letters, digits and
        C(.), C(_), C(-), C(/), C(+), C(@) (stricter than git, which also allows characters
        that shells and template engines give a meaning to).
    type: str
    default: ""
  allowed_hosts:
    description:
      - The git hosts a repository may come from, each C(host[:port][/prefix]), for example
        C(github.com) or C(10.89.0.1:8770/git) (a host that serves its repositories under
        C(/git/<owner>/<name>.git)).
      - Required with I(repo). The role C(ssc.repo2docker.user_vm) passes the site's
        C(user_vm_allowed_hosts).
    type: list
    elements: str
  allow_http_hosts:
    description:
      - The C(host[:port]) of I(allowed_hosts) entries for which C(http://) is accepted as well
        as C(https://), for example a local test git host. A C(/prefix) written here is ignored.
    type: list
    elements: str
    default: []
  case_insensitive_hosts:
    description:
      - More C(host[:port][/prefix]) entries that find repositories whatever the case of owner
        and name, as github.com, gist.github.com, gitlab.com and codeberg.org do (always
        included); the returned I(repo) has the path after the host (after the prefix) in
        lower case there.
      - The role C(ssc.repo2docker.user_vm) passes C(user_vm_case_insensitive_hosts).
    type: list
    elements: str
    default: []
  subgroup_hosts:
    description:
      - More C(host[:port][/prefix]) entries whose projects may sit in nested groups, as on
        gitlab.com (always included), for example a site's own GitLab.
      - The role C(ssc.repo2docker.user_vm) passes C(user_vm_subgroup_hosts).
    type: list
    elements: str
    default: []
notes:
  - Supports check mode; the module behaves the same in it.
attributes:
  check_mode:
    support: full
    description: Runs the same in check mode; it never changes anything.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
"""

EXAMPLES = r"""
- name: Check a launch request
  ssc.repo2docker.launch_request:
    user_id: "{{ user_id }}"
    user: "{{ user }}"
    repo: "{{ repo }}"
    ref: "{{ ref | default('') }}"
    allowed_hosts: "{{ user_vm_allowed_hosts }}"
  register: launch

- name: Show the VM the request is for
  ansible.builtin.debug:
    msg: "{{ launch.vm_name }} will serve {{ launch.repo }} at {{ launch.ref or 'HEAD' }}"

- name: Accept the local cloud's plain-HTTP git host too
  ssc.repo2docker.launch_request:
    user_id: "583231"
    user: octocat
    repo: http://10.89.0.1:8770/git/ssc/sample-notebook.git
    allowed_hosts:
      - github.com
      - 10.89.0.1:8770/git
    allow_http_hosts:
      - 10.89.0.1:8770
"""

RETURN = r"""
user_id:
  description: The GitHub account id, as given.
  returned: success
  type: str
  sample: "583231"
user:
  description: The GitHub login, as given.
  returned: success
  type: str
  sample: OctoCat
repo:
  description:
    - The repository URL rebuilt from its checked parts in its canonical spelling (the
      filter C(ssc.repo2docker.canonical_url)), C(scheme://host[:port][/prefix]/owner/name),
      with scheme and host in lower case, no C(.git) and no trailing C(/), owner and name in lower
      case on github.com, gist.github.com, gitlab.com, codeberg.org and the hosts of
      I(case_insensitive_hosts).
    - Null when I(repo) was omitted.
  returned: success
  type: str
  sample: https://github.com/binder-examples/requirements
ref:
  description: The git ref, or null for the repository's default branch.
  returned: success
  type: str
  sample: main
vm_name:
  description: The name of the user's VM, C(ssc-r2d-) and the account id.
  returned: success
  type: str
  sample: ssc-r2d-583231
legacy_vm_name:
  description:
    - The name the user's VM had before VMs were named by account id, C(ssc-r2d-) and the
      login in lower case; such a VM is the user's while no other account id is written on
      it (see the role C(ssc.repo2docker.user_vm)).
  returned: success
  type: str
  sample: ssc-r2d-octocat
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ssc.repo2docker.plugins.module_utils.launch_request import (
    check,
    check_ref,
    check_user,
    check_user_id,
    legacy_vm_name,
    vm_name,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            user_id=dict(type="str", required=True),
            user=dict(type="str", required=True),
            repo=dict(type="str"),
            ref=dict(type="str", default=""),
            allowed_hosts=dict(type="list", elements="str"),
            allow_http_hosts=dict(type="list", elements="str", default=[]),
            case_insensitive_hosts=dict(type="list", elements="str", default=[]),
            subgroup_hosts=dict(type="list", elements="str", default=[]),
        ),
        required_by={"repo": "allowed_hosts"},
        supports_check_mode=True,
    )
    params = module.params
    try:
        if params["repo"] is None:
            checked = {"user": check_user(params["user"]),
                       "user_id": check_user_id(params["user_id"]), "repo": None,
                       "ref": check_ref(params["ref"])}
        else:
            checked = check(params["user"], params["repo"], params["ref"],
                            allowed_hosts=params["allowed_hosts"],
                            allow_http_hosts=params["allow_http_hosts"],
                            case_insensitive_hosts=params["case_insensitive_hosts"],
                            subgroup_hosts=params["subgroup_hosts"],
                            user_id=params["user_id"])
        checked.update(vm_name=vm_name(checked["user_id"]),
                       legacy_vm_name=legacy_vm_name(checked["user"]))
    except ValueError as error:  # LaunchRequestError, or a bad host entry
        module.fail_json(msg=str(error))
    module.exit_json(changed=False, **checked)


if __name__ == "__main__":
    main()
