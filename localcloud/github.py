"""A GitHub stand-in: OAuth app sign-in and the REST API calls a web app makes after it.

It is laid out like GitHub Enterprise Server, whose pages and API share one base URL
(``config.github_base_url``, http://127.0.0.1:8770/github by default):

    authorize:     {github_base_url}/login/oauth/authorize
    access token:  {github_base_url}/login/oauth/access_token
    REST API:      {github_base_url}/api/v3     (GET /user, /user/orgs, /user/teams, ...)

There are no passwords: the authorize page asks who you are (any login) and which
organizations and teams you belong to, then sends you back to the app with a code, as
GitHub does. OAuth apps are registered in var_dir/github/apps.json (see
:func:`register_oauth_app`); accounts, with ids that stay the same, and access tokens are
kept next to it, so a restart signs nobody out. Authorization codes live in memory only.

Accounts are found by their numeric id, which never changes: :func:`rename_user` (``localcloud
github rename OLD NEW``) gives an account a new login, as GitHub does when its owner renames it,
and frees the old login for anyone to take. Logins follow GitHub's rules as GitHub applies
them: besides the rule of new sign-ups, accounts made before it may hold a "legacy" login that
ends in a hyphen or has two hyphens in a row (``name-``, ``a--b``), and the stand-in serves
those too.
"""

import base64
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import string
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from xml.sax.saxutils import escape as xml_escape

import requests
from bottle import Bottle, HTTPResponse, SimpleTemplate, abort, redirect, request

from localcloud.config import Config

CODE_LIFETIME = 600.0  # seconds: GitHub's codes expire after 10 minutes
DOCS = "https://docs.github.com"
AUTHORIZATION_ERRORS = (
    f"{DOCS}/apps/managing-oauth-apps/troubleshooting-authorization-request-errors")
TOKEN_ERRORS = (
    f"{DOCS}/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors")

LOGIN = re.compile(r"[A-Za-z0-9](?:-?[A-Za-z0-9])*")  # GitHub's sign-up rule for new logins
# Logins of accounts made before that rule: hyphens anywhere but first ("name-", "a--b").
LEGACY_LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
CODE_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of a SHA-256 digest
CODE_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636

# The classic OAuth scopes, and those a scope includes. Unknown scopes are dropped.
SCOPES = {
    "repo": {"repo:status", "repo_deployment", "public_repo", "repo:invite", "security_events"},
    "repo:status": set(), "repo_deployment": set(), "public_repo": set(), "repo:invite": set(),
    "security_events": set(),
    "admin:repo_hook": {"write:repo_hook", "read:repo_hook"},
    "write:repo_hook": {"read:repo_hook"}, "read:repo_hook": set(),
    "admin:org": {"write:org", "read:org", "manage_runners:org"},
    "write:org": {"read:org"}, "read:org": set(), "manage_runners:org": set(),
    "admin:public_key": {"write:public_key", "read:public_key"},
    "write:public_key": {"read:public_key"}, "read:public_key": set(),
    "admin:org_hook": set(), "gist": set(), "notifications": set(),
    "user": {"read:user", "user:email", "user:follow"},
    "read:user": set(), "user:email": set(), "user:follow": set(),
    "project": {"read:project"}, "read:project": set(), "delete_repo": set(),
    "write:packages": {"read:packages"}, "read:packages": set(), "delete:packages": set(),
    "admin:gpg_key": {"write:gpg_key", "read:gpg_key"},
    "write:gpg_key": {"read:gpg_key"}, "read:gpg_key": set(),
    "codespace": set(), "workflow": set(),
    "admin:ssh_signing_key": {"write:ssh_signing_key", "read:ssh_signing_key"},
    "write:ssh_signing_key": {"read:ssh_signing_key"}, "read:ssh_signing_key": set(),
    "write:discussion": {"read:discussion"}, "read:discussion": set(),
}
LIST_ORGS_SCOPES = {"read:org", "user"}  # without one, only public memberships show
LIST_TEAMS_SCOPES = {"read:org", "user", "repo"}
READ_MEMBERSHIP_SCOPES = {"read:org", "repo"}


def api_url(config: Config) -> str:
    """Where a web app finds the REST API, as for GitHub Enterprise: <base>/api/v3."""
    return f"{config.github_base_url}/api/v3"


# --- OAuth apps --------------------------------------------------------------------------


@dataclass(frozen=True)
class OAuthApp:
    client_id: str
    client_secret: str = field(repr=False)
    callback_url: str


