"""Servers are real machines: the whole life of a server through the `openstack` CLI.

keypair → security group → server with user-data (writes a file, clones over git, builds a
Docker image) → SSH finds all three → stop → snapshot → a server from the snapshot has them
too → boot-from-volume through openstacksdk → delete everything → nothing left in Docker.
"""

import base64
import subprocess
import time

import pytest

from tests.helpers import assert_console_answers_as_novas, labelled, new_key, ssh, wait_for

pytestmark = pytest.mark.cloud

USER_DATA = """#cloud-config
write_files:
  - path: /etc/localcloud-test
    content: written by cloud-init
  - path: /srv/context/Dockerfile
    content: |
      FROM scratch
      COPY hello /hello
  - path: /srv/context/hello
    content: hello from inside
runcmd:
  - [git, clone, "{git_url}", /srv/sample]
  - [docker, build, -t, "localcloud-test:1", /srv/context]
"""


def address_of(server: dict) -> str:
    addresses = server["addresses"]
    if isinstance(addresses, dict):
        return addresses["private"][0]
    return addresses.split("=")[1].split(",")[0]


@pytest.fixture(scope="module")
def sample_repository(cloud, tmp_path_factory):
    source = tmp_path_factory.mktemp("sample")
    (source / "README.md").write_text("a sample repository\n")
    return cloud.localcloud("publish", "lc-tests/sample", str(source)).strip()


def test_server_life(cloud, tmp_path, sample_repository):
    volumes_before = set(labelled("volume", "io.localcloud"))  # images' data may be there
    key = new_key(tmp_path)
    cloud.cli("keypair", "create", "--public-key", f"{key}.pub", "lc-life")
    cloud.cli("security", "group", "create", "lc-life-ssh")
    rule = cloud.cli("security", "group", "rule", "create", "--protocol", "tcp",
                     "--dst-port", "22", "--remote-ip", "0.0.0.0/0", "lc-life-ssh")
    assert rule["port_range_min"] == 22
    user_data = tmp_path / "user-data"
    user_data.write_text(USER_DATA.format(git_url=sample_repository))

    server = cloud.cli("server", "create", "--image", "debian-13", "--flavor", "ssc.small",
                       "--key-name", "lc-life", "--security-group", "lc-life-ssh",
                       "--network", "private", "--user-data", str(user_data), "--wait",
                       "lc-life-1")
    assert server["status"] == "ACTIVE"
    address = address_of(cloud.cli("server", "show", "lc-life-1"))
    ssh(address, key, "cloud-init status --wait")
    assert ssh(address, key, "cat /etc/localcloud-test") == "written by cloud-init"
    assert "a sample repository" in ssh(address, key, "cat /srv/sample/README.md")
    assert ssh(address, key, "sudo docker image inspect -f '{{.Id}}' localcloud-test:1")

    cloud.cli("server", "stop", "lc-life-1", parse=False)
    wait_for(lambda: cloud.cli("server", "show", "lc-life-1")["status"] == "SHUTOFF")

    cloud.cli("server", "image", "create", "--name", "lc-life-snap", "--wait", "lc-life-1")
    snapshot = cloud.cli("image", "show", "lc-life-snap")
    assert snapshot["status"] == "active"
    assert snapshot["properties"]["image_type"] == "snapshot"
    cloud.cli("image", "set", "--property", "purpose=test", "lc-life-snap", parse=False)
    assert cloud.cli("image", "show", "lc-life-snap")["properties"]["purpose"] == "test"

    cloud.cli("server", "create", "--image", "lc-life-snap", "--flavor", "ssc.small",
              "--key-name", "lc-life", "--security-group", "lc-life-ssh",
              "--network", "private", "--wait", "lc-life-2")
    address = address_of(cloud.cli("server", "show", "lc-life-2"))
    assert ssh(address, key, "cat /etc/localcloud-test") == "written by cloud-init"
    assert ssh(address, key, "sudo docker image inspect -f '{{.Id}}' localcloud-test:1")
    assert ssh(address, key, "hostname").strip() == "lc-life-2"

    for name in ("lc-life-1", "lc-life-2"):
        cloud.cli("server", "delete", "--wait", name, parse=False)
    cloud.cli("image", "delete", "lc-life-snap", parse=False)
    cloud.cli("security", "group", "delete", "lc-life-ssh", parse=False)
    cloud.cli("keypair", "delete", "lc-life", parse=False)
    assert cloud.cli("server", "list") == []
    wait_for(lambda: set(labelled("volume", "io.localcloud")) <= volumes_before, timeout=60)
    assert not cloud.server_containers()


