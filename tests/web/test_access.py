"""Who may start VMs: nobody by default; the registration link, the allowed logins,
organizations and teams; the blocked list wins."""

import pytest

from tests.web.conftest import REGISTRATION_SECRET, SAMPLE, forms


def can_start(browser) -> bool:
    """The start form is offered, and a start is accepted."""
    page = browser.get("/")
    if "/VM_start" not in forms(page.text):
        return False
    answer = browser.post("/VM_start", {"giturl": SAMPLE, "csrf": browser.csrf()})
    return answer.status_code == 303


def assert_refused(browser, site, phrase: str) -> None:
    page = browser.get("/")
    assert page.status_code == 200
    assert 'role="alert"' in page.text and phrase in page.text
    assert "/VM_start" not in forms(page.text)
    confirm = browser.get("/VM_start", params={"giturl": SAMPLE})
    assert confirm.status_code == 403 and phrase in confirm.text
    start = browser.post("/VM_start", {"giturl": SAMPLE, "csrf": browser.csrf()})
    assert start.status_code == 403 and phrase in start.text
    delete = browser.post("/VM_delete", {"csrf": browser.csrf()})
    assert delete.status_code == 403
    assert site.jobs() == []


def test_nobody_is_allowed_by_default(make_site):
    site = make_site()
    browser = site.browser()
    browser.sign_in("alice")
    assert_refused(browser, site, "is not allowed to start VMs on this site")
    assert "registration link" in browser.get("/").text


def test_registration_link(make_site):
    site = make_site()
    browser = site.browser()
    browser.sign_in("carol")
    assert not can_start(browser)

    for wrong in ("wrong", REGISTRATION_SECRET[:-1], REGISTRATION_SECRET + "x",
                  REGISTRATION_SECRET.upper(), "%00", "é"):
        assert browser.get(f"/register/{wrong}").status_code == 404
        answer = browser.post(f"/register/{wrong}", {"csrf": browser.csrf()})
        assert answer.status_code == 404
    assert site.sql("SELECT registered FROM users")[0][0] == 0

    page = browser.get(f"/register/{REGISTRATION_SECRET}")
    assert page.status_code == 200
    assert site.sql("SELECT registered FROM users")[0][0] == 0  # a GET changes nothing
    action = f"/register/{REGISTRATION_SECRET}"
    assert forms(page.text)[action]["csrf"]
    assert browser.post(action).status_code == 403  # without the CSRF token
    answer = browser.post(action, {"csrf": browser.csrf()})
    assert answer.status_code == 303 and answer.headers["Location"] == site.url + "/"
    assert site.sql("SELECT registered FROM users")[0][0] == 1
    assert "already registered" in browser.get(action).text
    assert can_start(browser)

    other = site.browser()  # registration belongs to the account, not the browser
    other.sign_in("carol")
    page = other.get("/").text
    assert "not allowed" not in page and "Current job" in page


def test_registration_link_signs_in_first(make_site):
    site = make_site()
    browser = site.browser()
    back = browser.sign_in("dave", path=f"/register/{REGISTRATION_SECRET}")
    assert back == f"{site.url}/register/{REGISTRATION_SECRET}"
    # the secret travelled only in the app's own redirect, not through GitHub
    assert browser.get("/register/wrong").status_code == 404


def test_a_wrong_registration_link_does_not_start_a_sign_in(make_site):
    site = make_site()
    answer = site.browser().get("/register/wrong")
    assert answer.status_code == 404
    assert site.sql("SELECT * FROM sessions") == []


def test_allowed_logins_ignore_case(make_site):
    site = make_site(allowed_logins=("Alice",))
    alice, bob = site.browser(), site.browser()
    alice.sign_in("alice")
    bob.sign_in("bob")
    assert can_start(alice)
    assert not can_start(bob)


@pytest.mark.parametrize("allowed_orgs, orgs, allowed", [
    (("acme",), "acme", True),
    (("acme",), "ACME", True),
    (("acme",), "acme:developers", True),  # a team member is a member of the org
    (("acme",), "widgets", False),
    (("acme",), "", False),
    (("acme:developers",), "acme:developers", True),
    (("acme:Developers",), "acme:developers", True),
    (("acme:developers",), "acme", False),
    (("acme:developers",), "acme:ops", False),
    (("acme:developers",), "widgets:developers", False),
    (("widgets", "acme:ops"), "acme:ops", True),
])
def test_organizations_and_teams(make_site, allowed_orgs, orgs, allowed):
    site = make_site(allowed_orgs=allowed_orgs)
    browser = site.browser()
    browser.sign_in("erin", orgs)
    assert can_start(browser) is allowed


def test_blocked_wins_over_the_list(make_site):
    site = make_site(allowed_logins=("alice",), blocked_logins=("ALICE",))
    browser = site.browser()
    browser.sign_in("alice")
    assert_refused(browser, site, "is blocked on this site")


def test_blocked_wins_over_an_organization(make_site):
    site = make_site(allowed_orgs=("acme",), blocked_logins=("alice",))
    browser = site.browser()
    browser.sign_in("alice", "acme")
    assert_refused(browser, site, "is blocked")


def test_blocked_wins_over_registration(make_site):
    site = make_site(blocked_logins=("alice",))
    browser = site.browser()
    browser.sign_in("alice")
    action = f"/register/{REGISTRATION_SECRET}"
    browser.post(action, {"csrf": browser.csrf()})
    assert site.sql("SELECT registered FROM users")[0][0] == 1
    assert_refused(browser, site, "is blocked")


def test_a_not_allowed_user_cannot_see_jobs_pages_of_others(make_site):
    site = make_site(allowed_logins=("alice",))
    alice, mallory = site.browser(), site.browser()
    alice.sign_in("alice")
    mallory.sign_in("mallory")
    alice.post("/VM_start", {"giturl": SAMPLE, "csrf": alice.csrf()})
    [job] = site.jobs()
    assert mallory.get(f"/jobs/{job['id']}").status_code == 404
