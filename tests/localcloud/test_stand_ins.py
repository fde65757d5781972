"""The GitHub and git stand-ins as `localcloud up` serves them, with the app it registered."""

import subprocess

import pytest
from requests_oauthlib import OAuth2Session

from localcloud import github
from localcloud.config import Config
from tests.helpers import sign_in

pytestmark = pytest.mark.cloud
BASE = "http://127.0.0.1:8770/github"


def test_authorization_code_flow_with_the_registered_app(cloud, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the stand-in speaks plain HTTP
    apps = github.load_oauth_apps(Config(var_dir=cloud.var_dir))
    [(client_id, app)] = [(client_id, app) for client_id, app in apps.items()
                          if app["callback_url"] == "http://127.0.0.1:8080/"]
    client = OAuth2Session(client_id, redirect_uri="http://127.0.0.1:8080/auth",
                           scope=["read:org"], pkce="S256")
    url, _ = client.authorization_url(f"{BASE}/login/oauth/authorize")
    back = sign_in(url, login="ada-lovelace", orgs="uni-research:hpc")
    client.fetch_token(f"{BASE}/login/oauth/access_token", client_secret=app["client_secret"],
                       authorization_response=back)
    user = client.get(f"{BASE}/api/v3/user", timeout=10).json()
    assert user["login"] == "ada-lovelace" and isinstance(user["id"], int)
    orgs = client.get(f"{BASE}/api/v3/user/orgs", timeout=10).json()
    assert [o["login"] for o in orgs] == ["uni-research"]


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
