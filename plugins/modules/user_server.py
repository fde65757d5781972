#!/usr/bin/python
# Copyright: ssc-repo2docker developers
# BSD-3-Clause

DOCUMENTATION = r"""
module: user_server
short_description: Create or delete one user's VM that serves a repository with Jupyter
version_added: 0.1.0
author: ssc-repo2docker developers
description:
  - Creates a server booted from a repo2docker snapshot image whose user-data hands the
    repository, the commit and the Jupyter token to the VM's launcher, or deletes such a
    server with its volumes and floating IPs.
  - The user-data is built here from structured options, as data (JSON, never a template),
    and the token is a C(no_log) option, so it stays out of logs and job events.
  - With I(volume_size), the boot volume is made first (from I(image), marked in its
    metadata C(ssc_r2d_boot_volume_of=<name>) and C(ssc_r2d_boot_image=<image id>)), then
    the server boots from it and Nova deletes it with the server. A run cut off while Cinder
    copies the image leaves that volume; the next run boots from it if it is of the same
    image and size, in the wanted I(availability_zone) and of the wanted I(volume_type), and
    deletes other marked volumes first.
  - A create that fails deletes what it made (server, boot volume, floating IP) before
    failing with the cloud's own message.
  - Addresses come from Neutron (the server's ports and their floating IPs), not from Nova's
    C(addresses), which lists a new floating IP only once Neutron has notified Nova.
  - I(state=absent) deletes the server's floating IPs, then the server, waits (up to
    I(timeout)) for Nova's own delete of its boot volume, and deletes the volumes still
    there (attached ones Nova did not delete, marked ones a cut-off create left); with no
    server, it deletes the marked volumes left without one.
  - An existing server of that name is not created again; whether it serves the wanted
    repository is the caller's decision (compare I(metadata)). One that an earlier run, cut
    off, left building is waited for until ACTIVE and given its floating IP if it lacks one;
    one in ERROR (or another status it does not leave by itself) fails with the cloud's
    fault, to be deleted.
options:
  name:
    description: The server's name.
    type: str
    required: true
  state:
    description: Whether the server should exist.
    type: str
    choices: [present, absent]
    default: present
  image:
    description: Name or id of the image to boot from. Required to create the server.
    type: str
  flavor:
    description: Name or id of the flavor. Required to create the server.
    type: str
  network:
    description: Name or id of the network. Required to create the server.
    type: str
  security_groups:
    description: Names of security groups.
    type: list
    elements: str
    default: [default]
  key_name:
    description: A keypair to let the operator in over SSH (none when empty).
    type: str
  volume_size:
    description:
      - Boot from a new volume of this many GB, deleted with the server (0 boots from the
        image onto the flavor's disk).
      - An image of a volume-backed server (Nova's snapshot of one, of size 0, whose
        C(block_device_mapping) names a Cinder snapshot) holds no data; the volume is then
        made from that snapshot, and is as large as the snapshot when that is larger.
    type: int
    default: 0
  floating_ip_pool:
    description: Network to take a floating IP from; none when empty.
    type: str
  availability_zone:
    description:
      - Availability zone of the server and of its boot volume (Nova's and Cinder's zones
        of that name); the clouds' default zones when empty.
      - A cloud whose Nova does not attach volumes across zones (C([cinder]
        cross_az_attach = false)) needs the server in its volume's zone; naming one zone
        here puts both there.
    type: str
  volume_type:
    description:
      - Cinder volume type (name or id) of the boot volume; Cinder's default type when
        empty. Cinder answers an unknown one with 404, reported as the cloud's message.
      - Not used without I(volume_size), and for an existing server.
    type: str
  metadata:
    description: Server metadata (string values).
    type: dict
    default: {}
  launch:
    description: What the VM's launcher serves. Required to create the server.
    type: dict
    suboptions:
      repo:
        description: The repository URL (already checked).
        type: str
        required: true
      commit:
        description: The full commit id the controller resolved.
        type: str
        required: true
      port:
        description: The port Jupyter is published on.
        type: int
        default: 8888
  token:
    description: The Jupyter token for this VM (letters and digits, 32 to 128 characters).
      Required to create the server.
    type: str
extends_documentation_fragment:
  - openstack.cloud.openstack
"""

