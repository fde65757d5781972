"""Servers as Docker containers, end to end: boot, SSH, Docker inside, snapshot, boot from it."""

import ipaddress
import subprocess
import time
import uuid
from pathlib import Path

import docker
import pytest

from localcloud.baseimage import ensure_base_image
from localcloud.config import DOCKER_LABEL, Config
from localcloud.machines import MachineError, Machines

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = ROOT / Config().var_dir / "cache" / "baseimage"

# Run inside the first server: a base image from the server's own binaries (no registry), then
# layers that need overlay2 whiteouts, an opaque directory and odd ownership.
INNER_BUILD = r"""
set -eu
cd "$(mktemp -d)"
bins="dash cat rm mkdir chown stat"
files=$(for b in $bins; do p=$(command -v $b); echo "$p"; ldd "$p" | grep -o '/[^ ]*'; done)
mkdir root
tar -C / -ch $(echo "$files" | sed 's|^/||' | sort -u) | tar -C root -x
ln -s dash root/usr/bin/sh && ln -s usr/bin root/bin
tar -C root -c . | sudo docker import - localbase:1 >/dev/null
cat >Dockerfile <<'EOF'
FROM localbase:1
RUN mkdir -p /data/dir && echo old >/data/dir/old && echo gone >/data/gone && echo k >/data/keep
RUN rm /data/gone && rm -r /data/dir && mkdir /data/dir && echo new >/data/dir/new \
    && chown 1234:5678 /data/keep
EOF
sudo docker build -q -t inner:1 . >/dev/null
docker buildx version
"""

INNER_CHECK = (
    "sudo docker run --rm inner:1 sh -c "
    "'test ! -e /data/gone && test ! -e /data/dir/old && cat /data/dir/new "
    "&& stat -c %u:%g /data/keep'"
)


@pytest.fixture(scope="module")
def base_image() -> str:
    return ensure_base_image(CACHE_DIR)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(
        var_dir=tmp_path / "var",
        private_network="localcloud-test-private",
        private_cidr="10.89.250.0/24",
        public_network="localcloud-test-public",
        public_cidr="10.89.251.0/24",
    )


@pytest.fixture
def machines(config: Config) -> Machines:
    machines = Machines(config)
    machines.ensure_networks()
    machines.ensure_networks()  # idempotent
    yield machines
    client = docker.from_env()
    for name in (config.private_network, config.public_network):
        client.networks.get(name).remove()


@pytest.fixture
def ssh_key(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def ssh(key: Path, ip: str, command: str, stdin: str | None = None) -> str:
    options = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    options += ["-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    result = subprocess.run(
        ["ssh", "-i", str(key), *options, f"debian@{ip}", command],
        input=stdin, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    return result.stdout


def meta_data(server_id: str, hostname: str, key: Path) -> str:
    public_key = key.with_suffix(".pub").read_text().strip()
    return f"instance-id: {server_id}\nlocal-hostname: {hostname}\npublic-keys:\n  - {public_key}\n"


def address(cidr: str, host: int) -> str:
    return str(ipaddress.ip_network(cidr)[host])


def docker_ls(*args: str) -> str:
    command = ["docker", *args, "--filter", f"label={DOCKER_LABEL}"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


@pytest.mark.cloud
def test_boot_ssh_docker_snapshot_and_boot_from_snapshot(
    machines: Machines, config: Config, base_image: str, ssh_key: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    first, second = f"test-{run}-1", f"test-{run}-2"
    disk1, disk2, image_volume = (f"lc-test-{run}-{name}" for name in ("disk1", "disk2", "img"))
    snapshot = f"localcloud/test-snapshot:{run}"
    ip1, ip2 = address(config.private_cidr, 10), address(config.private_cidr, 11)
    floating = address(config.public_cidr, 20)
    timings = {}
    try:
        started = time.monotonic()
        machines.boot(
            first, image=base_image, hostname="vm-one", ip=ip1,
            meta_data=meta_data(first, "vm-one", ssh_key),
            user_data="#cloud-config\nruncmd:\n  - echo made-by-runcmd > /etc/localcloud-test\n",
            disk_volume=disk1, cpus=2, ram_mb=2048,
        )  # fmt: skip
        with pytest.raises(MachineError, match="already"):
            machines.boot(
                first, image=base_image, hostname="x", ip=ip2, meta_data="", user_data=None,
                disk_volume=disk1, cpus=1, ram_mb=512,
            )  # fmt: skip
        assert machines.wait_up(first, timeout=120)
        timings["boot to ssh"] = time.monotonic() - started
        assert ssh(ssh_key, ip1, "hostname").strip() == "vm-one"
        assert ssh(ssh_key, ip1, "systemctl is-system-running --wait") == "running\n"
        machine_id = ssh(ssh_key, ip1, "cat /etc/machine-id")
        assert ssh(ssh_key, ip1, "cat /etc/localcloud-test") == "made-by-runcmd\n"
        assert "buildx" in ssh(ssh_key, ip1, "bash -s", stdin=INNER_BUILD)
        assert ssh(ssh_key, ip1, INNER_CHECK) == "new\n1234:5678\n"
        # As on a real cloud, a snapshot keeps the machine-id unless the image is prepared:
        # emptied, the next boot makes a fresh one.
        ssh(ssh_key, ip1, "sudo truncate -s 0 /etc/machine-id")

        machines.stop(first)
        started = time.monotonic()
        machines.snapshot(first, snapshot, disk1, image_volume)
        timings["snapshot"] = time.monotonic() - started
        machines.start(first)  # same IP after a stop
        machines.create_volume(disk2, 10, source_volume=image_volume)
        assert machines.volume_exists(disk2)

        started = time.monotonic()
        machines.boot(
            second, image=snapshot, hostname="vm-two", ip=ip2,
            meta_data=meta_data(second, "vm-two", ssh_key), user_data=None,
            disk_volume=disk2, cpus=1, ram_mb=1024,
        )  # fmt: skip
        assert machines.wait_up(second, timeout=120)
        timings["boot from snapshot to ssh"] = time.monotonic() - started
        assert ssh(ssh_key, ip2, "hostname").strip() == "vm-two"
        assert ssh(ssh_key, ip2, "systemctl is-system-running --wait") == "running\n"
        assert ssh(ssh_key, ip2, "cat /etc/machine-id") != machine_id
        assert ssh(ssh_key, ip2, "cat /etc/localcloud-test") == "made-by-runcmd\n"
        assert ssh(ssh_key, ip2, INNER_CHECK) == "new\n1234:5678\n"

        machines.attach_floating_ip(second, floating)
        assert ssh(ssh_key, floating, "hostname").strip() == "vm-two"
        machines.detach_floating_ip(second, floating)
        machines.detach_floating_ip(second, floating)  # idempotent

        assert machines.wait_up(first, timeout=60)
        assert ssh(ssh_key, ip1, "cat /etc/machine-id") == machine_id
    finally:
        for server in (first, second):
            machines.delete(server)
            machines.delete(server)  # idempotent
        for volume in (disk1, disk2, image_volume):
            machines.delete_volume(volume)
        machines.delete_volume(disk1)  # idempotent
        machines.delete_image(snapshot)
        print("timings:", {name: f"{seconds:.1f} s" for name, seconds in timings.items()})

    assert not machines.volume_exists(disk1)
    assert run not in docker_ls("ps", "-a", "--format", "{{.Names}}")
    assert run not in docker_ls("volume", "ls", "--format", "{{.Name}}")
    assert not (config.var_dir / "servers" / first).exists()
