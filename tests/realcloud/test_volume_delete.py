"""What real Cinder answers when a client deletes a boot volume while Nova deletes its server.

`user_server` (state=absent, and the cull) deletes the server, then its volumes. Here the
volume delete comes right after the server delete was accepted, as after a timed-out wait:
the answer (status code and message, or none) and the volume's status at that moment go to
var/realcloud/observations.json. Whatever the answer, Nova's own delete on termination
leaves nothing behind.
"""

import time

import openstack.exceptions
import pytest

from tests.realcloud.test_cli import follow_deletion, record

pytestmark = pytest.mark.realcloud


def test_volume_delete_while_nova_deletes_the_server(realcloud):
    conn = realcloud.connect()
    image = conn.image.find_image("debian-13")
    server = conn.compute.create_server(
        name="rc-volume-delete", flavor_id=conn.compute.find_flavor("ssc.tiny").id,
        networks=[{"uuid": conn.network.find_network("private").id}],
        block_device_mapping=[{"uuid": image.id, "source_type": "image",
                               "destination_type": "volume", "volume_size": 1,
                               "boot_index": 0, "delete_on_termination": True}])  # fmt: skip
    server = conn.compute.wait_for_server(server, wait=300)
    [volume_id] = [volume.id for volume in server.attached_volumes]

    conn.compute.delete_server(server)
    deleted = time.monotonic()
    status = conn.block_storage.get_volume(volume_id).status
    try:
        conn.block_storage.delete_volume(volume_id)
        answer = {"accepted": True}
    except openstack.exceptions.HttpException as error:
        answer = {"status_code": error.status_code, "message": error.details}
    answer |= {"volume_status_before": status,
               "after_s": round(time.monotonic() - deleted, 2)}  # fmt: skip
    history = follow_deletion(conn, server.id, volume_id, deleted)

    assert not list(conn.compute.servers())
    assert not list(conn.block_storage.volumes())
    record("volume_delete_during_server_delete", {"answer": answer, "history": history})
