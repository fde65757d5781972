#!/usr/bin/python
# Copyright: (c) 2025, ssc-repo2docker developers
# BSD 3-Clause License (see https://opensource.org/licenses/BSD-3-Clause)

DOCUMENTATION = r"""
---
module: server_snapshot
short_description: Make a Glance image from an OpenStack server, once
version_added: 0.1.0
author: ssc-repo2docker developers
description:
  - Creates an image (a snapshot) of a Nova server with Nova's C(createImage) action and waits
    until the image is C(active). openstack.cloud has no module for this.
  - The image name is the identity. When the project already owns exactly one image of that
    name, no new snapshot is made, and the server need not exist any more; this lets a build
    playbook name the image after its inputs and skip the build when they have not changed.
  - When that image is C(active), the requested I(properties) it lacks or holds with another
    value are set with an image update (reported as changed). Other properties, such as the
    ones Nova adds (C(image_type), C(instance_uuid), C(base_image_ref), ...), are left alone;
    nothing is removed.
  - When it is still being made (C(queued), C(saving), C(uploading) or C(importing)), the
    module waits for it (when I(wait) is true), then sets missing properties as above.
  - When it is C(killed), C(deleted), C(pending_delete), C(deactivated) or in any other state,
    the module fails and names the image. It never deletes an image; delete the failed one
    yourself and run again.
  - Several images of that name in the project make the module fail; it does not guess.
  - Servers that boot from a volume work too. Nova then makes an image of size 0, active at
    once, whose C(block_device_mapping) property refers to Cinder snapshots of the server's
    volumes; with I(wait), the module also waits until those snapshots are C(available)
    (a volume cannot be made from them before) and fails if one is in error. Deleting such
    an image leaves its snapshots; M(ssc.repo2docker.image_prune) deletes both.
options:
  server:
    description:
      - Name or ID of the server to snapshot.
      - Must exist when a new image has to be made; a server that is busy (building, being
        snapshotted, ...) is refused by Nova with its own message.
    type: str
    required: true
  name:
    description:
      - Name of the image to make. Only images owned by the current project count as existing
        ones; a public image of the same name from another project is ignored.
    type: str
    required: true
  properties:
    description:
      - Properties to set on the image. They are passed to C(createImage) as metadata, which
        Nova turns into image properties.
      - Values are strings; numbers are converted to their decimal form and booleans to
        C(true) or C(false). Keys and values may have at most 255 characters.
      - Glance's core attributes (C(name), C(visibility), C(min_disk), C(os_hidden), ...) are
        not properties and are refused.
    type: dict
    default: {}
notes:
  - I(wait) and I(timeout) apply to the image becoming C(active). A snapshot of a large
    server can take many minutes; the default I(timeout) of 180 seconds is often too short.
    When the wait times out, the image is left being made; running the task again waits for
    it rather than making another.
  - With I(wait=false), the module returns as soon as the image exists (usually C(queued));
    properties of an image still being made are then not updated.
extends_documentation_fragment:
  - openstack.cloud.openstack
attributes:
  check_mode:
    support: full
    description:
      - Reports whether an image would be made or updated from the same comparison, without
        making or updating it. It still checks that the server exists when an image would be
        made.
  diff_mode:
    support: none
    description: No diff is reported.
"""

EXAMPLES = r"""
- name: Snapshot the builder, naming the image after what went into it
  ssc.repo2docker.server_snapshot:
    cloud: mycloud
    server: repo2docker-builder
    name: "repo2docker-{{ inputs_hash }}"
    properties:
      repo2docker_inputs: "{{ inputs_hash }}"
      repo2docker_prebuilt: "{{ prebuilt | join(',') }}"
      os_distro: debian
    timeout: 1800
  register: snapshot

- name: Show the new image
  ansible.builtin.debug:
    msg: "{{ snapshot.id }} is {{ snapshot.image.status }}"

- name: Start a snapshot and do not wait for it
  ssc.repo2docker.server_snapshot:
    cloud: mycloud
    server: 3b6f6f7e-4a1d-4c57-9c6e-2a4f1e0f8a2b
    name: nightly
    wait: false
"""

