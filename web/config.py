"""Settings of the web trigger: a TOML file for everything but secrets, the environment for
secrets. deploy/ssc-web.example.toml is the annotated example.

Secrets (environment only; never in the file, the repository, logs or process lists):

    SSC_WEB_GITHUB_CLIENT_SECRET   the GitHub OAuth app's client secret
    SSC_WEB_REGISTRATION_SECRET    the secret of the registration link /register/<secret>
    SSC_TOKEN_SECRET               the secret the playbooks derive Jupyter tokens from, passed
                                   through to the jobs (needed when [jobs] pass_token_secret)

:func:`load` refuses (:class:`ConfigError`, a message for the operator) a missing secret, one
shorter than 16 characters (32 for SSC_TOKEN_SECRET), or a known default or example value.
Relative paths in the file are relative to the file's directory.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from web.validation import LaunchRequestError, check

GITHUB_COM = {
    "authorize_url": "https://github.com/login/oauth/authorize",
    "token_url": "https://github.com/login/oauth/access_token",
    "api_url": "https://api.github.com",
}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MIN_SECRET = 16
MIN_TOKEN_SECRET = 32  # what roles/user_vm asks of user_vm_token_secret
# Values (or parts of values) that show a secret was copied from an example, never chosen.
EXAMPLE_MARKERS = ("change-me", "changeme", "change_me", "replace-me", "replaceme", "example",
                   "default", "secret-here", "your-secret", "xxxxxxxx", "placeholder",
                   "0123456789abcdef")
KNOWN_DEFAULTS = frozenset({"secret", "password", "development", "development key", "dev",
                            "test", "testing", "admin", "letmein", "qwerty", "s3cr3t"})
REGISTRATION_SECRET = re.compile(r"[A-Za-z0-9._~-]+")  # it goes into a URL path
_LOGIN = re.compile(r"[A-Za-z0-9](?:-?[A-Za-z0-9])*")


class ConfigError(Exception):
    """The configuration is unusable; ``str(error)`` says what to fix."""


@dataclass(frozen=True)
class Config:
    """All settings. Constructed by :func:`load`; tests may build one directly."""

    # --- the site
    base_url: str = "http://127.0.0.1:8080"  # scheme://host[:port], no path
    database: Path = Path("var/web/ssc-web.sqlite3")
    default_repo: str = ""  # prefilled in the start form
    session_hours: float = 12.0
    # --- the WSGI server (ssc-web serve)
    host: str = "127.0.0.1"
    port: int = 8080
    threads: int = 8
    # --- GitHub (github.com, GitHub Enterprise or the local stand-in)
    github_client_id: str = ""
    github_client_secret: str = field(default="", repr=False)
    github_authorize_url: str = GITHUB_COM["authorize_url"]
    github_token_url: str = GITHUB_COM["token_url"]
    github_api_url: str = GITHUB_COM["api_url"]
    github_timeout: float = 10.0
    # --- who may start VMs (nobody by default; the blocked list wins)
    registration_secret: str = field(default="", repr=False)
    allowed_logins: tuple[str, ...] = ()
    allowed_orgs: tuple[str, ...] = ()  # "org" or "org:team" (team slug)
    blocked_logins: tuple[str, ...] = ()
    # --- what repositories may be asked for (as roles/user_vm's user_vm_allowed_hosts and
    # user_vm_allow_http_hosts)
    allowed_hosts: tuple[str, ...] = ("github.com", "gitlab.com", "codeberg.org")
    allow_http_hosts: tuple[str, ...] = ()
    # --- jobs (ssc-web worker)
    max_concurrent_jobs: int = 4
    job_timeout: int = 3600  # seconds a playbook run may take (a cache miss builds first)
    grace_period: int = 30  # seconds running jobs get to finish when the runner stops
    private_data_root: Path = Path("var/web/jobs")  # one private_data_dir per job below it
    playbook_dir: Path = Path("playbooks")
    inventory: str = "inventory/localcloud"
    job_env: Mapping[str, str] = field(default_factory=dict)  # more environment for the runs
    pass_token_secret: bool = True
    token_secret: str = field(default="", repr=False)  # SSC_TOKEN_SECRET, for the runs
    runner_stale_seconds: int = 60  # /healthz: the runner is dead after this long silent
    vm_refresh_interval: int = 300  # seconds between readings of the VMs from the cloud

    @property
    def secure_cookies(self) -> bool:
        """Secure cookies, except on a plain-HTTP site on this machine."""
        parts = urlsplit(self.base_url)
        return not (parts.scheme == "http" and parts.hostname in LOCAL_HOSTS)

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` as browsers write it in ``Origin``."""
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}".lower()

    @property
    def callback_url(self) -> str:
        return f"{self.base_url}/auth/callback"

    @property
    def scopes(self) -> list[str]:
        """``read:org`` when organizations or teams decide, otherwise none."""
        return ["read:org"] if self.allowed_orgs else []

    @property
    def github_over_http(self) -> bool:
        """GitHub is a plain-HTTP stand-in on this machine (tests, the demo)."""
        urls = (self.github_authorize_url, self.github_token_url, self.github_api_url)
        return any(urlsplit(url).scheme == "http" for url in urls)


