"""The web trigger as it runs for real: `ssc-web serve` and `ssc-web worker` processes
behind the site's TLS front (localcloud/site.py and localcloud/front.py, as `make demo` starts
them: deploy/nginx-ssc-web.conf on loopback, the VMs at https://<vm>.vms.localhost:<port>/)
on the local cloud, the image built, the GitHub stand-in for sign-in. Each test gets its own
site (directory, ports, database); the local CA in var/ca is made once and shared."""

from __future__ import annotations

import contextlib
import os
import socket
import time

import openstack.exceptions
import pytest
from playwright.sync_api import sync_playwright

from localcloud import github
from localcloud.config import Config as CloudConfig
from localcloud.front import Authority, loopback_names, trust_in_nss
from localcloud.site import LocalSite
from tests.helpers import BOOT_VOLUME, VAR

CHROMIUM = "/usr/bin/chromium"
# The flags this machine needs (no sandbox as root; no calls home on a closed network).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def localhost_names():
    """The tests' requests resolve *.localhost to loopback, as Chromium and curl do."""
    with loopback_names():
        yield


@pytest.fixture
def make_site(cloud, prebuilt_image, tmp_path, monkeypatch):
    """Start a site (LocalSite's settings as keywords, behind its TLS front on a free port
    unless `https_port` says otherwise); all are stopped after the test."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,.localhost,10.89.0.0/16")
    sites = []

    def make(**settings) -> LocalSite:
        settings.setdefault("https_port", free_port())
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


@pytest.fixture
def browser(tmp_path, site):
    """Headless Chromium (Debian's, driven by Playwright) trusting the site's local CA as a
    person's would: an NSS database (``~/.pki/nssdb``, where Chromium on Linux reads the
    user's CAs; certutil from libnss3-tools) in a home of its own. Playwright's
    ``ignore_https_errors`` or ``--ignore-certificate-errors-spki-list`` would only silence
    certificate errors, also for a wrong certificate; a trusted CA tells them apart."""
    home = tmp_path / "browser-home"
    trust_in_nss(Authority(site.authority), home)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS,
                                              env={**os.environ, "HOME": str(home)})
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    yield context.new_page()
    context.close()
