"""A researcher is their GitHub account's id, not its login (issue 11), through the app with
the GitHub stand-in: a renamed account keeps its VM, whoever takes the freed login gets
nothing of it, rules by login follow the account, legacy logins sign in, two sign-ins in one
browser both succeed, anonymous visits write nothing, and access is kept current."""

from __future__ import annotations

import pytest

from localcloud import github as stand_in
from tests.helpers import sign_in
from tests.web.conftest import REGISTRATION_SECRET, SAMPLE, Browser, Site
from tests.web.test_proxy import DOMAIN, TOKEN, at_vm, handshake
from web import db, pending, users


def give_vm(site: Site, github_id: int, login: str, address: str = "10.89.0.9") -> str:
    """The runner's part: the user's start job succeeded and their VM is ready; its name."""
    name = f"ssc-r2d-{github_id}"
    with site.conn() as conn:
        conn.execute("UPDATE jobs SET state = 'succeeded', phase = 'ready', finished = ? "
                     "WHERE github_id = ? AND state IN ('queued', 'running')",
                     (db.now(), github_id))
        db.save_vm(conn, github_id, login, name=name, repo=SAMPLE,
                   url=f"http://{address}:8888/", state="ready", address=address, token=TOKEN)
    return name


def start(browser: Browser) -> int:
    answer = browser.post("/VM_start", {"giturl": SAMPLE, "csrf": browser.csrf()})
    assert answer.status_code == 303, answer.text
    return answer.status_code


def register(browser: Browser) -> None:
    action = f"/register/{REGISTRATION_SECRET}"
    assert browser.post(action, {"csrf": browser.csrf()}).status_code == 303


def ids_of(site: Site, login: str) -> list[int]:
    return [row[0] for row in site.sql("SELECT github_id FROM users WHERE login = ?", login)]


@pytest.fixture
def renaming_site(make_site, github) -> Site:
    """A site that admits the login old-name, with its proxy."""
    return make_site(allowed_logins=("old-name",), vms_domain=DOMAIN, auth_cache_seconds=0)


def test_a_renamed_account_keeps_its_vm(renaming_site, github):
    site = renaming_site
    first = site.browser()
    first.sign_in("old-name")
    start(first)
    [account] = ids_of(site, "old-name")
    name = give_vm(site, account, "old-name")

    stand_in.rename_user(github.config, "old-name", "new-name")
    again = site.browser()
    again.sign_in("new-name")
    assert [tuple(row) for row in site.sql("SELECT github_id, login FROM users")] == [
        (account, "new-name")]
    home = again.get("/").text
    assert "not allowed" not in home  # the rule bound old-name to this account
    assert f'href="http://{name}.{DOMAIN}/"' in home  # sees it
    granted = at_vm(site, name, "/proxy/auth", handshake(again, site, name))  # opens it
    assert granted.status_code == 200 and granted.headers["X-SSC-Token"] == TOKEN
    delete = again.post("/VM_delete", {"csrf": again.csrf()})  # deletes it
    assert delete.status_code == 303
    job = site.jobs()[-1]
    assert (job["action"], job["github_id"], job["login"], job["repo"]) == (
        "delete", account, "new-name", SAMPLE)


def test_whoever_takes_a_freed_login_gets_nothing_of_it(renaming_site, github):
    site = renaming_site
    first = site.browser()
    first.sign_in("old-name")
    start(first)
    [account] = ids_of(site, "old-name")
    name = give_vm(site, account, "old-name")
    stand_in.rename_user(github.config, "old-name", "new-name")

    taker = site.browser()
    taker.sign_in("old-name")  # a new GitHub account, with the login set free
    # (the app last saw account 1 as old-name too: it has not signed in since the rename)
    [other] = set(ids_of(site, "old-name")) - {account}
    home = taker.get("/").text
    assert "is not allowed to start VMs" in home  # allowed_logins named the other account
    assert name not in home
    register(taker)  # now it may start VMs of its own
    home = taker.get("/").text
    assert name not in home and SAMPLE not in home.split("<form")[0]
    assert taker.get(f"/vm/{name}").status_code == 404  # cannot open it
    assert at_vm(site, name, "/proxy/auth", "forged-pass").status_code == 401
    assert taker.post("/VM_delete", {"csrf": taker.csrf()}).status_code == 303
    delete = site.jobs()[-1]
    assert (delete["github_id"], delete["repo"]) == (other, "")  # nothing of the VM's
    with site.conn() as conn:
        assert db.vm_of(conn, account)["name"] == name  # still the first account's
        conn.execute("UPDATE jobs SET state = 'succeeded', finished = ? WHERE github_id = ?",
                     (db.now(), other))
    start(taker)
    own = site.jobs()[-1]
    assert (own["action"], own["github_id"]) == ("start", other)


def test_a_block_by_login_before_a_rename_still_applies(make_site, github):
    site = make_site(blocked_logins=("old-name",))
    first = site.browser()
    first.sign_in("old-name")
    register(first)
    assert "is blocked on this site" in first.get("/").text
    stand_in.rename_user(github.config, "old-name", "new-name")
    again = site.browser()
    again.sign_in("new-name")
    assert "is blocked on this site" in again.get("/").text
    assert again.post("/VM_start", {"giturl": SAMPLE, "csrf": again.csrf()}).status_code == 403
    taker = site.browser()
    taker.sign_in("old-name")  # another account: the block is not its
    page = taker.get("/").text
    assert "blocked" not in page and "is not allowed to start VMs" in page
    assert site.jobs() == []