RETURN = r"""
id:
  description: ID of the image.
  returned: when the image exists (in check mode, not when it would be made)
  type: str
  sample: 2c7a9b4e-6d35-4a9f-8d8e-9b5b1f2f3e10
image:
  description:
    - The image, as openstacksdk's Image resource (C(to_dict(computed=False))), as the
      openstack.cloud modules return images.
    - Besides the keys below, it has every other attribute openstacksdk knows for an image
      (C(architecture), C(hw_disk_bus), C(os_distro), C(os_version), ...), null when unset.
  returned: when the image exists (in check mode, not when it would be made)
  type: dict
  contains:
    id:
      description: ID of the image.
      type: str
    name:
      description: Name of the image.
      type: str
    status:
      description:
        - Status of the image; C(active) when the module waited, usually C(queued) or
          C(saving) with I(wait=false).
      type: str
      sample: active
    properties:
      description:
        - The image's properties that openstacksdk does not know as attributes, which include
          the I(properties) set here and the ones Nova sets (C(image_type), C(base_image_ref),
          C(block_device_mapping) for volume-backed servers, ...). Properties openstacksdk
          knows (C(os_distro), C(instance_uuid), ...) are keys of I(image) instead.
      type: dict
      sample: {"image_type": "snapshot", "repo2docker_inputs": "5f2c..."}
    instance_uuid:
      description: ID of the server the image was made from.
      type: str
    size:
      description:
        - Size of the image data in bytes; 0 or null for a volume-backed server's image,
          whose data lives in Cinder snapshots.
      type: int
    virtual_size:
      description: Virtual size of the image, when known.
      type: int
    min_disk:
      description: Minimum disk size in GB to boot the image.
      type: int
    min_ram:
      description: Minimum RAM in MB to boot the image.
      type: int
    disk_format:
      description: Disk format, for example C(qcow2) or C(raw).
      type: str
    container_format:
      description: Container format, usually C(bare).
      type: str
    visibility:
      description: Who can see the image (C(private), C(shared), C(community), C(public)).
      type: str
    is_protected:
      description: Whether the image is protected from deletion.
      type: bool
    is_hidden:
      description: Whether the image is hidden from default image lists.
      type: bool
    owner:
      description: ID of the project that owns the image.
      type: str
    owner_id:
      description: Same as I(owner).
      type: str
    checksum:
      description: MD5 checksum of the image data.
      type: str
    hash_algo:
      description: Algorithm of I(hash_value).
      type: str
    hash_value:
      description: Secure hash of the image data.
      type: str
    tags:
      description: Tags of the image.
      type: list
      elements: str
    created_at:
      description: When the image was created.
      type: str
    updated_at:
      description: When the image was last updated.
      type: str
"""

import time
from typing import ClassVar

from ansible_collections.openstack.cloud.plugins.module_utils.openstack import (
    OpenStackModule,
)
from ansible_collections.ssc.repo2docker.plugins.module_utils.volume_snapshots import (
    snapshot_ids,
)

IN_PROGRESS = ("queued", "saving", "uploading", "importing")
FAILED = ("killed", "deleted", "pending_delete", "deactivated", "error")
# Glance's core and read-only attributes: not properties, and not to be set through
# createImage's metadata.
RESERVED = frozenset((
    "id", "name", "status", "visibility", "protected", "tags", "container_format",
    "disk_format", "min_disk", "min_ram", "size", "virtual_size", "checksum", "os_hash_algo",
    "os_hash_value", "owner", "created_at", "updated_at", "os_hidden", "locations",
    "direct_url", "self", "file", "schema", "deleted", "deleted_at",
))
MAX_LENGTH = 255