EXAMPLES = r"""
- name: Give ada (GitHub account 583231) a VM for her repository
  ssc.repo2docker.user_server:
    cloud: ssc
    name: ssc-r2d-583231
    image: ssc-repo2docker-1a2b3c4d5e6f
    flavor: ssc.medium
    network: my-project-network
    volume_size: 150
    floating_ip_pool: Public External IPv4 Network
    metadata:
      ssc_r2d_owner_id: "583231"
      ssc_r2d_owner_login: ada
    launch:
      repo: https://github.com/ada/analysis
      commit: 0123456789abcdef0123456789abcdef01234567
    token: "{{ token }}"
  no_log: false

- name: Take it away
  ssc.repo2docker.user_server:
    cloud: ssc
    name: ssc-r2d-583231
    state: absent
"""

RETURN = r"""
server:
  description: The server (absent when deleted or not found).
  returned: when the server exists
  type: dict
  contains:
    id:
      description: Server id.
      type: str
    name:
      description: Server name.
      type: str
    status:
      description: Nova status, e.g. ACTIVE.
      type: str
    metadata:
      description: Server metadata.
      type: dict
    fixed_ip:
      description: The server's address on I(network) (from its Neutron port).
      type: str
    floating_ip:
      description: Its floating IP, if any (from Neutron).
      type: str
    floating_ips:
      description: All floating IPs on its ports (from Neutron).
      type: list
      elements: str
    address:
      description: The address users reach (floating IP if any, else the fixed one).
      type: str
    image:
      description:
        - The image it booted from (id), when known. For a server booted from a volume,
          the image its boot volume's metadata names (C(ssc_r2d_boot_image)), else Cinder's
          C(volume_image_metadata) (which names the base image for a volume made from a
          snapshot).
      type: str
    volumes:
      description: Ids of the volumes attached to it.
      type: list
      elements: str
existed:
  description: Whether the server was there before this task.
  returned: always
  type: bool
volumes_deleted:
  description: Ids of the volumes this task deleted itself (Nova deletes a boot volume
    with delete_on_termination on its own; those are not listed).
  returned: when state is absent
  type: list
  elements: str
"""

import json
import re
import time
from typing import ClassVar

import openstack.exceptions
from ansible_collections.openstack.cloud.plugins.module_utils.openstack import OpenStackModule
from ansible_collections.ssc.repo2docker.plugins.module_utils.boot_volume import (
    DELETABLE,
    boot_volume_metadata,
    boot_volume_plan,
    booted_image,
    marked_for,
)
from ansible_collections.ssc.repo2docker.plugins.module_utils.launcher_contract import (
    JUPYTER_ENV,
    LAUNCH_SETTINGS,
    LAUNCHER_UNIT,
)
from ansible_collections.ssc.repo2docker.plugins.module_utils.server_address import (
    server_addresses,
)
from ansible_collections.ssc.repo2docker.plugins.module_utils.volume_snapshots import (
    boot_snapshot,
    boot_volume_size,
)

TOKEN = re.compile(r"[A-Za-z0-9]{32,128}")
COMMIT = re.compile(r"[0-9a-f]{40}")
# Statuses a server leaves by itself for ACTIVE: an existing server in one is waited for.
SETTLING = frozenset({"BUILD", "REBUILD", "REBOOT", "HARD_REBOOT", "MIGRATING", "RESIZE",
                      "VERIFY_RESIZE", "REVERT_RESIZE", "PASSWORD", "UNKNOWN"})
POLL = 1  # seconds between two looks at a server or volume while waiting


def user_data(launch: dict, token: str) -> str:
    """cloud-config for the launcher: its settings and the token as files, then start it.

    The paths and the unit are the launcher contract's (module_utils/launcher_contract.py),
    which the image's unit was written from. JSON is YAML: the values are written as data,
    whatever characters they hold."""
    settings = {"repo": launch["repo"], "commit": launch["commit"], "port": launch["port"]}
    config = {
        "write_files": [
            {"path": LAUNCH_SETTINGS, "permissions": "0600", "owner": "root:root",
             "content": json.dumps(settings) + "\n"},
            {"path": JUPYTER_ENV, "permissions": "0600", "owner": "root:root",
             "content": f"JUPYTER_TOKEN={token}\n"},
        ],
        "runcmd": [["systemctl", "enable", LAUNCHER_UNIT],
                   ["systemctl", "start", "--no-block", LAUNCHER_UNIT]],
    }
    return "#cloud-config\n" + json.dumps(config, indent=1) + "\n"


