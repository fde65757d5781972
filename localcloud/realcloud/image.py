"""The realcloud image: OpenStack Zed from Debian 12's packages, installed and configured.

Two images, each tagged by a hash of what makes it, each built once per machine:

1. `realcloud/zed-packages:<hash>`: debootstrap bookworm (minbase) and `apt-get install
   --no-install-recommends` every service's package, with localcloud's base-image helpers
   (same debs cache mechanism, same systemd-in-Docker preparation). Nothing is configured.
2. `realcloud/zed:<hash>`: that image booted as a systemd container on the realcloud network
   at its fixed address, the files under `files/` copied in (placeholders like @ADDRESS@
   filled, fresh random passwords), `realcloud-setup` run inside (databases, db syncs,
   Keystone's catalog and users, Nova's cells and compute host, Neutron's networks and
   router), then stopped and `docker commit`ted. A container of this image answers within a
   minute of its start, with nothing left to configure.

The endpoints carry the container's address, so the address is part of the recipe.
"""

import hashlib
import io
import json
import re
import secrets
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from localcloud.baseimage import (
    MASKED_UNITS,
    REMOVED_AFTER_BUILD,
    Log,
    apt_sources,
    build_rootfs_image,
    ensure_image,
    finish_rootfs,
    host_certs,
    image_exists,
)

SUITE = "bookworm"
PACKAGES_REPOSITORY = "realcloud/zed-packages"
REPOSITORY = "realcloud/zed"
PACKAGES_RECIPE_VERSION = 2  # bump when the build steps change and the data below does not
RECIPE_VERSION = 3

NETWORK = "realcloud"
SUBNET = "10.89.9.0/24"
ADDRESS = "10.89.9.2"  # every endpoint in the catalog names it
HOSTNAME = "realcloud"  # RabbitMQ's node is rabbit@<hostname>: the same at build and run
REGION = "RegionOne"
# neutron's `test` mechanism driver binds a port (ACTIVE at once) whose host has this name
# (neutron/tests/unit/plugins/ml2/drivers/mechanism_test.py), so nova-compute takes it.
COMPUTE_HOST = "host-ovs-filter-active"
BUILD_CONTAINER = "realcloud-build"
# Not localcloud's io.localcloud: `localcloud down --purge` removes what carries that one.
LABEL = "io.realcloud"

PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "iproute2", "procps", "netbase", "ca-certificates",
    "curl", "less", "sudo",
    "mariadb-server", "python3-pymysql", "rabbitmq-server", "memcached", "python3-memcache",
    "keystone", "glance-api", "placement-api",
    "nova-api", "nova-conductor", "nova-scheduler", "nova-compute",
    # nova-compute needs a nova-compute-hypervisor: ironic's is the one without libvirt and
    # qemu; its nova-compute.conf is replaced (the fake driver, files/etc/nova)
    "nova-compute-ironic",
    "neutron-api", "cinder-api", "cinder-scheduler", "cinder-volume",
    "python3-openstackclient",
)  # fmt: skip

# Started in this order by realcloud-setup, then at every boot; not at the packages image's.
INFRA_SERVICES = ("mariadb", "rabbitmq-server", "memcached")
OPENSTACK_SERVICES = (
    "keystone", "glance-api", "placement-api", "nova-api", "nova-conductor", "nova-scheduler",
    "nova-compute", "neutron-api", "cinder-api", "cinder-scheduler", "cinder-volume",
)  # fmt: skip
# Installed as dependencies, of no use here: no iSCSI, LVM, metadata API, timers.
UNWANTED_UNITS = (
    "nova-api-metadata.service", "rtslib-fb-targetctl.service", "e2scrub_reap.service",
    "iscsid.socket", "iscsid.service", "open-iscsi.service", "dm-event.socket",
    "lvm2-lvmpolld.socket", "lvm2-monitor.service", "blk-availability.service",
    "systemd-pstore.service", "dpkg-db-backup.timer", "e2scrub_all.timer", "logrotate.timer",
)  # fmt: skip

PACKAGES_FILES = {
    "etc/apt/sources.list.d/debian.sources": apt_sources(SUITE),
    "etc/default/locale": "LANG=C.UTF-8\n",
    "etc/hostname": f"{HOSTNAME}\n",
}
PACKAGES_MASKED = (*MASKED_UNITS, *UNWANTED_UNITS)
PACKAGES_REMOVED = tuple(p for p in REMOVED_AFTER_BUILD if not p.startswith(("etc/ssh",
                                                                           "var/lib/cloud")))

# Where the files of files/ go in the container: their path below files/ is their path there.
FILES = Path(__file__).resolve().parent / "files"
PLACEHOLDER = re.compile(r"@([A-Z_]+)@")
SECRET_NAMES = ("ADMIN_PASSWORD", "DEMO_PASSWORD", "SERVICE_PASSWORD", "DB_PASSWORD",
                "RABBIT_PASSWORD")  # fmt: skip
