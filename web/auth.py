"""Sign-in with GitHub (OAuth 2 authorization code with PKCE, through requests-oauthlib) and
the rules of who may start VMs.

The access token serves only the few API calls made during sign-in (``GET /user``, and
``/user/orgs`` and ``/user/teams`` when organizations or teams decide) and is then dropped:
it is never stored, put in a cookie or logged. What those calls said is kept as the user's id
and login (``users``) and whether a configured organization or team admitted them (the
session's ``member`` flag, for ``membership_minutes``: web/users.py).

Allowed (nobody by default): users registered through the registration link, accounts in
``allowed_logins``, members of an ``allowed_orgs`` entry (``org`` or ``org:team``). An account
in ``blocked_logins`` or blocked by the operator is never allowed. Rules name accounts by id
(web/users.py).

oauthlib adds the token to the very ``headers`` dict it is given (``prepare_bearer_headers``
sets ``headers["Authorization"]``): every request gets a copy of :data:`API_HEADERS`, so that
one user's token never lands in the module's shared dict and travels with the next request.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import urlsplit

import requests
from ansible_collections.ssc.repo2docker.plugins.module_utils import launch_request
from oauthlib.oauth2 import OAuth2Error, WebApplicationClient
from requests_oauthlib import OAuth2Session

from web.config import Config

log = logging.getLogger(__name__)
# oauthlib and requests-oauthlib log token responses at DEBUG: keep them quiet whatever the
# root logger's level, so that no access token reaches a log.
for _name in ("oauthlib", "requests_oauthlib"):
    logging.getLogger(_name).setLevel(logging.WARNING)

MAX_PAGES = 10  # of 100 organizations or teams each
API_HEADERS = MappingProxyType({"Accept": "application/vnd.github+json",
                                "X-GitHub-Api-Version": "2022-11-28"})  # read-only: copy it


class SignInError(Exception):
    """Sign-in failed on GitHub's side; ``str(error)`` is for the user."""


@dataclass(frozen=True)
class GitHubUser:
    id: int
    login: str
    orgs: frozenset[str] = frozenset()  # organization logins, lower case
    teams: frozenset[tuple[str, str]] = frozenset()  # (org login, team slug), lower case


@dataclass(frozen=True)
class Authorization:
    """Where to send the browser, and what to keep server-side until it comes back."""

    url: str
    state: str
    verifier: str


