"""Who reaches a user VM, and what its repository's code reaches, on the local cloud (which
enforces security groups as Neutron does): Jupyter's port answers the controller only, and
the notebook cannot reach the cloud's metadata service, which serves the VM's user-data."""

import json
import subprocess

import pytest
import requests

from tests.helpers import BIN, ROOT
from tests.integration.test_user_vm import SAMPLE, failure, stats, vm, who

pytestmark = pytest.mark.cloud
CONTAINER = "repo2docker-jupyter"  # the launcher's Jupyter container (repo2docker-launcher)
META_READER = 2001  # the test user's GitHub account id
READ = ("import sys, urllib.request\n"
        "try:\n"
        "    print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()[:200])\n"
        "except OSError as error:\n"
        "    sys.exit(f'unreachable: {error}')\n")


def read_from(server_id: str, url: str, *, in_notebook: bool) -> subprocess.CompletedProcess:
    """GET `url` with Python from the VM itself, or from inside its Jupyter container."""
    command = ["docker", "exec", f"localcloud-{server_id}"]
    if in_notebook:
        command += ["docker", "exec", CONTAINER]
    return subprocess.run([*command, "python3", "-c", READ, url], capture_output=True,
                          text=True, timeout=120)


def security_group(cloud) -> tuple[int, dict]:
    """Run playbooks/security_group.yml: its exit code and its JSON report."""
    env = {**cloud.env, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    result = subprocess.run([str(BIN / "ansible-playbook"),
                             str(ROOT / "playbooks" / "security_group.yml")], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    return result.returncode, json.loads(result.stdout)


def test_the_security_group_has_exactly_its_rules(cloud):
    conn = cloud.connect()
    group = conn.network.find_security_group("ssc-repo2docker")
    stray = conn.network.create_security_group_rule(
        security_group_id=group.id, direction="ingress", protocol="tcp", port_range_min=80,
        port_range_max=80, remote_ip_prefix="0.0.0.0/0")
    code, report = security_group(cloud)  # the session made the group: this run mends it
    assert code == 0 and report["stats"]["localhost"]["changed"] == 1
    rules = {(r.direction, r.ether_type, r.protocol, r.port_range_min, r.remote_ip_prefix)
             for r in conn.network.security_group_rules(security_group_id=group.id)}
    assert stray.id not in {r.id for r in conn.network.security_group_rules()}
    assert rules == {("egress", "IPv4", None, None, None), ("egress", "IPv6", None, None, None),
                     ("ingress", "IPv4", "tcp", 8888, "10.89.0.1/32"),
                     ("ingress", "IPv4", "tcp", 8888, "10.89.1.1/32"),
                     ("ingress", "IPv4", "tcp", 22, "10.89.0.1/32"),
                     ("ingress", "IPv4", "tcp", 22, "10.89.1.1/32")}
    code, report = security_group(cloud)
    assert code == 0 and report["stats"]["localhost"]["changed"] == 0


def test_jupyter_answers_the_controller_only_and_the_notebook_not_the_metadata_service(
        cloud, prebuilt_image):
    code, report, output = vm(cloud, *who("meta-reader", META_READER), "-e", f"repo={SAMPLE}")
    assert code == 0, failure(report) or output[-4000:]
    result = stats(report)["ssc_vm"]
    conn = cloud.connect()
    other = conn.create_server("lc-neighbour", image="debian-13", flavor="ssc.tiny",
                               network="private", auto_ip=False, wait=True, timeout=600)
    try:
        server = conn.compute.find_server(result["name"])
        # Jupyter's port: the controller gets in, another server on the network does not.
        base = result["url"].rstrip("/")
        assert requests.get(f"{base}/api/status", timeout=10).status_code == 403  # no token
        neighbour = subprocess.run(
            ["docker", "exec", f"localcloud-{other.id}", "python3", "-c", READ,
             f"{base}/api/status"], capture_output=True, text=True, timeout=120)
        assert neighbour.returncode != 0 and "timed out" in neighbour.stderr, neighbour.stderr

        user_data = "http://169.254.169.254/openstack/latest/user_data"
        # The VM itself reads its user-data there, as on a real cloud ...
        on_vm = read_from(server.id, user_data, in_notebook=False)
        assert on_vm.returncode == 0 and "#cloud-config" in on_vm.stdout, on_vm.stderr
        # ... and the notebook reaches the network (here the cloud's git host) ...
        git = read_from(server.id, "http://10.89.0.1:8770/git/ssc/sample-notebook.git/info/refs"
                        "?service=git-upload-pack", in_notebook=True)
        assert git.returncode == 0, git.stderr
        # ... but not the metadata service: refused at once, not timed out.
        blocked = read_from(server.id, user_data, in_notebook=True)
        assert blocked.returncode != 0
        assert "unreachable" in blocked.stderr and "refused" in blocked.stderr.lower(), \
            blocked.stderr

        # A site that blocks the project network, the controller's own among it (the README's
        # hardening), with the image's own script: the notebook no longer reaches the
        # controller, and the controller still reaches Jupyter (its replies are not new
        # connections).
        egress = subprocess.run(["docker", "exec", f"localcloud-{server.id}",
                                 "/usr/local/sbin/ssc-r2d-egress", "169.254.169.254/32",
                                 "10.89.0.0/16"], capture_output=True, text=True, timeout=60)
        assert egress.returncode == 0, egress.stderr
        git = read_from(server.id, "http://10.89.0.1:8770/git/ssc/sample-notebook.git/info/refs"
                        "?service=git-upload-pack", in_notebook=True)
        assert git.returncode != 0 and "refused" in git.stderr.lower(), git.stderr
        assert requests.get(f"{base}/api/status", timeout=10).status_code == 403
    finally:
        conn.delete_server(other.id, wait=True, timeout=300)
        vm(cloud, *who("meta-reader", META_READER), "-e", "state=absent")
    assert conn.compute.find_server(f"ssc-r2d-{META_READER}") is None
