#!/usr/bin/python
# Copyright: (c) 2025, ssc-repo2docker developers
# BSD 3-Clause License (see https://opensource.org/licenses/BSD-3-Clause)

DOCUMENTATION = r"""
---
module: user_server_expiry
short_description: Move a user VM's expiry later, within the site's limits ("keep it")
version_added: 0.1.0
author: ssc-repo2docker developers
description:
  - Extends the expiry of a user VM (server metadata C(ssc_r2d_expires), which
    C(playbooks/cull.yml) treats as a hard limit) and counts the extension in
    C(ssc_r2d_extensions).
  - The new expiry is I(hours) after the later of the current expiry and now, cut to
    I(max_lifetime_hours) after the VM's creation (C(ssc_r2d_created)). A VM already
    extended I(max_extensions) times, or already at its longest lifetime, is refused with a
    message meant for the researcher (the task fails); nothing changes then.
  - 'Not idempotent by nature: each run asks for one more extension, as each press of a
    "keep it" button does. To make a retried request safe, name the extension it is for with
    I(extension): when the VM has had that many already, nothing changes.'
options:
  name:
    description: Name or id of the server.
    type: str
    required: true
  owner_id:
    description:
      - When given, the server's C(ssc_r2d_owner_id) (its owner's GitHub account id) must be
        this; the VM is refused otherwise, as if it did not exist.
      - The role C(ssc.repo2docker.user_vm) marks a VM named by its owner's login, as VMs
        were before, with the id before it gets here.
    type: str
  hours:
    description: Hours one extension adds (fractions allowed).
    type: float
    required: true
  max_extensions:
    description: Extensions a VM may have in all (0 = none).
    type: int
    required: true
  max_lifetime_hours:
    description: Hours after its creation past which no VM's expiry is moved (0 = no such
      limit).
    type: float
    default: 0
  extension:
    description:
      - The extension this request is for (1 for the first). When the VM has had that many
        already, this is a repeated request and nothing changes; when it is not the next one
        (the researcher's page was stale), the request is refused.
      - Omitted, the request is for one more.
    type: int
extends_documentation_fragment:
  - openstack.cloud.openstack
attributes:
  check_mode:
    support: full
    description: Reports the expiry the VM would get, or the refusal, without setting it.
  diff_mode:
    support: none
    description: No diff is reported.
"""

EXAMPLES = r"""
- name: Keep account 583231's VM a day longer, at most twice and three days from its start
  ssc.repo2docker.user_server_expiry:
    cloud: mycloud
    name: ssc-r2d-583231
    owner_id: "583231"
    hours: 24
    max_extensions: 2
    max_lifetime_hours: 72
  register: kept

- name: The second extension, safe to retry
  ssc.repo2docker.user_server_expiry:
    cloud: mycloud
    name: ssc-r2d-583231
    hours: 24
    max_extensions: 2
    extension: 2
"""

RETURN = r"""
name:
  description: The server's name.
  returned: success
  type: str
expires:
  description: The VM's expiry after this task (UTC).
  returned: success
  type: str
  sample: "2026-02-01T12:00:00Z"
previous_expires:
  description: The VM's expiry before this task.
  returned: success
  type: str
extensions:
  description: Extensions the VM has had, this one included.
  returned: success
  type: int
extensions_left:
  description: Extensions still allowed by I(max_extensions) (the lifetime limit may allow
    fewer).
  returned: success
  type: int
"""

from typing import ClassVar

from ansible_collections.openstack.cloud.plugins.module_utils.openstack import OpenStackModule
from ansible_collections.ssc.repo2docker.plugins.module_utils.culling import (
    EXPIRES,
    ExtensionRefused,
    extend,
    utcnow,
)
from ansible_collections.ssc.repo2docker.plugins.module_utils.ownership import OWNER_ID


class UserServerExpiryModule(OpenStackModule):
    argument_spec: ClassVar[dict] = dict(
        name=dict(required=True),
        owner_id=dict(),
        hours=dict(type="float", required=True),
        max_extensions=dict(type="int", required=True),
        max_lifetime_hours=dict(type="float", default=0),
        extension=dict(type="int"),
    )
    module_kwargs: ClassVar[dict] = dict(supports_check_mode=True)

    def run(self):
        params = self.params
        server = self.conn.compute.find_server(params["name"], ignore_missing=True)
        if server is not None:
            server = self.conn.compute.get_server(server.id)  # find_server lacks metadata
        metadata = dict(getattr(server, "metadata", None) or {})
        if server is None or (params["owner_id"]
                              and str(metadata.get(OWNER_ID) or "") != params["owner_id"]):
            self.fail_json(msg="You have no VM to keep longer: start one first.")
        if params["extension"] is not None and params["extension"] < 1:
            self.fail_json(msg="extension must be 1 or more")
        try:
            plan = extend(metadata, utcnow(), params["hours"], params["max_extensions"],
                          params["max_lifetime_hours"], params["extension"])
        except ExtensionRefused as refusal:
            self.fail_json(msg=str(refusal), expires=metadata.get(EXPIRES))
        except ValueError as error:
            self.fail_json(msg=f"the site's extension settings are wrong: {error}")
        if plan["changed"] and not self.ansible.check_mode:
            self.conn.compute.set_server_metadata(server, **plan["metadata"])
        self.exit_json(changed=plan["changed"], name=server.name, expires=plan["expires"],
                       previous_expires=metadata.get(EXPIRES), extensions=plan["extensions"],
                       extensions_left=max(0, params["max_extensions"] - plan["extensions"]))


def main():
    module = UserServerExpiryModule()
    module()


if __name__ == "__main__":
    main()