class SnapshotError(Exception):
    """A state or an input the module refuses to act on; its message is for the user."""


def normalize_properties(properties):
    """The requested properties as Glance keeps them: string keys and string values."""
    normalized = {}
    for key, value in (properties or {}).items():
        if not isinstance(key, str) or not key or len(key) > MAX_LENGTH:
            raise SnapshotError(f"property name {key!r} must be a string of 1 to "
                                f"{MAX_LENGTH} characters")
        if key in RESERVED:
            raise SnapshotError(f"{key!r} is a core image attribute, not a property")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        elif not isinstance(value, str):
            raise SnapshotError(f"property {key!r} must be a string, a number or a boolean, "
                                f"not {type(value).__name__}")
        if len(value) > MAX_LENGTH:
            raise SnapshotError(f"property {key!r} is longer than {MAX_LENGTH} characters")
        normalized[key] = value
    return normalized


def property_changes(image, properties):
    """The requested properties that `image` (Glance's JSON: properties are top-level keys)
    lacks or holds with another value."""
    return {key: value for key, value in properties.items() if image.get(key) != value}


def decide(images, name, properties):
    """What to do, given Glance's JSON of the project's images named `name`.

    Returns a dict: `action` (`create`, `wait`, `update` or `none`), `image` (the existing
    image's JSON or None) and `changes` (the properties to set). Raises SnapshotError for
    several images of that name or an image in a failed or unknown state.
    """
    if not images:
        return {"action": "create", "image": None, "changes": dict(properties)}
    if len(images) > 1:
        ids = ", ".join(sorted(image["id"] for image in images))
        raise SnapshotError(f"{len(images)} images are named {name!r} ({ids}); "
                            "rename or delete all but one")
    image = images[0]
    status = str(image.get("status") or "").lower()
    changes = property_changes(image, properties)
    if status == "active":
        return {"action": "update" if changes else "none", "image": image, "changes": changes}
    if status in IN_PROGRESS:
        return {"action": "wait", "image": image, "changes": changes}
    if status in FAILED:
        raise SnapshotError(f"image {name!r} ({image['id']}) exists with status {status}; "
                            "this module does not delete images: delete it and run again")
    raise SnapshotError(f"image {name!r} ({image['id']}) has the unexpected status "
                        f"{status or 'none'}")


def reports_change(plan, wait):
    """Whether carrying out `plan` changes something (what check mode reports)."""
    if plan["action"] in ("create", "update"):
        return True
    return plan["action"] == "wait" and wait and bool(plan["changes"])