def test_boot_from_volume_with_openstacksdk(cloud, tmp_path):
    key = new_key(tmp_path)
    conn = cloud.connect()
    conn.compute.create_keypair(name="lc-bfv", public_key=(key.with_suffix(".pub")).read_text())
    image = conn.image.find_image("debian-13")
    flavor = conn.compute.find_flavor("ssc.tiny")
    network = conn.network.find_network("private")
    user_data = base64.b64encode(b"#cloud-config\nruncmd:\n - [touch, /tmp/bfv]\n").decode()
    server = conn.compute.create_server(
        name="lc-bfv", flavor_id=flavor.id, key_name="lc-bfv", user_data=user_data,
        networks=[{"uuid": network.id}], metadata={"owner": "tests"},
        security_groups=[{"name": "ssc-repo2docker"}],  # SSH from this machine
        block_device_mapping=[{"boot_index": 0, "uuid": image.id, "source_type": "image",
                               "destination_type": "volume", "volume_size": 7,
                               "delete_on_termination": True}])
    server = conn.compute.wait_for_server(server, wait=600)
    assert server.status == "ACTIVE"
    assert server.metadata == {"owner": "tests"}
    (attached,) = server.attached_volumes
    volume = conn.block_storage.get_volume(attached["id"])
    assert (volume.status, volume.size, volume.is_bootable) == ("in-use", 7, True)
    address = server.addresses["private"][0]["addr"]
    ssh(address, key, "cloud-init status --wait")
    assert ssh(address, key, "test -f /tmp/bfv && echo yes").strip() == "yes"

    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=300)
    conn.compute.delete_keypair("lc-bfv")
    # as Nova does: the boot volume is deleted after the server is gone (`deleting` meanwhile)
    conn.block_storage.wait_for_delete(volume, wait=300)
    assert conn.block_storage.find_volume(attached["id"]) is None
    assert not cloud.server_containers()


def test_console_output_is_what_the_machine_wrote(cloud, tmp_path):
    """os-getConsoleOutput as Nova answers it: the machine's console (boot messages, and what
    is written to /dev/console), the last `length` lines, control characters removed; bad
    lengths refused with 400."""
    key = new_key(tmp_path)
    conn = cloud.connect()
    conn.compute.create_keypair(name="lc-console", public_key=key.with_suffix(".pub")
                                .read_text())
    server = conn.compute.create_server(
        name="lc-console", flavor_id=conn.compute.find_flavor("ssc.tiny").id,
        image_id=conn.image.find_image("debian-13").id, key_name="lc-console",
        networks=[{"uuid": conn.network.find_network("private").id}],
        security_groups=[{"name": "ssc-repo2docker"}])  # SSH from this machine
    try:
        server = conn.compute.wait_for_server(server, wait=600)
        address = server.addresses["private"][0]["addr"]
        ssh(address, key, "cloud-init status --wait")
        ssh(address, key, "printf 'first marker\\n\\033[1mlast marker\\n' | sudo tee /dev/console")
        whole = conn.compute.get_server_console_output(server)["output"]
        assert "cloud-init" in whole and "first marker" in whole
        assert "\x1b" not in whole and "\r" not in whole
        tail = wait_for(lambda: conn.compute.get_server_console_output(server, length=2)[
            "output"].strip() or None, timeout=10)
        assert "last marker" in tail and "first marker" not in tail
        assert conn.compute.get_server_console_output(server, length=0)["output"] == ""
        shown = cloud.cli("console", "log", "show", "--lines", "3", "lc-console", parse=False)
        assert "last marker" in shown
        for bad in (-2, "two", 1.5):
            refused = conn.compute.post(f"/servers/{server.id}/action",
                                        json={"os-getConsoleOutput": {"length": bad}})
            assert refused.status_code == 400, (bad, refused.text)
        refused = conn.compute.post(f"/servers/{server.id}/action",
                                    json={"os-getConsoleOutput": {"lines": 2}})
        assert refused.status_code == 400
        # stopped, its console stays as it was: every length as real Nova answers it
        conn.compute.stop_server(server)
        conn.compute.wait_for_server(server, status="SHUTOFF", wait=300)
        whole = conn.compute.get_server_console_output(server)["output"]
        assert conn.compute.get_server_console_output(server, length=-1)["output"] == (
            whole.split("\n", 1)[1])  # not all: Nova keeps lines[1:]
        assert_console_answers_as_novas(conn, server.id)
    finally:
        conn.compute.delete_server(server)
        conn.compute.wait_for_delete(server, wait=300)
        conn.compute.delete_keypair("lc-console")


