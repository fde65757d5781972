#!/usr/bin/python
# Copyright: (c) 2025, ssc-repo2docker developers
# BSD 3-Clause License (see https://opensource.org/licenses/BSD-3-Clause)

DOCUMENTATION = r"""
---
module: launch_progress
short_description: Read how the launcher on a user VM is doing, from the VM's console
version_added: 0.1.0
author: ssc-repo2docker developers
description:
  - Reads the server's console output (Nova's C(os-getConsoleOutput), which any project
    member may call; no SSH key, no port on the VM) and returns the records the launcher
    wrote there (lines starting C(ssc-r2d), its phases C(fetching), C(building) (with
    repo2docker's log, line by line), C(starting), C(ready), or C(failed)).
  - Fails with the launcher's reason (for a failed build, repo2docker's last error lines)
    when the launcher failed, and with the cloud's fault when the server is in C(ERROR).
  - Meant to be retried in an C(until) loop until I(phase) is C(ready) or the task fails;
    each retry is one call. The action plugin of the same name bounds such a loop in wall-clock
    time with I(ready_timeout), I(build_idle_timeout) and I(build_timeout).
  - Reads only; never changes anything.
options:
  server:
    description: Name or id of the server.
    type: str
    required: true
  length:
    description:
      - Lines to read from the end of the console, at least 1 (omitted = all the cloud keeps;
        libvirt keeps the last 100 KiB).
      - 0 and negative numbers are refused before the cloud is asked. Nova takes them, but
        not as "all" (as its API schema's comment says -1 is), since its compute manager
        keeps C(lines[-length:]), so 0 gives nothing and -1 every line but the first.
    type: int
  started:
    description:
      - When the wait began, in seconds since the epoch (set once before the loop). With it,
        the timeouts below count from there, even if the loop's state were lost.
      - Used by the action plugin only.
    type: float
  ready_timeout:
    description: Seconds the launcher may take to reach C(ready) while it is not building
      (0 = no limit). Used by the action plugin only.
    type: int
    default: 0
  build_idle_timeout:
    description: Seconds a build may go without a new record before the wait ends
      (0 = no limit). Used by the action plugin only.
    type: int
    default: 0
  build_timeout:
    description: Seconds a build may take in all (0 = no limit). Used by the action plugin
      only.
    type: int
    default: 0
extends_documentation_fragment:
  - openstack.cloud.openstack
attributes:
  check_mode:
    support: full
    description: Reads the console as in a normal run.
  diff_mode:
    support: none
    description: No diff is reported.
  action:
    support: full
    description: An action plugin of the same name keeps the wall-clock bounds across retries.
"""

EXAMPLES = r"""
# The web app reads this task's events (runner_retry, runner_on_ok, runner_on_failed):
# event_data.res.records and event_data.res.phase.
- name: Follow the launcher on the VM
  ssc.repo2docker.launch_progress:
    cloud: mycloud
    server: ssc-r2d-ada
    started: "{{ '%s' | ansible.builtin.strftime }}"
    ready_timeout: 600
    build_idle_timeout: 900
    build_timeout: 7200
  register: progress
  until: progress is failed or progress.phase == 'ready'
  retries: 5000
  delay: 2
"""

RETURN = r"""
records:
  description: The launcher's records so far (of its latest run), in seq order. A long build
    log may have scrolled the first ones out of what the cloud keeps.
  returned: always
  type: list
  elements: dict
  contains:
    seq:
      description: The record's number, from 1.
      type: int
    phase:
      description: fetching, building, starting, ready or failed.
      type: str
    text:
      description: One line of the launcher's or repo2docker's output, or its message.
      type: str
  sample: [{"seq": 1, "phase": "fetching", "text": "Fetching https://github.com/a/b"}]
phase:
  description: The phase of the last record; an empty string before the launcher's first
    record (the VM is still booting).
  returned: always
  type: str
  sample: building
server_status:
  description: The server's status (ACTIVE, BUILD, ...).
  returned: always
  type: str
"""

from typing import ClassVar

from ansible_collections.openstack.cloud.plugins.module_utils.openstack import OpenStackModule
from ansible_collections.ssc.repo2docker.plugins.module_utils.launch_progress import (
    failure,
    latest_phase,
    parse_records,
)


class LaunchProgressModule(OpenStackModule):
    argument_spec: ClassVar[dict] = dict(
        server=dict(type="str", required=True),
        length=dict(type="int"),
        started=dict(type="float"),
        ready_timeout=dict(type="int", default=0),
        build_idle_timeout=dict(type="int", default=0),
        build_timeout=dict(type="int", default=0),
    )
    module_kwargs: ClassVar[dict] = dict(supports_check_mode=True)

    def run(self):
        length = self.params["length"]
        if length is not None and length < 1:
            self.fail_json(msg=f"length must be at least 1 line, not {length} (omit it to read "
                           "the whole console)", records=[], phase="", server_status="")
        server = self.conn.compute.find_server(self.params["server"], ignore_missing=True)
        if server is None:
            self.fail_json(msg="The VM is gone: it was deleted while it started.",
                           records=[], phase="", server_status="DELETED")
        server = self.conn.compute.get_server(server.id)
        if server.status == "ERROR":
            fault = (server.fault or {}).get("message") or "no reason given"
            self.fail_json(msg=f"The cloud could not start the VM: {fault}", records=[],
                           phase="", server_status=server.status)
        records = []
        if server.status != "BUILD":  # no console before the VM runs (Nova answers 409)
            output = self.conn.compute.get_server_console_output(
                server, length=self.params["length"]).get("output") or ""
            records = parse_records(output)
        result = dict(changed=False, records=records, phase=latest_phase(records),
                      server_status=server.status)
        reason = failure(records)
        if reason is not None:
            self.fail_json(msg=reason, **result)
        self.exit_json(**result)


def main():
    module = LaunchProgressModule()
    module()


if __name__ == "__main__":
    main()
