"""Security groups are enforced, as Neutron enforces them: what no ingress rule allows does
not reach a server; replies do; a rule added or removed takes effect on running servers."""

import subprocess

import pytest

pytestmark = pytest.mark.cloud
PORT = 8000
SERVE = f"nohup python3 -m http.server {PORT} >/dev/null 2>&1 &"
FETCH = ("import sys, urllib.request\n"
         "try:\n"
         "    urllib.request.urlopen(sys.argv[1], timeout=3)\n"
         "except OSError as error:\n"
         "    sys.exit(f'unreachable: {error}')\n")


def on(server_id: str, *command: str) -> subprocess.CompletedProcess:
    """Run `command` on the server's machine (its container), as its console would."""
    return subprocess.run(["docker", "exec", f"localcloud-{server_id}", *command],
                          capture_output=True, text=True, timeout=60)


def reaches(source_id: str | None, address: str) -> bool:
    """Whether an HTTP GET of `address`:PORT gets an answer, from this machine (the
    controller, None) or from the server `source_id`."""
    url = f"http://{address}:{PORT}/"
    command = ["python3", "-c", FETCH, url]
    if source_id is None:
        return subprocess.run(command, capture_output=True, timeout=60).returncode == 0
    return on(source_id, *command).returncode == 0


@pytest.fixture
def two_servers(cloud):
    conn = cloud.connect()
    group = conn.network.create_security_group(name="lc-sg-web")
    conn.network.create_security_group_rule(
        security_group_id=group.id, direction="ingress", protocol="tcp",
        port_range_min=PORT, port_range_max=PORT, remote_ip_prefix="10.89.0.1/32")
    servers = [conn.create_server(name, image="debian-13", flavor="ssc.tiny",
                                  network="private", security_groups=["lc-sg-web"],
                                  auto_ip=False, wait=True, timeout=600)
               for name in ("lc-sg-a", "lc-sg-b")]
    yield conn, group, servers
    for server in servers:
        conn.delete_server(server.id, wait=True, timeout=300)
    conn.network.delete_security_group(group)


def test_only_what_a_rule_allows_reaches_a_server(cloud, two_servers):
    conn, group, (web, other) = two_servers
    assert on(web.id, "sh", "-c", SERVE).returncode == 0
    address = web.addresses["private"][0]["addr"]
    assert reaches(None, address)  # the rule's address: this machine
    assert not reaches(other.id, address)  # another server on the same network: dropped
    # the server's own replies and its way out are not blocked (a stateful group)
    assert on(web.id, "python3", "-c", FETCH,
              "http://10.89.0.1:8770/").returncode == 0

    # A rule naming the group as its remote admits the group's members at once ...
    peers = conn.network.create_security_group_rule(
        security_group_id=group.id, direction="ingress", protocol="tcp",
        port_range_min=PORT, port_range_max=PORT, remote_group_id=group.id)
    assert reaches(other.id, address)
    # ... and its removal shuts them out again.
    conn.network.delete_security_group_rule(peers)
    assert not reaches(other.id, address)


def test_the_default_group_admits_only_its_members(cloud):
    conn = cloud.connect()
    server = conn.create_server("lc-sg-default", image="debian-13", flavor="ssc.tiny",
                                network="private", auto_ip=False, wait=True, timeout=600)
    try:
        assert on(server.id, "sh", "-c", SERVE).returncode == 0
        assert not reaches(None, server.addresses["private"][0]["addr"])
    finally:
        conn.delete_server(server.id, wait=True, timeout=300)