def test_no_console_before_a_host_has_the_server(cloud):
    """Nova's 409 "is not ready" while no host has the instance (check_instance_host)."""
    conn = cloud.connect()
    cloud.localcloud("fault", "server.build", "--action", "delay", "--delay", "10",
                     "--count", "1")
    server = conn.compute.create_server(
        name="lc-console-early", flavor_id=conn.compute.find_flavor("ssc.tiny").id,
        image_id=conn.image.find_image("debian-13").id,
        networks=[{"uuid": conn.network.find_network("private").id}])
    try:
        answer = conn.compute.post(f"/servers/{server.id}/action",
                                   json={"os-getConsoleOutput": {}})
        assert (answer.status_code, answer.json()) == (409, {"conflictingRequest": {
            "code": 409, "message": f"Instance {server.id} is not ready"}})
    finally:
        cloud.localcloud("fault", "--clear")
        conn.compute.wait_for_server(server, wait=300)
        conn.compute.delete_server(server)
        conn.compute.wait_for_delete(server, wait=300)


def test_floating_ip_reaches_the_server(cloud, tmp_path):
    key = new_key(tmp_path)
    conn = cloud.connect()
    conn.compute.create_keypair(name="lc-fip", public_key=key.with_suffix(".pub").read_text())
    server = conn.create_server("lc-fip", image="debian-13", flavor="ssc.tiny",
                                key_name="lc-fip", network="private", auto_ip=False,
                                security_groups=["ssc-repo2docker"],  # SSH from here
                                wait=True, timeout=600)
    public = conn.network.find_network("Public External IPv4 Network")
    floating = conn.network.create_ip(floating_network_id=public.id)
    port = next(conn.network.ports(device_id=server.id))
    conn.network.update_ip(floating, port_id=port.id)
    # as with real Neutron and Nova: Neutron has it at once, Nova's addresses a moment later
    assert conn.network.get_ip(floating.id).port_id == port.id
    deadline = time.monotonic() + 60
    while True:
        shown = conn.compute.get_server(server.id)
        kinds = {a["OS-EXT-IPS:type"]: a["addr"] for a in shown.addresses["private"]}
        if "floating" in kinds or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert kinds["floating"] == floating.floating_ip_address
    assert ssh(floating.floating_ip_address, key, "hostname").strip() == "lc-fip"
    conn.delete_server("lc-fip", wait=True, timeout=300)
    assert conn.network.get_ip(floating.id).port_id is None
    conn.network.delete_ip(floating)
    conn.compute.delete_keypair("lc-fip")


def test_docker_shows_nothing_left(cloud):
    output = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], check=True,
                            capture_output=True, text=True).stdout
    assert not [name for name in output.split()
                if name.startswith("localcloud-") and name not in cloud.foreign_containers]
