"""`molecule test` for each role's scenario.

repo2docker_image: the role on a systemd "VM" container made from localcloud's base image,
with the local cloud's git host serving the sample repository. user_vm: the role against the
local cloud itself, booting from the image build_image.yml made."""

import re
import subprocess
import sys
import threading
import time

import pytest

from localcloud.baseimage import ensure_base_image
from tests.helpers import BIN, ROOT, VAR

pytestmark = pytest.mark.cloud

TIMEOUT = 3600  # seconds; a first run builds the sample image, later ones take minutes
# molecule prints "INFO     [<scenario> > <action>] Executing" when an action starts
# ("<scenario> ➜ <action>: Executing" when it colours its output)
ACTION = re.compile(r"(?:>|➜) (\w+)(?:\]|:) Executing")
COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def test_repo2docker_image(cloud):
    molecule_test(cloud, "repo2docker_image",
                  LOCALCLOUD_BASE_IMAGE=ensure_base_image(VAR / "cache"))


def test_user_vm(cloud, prebuilt_image):
    molecule_test(cloud, "user_vm")


def molecule_test(cloud, scenario: str, **environment: str) -> None:
    """Run `molecule test -s SCENARIO`, print how long each action took, assert success."""
    env = cloud.env | environment | {"NO_COLOR": "1", "PY_COLORS": "0",
                                     "ANSIBLE_FORCE_COLOR": "0"}
    env.pop("ANSIBLE_CONFIG", None)  # molecule writes its own
    started = time.monotonic()
    marks: list[tuple[str, float]] = []
    output: list[str] = []
    with subprocess.Popen([str(BIN / "molecule"), "test", "-s", scenario], cwd=ROOT, env=env,
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
    print(f"\nmolecule test -s {scenario}: {finished - started:.0f} s ({summary})")
    if returncode != 0:
        sys.stderr.write("".join(output[-300:]))
    assert returncode == 0, f"molecule test -s {scenario} failed ({returncode})"