CREDENTIALS = "/etc/realcloud/credentials.json"
SETUP = "/usr/local/sbin/realcloud-setup"

CONTAINER_OPTIONS = (
    # a systemd container without --privileged (see ENVIRONMENT.md)
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--tmpfs", "/run", "--tmpfs", "/run/lock",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--cgroupns=host",
    "-e", "container=docker", "--stop-signal", "SIGRTMIN+3",
    "--hostname", HOSTNAME, "--network", NETWORK, "--ip", ADDRESS,
)  # fmt: skip
IMAGE_CHANGES = ('CMD ["/lib/systemd/systemd"]', "ENV container=docker")
STOP_TIMEOUT = 120  # seconds systemd gets to stop every service before Docker kills it
SETUP_TIMEOUT = 1800


class RealcloudError(RuntimeError):
    pass


def ensure_realcloud_image(cache_dir: Path, *, log: Log = print) -> str:
    """The configured image's ref `realcloud/zed:<hash>`, built if missing (about 10 min).

    Its packages image is built first if missing too; both steps hold their own lock in
    cache_dir, so concurrent callers wait for one build. Building stops a running realcloud
    container (it holds the address the build needs; it is of an older recipe anyway).
    Raises BaseImageError or RealcloudError naming the step that failed, with the output's
    tail; the setup's whole output is in cache_dir/setup/setup.log.
    """
    cache_dir = Path(cache_dir).resolve()
    ref = f"{REPOSITORY}:{recipe_hash()}"
    if image_exists(ref):
        return ref
    packages = f"{PACKAGES_REPOSITORY}:{packages_recipe_hash()}"
    ensure_image(packages, cache_dir, _build_packages,
                 f"Debian {SUITE} with OpenStack Zed's packages, 5 to 10 minutes", log)
    ensure_image(ref, cache_dir / "setup", _configure_image(packages),
                 "OpenStack configured, 3 to 5 minutes", log)
    return ref


def packages_recipe_hash() -> str:
    recipe = {
        "version": PACKAGES_RECIPE_VERSION,
        "suite": SUITE,
        "sources": apt_sources(SUITE),
        "packages": PACKAGES,
        "masked": PACKAGES_MASKED,
        "disabled": [*INFRA_SERVICES, *OPENSTACK_SERVICES],
        "files": PACKAGES_FILES,
        "removed": PACKAGES_REMOVED,
        "changes": IMAGE_CHANGES,
        "host_ca": host_certs(),
    }
    return _digest(recipe)


def recipe_hash() -> str:
    """The configured image's tag: its packages image, the files, the address it serves at."""
    recipe = {
        "version": RECIPE_VERSION,
        "packages": packages_recipe_hash(),
        "files": {str(path.relative_to(FILES)): path.read_text() for path in _files()},
        "network": [NETWORK, SUBNET, ADDRESS, HOSTNAME, REGION, COMPUTE_HOST],
        "services": [INFRA_SERVICES, OPENSTACK_SERVICES],
        "changes": IMAGE_CHANGES,
    }
    return _digest(recipe)


