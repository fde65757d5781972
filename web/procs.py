"""The processes of a playbook run, found in /proc, and how to end them all.

ansible-runner ends a cancelled or timed-out run with SIGKILL to ansible-playbook's process
group, but ansible-core's workers each call setsid(): they, and the modules they run, would
go on acting on the cloud. A run's processes are found instead by what they all share, the
private data dir in ansible-playbook's command line, and by descent from those.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def processes() -> dict[int, tuple[int, bytes]]:
    """Every live process of this machine (not the zombies, which act no more): pid ->
    (parent pid, command line as /proc gives it, arguments separated by NUL)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # it ended meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        state, parent = stat[stat.rindex(b")") + 2:].split()[:2]
        if state not in (b"Z", b"X"):
            found[int(entry.name)] = (int(parent), cmdline)
    return found


def processes_of(private_data_dir: str | os.PathLike) -> set[int]:
    """The processes of the run in `private_data_dir`: those with it in their command line
    (``-e @<dir>/env/extravars``), and their descendants; never this process."""
    marker = os.fsencode(os.path.abspath(private_data_dir))
    table = processes()
    found = with_descendants({pid for pid, (_, cmdline) in table.items()
                              if any(arg.endswith(marker) or marker + b"/" in arg
                                     for arg in cmdline.split(b"\0"))}, table)
    found.discard(os.getpid())
    return found


def with_descendants(pids: set[int], table: dict[int, tuple[int, bytes]] | None = None
                     ) -> set[int]:
    """`pids` and all their descendants (in `table`, default :func:`processes`)."""
    table = processes() if table is None else table
    found = set(pids)
    while True:
        more = {pid for pid, (parent, _) in table.items() if parent in found} - found
        if not more:
            return found
        found |= more


def end_processes_of(private_data_dir: str | os.PathLike, attempts: int = 50) -> set[int]:
    """SIGKILL every process of the run in `private_data_dir` until none is left (a process
    may fork while it is looked for), trying `attempts` times 0.1 s apart. Returns the pids
    killed."""
    killed: set[int] = set()
    for _ in range(attempts):
        pids = processes_of(private_data_dir)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed |= pids
        time.sleep(0.1)
    return killed
