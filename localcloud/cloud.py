"""The cloud's behaviour behind the APIs: servers, volumes, images, ports, quotas.

API modules validate requests and shape responses; this module changes records and drives
the machines. Slow work (booting, snapshotting, deleting) runs on worker threads, so that
clients see the same asynchrony as on a real cloud: BUILD, then ACTIVE or ERROR.
"""

import ipaddress
import json
import logging
import secrets
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from localcloud import firewall
from localcloud.api import ApiError, Faults, Recorder
from localcloud.config import Config
from localcloud.keystone import Tokens, hash_secret
from localcloud.machines import Machines
from localcloud.store import Store, new_id, now

log = logging.getLogger("localcloud")

BOOT_TIMEOUT = 300  # seconds from container start to sshd answering
DEFAULT_QUOTAS = {
    "instances": 10, "cores": 20, "ram": 51200, "key_pairs": 100, "server_groups": 10,
    "server_group_members": 10, "metadata_items": 128, "volumes": 10, "gigabytes": 1000,
    "snapshots": 10, "floatingip": 10, "security_group": 10, "security_group_rule": 100,
    "network": 10, "subnet": 10, "port": 50, "router": 10,
}
FLAVORS = [  # SSC's names; sizes of a small research cloud
    ("ssc.tiny", 1, 1024, 20),
    ("ssc.small", 1, 2048, 20),
    ("ssc.medium", 2, 4096, 40),
    ("ssc.large", 4, 8192, 80),
    ("ssc.xlarge", 8, 16384, 160),
]
PRIVATE_NETWORK_NAME = "private"
ROOT_DEVICE = "/dev/vda"  # the device a boot volume is attached as
# SHA-512 of no data: Glance's os_hash_value of an image of size 0
EMPTY_SHA512 = ("cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
                "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e")
PUBLIC_NETWORK_NAME = "Public External IPv4 Network"


def quota_exceeded(resource: str, requested: int, used: int, limit: int) -> ApiError:
    return ApiError(403, f"Quota exceeded for {resource}: Requested {requested}, but already "
                    f"used {used} of {limit} {resource}")


