"""ssc.repo2docker's boot volume plan (module_utils/boot_volume.py): which volume a create
adopts, which it deletes first and which it waits for, from Cinder's detail view. The module
against a cloud: tests/integration/test_user_server.py."""

from ansible_collections.ssc.repo2docker.plugins.module_utils.boot_volume import (
    boot_volume_metadata,
    boot_volume_plan,
    booted_image,
    marked_for,
)

IMAGE = "11111111-2222-3333-4444-555555555555"
OTHER_IMAGE = "66666666-7777-8888-9999-000000000000"
NAME = "ssc-r2d-12345"


def volume(volume_id: str, status: str, *, size: int = 20, image: str = IMAGE,
           server: str = NAME, created: str = "2026-12-07T00:00:00.000000") -> dict:
    return {"id": volume_id, "status": status, "size": size, "created_at": created,
            "metadata": boot_volume_metadata(server, image)}


def test_no_volume_left_makes_a_new_one():
    assert boot_volume_plan([], NAME, IMAGE, 20) == {"adopt": None, "delete": [], "wait": []}


def test_an_available_volume_of_the_same_image_and_size_is_adopted():
    plan = boot_volume_plan([volume("a", "available")], NAME, IMAGE, 20)
    assert plan == {"adopt": "a", "delete": [], "wait": []}


def test_a_volume_still_being_made_is_adopted():
    for status in ("creating", "downloading"):
        assert boot_volume_plan([volume("a", status)], NAME, IMAGE, 20)["adopt"] == "a"


def test_a_volume_in_another_zone_or_of_another_type_is_not_adopted():
    """Cinder's detail view names the zone, the type's name and (from 3.63) its id."""
    left = {**volume("a", "available"), "availability_zone": "nova", "volume_type": "ssd",
            "volume_type_id": "7d1c"}
    for placement in ({"availability_zone": "nova"}, {"volume_type": "ssd"},
                      {"volume_type": "7d1c"}, {"availability_zone": "nova",
                                                "volume_type": "ssd"}, {}):
        assert boot_volume_plan([left], NAME, IMAGE, 20, placement)["adopt"] == "a"
    for placement in ({"availability_zone": "az2"}, {"volume_type": "hdd"},
                      {"availability_zone": "az2", "volume_type": "ssd"}):
        plan = boot_volume_plan([left], NAME, IMAGE, 20, placement)
        assert plan == {"adopt": None, "delete": ["a"], "wait": []}, placement


def test_an_available_one_is_preferred_and_the_others_go():
    volumes = [volume("making", "creating", created="2026-12-07T00:00:02.000000"),
               volume("ready", "available", created="2026-12-07T00:00:01.000000"),
               volume("older", "available", created="2026-12-07T00:00:00.000000")]
    assert boot_volume_plan(volumes, NAME, IMAGE, 20) == {
        "adopt": "ready", "delete": ["older"], "wait": ["making"]}


def test_another_size_or_image_or_a_failed_one_is_deleted_not_adopted():
    volumes = [volume("small", "available", size=10),
               volume("old-image", "available", image=OTHER_IMAGE),
               volume("failed", "error"),
               volume("copying-other", "downloading", size=10)]
    assert boot_volume_plan(volumes, NAME, IMAGE, 20) == {
        "adopt": None, "delete": ["small", "old-image", "failed"], "wait": ["copying-other"]}


def test_other_servers_and_unmarked_volumes_are_left_alone():
    unmarked = {"id": "u", "status": "available", "size": 20, "metadata": {},
                "created_at": "2026-12-07T00:00:00.000000"}
    volumes = [volume("theirs", "available", server="ssc-r2d-999"), unmarked]
    assert boot_volume_plan(volumes, NAME, IMAGE, 20) == {"adopt": None, "delete": [],
                                                          "wait": []}
    assert marked_for(volumes, NAME) == []


def test_attached_or_deleting_volumes_are_left_alone():
    volumes = [volume("attached", "in-use"), volume("going", "deleting")]
    assert boot_volume_plan(volumes, NAME, IMAGE, 20) == {"adopt": None, "delete": [],
                                                          "wait": []}


def test_the_image_a_volume_was_made_for_is_its_mark_not_cinders_base_image():
    """Cinder's volume_image_metadata of a volume made from a snapshot of a volume-backed
    server's image names the base image the builder booted from (seen on real Cinder,
    tests/realcloud/test_volume_backed_image.py): the cache-hit report must read the
    snapshot image's id, which the volume's metadata names."""
    made = {"metadata": boot_volume_metadata(NAME, IMAGE),
            "volume_image_metadata": {"image_id": OTHER_IMAGE}}
    assert booted_image(made) == IMAGE
    assert booted_image({"metadata": {}, "volume_image_metadata": {"image_id": IMAGE}}) == IMAGE
    assert booted_image({}) is None
