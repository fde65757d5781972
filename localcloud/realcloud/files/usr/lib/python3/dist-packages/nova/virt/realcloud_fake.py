"""realcloud's compute driver: Nova's FakeDriver whose snapshot uploads an image as libvirt's does.

nova/virt/fake.py's `snapshot` only moves the task state to `image_uploading`; nothing is ever
uploaded, so the image that `createImage` made for an image-backed server stays `queued` with
no data. That is not what a real cloud shows, where the image goes `active` with the disk's
bytes and the properties libvirt adds. This driver does what LibvirtDriver.snapshot does in
Zed (nova/virt/libvirt/driver.py, the non-live path), with a small file of zeros for the disk:

1. task state `image_pending_upload`, then `image_uploading` (expected `image_pending_upload`);
2. `nova.image.glance.API().update(context, image_id, metadata, data)` with the metadata of
   LibvirtDriver._create_snapshot_metadata: status `active`, the image's name, disk_format
   `raw`, the instance image's container_format (else `bare`) and the properties
   kernel_id, ramdisk_id, image_location `snapshot`, image_state `available`, owner_id and,
   when set, os_type. purge_props is False (that API's default), so the properties the
   `createImage` request gave are kept, as on libvirt.

It lives in nova.virt because Nova's `compute_driver` option names a module under that package
(nova/virt/driver.py, load_compute_driver imports 'nova.virt.%s'). Volume-backed servers never
reach it: the compute API snapshots their volumes through Cinder instead.
"""

import io

from nova import exception
from nova.compute import task_states
from nova.image import glance
from nova.virt import fake

# The bytes the snapshot's image holds (a raw disk of zeros), in bytes.
SNAPSHOT_SIZE = 64 * 1024


class SnapshotUploadingFakeDriver(fake.FakeDriver):
    """FakeDriver whose snapshot leaves an `active` Glance image, as the libvirt driver does."""

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only)
        self._image_api = glance.API()

    def snapshot(self, context, instance, image_id, update_task_state):
        if instance.uuid not in self.instances:
            raise exception.InstanceNotRunning(instance_id=instance.uuid)
        snapshot = self._image_api.get(context, image_id)
        update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        update_task_state(task_state=task_states.IMAGE_UPLOADING,
                          expected_state=task_states.IMAGE_PENDING_UPLOAD)
        metadata = _snapshot_metadata(instance, snapshot["name"])
        self._image_api.update(context, image_id, metadata,
                               io.BytesIO(bytes(SNAPSHOT_SIZE)))


def _snapshot_metadata(instance, name):
    """The shape of LibvirtDriver._create_snapshot_metadata (Zed) for a raw disk."""
    image_meta = instance.image_meta
    properties = {
        "kernel_id": instance.kernel_id,
        "image_location": "snapshot",
        "image_state": "available",
        "owner_id": instance.project_id,
        "ramdisk_id": instance.ramdisk_id,
    }
    if instance.os_type:
        properties["os_type"] = instance.os_type
    container_format = (image_meta.container_format
                        if image_meta.obj_attr_is_set("container_format") else "bare")
    return {"status": "active", "name": name, "properties": properties,
            "disk_format": "raw", "container_format": container_format}
