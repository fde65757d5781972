"""`molecule test -s repo2docker_image`: the role on a systemd "VM" container made from
localcloud's base image, with the local cloud's git host serving the sample repository."""

import re
import subprocess
import sys
import threading
import time

import pytest

from localcloud.baseimage import ensure_base_image
from tests.helpers import BIN, ROOT, VAR

pytestmark = pytest.mark.cloud

SCENARIO = "repo2docker_image"
TIMEOUT = 3600  # seconds; a first run builds the sample image, later ones take minutes
# molecule prints "INFO     [<scenario> > <action>] Executing" when an action starts
# ("<scenario> ➜ <action>: Executing" when it colours its output)
ACTION = re.compile(r"(?:>|➜) (\w+)(?:\]|:) Executing")
COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def test_molecule_test(cloud):
    base_image = ensure_base_image(VAR / "cache")
    env = cloud.env | {"LOCALCLOUD_BASE_IMAGE": base_image, "NO_COLOR": "1",
                       "PY_COLORS": "0", "ANSIBLE_FORCE_COLOR": "0"}
    env.pop("ANSIBLE_CONFIG", None)  # molecule writes its own
    started = time.monotonic()
    marks: list[tuple[str, float]] = []
    output: list[str] = []
    with subprocess.Popen([str(BIN / "molecule"), "test", "-s", SCENARIO], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          encoding="utf-8", errors="replace") as run:
        watchdog = threading.Timer(TIMEOUT, run.kill)
        watchdog.start()
        try:
            for line in run.stdout:
                output.append(line)
                match = ACTION.search(COLOUR.sub("", line))
                if match:
                    marks.append((match.group(1), time.monotonic()))
            returncode = run.wait()
        finally:
            watchdog.cancel()
    finished = time.monotonic()
    timings = [(name, end - begin) for (name, begin), (_, end)
               in zip(marks, [*marks[1:], ("end", finished)], strict=False)]
    summary = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings)
    print(f"\nmolecule test -s {SCENARIO}: {finished - started:.0f} s ({summary})")
    if returncode != 0:
        sys.stderr.write("".join(output[-300:]))
    assert returncode == 0, f"molecule test -s {SCENARIO} failed ({returncode})"