class ServerSnapshotModule(OpenStackModule):
    argument_spec: ClassVar[dict] = dict(
        server=dict(type="str", required=True),
        name=dict(type="str", required=True),
        properties=dict(type="dict", default={}),
    )
    module_kwargs: ClassVar[dict] = dict(
        supports_check_mode=True,
    )

    def run(self):
        name, wait = self.params["name"], self.params["wait"]
        try:
            properties = normalize_properties(self.params["properties"])
            found = self._find_images(name)
            plan = decide([raw for _, raw in found], name, properties)
        except SnapshotError as error:
            self.fail_json(msg=str(error))
        image = found[0][0] if found else None

        server = None
        if plan["action"] == "create":
            server = self.conn.compute.find_server(self.params["server"], ignore_missing=True)
            if server is None:
                self.fail_json(msg=f"server {self.params['server']!r} not found; it is needed "
                                   f"to make the image {name!r}")

        if self.check_mode:
            self._exit(reports_change(plan, wait), image)

        if plan["action"] == "create":
            image = self.conn.compute.create_server_image(
                server, name, metadata=properties or None, wait=False)
            if image is None:  # Glance did not show it yet
                made = self._find_images(name)
                if len(made) != 1:
                    self.fail_json(msg=f"Nova accepted the snapshot of {server.name!r}, but "
                                       f"Glance shows {len(made)} images named {name!r}")
                image = made[0][0]
            if wait:
                image = self._wait(image)
            self._exit(True, image)

        changed = False
        if plan["action"] == "wait":
            if not wait:
                self._exit(False, image)
            image = self._wait(image)
            plan["changes"] = property_changes(self._raw_image(image.id) or {}, properties)
        if plan["changes"]:
            # By ID, not with the Image: from an Image, openstacksdk would also remove the
            # properties it does not name. By ID it sends one JSON-patch "add" per property,
            # which sets a missing property and replaces a present one.
            self.conn.image.update_image(image.id, **plan["changes"])
            image = self.conn.image.get_image(image.id)
            changed = True
        self._exit(changed, image)

    def _find_images(self, name):
        """The project's images named `name`: (openstacksdk Image, Glance's JSON) pairs."""
        project = self.conn.current_project_id
        found = []
        for image in self.conn.image.images(name=name, owner=project):
            if image.name != name or image.owner != project:
                continue
            raw = self._raw_image(image.id)
            if raw is not None:
                found.append((image, raw))
        return found

    def _raw_image(self, image_id):
        """Glance's own JSON of an image, None if it is gone. openstacksdk's Image turns some
        properties into booleans (and 'false' into True), so properties are compared on this."""
        response = self.conn.image.get(f"/images/{image_id}")
        if response.status_code == 404:
            return None
        self.sdk.exceptions.raise_from_response(response)
        return response.json()

    def _wait(self, image):
        timeout = self.params["timeout"]
        exceptions = self.sdk.exceptions
        try:
            return self.conn.image.wait_for_status(
                image, status="active", failures=list(FAILED), interval=2, wait=timeout)
        except exceptions.ResourceTimeout:
            self.fail_json(msg=f"image {image.name!r} ({image.id}) is still "
                               f"{self._status(image)} after {timeout} seconds; run again "
                               "to keep waiting for it, with a larger timeout")
        except exceptions.ResourceFailure:
            self.fail_json(msg=f"image {image.name!r} ({image.id}) went to status "
                               f"{self._status(image)} while it was being made")
        except exceptions.NotFoundException:
            self.fail_json(msg=f"image {image.name!r} ({image.id}) was deleted while it was "
                               "being made")

    def _status(self, image):
        raw = self._raw_image(image.id)
        return raw.get("status") if raw else "deleted"

    def _exit(self, changed, image):
        if image is None:
            self.exit_json(changed=changed)
        if self.params["wait"] and not self.check_mode:
            self._wait_for_snapshots(image)
        self.exit_json(changed=changed, id=image.id, image=image.to_dict(computed=False))

    def _wait_for_snapshots(self, image):
        """For an active image of a volume-backed server: until the Cinder snapshots its
        block_device_mapping names are available. Nova makes that image active at once
        (size 0, no data) while Cinder may still be making the snapshots, and a volume
        cannot be made from a snapshot until it is available."""
        raw = self._raw_image(image.id) or {}
        if str(raw.get("status")).lower() != "active":
            return
        pending = set(snapshot_ids(raw))
        deadline = time.monotonic() + self.params["timeout"]
        while pending:
            for snapshot_id in sorted(pending):
                snapshot = self.conn.block_storage.find_snapshot(snapshot_id)
                status = snapshot.status if snapshot is not None else "deleted"
                if status == "available":
                    pending.discard(snapshot_id)
                elif status != "creating":
                    self.fail_json(msg=f"image {image.name!r} ({image.id}) is active, but "
                                       f"its volume snapshot {snapshot_id} is {status}")
            if pending and time.monotonic() > deadline:
                self.fail_json(msg=f"the volume snapshots of image {image.name!r} "
                                   f"({', '.join(sorted(pending))}) were not available after "
                                   f"{self.params['timeout']} seconds; run again to keep "
                                   "waiting")
            if pending:
                time.sleep(2)


def main():
    module = ServerSnapshotModule()
    module()


if __name__ == "__main__":
    main()
