"""ssc.repo2docker.user_server against realcloud (real Nova, Cinder and Neutron; servers on
Nova's fake driver, so nothing boots): a VM booted from a boot volume made first, with a
floating IP, a rerun that changes nothing, then state=absent with Nova still deleting the
boot volume when the server is gone: no server, volume or floating IP left; a VM placed in
an availability zone and on a volume type, and placements real Cinder refuses. The same
scenarios on the local cloud: tests/integration/test_user_server.py."""

import pytest

from tests.integration.test_user_server import create_then_delete, placed_then_refused

pytestmark = pytest.mark.realcloud


def test_create_with_a_volume_and_a_floating_ip_then_nothing_left(realcloud):
    conn = realcloud.connect()
    create_then_delete(realcloud.env, "realcloud", conn, "rc-user-server")
    assert realcloud.cli("volume", "list") == []
    assert realcloud.cli("floating", "ip", "list") == []


def test_a_placement_is_kept_and_one_the_cloud_refuses_leaves_nothing(realcloud):
    placed_then_refused(realcloud.env, "realcloud", realcloud.connect(), "rc-user-server-placed")
