"""What a repository's code can reach from a user VM on the local cloud: not the cloud's
metadata service, which serves the VM's user-data (issue 14)."""

import subprocess

import pytest

from tests.integration.test_user_vm import SAMPLE, launch, left_of, vm

pytestmark = pytest.mark.cloud
CONTAINER = "repo2docker-jupyter"  # the launcher's Jupyter container (repo2docker-launcher)
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


def test_the_notebook_cannot_reach_the_metadata_service(cloud, prebuilt_image):
    result = launch(cloud, "meta-reader", SAMPLE)
    try:
        server = cloud.connect().compute.find_server(result["name"])
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
    finally:
        vm(cloud, "-e", "user=meta-reader", "-e", "state=absent")
    assert left_of(cloud, "meta-reader") == []
