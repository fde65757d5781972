"""Figures for playbooks/user_vm.yml on the local cloud (printed, never asserted).

    .venv/bin/python bench/user_vm.py

For a cache hit (the pre-built sample) and a cache miss (a repository the image does not
hold), the launch split into: playbook start -> create request, create -> ACTIVE, ACTIVE ->
Jupyter ready; then the same create done with a bare openstacksdk call, as the floor the
playbook's overhead is measured against. Targets: a cache hit has Jupyter ready within 5 s
of ACTIVE; the playbook's wall time is at most 1.5x the bare create-and-wait.
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
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "var" / "collections"))
from ansible_collections.ssc.repo2docker.plugins.filter.jupyter_token import (  # noqa: E402
    jupyter_token,
)

BIN = ROOT / ".venv" / "bin"
CLOUDS = ROOT / "var" / "localcloud" / "clouds.yaml"
SECRET = ROOT / "var" / "secrets" / "token-secret"
SAMPLE = "http://10.89.0.1:8770/git/ssc/sample-notebook.git"


def connect() -> openstack.connection.Connection:
    config = openstack.config.OpenStackConfig(config_files=[str(CLOUDS)])
    return openstack.connection.Connection(config=config.get_one(cloud="localcloud"))


class Watch(threading.Thread):
    """Polls the cloud and the VM's Jupyter, noting when each phase was reached."""

    def __init__(self, name: str):
        super().__init__(daemon=True)
        self.name_ = name
        self.marks: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        conn = connect()
        while not self.done.is_set():
            server = next((s for s in conn.compute.servers() if s.name == self.name_), None)
            if server and "created" not in self.marks:
                self.marks["created"] = time.monotonic()
            if server and server.status == "ACTIVE" and "active" not in self.marks:
                self.marks["active"] = time.monotonic()
            if server and "active" in self.marks and self.jupyter_ready(server):
                self.marks["ready"] = time.monotonic()
                return
            time.sleep(0.2)

    @staticmethod
    def jupyter_ready(server) -> bool:
        nonce = server.metadata.get("ssc_r2d_nonce")
        address = server.addresses["private"][0]["addr"]
        if not nonce or not SECRET.exists():
            return False
        token = jupyter_token(SECRET.read_text().strip(), nonce)
        try:
            return requests.get(f"http://{address}:8888/api/status", timeout=2, headers={
                "Authorization": f"token {token}"}).status_code == 200
        except requests.RequestException:
            return False


def playbook(*extra: str) -> None:
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(CLOUDS),
           "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "PATH": f"{BIN}:{os.environ['PATH']}"}
    result = subprocess.run([str(BIN / "ansible-playbook"), str(ROOT / "playbooks" /
                             "user_vm.yml"), *extra], env=env, cwd=ROOT, capture_output=True,
                            text=True)
    if result.returncode != 0:
        sys.exit(result.stdout[-3000:])


BENCH_USER_ID = 90001  # the bench user's (made-up) GitHub account id: VMs are named by it


def launch(user: str, repo: str) -> dict[str, float]:
    who = ("-e", f"user_id={BENCH_USER_ID}", "-e", f"user={user}")
    watch = Watch(f"ssc-r2d-{BENCH_USER_ID}")
    watch.start()
    started = time.monotonic()
    playbook(*who, "-e", f"repo={repo}")
    finished = time.monotonic()
    watch.join(timeout=30)
    watch.done.set()
    marks = watch.marks
    playbook(*who, "-e", "state=absent")
    return {"start -> create": marks["created"] - started,
            "create -> ACTIVE": marks["active"] - marks["created"],
            "ACTIVE -> Jupyter": marks["ready"] - marks["active"],
            "playbook": finished - started}


def bare_create() -> float:
    """The floor: the same boot-from-volume create and wait, with openstacksdk alone."""
    conn = connect()
    images = [i for i in conn.image.images() if i.properties.get("ssc_r2d_prefix")]
    image = max(images, key=lambda i: i.created_at)
    started = time.monotonic()
    server = conn.create_server("bench-bare", image=image.id, flavor="ssc.small",
                                network="private", boot_from_volume=True, volume_size=20,
                                terminate_volume=True, auto_ip=False, wait=True, timeout=600)
    elapsed = time.monotonic() - started
    conn.delete_server(server.id, wait=True)
    return elapsed


def not_prebuilt() -> str:
    with tempfile.TemporaryDirectory() as directory:
        copy = Path(directory)
        dockerfile = (ROOT / "localcloud" / "samples" / "notebook" / "Dockerfile").read_text()
        (copy / "Dockerfile").write_text(dockerfile + f"RUN echo {time.time()} > /tmp/stamp\n")
        return subprocess.run([str(BIN / "localcloud"), "publish",
                               f"bench/miss-{int(time.time())}", str(copy)], check=True,
                              capture_output=True, text=True).stdout.strip()


def main() -> None:
    floor = bare_create()
    print(f"bare openstacksdk create-and-wait: {floor:6.1f} s")
    for label, repo in (("cache hit", SAMPLE), ("cache miss", not_prebuilt())):
        figures = launch("bench-user", repo)
        split = ", ".join(f"{k} {v:.1f} s" for k, v in figures.items())
        print(f"{label}: {split}")
        print(f"  playbook / bare create: {figures['playbook'] / floor:.2f} (target <= 1.5); "
              f"ACTIVE -> Jupyter {figures['ACTIVE -> Jupyter']:.1f} s (target <= 5 s on a hit)")


if __name__ == "__main__":
    main()
