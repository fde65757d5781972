"""ssc.repo2docker.server_snapshot of an image-backed server against realcloud: real Nova's
createImage and real Glance; nova-compute's driver uploads the snapshot as libvirt's does
(localcloud/realcloud/files/usr/lib/python3/dist-packages/nova/virt/realcloud_fake.py), so
the image ends `active` with data and the properties Nova adds. Our properties are kept
(the string "false" too), a second run and a check-mode run change nothing, a check-mode run
with a new property reports a change and sets nothing, a real run sets it. The volume-backed
case: tests/realcloud/test_volume_backed_image.py."""

import pytest

from tests.helpers import run_module

pytestmark = pytest.mark.realcloud

SERVER = "rc-snap-builder"
IMAGE = "rc-snap-fedcba987654"


def test_an_image_backed_snapshot_keeps_its_properties_and_a_rerun_changes_nothing(realcloud):
    conn = realcloud.connect()
    # auto_ip=False: openstacksdk's create_server would otherwise attach a floating IP,
    # which delete_server leaves behind
    server = conn.create_server(name=SERVER, image="debian-13", flavor="ssc.tiny",
                                network="private", auto_ip=False, wait=True, timeout=600)
    properties = {"ssc_r2d_prefix": "rc-snap", "ssc_r2d_inputs_hash": "fedcba987654",
                  "ssc_r2d_gpu": "false"}
    args = {"cloud": "realcloud", "server": SERVER, "name": IMAGE, "properties": properties,
            "wait": True, "timeout": 300}
    try:
        made = run_module(realcloud.env, "ssc.repo2docker.server_snapshot", args)
        assert made.get("changed") is True, made
        raw = conn.image.get(f"/images/{made['id']}").json()  # Glance's own JSON
        assert raw["status"] == "active" and raw["size"] > 0, raw
        assert raw["name"] == IMAGE and raw["visibility"] == "private"
        assert properties.items() <= raw.items()
        assert raw["image_location"] == "snapshot"  # set by the driver's upload, as libvirt's
        assert raw["instance_uuid"] == server.id
        assert "block_device_mapping" not in raw  # not volume-backed
        assert conn.compute.get_server(server.id).task_state is None

        for check in (True, False):
            again = run_module(realcloud.env, "ssc.repo2docker.server_snapshot", args,
                               check=check)
            assert again.get("changed") is False and again["id"] == made["id"], again
        newer = {**args, "properties": {**properties, "ssc_r2d_prebuilt_count": "1"}}
        would = run_module(realcloud.env, "ssc.repo2docker.server_snapshot", newer, check=True)
        assert would.get("changed") is True, would
        assert "ssc_r2d_prebuilt_count" not in conn.image.get(f"/images/{made['id']}").json()
        updated = run_module(realcloud.env, "ssc.repo2docker.server_snapshot", newer)
        assert updated.get("changed") is True and updated["id"] == made["id"], updated
        raw = conn.image.get(f"/images/{made['id']}").json()
        assert raw["ssc_r2d_prebuilt_count"] == "1" and raw["ssc_r2d_gpu"] == "false"
        assert [i.id for i in conn.image.images() if i.name == IMAGE] == [made["id"]]
    finally:
        for image in conn.image.images():
            if image.name == IMAGE:
                conn.image.delete_image(image, ignore_missing=True)
        conn.delete_server(server.id, wait=True, timeout=300)
    assert not [s for s in conn.compute.servers() if s.name == SERVER]
    assert not [i for i in conn.image.images() if i.name == IMAGE]
    assert not list(conn.network.ips())
