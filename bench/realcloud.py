"""Figures for `realcloud up` and its tests (printed, never asserted).

    .venv/bin/python bench/realcloud.py [--build] [--tests]

cold: `realcloud down`, then `realcloud up`: a fresh container from the cached image, until
every service answers and the image and flavors are registered. warm: `realcloud up` again
while it runs (nothing to do but check). --build: first remove realcloud's images, so that
the cold start includes building them (debootstrap, apt, setup: many minutes). --tests: then
time `pytest -m realcloud` (its fixture's own `up` is warm). Leaves realcloud running.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"


def timed(*command: str) -> float:
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n"
                 f"{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return seconds


def remove_images() -> None:
    for repository in ("realcloud/zed", "realcloud/zed-packages"):
        tags = subprocess.run(["docker", "image", "ls", repository, "--format",
                               "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True)
        for tag in tags.stdout.split():
            subprocess.run(["docker", "image", "rm", tag], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="include building the images")
    parser.add_argument("--tests", action="store_true", help="also time pytest -m realcloud")
    args = parser.parse_args()
    realcloud = str(BIN / "realcloud")
    timed(realcloud, "down")
    if args.build:
        remove_images()
    cold = timed(realcloud, "up")
    print(f"cold up{' (with the image build)' if args.build else ''}: {cold:7.1f} s")
    warm = timed(realcloud, "up")
    print(f"warm up:  {warm:7.1f} s")
    if args.tests:
        tests = timed(str(BIN / "pytest"), "-m", "realcloud", "-q", "-p", "no:cacheprovider",
                      "tests/realcloud")  # fmt: skip
        print(f"pytest -m realcloud (fixture's up, tests, down): {tests:7.1f} s")
        timed(realcloud, "up")


if __name__ == "__main__":
    main()