class UserServerModule(OpenStackModule):
    argument_spec: ClassVar[dict] = dict(
        name=dict(required=True),
        state=dict(default="present", choices=["present", "absent"]),
        image=dict(),
        flavor=dict(),
        network=dict(),
        security_groups=dict(type="list", elements="str", default=["default"]),
        key_name=dict(no_log=False),
        volume_size=dict(type="int", default=0),
        floating_ip_pool=dict(),
        availability_zone=dict(),
        volume_type=dict(),
        metadata=dict(type="dict", default={}),
        launch=dict(type="dict", options=dict(
            repo=dict(required=True),
            commit=dict(required=True),
            port=dict(type="int", default=8888),
        )),
        token=dict(no_log=True),
    )
    module_kwargs: ClassVar[dict] = dict(supports_check_mode=True)

    def run(self):
        name = self.params["name"]
        server = self.conn.get_server(name)
        if self.params["state"] == "absent":
            self._absent(server)
        if server is not None:
            self.exit_json(existed=True, **self._settle(server))
        self._check_launch()
        if self.ansible.check_mode:
            self.exit_json(changed=True, existed=False)
        self.exit_json(changed=True, existed=False, server=self._create())

    def _absent(self, server) -> None:
        """Delete the server with its floating IPs and volumes; with no server, the boot
        volumes a cut-off create left for this name."""
        if server is None:
            left = [v["id"] for v in marked_for(self._volumes(), self.params["name"])
                    if v["status"] != "deleting"]
            if self.ansible.check_mode or not left:
                self.exit_json(changed=bool(left), existed=False, volumes_deleted=[])
            try:
                deleted = self._remove_volumes(left)
            except Exception as error:
                self.fail_json(msg=f"Deleting the volumes left for the VM "
                               f"{self.params['name']} failed: {error}")
            self.exit_json(changed=True, existed=False, volumes_deleted=deleted)
        if self.ansible.check_mode:
            self.exit_json(changed=True, existed=True, server=self._describe(server))
        try:
            self.exit_json(changed=True, existed=True, **self._delete(server))
        except Exception as error:
            self.fail_json(msg=f"Deleting the VM {self.params['name']} failed: {error}")

    def _check_launch(self) -> None:
        missing = [key for key in ("image", "flavor", "network", "launch", "token")
                   if not self.params[key]]
        if missing:
            self.fail_json(msg=f"creating a VM needs {', '.join(missing)}")
        launch = self.params["launch"]
        if not COMMIT.fullmatch(launch["commit"]):
            self.fail_json(msg="launch.commit must be a full commit id (40 hex digits)")
        if not TOKEN.fullmatch(self.params["token"]):
            self.fail_json(msg="token must be 32 to 128 letters and digits")
        bad = {k: v for k, v in self.params["metadata"].items() if not isinstance(v, str)}
        if bad:
            self.fail_json(msg=f"metadata values must be strings: {sorted(bad)}")

    def _create(self) -> dict:
        params = self.params
        pool = params["floating_ip_pool"] or None
        try:
            if params["volume_size"] > 0:
                boot = dict(boot_volume=self._boot_volume(), terminate_volume=True)
            else:
                boot = dict(image=params["image"])
            if params["availability_zone"]:
                boot["availability_zone"] = params["availability_zone"]
            server = self.conn.create_server(
                name=params["name"], flavor=params["flavor"],
                network=params["network"], security_groups=params["security_groups"],
                key_name=params["key_name"] or None, auto_ip=False, meta=params["metadata"],
                userdata=user_data(params["launch"], params["token"]), wait=False, **boot)
            self._wait_until_active(server["id"])
            if pool:
                self._attach_floating_ip(server, pool)
        except Exception as error:  # the cloud's own message, after cleaning up
            self._clean_up_after_failure()
            self.fail_json(msg=f"Creating the VM {params['name']} failed: {error}")
        return self._describe(self.conn.get_server(server["id"]))

    def _boot_volume(self) -> str:
        """The id of an available boot volume for the server: one a cut-off run left (same
        image, size, zone and type), or a new one from the image. Other volumes marked for
        this server are deleted first."""
        name = self.params["name"]
        image = self.conn.image.find_image(self.params["image"], ignore_missing=False)
        source = self._boot_source(image.id)
        placement = {key: self.params[key] for key in ("availability_zone", "volume_type")
                     if self.params[key]}
        plan = boot_volume_plan(self._volumes(), name, image.id, source["size"], placement)
        self._remove_volumes(plan["wait"] + plan["delete"])
        volume_id = plan["adopt"]
        if volume_id is None:
            volume_id = self.conn.block_storage.create_volume(
                size=source["size"], name=name, metadata=boot_volume_metadata(name, image.id),
                **source["from"], **placement).id
        self._wait_for_volume(volume_id)
        return volume_id

    def _boot_source(self, image_id: str) -> dict:
        """Where the boot volume's data comes from and its size (GB): ``{"from": kwargs of
        create_volume, "size": int}``. An image of a volume-backed server (Nova's
        createImage of one) holds no data: its root block device mapping names a Cinder
        snapshot, and the volume is made from that snapshot, at least as large as it (Cinder
        refuses a smaller one). Made from the image itself, Cinder would copy its zero bytes
        into an empty volume (module_utils/volume_snapshots.py)."""
        size = self.params["volume_size"]
        response = self.conn.image.get(f"/images/{image_id}")
        self.sdk.exceptions.raise_from_response(response)
        root = boot_snapshot(response.json())
        if root is None:
            return {"from": {"image_id": image_id}, "size": size}
        snapshot = self.conn.block_storage.get_snapshot(root["snapshot_id"])
        return {"from": {"snapshot_id": snapshot.id},
                "size": boot_volume_size(size, max(snapshot.size or 0,
                                                   root["volume_size"] or 0))}

    def _settle(self, server) -> dict:
        """An existing server as a run that made it would leave it: a run cut off before
        (a restarted job runner, a lost connection) may have left it building, or without
        its floating IP. Returns ``changed`` and ``server``."""
        if self.ansible.check_mode:
            return {"changed": False, "server": self._describe(server)}
        try:
            if server["status"] in SETTLING:
                self._wait_until_active(server["id"])
            elif server["status"] != "ACTIVE":
                fault = (server.get("fault") or {}).get("message")
                raise RuntimeError(f"it is {server['status']}" + (f" ({fault})" if fault else "")
                                   + ": delete it (state=absent), then create it again")
            server = self.conn.get_server(server["id"])
            pool = self.params["floating_ip_pool"]
            # Neutron's view: Nova's addresses may not list a floating IP attached just now
            attach = bool(pool) and not self._addresses(server["id"])["floating_ips"]
            if attach:
                self._attach_floating_ip(server, pool)
        except Exception as error:
            self.fail_json(msg=f"The VM {self.params['name']} exists but is not usable: {error}")
        return {"changed": attach, "server": self._describe(server)}

    def _addresses(self, server_id: str) -> dict:
        """server_addresses() of the server, read from Neutron."""
        ports = [port.to_dict() for port in self.conn.network.ports(device_id=server_id)]
        floating = [ip.to_dict() for port in ports
                    for ip in self.conn.network.ips(port_id=port["id"])]
        network_id = None
        if self.params["network"]:
            network = self.conn.network.find_network(self.params["network"])
            network_id = network.id if network is not None else None
        return server_addresses(ports, floating, network_id)

    def _describe(self, server) -> dict:
        """The server as returned: Nova's fields, Neutron's addresses, and the image it booted
        from (for a volume-backed server, from its boot volume: Nova shows none)."""
        image = server.get("image") or {}
        described = {
            "id": server["id"], "name": server["name"], "status": server["status"],
            "metadata": dict(server.get("metadata") or {}),
            "image": image.get("id") if isinstance(image, dict) else None,
            "volumes": [v["id"] for v in server.get("attached_volumes")
                        or server.get("volumes") or []],
            **self._addresses(server["id"]),
        }
        for volume_id in described["volumes"]:
            if described["image"]:
                break
            volume = self.conn.block_storage.find_volume(volume_id, ignore_missing=True)
            described["image"] = booted_image(volume.to_dict() if volume else {})
        return described

    def _wait_until_active(self, server_id: str) -> None:
        """Poll every second (the SDK's own wait polls less often): ACTIVE, or the cloud's
        fault message."""
        deadline = time.monotonic() + self.params["timeout"]
        while time.monotonic() < deadline:
            server = self.conn.compute.get_server(server_id)
            if server.status == "ACTIVE":
                return
            if server.status == "ERROR":
                fault = (server.fault or {}).get("message") or "it went to ERROR"
                raise RuntimeError(f"the cloud reports: {fault}")
            time.sleep(POLL)
        raise RuntimeError(f"it was not ACTIVE after {self.params['timeout']} s")

    def _wait_for_volume(self, volume_id: str) -> None:
        """Until the volume is available (Cinder copies the image meanwhile: creating, then
        downloading), or fail with its status."""
        deadline = time.monotonic() + self.params["timeout"]
        while time.monotonic() < deadline:
            status = self.conn.block_storage.get_volume(volume_id).status
            if status == "available":
                return
            if status.startswith("error"):
                raise RuntimeError(f"the cloud could not make its boot volume ({status})")
            time.sleep(POLL)
        raise RuntimeError(f"its boot volume was not available after {self.params['timeout']} s")

    def _attach_floating_ip(self, server, pool: str) -> None:
        """A new floating IP from the pool on the server's port (Neutron's API)."""
        network = self.conn.network.find_network(pool, ignore_missing=False)
        port = next(iter(self.conn.network.ports(device_id=server["id"])), None)
        if port is None:
            raise RuntimeError(f"server {server['id']} has no port for a floating IP")
        self.conn.network.create_ip(floating_network_id=network.id, port_id=port.id)

    def _clean_up_after_failure(self) -> None:
        try:
            server = self.conn.get_server(self.params["name"])
            if server is not None:
                self._delete(server)
            else:
                self._remove_volumes([v["id"] for v in marked_for(self._volumes(),
                                                                  self.params["name"])])
        except Exception as error:
            self.fail_json(msg=f"Creating the VM {self.params['name']} failed, and so did "
                           f"deleting what was made: {error}")

    def _delete(self, server) -> dict:
        """Floating IPs, then the server (waited for), then its volumes and the ones marked
        for it. Returns ``server`` (as it was) and ``volumes_deleted``."""
        described = self._describe(server)
        for port in self.conn.network.ports(device_id=server["id"]):
            for ip in self.conn.network.ips(port_id=port.id):
                self.conn.network.delete_ip(ip, ignore_missing=True)
        self.conn.delete_server(server["id"], wait=True, timeout=self.params["timeout"])
        # not the boot volume of another server of that name (a cull deletes by id)
        marked = [v["id"] for v in marked_for(self._volumes(), server["name"])
                  if all(a.get("server_id") == server["id"] for a in v.get("attachments") or [])]
        volumes = list(dict.fromkeys(described["volumes"] + marked))
        return {"server": described, "volumes_deleted": self._remove_volumes(volumes)}

    def _volumes(self) -> list[dict]:
        """The project's volumes, Cinder's detail view."""
        return [volume.to_dict() for volume in self.conn.block_storage.volumes(details=True)]

    def _remove_volumes(self, volume_ids: list[str]) -> list[str]:
        """Until none of the volumes is left (bounded by the timeout): those Cinder can delete
        (available, error) are deleted; those Nova deletes with their server (status
        deleting) or Cinder is still making are waited for. Nova deletes a boot volume with
        delete_on_termination after the server is gone, asynchronously; deleting it again
        meanwhile gets Cinder's 400 ("Volume status must be available or error…"), so a
        400 here means someone else deletes it: wait. Returns the ids deleted here."""
        pending, deleted = set(volume_ids), []
        deadline = time.monotonic() + self.params["timeout"]
        while pending:
            for volume_id in sorted(pending):
                try:
                    volume = self.conn.block_storage.get_volume(volume_id)
                except openstack.exceptions.NotFoundException:
                    pending.discard(volume_id)
                    continue
                if volume.status in DELETABLE:
                    try:
                        self.conn.block_storage.delete_volume(volume_id)
                        deleted.append(volume_id)
                    except openstack.exceptions.BadRequestException:
                        pass  # it changed status meanwhile (Nova deletes it): look again
            if not pending:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"volumes {', '.join(sorted(pending))} were still there "
                                   f"after {self.params['timeout']} s")
            time.sleep(POLL)
        return list(dict.fromkeys(deleted))


def main():
    module = UserServerModule()
    module()


if __name__ == "__main__":
    main()
