"""The web trigger as it runs for real: `ssc-web serve` and `ssc-web worker` processes
(localcloud/site.py, as `make demo` starts them) on the local cloud, the image built, the
GitHub stand-in for sign-in. Each test gets its own site (directory, port, database)."""

from __future__ import annotations

import socket

import pytest

from localcloud.config import Config as CloudConfig
from localcloud.site import LocalSite
from tests.helpers import VAR


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


def delete_vm(cloud, login: str) -> None:
    """Take a test's VM away, whatever the test left (the playbook's own clean-up is tested
    elsewhere)."""
    conn = cloud.connect()
    server = find_vm(cloud, login)
    if server is not None:
        conn.delete_server(server.id, wait=True, delete_ips=True)
