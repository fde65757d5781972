#!/usr/bin/python
"""Stands in for ssc.repo2docker.launch_progress: the VM launcher's records, one more at each
call, from a script (a JSON list of records) with a counter file next to it; fails as the
real task does when the launcher's phase is ``failed``. Returns every record so far and the
phase, in the contract's shape (web/buildlog.py)."""

import json
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={"script": {"type": "path", "required": True}},
                           supports_check_mode=True)
    script = Path(module.params["script"])
    records = json.loads(script.read_text())
    counter = script.with_suffix(".count")
    count = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(count))
    shown = records[:count]
    phase = shown[-1]["phase"] if shown else "fetching"
    if phase == "failed":
        module.fail_json(msg="the launcher failed: " + shown[-2]["text"], records=shown,
                         phase=phase)
    module.exit_json(changed=False, records=shown, phase=phase)


if __name__ == "__main__":
    main()
