"""The web trigger as it runs for real: `ssc-web serve` and `ssc-web worker` processes
(localcloud/site.py, as `make demo` starts them) on the local cloud, the image built, the
GitHub stand-in for sign-in. Each test gets its own site (directory, port, database)."""

from __future__ import annotations

import contextlib
import socket
import time

import openstack.exceptions
import pytest

from localcloud import github
from localcloud.config import Config as CloudConfig
from localcloud.site import LocalSite
from tests.helpers import BOOT_VOLUME, VAR


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def make_site(cloud, prebuilt_image, tmp_path, monkeypatch):
    """Start a site (LocalSite's settings as keywords); all are stopped after the test."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,10.89.0.0/16")
    sites = []

    def make(**settings) -> LocalSite:
        local = LocalSite(tmp_path / f"site{len(sites)}", free_port(), CloudConfig(var_dir=VAR),
                          **settings)
        sites.append(local)
        local.start()
        return local

    yield make
    for local in sites:
        local.stop()


@pytest.fixture
def site(make_site) -> LocalSite:
    return make_site()


def find_vm(cloud, login: str):
    """The VM of the stand-in's user `login` (an openstacksdk server), or None: the VM is
    named by the account's id, and marked with the login for people to read."""
    for server in cloud.connect().compute.servers():
        if str((server.metadata or {}).get("ssc_r2d_owner_login", "")).lower() == login.lower():
            return server
    return None


def account_id(cloud, login: str) -> int:
    """The GitHub stand-in's account id of the user `login`; AssertionError if it has none."""
    account = github.Accounts(cloud.var_dir / "github" / "accounts.json").user(login)
    assert account is not None, f"the GitHub stand-in has no user {login}"
    return account["id"]


def vm_name_of(cloud, login: str) -> str:
    """The name of the VM of the stand-in's user `login`: ``ssc-r2d-<their account id>``
    (roles/user_vm names VMs by id)."""
    return f"ssc-r2d-{account_id(cloud, login)}"


def delete_vm(cloud, login: str, timeout: float = 300) -> None:
    """Take a test's VM away, whatever the test left (the playbook's own clean-up is tested
    elsewhere): its floating IPs (from Neutron), the server, and its boot volumes, both the
    one Nova deletes after the server (waited for) and any a cut-off create left (marked
    with the VM's name by ssc.repo2docker.user_server)."""
    conn = cloud.connect()
    server = find_vm(cloud, login)
    name = server.name if server is not None else vm_name_of(cloud, login)
    if server is not None:
        for port in conn.network.ports(device_id=server.id):
            for ip in conn.network.ips(port_id=port.id):
                conn.network.delete_ip(ip, ignore_missing=True)
        conn.delete_server(server.id, wait=True, timeout=timeout)
    deadline = time.monotonic() + timeout
    while left := [v for v in conn.block_storage.volumes(details=True)
                   if (v.metadata or {}).get(BOOT_VOLUME["BOOT_VOLUME_OF"]) == name]:
        for volume in left:
            if volume.status in BOOT_VOLUME["DELETABLE"]:
                with contextlib.suppress(openstack.exceptions.BadRequestException):
                    conn.block_storage.delete_volume(volume, ignore_missing=True)
        assert time.monotonic() < deadline, [(v.id, v.status) for v in left]
        time.sleep(0.5)
