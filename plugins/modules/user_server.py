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
  - A create that fails deletes what it made (server, boot volume, floating IP) before
    failing with the cloud's own message.
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
    description: Boot from a new volume of this many GB, deleted with the server
      (0 boots from the image onto the flavor's disk).
    type: int
    default: 0
  floating_ip_pool:
    description: Network to take a floating IP from; none when empty.
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
- name: Give ada a VM for her repository
  ssc.repo2docker.user_server:
    cloud: ssc
    name: ssc-r2d-ada
    image: ssc-repo2docker-1a2b3c4d5e6f
    flavor: ssc.medium
    network: my-project-network
    volume_size: 150
    floating_ip_pool: Public External IPv4 Network
    metadata:
      ssc_r2d_owner: ada
    launch:
      repo: https://github.com/ada/analysis
      commit: 0123456789abcdef0123456789abcdef01234567
    token: "{{ token }}"
  no_log: false

- name: Take it away
  ssc.repo2docker.user_server:
    cloud: ssc
    name: ssc-r2d-ada
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
      description: The server's address on I(network).
      type: str
    floating_ip:
      description: Its floating IP, if any.
      type: str
    address:
      description: The address users reach (floating IP if any, else the fixed one).
      type: str
    image:
      description: The image it booted from (id), when known.
      type: str
    volumes:
      description: Ids of the volumes attached to it.
      type: list
      elements: str
existed:
  description: Whether the server was there before this task.
  returned: always
  type: bool
"""

import json
import re
import time
from typing import ClassVar

from ansible_collections.openstack.cloud.plugins.module_utils.openstack import OpenStackModule
from ansible_collections.ssc.repo2docker.plugins.module_utils.launcher_contract import (
    JUPYTER_ENV,
    LAUNCH_SETTINGS,
    LAUNCHER_UNIT,
)

TOKEN = re.compile(r"[A-Za-z0-9]{32,128}")
COMMIT = re.compile(r"[0-9a-f]{40}")
# Statuses a server leaves by itself for ACTIVE: an existing server in one is waited for.
SETTLING = frozenset({"BUILD", "REBUILD", "REBOOT", "HARD_REBOOT", "MIGRATING", "RESIZE",
                      "VERIFY_RESIZE", "REVERT_RESIZE", "PASSWORD", "UNKNOWN"})


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


def addresses_of(server, network: str | None) -> dict:
    """The fixed address (on `network` when it is listed by name), the floating one, and
    the one users reach."""
    entries = [(name, entry) for name, listed in (server.get("addresses") or {}).items()
               for entry in listed]
    entries.sort(key=lambda pair: pair[0] != network)
    fixed = [e["addr"] for _, e in entries if e.get("OS-EXT-IPS:type") == "fixed"]
    floating = [e["addr"] for _, e in entries if e.get("OS-EXT-IPS:type") == "floating"]
    fixed_ip = fixed[0] if fixed else None
    floating_ip = floating[0] if floating else None
    return {"fixed_ip": fixed_ip, "floating_ip": floating_ip, "address": floating_ip or fixed_ip}


def describe(server, network: str | None) -> dict:
    image = server.get("image") or {}
    return {
        "id": server["id"], "name": server["name"], "status": server["status"],
        "metadata": dict(server.get("metadata") or {}),
        "image": image.get("id") if isinstance(image, dict) else None,
        "volumes": [v["id"] for v in server.get("attached_volumes")
                    or server.get("volumes") or []],
        **addresses_of(server, network),
    }


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
            self.exit_json(changed=server is not None, existed=server is not None,
                           **({} if server is None or self.ansible.check_mode
                              else self._delete(server)))
        if server is not None:
            self.exit_json(existed=True, **self._settle(server))
        self._check_launch()
        if self.ansible.check_mode:
            self.exit_json(changed=True, existed=False)
        self.exit_json(changed=True, existed=False, server=self._create())

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
            server = self.conn.create_server(
                name=params["name"], image=params["image"], flavor=params["flavor"],
                network=params["network"], security_groups=params["security_groups"],
                key_name=params["key_name"] or None,
                boot_from_volume=params["volume_size"] > 0,
                volume_size=params["volume_size"] or None, terminate_volume=True,
                auto_ip=False, meta=params["metadata"],
                userdata=user_data(params["launch"], params["token"]), wait=False)
            self._wait_until_active(server["id"])
            if pool:
                self._attach_floating_ip(server, pool)
        except Exception as error:  # the cloud's own message, after cleaning up
            self._clean_up_after_failure()
            self.fail_json(msg=f"Creating the VM {params['name']} failed: {error}")
        return self._describe(self.conn.get_server(server["id"]))

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
            attach = bool(pool) and not describe(server, self.params["network"])["floating_ip"]
            if attach:
                self._attach_floating_ip(server, pool)
                server = self.conn.get_server(server["id"])
        except Exception as error:
            self.fail_json(msg=f"The VM {self.params['name']} exists but is not usable: {error}")
        return {"changed": attach, "server": self._describe(server)}

    def _describe(self, server) -> dict:
        """describe(), with the image a volume-backed server booted from (Nova shows none)."""
        described = describe(server, self.params["network"])
        for volume_id in described["volumes"]:
            if described["image"]:
                break
            volume = self.conn.block_storage.find_volume(volume_id, ignore_missing=True)
            image_meta = getattr(volume, "volume_image_metadata", None) or {}
            described["image"] = image_meta.get("image_id")
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
            time.sleep(1)
        raise RuntimeError(f"it was not ACTIVE after {self.params['timeout']} s")

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
        except Exception as error:
            self.fail_json(msg=f"Creating the VM {self.params['name']} failed, and so did "
                           f"deleting what was made: {error}")

    def _delete(self, server) -> dict:
        described = describe(server, self.params["network"])
        volumes = described["volumes"]
        self.conn.delete_server(server["id"], wait=True, timeout=self.params["timeout"],
                                delete_ips=True)
        for volume_id in volumes:
            volume = self.conn.block_storage.find_volume(volume_id, ignore_missing=True)
            if volume is not None:
                self.conn.block_storage.delete_volume(volume, ignore_missing=True)
                self.conn.block_storage.wait_for_delete(volume, wait=self.params["timeout"])
        return {"server": described}


def main():
    module = UserServerModule()
    module()


if __name__ == "__main__":
    main()
