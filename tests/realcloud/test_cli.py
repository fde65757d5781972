"""The real `openstack` CLI against realcloud (real Nova, Cinder, Neutron, Glance, Keystone).

token → image list → a boot-from-volume server (volume deleted on termination) with
properties → a floating IP attached, and seen in the server's addresses → the server deleted
→ the floating IP released → no server, volume or floating IP left.

What happens asynchronously on the way is written to var/realcloud/observations.json: how
long after `server add floating ip` returned the address reached Nova's `addresses`, and the
statuses the boot volume went through after `server delete` returned.
"""

import json
import time

import openstack.exceptions
import pytest

from tests.realcloud.conftest import VAR

pytestmark = pytest.mark.realcloud

PUBLIC_NETWORK = "Public External IPv4 Network"
POLL = 0.05  # seconds between two looks through openstacksdk while waiting


def test_boot_from_volume_with_floating_ip_then_nothing_left(realcloud):
    token = realcloud.cli("token", "issue")
    assert token["id"] and token["project_id"]
    images = {image["Name"]: image["ID"] for image in realcloud.cli("image", "list")}
    assert "debian-13" in images

    server = realcloud.cli(
        "server", "create", "--flavor", "ssc.tiny", "--network", "private",
        "--block-device", f"uuid={images['debian-13']},source_type=image,"
        "destination_type=volume,volume_size=1,boot_index=0,delete_on_termination=true",
        "--property", "ssc_user=12345", "--property", "ssc_repo=https://example.org/r.git",
        "--wait", "rc-cli-bfv")  # fmt: skip
    assert server["status"] == "ACTIVE"
    assert server["properties"] == {"ssc_user": "12345",
                                    "ssc_repo": "https://example.org/r.git"}  # fmt: skip
    [attached] = server["volumes_attached"]
    assert attached["delete_on_termination"] is True
    volume = realcloud.cli("volume", "show", attached["id"])
    assert volume["status"] == "in-use" and volume["bootable"] is True
    assert [a["server_id"] for a in volume["attachments"]] == [server["id"]]
    [fixed] = server["addresses"]["private"]

    floating = realcloud.cli("floating", "ip", "create", PUBLIC_NETWORK)
    address = floating["floating_ip_address"]
    realcloud.cli("server", "add", "floating", "ip", "rc-cli-bfv", address, parse=False)
    associated = time.monotonic()
    seen = wait_for_address(realcloud.connect(), server["id"], address) - associated
    shown = realcloud.cli("server", "show", "rc-cli-bfv")
    assert sorted(shown["addresses"]["private"]) == sorted([fixed, address])
    assert realcloud.cli("floating", "ip", "show", address)["fixed_ip_address"] == fixed

    realcloud.cli("server", "delete", "rc-cli-bfv", parse=False)
    deleted = time.monotonic()
    history = follow_deletion(realcloud.connect(), server["id"], attached["id"], deleted)
    realcloud.cli("floating", "ip", "delete", address, parse=False)

    assert realcloud.cli("server", "list") == []
    assert realcloud.cli("volume", "list") == []
    assert realcloud.cli("floating", "ip", "list") == []
    record("openstack_cli", {"floating_ip_in_addresses_after_s": round(seen, 2),
                             "after_server_delete": history})  # fmt: skip


def wait_for_address(conn, server_id: str, address: str, timeout: float = 120) -> float:
    """When (time.monotonic()) the server's `addresses` first held address."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        addresses = conn.compute.get_server(server_id).addresses
        if address in (entry["addr"] for entries in addresses.values() for entry in entries):
            return time.monotonic()
        time.sleep(POLL)
    raise AssertionError(f"{address} not in the server's addresses after {timeout} s")


def follow_deletion(conn, server_id: str, volume_id: str, since: float,
                    timeout: float = 180) -> list[dict]:
    """The server's and its volume's statuses from `since` until both are gone: one entry per
    change, {"t": seconds since, "server": "status/task_state" or "gone", "volume": status
    or "gone"}."""
    history: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = {"server": server_status(conn, server_id),
               "volume": status(conn.block_storage.get_volume, volume_id)}  # fmt: skip
        if not history or {k: history[-1][k] for k in now} != now:
            history.append({"t": round(time.monotonic() - since, 2), **now})
        if now == {"server": "gone", "volume": "gone"}:
            return history
        time.sleep(POLL)
    raise AssertionError(f"server or volume still there after {timeout} s: {history}")


def server_status(conn, server_id: str) -> str:
    try:
        server = conn.compute.get_server(server_id)
    except openstack.exceptions.NotFoundException:
        return "gone"
    return f"{server.status}/{server.task_state}"


def status(get, resource_id: str) -> str:
    try:
        return get(resource_id).status
    except openstack.exceptions.NotFoundException:
        return "gone"


def record(name: str, observations: dict) -> None:
    """Add to var/realcloud/observations.json under name, for the next steps (what
    localcloud copies of the real services' timing)."""
    path = VAR / "observations.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**known, name: observations}, indent=1) + "\n")
    print(json.dumps({name: observations}))
