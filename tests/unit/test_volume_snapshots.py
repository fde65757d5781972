"""The image of a volume-backed server and what pruning deletes (module_utils/
volume_snapshots.py), from Glance's and Cinder's JSON as real Nova and Cinder make it (seen
on realcloud: tests/realcloud/test_volume_backed_image.py). The modules against a cloud:
tests/integration/test_volume_backed_image.py."""

import json

from ansible_collections.ssc.repo2docker.plugins.module_utils.volume_snapshots import (
    block_device_mapping,
    boot_snapshot,
    boot_volume_size,
    builder_volume_metadata,
    prune_plan,
    snapshot_ids,
)

PREFIX = "ssc-r2d"
# the property as real Nova (Zed) writes it for a server booted from a 1 GB volume
BDM = json.dumps([{
    "source_type": "snapshot", "encryption_secret_uuid": None, "destination_type": "volume",
    "snapshot_id": "snap-1", "image_id": None, "volume_type": None, "device_name": "/dev/sda",
    "tag": None, "encryption_format": None, "volume_size": 1, "boot_index": 0,
    "guest_format": None, "encrypted": None, "no_device": None, "device_type": None,
    "encryption_options": None, "disk_bus": None, "volume_id": None,
    "delete_on_termination": True}])


def image(image_id: str, created: str, *snapshots: str, prefix: str = PREFIX) -> dict:
    mapping = [{"source_type": "snapshot", "snapshot_id": s, "boot_index": i,
                "volume_size": 20} for i, s in enumerate(snapshots)]
    return {"id": image_id, "name": f"{prefix}-{image_id}", "created_at": created,
            "ssc_r2d_prefix": prefix, "size": 0, "bdm_v2": "True",
            "block_device_mapping": json.dumps(mapping)} if snapshots else {
            "id": image_id, "name": f"{prefix}-{image_id}", "created_at": created,
            "ssc_r2d_prefix": prefix, "size": 1000}


def builder_volume(volume_id: str, image_name: str, *, attached: bool = False,
                   status: str = "available", prefix: str = PREFIX) -> dict:
    return {"id": volume_id, "status": status,
            "attachments": [{"server_id": "s"}] if attached else [],
            "metadata": builder_volume_metadata(image_name, prefix, f"{image_name}-builder")}


def snapshot(snapshot_id: str, volume_id: str, status: str = "available") -> dict:
    return {"id": snapshot_id, "volume_id": volume_id, "status": status}


def test_the_mapping_real_nova_writes_is_read():
    made = {"block_device_mapping": BDM}
    assert snapshot_ids(made) == ["snap-1"]
    assert boot_snapshot(made) == {"snapshot_id": "snap-1", "volume_size": 1}


def test_an_image_with_data_has_no_mapping():
    for props in ({}, {"block_device_mapping": "not json"}, {"block_device_mapping": "{}"},
                  {"block_device_mapping": json.dumps([{"source_type": "image",
                                                        "boot_index": 0}])}):
        assert boot_snapshot(props) is None
        assert snapshot_ids(props) == []
    assert block_device_mapping({"block_device_mapping": [{"a": 1}, 2]}) == [{"a": 1}]


def test_the_boot_volume_is_at_least_as_large_as_the_snapshot():
    assert boot_volume_size(20, 50) == 50
    assert boot_volume_size(100, 50) == 100
    assert boot_volume_size(20, None) == 20


def test_older_images_go_with_their_snapshots_and_builder_volumes():
    images = [image("new", "2026-12-03", "s-new"), image("mid", "2026-12-02", "s-mid"),
              image("old", "2026-12-01", "s-old")]
    volumes = [builder_volume("v-new", "ssc-r2d-new"), builder_volume("v-mid", "ssc-r2d-mid"),
               builder_volume("v-old", "ssc-r2d-old")]
    snapshots = [snapshot("s-new", "v-new"), snapshot("s-mid", "v-mid"),
                 snapshot("s-old", "v-old")]
    plan = prune_plan(images, snapshots, volumes, set(), PREFIX, 1)
    assert [i["id"] for i in plan["images"]] == ["mid", "old"]
    assert plan["snapshots"] == ["s-mid", "s-old"]
    assert plan["volumes"] == ["v-mid", "v-old"]


def test_nothing_to_do_twice():
    images = [image("new", "2026-12-03", "s-new")]
    volumes = [builder_volume("v-new", "ssc-r2d-new")]
    plan = prune_plan(images, [snapshot("s-new", "v-new")], volumes, set(), PREFIX, 1)
    assert plan == {"images": [], "snapshots": [], "volumes": []}


def test_a_run_cut_off_after_the_image_is_finished():
    """The image was deleted, its snapshot and volume were not: the snapshot of an idle
    builder volume that no image names goes, then the volume."""
    volumes = [builder_volume("v-old", "ssc-r2d-old")]
    plan = prune_plan([], [snapshot("s-old", "v-old")], volumes, set(), PREFIX, 3)
    assert (plan["snapshots"], plan["volumes"]) == (["s-old"], ["v-old"])
    # with only the volume left
    assert prune_plan([], [], volumes, set(), PREFIX, None)["volumes"] == ["v-old"]


def test_a_build_in_progress_and_other_prefixes_are_left_alone():
    volumes = [builder_volume("v-attached", "ssc-r2d-a", attached=True),
               builder_volume("v-booting", "ssc-r2d-b"),
               builder_volume("v-theirs", "other-x", prefix="other"),
               {"id": "v-user", "status": "available", "attachments": [], "metadata": {}}]
    snapshots = [snapshot("s-a", "v-attached"), snapshot("s-theirs", "v-theirs"),
                 snapshot("s-user", "v-user")]
    plan = prune_plan([], snapshots, volumes, {"ssc-r2d-b-builder"}, PREFIX, 0)
    assert plan == {"images": [], "snapshots": [], "volumes": []}


def test_a_snapshot_a_kept_image_names_stays_with_its_volume():
    images = [image("new", "2026-12-03", "shared"), image("old", "2026-12-01", "shared")]
    volumes = [builder_volume("v", "ssc-r2d-old")]
    plan = prune_plan(images, [snapshot("shared", "v")], volumes, set(), PREFIX, 1)
    assert [i["id"] for i in plan["images"]] == ["old"]
    assert (plan["snapshots"], plan["volumes"]) == ([], [])


def test_images_with_data_and_keep_unset():
    images = [image("new", "2026-12-03"), image("old", "2026-12-01"),
              image("theirs", "2026-11-01", prefix="other")]
    assert [i["id"] for i in prune_plan(images, [], [], set(), PREFIX, 1)["images"]] == ["old"]
    assert prune_plan(images, [], [], set(), PREFIX, None)["images"] == []
    assert [i["id"] for i in prune_plan(images, [], [], set(), PREFIX, 0)["images"]] == [
        "new", "old"]
