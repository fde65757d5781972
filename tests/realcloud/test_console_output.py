"""os-getConsoleOutput on real Nova (Zed; servers on the fake driver, whose console always
reads "FAKE CONSOLE OUTPUT\\nANOTHER\\nLAST LINE"), and ssc.repo2docker.launch_progress
reading it: which lengths Nova takes and what each gives (tests/helpers.py holds the table
the local cloud is checked against too), 409 for a server no host took, and the module
waiting (no record: phase "") rather than failing on a console without the launcher."""

import pytest

from tests.helpers import assert_console_answers_as_novas, run_module

pytestmark = pytest.mark.realcloud

FAKE_CONSOLE = "FAKE CONSOLE OUTPUT\nANOTHER\nLAST LINE"


@pytest.fixture(scope="module")
def server(realcloud):
    conn = realcloud.connect()
    server = conn.compute.create_server(
        name="rc-console", flavor_id=conn.compute.find_flavor("ssc.tiny").id,
        image_id=conn.image.find_image("debian-13").id,
        networks=[{"uuid": conn.network.find_network("private").id}])
    yield conn.compute.wait_for_server(server, wait=300)
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=300)


def test_lengths_as_nova_takes_them(realcloud, server):
    conn = realcloud.connect()
    assert conn.compute.get_server_console_output(server)["output"] == FAKE_CONSOLE
    # -1 is not "all": Nova's _tail_log keeps lines[1:]
    assert conn.compute.get_server_console_output(server, length=-1)["output"] == (
        "ANOTHER\nLAST LINE")
    assert conn.compute.get_server_console_output(server, length=0)["output"] == ""
    assert_console_answers_as_novas(conn, server.id)


def test_a_server_no_host_took_has_no_console_yet(realcloud):
    """A server the scheduler found no host for (ERROR, no host): 409 "is not ready", as
    for one not yet scheduled; launch_progress fails with Nova's fault instead of asking."""
    admin, conn = realcloud.connect("realcloud-admin"), realcloud.connect()
    flavor = admin.compute.create_flavor(name="rc-too-big", ram=512, vcpus=1, disk=10**6)
    server = None
    try:
        server = conn.compute.create_server(
            name="rc-no-host", flavor_id=flavor.id, image_id=conn.image.find_image("debian-13").id,
            networks=[{"uuid": conn.network.find_network("private").id}])
        server = conn.compute.wait_for_server(server, status="ERROR", failures=["ACTIVE"],
                                              wait=300)
        answer = conn.compute.post(f"/servers/{server.id}/action",
                                   json={"os-getConsoleOutput": {}})
        assert (answer.status_code, answer.json()) == (409, {"conflictingRequest": {
            "code": 409, "message": f"Instance {server.id} is not ready"}})
        result = run_module(realcloud.env, "ssc.repo2docker.launch_progress",
                            {"cloud": "realcloud", "server": server.id})
        assert result["failed"] and result["server_status"] == "ERROR"
        assert result["msg"].startswith("The cloud could not start the VM: No valid host")
    finally:
        if server is not None:
            conn.compute.delete_server(server)
            conn.compute.wait_for_delete(server, wait=300)
        admin.compute.delete_flavor(flavor)


def test_launch_progress_waits_on_a_console_without_the_launcher(realcloud, server):
    for length in (None, 2, 1000):
        args = {"cloud": "realcloud", "server": server.id}
        result = run_module(realcloud.env, "ssc.repo2docker.launch_progress",
                            args if length is None else {**args, "length": length})
        assert not result.get("failed"), result
        assert (result["records"], result["phase"], result["server_status"]) == (
            [], "", "ACTIVE")
    for length in (0, -1):
        result = run_module(realcloud.env, "ssc.repo2docker.launch_progress",
                            {"cloud": "realcloud", "server": server.id, "length": length})
        assert result["failed"] and "length" in result["msg"]
