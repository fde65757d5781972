"""Launch feedback on the local cloud (printed, never asserted).

    .venv/bin/python bench/launch_feedback.py

1. A repository whose Dockerfile has a failing RUN: seconds from the launcher's failure (the
   first time its "failed" record is on the VM's console, polled every 0.25 s here) to the
   job's failure (ansible-playbook exiting). Target: at most 10 s.
2. The pre-built sample (a cache hit): seconds from the playbook's start to Jupyter answering
   (the playbook exits once the controller has seen it answer).
Needs `localcloud up` and an image from playbooks/build_image.yml.
"""

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import openstack.config
import openstack.connection

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "var" / "collections"))
from ansible_collections.ssc.repo2docker.plugins.module_utils.launch_progress import (  # noqa: E402
    failure,
    parse_records,
)

BIN = ROOT / ".venv" / "bin"
CLOUDS = ROOT / "var" / "localcloud" / "clouds.yaml"
SAMPLE = "http://10.89.0.1:8770/git/ssc/sample-notebook.git"
DOCKERFILE = ROOT / "localcloud" / "samples" / "notebook" / "Dockerfile"


def connect() -> openstack.connection.Connection:
    config = openstack.config.OpenStackConfig(config_files=[str(CLOUDS)])
    return openstack.connection.Connection(config=config.get_one(cloud="localcloud"))


def env() -> dict:
    return {**os.environ, "OS_CLIENT_CONFIG_FILE": str(CLOUDS), "OS_CLOUD": "localcloud",
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "PATH": f"{BIN}:{os.environ['PATH']}"}


def playbook(*extra: str) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "ansible-playbook"), str(ROOT / "playbooks/user_vm.yml"),
                             *extra], env=env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


# The bench users' (made-up) GitHub account ids: VMs are named ssc-r2d-<id>.
USER_IDS = {"bench-broken": 90002, "bench-hit": 90003}


def who(user: str) -> tuple[str, ...]:
    return ("-e", f"user_id={USER_IDS[user]}", "-e", f"user={user}")


def delete(user: str) -> None:
    subprocess.run([str(BIN / "ansible-playbook"), str(ROOT / "playbooks/user_vm.yml"),
                    *who(user), "-e", "state=absent"], env=env(), cwd=ROOT,
                   stdout=subprocess.DEVNULL, check=False)


class ConsoleWatch(threading.Thread):
    """Polls a server's console; notes when the launcher's "failed" record first shows."""

    def __init__(self, name: str) -> None:
        super().__init__(daemon=True)
        self.server_name, self.failed_at, self.stop = name, None, threading.Event()

    def run(self) -> None:
        conn = connect()
        while not self.stop.is_set() and self.failed_at is None:
            server = conn.compute.find_server(self.server_name)
            if server is not None and server.status == "ACTIVE":
                output = conn.compute.get_server_console_output(server).get("output", "")
                if failure(parse_records(output)) is not None:
                    self.failed_at = time.monotonic()
            time.sleep(0.25)


def failing_build() -> None:
    with tempfile.TemporaryDirectory() as source:
        (Path(source) / "Dockerfile").write_text(
            DOCKERFILE.read_text() + "RUN echo this step fails >&2 && exit 3\n")
        url = subprocess.run([str(BIN / "localcloud"), "publish", "bench/broken-build", source],
                             check=True, capture_output=True, text=True).stdout.strip()
    watch = ConsoleWatch(f"ssc-r2d-{USER_IDS['bench-broken']}")
    watch.start()
    start = time.monotonic()
    run = playbook(*who("bench-broken"), "-e", f"repo={url}")
    run.wait()
    end = time.monotonic()
    watch.stop.set()
    watch.join()
    if watch.failed_at is None:
        print(f"failing build: the job ended ({run.returncode}) after {end - start:.1f} s; "
              "no failed record was seen")
    else:
        print(f"failing build: launcher failure -> job failure {end - watch.failed_at:.1f} s "
              f"(target <= 10 s); click -> job failure {end - start:.1f} s")
    delete("bench-broken")


def cache_hit() -> None:
    start = time.monotonic()
    run = playbook(*who("bench-hit"), "-e", f"repo={SAMPLE}")
    run.wait()
    print(f"cache hit: start -> Jupyter answering {time.monotonic() - start:.1f} s "
          f"(exit {run.returncode})")
    delete("bench-hit")


if __name__ == "__main__":
    failing_build()
    cache_hit()
