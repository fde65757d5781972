"""Every state change is a POST carrying the session's CSRF token, from this site."""

import pytest

from tests.web.conftest import REGISTRATION_SECRET, SAMPLE

POSTS = [("/VM_start", {"giturl": SAMPLE}), ("/VM_run", {"giturl": SAMPLE}), ("/VM_delete", {}),
         (f"/register/{REGISTRATION_SECRET}", {}), ("/auth/logout", {})]


@pytest.mark.parametrize("path, data", POSTS)
def test_a_post_without_the_token_is_refused(alice, site, path, data):
    answer = alice.post(path, data)
    assert answer.status_code == 403
    assert "security token" in answer.text
    assert site.jobs() == []
    assert "Signed in as" in alice.get("/").text  # logout did not happen either


@pytest.mark.parametrize("path, data", POSTS)
def test_a_post_with_a_wrong_token_is_refused(alice, site, path, data):
    csrf = alice.csrf()
    for wrong in ("", "x", csrf[:-1], csrf + "x", csrf.upper(), "é" * 43):
        assert alice.post(path, data | {"csrf": wrong}).status_code == 403
    assert site.jobs() == []


def test_another_sessions_token_is_refused(alice, bob, site):
    answer = alice.post("/VM_start", {"giturl": SAMPLE, "csrf": bob.csrf()})
    assert answer.status_code == 403
    assert site.jobs() == []


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://127.0.0.1"},  # another port is another origin
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
])
def test_a_cross_site_post_is_refused_even_with_the_token(alice, site, headers):
    answer = alice.post("/VM_start", {"giturl": SAMPLE, "csrf": alice.csrf()}, headers=headers)
    assert answer.status_code == 403
    assert "other sites" in answer.text
    assert site.jobs() == []


def test_a_same_origin_post_is_accepted(alice, site):
    headers = {"Origin": site.url, "Sec-Fetch-Site": "same-origin"}
    answer = alice.post("/VM_start", {"giturl": SAMPLE, "csrf": alice.csrf()}, headers=headers)
    assert answer.status_code == 303
    assert len(site.jobs()) == 1


def test_the_token_does_not_change_within_a_session_but_with_a_new_one(site):
    browser = site.browser()
    browser.sign_in("alice")
    first = browser.csrf()
    assert browser.csrf() == first
    browser.post("/auth/logout", {"csrf": first})
    browser.sign_in("alice")
    assert browser.csrf() != first


def test_get_never_changes_anything(alice, site):
    for path in ("/", "/VM_start", "/VM_run", "/VM_delete", f"/register/{REGISTRATION_SECRET}",
                 "/healthz"):
        alice.get(path, params={"giturl": SAMPLE})
    assert site.jobs() == []
    assert site.sql("SELECT registered FROM users")[0][0] == 0
