"""ssc.repo2docker.user_server against the local cloud: a VM booted from a volume made
first, with a floating IP, then deleted with nothing left; a create cut off while Cinder
still copies the image, finished by the next run; volumes such a run left, deleted with no
server; a VM placed in an availability zone and on a volume type, and placements the cloud
refuses. The first and the placements against real Nova, Cinder and Neutron:
tests/realcloud/test_user_server.py.

The local cloud behaves as the real services do here (localcloud/README.md): Nova deletes a
boot volume asynchronously after its server, and a floating IP reaches Nova's `addresses`
a moment after Neutron made it."""

import time

import pytest

from tests.helpers import BOOT_VOLUME, run_module

pytestmark = pytest.mark.cloud

PUBLIC_NETWORK = "Public External IPv4 Network"
TOKEN = "a" * 32
boot_volume_metadata = BOOT_VOLUME["boot_volume_metadata"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def user_server(env: dict, cloud_name: str, name: str, **args) -> dict:
    """Run ssc.repo2docker.user_server once; its result."""
    return run_module(env, "ssc.repo2docker.user_server",
                      {"cloud": cloud_name, "name": name, "timeout": 600, **args})


def launch_args(volume_size: int = 1) -> dict:
    return {"image": "debian-13", "flavor": "ssc.tiny", "network": "private",
            "volume_size": volume_size, "floating_ip_pool": PUBLIC_NETWORK,
            "metadata": {"ssc_r2d_owner": "12345"},
            "launch": {"repo": "https://example.org/r.git", "commit": COMMIT},
            "token": TOKEN}


def nothing_left(conn, name: str) -> None:
    assert conn.compute.find_server(name) is None
    assert [v.id for v in conn.block_storage.volumes()] == []
    assert [ip.floating_ip_address for ip in conn.network.ips()] == []


def create_then_delete(env: dict, cloud_name: str, conn, name: str) -> None:
    """A VM with a boot volume and a floating IP; a rerun changes nothing; state=absent
    leaves no server, volume or floating IP; a second absent changes nothing."""
    created = user_server(env, cloud_name, name, **launch_args())
    assert not created.get("failed"), created
    assert created["changed"] and not created["existed"]
    server = created["server"]
    [floating] = [ip.floating_ip_address for ip in conn.network.ips()]
    # Neutron's floating IP, whether or not Nova's addresses list it yet
    assert (server["floating_ip"], server["floating_ips"], server["address"]) == (
        floating, [floating], floating)
    assert server["fixed_ip"] and server["fixed_ip"] != floating
    [volume_id] = server["volumes"]
    volume = conn.block_storage.get_volume(volume_id)
    image = conn.image.find_image("debian-13")
    assert boot_volume_metadata(name, image.id).items() <= volume.metadata.items()
    assert volume.size == 1 and server["image"] == image.id

    again = user_server(env, cloud_name, name, **launch_args())
    assert not again.get("failed"), again
    assert (again["changed"], again["existed"]) == (False, True)
    assert again["server"]["floating_ips"] == [floating]
    assert len(list(conn.network.ips())) == 1

    deleted = user_server(env, cloud_name, name, state="absent")
    assert not deleted.get("failed"), deleted
    assert deleted["changed"] and deleted["existed"]
    # Nova deleted the boot volume itself (delete_on_termination): not deleted a second time
    assert deleted["volumes_deleted"] == []
    nothing_left(conn, name)
    assert user_server(env, cloud_name, name, state="absent")["changed"] is False


def test_create_with_a_volume_and_a_floating_ip_then_nothing_left(cloud):
    create_then_delete(cloud.env, "localcloud", cloud.connect(), "lc-user-server")


# A placement the cloud refuses, and the cloud's own words for it: Cinder's, since the boot
# volume is made first (cinder/volume/volume_types.py get_by_name_or_id; cinder/volume/
# flows/api/create_volume.py, the availability zone check). Seen so on realcloud.
REFUSED_PLACEMENTS = [
    ({"volume_type": "no-such-type"}, "Volume type with name no-such-type could not be found"),
    ({"availability_zone": "no-such-zone"}, "Availability zone 'no-such-zone' is invalid"),
]


def placed_then_refused(env: dict, cloud_name: str, conn, name: str) -> None:
    """A VM and its boot volume in the named availability zone and of the named volume
    type; then each placement the cloud refuses fails with the cloud's message and leaves
    nothing."""
    volume_type = next(iter(conn.block_storage.types())).name
    placement = {"availability_zone": "nova", "volume_type": volume_type}
    created = user_server(env, cloud_name, name, **launch_args(), **placement)
    assert not created.get("failed"), created
    server = conn.compute.get_server(created["server"]["id"])
    assert server.availability_zone == "nova"
    [volume_id] = created["server"]["volumes"]
    volume = conn.block_storage.get_volume(volume_id)
    assert (volume.availability_zone, volume.volume_type) == ("nova", volume_type)
    deleted = user_server(env, cloud_name, name, state="absent")
    assert not deleted.get("failed"), deleted
    nothing_left(conn, name)
    for refused, message in REFUSED_PLACEMENTS:
        failed = user_server(env, cloud_name, name, **launch_args(), **refused)
        assert failed.get("failed") and message in failed["msg"], (refused, failed)
        nothing_left(conn, name)


def test_a_placement_is_kept_and_one_the_cloud_refuses_leaves_nothing(cloud):
    placed_then_refused(cloud.env, "localcloud", cloud.connect(), "lc-user-server-placed")


def test_a_create_cut_off_while_the_volume_is_made_is_finished_by_the_next_run(cloud):
    """What a run killed while Cinder copied the image leaves: its marked volume, still
    being made, and an older one of another size. The next run boots from the first and
    deletes the second."""
    conn, name = cloud.connect(), "lc-user-server-cut"
    image = conn.image.find_image("debian-13")
    stale = conn.block_storage.create_volume(size=2, image_id=image.id, name=name,
                                             metadata=boot_volume_metadata(name, image.id))
    conn.block_storage.wait_for_status(stale, "available", wait=300)
    cloud.localcloud("fault", "volume.build", "--action", "delay", "--delay", "5",
                     "--count", "1")
    try:
        left = conn.block_storage.create_volume(size=1, image_id=image.id, name=name,
                                                metadata=boot_volume_metadata(name, image.id))
        assert conn.block_storage.get_volume(left.id).status == "creating"

        created = user_server(cloud.env, "localcloud", name, **launch_args())
        assert not created.get("failed"), created
        assert created["server"]["volumes"] == [left.id]
        assert [v.id for v in conn.block_storage.volumes()] == [left.id]
    finally:
        cloud.localcloud("fault", "--clear")
        deleted = user_server(cloud.env, "localcloud", name, state="absent")
    assert not deleted.get("failed"), deleted
    nothing_left(conn, name)


def test_volumes_left_without_a_server_are_deleted_by_absent(cloud):
    conn, name = cloud.connect(), "lc-user-server-left"
    image = conn.image.find_image("debian-13")
    left = conn.block_storage.create_volume(size=1, image_id=image.id, name=name,
                                            metadata=boot_volume_metadata(name, image.id))
    conn.block_storage.wait_for_status(left, "available", wait=300)
    other = conn.block_storage.create_volume(size=1, name="not-a-boot-volume")
    conn.block_storage.wait_for_status(other, "available", wait=300)
    try:
        deleted = user_server(cloud.env, "localcloud", name, state="absent")
        assert not deleted.get("failed"), deleted
        assert (deleted["changed"], deleted["existed"]) == (True, False)
        assert deleted["volumes_deleted"] == [left.id]
        deadline = time.monotonic() + 120
        while conn.block_storage.find_volume(left.id, ignore_missing=True) is not None:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert conn.block_storage.get_volume(other.id).status == "available"
    finally:
        conn.block_storage.delete_volume(other, ignore_missing=True)
        conn.block_storage.wait_for_delete(other, wait=120)
