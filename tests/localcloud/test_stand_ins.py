"""The GitHub and git stand-ins as `localcloud up` serves them, with the app it registered."""

import secrets
import subprocess

import pytest
from requests_oauthlib import OAuth2Session

from localcloud import github
from localcloud.config import Config
from tests.helpers import sign_in

pytestmark = pytest.mark.cloud
BASE = "http://127.0.0.1:8770/github"


@pytest.fixture
def registered_app(cloud, monkeypatch) -> tuple[str, str]:
    """The OAuth app `localcloud up` registered for web apps on this machine: (id, secret)."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the stand-in speaks plain HTTP
    apps = github.load_oauth_apps(Config(var_dir=cloud.var_dir))
    [(client_id, app)] = [(client_id, app) for client_id, app in apps.items()
                          if app["callback_url"] == "http://127.0.0.1:8080/"]
    return client_id, app["client_secret"]


def signed_in(app: tuple[str, str], login: str, orgs: str) -> tuple[dict, list[str]]:
    """The authorization code flow as `login`, member of `orgs`, with PKCE: the user the
    API then gives, and the logins of their organizations."""
    client = OAuth2Session(app[0], redirect_uri="http://127.0.0.1:8080/auth",
                           scope=["read:org"], pkce="S256")
    url, _ = client.authorization_url(f"{BASE}/login/oauth/authorize")
    back = sign_in(url, login=login, orgs=orgs)
    client.fetch_token(f"{BASE}/login/oauth/access_token", client_secret=app[1],
                       authorization_response=back)
    user = client.get(f"{BASE}/api/v3/user", timeout=10).json()
    return user, [org["login"] for org in client.get(f"{BASE}/api/v3/user/orgs",
                                                     timeout=10).json()]


def check_sign_in(app: tuple[str, str], login: str, org: str) -> dict:
    """Sign in as `login` in `org`'s team hpc and check what the API says: the user.

    The stand-in keeps accounts across runs, and GitHub's logins are case-insensitive: an
    account (or organization) first seen as `Ada-Lovelace` answers a sign-in as
    `ada-lovelace` with `Ada-Lovelace`. So the check compares logins as GitHub does, and
    holds whatever case an earlier run or a person signed in with."""
    user, orgs = signed_in(app, login, f"{org}:hpc")
    assert user["login"].lower() == login.lower() and isinstance(user["id"], int)
    assert [name.lower() for name in orgs] == [org.lower()]
    return user


def test_authorization_code_flow_with_the_registered_app(registered_app):
    check_sign_in(registered_app, "ada-lovelace", "uni-research")


def test_the_check_holds_after_a_sign_in_in_another_case(registered_app):
    # a login and an organization of this run only, first seen in upper case, as a person
    # may have typed them on the authorize page before the suite ran
    login, org = f"ada-{secrets.token_hex(4)}", f"uni-{secrets.token_hex(4)}"
    first, orgs = signed_in(registered_app, login.upper(), org.upper())
    assert (first["login"], orgs) == (login.upper(), [org.upper()])
    user = check_sign_in(registered_app, login, org)
    assert (user["id"], user["login"]) == (first["id"], login.upper())  # one account


def test_git_over_http_from_the_host(cloud, tmp_path):
    source = tmp_path / "repo"
    source.mkdir()
    (source / "index.ipynb").write_text("{}")
    url = cloud.localcloud("publish", "lc-tests/notebooks", str(source)).strip()
    assert url == "http://10.89.0.1:8770/git/lc-tests/notebooks.git"
    heads = subprocess.run(["git", "ls-remote", "--", url, "main"], capture_output=True,
                           text=True, check=True, timeout=60).stdout
    assert heads.endswith("\trefs/heads/main\n")
    subprocess.run(["git", "clone", "-q", url, str(tmp_path / "clone")], check=True, timeout=60)
    assert (tmp_path / "clone" / "index.ipynb").read_text() == "{}"
