"""A volume-backed builder's image against realcloud (real Nova, Cinder and Glance; servers
on Nova's fake driver): server_snapshot of a volume-backed server makes a zero-size image
whose block_device_mapping names a Cinder snapshot, and a second run changes nothing; the
builder's deletion leaves its volume (Cinder refuses while the snapshot exists); a user VM
boots from the snapshot at the snapshot's size; build_image.yml's pruning deletes the image,
its snapshot and the volume: `openstack volume snapshot list` and `openstack volume list`
empty. The same scenario on the local cloud: tests/integration/test_volume_backed_image.py."""

import pytest

from tests.integration.test_volume_backed_image import volume_backed_image_lifecycle

pytestmark = pytest.mark.realcloud


def test_a_volume_backed_image_from_snapshot_to_pruning(realcloud, tmp_path):
    volume_backed_image_lifecycle(realcloud.env, "realcloud", realcloud.connect(), tmp_path,
                                  "rc-vb", realcloud.cli)
