# Copyright: (c) 2025, ssc-repo2docker developers
# BSD 3-Clause License (see https://opensource.org/licenses/BSD-3-Clause)
"""The launcher's records read back from a VM's console output, and what they mean.

The launcher on a user VM (roles/repo2docker_image/files/repo2docker-launcher) writes one line
per event to the VM's console: ``ssc-r2d: {"seq": n, "phase": ..., "text": ...}``, numbered
from 1 in each run of the launcher. The controller reads the console with Nova's
os-getConsoleOutput, which returns whatever else the VM wrote there too (kernel, systemd,
cloud-init), possibly cut to its last part (libvirt keeps the last 100 KiB), with carriage
returns removed. Pure functions, standard library only: unit-tested without a cloud.
"""

from __future__ import annotations

import json

from ansible_collections.ssc.repo2docker.plugins.module_utils.launcher_contract import (
    CONSOLE_PREFIX,
)

# The launcher's phases, in the order a launch goes through them; "failed" ends it anywhere.
PHASES = ("fetching", "building", "starting", "ready", "failed")


def parse_records(output: str) -> list[dict]:
    """The launcher's records in console output: a list of {"seq": int, "phase": str,
    "text": str}, in seq order, of the launcher's latest run only.

    A line holds a record when it contains CONSOLE_PREFIX followed by a JSON object with an
    int seq >= 1, a phase of PHASES and a str text (what precedes the prefix, such as a
    console's timestamp, is ignored); every other line is skipped. A record numbered 1 after
    others starts a new run (the VM rebooted and the launcher started again): the records
    before it are dropped. A seq seen twice in a run keeps its first record.
    """
    runs: list[dict[int, dict]] = [{}]
    for line in output.splitlines():
        record = parse_line(line)
        if record is None:
            continue
        if record["seq"] == 1 and runs[-1]:
            runs.append({})
        runs[-1].setdefault(record["seq"], record)
    return [runs[-1][seq] for seq in sorted(runs[-1])]


def parse_line(line: str) -> dict | None:
    """The record one console line holds, or None."""
    _, prefix, rest = line.partition(CONSOLE_PREFIX)
    if not prefix:
        return None
    try:
        data = json.loads(rest.strip())
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    seq, phase, text = data.get("seq"), data.get("phase"), data.get("text")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        return None
    if phase not in PHASES or not isinstance(text, str):
        return None
    return {"seq": seq, "phase": phase, "text": text}


def latest_phase(records: list[dict]) -> str:
    """The phase of the last record; "" before the launcher's first record."""
    return records[-1]["phase"] if records else ""


def failure(records: list[dict]) -> str | None:
    """The text of the run's "failed" record (the launcher's reason: for a failed build,
    repo2docker's last error lines), or None when it has not failed."""
    for record in records:
        if record["phase"] == "failed":
            return record["text"] or "The launcher failed without saying why."
    return None
