"""playbooks/user_vm.yml against realcloud (real Nova, Cinder, Neutron; servers on Nova's fake
driver, so nothing boots), with the inventory a site would have there (inventory/realcloud):
up to the wait for Jupyter (user_vm_stop_before_wait), a rerun that changes nothing, then
state=absent leaves no server, volume, floating IP or port. The wait itself, on a VM whose
console never shows the launcher: it ends at user_vm_ready_timeout and the VM goes. The same
playbook with machines that boot: tests/integration/test_user_vm.py."""

import json

import pytest

from tests.integration.test_user_vm import changed, failure, playbook, stats

pytestmark = pytest.mark.realcloud

INVENTORY = ("-i", "inventory/realcloud")
REPO = "https://github.com/binder-examples/requirements"
# A full commit id: git_ref returns it without asking the forge (none is reachable here).
COMMIT = "0123456789abcdef0123456789abcdef01234567"
PUBLIC_NETWORK = "Public External IPv4 Network"


def vm(realcloud, user_id: int, *extra: str) -> tuple[int, dict, str]:
    """playbooks/user_vm.yml for the user rc-<user_id> (account id user_id) on realcloud."""
    return playbook(realcloud, "user_vm.yml", *INVENTORY, "-e", f"user_id={user_id}",
                    "-e", f"user=rc-{user_id}", *extra)


def start(realcloud, user_id: int, *extra: str) -> tuple[int, dict, str]:
    return vm(realcloud, user_id, "-e", f"repo={REPO}", "-e", f"ref={COMMIT}", *extra)


def left_over(conn) -> dict:
    """What the project holds that a user VM makes: servers, volumes, floating IPs, and the
    ports of servers (Neutron's device_owner compute:*)."""
    return {"servers": [s.name for s in conn.compute.servers()],
            "volumes": [v.id for v in conn.block_storage.volumes()],
            "floating_ips": [ip.floating_ip_address for ip in conn.network.ips()],
            "ports": [p.id for p in conn.network.ports()
                      if (p.device_owner or "").startswith("compute:")]}


NOTHING = {"servers": [], "volumes": [], "floating_ips": [], "ports": []}


def test_up_to_the_wait_then_absent_leaves_nothing(realcloud):
    conn = realcloud.connect()
    pool = json.dumps({"user_vm_floating_ip_pool": PUBLIC_NETWORK})
    try:
        code, report, output = start(realcloud, 3001, "-e", pool)
        assert code == 0, failure(report) or output[-4000:]
        assert "ssc_vm" not in stats(report)  # stopped before the wait: no URL to publish
        server = conn.compute.get_server(conn.compute.find_server("ssc-r2d-3001").id)
        assert server.status == "ACTIVE"
        assert {k: server.metadata[k] for k in ("ssc_r2d_owner_id", "ssc_r2d_owner_login",
                                                "ssc_r2d_repo", "ssc_r2d_commit")} == {
            "ssc_r2d_owner_id": "3001", "ssc_r2d_owner_login": "rc-3001",
            "ssc_r2d_repo": REPO, "ssc_r2d_commit": COMMIT}
        [volume] = server.attached_volumes
        assert conn.block_storage.get_volume(volume["id"]).size == 1
        [floating] = list(conn.network.ips())
        assert floating.port_id in {p.id for p in conn.network.ports(device_id=server.id)}

        code, report, _ = start(realcloud, 3001, "-e", pool)
        assert code == 0 and changed(report) == 0, failure(report)
    finally:
        code, report, _ = vm(realcloud, 3001, "-e", "state=absent")
    assert code == 0, failure(report)
    assert stats(report)["ssc_vm"] == {"name": "ssc-r2d-3001", "state": "absent",
                                       "deleted": True}
    assert left_over(conn) == NOTHING
    code, report, _ = vm(realcloud, 3001, "-e", "state=absent")
    assert code == 0 and changed(report) == 0
    assert stats(report)["ssc_vm"]["deleted"] is False


def test_the_wait_for_a_launcher_that_never_reports_ends_and_deletes_the_vm(realcloud):
    """Real Nova's console output of a fake-driver server holds no launcher record: the
    wait reads it (phase "", no failure) until user_vm_ready_timeout, then the VM goes."""
    conn = realcloud.connect()
    try:
        code, report, output = start(realcloud, 3002, "-e", "user_vm_stop_before_wait=false",
                                     "-e", "user_vm_ready_timeout=6",
                                     "-e", "user_vm_progress_interval=1")
    finally:
        left = vm(realcloud, 3002, "-e", "state=absent")
    assert code != 0, output[-4000:]
    assert stats(left[1])["ssc_vm"]["deleted"] is False  # the failed run had deleted it
    assert "Your environment did not start within 6 seconds." in failure(report)
    assert "The VM was deleted." in failure(report)
    [followed] = [host for play in report["plays"] for task in play["tasks"]
                  for host in task["hosts"].values()
                  if task["task"]["name"].endswith("Follow the launcher on the VM's console")]
    assert (followed["records"], followed["phase"], followed["server_status"]) == (
        [], "", "ACTIVE")
    assert followed["attempts"] > 1
    assert left_over(conn) == NOTHING