def _digest(recipe: dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def _files() -> list[Path]:
    return sorted(path for path in FILES.rglob("*") if path.is_file()
                  and "__pycache__" not in path.parts)  # fmt: skip


def _build_packages(cache_dir: Path, ref: str, log: Log) -> None:
    build_rootfs_image(
        cache_dir, ref, suite=SUITE, packages=PACKAGES, log=log, name="realcloud-rootfs",
        configure=_configure_packages, image_changes=IMAGE_CHANGES, kind="packages",
        label=LABEL,
    )  # fmt: skip


def _configure_packages(rootfs: Path) -> None:
    """The packages image boots to an idle systemd: the packages enabled their services,
    which cannot start before realcloud-setup has configured them."""
    finish_rootfs(rootfs, PACKAGES_FILES, PACKAGES_MASKED, PACKAGES_REMOVED)
    units = {f"{name}.service" for name in (*INFRA_SERVICES, *OPENSTACK_SERVICES)}
    for link in (rootfs / "etc/systemd/system").glob("*.wants/*"):
        if link.name in units:
            link.unlink()


def _configure_image(packages: str) -> Callable[[Path, str, Log], None]:
    def build(cache_dir: Path, ref: str, log: Log) -> None:
        ensure_network()
        for name in (BUILD_CONTAINER, HOSTNAME):
            docker("rm", "-f", name, check=False)
        # no label of its own: the image it is committed to would carry it
        docker("run", "-d", "--name", BUILD_CONTAINER, *CONTAINER_OPTIONS, packages)
        try:
            started = time.monotonic()
            wait_for_systemd(BUILD_CONTAINER)
            docker("cp", "-", f"{BUILD_CONTAINER}:/", input=_rendered_files())
            _run_setup(cache_dir / "setup.log")
            log(f"realcloud-setup took {time.monotonic() - started:.0f} s")
            docker("stop", "-t", str(STOP_TIMEOUT), BUILD_CONTAINER)
            changes = [arg for change in IMAGE_CHANGES for arg in ("--change", change)]
            docker("commit", *changes, "--change",
                   f"LABEL {LABEL}.image={ref.rpartition(':')[2]}", BUILD_CONTAINER, ref)
        finally:
            docker("rm", "-f", BUILD_CONTAINER, check=False)

    return build


def _rendered_files() -> bytes:
    """A tar of files/ with the placeholders filled and fresh secrets, and the credentials
    `realcloud up` reads (CREDENTIALS, mode 0600)."""
    values = {name: secrets.token_urlsafe(24) for name in SECRET_NAMES}
    values |= {"ADDRESS": ADDRESS, "HOSTNAME": HOSTNAME, "REGION": REGION,
               "COMPUTE_HOST": COMPUTE_HOST, "INFRA_SERVICES": " ".join(INFRA_SERVICES),
               "OPENSTACK_SERVICES": " ".join(OPENSTACK_SERVICES)}  # fmt: skip
    credentials = {
        "auth_url": f"http://{ADDRESS}:5000/v3",
        "region_name": REGION,
        "admin": {"username": "admin", "password": values["ADMIN_PASSWORD"],
                  "project_name": "admin"},
        "demo": {"username": "demo", "password": values["DEMO_PASSWORD"],
                 "project_name": "demo"},
    }  # fmt: skip
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in _files():
            # by place, not by the file's mode: an installed wheel keeps no x bits
            executable = path.parent.name in ("bin", "sbin")
            _add(tar, str(path.relative_to(FILES)), _render(path, values),
                 0o755 if executable else 0o644)  # fmt: skip
        _add(tar, CREDENTIALS.lstrip("/"), json.dumps(credentials, indent=1), 0o600)
    return buffer.getvalue()


def _render(path: Path, values: dict[str, str]) -> str:
    """The file's text with each @NAME@ replaced by values[NAME]; RealcloudError if missing."""

    def value(match: re.Match) -> str:
        if match.group(1) not in values:
            raise RealcloudError(f"{path}: no value for {match.group(0)}")
        return values[match.group(1)]

    return PLACEHOLDER.sub(value, path.read_text())


def _add(tar: tarfile.TarFile, name: str, text: str, mode: int) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _run_setup(log_path: Path) -> None:
    with log_path.open("w") as output:
        result = subprocess.run(["docker", "exec", BUILD_CONTAINER, SETUP], stdout=output,
                                stderr=subprocess.STDOUT, timeout=SETUP_TIMEOUT)
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-40:])
        raise RealcloudError(f"{SETUP} failed ({result.returncode}); {log_path}:\n{tail}")


def wait_for_systemd(container: str, timeout: float = 300) -> str:
    """Wait until systemd in container has booted; its state ("running" or "degraded").
    Raises RealcloudError after timeout seconds."""
    deadline = time.monotonic() + timeout
    state = "unknown"
    while time.monotonic() < deadline:
        state = docker("exec", container, "systemctl", "is-system-running", check=False,
                       timeout=30).strip() or "unknown"  # fmt: skip
        if state in ("running", "degraded"):
            return state
        time.sleep(1)
    raise RealcloudError(f"systemd in {container} still {state} after {timeout:.0f} s")


def ensure_network() -> None:
    """The Docker network realcloud's container lives on (SUBNET), made once."""
    if docker("network", "inspect", NETWORK, check=False):
        return
    docker("network", "create", "--subnet", SUBNET, "--label", f"{LABEL}=1", NETWORK)


def docker(*args: str, check: bool = True, input: bytes | None = None,
           timeout: float | None = 600) -> str:
    """Run `docker args`; its stdout ("" when it failed or timed out and check is false).
    Raises RealcloudError with docker's output when it fails and check is true."""
    try:
        result = subprocess.run(["docker", *args], input=input, capture_output=True,
                                timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired as error:
        if check:
            raise RealcloudError(f"docker {' '.join(args[:3])} timed out ({timeout} s)") from error
        return ""
    if result.returncode != 0:
        if check:
            output = (result.stdout + result.stderr).decode(errors="replace").strip()
            raise RealcloudError(f"docker {' '.join(args[:3])} failed: {output[-3000:]}")
        return ""
    return result.stdout.decode(errors="replace")
