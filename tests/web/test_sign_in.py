"""Sign-in with GitHub (the stand-in): state, PKCE, exact redirect_uri, a new session id, the
token dropped; sessions, logout, forged cookies, and where `next` may send the browser."""

import base64
import hashlib
import logging
import secrets

import pytest

from tests.helpers import Form, sign_in
from tests.web.conftest import SAMPLE, forms, query
from web import auth, pending
from web.auth import safe_next
from web.db import parse_time


def pending_cookies(browser) -> dict[str, str]:
    return {cookie.name: cookie.value for cookie in browser.http.cookies
            if cookie.name.startswith(pending.PREFIX)}


def test_sign_in_end_to_end(make_site, caplog):
    caplog.set_level(logging.DEBUG)
    site = make_site(allowed_logins=("alice",))
    browser = site.browser()

    authorize = browser.start_sign_in()
    asked = query(authorize)
    assert asked["client_id"] == site.config.github_client_id
    assert asked["redirect_uri"] == site.url + "/auth/callback"
    assert asked["response_type"] == "code"
    assert asked["code_challenge_method"] == "S256"
    assert "scope" not in asked  # no organizations configured: public information only
    assert browser.cookie is None and site.sql("SELECT * FROM sessions") == []
    [(name, value)] = pending_cookies(browser).items()
    assert name == pending.cookie_name(site.config, asked["state"])
    started = pending.unpack(site.config, value)
    assert secrets.compare_digest(started.state, asked["state"])
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(started.verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == asked["code_challenge"]
    assert len(started.state) >= 43 and len(started.verifier) >= 43

    assert browser.come_back(authorize, "alice") == site.url + "/"
    assert pending_cookies(browser) == {}  # used once
    [session] = site.sql("SELECT * FROM sessions WHERE id = ?", browser.cookie)
    [user] = site.sql("SELECT * FROM users")
    assert user["login"] == "alice" and user["github_id"] >= 1000000
    assert session["github_id"] == user["github_id"]

    page = browser.get("/")
    assert "Signed in as <strong>alice</strong>" in page.text
    assert "/VM_start" in forms(page.text)

    # the access token went nowhere: not in the database, cookies or logs
    dump = "\n".join(str(tuple(row)) for table in ("users", "sessions", "jobs", "vms")
                     for row in site.sql(f"SELECT * FROM {table}"))  # noqa: S608
    assert "gho_" not in dump
    assert all("gho_" not in cookie.value for cookie in browser.http.cookies)
    assert "gho_" not in caplog.text
    assert "signed in: alice" in caplog.text


def test_the_token_stays_out_of_the_shared_headers(make_site):
    """oauthlib writes the token into the headers dict it is given: the app gives a copy."""
    site = make_site(allowed_orgs=("acme", "acme:devs"))
    site.browser().sign_in("alice", "acme")
    assert "Authorization" not in auth.API_HEADERS
    assert dict(auth.API_HEADERS) == {"Accept": "application/vnd.github+json",
                                      "X-GitHub-Api-Version": "2022-11-28"}


def test_session_cookie_attributes(site):
    browser = site.browser()
    answer = browser.get("/auth/login")
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(pending.PREFIX)
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Path=/" in cookie
    assert "Max-Age=600" in cookie
    assert "Secure" not in cookie  # plain HTTP on 127.0.0.1 only
    back = browser.http.get(sign_in(answer.headers["Location"], "alice"), timeout=10,
                            allow_redirects=False)
    assert back.status_code == 303 and back.headers["Location"] == site.url + "/"
    cookie = next(value for value in back.raw.headers.getlist("Set-Cookie")
                  if value.startswith("ssc_session="))
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Path=/" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(value) == 43  # secrets.token_urlsafe(32), nothing else


@pytest.mark.parametrize("damage", [
    lambda value: value[:-2] + ("AA" if not value.endswith("AA") else "BB"),  # the MAC
    lambda value: "e30" + value[value.index("."):],  # another payload
    lambda value: value.replace(".", ""),
    lambda value: "",
])
def test_a_forged_sign_in_cookie_is_refused(site, damage):
    browser = site.browser()
    authorize = browser.start_sign_in()
    [(name, value)] = pending_cookies(browser).items()
    browser.http.cookies.set(name, damage(value))
    back = sign_in(authorize, "alice")
    assert browser.http.get(back, allow_redirects=False, timeout=10).status_code == 400
    assert site.sql("SELECT * FROM users") == []


def test_read_org_is_asked_only_for_organizations(make_site):
    site = make_site(allowed_orgs=("acme",))
    assert query(site.browser().start_sign_in())["scope"] == "read:org"


def test_a_wrong_state_is_refused(site):
    browser = site.browser()
    authorize = browser.start_sign_in()
    back = sign_in(authorize, "alice")
    forged = back.replace(f"state={query(back)['state']}", "state=forged")
    answer = browser.http.get(forged, allow_redirects=False, timeout=10)
    assert answer.status_code == 400
    assert "could not be matched" in answer.text
    assert site.sql("SELECT * FROM sessions") == []
    assert site.sql("SELECT * FROM users") == []
    # a forged answer does not spoil the sign-in under way (JupyterHub PR 1439)
    assert browser.http.get(back, allow_redirects=False, timeout=10).status_code == 303
    assert "Signed in as" in browser.get("/").text


def test_a_callback_in_another_browser_is_refused(site):
    back = sign_in(site.browser().start_sign_in(), "alice")
    other = site.browser()
    answer = other.http.get(back, allow_redirects=False, timeout=10)
    assert answer.status_code == 400
    assert "Signed in as" not in other.get("/").text


def test_a_callback_is_used_once(site):
    browser = site.browser()
    back = sign_in(browser.start_sign_in(), "alice")
    assert browser.http.get(back, allow_redirects=False, timeout=10).status_code == 303
    signed_in = browser.cookie
    assert browser.http.get(back, allow_redirects=False, timeout=10).status_code == 400
    assert browser.cookie == signed_in  # the replay changed nothing


def test_cancelling_on_github(site):
    browser = site.browser()
    authorize = browser.start_sign_in()
    page = browser.http.get(authorize, timeout=10)
    form = Form(page.text)
    github_origin = authorize.split("/github/")[0]
    denied = browser.http.post(github_origin + form.action, data=form.fields | {"deny": "1"},
                               allow_redirects=False, timeout=10)
    answer = browser.http.get(denied.headers["Location"], allow_redirects=False, timeout=10)
    assert answer.status_code == 403
    assert "cancelled" in answer.text
    assert "Signed in as" not in browser.get("/").text


def test_next_brings_the_user_back(site):
    browser = site.browser()
    target = f"/VM_start?giturl={SAMPLE}"
    assert browser.sign_in("alice", next=target) == site.url + target


def test_a_page_for_signed_in_users_signs_in_first_and_comes_back(site):
    browser = site.browser()
    authorize = browser.start_sign_in("/VM_start", giturl=SAMPLE, ref="main")
    back = browser.come_back(authorize, "alice")
    assert back.startswith(site.url + "/VM_start?")
    assert query(back) == {"giturl": SAMPLE, "ref": "main"}
    assert browser.get(back[len(site.url):]).status_code == 200


@pytest.mark.parametrize("next_value", [
    "//evil.example/", "///evil.example", "/\\evil.example", "\\\\evil.example",
    "https://evil.example/", "http:evil.example", "evil.example", "javascript:alert(1)",
    "/\tevil", " /x", "/x\r\nLocation: https://evil.example", "/é", "",
])
def test_an_open_redirect_is_refused(site, next_value):
    browser = site.browser()
    assert browser.sign_in("alice", next=next_value) == site.url + "/"


def test_next_for_a_signed_in_user_is_checked_too(alice, site):
    answer = alice.get("/auth/login", params={"next": "//evil.example"})
    assert answer.status_code == 303
    assert answer.headers["Location"] == site.url + "/"
    answer = alice.get("/auth/login", params={"next": "/jobs"})
    assert answer.headers["Location"] == site.url + "/jobs"


@pytest.mark.parametrize("value, expected", [
    ("/", "/"), ("/VM_start?giturl=https://github.com/a/b", "/VM_start?giturl=https://github.com/a/b"),
    ("/a/b?c=d#e", "/a/b?c=d#e"), ("//evil", "/"), ("/\\evil", "/"), ("https://evil/", "/"),
    ("", "/"), (None, "/"), ("/" + "a" * 5000, "/"), ("/\x00", "/"),
])
def test_safe_next(value, expected):
    assert safe_next(value) == expected


def test_logout(alice, site):
    cookie = alice.cookie
    csrf = alice.csrf()
    assert alice.post("/auth/logout").status_code == 403  # no token: refused
    assert "Signed in as" in alice.get("/").text
    answer = alice.post("/auth/logout", {"csrf": csrf})
    assert answer.status_code == 303 and answer.headers["Location"] == site.url + "/"
    assert "ssc_session=" in answer.headers["Set-Cookie"]
    assert site.sql("SELECT * FROM sessions WHERE id = ?", cookie) == []
    again = site.browser()
    again.http.cookies.set("ssc_session", cookie)
    assert "Signed in as" not in again.get("/").text


@pytest.mark.parametrize("forged", [
    secrets.token_urlsafe(32), "x", "' OR 1=1 --", "a" * 5000, "../../etc/passwd",
])
def test_a_forged_session_cookie_is_signed_out(alice, site, forged):
    browser = site.browser()
    browser.http.cookies.set("ssc_session", forged)
    page = browser.get("/")
    assert page.status_code == 200
    assert "Sign in with GitHub" in page.text and "Signed in as" not in page.text
    answer = browser.post("/VM_start", {"giturl": SAMPLE, "csrf": alice.csrf()})
    assert answer.status_code == 403
    assert site.jobs() == []


def test_an_expired_session_is_signed_out(alice, site):
    site.sql("UPDATE sessions SET expires = '2000-01-01T00:00:00.000000Z'")
    assert "Signed in as" not in alice.get("/").text
    assert site.sql("SELECT * FROM sessions WHERE github_id IS NOT NULL") == []


def test_session_expiry_follows_the_setting(make_site):
    site = make_site(allowed_logins=("alice",), session_hours=2)
    browser = site.browser()
    browser.sign_in("alice")
    [row] = site.sql("SELECT created, expires FROM sessions")
    lifetime = parse_time(row["expires"]) - parse_time(row["created"])
    assert lifetime.total_seconds() == 2 * 3600


def test_logins_follow_github_and_ids_stay(site):
    browser = site.browser()
    browser.sign_in("alice")
    first = site.user_id("alice")
    again = site.browser()
    again.sign_in("Alice")  # the same GitHub account (logins ignore case): the same user row
    assert [tuple(row) for row in site.sql("SELECT github_id, login FROM users")] == [
        (first, "alice")]


def test_a_stray_callback_does_not_sign_a_user_out(alice, site):
    answer = alice.get("/auth/callback", params={"code": "x", "state": "y"})
    assert answer.status_code == 400
    assert "Signed in as" in alice.get("/").text