# --- reading ---------------------------------------------------------------------------------


def load(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """The configuration in the TOML file `path`, with the secrets from `environ`
    (os.environ by default). Raises ConfigError with a clear message."""
    environ = os.environ if environ is None else environ
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read the configuration file {path}: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    return from_dict(data, environ, base_dir=path.resolve().parent, source=str(path))


SECTIONS = {
    "site": {"base_url", "database", "default_repo", "session_hours"},
    "server": {"host", "port", "threads"},
    "github": {"client_id", "authorize_url", "token_url", "api_url", "timeout"},
    "access": {"allowed_logins", "allowed_orgs", "blocked_logins"},
    "repos": {"allowed_hosts", "allow_http_hosts"},
    "jobs": {"max_concurrent", "timeout", "grace_period", "private_data_root", "playbook_dir",
             "inventory", "env", "pass_token_secret", "runner_stale_seconds",
             "vm_refresh_interval"},
}


def from_dict(data: Mapping, environ: Mapping[str, str], base_dir: Path | None = None,
              source: str = "the configuration") -> Config:
    """A Config from parsed TOML and the environment; see :func:`load`. Relative paths are
    relative to `base_dir` (the current directory by default)."""
    base_dir = Path.cwd() if base_dir is None else base_dir
    for section, value in data.items():
        if section not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{section}] "
                              f"(known: {', '.join(SECTIONS)})")
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {section} must be a table [{section}]")
        unknown = set(value) - SECTIONS[section]
        if unknown:
            raise ConfigError(f"{source}: unknown setting(s) {', '.join(sorted(unknown))} in "
                              f"[{section}] (known: {', '.join(sorted(SECTIONS[section]))})")
    read = _Reader(data, source, base_dir)
    defaults = Config()
    config = Config(
        base_url=read.text("site", "base_url", defaults.base_url).rstrip("/"),
        database=read.path("site", "database", defaults.database),
        default_repo=read.text("site", "default_repo", ""),
        session_hours=read.number("site", "session_hours", defaults.session_hours, 0.1, 24 * 30),
        host=read.text("server", "host", defaults.host),
        port=int(read.number("server", "port", defaults.port, 1, 65535)),
        threads=int(read.number("server", "threads", defaults.threads, 1, 256)),
        github_client_id=read.text("github", "client_id", ""),
        github_client_secret=environ.get("SSC_WEB_GITHUB_CLIENT_SECRET", ""),
        github_authorize_url=read.text("github", "authorize_url", GITHUB_COM["authorize_url"]),
        github_token_url=read.text("github", "token_url", GITHUB_COM["token_url"]),
        github_api_url=read.text("github", "api_url", GITHUB_COM["api_url"]).rstrip("/"),
        github_timeout=read.number("github", "timeout", defaults.github_timeout, 1, 120),
        registration_secret=environ.get("SSC_WEB_REGISTRATION_SECRET", ""),
        allowed_logins=read.strings("access", "allowed_logins"),
        allowed_orgs=read.strings("access", "allowed_orgs"),
        blocked_logins=read.strings("access", "blocked_logins"),
        allowed_hosts=read.strings("repos", "allowed_hosts", defaults.allowed_hosts),
        allow_http_hosts=read.strings("repos", "allow_http_hosts"),
        max_concurrent_jobs=int(read.number("jobs", "max_concurrent",
                                            defaults.max_concurrent_jobs, 1, 1000)),
        job_timeout=int(read.number("jobs", "timeout", defaults.job_timeout, 60, 86400)),
        grace_period=int(read.number("jobs", "grace_period", defaults.grace_period, 0, 3600)),
        private_data_root=read.path("jobs", "private_data_root", defaults.private_data_root),
        playbook_dir=read.path("jobs", "playbook_dir", defaults.playbook_dir),
        inventory=str(read.path("jobs", "inventory", Path(defaults.inventory))),
        job_env=read.table("jobs", "env"),
        pass_token_secret=read.flag("jobs", "pass_token_secret", True),
        token_secret=environ.get("SSC_TOKEN_SECRET", ""),
        runner_stale_seconds=int(read.number("jobs", "runner_stale_seconds",
                                             defaults.runner_stale_seconds, 5, 86400)),
        vm_refresh_interval=int(read.number("jobs", "vm_refresh_interval",
                                            defaults.vm_refresh_interval, 0, 86400)),
    )
    return validate(config)


