"""playbooks/cull.yml's listing and deleting against realcloud (real Nova, Cinder, Neutron;
nothing boots): a user VM past its expiry is deleted with its volume, one that is not is
kept (its Jupyter cannot answer: unreachable, never idle), a server that is no user VM is
not touched; a dry run lists what would go and changes nothing. The same rounds with real
Jupyter: tests/integration/test_cull.py."""

import pytest

from tests.integration.test_user_vm import failure, playbook, stats
from tests.realcloud.test_user_vm import INVENTORY, NOTHING, left_over, start, vm

pytestmark = pytest.mark.realcloud

OLD, NEW = "ssc-r2d-3011", "ssc-r2d-3012"


def cull(realcloud, *extra: str) -> dict:
    """One round (probes give up after 2 s); its set_stats data, `ssc_cull` by VM name."""
    code, report, output = playbook(realcloud, "cull.yml", *INVENTORY, "-e",
                                    "user_vm_cull_probe_timeout=2", *extra)
    assert code == 0, failure(report) or output[-4000:]
    data = stats(report)
    return {**data, "ssc_cull": {d["name"]: d for d in data["ssc_cull"]}}


def test_an_expired_vm_goes_with_its_volume_and_the_others_stay(realcloud):
    conn = realcloud.connect()
    other = None
    try:
        for user_id, extra in ((3011, ("-e", "user_vm_lifetime_hours=0")), (3012, ())):
            code, report, output = start(realcloud, user_id, *extra)
            assert code == 0, failure(report) or output[-4000:]
        other = conn.compute.create_server(
            name="rc-not-a-user-vm", flavor_id=conn.compute.find_flavor("ssc.tiny").id,
            image_id=conn.image.find_image("debian-13").id,
            networks=[{"uuid": conn.network.find_network("private").id}])
        conn.compute.wait_for_server(other, wait=300)
        old = conn.compute.get_server(conn.compute.find_server(OLD).id)
        [old_volume] = [v["id"] for v in old.attached_volumes]

        dry = cull(realcloud, "-e", "dry_run=true")
        assert [c["name"] for c in dry["ssc_culled"]] == [OLD]
        assert dry["ssc_cull"][OLD]["reason"] == (
            f"expired at {old.metadata['ssc_r2d_expires']}")
        assert dry["ssc_cull"][NEW]["decision"] == "keep"
        assert "rc-not-a-user-vm" not in dry["ssc_cull"]
        assert {s.name for s in conn.compute.servers()} == {OLD, NEW, "rc-not-a-user-vm"}
        assert "ssc_r2d_unreachable" not in conn.compute.get_server(
            conn.compute.find_server(NEW).id).metadata

        done = cull(realcloud)
        assert [(c["name"], c["owner_id"]) for c in done["ssc_culled"]] == [(OLD, "3011")]
        assert done["ssc_cull"][NEW]["reason"] == "unreachable 1 time in a row"
        assert {s.name for s in conn.compute.servers()} == {NEW, "rc-not-a-user-vm"}
        assert conn.block_storage.find_volume(old_volume, ignore_missing=True) is None
        new = conn.compute.get_server(conn.compute.find_server(NEW).id)
        assert new.metadata["ssc_r2d_unreachable"] == "1"
        assert conn.compute.get_server(other.id).status == "ACTIVE"
    finally:
        for user_id in (3011, 3012):
            vm(realcloud, user_id, "-e", "state=absent")
        if other is not None:
            conn.compute.delete_server(other, ignore_missing=True)
            conn.compute.wait_for_delete(other, wait=300)
    assert left_over(conn) == NOTHING