def test_a_block_of_a_login_never_seen_binds_it_through_github(make_site, github):
    """The worker's upkeep asks GitHub who holds the rules' logins not seen yet: renaming
    the account before its first sign-in does not escape the block."""
    site = make_site(blocked_logins=("old-name",))
    stand_in.approve(site.browser().start_sign_in(), "old-name")  # on GitHub only
    with site.conn() as conn:
        users.upkeep(conn, site.config)
    stand_in.rename_user(github.config, "old-name", "new-name")
    browser = site.browser()
    browser.sign_in("new-name")
    assert "is blocked on this site" in browser.get("/").text


def test_a_block_by_account_id_applies_whatever_the_login(make_site, github):
    site = make_site(allowed_logins=("carol",))
    browser = site.browser()
    browser.sign_in("carol")
    [account] = ids_of(site, "carol")
    blocked = make_site(allowed_logins=("carol",), blocked_logins=(account,))
    other = blocked.browser()
    other.sign_in("carol")
    assert "is blocked on this site" in other.get("/").text


@pytest.mark.parametrize("login", ["legacy-", "two--hyphens", "x-"])
def test_a_legacy_login_signs_in_starts_and_deletes(make_site, login):
    site = make_site(allowed_logins=(login,))
    browser = site.browser()
    assert browser.sign_in(login) == site.url + "/"
    assert f"Signed in as <strong>{login}</strong>" in browser.get("/").text
    start(browser)
    [account] = ids_of(site, login)
    give_vm(site, account, login)
    assert browser.post("/VM_delete", {"csrf": browser.csrf()}).status_code == 303
    assert [(job["action"], job["login"]) for job in site.jobs()] == [
        ("start", login), ("delete", login)]


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_two_sign_ins_in_one_browser_both_succeed(site, order):
    browser = site.browser()
    targets = ["/VM_delete", f"/register/{REGISTRATION_SECRET}"]
    started = [browser.start_sign_in(target) for target in targets]
    backs = [sign_in(url, "alice") for url in started]
    for index in order:
        answer = browser.http.get(backs[index], allow_redirects=False, timeout=10)
        assert answer.status_code == 303, answer.text
        assert answer.headers["Location"] == site.url + targets[index]
        assert "Signed in as <strong>alice</strong>" in browser.get("/").text
    assert not [c for c in browser.http.cookies if c.name.startswith(pending.PREFIX)]


def test_a_browser_keeps_at_most_five_sign_ins_under_way(site):
    browser = site.browser()
    started = [browser.start_sign_in() for _ in range(7)]
    assert len([c for c in browser.http.cookies if c.name.startswith(pending.PREFIX)]) == 5
    backs = [sign_in(url, "alice") for url in started]
    statuses = [browser.http.get(back, allow_redirects=False, timeout=10).status_code
                for back in backs]
    assert statuses == [400, 400, 303, 303, 303, 303, 303]  # the oldest two were dropped


def row_count(site: Site) -> int:
    tables = [row[0] for row in site.sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    return sum(site.sql(f"SELECT count(*) FROM {table}")[0][0]  # noqa: S608
               for table in tables)


def test_anonymous_visits_write_nothing(site):
    before = row_count(site)
    browser = site.browser()
    for _ in range(100):
        browser.http.cookies.clear()  # a new visitor each time
        answer = browser.get("/VM_start", params={"giturl": SAMPLE})
        assert answer.status_code == 302
    for path in ("/", "/VM_delete", "/auth/login", f"/register/{REGISTRATION_SECRET}"):
        assert browser.get(path).status_code in (200, 302)
    assert row_count(site) == before == 0


def test_membership_is_read_again_after_a_while(make_site):
    site = make_site(allowed_orgs=("acme",), membership_minutes=15)
    browser = site.browser()
    browser.sign_in("erin", "acme")
    assert "/VM_start" in browser.get("/").text
    [session] = site.sql("SELECT expires, member_until FROM sessions")
    assert session["member_until"] < session["expires"]
    site.sql("UPDATE sessions SET member_until = '2000-01-01T00:00:00.000000Z'")
    # a form sent now is refused until GitHub says again; a page goes through GitHub again
    refused = browser.post("/VM_start", {"giturl": SAMPLE, "csrf": _csrf_of(site)})
    assert refused.status_code == 403 and "checked with GitHub again" in refused.text
    answer = browser.get("/")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(site.config.github_authorize_url)
    # erin left the organization in the meantime: no longer admitted
    assert browser.come_back(answer.headers["Location"], "erin", "") == site.url + "/"
    assert "is not allowed to start VMs" in browser.get("/").text
    assert site.sql("SELECT count(*) FROM sessions")[0][0] == 1  # the old one ended


def _csrf_of(site: Site) -> str:
    return site.sql("SELECT csrf FROM sessions")[0][0]


def test_a_very_long_next_comes_back_to_the_home_page(site):
    browser = site.browser()
    long_ref = "a" * 2000
    answer = browser.get("/VM_start", params={"giturl": SAMPLE, "ref": long_ref})
    assert answer.status_code == 302
    assert max(len(c.value) for c in browser.http.cookies) < 4000
    assert browser.come_back(answer.headers["Location"], "alice") == site.url + "/"
