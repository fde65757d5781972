"""The GitHub stand-in: an OAuth app's sign-in flow, and the API calls that follow it."""

import base64
import os
import socket
import stat
import threading
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from bottle import Bottle
from oauthlib.oauth2 import MismatchingStateError, OAuth2Error
from requests_oauthlib import OAuth2Session
from waitress import create_server

from localcloud import github
from localcloud.config import Config
from localcloud.service import Front
from tests.helpers import Form, sign_in

CALLBACK = "http://127.0.0.1:8080/auth/callback"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def oauthlib_over_http(monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # it wants https otherwise
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@pytest.fixture
def config(tmp_path) -> Config:
    return Config(var_dir=tmp_path / "var", port=free_port())


@pytest.fixture
def serve(config):
    """serve() (re)starts the GitHub stand-in, mounted as localcloud's front mounts it: a
    second call is a new life of the service on the same var_dir."""
    current = []

    def start() -> None:
        current[:] = [Front({"/github": github.make_app(config), "": Bottle()}, Counter())]

    server = create_server(lambda environ, respond: current[0](environ, respond),
                           host="127.0.0.1", port=config.port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    yield start
    server.close()


@pytest.fixture
def base(config, serve) -> str:
    serve()
    assert config.github_base_url == f"http://127.0.0.1:{config.port}/github"
    return config.github_base_url


@pytest.fixture
def oauth_app(config) -> tuple[str, str]:
    return github.register_oauth_app(config, CALLBACK)


def session(oauth_app, scope=("read:org",), redirect_uri=CALLBACK) -> OAuth2Session:
    return OAuth2Session(oauth_app[0], redirect_uri=redirect_uri, scope=list(scope) or None,
                         pkce="S256")


def authorized(base, oauth_app, scope=("read:org",), login="alice", orgs="") -> OAuth2Session:
    client = session(oauth_app, scope)
    url, _ = client.authorization_url(f"{base}/login/oauth/authorize")
    back = sign_in(url, login, orgs)
    client.fetch_token(f"{base}/login/oauth/access_token", client_secret=oauth_app[1],
                       authorization_response=back)
    return client


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


# --- the whole flow ------------------------------------------------------------------------


def test_authorization_code_flow_with_pkce(base, oauth_app):
    client = session(oauth_app)
    url, state = client.authorization_url(f"{base}/login/oauth/authorize")
    assert "code_challenge_method=S256" in url

    back = sign_in(url, "alice", "acme:developers, acme:ops, widgets")
    assert back.startswith(CALLBACK + "?")
    assert query(back)["state"] == state
    assert len(query(back)["code"]) == 20

    token = client.fetch_token(f"{base}/login/oauth/access_token",
                               client_secret=oauth_app[1], authorization_response=back)
    assert token["access_token"].startswith("gho_")
    assert token["token_type"] == "bearer"
    assert token["scope"] == ["read:org"]

    user = client.get(f"{base}/api/v3/user", timeout=10)
    assert user.status_code == 200
    assert user.headers["Content-Type"].startswith("application/json")
    assert user.headers["X-OAuth-Scopes"] == "read:org"
    me = user.json()
    assert me["login"] == "alice"
    assert me["type"] == "User"
    assert isinstance(me["id"], int)
    assert base64.b64decode(me["node_id"]) == f"04:User{me['id']}".encode()
    assert me["html_url"] == f"{base}/alice"
    assert me["url"] == f"{base}/api/v3/users/alice"
    assert requests.get(me["avatar_url"], timeout=10).headers["Content-Type"] == "image/svg+xml"

    orgs = client.get(f"{base}/api/v3/user/orgs", timeout=10).json()
    assert [org["login"] for org in orgs] == ["acme", "widgets"]
    assert all(isinstance(org["id"], int) for org in orgs)

    teams = client.get(f"{base}/api/v3/user/teams", timeout=10).json()
    assert sorted((team["organization"]["login"], team["slug"]) for team in teams) == [
        ("acme", "developers"), ("acme", "ops")]
    assert {team["organization"]["id"] for team in teams} == {orgs[0]["id"]}

    membership = client.get(f"{base}/api/v3/user/memberships/orgs/acme", timeout=10)
    assert membership.json()["state"] == "active"
    assert client.get(f"{base}/api/v3/user/memberships/orgs/widgetz",
                      timeout=10).status_code == 404


def test_ids_are_stable_and_tokens_survive_a_restart(base, oauth_app, serve):
    first = authorized(base, oauth_app, login="alice", orgs="acme")
    alice = first.get(f"{base}/api/v3/user", timeout=10).json()
    acme = first.get(f"{base}/api/v3/user/orgs", timeout=10).json()[0]
    bob = authorized(base, oauth_app, login="bob", orgs="acme")
    assert bob.get(f"{base}/api/v3/user", timeout=10).json()["id"] != alice["id"]
    assert bob.get(f"{base}/api/v3/user/orgs", timeout=10).json()[0]["id"] == acme["id"]

    serve()  # a new life of the service on the same var_dir
    assert first.get(f"{base}/api/v3/user", timeout=10).json()["id"] == alice["id"]
    again = authorized(base, oauth_app, login="Alice")  # logins ignore case, like GitHub's
    assert again.get(f"{base}/api/v3/user", timeout=10).json() | {"updated_at": None} == (
        alice | {"updated_at": None})
    assert again.get(f"{base}/api/v3/user/orgs", timeout=10).json() == []  # left acme


def test_profile_fields_are_optional(base, oauth_app):
    client = session(oauth_app, scope=())
    url, _ = client.authorization_url(f"{base}/login/oauth/authorize")
    back = sign_in(url, "carol", name="Carol C", email="carol@example.org")
    client.fetch_token(f"{base}/login/oauth/access_token", client_secret=oauth_app[1],
                       authorization_response=back)
    me = client.get(f"{base}/api/v3/user", timeout=10).json()
    assert (me["name"], me["email"]) == ("Carol C", "carol@example.org")
    assert authorized(base, oauth_app, scope=(), login="dave").get(
        f"{base}/api/v3/user", timeout=10).json()["email"] is None


def test_private_memberships_need_read_org(base, oauth_app):
    client = authorized(base, oauth_app, scope=("user:email",), orgs="acme:developers")
    assert client.token["scope"] == ["user:email"]
    assert client.get(f"{base}/api/v3/user", timeout=10).status_code == 200
    assert client.get(f"{base}/api/v3/user/orgs", timeout=10).json() == []
    teams = client.get(f"{base}/api/v3/user/teams", timeout=10)
    assert teams.status_code == 403
    assert "read:org" in teams.json()["message"]


def test_scopes_come_back_comma_separated_like_github(base, oauth_app, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")  # as for GitHub itself
    client = authorized(base, oauth_app, scope=("read:org", "user:email", "no-such-scope"))
    assert client.token["scope"] == ["read:org,user:email"]


def test_token_response_formats(base, oauth_app):
    def exchange(accept: str | None) -> requests.Response:
        client = session(oauth_app)
        url, _ = client.authorization_url(f"{base}/login/oauth/authorize")
        code = query(sign_in(url))["code"]
        headers = {"Accept": accept} if accept else {}
        return requests.post(f"{base}/login/oauth/access_token", headers=headers, timeout=10,
                             data={"client_id": oauth_app[0], "client_secret": oauth_app[1],
                                   "code": code, "code_verifier": client._code_verifier})

    form = exchange(None)
    assert form.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    fields = parse_qs(form.text)
    assert fields["token_type"] == ["bearer"] and fields["scope"] == ["read:org"]
    assert fields["access_token"][0].startswith("gho_")

    json = exchange("application/json").json()
    assert set(json) == {"access_token", "token_type", "scope"}

    xml = exchange("application/xml")
    assert xml.text.startswith("<OAuth>") and "<token_type>bearer</token_type>" in xml.text


def test_api_accepts_bearer_and_token_schemes(base, oauth_app):
    token = authorized(base, oauth_app).token["access_token"]
    for scheme in ("Bearer", "bearer", "token", "Token"):
        answer = requests.get(f"{base}/api/v3/user", timeout=10,
                              headers={"Authorization": f"{scheme} {token}"})
        assert answer.status_code == 200, scheme


# --- what is refused -----------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [
    None, "Bearer gho_nonsense", "token ", "Basic YWxpY2U6c2VjcmV0", "gho_nonsense"])
def test_api_without_a_valid_token_is_401(base, oauth_app, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    for path in ("/user", "/user/orgs", "/user/teams"):
        answer = requests.get(f"{base}/api/v3{path}", headers=headers, timeout=10)
        assert answer.status_code == 401
        body = answer.json()
        assert body["message"] in ("Bad credentials", "Requires authentication")
        assert body["status"] == "401" and "documentation_url" in body


def test_bad_token_says_bad_credentials(base):
    answer = requests.get(f"{base}/api/v3/user", timeout=10,
                          headers={"Authorization": "Bearer gho_0123456789"})
    assert answer.json()["message"] == "Bad credentials"


def test_unknown_api_path_is_json_404(base):
    answer = requests.get(f"{base}/api/v3/no/such/thing", timeout=10)
    assert answer.status_code == 404
    assert answer.json()["message"] == "Not Found"


def test_unknown_client_id_is_404(base, oauth_app):
    answer = requests.get(f"{base}/login/oauth/authorize", timeout=10,
                          params={"client_id": "Ov23linothing", "redirect_uri": CALLBACK})
    assert answer.status_code == 404


@pytest.mark.parametrize("redirect_uri", [
    "http://127.0.0.1:8080/elsewhere",
    "http://127.0.0.1:8080/auth",
    "http://127.0.0.1:8080/auth/callbackx",
    "http://127.0.0.1:8080/auth/callback/../../evil",
    "https://127.0.0.1:8080/auth/callback",
    "http://evil.example/auth/callback",
    "http://127.0.0.2:8080/auth/callback",
])
def test_redirect_uri_mismatch_goes_to_the_registered_callback(base, oauth_app, redirect_uri):
    client = session(oauth_app, redirect_uri=redirect_uri)
    url, state = client.authorization_url(f"{base}/login/oauth/authorize")
    answer = requests.get(url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    assert query(location)["error"] == "redirect_uri_mismatch"
    assert query(location)["state"] == state
    assert "code" not in query(location)


@pytest.mark.parametrize("redirect_uri", [
    CALLBACK, CALLBACK + "/deeper", CALLBACK + "?next=%2Fhome",
    "http://127.0.0.1:9999/auth/callback",  # a loopback callback's port may differ
])
def test_redirect_uri_under_the_callback_is_accepted(base, oauth_app, redirect_uri):
    client = session(oauth_app, redirect_uri=redirect_uri)
    url, state = client.authorization_url(f"{base}/login/oauth/authorize")
    back = sign_in(url)
    assert back.startswith(redirect_uri)
    assert query(back)["state"] == state


def test_github_documented_redirect_rules():
    callback = "http://example.com/path"
    for good in ("http://example.com/path", "http://example.com/path/subdir/other",
                 "http://oauth.example.com/path", "http://oauth.example.com/path/subdir/other"):
        assert github.redirect_uri_allowed(good, callback), good
    for bad in ("http://example.com/bar", "http://example.com/", "http://example.com:8080/path",
                "http://oauth.example.com:8080/path", "http://example.org"):
        assert not github.redirect_uri_allowed(bad, callback), bad
    assert github.redirect_uri_allowed("http://127.0.0.1:1234/path", "http://127.0.0.1/path")


def test_no_redirect_uri_means_the_callback(base, oauth_app):
    client = OAuth2Session(oauth_app[0], pkce="S256")
    url, _ = client.authorization_url(f"{base}/login/oauth/authorize")
    back = sign_in(url)
    assert back.startswith(CALLBACK + "?code=")
    client.fetch_token(f"{base}/login/oauth/access_token", client_secret=oauth_app[1],
                       authorization_response=back)
    assert client.get(f"{base}/api/v3/user", timeout=10).status_code == 200


def test_a_forged_state_is_caught_by_the_client(base, oauth_app):
    client = session(oauth_app)
    url, state = client.authorization_url(f"{base}/login/oauth/authorize")
    back = sign_in(url)
    forged = back.replace(f"state={state}", "state=forged")
    with pytest.raises(MismatchingStateError):
        client.fetch_token(f"{base}/login/oauth/access_token", client_secret=oauth_app[1],
                           authorization_response=forged)


def error_of(base, oauth_app, client: OAuth2Session, back: str, **overrides) -> str:
    with pytest.raises(OAuth2Error) as raised:
        client.fetch_token(f"{base}/login/oauth/access_token",
                           **{"client_secret": oauth_app[1], "authorization_response": back}
                           | overrides)
    return raised.value.error


def started(base, oauth_app) -> tuple[OAuth2Session, str]:
    client = session(oauth_app)
    url, _ = client.authorization_url(f"{base}/login/oauth/authorize")
    return client, sign_in(url)


def test_wrong_client_secret_is_refused(base, oauth_app, config):
    client, back = started(base, oauth_app)
    assert error_of(base, oauth_app, client, back, client_secret="0" * 40) == (
        "incorrect_client_credentials")
    _, other_secret = github.register_oauth_app(config, CALLBACK)
    assert error_of(base, oauth_app, client, back, client_secret=other_secret) == (
        "incorrect_client_credentials")
    client.fetch_token(f"{base}/login/oauth/access_token", client_secret=oauth_app[1],
                       authorization_response=back)  # the code was not used up


def test_a_code_is_used_once(base, oauth_app):
    client, back = started(base, oauth_app)
    client.fetch_token(f"{base}/login/oauth/access_token", client_secret=oauth_app[1],
                       authorization_response=back)
    assert error_of(base, oauth_app, client, back) == "bad_verification_code"


def test_an_expired_code_is_refused(base, oauth_app, monkeypatch):
    monkeypatch.setattr(github, "CODE_LIFETIME", 0.0)
    client, back = started(base, oauth_app)
    assert error_of(base, oauth_app, client, back) == "bad_verification_code"


def test_a_made_up_code_is_refused(base, oauth_app):
    client, back = started(base, oauth_app)
    made_up = back.replace(query(back)["code"], "0123456789abcdef0123")
    assert error_of(base, oauth_app, client, made_up) == "bad_verification_code"


def test_a_code_of_another_app_is_refused(base, oauth_app, config):
    _, back = started(base, oauth_app)
    other = github.register_oauth_app(config, CALLBACK)
    thief = OAuth2Session(other[0], redirect_uri=CALLBACK)
    assert error_of(base, other, thief, back, state=None) == "bad_verification_code"


def test_a_wrong_code_verifier_is_refused(base, oauth_app):
    client, back = started(base, oauth_app)
    client._code_verifier = "x" * 43
    assert error_of(base, oauth_app, client, back) == "bad_verification_code"


def test_a_missing_code_verifier_is_refused(base, oauth_app):
    _, back = started(base, oauth_app)
    answer = requests.post(f"{base}/login/oauth/access_token", timeout=10,
                           headers={"Accept": "application/json"},
                           data={"client_id": oauth_app[0], "client_secret": oauth_app[1],
                                 "code": query(back)["code"], "redirect_uri": CALLBACK})
    assert answer.status_code == 200
    assert answer.json()["error"] == "bad_verification_code"


def test_a_different_redirect_uri_at_exchange_is_refused(base, oauth_app):
    client, back = started(base, oauth_app)
    client.redirect_uri = CALLBACK + "/other"
    assert error_of(base, oauth_app, client, back) == "redirect_uri_mismatch"


@pytest.mark.parametrize("pkce", [
    {"code_challenge": "x" * 43, "code_challenge_method": "plain"},  # GitHub takes S256 only
    {"code_challenge": "x" * 43},  # which means plain
    {"code_challenge": "x" * 42, "code_challenge_method": "S256"},
    {"code_challenge_method": "S256"},
])
def test_pkce_other_than_s256_is_refused(base, oauth_app, pkce):
    answer = requests.get(f"{base}/login/oauth/authorize", allow_redirects=False, timeout=10,
                          params={"client_id": oauth_app[0], "state": "s1"} | pkce)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(CALLBACK + "?")
    assert query(answer.headers["Location"])["error"] == "invalid_request"
    assert query(answer.headers["Location"])["state"] == "s1"


def test_without_pkce_the_flow_still_works(base, oauth_app):
    client = OAuth2Session(oauth_app[0], redirect_uri=CALLBACK, scope=["read:org"])
    url, _ = client.authorization_url(f"{base}/login/oauth/authorize")
    back = sign_in(url)
    client.fetch_token(f"{base}/login/oauth/access_token", client_secret=oauth_app[1],
                       authorization_response=back)
    assert client.get(f"{base}/api/v3/user", timeout=10).json()["login"] == "alice"


def test_denying_sends_access_denied(base, oauth_app):
    client = session(oauth_app)
    url, state = client.authorization_url(f"{base}/login/oauth/authorize")
    form = Form(requests.get(url, timeout=10).text)
    answer = requests.post(f"http://127.0.0.1:{urlsplit(base).port}{form.action}",
                           data=form.fields | {"deny": "1"}, allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    back = query(answer.headers["Location"])
    assert back["error"] == "access_denied"
    assert back["error_description"] == "The user has denied your application access."
    assert back["state"] == state
    assert "code" not in back


@pytest.mark.parametrize("login, orgs", [
    ("", ""), ("-alice", ""), ("al ice", ""), ("a" * 40, ""), ("alice", "bad org"),
    ("alice", "acme:"), ("alice", "acme:!!!"),
])
def test_invalid_logins_and_orgs_are_asked_again(base, oauth_app, login, orgs):
    client = session(oauth_app)
    url, _ = client.authorization_url(f"{base}/login/oauth/authorize")
    form = Form(requests.get(url, timeout=10).text)
    answer = requests.post(f"http://127.0.0.1:{urlsplit(base).port}{form.action}",
                           data=form.fields | {"login": login, "orgs": orgs},
                           allow_redirects=False, timeout=10)
    if orgs == "acme:":  # an empty team is just the membership
        assert answer.status_code == 302
        return
    assert answer.status_code == 400
    assert 'role="alert"' in answer.text
    assert Form(answer.text).fields == form.fields


def test_the_page_escapes_what_it_shows(base, oauth_app):
    client = session(oauth_app)
    url, _ = client.authorization_url(f"{base}/login/oauth/authorize",
                                      state='"><script>alert(1)</script>')
    page = requests.get(url, timeout=10).text
    assert "<script>" not in page
    assert Form(page).fields["state"] == '"><script>alert(1)</script>'


# --- OAuth apps ------------------------------------------------------------------------------


def test_registered_apps_are_kept_private(config):
    client_id, secret = github.register_oauth_app(config, CALLBACK)
    apps_file = config.var_dir / "github" / "apps.json"
    assert stat.S_IMODE(os.stat(apps_file).st_mode) == 0o600
    assert github.load_oauth_apps(config) == {client_id: {
        "client_id": client_id, "client_secret": secret, "callback_url": CALLBACK}}


def test_apps_registered_while_running_work_at_once(base, config):
    client_id, secret = github.register_oauth_app(config, CALLBACK)
    client = authorized(base, (client_id, secret))
    assert client.get(f"{base}/api/v3/user", timeout=10).status_code == 200


def test_callback_url_must_be_http(config):
    for bad in ("ftp://example.org/", "/relative", "http:///nohost"):
        with pytest.raises(ValueError):
            github.register_oauth_app(config, bad)


def test_pkce_challenge_matches_rfc_7636_example():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert github._pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_concurrent_sign_ins_get_distinct_ids(base, oauth_app):
    logins = [f"user{n}" for n in range(8)]
    ids: dict[str, int] = {}

    def flow(login: str) -> None:
        client = authorized(base, oauth_app, login=login, orgs="acme:everyone")
        ids[login] = client.get(f"{base}/api/v3/user", timeout=10).json()["id"]

    threads = [threading.Thread(target=flow, args=(login,)) for login in logins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(ids) == logins
    assert len(set(ids.values())) == len(logins)


# --- legacy logins and renames -------------------------------------------------------------


@pytest.mark.parametrize("login", ["legacy-", "two--hyphens", "x-"])
def test_legacy_logins_sign_in(base, oauth_app, login):
    client = authorized(base, oauth_app, login=login)
    assert client.get(f"{base}/api/v3/user", timeout=10).json()["login"] == login


def test_a_rename_keeps_the_account_and_frees_the_login(base, oauth_app, config):
    first = authorized(base, oauth_app, login="old-name", orgs="acme")
    before = first.get(f"{base}/api/v3/user", timeout=10).json()
    renamed = github.rename_user(config, "old-name", "new-name")
    assert (renamed["id"], renamed["login"]) == (before["id"], "new-name")
    after = first.get(f"{base}/api/v3/user", timeout=10).json()  # the token follows it
    assert (after["id"], after["login"]) == (before["id"], "new-name")
    assert [org["login"] for org in first.get(f"{base}/api/v3/user/orgs", timeout=10).json()
            ] == ["acme"]
    assert requests.get(f"{base}/api/v3/users/old-name", timeout=10).status_code == 404
    assert requests.get(f"{base}/api/v3/users/new-name", timeout=10).json()["id"] == before["id"]
    taker = authorized(base, oauth_app, login="old-name")  # free for another account
    other = taker.get(f"{base}/api/v3/user", timeout=10).json()
    assert other["login"] == "old-name" and other["id"] != before["id"]
    again = authorized(base, oauth_app, login="new-name")
    assert again.get(f"{base}/api/v3/user", timeout=10).json()["id"] == before["id"]


def test_a_rename_is_refused_when_it_cannot_be_done(base, oauth_app, config):
    authorized(base, oauth_app, login="alice", orgs="acme")
    authorized(base, oauth_app, login="bob")
    for old, new, why in (("nobody", "x", "no user"), ("alice", "bob", "taken by another"),
                          ("alice", "acme", "organization"), ("alice", "-x", "not a GitHub")):
        with pytest.raises(ValueError, match=why):
            github.rename_user(config, old, new)
    assert github.rename_user(config, "alice", "ALICE")["login"] == "ALICE"  # only the case


def test_the_rename_command(config, capsys):
    from localcloud import cli

    github.Accounts(config.var_dir / "github" / "accounts.json").sign_in("carol", None, None, {})
    assert cli.main(["--var-dir", str(config.var_dir), "github", "rename", "carol", "dave-"]) == 0
    assert "is now dave-" in capsys.readouterr().out
    assert cli.main(["--var-dir", str(config.var_dir), "github", "rename", "carol", "x"]) == 1
    assert "there is no user 'carol'" in capsys.readouterr().err
