"""Servers ("VMs") as Docker containers that boot systemd and cloud-init.

Each server is a container `localcloud-<server_id>` with a fixed IP on the private network, a
NoCloud seed bind-mounted read-only, and a Docker volume at /var/lib/docker for its own dockerd.
Floating IPs are addresses on the public network. Snapshots are `docker commit` plus a copy of
that volume. Every object made here is labelled `io.localcloud=1`.

Memory limits are applied as given (cgroup v1); dockerd inside runs fine under them, but with
`--cgroupns=host` the containers dockerd starts are placed outside the server's cgroup, so the
limit covers the server's own processes only.
"""

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
from docker.errors import DockerException, NotFound
from docker.models.containers import Container
from docker.types import IPAMConfig, IPAMPool, Mount
from docker.utils import parse_repository_tag

from localcloud.config import DOCKER_LABEL, Config

log = logging.getLogger("localcloud")

CONTAINER_PREFIX = "localcloud-"
SERVER_LABEL = f"{DOCKER_LABEL}.server"
SNAPSHOT_LABEL = f"{DOCKER_LABEL}.snapshot-of"
SIZE_LABEL = f"{DOCKER_LABEL}.size-gb"
STOP_TIMEOUT = 30  # seconds systemd gets to shut down before SIGKILL
SEED_TARGET = "/var/lib/cloud/seed/nocloud"