class Cloud:
    def __init__(self, config: Config, record_path: str | None = None,
                 machines: Machines | None = None):
        self.config = config
        self.store = Store(config.state_dir / "cloud.json")
        self.identity = load_identity(config)
        self.tokens = Tokens(self.store, self.identity, f"{config.endpoint}/identity")
        self.faults = Faults(self.store)
        self.recorder = Recorder(record_path)
        self.machines = machines or Machines(config)
        self.workers = ThreadPoolExecutor(max_workers=16, thread_name_prefix="work")
        self.requests = Counter()  # per service, for tests that check nothing reached the cloud
        self.ip_lock = threading.Lock()
        self.firewall_lock = threading.Lock()

    # --- set-up ----------------------------------------------------------------------

    def seed(self) -> None:
        """The records a fresh cloud starts with: flavors, networks, default security group."""
        with self.store.transaction() as data:
            for index, (name, vcpus, ram, disk) in enumerate(FLAVORS, start=1):
                data["flavors"].setdefault(str(index), {
                    "id": str(index), "name": name, "vcpus": vcpus, "ram": ram, "disk": disk,
                    "ephemeral": 0, "swap": 0, "rxtx_factor": 1.0, "is_public": True,
                    "description": None, "extra_specs": {}})
            if not data["quotas"]:
                data["quotas"] = {"project": dict(DEFAULT_QUOTAS)}
            data["quotas"]["project"] = {**DEFAULT_QUOTAS, **data["quotas"]["project"],
                                         **self.config.quotas}
        self._seed_network(PRIVATE_NETWORK_NAME, self.config.private_cidr, external=False)
        self._seed_network(PUBLIC_NETWORK_NAME, self.config.public_cidr, external=True)
        if not self.store.find("security_groups", name="default"):
            self.create_security_group("default", "Default security group", default=True)

    def _seed_network(self, name: str, cidr: str, external: bool) -> None:
        if self.store.find("networks", name=name):
            return
        network_id, subnet_id = new_id(), new_id()
        gateway = str(next(ipaddress.ip_network(cidr).hosts()))
        stamp = now()
        self.store.put("networks", {
            "id": network_id, "name": name, "subnets": [subnet_id], "external": external,
            "shared": False, "mtu": 1500, "created_at": stamp, "updated_at": stamp,
            "description": ""})
        self.store.put("subnets", {
            "id": subnet_id, "name": f"{'public' if external else 'private'}-subnet",
            "network_id": network_id, "cidr": cidr, "gateway_ip": gateway, "ip_version": 4,
            "enable_dhcp": not external, "created_at": stamp, "updated_at": stamp,
            "description": "",
            "allocation_pools": [{"start": str(ipaddress.ip_network(cidr)[10]),
                                  "end": str(ipaddress.ip_network(cidr)[-2])}]})

    def recover(self) -> None:
        """After a restart: finish what was cut off, fail what cannot be finished."""
        for server in self.store.all("servers"):
            if server["task_state"] == "deleting":
                self.workers.submit(self._guarded, self._delete, server["id"])
            elif server["vm_state"] == "building":
                self.fail_server(server["id"], "The build was interrupted by a restart of "
                                 "the cloud.")
            elif server["task_state"]:
                self.store.update("servers", server["id"], task_state=None)
        for image in self.store.all("images"):
            if image["status"] in ("queued", "saving") and image["properties"].get(
                    "instance_uuid"):
                self.store.update("images", image["id"], status="killed")
        for snapshot in self.store.all("snapshots"):
            if snapshot["status"] == "creating":
                self.store.update("snapshots", snapshot["id"], status="error")
            elif snapshot["status"] == "deleting":
                self.workers.submit(self.delete_snapshot_now, snapshot["id"])
        for volume in self.store.all("volumes"):
            if volume["status"] == "creating":
                self.store.update("volumes", volume["id"], status="error")
            elif volume["status"] == "deleting":
                self.workers.submit(self.delete_volume_now, volume["id"])

    def remove_all_servers(self) -> int:
        """Delete every server now (for `localcloud down`); volumes and images stay."""
        servers = self.store.all("servers")
        for server in servers:
            self._delete(server["id"])
        return len(servers)

    def network(self, *, external: bool) -> dict:
        name = PUBLIC_NETWORK_NAME if external else PRIVATE_NETWORK_NAME
        return self.store.find("networks", name=name)[0]

    # --- quotas ----------------------------------------------------------------------

    def quota(self, resource: str) -> int:
        return self.store.get("quotas", "project")[resource] if self.store.get(
            "quotas", "project") else DEFAULT_QUOTAS[resource]

    def usage(self) -> dict[str, int]:
        servers = self.store.all("servers")
        flavors = {f["id"]: f for f in self.store.all("flavors")}
        volumes = self.store.all("volumes")
        snapshots = self.store.all("snapshots")
        return {
            "instances": len(servers),
            "cores": sum(flavors[s["flavor_id"]]["vcpus"] for s in servers),
            "ram": sum(flavors[s["flavor_id"]]["ram"] for s in servers),
            "key_pairs": len(self.store.all("keypairs")),
            "volumes": len(volumes),
            # Cinder's gigabytes quota counts volumes and snapshots
            "gigabytes": sum(v["size"] for v in volumes) + sum(s["size"] for s in snapshots),
            "floatingip": len(self.store.all("floatingips")),
            "security_group": len(self.store.all("security_groups")),
            "security_group_rule": len(self.store.all("security_group_rules")),
            "network": len(self.store.all("networks")),
            "subnet": len(self.store.all("subnets")),
            "port": len(self.store.all("ports")),
            "server_groups": 0, "server_group_members": 0, "metadata_items": 0,
            "snapshots": len(snapshots), "router": 0,
        }

    def check_quota(self, **requested: int) -> None:
        """Raise Nova's 403 when any requested amount would pass its limit."""
        used = self.usage()
        for resource, amount in requested.items():
            limit = self.quota(resource)
            if limit >= 0 and used[resource] + amount > limit:
                raise quota_exceeded(resource, amount, used[resource], limit)

    # --- servers ---------------------------------------------------------------------

    def create_server(self, spec: dict) -> dict:
        """Record a server in BUILD and start building it. `spec` was checked by the API."""
        flavor = spec["flavor"]
        with self.store.lock:
            self.check_quota(instances=1, cores=flavor["vcpus"], ram=flavor["ram"])
            boot_volume = spec.get("boot_volume")
            if boot_volume and boot_volume.get("new_size"):
                self.check_volume_quota(boot_volume["new_size"])
            server_id = new_id()
            port = self.allocate_port(server_id, spec.get("port_id"), spec["security_groups"],
                                      spec.get("fixed_ip"))
            stamp = now()
            server = {
                "id": server_id, "name": spec["name"], "flavor_id": flavor["id"],
                "image_id": spec.get("image_id") or "", "key_name": spec.get("key_name"),
                "metadata": spec.get("metadata", {}), "user_data": spec.get("user_data"),
                "security_groups": spec["security_groups"], "port_id": port["id"],
                "hostname": spec["hostname"], "description": spec.get("description"),
                "tags": spec.get("tags", []), "availability_zone": spec.get(
                    "availability_zone"),
                "scheduler_hints": spec.get("scheduler_hints", {}),
                "access_ipv4": spec.get("access_ipv4", ""),
                "access_ipv6": spec.get("access_ipv6", ""), "config_drive": "",
                "vm_state": "building", "task_state": "scheduling", "power_state": 0,
                "created": stamp, "updated": stamp, "launched_at": None, "fault": None,
                "volumes": [], "disk_volume": None, "boot_volume": boot_volume,
                "locked": False, "reservation_id": "r-" + secrets.token_hex(4),
            }
            self.store.put("servers", server)
        self.workers.submit(self._guarded, self._build, server_id)
        return server

    def _guarded(self, work, server_id: str) -> None:
        try:
            work(server_id)
        except Exception as error:  # the worker must never die silently
            log.exception("%s of %s failed", work.__name__, server_id)
            self.fail_server(server_id, str(error))

    def fail_server(self, server_id: str, message: str, code: int = 500) -> None:
        self.store.update("servers", server_id, vm_state="error", task_state=None,
                          updated=now(), fault={"code": code, "message": message,
                                                "created": now()})

    def _build(self, server_id: str) -> None:
        self.faults.delay("server.build")
        server = self.store.get("servers", server_id)
        failure = self.faults.failure("server.create")
        if failure:
            self.fail_server(server_id, failure)
            return
        self.store.update("servers", server_id, task_state="block_device_mapping")
        image, disk_volume = self._prepare_disk(server)
        if self.store.get("servers", server_id) is None:
            return  # deleted while building
        self.store.update("servers", server_id, task_state="spawning", disk_volume=disk_volume)
        flavor = self.store.get("flavors", server["flavor_id"])
        port = self.store.get("ports", server["port_id"])
        self.machines.boot(
            server_id, image=image["docker_image"], hostname=server["hostname"],
            ip=port["fixed_ips"][0]["ip_address"], meta_data=self.meta_data(server),
            user_data=server["user_data"], disk_volume=disk_volume, cpus=flavor["vcpus"],
            ram_mb=flavor["ram"])
        if not self.machines.wait_up(server_id, BOOT_TIMEOUT):
            self.fail_server(server_id, "Build of instance timed out: the machine did not "
                             "answer on port 22.")
            return
        self.store.update("servers", server_id, vm_state="active", task_state=None,
                          power_state=1, launched_at=now(), updated=now())
        self.store.update("ports", port["id"], status="ACTIVE")
        self.enforce_security_groups()

    def enforce_security_groups(self, server_id: str | None = None) -> None:
        """Apply the security groups' ingress rules to one running server, or to all of
        them (after a change to rules, groups or ports: a rule naming a remote group depends
        on other servers' ports). localcloud/firewall.py says how. The firewall is applied
        once a server is ACTIVE (Nova's readiness check here reaches the machine's SSH from
        the host before that)."""
        with self.firewall_lock:
            for server in self.store.all("servers"):
                if server["vm_state"] != "active" or server_id not in (None, server["id"]):
                    continue
                rules = firewall.server_rules(self.store, server)
                self.machines.apply_ingress(server["id"], firewall.ruleset(rules),
                                            firewall.CHAIN)

    def _prepare_disk(self, server: dict) -> tuple[dict, str]:
        """The image to run and the Docker volume that is the server's disk."""
        boot = server["boot_volume"]
        if not boot:
            image = self.store.get("images", server["image_id"])
            disk = f"localcloud-disk-{server['id']}"
            self.machines.create_volume(disk, 0, image.get("data_volume"))
            return image, disk
        if boot.get("volume_id"):
            volume = self.store.get("volumes", boot["volume_id"])
        else:
            volume = self.create_volume_record(
                size=boot["new_size"], name="", image_id=boot["image_id"],
                description="")
            self._create_volume_data(volume["id"])
            boot = {**boot, "volume_id": volume["id"]}
            self.store.update("servers", server["id"], boot_volume=boot)
            volume = self.store.get("volumes", volume["id"])
        if volume["status"] == "error":
            raise RuntimeError(f"Volume {volume['id']} did not become available.")
        self.attach_volume(volume["id"], server["id"], boot.get("delete_on_termination"))
        if volume.get("docker_image"):  # made from a snapshot: its machine's file system
            return {"docker_image": volume["docker_image"]}, volume_docker_name(volume["id"])
        image = self.store.get("images", volume["image_id"])
        return image, volume_docker_name(volume["id"])

    def meta_data(self, server: dict) -> str:
        meta = {"instance-id": server["id"], "local-hostname": server["hostname"]}
        if server.get("key_name"):
            keypair = self.store.get("keypairs", server["key_name"])
            if keypair:
                meta["public-keys"] = [keypair["public_key"]]
        return json.dumps(meta, indent=1)

    def delete_server(self, server_id: str) -> None:
        self.store.update("servers", server_id, task_state="deleting", updated=now())
        self.workers.submit(self._guarded, self._delete, server_id)

    def _delete(self, server_id: str) -> None:
        self.faults.delay("server.destroy")
        server = self.store.get("servers", server_id)
        self.machines.delete(server_id)
        if server.get("disk_volume") and not server.get("boot_volume"):
            self.machines.delete_volume(server["disk_volume"])
        doomed = []
        for attachment in server["volumes"]:
            if attachment["delete_on_termination"] and self.volume_snapshots(attachment["id"]):
                # Cinder refuses to delete a volume that has snapshots; Nova's compute
                # manager logs that and goes on (_cleanup_volumes with raise_exc=False): the
                # volume stays, detached and available.
                log.info("volume %s has snapshots: not deleted with server %s",
                         attachment["id"], server_id)
                self.store.update("volumes", attachment["id"], status="available",
                                  attachments=[], updated_at=now())
            elif attachment["delete_on_termination"]:
                # Nova's compute manager asks Cinder to delete the volume before it destroys
                # the instance record; Cinder's volume service deletes it afterwards, so the
                # server is gone while the volume is still `deleting` (a delete of it now
                # gets Cinder's 400).
                self.store.update("volumes", attachment["id"], status="deleting",
                                  attachments=[], updated_at=now())
                doomed.append(attachment["id"])
            else:
                self.store.update("volumes", attachment["id"], status="available",
                                  attachments=[], updated_at=now())
        self.release_port(server["port_id"])
        self.store.delete("servers", server_id)
        self.enforce_security_groups()  # rules naming a remote group lose its address
        for volume_id in doomed:
            self.workers.submit(self._delete_volume_later, volume_id)

    def _delete_volume_later(self, volume_id: str) -> None:
        """Cinder's asynchronous delete of a boot volume Nova deleted with its server."""
        time.sleep(self.config.nova_volume_delete_delay)
        try:
            self.delete_volume_now(volume_id)
        except Exception:
            log.exception("deleting volume %s failed", volume_id)
            self.store.update("volumes", volume_id, status="error_deleting", updated_at=now())

    def power(self, server_id: str, action: str) -> None:
        """Stop, start or reboot, asynchronously, as Nova does."""
        task = {"stop": "powering-off", "start": "powering-on", "reboot": "rebooting"}[action]
        self.store.update("servers", server_id, task_state=task, updated=now())
        self.workers.submit(self._guarded, getattr(self, f"_{action}"), server_id)

    def _stop(self, server_id: str) -> None:
        self.machines.stop(server_id)
        self.store.update("servers", server_id, vm_state="stopped", task_state=None,
                          power_state=4, updated=now())

    def _start(self, server_id: str) -> None:
        self.machines.start(server_id)
        self.machines.wait_up(server_id, BOOT_TIMEOUT)
        self.store.update("servers", server_id, vm_state="active", task_state=None,
                          power_state=1, updated=now())
        self.enforce_security_groups(server_id)

    def _reboot(self, server_id: str) -> None:
        self.machines.reboot(server_id)
        self.machines.wait_up(server_id, BOOT_TIMEOUT)
        self.store.update("servers", server_id, vm_state="active", task_state=None,
                          power_state=1, updated=now())
        self.enforce_security_groups(server_id)

    # --- snapshots -------------------------------------------------------------------

    def snapshot_server(self, server_id: str, name: str, properties: dict) -> dict:
        server = self.store.get("servers", server_id)
        if server.get("boot_volume"):
            return self.snapshot_volume_backed(server, name, properties)
        base = self.store.get("images", server["image_id"]) if server["image_id"] else None
        if server.get("boot_volume"):
            volume = self.store.get("volumes", server["boot_volume"]["volume_id"])
            base = self.store.get("images", volume["image_id"])
        image = self.create_image_record(name, {
            **{k: v for k, v in (base or {}).get("properties", {}).items()
               if k.startswith("os_")},
            **properties, "image_type": "snapshot", "instance_uuid": server_id,
            "base_image_ref": (base or {}).get("id", ""), "owner_user_name": "demo",
            "user_id": self.identity["user_id"]},
            min_disk=(base or {}).get("min_disk", 0))
        self.store.update("servers", server_id, task_state="image_snapshot", updated=now())
        self.workers.submit(self._guarded_snapshot, server_id, image["id"])
        return image

    def snapshot_volume_backed(self, server: dict, name: str, properties: dict) -> dict:
        """Nova's createImage of a volume-backed server (nova/compute/api.py,
        snapshot_volume_backed): a Cinder snapshot of the boot volume (forced: it is
        attached), then at once an active Glance image of size 0 with no data whose
        properties name the snapshot (block_device_mapping, a JSON list of v2 mappings;
        bdm_v2; root_device_name). Nova checks Cinder's snapshot quota first (403 over
        quota). The snapshot is `creating` until the machine's file system and the
        volume's data are copied, then `available`."""
        volume = self.store.get("volumes", server["boot_volume"]["volume_id"])
        attachment = next(a for a in server["volumes"] if a["id"] == volume["id"])
        with self.store.lock:
            used, limit = self.usage()["snapshots"], self.quota("snapshots")
            if limit >= 0 and used + 1 > limit:
                raise ApiError(403, "Quota exceeded for resources: snapshots")
            snapshot = self.create_snapshot_record(volume, f"snapshot for {name}",
                                                   volume["description"], {})
        base = self.store.get("images", volume["image_id"]) if volume["image_id"] else None
        mapping = {
            "source_type": "snapshot", "destination_type": "volume",
            "snapshot_id": snapshot["id"], "volume_id": None, "image_id": None,
            "volume_size": volume["size"], "boot_index": 0, "device_name": ROOT_DEVICE,
            "delete_on_termination": attachment["delete_on_termination"],
            "disk_bus": None, "device_type": None, "guest_format": None, "tag": None,
            "volume_type": None, "no_device": None, "encrypted": None,
            "encryption_secret_uuid": None, "encryption_format": None,
            "encryption_options": None}
        flavor = self.store.get("flavors", server["flavor_id"])
        image = self.create_image_record(name, {
            **{k: v for k, v in (base or {}).get("properties", {}).items()
               if k.startswith("os_")},
            "base_image_ref": "", "owner_user_name": "demo", "owner_project_name": "demo",
            **properties, "root_device_name": ROOT_DEVICE,
            "block_device_mapping": json.dumps([mapping]), "bdm_v2": "True"},
            status="active", size=0, min_disk=flavor["disk"],
            checksum="d41d8cd98f00b204e9800998ecf8427e",  # MD5 of no data, as Glance gives
            os_hash_value=EMPTY_SHA512)
        self.store.update("servers", server["id"], task_state="image_snapshot", updated=now())
        self.workers.submit(self._guarded_volume_snapshot, server["id"], snapshot["id"])
        return image

    def _guarded_volume_snapshot(self, server_id: str, snapshot_id: str) -> None:
        try:
            self.faults.delay("image.snapshot")
            if self.faults.failure("server.createImage"):
                raise RuntimeError("injected fault")
            snapshot = self.store.get("snapshots", snapshot_id)
            self._snapshot_data(server_id, snapshot)
            self.store.update("snapshots", snapshot_id, status="available",
                              progress="100%", updated_at=now())
        except Exception:
            log.exception("snapshot %s of server %s failed", snapshot_id, server_id)
            self.store.update("snapshots", snapshot_id, status="error", updated_at=now())
        finally:
            self.store.update("servers", server_id, task_state=None, updated=now())

    def _snapshot_data(self, server_id: str, snapshot: dict) -> None:
        """The machine's file system (a Docker image) and a copy of the volume's data: what
        a volume made from the snapshot boots with."""
        docker_image = f"localcloud/snapshot:{snapshot['id']}"
        data_volume = f"localcloud-snapdata-{snapshot['id']}"
        server = self.store.get("servers", server_id)
        self.machines.snapshot(server_id, docker_image, server["disk_volume"], data_volume)
        self.store.update("snapshots", snapshot["id"], docker_image=docker_image,
                          data_volume=data_volume)

    def _guarded_snapshot(self, server_id: str, image_id: str) -> None:
        try:
            self._snapshot(server_id, image_id)
        except Exception:
            log.exception("snapshot %s of %s failed", image_id, server_id)
            self.store.update("images", image_id, status="killed", updated_at=now())
        finally:
            self.store.update("servers", server_id, task_state=None, updated=now())

    def _snapshot(self, server_id: str, image_id: str) -> None:
        self.faults.delay("image.snapshot")
        if self.faults.failure("server.createImage"):
            raise RuntimeError("injected fault")
        self.store.update("images", image_id, status="saving", updated_at=now())
        server = self.store.get("servers", server_id)
        docker_image = f"localcloud/image:{image_id}"
        data_volume = f"localcloud-imgdata-{image_id}"
        self.machines.snapshot(server_id, docker_image, server["disk_volume"], data_volume)
        size = self.machines.image_size(docker_image)
        self.store.update("images", image_id, status="active", docker_image=docker_image,
                          data_volume=data_volume, size=size, virtual_size=size,
                          checksum=secrets.token_hex(16), os_hash_value=secrets.token_hex(64),
                          updated_at=now())

    # --- images ----------------------------------------------------------------------

    def create_image_record(self, name: str, properties: dict, **fields) -> dict:
        stamp = now()
        image = {
            "id": new_id(), "name": name, "status": "queued", "visibility": "private",
            "protected": False, "tags": [], "container_format": "bare",
            "disk_format": "qcow2", "min_disk": 0, "min_ram": 0, "size": None,
            "virtual_size": None, "checksum": None, "os_hash_algo": "sha512",
            "os_hash_value": None, "owner": self.identity["project_id"],
            "created_at": stamp, "updated_at": stamp, "os_hidden": False,
            "docker_image": None, "data_volume": None, "properties": properties,
            **fields,
        }
        return self.store.put("images", image)

    def register_base_image(self, name: str, docker_image: str, size: int) -> dict:
        """The image every cloud starts with; a newer build of it replaces the old layers."""
        for image in self.store.find("images", name=name):
            if image.get("properties", {}).get("localcloud_base"):
                if image["docker_image"] != docker_image:
                    self.store.update("images", image["id"], docker_image=docker_image,
                                      size=size, virtual_size=size, updated_at=now())
                return self.store.get("images", image["id"])
        return self.create_image_record(
            name, {"os_distro": "debian", "os_version": "13", "os_admin_user": "debian",
                   "hw_disk_bus": "virtio", "localcloud_base": "true"},
            status="active", visibility="public", docker_image=docker_image, size=size,
            virtual_size=size, checksum=secrets.token_hex(16),
            os_hash_value=secrets.token_hex(64), min_disk=0)

    def delete_image(self, image_id: str) -> None:
        image = self.store.delete("images", image_id)
        if image and image.get("docker_image") and not image["properties"].get(
                "localcloud_base"):
            self.workers.submit(self._delete_image_data, image)

    def _delete_image_data(self, image: dict) -> None:
        self.machines.delete_image(image["docker_image"])
        if image.get("data_volume"):
            self.machines.delete_volume(image["data_volume"])

    # --- volumes ---------------------------------------------------------------------

    def check_volume_quota(self, size: int) -> None:
        used = self.usage()
        for resource, amount in (("volumes", 1), ("gigabytes", size)):
            limit = self.quota(resource)
            if limit >= 0 and used[resource] + amount > limit:
                if resource == "gigabytes":
                    raise ApiError(413, f"VolumeSizeExceedsAvailableQuota: Requested volume or "
                                   f"snapshot exceeds allowed gigabytes quota. Requested "
                                   f"{size}G, quota is {limit}G and {used[resource]}G has "
                                   "been consumed.")
                raise ApiError(413, f"VolumeLimitExceeded: Maximum number of volumes allowed "
                               f"({limit}) exceeded for quota 'volumes'.")

    def create_volume_record(self, *, size: int, name: str | None, image_id: str | None,
                             description: str | None, metadata: dict | None = None,
                             snapshot: dict | None = None) -> dict:
        stamp = now()
        if snapshot is not None:
            # Cinder copies the source volume's image metadata to its snapshots and to
            # volumes made from them: volume_image_metadata names the base image
            image_id = snapshot["image_id"]
        volume = {
            "id": new_id(), "name": name, "description": description, "size": size,
            "snapshot_id": snapshot["id"] if snapshot else None,
            "docker_image": snapshot["docker_image"] if snapshot else None,
            "status": "creating", "image_id": image_id, "bootable": bool(image_id),
            "metadata": metadata or {}, "attachments": [], "created_at": stamp,
            "updated_at": None, "volume_type": "__DEFAULT__", "availability_zone": "nova",
            "user_id": self.identity["user_id"], "project_id": self.identity["project_id"],
        }
        return self.store.put("volumes", volume)

    def create_volume(self, **fields) -> dict:
        with self.store.lock:
            self.check_volume_quota(fields["size"])
            volume = self.create_volume_record(**fields)
        self.workers.submit(self._create_volume_data, volume["id"])
        return volume

    def _create_volume_data(self, volume_id: str) -> None:
        try:
            self.faults.delay("volume.build")
            if self.faults.failure("volume.create"):
                raise RuntimeError("injected fault")
            volume = self.store.get("volumes", volume_id)
            if volume.get("snapshot_id"):
                source = self.store.get("snapshots", volume["snapshot_id"]) or {}
            else:
                source = (self.store.get("images", volume["image_id"]) if volume["image_id"]
                          else None) or {}
            self.machines.create_volume(volume_docker_name(volume_id), volume["size"],
                                        source.get("data_volume"))
            self.store.update("volumes", volume_id, status="available", updated_at=now())
        except Exception:
            log.exception("creating volume %s failed", volume_id)
            self.store.update("volumes", volume_id, status="error", updated_at=now())

    def attach_volume(self, volume_id: str, server_id: str, delete_on_termination) -> None:
        attachment = {"id": volume_id, "delete_on_termination": bool(delete_on_termination)}
        with self.store.transaction() as data:
            data["servers"][server_id]["volumes"].append(attachment)
            data["volumes"][volume_id].update(status="in-use", updated_at=now(), attachments=[{
                "id": volume_id, "attachment_id": new_id(), "volume_id": volume_id,
                "server_id": server_id, "host_name": None, "device": "/dev/vda",
                "attached_at": now()}])

    def delete_volume(self, volume_id: str) -> None:
        self.store.update("volumes", volume_id, status="deleting", updated_at=now())
        self.workers.submit(self.delete_volume_now, volume_id)

    def delete_volume_now(self, volume_id: str) -> None:
        self.machines.delete_volume(volume_docker_name(volume_id))
        volume = self.store.delete("volumes", volume_id)
        self._release_docker_image((volume or {}).get("docker_image"))

    def volume_snapshots(self, volume_id: str) -> list[dict]:
        return self.store.find("snapshots", volume_id=volume_id)

    # --- volume snapshots (Cinder) -------------------------------------------------------

    def create_snapshot_record(self, volume: dict, name: str | None,
                               description: str | None, metadata: dict) -> dict:
        """A snapshot of `volume`, `creating`. Raises Cinder's 413 over the snapshots or
        gigabytes quota."""
        used = self.usage()
        for resource, amount in (("snapshots", 1), ("gigabytes", volume["size"])):
            limit = self.quota(resource)
            if limit >= 0 and used[resource] + amount > limit:
                if resource == "snapshots":
                    raise ApiError(413, f"SnapshotLimitExceeded: Maximum number of snapshots "
                                   f"allowed ({limit}) exceeded")
                raise ApiError(413, f"VolumeSizeExceedsAvailableQuota: Requested volume or "
                               f"snapshot exceeds allowed gigabytes quota. Requested "
                               f"{amount}G, quota is {limit}G and {used[resource]}G has "
                               "been consumed.")
        stamp = now()
        return self.store.put("snapshots", {
            "id": new_id(), "name": name, "description": description,
            "volume_id": volume["id"], "size": volume["size"], "status": "creating",
            "metadata": metadata, "created_at": stamp, "updated_at": None,
            "progress": "0%", "user_id": self.identity["user_id"],
            "image_id": volume["image_id"], "docker_image": None, "data_volume": None})

    def create_snapshot(self, volume: dict, name: str | None, description: str | None,
                        metadata: dict) -> dict:
        """Cinder's snapshot of a volume through its API: `creating`, then `available`
        once the volume's data is copied (an attached volume's machine is snapshotted with
        it, as for Nova's createImage)."""
        with self.store.lock:
            snapshot = self.create_snapshot_record(volume, name, description, metadata)
        self.workers.submit(self._create_snapshot_data, snapshot["id"])
        return snapshot

    def _create_snapshot_data(self, snapshot_id: str) -> None:
        try:
            snapshot = self.store.get("snapshots", snapshot_id)
            volume = self.store.get("volumes", snapshot["volume_id"])
            server_id = next((a["server_id"] for a in volume["attachments"]), None)
            if server_id is not None:
                self._snapshot_data(server_id, snapshot)
            else:
                data_volume = f"localcloud-snapdata-{snapshot_id}"
                self.machines.create_volume(data_volume, snapshot["size"],
                                            volume_docker_name(volume["id"]))
                self.store.update("snapshots", snapshot_id, data_volume=data_volume,
                                  docker_image=volume.get("docker_image") or (
                                      self.store.get("images", volume["image_id"]) or {}
                                  ).get("docker_image"))
            self.store.update("snapshots", snapshot_id, status="available", progress="100%",
                              updated_at=now())
        except Exception:
            log.exception("snapshot %s failed", snapshot_id)
            self.store.update("snapshots", snapshot_id, status="error", updated_at=now())

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Cinder's delete: `deleting`, then gone (asynchronously, in its volume service)."""
        self.store.update("snapshots", snapshot_id, status="deleting", updated_at=now())
        self.workers.submit(self.delete_snapshot_now, snapshot_id)

    def delete_snapshot_now(self, snapshot_id: str) -> None:
        time.sleep(self.config.nova_volume_delete_delay)
        snapshot = self.store.get("snapshots", snapshot_id)
        if snapshot is None:
            return
        try:
            if snapshot.get("data_volume"):
                self.machines.delete_volume(snapshot["data_volume"])
        except Exception:
            log.exception("deleting snapshot %s failed", snapshot_id)
            self.store.update("snapshots", snapshot_id, status="error_deleting",
                              updated_at=now())
            return
        self.store.delete("snapshots", snapshot_id)
        self._release_docker_image(snapshot.get("docker_image"))

    def _release_docker_image(self, docker_image: str | None) -> None:
        """Delete a snapshot's machine image once no snapshot, volume or image uses it."""
        if not docker_image or not docker_image.startswith("localcloud/snapshot:"):
            return
        users = [r for c in ("snapshots", "volumes", "images") for r in self.store.all(c)
                 if r.get("docker_image") == docker_image]
        if not users:
            self.machines.delete_image(docker_image)

    # --- ports and security groups ---------------------------------------------------

    def allocate_port(self, server_id: str, port_id: str | None, security_groups: list,
                      fixed_ip: str | None) -> dict:
        if port_id:
            port = self.store.get("ports", port_id)
            if port["device_id"]:
                raise ApiError(409, f"Port {port_id} is still in use.")
            return self.store.update("ports", port_id, device_id=server_id,
                                     device_owner="compute:nova")
        network = self.network(external=False)
        return self.create_port(network, device_id=server_id, device_owner="compute:nova",
                                security_group_names=[g["name"] for g in security_groups],
                                fixed_ip=fixed_ip)

    def create_port(self, network: dict, *, device_id: str = "", device_owner: str = "",
                    security_group_names=("default",), fixed_ip: str | None = None,
                    name: str = "") -> dict:
        groups = [g["id"] for g in self.store.all("security_groups")
                  if g["name"] in security_group_names]
        subnet = self.store.get("subnets", network["subnets"][0])
        with self.ip_lock:
            address = fixed_ip or self.free_address(subnet)
            stamp = now()
            port = {
                "id": new_id(), "name": name, "network_id": network["id"],
                "mac_address": "fa:16:3e:" + ":".join(secrets.token_hex(1) for _ in range(3)),
                "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": address}],
                "device_id": device_id, "device_owner": device_owner, "status": "DOWN",
                "security_groups": groups, "admin_state_up": True, "created_at": stamp,
                "updated_at": stamp, "description": ""}
            return self.store.put("ports", port)

    def free_address(self, subnet: dict) -> str:
        taken = {ip["ip_address"] for p in self.store.all("ports") for ip in p["fixed_ips"]}
        taken |= {f["floating_ip_address"] for f in self.store.all("floatingips")}
        pool = subnet["allocation_pools"][0]
        start = ipaddress.ip_address(pool["start"])
        end = ipaddress.ip_address(pool["end"])
        address = start
        while address <= end:
            if str(address) not in taken:
                return str(address)
            address += 1
        raise ApiError(409, f"No more IP addresses available on network {subnet['network_id']}.",
                       kind="IpAddressGenerationFailure")

    def release_port(self, port_id: str) -> None:
        port = self.store.get("ports", port_id)
        if port is None:
            return
        for floating in self.store.find("floatingips", port_id=port_id):
            self.store.update("floatingips", floating["id"], port_id=None,
                              fixed_ip_address=None, status="DOWN", updated_at=now())
        if port["device_owner"] == "compute:nova" and not port["name"].startswith("user:"):
            self.store.delete("ports", port_id)
        else:
            self.store.update("ports", port_id, device_id="", device_owner="", status="DOWN")

    def create_security_group(self, name: str, description: str, default=False) -> dict:
        stamp = now()
        group = {"id": new_id(), "name": name, "description": description, "stateful": True,
                 "created_at": stamp, "updated_at": stamp, "tags": [], "revision_number": 0}
        self.store.put("security_groups", group)
        for ethertype in ("IPv4", "IPv6"):
            self.add_rule(group["id"], direction="egress", ethertype=ethertype)
            if default:
                self.add_rule(group["id"], direction="ingress", ethertype=ethertype,
                              remote_group_id=group["id"])
        return self.store.get("security_groups", group["id"])

    def add_rule(self, group_id: str, **fields) -> dict:
        stamp = now()
        rule = {"id": new_id(), "security_group_id": group_id, "direction": "ingress",
                "ethertype": "IPv4", "protocol": None, "port_range_min": None,
                "port_range_max": None, "remote_ip_prefix": None, "remote_group_id": None,
                "remote_address_group_id": None, "description": "", "normalized_cidr": None,
                "created_at": stamp, "updated_at": stamp, "revision_number": 0,
                "tags": [], "belongs_to_default_sg": False}
        rule.update(fields)
        if rule["remote_ip_prefix"]:
            rule["normalized_cidr"] = str(ipaddress.ip_network(rule["remote_ip_prefix"],
                                                               strict=False))
        return self.store.put("security_group_rules", rule)


def volume_docker_name(volume_id: str) -> str:
    return f"localcloud-vol-{volume_id}"


def load_identity(config: Config) -> dict:
    """The user, project and password of this cloud, made once and kept in var_dir."""
    path = Path(config.var_dir) / "identity.json"
    if path.exists():
        return json.loads(path.read_text())
    password = config.password or secrets.token_urlsafe(18)
    identity = {
        "user_id": new_id().replace("-", ""), "username": config.username,
        "project_id": new_id().replace("-", ""), "project_name": config.project,
        "password": password, "password_hash": hash_secret(password),
        "role_ids": {name: new_id().replace("-", "") for name in ("admin", "member", "reader")},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(identity, indent=1))
    return identity