def register_oauth_app(config: Config, callback_url: str) -> tuple[str, str]:
    """Register a new OAuth app sending users back under callback_url: (client_id, secret)."""
    parts = urlsplit(callback_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        raise ValueError(f"not an http(s) callback URL: {callback_url!r}")
    client_id = "Ov23li" + _random_text(14)
    client_secret = secrets.token_hex(20)
    with _updating(_apps_file(config)) as apps:
        apps[client_id] = {"client_secret": client_secret, "callback_url": callback_url}
    return client_id, client_secret


# The OAuth app `localcloud up` registers, for web apps on this machine: GitHub (and so the
# stand-in) lets a loopback callback URL come back on any port, so one serves them all.
LOCAL_WEB_CALLBACK = "http://127.0.0.1:8080/"


def oauth_app_for(config: Config, callback_url: str = LOCAL_WEB_CALLBACK) -> tuple[str, str]:
    """The OAuth app registered with exactly `callback_url` (registered now if there is none):
    (client_id, secret)."""
    for client_id, app in load_oauth_apps(config).items():
        if app["callback_url"] == callback_url:
            return client_id, app["client_secret"]
    return register_oauth_app(config, callback_url)


def load_oauth_apps(config: Config) -> dict[str, dict]:
    """The registered OAuth apps by client_id: {"client_id", "client_secret", "callback_url"}."""
    return {client_id: {"client_id": client_id, "client_secret": entry["client_secret"],
                        "callback_url": entry["callback_url"]}
            for client_id, entry in _read_json(_apps_file(config)).items()}


def _oauth_apps(config: Config) -> dict[str, OAuthApp]:
    return {client_id: OAuthApp(**entry) for client_id, entry in load_oauth_apps(config).items()}


def redirect_uri_allowed(redirect_uri: str, callback_url: str) -> bool:
    """GitHub's rule: same scheme, host or a subdomain of it, same port (any port on a
    loopback address), and a path at or below the callback URL's path."""
    asked, registered = urlsplit(redirect_uri), urlsplit(callback_url)
    try:
        asked_port, registered_port = _port(asked), _port(registered)
    except ValueError:
        return False
    host, registered_host = (asked.hostname or ""), (registered.hostname or "")
    if asked.scheme != registered.scheme or not host or asked.fragment:
        return False
    if host != registered_host and not host.endswith("." + registered_host):
        return False
    if asked_port != registered_port and not _is_loopback(host):
        return False
    return _is_below(asked.path or "/", registered.path or "/")


def _port(url) -> int:
    return url.port or {"http": 80, "https": 443}.get(url.scheme, 0)


def _is_loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _is_below(path: str, base: str) -> bool:
    if any(segment in (".", "..") for segment in path.split("/")):
        return False
    return path == base or path.startswith(base.rstrip("/") + "/")


# --- files in var_dir/github ---------------------------------------------------------------


def _github_dir(config: Config) -> Path:
    return Path(config.var_dir) / "github"


def _apps_file(config: Config) -> Path:
    return _github_dir(config) / "apps.json"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def _write_json(path: Path, data: dict) -> None:
    """Replace path at once, readable by its owner only."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(temporary, path)


@contextmanager
def _updating(path: Path) -> Iterator[dict]:
    """Read, change and write back a JSON file, one thread or process at a time."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = _read_json(path)
        yield data
        _write_json(path, data)
    finally:
        os.close(lock)


def _random_text(length: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- accounts: users, organizations, teams ---------------------------------------------------


def check_login(login: str) -> str:
    """A valid GitHub user or organization name, or ValueError."""
    if len(login) > 39 or not LOGIN.fullmatch(login):
        raise ValueError(
            f"{login!r} is not a GitHub login: letters, digits and single inner hyphens, "
            "at most 39 characters"
        )
    return login


def check_user_login(login: str) -> str:
    """A login a GitHub user may hold, legacy logins included (``name-``, ``a--b``: letters,
    digits and hyphens, not first), at most 39 characters; or ValueError."""
    if len(login) > 39 or not LEGACY_LOGIN.fullmatch(login):
        raise ValueError(
            f"{login!r} is not a GitHub login: letters, digits and hyphens (not first), "
            "at most 39 characters"
        )
    return login


def parse_memberships(text: str) -> dict[str, list[str]]:
    """'acme, acme:devs, widgets' -> {'acme': ['devs'], 'widgets': []}."""
    memberships: dict[str, list[str]] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        org, _, team = (part.strip() for part in entry.partition(":"))
        teams = memberships.setdefault(check_login(org), [])
        if team and not _slug(team):
            raise ValueError(f"{team!r} is not a team name")
        if team and _slug(team) not in (_slug(known) for known in teams):
            teams.append(team)
    return memberships


def _slug(team_name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "-", team_name.lower()).strip("-")


class Accounts:
    """Users, organizations and teams, with numeric ids that stay the same across restarts."""

    def __init__(self, path: Path):
        self.path = path

    def sign_in(self, login: str, name: str | None, email: str | None,
                memberships: dict[str, list[str]]) -> dict:
        """Create or update the user login as they describe themselves on the authorize page."""
        with _updating(self.path) as data:
            user = self._user_record(data, login)
            user.update(name=name, email=email, updated_at=_now(), orgs={})
            for org_login, teams in memberships.items():
                org = self._org_record(data, org_login)
                user["orgs"][org["login"].lower()] = [
                    self._team_record(data, org, team)["slug"] for team in teams
                ]
            return dict(user)

    def user(self, login: str) -> dict | None:
        return self._data().get("users", {}).get(login.lower())

    def user_by_id(self, number: int) -> dict | None:
        """The user with this account id (whatever their login is now)."""
        return next((user for user in self._data().get("users", {}).values()
                     if user["id"] == number), None)

    def rename(self, old: str, new: str) -> dict:
        """Give the user `old` the login `new` (same id, memberships and tokens), as GitHub
        does when an account is renamed; `old` is free afterwards. ValueError if there is no
        user `old`, `new` is not a login or is held by another account."""
        check_user_login(new)
        with _updating(self.path) as data:
            users = data.setdefault("users", {})
            user = users.get(old.lower())
            if user is None:
                raise ValueError(f"there is no user {old!r}")
            if new.lower() in users and users[new.lower()] is not user:
                raise ValueError(f"the login {new!r} is taken by another account")
            if new.lower() in data.get("orgs", {}):
                raise ValueError(f"the login {new!r} is taken by an organization")
            del users[old.lower()]
            user.update(login=new, updated_at=_now())
            users[new.lower()] = user
            return dict(user)

    def orgs_of(self, user: dict) -> list[tuple[dict, list[dict]]]:
        """The user's organizations, each with the user's teams in it."""
        data = self._data()
        return [
            (data["orgs"][org], [data["teams"][f"{org}/{slug}"] for slug in slugs])
            for org, slugs in sorted(user.get("orgs", {}).items())
        ]

    def by_id(self, number: int) -> dict | None:
        """The user or organization with this id."""
        data = self._data()
        records = [*data.get("users", {}).values(), *data.get("orgs", {}).values()]
        return next((record for record in records if record["id"] == number), None)

    def _data(self) -> dict:
        return _read_json(self.path)

    @staticmethod
    def _new_id(data: dict) -> int:
        data["next_id"] = data.get("next_id", 1000001) + 1
        return data["next_id"] - 1

    def _user_record(self, data: dict, login: str) -> dict:
        users = data.setdefault("users", {})
        if login.lower() not in users:  # the login keeps the case it was first seen in
            users[login.lower()] = {"id": self._new_id(data), "login": login,
                                    "created_at": _now()}
        return users[login.lower()]

    def _org_record(self, data: dict, login: str) -> dict:
        orgs = data.setdefault("orgs", {})
        if login.lower() not in orgs:
            orgs[login.lower()] = {"id": self._new_id(data), "login": login, "created_at": _now()}
        return orgs[login.lower()]

    def _team_record(self, data: dict, org: dict, name: str) -> dict:
        teams = data.setdefault("teams", {})
        key = f"{org['login'].lower()}/{_slug(name)}"
        if key not in teams:
            teams[key] = {"id": self._new_id(data), "name": name, "slug": _slug(name),
                          "org": org["login"].lower(), "created_at": _now()}
        return teams[key]


# --- codes and tokens ----------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """What a user agreed to on the authorize page, waiting to be exchanged for a token."""

    client_id: str
    redirect_uri: str  # the one the code was sent to
    scopes: tuple[str, ...]
    user_id: int
    code_challenge: str | None
    expires: float = field(default_factory=lambda: time.monotonic() + CODE_LIFETIME)


@dataclass(frozen=True)
class Token:
    user_id: int  # the account's id: a token follows its account through a rename
    client_id: str
    scopes: tuple[str, ...]

    def has_any_scope(self, wanted: set[str]) -> bool:
        granted = set(self.scopes)
        for scope in self.scopes:
            granted |= SCOPES.get(scope, set())
        return bool(granted & wanted)


class Authorizations:
    """Authorization codes (in memory, single use) and access tokens (persisted, hashed)."""

    def __init__(self, tokens_file: Path):
        self.tokens_file = tokens_file
        self._codes: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def issue_code(self, grant: Grant) -> str:
        code = secrets.token_hex(10)
        with self._lock:
            now = time.monotonic()
            for stale in [code for code, old in self._codes.items() if old.expires <= now]:
                del self._codes[stale]
            self._codes[code] = grant
        return code

    def redeem_code(self, code: str, client_id: str) -> Grant | None:
        """The grant behind code, which is used up by this call; None if unknown or expired."""
        with self._lock:
            grant = self._codes.pop(code, None)
        if grant is None or grant.expires <= time.monotonic() or grant.client_id != client_id:
            return None
        return grant

    def issue_token(self, grant: Grant) -> str:
        token = "gho_" + _random_text(36)
        with _updating(self.tokens_file) as tokens:
            tokens[_digest(token)] = {"user_id": grant.user_id, "client_id": grant.client_id,
                                      "scopes": list(grant.scopes), "created_at": _now()}
        return token

    def token(self, token: str) -> Token | None:
        entry = _read_json(self.tokens_file).get(_digest(token))
        if entry is None:
            return None
        return Token(entry.get("user_id", 0), entry["client_id"], tuple(entry["scopes"]))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def parse_scopes(text: str) -> tuple[str, ...]:
    """Known scopes of a space- (or comma-) separated list, once each, in order."""
    return tuple(dict.fromkeys(s for s in re.split(r"[\s,]+", text) if s in SCOPES))


# --- the authorize page ----------------------------------------------------------------------

AUTHORIZE_PAGE = SimpleTemplate("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Authorize application · localcloud GitHub</title>
<style>
body { font-family: sans-serif; max-width: 40em; margin: 3em auto; line-height: 1.4 }
label { display: block; margin-top: 1em } input[type=text] { width: 100% }
.error { color: #b00 } button { margin-top: 1.5em }
</style>
</head>
<body>
<h1>Authorize application</h1>
<p>The OAuth app <code>{{client_id}}</code> wants to know who you are.
You will be sent back to <code>{{redirect_to}}</code>.</p>
% if scopes:
<p>It asks for these scopes:</p>
<ul>
% for scope in scopes:
<li><code>{{scope}}</code></li>
% end
</ul>
% else:
<p>It asks for no scopes: public information only.</p>
% end
% if error:
<p class="error" role="alert">{{error}}</p>
% end
<form method="post" action="{{action}}">
% for key, value in hidden:
<input type="hidden" name="{{key}}" value="{{value}}">
% end
<label>Login <input type="text" name="login" value="{{login}}" required autofocus></label>
<label>Name <input type="text" name="name" value="{{name}}"></label>
<label>Public email <input type="text" name="email" value="{{email}}"></label>
<label>Organizations and teams
<input type="text" name="orgs" value="{{orgs}}" placeholder="acme, acme:developers"></label>
<p>Comma-separated: <code>org</code> for a membership, <code>org:team</code> for a team in it.
Memberships are private, as on GitHub by default.</p>
<button type="submit" name="authorize" value="1">Authorize</button>
<button type="submit" name="deny" value="1" formnovalidate>Cancel</button>
</form>
</body>
</html>
""")

AUTHORIZE_PARAMS = ("client_id", "redirect_uri", "state", "scope",
                    "code_challenge", "code_challenge_method", "allow_signup", "prompt")


@dataclass(frozen=True)
class AuthorizationRequest:
    app: OAuthApp
    redirect_to: str
    state: str | None
    scopes: tuple[str, ...]
    code_challenge: str | None


def _add_query(url: str, **params: str | None) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(key, value) for key, value in params.items() if value is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _redirect_error(url: str, error: str, description: str, anchor: str, state: str | None):
    redirect(_add_query(url, error=error, error_description=description,
                        error_uri=f"{AUTHORIZATION_ERRORS}/#{anchor}", state=state), 302)


def _request_params() -> dict[str, str]:
    try:
        return dict(request.params.decode().items())
    except UnicodeError:
        abort(400, "Parameters must be UTF-8")


def _read_authorization_request(params: dict[str, str],
                                apps: dict[str, OAuthApp]) -> AuthorizationRequest:
    """Check the app's parameters as GitHub does before it asks the user anything."""
    app = apps.get(params.get("client_id", ""))
    if app is None:
        abort(404, "Not Found: no OAuth app has this client_id")
    state = params.get("state")
    redirect_uri = params.get("redirect_uri")
    if redirect_uri and not redirect_uri_allowed(redirect_uri, app.callback_url):
        _redirect_error(app.callback_url, "redirect_uri_mismatch",
                        "The redirect_uri MUST match the registered callback URL for this "
                        "application.", "redirect-uri-mismatch", state)
    redirect_to = redirect_uri or app.callback_url
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    pkce_ok = method == "S256" and CODE_CHALLENGE.fullmatch(challenge or "")
    if (challenge or method) and not pkce_ok:
        _redirect_error(redirect_to, "invalid_request",
                        "code_challenge must be a 43 character SHA-256 hash and "
                        "code_challenge_method must be S256.", "invalid-request", state)
    return AuthorizationRequest(app, redirect_to, state, parse_scopes(params.get("scope", "")),
                                challenge or None)


def _authorize_page(wanted: AuthorizationRequest, params: dict[str, str], accounts: Accounts,
                    error: str = "") -> str:
    hidden = [(key, params[key]) for key in AUTHORIZE_PARAMS if params.get(key)]
    login = params.get("login", "")
    known = accounts.user(login) if login and LEGACY_LOGIN.fullmatch(login) else None
    if known and "orgs" not in params:
        orgs = ", ".join(
            ", ".join([org["login"]] + [f"{org['login']}:{team['name']}" for team in teams])
            for org, teams in accounts.orgs_of(known)
        )
        name, email = known.get("name") or "", known.get("email") or ""
    else:
        orgs, name, email = (params.get(key, "") for key in ("orgs", "name", "email"))
    return AUTHORIZE_PAGE.render(
        client_id=wanted.app.client_id, redirect_to=wanted.redirect_to, scopes=wanted.scopes,
        error=error, action=request.fullpath, hidden=hidden, login=login, name=name,
        email=email, orgs=orgs,
    )


def _profile(params: dict[str, str]) -> tuple[str, str | None, str | None, dict]:
    """login, name, email and memberships from the authorize form, or ValueError."""
    login = check_user_login(params.get("login", "").strip())
    name = params.get("name", "").strip() or None
    email = params.get("email", "").strip() or None
    if email and not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
        raise ValueError(f"{email!r} is not an email address")
    return login, name, email, parse_memberships(params.get("orgs", ""))


# --- the token endpoint ----------------------------------------------------------------------


def _token_error(error: str, description: str, anchor: str, page: str = TOKEN_ERRORS) -> dict:
    return {"error": error, "error_description": description, "error_uri": f"{page}/#{anchor}"}


BAD_CREDENTIALS = _token_error(
    "incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.",
    "incorrect-client-credentials")
BAD_CODE = _token_error(
    "bad_verification_code", "The code passed is incorrect or expired.", "bad-verification-code")
REDIRECT_MISMATCH = _token_error(
    "redirect_uri_mismatch",
    "The redirect_uri MUST match the registered callback URL for this application.",
    "redirect-uri-mismatch2", AUTHORIZATION_ERRORS)
UNSUPPORTED_GRANT = _token_error(
    "unsupported_grant_type", "The grant type is not supported.", "unsupported-grant-type")


def _token_params() -> dict[str, str]:
    """Parameters from the query, a form or a JSON body; client credentials maybe Basic."""
    params = _request_params()
    if request.content_type.startswith("application/json"):
        body = request.json
        if isinstance(body, dict):
            params.update({key: str(value) for key, value in body.items()})
    if request.auth and request.auth[1] is not None:
        params.setdefault("client_id", request.auth[0])
        params.setdefault("client_secret", request.auth[1])
    return params


def _exchange(params: dict[str, str], apps: dict[str, OAuthApp],
              authorizations: Authorizations) -> dict:
    """The token answer, or GitHub's error for the first thing wrong."""
    app = apps.get(params.get("client_id", ""))
    if app is None or not hmac.compare_digest(params.get("client_secret", "").encode(),
                                              app.client_secret.encode()):
        return BAD_CREDENTIALS
    if params.get("grant_type", "authorization_code") != "authorization_code":
        return UNSUPPORTED_GRANT
    grant = authorizations.redeem_code(params.get("code", ""), app.client_id)
    if grant is None:
        return BAD_CODE
    if params.get("redirect_uri") and params["redirect_uri"] != grant.redirect_uri:
        return REDIRECT_MISMATCH
    if grant.code_challenge:
        verifier = params.get("code_verifier", "")
        if not CODE_VERIFIER.fullmatch(verifier) or not hmac.compare_digest(
                _pkce_challenge(verifier), grant.code_challenge):
            return BAD_CODE
    return {"access_token": authorizations.issue_token(grant), "token_type": "bearer",
            "scope": ",".join(grant.scopes)}


def _token_response(answer: dict) -> HTTPResponse:
    """JSON, XML or a form, as the Accept header asks; always 200, errors included."""
    accept = request.get_header("Accept", "")
    if "application/json" in accept:
        return HTTPResponse(json.dumps(answer), 200, content_type="application/json; charset=utf-8")
    if "application/xml" in accept:
        fields = "".join(f"<{key}>{xml_escape(value)}</{key}>" for key, value in answer.items())
        return HTTPResponse(f"<OAuth>{fields}</OAuth>", 200,
                            content_type="application/xml; charset=utf-8")
    return HTTPResponse(urlencode(answer), 200,
                        content_type="application/x-www-form-urlencoded; charset=utf-8")


# --- the REST API --------------------------------------------------------------------------


def _api_response(data, status: int = 200, token: Token | None = None, **headers) -> HTTPResponse:
    if token is not None:
        headers["X-OAuth-Scopes"] = ", ".join(token.scopes)
    headers.setdefault("X-GitHub-Media-Type", "github.v3; format=json")
    return HTTPResponse(json.dumps(data, indent=2), status,
                        content_type="application/json; charset=utf-8", **headers)


def _api_error(status: int, message: str, docs: str = f"{DOCS}/rest", **headers) -> HTTPResponse:
    return _api_response({"message": message, "documentation_url": docs, "status": str(status)},
                         status, **headers)


def _presented_token() -> str | None:
    """The token of an 'Authorization: Bearer <t>' or 'Authorization: token <t>' header."""
    scheme, _, value = request.get_header("Authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    return None


def _paginated(items: list) -> tuple[list, dict]:
    """A page of items as ?page=&per_page= ask (30 by default, 100 at most), with a Link."""
    try:
        per_page = min(max(int(request.query.get("per_page", 30)), 1), 100)
        page = max(int(request.query.get("page", 1)), 1)
    except ValueError:
        per_page, page = 30, 1
    last = max((len(items) + per_page - 1) // per_page, 1)
    links = []
    url = request.url.split("?")[0]
    if page < last:
        links += [f'<{url}?per_page={per_page}&page={page + 1}>; rel="next"',
                  f'<{url}?per_page={per_page}&page={last}>; rel="last"']
    if page > 1:
        links += [f'<{url}?per_page={per_page}&page=1>; rel="first"',
                  f'<{url}?per_page={per_page}&page={min(page - 1, last)}>; rel="prev"']
    headers = {"Link": ", ".join(links)} if links else {}
    return items[(page - 1) * per_page: page * per_page], headers


class Representations:
    """The JSON GitHub gives for users, organizations, teams and memberships."""

    def __init__(self, config: Config):
        self.base = config.github_base_url
        self.api = api_url(config)

    def user(self, user: dict) -> dict:
        login, api = user["login"], f"{self.api}/users/{user['login']}"
        return {
            "login": login, "id": user["id"], "node_id": _node_id("04:User", user["id"]),
            "avatar_url": f"{self.base}/avatars/u/{user['id']}?v=4", "gravatar_id": "",
            "url": api, "html_url": f"{self.base}/{login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions", "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos", "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events", "type": "User",
            "user_view_type": "public", "site_admin": False,
            "name": user.get("name"), "company": None, "blog": "", "location": None,
            "email": user.get("email"), "hireable": None, "bio": None, "twitter_username": None,
            "notification_email": user.get("email"),
            "public_repos": 0, "public_gists": 0, "followers": 0, "following": 0,
            "created_at": user["created_at"],
            "updated_at": user.get("updated_at", user["created_at"]),
        }

    def simple_user(self, user: dict) -> dict:
        keep = ("login", "id", "node_id", "avatar_url", "gravatar_id", "url", "html_url",
                "followers_url", "following_url", "gists_url", "starred_url",
                "subscriptions_url", "organizations_url", "repos_url", "events_url",
                "received_events_url", "type", "user_view_type", "site_admin")
        full = self.user(user)
        return {key: full[key] for key in keep}

    def org(self, org: dict) -> dict:
        login, api = org["login"], f"{self.api}/orgs/{org['login']}"
        return {
            "login": login, "id": org["id"], "node_id": _node_id("012:Organization", org["id"]),
            "url": api, "repos_url": f"{api}/repos", "events_url": f"{api}/events",
            "hooks_url": f"{api}/hooks", "issues_url": f"{api}/issues",
            "members_url": f"{api}/members{{/member}}",
            "public_members_url": f"{api}/public_members{{/member}}",
            "avatar_url": f"{self.base}/avatars/u/{org['id']}?v=4", "description": None,
        }

    def team(self, team: dict, org: dict) -> dict:
        api = f"{self.api}/organizations/{org['id']}/team/{team['id']}"
        organization = self.org(org) | {
            "name": None, "company": None, "blog": "", "location": None, "email": None,
            "is_verified": False, "has_organization_projects": True,
            "has_repository_projects": True, "public_repos": 0, "public_gists": 0,
            "followers": 0, "following": 0, "html_url": f"{self.base}/{org['login']}",
            "created_at": org["created_at"], "updated_at": org["created_at"],
            "type": "Organization",
        }
        return {
            "id": team["id"], "node_id": _node_id("04:Team", team["id"]), "url": api,
            "html_url": f"{self.base}/orgs/{org['login']}/teams/{team['slug']}",
            "name": team["name"], "slug": team["slug"], "description": None,
            "privacy": "closed", "notification_setting": "notifications_enabled",
            "permission": "pull", "members_url": f"{api}/members{{/member}}",
            "repositories_url": f"{api}/repos", "parent": None,
            "members_count": 1, "repos_count": 0,
            "created_at": team["created_at"], "updated_at": team["created_at"],
            "organization": organization,
        }

    def membership(self, user: dict, org: dict) -> dict:
        return {
            "url": f"{self.api}/orgs/{org['login']}/memberships/{user['login']}",
            "state": "active", "role": "member",
            "organization_url": f"{self.api}/orgs/{org['login']}",
            "organization": self.org(org), "user": self.simple_user(user),
        }


def _node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"{kind}{number}".encode()).decode()


AVATAR = SimpleTemplate(
    '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">'
    '<rect width="96" height="96" fill="hsl({{hue}},45%,55%)"/>'
    '<text x="48" y="64" font-size="48" font-family="sans-serif" text-anchor="middle" '
    'fill="#fff">{{letter}}</text></svg>'
)


# --- the Bottle app ------------------------------------------------------------------------


def make_app(config: Config) -> Bottle:
    """The GitHub stand-in as a Bottle app, to be mounted at /github."""
    directory = _github_dir(config)
    accounts = Accounts(directory / "accounts.json")
    authorizations = Authorizations(directory / "tokens.json")
    shown = Representations(config)
    app = Bottle()

    @app.get("/login/oauth/authorize")
    def authorize_page():
        params = _request_params()
        wanted = _read_authorization_request(params, _oauth_apps(config))
        return _authorize_page(wanted, params, accounts)

    @app.post("/login/oauth/authorize")
    def authorize():
        params = _request_params()
        wanted = _read_authorization_request(params, _oauth_apps(config))
        if params.get("deny"):
            _redirect_error(wanted.redirect_to, "access_denied",
                            "The user has denied your application access.", "access-denied",
                            wanted.state)
        try:
            login, name, email, memberships = _profile(params)
        except ValueError as error:
            return HTTPResponse(_authorize_page(wanted, params, accounts, str(error)), 400)
        user = accounts.sign_in(login, name, email, memberships)
        code = authorizations.issue_code(Grant(
            wanted.app.client_id, wanted.redirect_to, wanted.scopes, user["id"],
            wanted.code_challenge))
        redirect(_add_query(wanted.redirect_to, code=code, state=wanted.state), 302)

    @app.post("/login/oauth/access_token")
    def access_token():
        return _token_response(_exchange(_token_params(), _oauth_apps(config), authorizations))

    def authenticated() -> tuple[Token, dict]:
        presented = _presented_token()
        if presented is None:
            raise _api_error(401, "Requires authentication",
                             f"{DOCS}/rest/users/users#get-the-authenticated-user")
        token = authorizations.token(presented)
        user = accounts.user_by_id(token.user_id) if token else None
        if token is None or user is None or token.client_id not in _oauth_apps(config):
            raise _api_error(401, "Bad credentials")
        return token, user

    @app.get("/api/v3/user")
    def get_authenticated_user():
        token, user = authenticated()
        return _api_response(shown.user(user), token=token,
                             **{"X-Accepted-OAuth-Scopes": ""})

    @app.get("/api/v3/users/<login>")
    def get_user(login):
        if request.get_header("Authorization"):
            authenticated()
        user = accounts.user(login)
        if user is None:
            raise _api_error(404, "Not Found", f"{DOCS}/rest/users/users#get-a-user")
        return _api_response(shown.user(user))

    @app.get("/api/v3/user/orgs")
    def list_my_orgs():
        token, user = authenticated()
        # Memberships are private, and private ones show only with read:org (or user).
        orgs = [shown.org(org) for org, _ in accounts.orgs_of(user)]
        page, links = _paginated(orgs if token.has_any_scope(LIST_ORGS_SCOPES) else [])
        accepted = {"X-Accepted-OAuth-Scopes": "admin:org, read:org, repo, user, write:org"}
        return _api_response(page, token=token, **links, **accepted)

    @app.get("/api/v3/user/teams")
    def list_my_teams():
        token, user = authenticated()
        if not token.has_any_scope(LIST_TEAMS_SCOPES):
            raise _api_error(403, "You need at least one of these scopes: read:org, repo, user",
                             f"{DOCS}/rest/teams/teams#list-teams-for-the-authenticated-user")
        teams = [shown.team(team, org) for org, teams in accounts.orgs_of(user) for team in teams]
        page, links = _paginated(teams)
        return _api_response(page, token=token, **links)

    @app.get("/api/v3/user/memberships/orgs/<org>")
    def get_my_membership(org):
        token, user = authenticated()
        if not token.has_any_scope(READ_MEMBERSHIP_SCOPES):
            raise _api_error(403, "You need at least one of these scopes: read:org, repo")
        for known, _ in accounts.orgs_of(user):
            if known["login"].lower() == org.lower():
                return _api_response(shown.membership(user, known), token=token)
        raise _api_error(404, "Not Found",
                         f"{DOCS}/rest/orgs/members#get-an-organization-membership-for-the-authenticated-user")

    @app.route("/api/v3/<rest:path>", method=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def api_not_found(rest):
        raise _api_error(404, "Not Found")

    @app.get("/avatars/u/<number:int>")
    def avatar(number):
        account = accounts.by_id(number)
        letter = account["login"][0].upper() if account else "?"
        svg = AVATAR.render(hue=number * 47 % 360, letter=letter)
        return HTTPResponse(svg, 200, content_type="image/svg+xml",
                            **{"Cache-Control": "max-age=300"})

    return app


# --- the person at the authorize page, for scripts and tests ------------------------------


class AuthorizePage(HTMLParser):
    """The authorize page's form: its action and hidden fields, as a browser submits them."""

    def __init__(self, page: str):
        super().__init__()
        self.action, self.fields = None, {}
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = attrs["action"]
        if tag == "input" and attrs.get("type") == "hidden":
            self.fields[attrs["name"]] = attrs["value"]


def rename_user(config: Config, old: str, new: str) -> dict:
    """Rename the stand-in's user `old` to `new` (``localcloud github rename``): the same
    account id, a new login; the old login is free for another account. Returns the user's
    record; ValueError as :meth:`Accounts.rename` says."""
    return Accounts(_github_dir(config) / "accounts.json").rename(old, new)


def approve(authorization_url: str, login: str, orgs: str = "", session=None,
            **fields) -> str:
    """Do what a person does at the stand-in's authorize page: open it, say who they are
    (`login`, member of `orgs`: "acme, acme:team"), press Authorize. Returns where the
    stand-in sends the browser back to (the app's callback with the code)."""
    http = session or requests.Session()
    page = http.get(authorization_url, timeout=10)
    page.raise_for_status()
    form = AuthorizePage(page.text)
    parts = urlsplit(authorization_url)
    if form.action != parts.path:
        raise RuntimeError(f"the authorize page's form posts to {form.action!r}")
    answer = http.post(f"{parts.scheme}://{parts.netloc}{form.action}", timeout=10,
                       data=form.fields | {"login": login, "orgs": orgs, "authorize": "1"}
                       | fields, allow_redirects=False)
    if answer.status_code != 302:
        raise RuntimeError(f"the authorize page refused: {answer.status_code} {answer.text[:300]}")
    return answer.headers["Location"]