class GitHubSignIn:
    """The OAuth app's side of the flow, with the URLs of the configuration."""

    def __init__(self, config: Config):
        self.config = config
        # GitHub answers with the scopes granted so far, which may differ from those asked for.
        os.environ.setdefault("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")
        if config.github_over_http:  # config.validate allows this on 127.0.0.1 only
            os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

    def _session(self, client: WebApplicationClient | None = None) -> OAuth2Session:
        return OAuth2Session(client=client or WebApplicationClient(self.config.github_client_id),
                             redirect_uri=self.config.callback_url,
                             scope=self.config.scopes or None)

    def begin(self) -> Authorization:
        """A new authorization URL with a fresh state and PKCE (S256) verifier."""
        client = WebApplicationClient(self.config.github_client_id)
        oauth = self._session(client)
        verifier = client.create_code_verifier(64)
        challenge = client.create_code_challenge(verifier, "S256")
        state = secrets.token_urlsafe(32)
        url, _ = oauth.authorization_url(self.config.github_authorize_url, state=state,
                                         code_challenge=challenge,
                                         code_challenge_method="S256")
        return Authorization(url, state, verifier)

    def finish(self, code: str, verifier: str) -> GitHubUser:
        """Exchange `code` for a token, ask who the user is (and their organizations and
        teams when they matter), drop the token. SignInError if GitHub says no."""
        oauth = self._session()
        timeout = self.config.github_timeout
        try:
            oauth.fetch_token(self.config.github_token_url, code=code,
                              client_secret=self.config.github_client_secret,
                              include_client_id=True, code_verifier=verifier, timeout=timeout)
            me = self._get(oauth, "/user").json()
            user_id, login = me.get("id"), me.get("login")
            if (isinstance(user_id, bool) or not isinstance(user_id, int)
                    or not launch_request.is_login(login)):
                raise SignInError("GitHub's answer about your account was not understood")
            orgs: set[str] = set()
            teams: set[tuple[str, str]] = set()
            wanted = [entry.partition(":") for entry in self.config.allowed_orgs]
            if any(not sep for _, sep, _ in wanted):
                orgs = {org["login"].lower() for org in self._pages(oauth, "/user/orgs")
                        if isinstance(org, dict) and isinstance(org.get("login"), str)}
            if any(sep for _, sep, _ in wanted):
                teams = {(team["organization"]["login"].lower(), team["slug"].lower())
                         for team in self._pages(oauth, "/user/teams", optional=True)
                         if _is_team(team)}
            return GitHubUser(user_id, login, frozenset(orgs), frozenset(teams))
        except OAuth2Error as error:
            log.warning("GitHub refused a sign-in: %s", error.error)
            raise SignInError(f"GitHub refused the sign-in ({error.error}); "
                              "please sign in again") from None
        except (requests.RequestException, ValueError) as error:
            log.warning("GitHub could not be asked about a sign-in: %s", type(error).__name__)
            raise SignInError("GitHub could not be reached or gave an answer that was not "
                              "understood; please try again in a minute") from None
        finally:
            oauth.token = {}
            oauth.close()

    def _get(self, oauth: OAuth2Session, path_or_url: str, optional: bool = False):
        api = self.config.github_api_url
        url = path_or_url if path_or_url.startswith(api + "/") else api + path_or_url
        answer = oauth.get(url, headers=dict(API_HEADERS),
                           timeout=self.config.github_timeout, allow_redirects=False)
        if optional and answer.status_code in (403, 404):
            return None
        if answer.status_code != 200:
            log.warning("GitHub answered %s to GET %s", answer.status_code, urlsplit(url).path)
            raise SignInError(f"GitHub answered {answer.status_code} when asked who you are; "
                              "please try again")
        return answer

    def _pages(self, oauth: OAuth2Session, path: str, optional: bool = False) -> list:
        """Every item of a paginated list (the token goes only to the API's own URLs)."""
        items: list = []
        url = f"{path}?per_page=100"
        for _ in range(MAX_PAGES):
            answer = self._get(oauth, url, optional)
            if answer is None:
                return items
            page = answer.json()
            items += page if isinstance(page, list) else []
            url = answer.links.get("next", {}).get("url", "")
            if not url.startswith(self.config.github_api_url + "/"):
                break
        return items


def _is_team(team) -> bool:
    return (isinstance(team, dict) and isinstance(team.get("slug"), str)
            and isinstance(team.get("organization"), dict)
            and isinstance(team["organization"].get("login"), str))


# --- who may do what --------------------------------------------------------------------------


def team_slug(name: str) -> str:
    """GitHub's slug of a team name: lower case, runs of other characters as '-'."""
    return re.sub(r"[^a-z0-9_]+", "-", name.lower()).strip("-")


def member_of_allowed(config: Config, user: GitHubUser) -> bool:
    """Whether an ``allowed_orgs`` entry admits the user: ``org`` for a member of the
    organization, ``org:team`` for a member of that team in it."""
    for entry in config.allowed_orgs:
        org, sep, team = entry.partition(":")
        if not sep and org.lower() in user.orgs:
            return True
        if sep and (org.lower(), team_slug(team)) in user.teams:
            return True
    return False


@dataclass(frozen=True)
class Access:
    allowed: bool
    why: str  # for the page: how the user was admitted, or why not


def decide(blocked: bool, registered: bool, listed: bool, member: bool) -> Access:
    """The rules, in order: blocked wins; then registered, listed, member; else nobody.
    (web/users.py says which apply to an account.)"""
    if blocked:
        return Access(False, "blocked")
    if registered:
        return Access(True, "registered")
    if listed:
        return Access(True, "listed")
    if member:
        return Access(True, "member")
    return Access(False, "not allowed")


# --- where to go after sign-in ----------------------------------------------------------------


def safe_next(value: str | None) -> str:
    """`value` if it is a path of this site (``/…``, printable ASCII, no ``//`` or backslash
    at its start, no scheme or host), otherwise ``/``."""
    if not value or len(value) > 4096 or not value.startswith("/"):
        return "/"
    if value.startswith("//") or "\\" in value:
        return "/"
    if any(not 0x21 <= ord(char) <= 0x7E for char in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return "/"
    return value
