"""The app's side of the site's proxy (web/proxy.py): the owner's redirect handshake to the
VM's host name, the pass cookie for that host only, nginx's authorization subrequest with the
VM's fixed address and token, and everybody else refused. nginx is played by requests sent
with the VM's ``Host`` header, as nginx sends them."""

from __future__ import annotations

import html
import sqlite3

import pytest
import requests

from tests.web.conftest import SAMPLE, Browser, Site
from tests.web.test_config import GOOD, minimal
from web import db
from web.config import Config, ConfigError, from_dict
from web.proxy import direct_url, jupyter_link, url_token

DOMAIN = "vms.localhost"
TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978"
ADDRESS = "10.89.0.9"


@pytest.fixture
def site(make_site) -> Site:
    return make_site(allowed_logins=("alice", "bob"), vms_domain=DOMAIN, auth_cache_seconds=0)


def give_vm(site: Site, login: str, address: str = ADDRESS, token: str = TOKEN) -> str:
    """`login` has a ready VM (as a finished start job records it): its name."""
    name = f"ssc-r2d-{login}"
    with site.conn() as conn:
        db.save_vm(conn, site.user_id(login), login, name=name, repo=SAMPLE,
                   url=f"http://{address}:8888/", state="ready", address=address, token=token)
    return name


def at_vm(site: Site, name: str, path: str, cookie: str | None = None,
          **headers) -> requests.Response:
    """What nginx sends the app for a request to the VM's host name."""
    headers = {"Host": f"{name}.{DOMAIN}", **headers}
    if cookie:
        headers["Cookie"] = f"ssc_vm={cookie}"
    return requests.get(site.url + path, headers=headers, allow_redirects=False, timeout=10)


def handshake(browser: Browser, site: Site, name: str) -> str:
    """Go through the app to the VM's host name: the pass cookie's value."""
    to_vm = browser.get(f"/vm/{name}")
    assert to_vm.status_code == 303, to_vm.text
    location = to_vm.headers["Location"]
    prefix = f"http://{name}.{DOMAIN}/_ssc/pass?ticket="
    assert location.startswith(prefix)
    taken = at_vm(site, name, "/proxy/pass?ticket=" + location.removeprefix(prefix))
    assert taken.status_code == 303, taken.text
    assert taken.headers["Location"] == f"http://{name}.{DOMAIN}/"
    cookie = taken.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Domain" not in cookie
    return taken.cookies["ssc_vm"]


def test_the_owner_gets_through_with_the_vms_address_and_token(alice, site):
    name = give_vm(site, "alice")
    home = alice.get("/").text
    assert f'href="http://{name}.{DOMAIN}/"' in home
    assert TOKEN not in home and "token=" not in home
    granted = at_vm(site, name, "/proxy/auth", handshake(alice, site, name))
    assert granted.status_code == 200
    assert granted.headers["X-SSC-Upstream"] == ADDRESS
    assert granted.headers["X-SSC-Token"] == TOKEN
    assert granted.text == ""


def test_a_ticket_works_once_and_for_its_vm_only(alice, bob, site):
    alice_vm, bob_vm = give_vm(site, "alice"), give_vm(site, "bob", "10.89.0.10")
    ticket = alice.get(f"/vm/{alice_vm}").headers["Location"].split("ticket=")[1]
    assert at_vm(site, bob_vm, f"/proxy/pass?ticket={ticket}").status_code == 403
    assert at_vm(site, alice_vm, f"/proxy/pass?ticket={ticket}").status_code == 403  # spent
    assert at_vm(site, alice_vm, "/proxy/pass?ticket=x").status_code == 403
    # and on the app's own host name there is no pass to take
    assert alice.get(f"/proxy/pass?ticket={ticket}").status_code == 404


def test_another_user_is_refused(alice, bob, site):
    alice_vm, bob_vm = give_vm(site, "alice"), give_vm(site, "bob", "10.89.0.10")
    assert bob.get(f"/vm/{alice_vm}").status_code == 404
    bobs_pass = handshake(bob, site, bob_vm)
    assert at_vm(site, bob_vm, "/proxy/auth", bobs_pass).status_code == 200
    assert at_vm(site, alice_vm, "/proxy/auth", bobs_pass).status_code == 401
    alices_pass = handshake(alice, site, alice_vm)
    assert at_vm(site, bob_vm, "/proxy/auth", alices_pass).status_code == 401


def test_a_signed_out_visitor_is_refused_and_sent_to_sign_in(alice, site):
    give_vm(site, "alice")
    visitor = site.browser()
    answer = visitor.get("/vm/ssc-r2d-alice")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(site.config.github_authorize_url)
    assert at_vm(site, "ssc-r2d-alice", "/proxy/auth").status_code == 401
    assert at_vm(site, "ssc-r2d-alice", "/proxy/auth", "x" * 43).status_code == 401


def test_signing_out_ends_the_pass(alice, site):
    name = give_vm(site, "alice")
    cookie = handshake(alice, site, name)
    assert at_vm(site, name, "/proxy/auth", cookie).status_code == 200
    alice.post("/auth/logout", {"csrf": alice.csrf()})
    assert at_vm(site, name, "/proxy/auth", cookie).status_code == 401
    assert site.sql("SELECT * FROM vm_passes") == []


def test_a_deleted_or_unready_vm_lets_nobody_through(alice, site):
    name = give_vm(site, "alice")
    cookie = handshake(alice, site, name)
    site.sql("UPDATE vms SET state = 'unknown'")
    assert at_vm(site, name, "/proxy/auth", cookie).status_code == 401
    site.sql("DELETE FROM vms")
    assert at_vm(site, name, "/proxy/auth", cookie).status_code == 401
    assert alice.get(f"/vm/{name}").status_code == 404


