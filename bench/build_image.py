"""Figures for playbooks/build_image.yml on the local cloud (printed, never asserted).

    .venv/bin/python bench/build_image.py

Builds an image pre-building 1 and then 3 small repositories (copies of the sample), reruns
the last build unchanged, and prints wall times, the image's size, and the no-op rerun's
time against the target (under 10 s, no builder started). Needs `localcloud up`.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openstack.config
import openstack.connection

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
SAMPLE = ROOT / "localcloud" / "samples" / "notebook"
CLOUDS = ROOT / "var" / "localcloud" / "clouds.yaml"


def environment() -> dict:
    return {**os.environ, "OS_CLIENT_CONFIG_FILE": str(CLOUDS),
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "PATH": f"{BIN}:{os.environ['PATH']}"}


def publish(count: int, stamp: str) -> list[dict]:
    """`count` distinct copies of the sample repository on the local git host."""
    repositories = []
    for index in range(count):
        with tempfile.TemporaryDirectory() as directory:
            copy = Path(directory) / "repo"
            shutil.copytree(SAMPLE, copy)
            (copy / "bench.txt").write_text(f"{stamp} {index}\n")
            url = subprocess.run([str(BIN / "localcloud"), "publish",
                                  f"bench/repo-{stamp}-{index}", str(copy)], check=True,
                                 capture_output=True, text=True).stdout.strip()
        repositories.append({"url": url})
    return repositories


def build(repositories: list[dict], prefix: str) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), str(ROOT / "playbooks" / "build_image.yml"), "-e",
         json.dumps({"ssc_image_prebuild": repositories, "ssc_image_name_prefix": prefix})],
        env=environment(), cwd=ROOT, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(result.stdout[-4000:])
    return elapsed, result.stdout


def image_size(prefix: str) -> int:
    config = openstack.config.OpenStackConfig(config_files=[str(CLOUDS)])
    conn = openstack.connection.Connection(config=config.get_one(cloud="localcloud"))
    images = [i for i in conn.image.images() if i.properties.get("ssc_r2d_prefix") == prefix]
    return max(images, key=lambda i: i.created_at).size or 0


def main() -> None:
    stamp = time.strftime("%H%M%S")
    seconds = {}
    for count in (1, 3):
        prefix = f"bench-{stamp}-{count}"
        seconds[count], _ = build(publish(count, f"{stamp}{count}"), prefix)
        size = image_size(prefix)
        print(f"build with {count} repositories: {seconds[count]:7.1f} s, "
              f"image {size / 2**20:,.0f} MiB")
    rerun, output = build(publish(3, f"{stamp}3"), prefix)
    started_builder = "Boot the builder" in output and "changed: [localhost]" in \
        output.split("Boot the builder")[-1].split("TASK")[0]
    print(f"no-op rerun: {rerun:7.1f} s (target < 10 s), builder started: {started_builder}")
    print(f"3 repositories / 1 repository: {seconds[3] / seconds[1]:.2f}; "
          f"no-op rerun / 1-repository build: {rerun / seconds[1]:.3f}")


if __name__ == "__main__":
    main()
