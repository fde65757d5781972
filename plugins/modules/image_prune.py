#!/usr/bin/python
# Copyright: ssc-repo2docker developers
# BSD-3-Clause

DOCUMENTATION = r"""
---
module: image_prune
short_description: Delete older images with their Cinder snapshots and builder volumes
version_added: 0.1.0
author: ssc-repo2docker developers
description:
  - Keeps the newest I(keep) images whose property C(ssc_r2d_prefix) is I(prefix) and
    deletes the others. openstack.cloud's image module deletes a Glance image only.
  - An image of a volume-backed server (Nova's C(createImage) of a server booted from a
    volume) holds no data; its property C(block_device_mapping) names Cinder snapshots of
    the server's volumes, which Glance leaves behind when the image goes, until the
    project's snapshot quota is spent. After deleting such an image, this module deletes
    its snapshots and waits until they are gone.
  - Cinder refuses to delete a volume that has snapshots, so the builder's boot volume
    outlives its builder as long as the image's snapshots do. build_image.yml marks it in
    its metadata (C(ssc_r2d_builder_of), C(ssc_r2d_prefix), C(ssc_r2d_builder)); once no
    snapshot of it is left, this module deletes it and waits until it is gone.
  - A run cut off part-way is finished by the next one; snapshots of idle builder volumes
    of I(prefix) that no image names any more are deleted too. A builder volume is idle
    when it is not attached and no server has its builder's name.
  - A snapshot that Cinder cannot delete (it goes back to C(available) because volumes made
    from it still depend on it, as with Ceph, or to C(error_deleting)) is left with a
    warning, and so is its volume; a later run tries again.
  - Run one build per prefix at a time; a build in progress holds its builder server, and
    its volume is left alone. A builder volume made before its server exists is not told
    apart from a leftover, so a prune run while another build of the prefix is starting
    may delete that build's volume. The shipped C(deploy/ssc-build-image.service) runs
    builds one at a time when they are started through it.
options:
  prefix:
    description: The images' C(ssc_r2d_prefix) property (build_image.yml's ssc_image_name_prefix).
    type: str
    required: true
  keep:
    description:
      - How many of the newest images of I(prefix) to keep (by C(created_at)); the older
        ones are deleted. Unset, no image is deleted, but snapshots and builder volumes no
        image needs any more are (build_image.yml does this after deleting a builder).
    type: int
extends_documentation_fragment:
  - openstack.cloud.openstack
attributes:
  check_mode:
    support: full
    description: Reports what would be deleted, from the same plan, and deletes nothing.
  diff_mode:
    support: none
    description: No diff is reported.
notes:
  - I(timeout) bounds the wait for the snapshots and volumes to be gone.
"""

EXAMPLES = r"""
- name: Keep the newest three images
  ssc.repo2docker.image_prune:
    cloud: mycloud
    prefix: ssc-repo2docker
    keep: 3

- name: Delete the builder volumes no image needs
  ssc.repo2docker.image_prune:
    cloud: mycloud
    prefix: ssc-repo2docker
"""

RETURN = r"""
images_deleted:
  description: The images deleted (or that would be, in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Image id.
      type: str
    name:
      description: Image name.
      type: str
    created_at:
      description: When it was made.
      type: str
snapshots_deleted:
  description: Ids of the Cinder snapshots deleted (or that would be).
  returned: always
  type: list
  elements: str
volumes_deleted:
  description: Ids of the builder volumes deleted (or that would be).
  returned: always
  type: list
  elements: str
"""

import time
from typing import ClassVar

from ansible_collections.openstack.cloud.plugins.module_utils.openstack import OpenStackModule
from ansible_collections.ssc.repo2docker.plugins.module_utils.volume_snapshots import (
    SNAPSHOT_DELETABLE,
    SNAPSHOT_MAKING,
    VOLUME_DELETABLE,
    prune_plan,
)

POLL = 1  # seconds between two looks at a snapshot or volume while waiting