class _Reader:
    def __init__(self, data: Mapping, source: str, base_dir: Path):
        self.data, self.source, self.base_dir = data, source, base_dir

    def _get(self, section: str, key: str, default):
        return self.data.get(section, {}).get(key, default)

    def _fail(self, section: str, key: str, wanted: str):
        raise ConfigError(f"{self.source}: [{section}] {key} must be {wanted}")

    def text(self, section: str, key: str, default: str) -> str:
        value = self._get(section, key, default)
        if not isinstance(value, str):
            self._fail(section, key, "a string")
        return value

    def number(self, section: str, key: str, default: float, low: float, high: float) -> float:
        value = self._get(section, key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                low <= value <= high):
            self._fail(section, key, f"a number from {low} to {high}")
        return value

    def flag(self, section: str, key: str, default: bool) -> bool:
        value = self._get(section, key, default)
        if not isinstance(value, bool):
            self._fail(section, key, "true or false")
        return value

    def strings(self, section: str, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._get(section, key, list(default))
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self._fail(section, key, "a list of strings")
        return tuple(value)

    def path(self, section: str, key: str, default: Path) -> Path:
        value = Path(self.text(section, key, str(default)))
        return value if value.is_absolute() else self.base_dir / value

    def table(self, section: str, key: str) -> dict[str, str]:
        value = self._get(section, key, {})
        if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            self._fail(section, key, "a table of strings")
        return dict(value)


# --- checking --------------------------------------------------------------------------------


def validate(config: Config) -> Config:
    """`config` if every setting and secret is usable; ConfigError for the first that is not."""
    _check_base_url(config.base_url)
    for name in ("authorize_url", "token_url", "api_url"):
        _check_github_url(f"[github] {name}", getattr(config, f"github_{name}"))
    if not config.github_client_id.strip():
        raise ConfigError("[github] client_id is missing: register an OAuth app on GitHub "
                          f"with the callback URL {config.callback_url} and put its id here")
    check_secret("SSC_WEB_GITHUB_CLIENT_SECRET", config.github_client_secret)
    check_secret("SSC_WEB_REGISTRATION_SECRET", config.registration_secret)
    if not REGISTRATION_SECRET.fullmatch(config.registration_secret):
        raise ConfigError("SSC_WEB_REGISTRATION_SECRET must be made of ASCII letters, digits "
                          "and . _ ~ - only (it is part of the registration link's path); "
                          "make one with: openssl rand -hex 24")
    if config.registration_secret == config.github_client_secret:
        raise ConfigError("SSC_WEB_REGISTRATION_SECRET must differ from the GitHub client "
                          "secret")
    if config.pass_token_secret:
        check_secret("SSC_TOKEN_SECRET", config.token_secret, MIN_TOKEN_SECRET)
    for setting, logins in (("allowed_logins", config.allowed_logins),
                            ("blocked_logins", config.blocked_logins)):
        for login in logins:
            if len(login) > 39 or not _LOGIN.fullmatch(login):
                raise ConfigError(f"[access] {setting}: {login!r} is not a GitHub login")
    for entry in config.allowed_orgs:
        org, _, team = entry.partition(":")
        if len(org) > 39 or not _LOGIN.fullmatch(org) or (":" in entry and not team.strip()):
            raise ConfigError(f"[access] allowed_orgs: {entry!r} is not 'org' or 'org:team'")
    try:
        check("checked", "https://github.com/a/b", None, config.allowed_hosts,
              config.allow_http_hosts)
    except LaunchRequestError:
        pass  # github.com need not be allowed; the host entries themselves were fine
    except ValueError as error:
        raise ConfigError(f"[repos]: {error}") from None
    if config.default_repo:
        try:
            check("checked", config.default_repo, None, config.allowed_hosts,
                  config.allow_http_hosts)
        except ValueError as error:
            raise ConfigError(f"[site] default_repo: {error}") from None
    return config


def check_secret(name: str, value: str, minimum: int = MIN_SECRET) -> str:
    """`value` if it may serve as the secret `name`; ConfigError otherwise."""
    how = "make one with: openssl rand -hex 32"
    if not value:
        raise ConfigError(f"the secret {name} is not set: put it in the service's environment "
                          f"(EnvironmentFile=/etc/ssc-web/secrets.env, mode 0600); {how}")
    if len(value) < minimum:
        raise ConfigError(f"the secret {name} is too short: at least {minimum} characters; "
                          f"{how}")
    lowered = value.lower()
    if (lowered in KNOWN_DEFAULTS or any(marker in lowered for marker in EXAMPLE_MARKERS)
            or len(set(value)) < 6):
        raise ConfigError(f"the secret {name} is a default or example value; {how}")
    return value


def _check_base_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"[site] base_url {url!r} must be an http(s)://host[:port] URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ConfigError(f"[site] base_url {url!r} must be scheme://host[:port] only, without "
                          "a path (serve the app at the root of its host name)")
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        raise ConfigError(f"[site] base_url {url!r} must be https:// (plain http:// only on "
                          "127.0.0.1 or localhost): sign-in and session cookies need TLS")


def _check_github_url(setting: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ConfigError(f"{setting} {url!r} must be an https:// URL")
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        raise ConfigError(f"{setting} {url!r} must be https:// (plain http:// only for a "
                          "stand-in on 127.0.0.1 or localhost)")