def test_a_blocked_owner_is_refused(alice, site, make_site):
    name = give_vm(site, "alice")
    cookie = handshake(alice, site, name)
    blocked = make_site(allowed_logins=("alice",), blocked_logins=("alice",),
                        vms_domain=DOMAIN, database=site.config.database)
    assert at_vm(blocked, name, "/proxy/auth", cookie).status_code == 401


def test_requests_from_another_origin_are_refused(alice, site):
    name = give_vm(site, "alice")
    cookie = handshake(alice, site, name)
    own = f"http://{name}.{DOMAIN}"
    assert at_vm(site, name, "/proxy/auth", cookie, Origin=own).status_code == 200
    for other in (f"http://ssc-r2d-bob.{DOMAIN}", site.url, "https://evil.example", "null"):
        assert at_vm(site, name, "/proxy/auth", cookie, Origin=other).status_code == 403


def test_the_auth_route_answers_vm_host_names_only(alice, site):
    give_vm(site, "alice")
    cookie = handshake(alice, site, "ssc-r2d-alice")
    for host in (f"127.0.0.1:{site.url.rsplit(':', 1)[1]}", DOMAIN, f"a.b.{DOMAIN}",
                 f"ssc-r2d-alice.{DOMAIN}.evil.example", f"ssc_r2d.{DOMAIN}",
                 f"{'a' * 64}.{DOMAIN}"):
        answer = requests.get(site.url + "/proxy/auth", timeout=10, allow_redirects=False,
                              headers={"Host": host, "Cookie": f"ssc_vm={cookie}"})
        assert answer.status_code == 401, host


def test_the_cache_keeps_a_grant_for_its_seconds_only(make_site):
    site = make_site(allowed_logins=("alice",), vms_domain=DOMAIN, auth_cache_seconds=60)
    alice = site.browser()
    alice.sign_in("alice")
    name = give_vm(site, "alice")
    cookie = handshake(alice, site, name)
    assert at_vm(site, name, "/proxy/auth", cookie).status_code == 200
    site.sql("DELETE FROM vms")
    assert at_vm(site, name, "/proxy/auth", cookie).status_code == 200  # from the cache
    assert at_vm(site, name, "/proxy/auth", "y" * 43).status_code == 401


def test_job_pages_link_to_the_vms_host_name_and_never_show_the_token(alice, site):
    alice.post("/VM_start", {"giturl": SAMPLE, "csrf": alice.csrf()})
    [job] = site.jobs()
    name = give_vm(site, "alice")
    site.sql("UPDATE jobs SET state = 'succeeded', phase = 'ready' WHERE id = ?", job["id"])
    page = alice.get(f"/jobs/{job['id']}").text
    assert f'href="{html.escape(f"http://{name}.{DOMAIN}/")}"' in page
    assert alice.get(f"/jobs/{job['id']}.json").json()["jupyter_url"] == (
        f"http://{name}.{DOMAIN}/")
    for shown in (page, alice.get("/").text, alice.get(f"/jobs/{job['id']}.json").text):
        assert TOKEN not in shown and "token=" not in shown


def test_without_a_vms_domain_the_page_links_to_the_vm_itself(make_site):
    site = make_site(allowed_logins=("alice",))
    alice = site.browser()
    alice.sign_in("alice")
    give_vm(site, "alice")
    assert f'href="http://{ADDRESS}:8888/?token={TOKEN}"' in alice.get("/").text
    assert alice.get("/vm/ssc-r2d-alice").status_code == 404


def test_link_and_url_helpers():
    row = {"state": "ready", "url": "http://10.0.0.5:8888/?token=abc", "name": "ssc-r2d-x",
           "token": ""}
    assert url_token(row["url"]) == "abc" and direct_url(row["url"]) == "http://10.0.0.5:8888/"
    assert jupyter_link(Config(), row) == row["url"]  # an older row: the token in its URL
    assert jupyter_link(Config(vms_domain="vms.example.org"), row) == ""  # no token to add
    assert jupyter_link(Config(), {**row, "url": "javascript:alert(1)"}) == ""


@pytest.mark.parametrize("domain", ["binder.example.org", "example.org",
                                    "https://vms.example.org", "vms.example.org/x",
                                    "a_b.example.org", "vms.example.org:x"])
def test_a_vms_domain_over_or_at_the_apps_host_or_malformed_is_refused(domain):
    data = minimal(site={"base_url": "https://binder.example.org"},
                   proxy={"vms_domain": domain})
    with pytest.raises(ConfigError, match="vms_domain"):
        from_dict(data, GOOD)


def test_a_vms_domain_with_a_port_is_read():
    data = minimal(site={"base_url": "https://binder.localhost:8443"},
                   proxy={"vms_domain": "VMS.localhost:8443", "auth_cache_seconds": 2})
    config = from_dict(data, GOOD)
    assert config.vm_url("ssc-r2d-a") == "https://ssc-r2d-a.vms.localhost:8443/"
    assert config.auth_cache_seconds == 2


def test_an_older_database_gains_the_new_columns(tmp_path):
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE vms (github_id INTEGER PRIMARY KEY, login TEXT NOT NULL, "
                "name TEXT DEFAULT '', repo TEXT DEFAULT '', ref TEXT DEFAULT '', "
                "url TEXT DEFAULT '', state TEXT DEFAULT '', updated TEXT)")
    old.execute("INSERT INTO vms (github_id, login, url) VALUES (1, 'a', 'http://x:8888/')")
    old.commit()
    old.close()
    conn = db.connect(path)
    db.init(conn)
    row = db.vm_of(conn, 1)
    assert (row["url"], row["address"], row["token"]) == ("http://x:8888/", "", "")