# What a container needs to run systemd (and dockerd) as PID 1 here: see ENVIRONMENT.md.
SYSTEMD_OPTIONS = {
    "command": ["/lib/systemd/systemd"],
    "cap_add": ["ALL"],
    "cap_drop": ["SYS_RESOURCE"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "tmpfs": {"/run": "", "/run/lock": ""},
    "cgroupns": "host",
    "stop_signal": "SIGRTMIN+3",
    # A console, as a cloud's VM has a serial one: Docker gives the container a pty as
    # /dev/console, what is written there (systemd's and cloud-init's boot messages, the
    # launcher's records) is the container's log, read back as the server's console output.
    "tty": True,
}


class MachineError(RuntimeError):
    pass


class Machines:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._local = threading.local()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # networks

    def ensure_networks(self) -> None:
        config = self.config
        with self._locked("networks"), _errors("creating the networks"):
            self._ensure_network(config.private_network, config.private_cidr, config.gateway)
            self._ensure_network(config.public_network, config.public_cidr, config.public_gateway)

    def ensure_metadata_address(self, address: str) -> bool:
        """Give the host `address` (the metadata service's 169.254.169.254) on the servers'
        network's bridge, so that servers reach it through their gateway as they reach a real
        cloud's metadata proxy. Returns False (with a warning) when the host refuses."""
        network = self._docker.networks.get(self.config.private_network)
        bridge = network.attrs.get("Options", {}).get("com.docker.network.bridge.name") \
            or f"br-{network.id[:12]}"
        result = subprocess.run(["ip", "address", "replace", f"{address}/32", "dev", bridge],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log.warning("localcloud: no metadata service at %s: %s", address,
                        result.stderr.strip())
        return result.returncode == 0

    def apply_ingress(self, server_id: str, ruleset: str, chain: str) -> bool:
        """Load `ruleset` (``iptables-restore --noflush`` input defining `chain` in the
        mangle table) in the server's network namespace and send what comes in on its
        cloud-facing interfaces (``eth*``) through `chain`, as a compute host's firewall
        driver filters an instance's port. Returns False (logged) when the server is not
        running or the host refuses."""
        container = self._find(server_id)
        pid = container.attrs["State"].get("Pid") if container is not None else 0
        if not pid:
            return False
        enter = ["nsenter", "--target", str(pid), "--net"]
        rule = f"PREROUTING -t mangle -i eth+ -j {chain}"
        steps = [([*enter, "iptables-restore", "--noflush", "--wait"], ruleset),
                 ([*enter, "/bin/sh", "-c", f"iptables --wait -C {rule} 2>/dev/null"
                   f" || iptables --wait -I {rule.replace('PREROUTING', 'PREROUTING 1', 1)}"],
                  None)]
        for command, stdin in steps:
            result = subprocess.run(command, input=stdin, capture_output=True, text=True,
                                    check=False, timeout=60)
            if result.returncode != 0:
                log.warning("localcloud: firewall of server %s not applied: %s", server_id,
                            result.stderr.strip())
                return False
        return True

    def _ensure_network(self, name: str, cidr: str, gateway: str) -> None:
        try:
            network = self._docker.networks.get(name)
        except NotFound:
            pool = IPAMPool(subnet=cidr, gateway=gateway)
            self._docker.networks.create(
                name, driver="bridge", ipam=IPAMConfig(pool_configs=[pool]),
                labels={DOCKER_LABEL: "1"}, check_duplicate=True,
            )  # fmt: skip
            return
        subnets = [pool.get("Subnet") for pool in network.attrs["IPAM"]["Config"] or []]
        if cidr not in subnets:
            raise MachineError(f"Docker network {name} exists with subnets {subnets}, not {cidr}")

    # servers

    def boot(
        self,
        server_id: str,
        *,
        image: str,
        hostname: str,
        ip: str,
        meta_data: str,
        user_data: str | None,
        disk_volume: str,
        cpus: int,
        ram_mb: int,
    ) -> None:
        with self._locked(f"server:{server_id}"), _errors(f"booting server {server_id}"):
            if self._find(server_id) is not None:
                raise MachineError(f"server {server_id} already has a container")
            self._check_volume_unused(disk_volume)
            self.ensure_networks()
            seed = self._write_server_files(server_id, meta_data, user_data)
            self._ensure_volume(disk_volume, {})
            private = self.config.private_network
            endpoint = self._docker.api.create_endpoint_config(ipv4_address=ip)
            container = self._docker.containers.create(
                image,
                name=_container_name(server_id),
                hostname=hostname,
                labels={DOCKER_LABEL: "1", SERVER_LABEL: server_id},
                environment={"container": "docker", "container_uuid": _machine_id(server_id)},
                mounts=_server_mounts(seed, disk_volume),
                network=private,
                networking_config={private: endpoint},
                nano_cpus=int(min(cpus, os.cpu_count() or 1) * 1e9),
                mem_limit=f"{ram_mb}m",
                **SYSTEMD_OPTIONS,
            )
            try:
                self._start(container)
            except BaseException:
                _remove_container(container)
                raise

    def console(self, server_id: str) -> bytes:
        """Everything written to the server's console since its container was created."""
        with _errors(f"reading the console of server {server_id}"):
            return self._get(server_id).logs(stdout=True, stderr=True)

    def wait_up(self, server_id: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with _errors(f"waiting for server {server_id}"):
            container = self._get(server_id)
            while container.status == "running":
                if self._is_up(container):
                    return True
                if time.monotonic() > deadline:
                    break
                time.sleep(0.3)
                container.reload()
        return False

    def stop(self, server_id: str) -> None:
        with self._locked(f"server:{server_id}"), _errors(f"stopping server {server_id}"):
            self._get(server_id).stop(timeout=STOP_TIMEOUT)

    def start(self, server_id: str) -> None:
        with self._locked(f"server:{server_id}"), _errors(f"starting server {server_id}"):
            container = self._get(server_id)
            if container.status != "running":
                self._start(container)

    def reboot(self, server_id: str) -> None:
        with self._locked(f"server:{server_id}"), _errors(f"rebooting server {server_id}"):
            container = self._get(server_id)
            container.stop(timeout=STOP_TIMEOUT)
            self._start(container)

    def delete(self, server_id: str) -> None:
        with self._locked(f"server:{server_id}"), _errors(f"deleting server {server_id}"):
            container = self._find(server_id)
            if container is not None:
                _remove_container(container)
            self._remove_server_files(server_id)

    def stop_all(self) -> list[str]:
        """Stop and remove every server container on this Docker engine. Returns what could
        not be stopped, "<container name>: <the engine's reason>" each, and leaves those as
        they are: a container whose processes hang in the kernel never exits ("tried to kill
        container, but did not receive an exit event"), and it must not keep `down` (and the
        next `up`) from working."""
        with _errors("listing servers"):
            containers = self._docker.containers.list(all=True, filters={"label": SERVER_LABEL})
        with ThreadPoolExecutor(max_workers=8) as pool:
            return [stuck for stuck in pool.map(_stop_or_explain, containers) if stuck]

    def snapshot(self, server_id: str, image_ref: str, disk_volume: str, image_volume: str) -> None:
        with self._locked(f"server:{server_id}"), _errors(f"snapshotting server {server_id}"):
            container = self._get(server_id)
            with _paused(container):
                self._commit(container, server_id, image_ref)
                try:
                    self._copy_to_new_volume(disk_volume, image_volume, container.image.id, {})
                except BaseException:
                    self.delete_image(image_ref)
                    raise

    def _commit(self, container: Container, server_id: str, image_ref: str) -> None:
        repository, tag = parse_repository_tag(image_ref)
        changes = [
            f"LABEL {DOCKER_LABEL}=1",
            f'LABEL {SERVER_LABEL}=""',
            f'LABEL {DOCKER_LABEL}.base=""',
            f"LABEL {SNAPSHOT_LABEL}={server_id}",
        ]
        container.commit(repository, tag or "latest", changes=changes, pause=False)

    # floating IPs

    def attach_floating_ip(self, server_id: str, ip: str) -> None:
        public = self.config.public_network
        with self._locked(f"server:{server_id}"), _errors(f"attaching {ip} to {server_id}"):
            container = self._get(server_id)
            current = _network_ip(container, public)
            if current == ip:
                return
            network = self._docker.networks.get(public)
            if current is not None:
                network.disconnect(container)
            network.connect(container, ipv4_address=ip)

    def detach_floating_ip(self, server_id: str, ip: str) -> None:
        public = self.config.public_network
        with self._locked(f"server:{server_id}"), _errors(f"detaching {ip} from {server_id}"):
            container = self._find(server_id)
            if container is not None and _network_ip(container, public) == ip:
                self._docker.networks.get(public).disconnect(container)

    # volumes and images

    def create_volume(self, name: str, size_gb: int, source_volume: str | None = None) -> None:
        labels = {SIZE_LABEL: str(size_gb)}
        with _errors(f"creating volume {name}"):
            if source_volume is None:
                with self._locked(f"volume:{name}"):
                    if self.volume_exists(name):
                        raise MachineError(f"volume {name} exists")
                    self._ensure_volume(name, labels)
            else:
                self._copy_to_new_volume(source_volume, name, self._helper_image(), labels)

    def delete_volume(self, name: str) -> None:
        with (
            self._locked(f"volume:{name}"),
            _errors(f"deleting volume {name}"),
            contextlib.suppress(NotFound),
        ):
            self._docker.volumes.get(name).remove()

    def volume_exists(self, name: str) -> bool:
        with _errors(f"looking up volume {name}"):
            try:
                self._docker.volumes.get(name)
            except NotFound:
                return False
            return True

    def image_size(self, image_ref: str) -> int:
        with _errors(f"reading image {image_ref}"):
            return int(self._docker.images.get(image_ref).attrs.get("Size", 0))

    def delete_image(self, image_ref: str) -> None:
        with _errors(f"deleting image {image_ref}"), contextlib.suppress(NotFound):
            self._docker.images.remove(image_ref, force=True)

    def purge(self) -> None:
        label = {"label": DOCKER_LABEL}
        with _errors("purging localcloud's Docker objects"):
            self.stop_all()
            for container in self._docker.containers.list(all=True, filters=label):
                _remove_container(container)
            for network in self._docker.networks.list(filters=label):
                network.remove()
            for volume in self._docker.volumes.list(filters=label):
                volume.remove(force=True)
            images = self._docker.images.list(filters=label)
            # newest first: snapshots are children of the image they were booted from
            for image in sorted(images, key=lambda i: i.attrs["Created"], reverse=True):
                with contextlib.suppress(NotFound):
                    self._docker.images.remove(image.id, force=True)
        if self._servers_dir().is_dir():
            for server_dir in self._servers_dir().iterdir():
                self._remove_server_files(server_dir.name)

    # helpers

    @property
    def _docker(self) -> docker.DockerClient:
        client = getattr(self._local, "client", None)
        if client is None:
            with _errors("connecting to the Docker engine"):
                client = self._local.client = docker.from_env()
        return client

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def _find(self, server_id: str) -> Container | None:
        try:
            return self._docker.containers.get(_container_name(server_id))
        except NotFound:
            return None

    def _get(self, server_id: str) -> Container:
        container = self._find(server_id)
        if container is None:
            raise MachineError(f"server {server_id} has no container")
        return container

    def _start(self, container: Container) -> None:
        container.start()
        container.reload()
        if container.status != "running":
            logs = container.logs(tail=20).decode(errors="replace")
            raise MachineError(f"container {container.name} is {container.status}:\n{logs}")

    def _is_up(self, container: Container) -> bool:
        ip = _network_ip(container, self.config.private_network)
        return ip is not None and _port_open(ip, 22) and _cloud_init_ran(container)

    def _servers_dir(self) -> Path:
        return self.config.var_dir.resolve() / "servers"

    def _write_server_files(self, server_id: str, meta_data: str, user_data: str | None) -> Path:
        seed = self._servers_dir() / server_id / "seed"
        seed.mkdir(parents=True, exist_ok=True)
        (seed / "meta-data").write_text(meta_data)
        (seed / "user-data").write_text(user_data or "")
        return seed

    def _remove_server_files(self, server_id: str) -> None:
        server_dir = self._servers_dir() / server_id
        shutil.rmtree(server_dir / "seed", ignore_errors=True)
        with contextlib.suppress(OSError):
            server_dir.rmdir()

    def _check_volume_unused(self, name: str) -> None:
        users = self._docker.containers.list(all=True, filters={"volume": name})
        if users:
            raise MachineError(f"volume {name} is in use by {', '.join(c.name for c in users)}")

    def _ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        if not self.volume_exists(name):
            self._docker.volumes.create(name, labels={DOCKER_LABEL: "1", **labels})

    def _copy_to_new_volume(
        self, source: str, target: str, helper_image: str, labels: dict[str, str]
    ) -> None:
        with self._locked(f"volume:{target}"):
            if not self.volume_exists(source):
                raise MachineError(f"volume {source} does not exist")
            if self.volume_exists(target):
                raise MachineError(f"volume {target} exists")
            self._ensure_volume(target, labels)
            try:
                self._copy_volume(source, target, helper_image)
            except BaseException:
                self._docker.volumes.get(target).remove(force=True)
                raise

    def _copy_volume(self, source: str, target: str, helper_image: str) -> None:
        # GNU cp -a keeps ownership, modes, hard links, xattrs (trusted.* needs CAP_SYS_ADMIN)
        # and device nodes, so overlay2 layers with their whiteouts survive.
        container = self._docker.containers.create(
            helper_image,
            command=["cp", "-a", "/from/.", "/to/"],
            entrypoint=[],
            labels={DOCKER_LABEL: "1"},
            mounts=[
                Mount("/from", source, type="volume", read_only=True),
                Mount("/to", target, type="volume"),
            ],
            network_mode="none",
            cap_add=["SYS_ADMIN"],
            user="root",
        )
        try:
            container.start()
            status = container.wait()["StatusCode"]
            if status != 0:
                logs = container.logs(tail=20).decode(errors="replace")
                raise MachineError(f"copying volume {source} to {target} failed:\n{logs}")
        finally:
            container.remove(force=True)

    def _helper_image(self) -> str:
        images = self._docker.images.list(filters={"label": DOCKER_LABEL})
        if not images:
            raise MachineError("no localcloud image to copy volumes with: build the base image")
        return max(images, key=lambda image: image.attrs["Created"]).id


def _container_name(server_id: str) -> str:
    return f"{CONTAINER_PREFIX}{server_id}"


def _server_mounts(seed: Path, disk_volume: str) -> list[Mount]:
    return [
        Mount("/sys/fs/cgroup", "/sys/fs/cgroup", type="bind"),
        Mount(SEED_TARGET, str(seed), type="bind", read_only=True),
        Mount("/var/lib/docker", disk_volume, type="volume"),
    ]


def _machine_id(server_id: str) -> str:
    # While /etc/machine-id is empty, systemd mounts one made from $container_uuid over it:
    # stable across a server's reboots, different for servers booted from the same snapshot.
    # An image prepared for snapshotting empties the file, as on a real cloud.
    return uuid.uuid5(uuid.NAMESPACE_URL, f"localcloud:server:{server_id}").hex


def _network_ip(container: Container, network: str) -> str | None:
    endpoint = container.attrs["NetworkSettings"]["Networks"].get(network)
    if endpoint is None:
        return None
    configured = (endpoint.get("IPAMConfig") or {}).get("IPv4Address")
    return endpoint.get("IPAddress") or configured


def _port_open(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=1):
            return True
    except OSError:
        return False


def _cloud_init_ran(container: Container) -> bool:
    """True once cloud-init's init stage (users, SSH keys) has finished."""
    result = container.exec_run(["cat", "/run/cloud-init/status.json"])
    if result.exit_code != 0:
        return False
    try:
        status = json.loads(result.output)["v1"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool((status.get("init") or {}).get("finished"))


def _remove_container(container: Container) -> None:
    with contextlib.suppress(NotFound):
        container.remove(force=True)


def _stop_and_remove(container: Container) -> None:
    with contextlib.suppress(NotFound):
        container.stop(timeout=STOP_TIMEOUT)
    _remove_container(container)


def _stop_or_explain(container: Container) -> str | None:
    """None once `container` is gone; else its name and the engine's reason it is not."""
    try:
        _stop_and_remove(container)
    except DockerException as error:
        return f"{container.name}: {getattr(error, 'explanation', None) or error}"
    return None


@contextlib.contextmanager
def _paused(container: Container) -> Iterator[None]:
    container.reload()
    running = container.status == "running"
    if running:
        container.pause()
    try:
        yield
    finally:
        if running:
            container.unpause()


@contextlib.contextmanager
def _errors(action: str) -> Iterator[None]:
    try:
        yield
    except MachineError:
        raise
    except DockerException as error:
        explanation = getattr(error, "explanation", None) or str(error)
        raise MachineError(f"{action}: {explanation}") from error
    except OSError as error:
        raise MachineError(f"{action}: {error}") from error