class ImagePruneModule(OpenStackModule):
    argument_spec: ClassVar[dict] = dict(
        prefix=dict(type="str", required=True),
        keep=dict(type="int"),
    )
    module_kwargs: ClassVar[dict] = dict(supports_check_mode=True)

    def run(self):
        keep = self.params["keep"]
        if keep is not None and keep < 0:
            self.fail_json(msg="keep must be 0 or more")
        plan = prune_plan(self._images(), self._snapshots(), self._volumes(),
                          {s.name for s in self.conn.compute.servers()},
                          self.params["prefix"], keep)
        images = [{"id": i["id"], "name": i.get("name"), "created_at": i.get("created_at")}
                  for i in plan["images"]]
        changed = bool(images or plan["snapshots"] or plan["volumes"])
        if self.ansible.check_mode or not changed:
            self.exit_json(changed=changed, images_deleted=images,
                           snapshots_deleted=plan["snapshots"],
                           volumes_deleted=plan["volumes"])
        # the image first: a run cut off after it leaves snapshots the next run finds
        for image in images:
            self.conn.image.delete_image(image["id"], ignore_missing=True)
        deleted, kept = self._delete_snapshots(plan["snapshots"])
        volumes = [v for v in plan["volumes"] if v not in kept]
        self._delete_volumes(volumes)
        self.exit_json(changed=True, images_deleted=images, snapshots_deleted=deleted,
                       volumes_deleted=volumes)

    def _images(self) -> list[dict]:
        """The project's images, Glance's own JSON (properties as top-level keys; openstacksdk
        does not know block_device_mapping), all pages."""
        project = self.conn.current_project_id
        images, url = [], f"/images?owner={project}&limit=200"
        while url:
            response = self.conn.image.get(url)
            self.sdk.exceptions.raise_from_response(response)
            page = response.json()
            images += page.get("images", [])
            url = page.get("next", "").removeprefix("/v2") or None
        return images

    def _snapshots(self) -> list[dict]:
        return [s.to_dict() for s in self.conn.block_storage.snapshots(details=True)]

    def _volumes(self) -> list[dict]:
        return [v.to_dict() for v in self.conn.block_storage.volumes(details=True)]

    def _deadline_passed(self, deadline: float, what: str, ids) -> None:
        if time.monotonic() > deadline:
            self.fail_json(msg=f"{what} {', '.join(sorted(ids))} still there after "
                               f"{self.params['timeout']} s")

    def _delete_snapshots(self, snapshot_ids: list[str]) -> tuple[list[str], set[str]]:
        """Delete each snapshot once Cinder can (available or error; one still being made is
        waited for) and wait until it is gone. Returns the ids deleted and the volume ids of
        the snapshots Cinder would not delete (warned about)."""
        exceptions = self.sdk.exceptions
        pending, asked, deleted, kept = set(snapshot_ids), set(), [], set()
        deadline = time.monotonic() + self.params["timeout"]
        while pending:
            for snapshot_id in sorted(pending):
                try:
                    snapshot = self.conn.block_storage.get_snapshot(snapshot_id)
                except exceptions.NotFoundException:
                    pending.discard(snapshot_id)
                    if snapshot_id in asked:
                        deleted.append(snapshot_id)
                    continue
                status = snapshot.status
                if snapshot_id in asked and status not in ("deleting", *SNAPSHOT_MAKING):
                    # Cinder took the delete and gave up: busy (back to available) or failed
                    self.warn(f"Cinder did not delete snapshot {snapshot_id} (it is {status}); "
                              "its volume stays, and a later run tries again")
                    pending.discard(snapshot_id)
                    kept.add(snapshot.volume_id)
                elif status in SNAPSHOT_DELETABLE and snapshot_id not in asked:
                    try:
                        self.conn.block_storage.delete_snapshot(snapshot_id)
                        asked.add(snapshot_id)
                    except exceptions.BadRequestException:
                        pass  # its status changed meanwhile: look again
                elif status not in ("deleting", *SNAPSHOT_MAKING, *SNAPSHOT_DELETABLE):
                    self.warn(f"snapshot {snapshot_id} is {status}; it is left, with its volume")
                    pending.discard(snapshot_id)
                    kept.add(snapshot.volume_id)
            if pending:
                self._deadline_passed(deadline, "snapshots", pending)
                time.sleep(POLL)
        return deleted, kept

    def _delete_volumes(self, volume_ids: list[str]) -> None:
        """Delete each volume (Cinder can: it has no snapshot left and is not attached) and
        wait until it is gone."""
        exceptions = self.sdk.exceptions
        pending, asked = set(volume_ids), set()
        deadline = time.monotonic() + self.params["timeout"]
        while pending:
            for volume_id in sorted(pending):
                try:
                    volume = self.conn.block_storage.get_volume(volume_id)
                except exceptions.NotFoundException:
                    pending.discard(volume_id)
                    continue
                if volume.status in VOLUME_DELETABLE and volume_id not in asked:
                    self.conn.block_storage.delete_volume(volume_id)
                    asked.add(volume_id)
                elif volume.status == "error_deleting":
                    self.fail_json(msg=f"Cinder could not delete volume {volume_id} "
                                       "(error_deleting)")
            if pending:
                self._deadline_passed(deadline, "volumes", pending)
                time.sleep(POLL)


def main():
    module = ImagePruneModule()
    module()


if __name__ == "__main__":
    main()
