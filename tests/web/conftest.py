"""The web app served in-process by waitress, with the GitHub stand-in of localcloud served on
another port, and requests.Session as the browser. No cloud: jobs stay queued (the job runner
is not running); tests play its part by writing the database when they need to."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from contextlib import closing, suppress
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from bottle import Bottle
from waitress import create_server

from localcloud import github as stand_in
from localcloud.config import Config as StandInConfig
from localcloud.service import Front
from tests.helpers import sign_in as fill_authorize_page
from web import db
from web.app import make_app
from web.config import Config

REGISTRATION_SECRET = "reg-6f1d2c9a8b7e4d3c2b1a0f9e"
TOKEN_SECRET = "tok-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
SAMPLE = "https://github.com/binder-examples/requirements"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(app, port: int):
    """Serve a WSGI app on 127.0.0.1:port in a daemon thread; returns the server."""
    server = create_server(app, host="127.0.0.1", port=port, threads=4,
                           asyncore_use_poll=True)

    def run():
        with suppress(OSError, ValueError):  # polling the socket stop() took away
            server.run()

    threading.Thread(target=run, daemon=True).start()
    return server


def stop(server) -> None:
    """Close the listening socket and end the worker threads (and their connections)."""
    server.close()
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")


@dataclass
class GitHub:
    config: StandInConfig

    @property
    def base(self) -> str:
        return self.config.github_base_url

    def register(self, callback: str) -> tuple[str, str]:
        return stand_in.register_oauth_app(self.config, callback)


@pytest.fixture
def github(tmp_path) -> GitHub:
    config = StandInConfig(var_dir=tmp_path / "github-var", port=free_port())
    server = serve(Front({"/github": stand_in.make_app(config), "": Bottle()}, Counter()),
                   config.port)
    yield GitHub(config)
    stop(server)


class Forms(HTMLParser):
    """Every form of a page: action -> {name: value} of its inputs (hidden and visible)."""

    def __init__(self, page: str):
        super().__init__()
        self.forms: dict[str, dict[str, str]] = {}
        self.methods: dict[str, str] = {}
        self._current: str | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._current = attrs.get("action", "")
            self.forms.setdefault(self._current, {})
            self.methods[self._current] = attrs.get("method", "get").lower()
        elif tag == "input" and self._current is not None and attrs.get("name"):
            self.forms[self._current][attrs["name"]] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def forms(page: str) -> dict[str, dict[str, str]]:
    return Forms(page).forms


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


@dataclass
class Site:
    config: Config
    url: str
    github: GitHub
    server: object = field(repr=False)
    browsers: list = field(default_factory=list, repr=False)

    def conn(self):
        """``with site.conn() as conn:`` a connection to the site's database, closed after."""
        return closing(db.connect(self.config.database))

    def browser(self) -> Browser:
        browser = Browser(self)
        self.browsers.append(browser)
        return browser

    def sql(self, statement: str, *params) -> list:
        """Run one statement on the site's database: its rows."""
        with self.conn() as conn:
            return conn.execute(statement, params).fetchall()

    def jobs(self) -> list:
        return self.sql("SELECT * FROM jobs ORDER BY rowid")

    def user_id(self, login: str) -> int:
        return self.sql("SELECT github_id FROM users WHERE login = ?", login)[0][0]


class Browser:
    """A requests.Session on the site; redirects are not followed unless asked."""

    def __init__(self, site: Site):
        self.site = site
        self.http = requests.Session()

    def get(self, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        return self.http.get(self.site.url + path, timeout=10, **kwargs)

    def post(self, path: str, data=None, **kwargs) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        return self.http.post(self.site.url + path, data=data, timeout=10, **kwargs)

    @property
    def cookie(self) -> str | None:
        return self.http.cookies.get("ssc_session")

    def csrf(self, path: str = "/") -> str:
        page = self.get(path)
        assert page.status_code == 200, page.text
        return next(fields["csrf"] for fields in forms(page.text).values() if "csrf" in fields)

    def start_sign_in(self, path: str = "/auth/login", **params) -> str:
        """Follow the app to GitHub's authorize page: its URL."""
        answer = self.get(path, params=params or None)
        assert answer.status_code == 302, answer.text
        location = answer.headers["Location"]
        assert location.startswith(self.site.config.github_authorize_url + "?")
        return location

    def come_back(self, authorize_url: str, login: str = "alice", orgs: str = "") -> str:
        """Authorize on the stand-in and return to the callback: the app's Location."""
        back = fill_authorize_page(authorize_url, login, orgs)
        assert back.startswith(self.site.url + "/auth/callback?"), back
        answer = self.http.get(back, allow_redirects=False, timeout=10)
        assert answer.status_code == 303, answer.text
        return answer.headers["Location"]

    def sign_in(self, login: str = "alice", orgs: str = "", path: str = "/auth/login",
                **params) -> str:
        return self.come_back(self.start_sign_in(path, **params), login, orgs)


@pytest.fixture
def make_site(tmp_path, github):
    """make_site(**config overrides) -> a Site served on a free port."""
    sites = []

    def make(**overrides) -> Site:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        client_id, client_secret = github.register(f"{url}/auth/callback")
        config = Config(
            base_url=url, database=tmp_path / f"web-{port}" / "ssc-web.sqlite3",
            default_repo=SAMPLE, github_client_id=client_id,
            github_client_secret=client_secret,
            github_authorize_url=f"{github.base}/login/oauth/authorize",
            github_token_url=f"{github.base}/login/oauth/access_token",
            github_api_url=f"{github.base}/api/v3",
            registration_secret=REGISTRATION_SECRET, token_secret=TOKEN_SECRET,
            allowed_hosts=("github.com", "gitlab.com", "codeberg.org", "10.89.0.1:8770/git"),
            allow_http_hosts=("10.89.0.1:8770",),
            private_data_root=tmp_path / "jobs",
            playbook_dir=Path(__file__).resolve().parents[2] / "playbooks")
        config = replace(config, **overrides)
        site = Site(config, url, github, serve(make_app(config), port))
        sites.append(site)
        return site

    yield make
    for site in sites:
        for browser in site.browsers:
            browser.http.close()
        stop(site.server)


@pytest.fixture
def site(make_site) -> Site:
    """A site where alice and bob are on the allowed list."""
    return make_site(allowed_logins=("alice", "bob"))


@pytest.fixture
def alice(site) -> Browser:
    browser = site.browser()
    assert browser.sign_in("alice") == site.url + "/"
    return browser


@pytest.fixture
def bob(site) -> Browser:
    browser = site.browser()
    assert browser.sign_in("bob") == site.url + "/"
    return browser
