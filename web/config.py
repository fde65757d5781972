"""Settings of the web trigger and its job runner (:class:`Config`): a TOML file for everything
but secrets and the repository hosts, the environment for secrets, the site's inventory for
the repository hosts (:mod:`web.inventory`: the playbooks read the same values there).
deploy/ssc-web.example.toml is the annotated example of the file.

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
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from ansible_collections.ssc.repo2docker.plugins.module_utils import launch_request

from web import inventory

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
VMS_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


class ConfigError(Exception):
    """The configuration is unusable; ``str(error)`` says what to fix."""


@dataclass(frozen=True)
class Config:
    """All settings of the app and the job runner, each under one name with its default here.

    A setting's name is its key in the TOML file (``[jobs] max_concurrent`` is
    ``max_concurrent``), prefixed with ``github_`` in ``[github]`` (``[github] client_id`` is
    ``github_client_id``). Secrets come from the environment, the repository hosts from the
    inventory (:mod:`web.inventory`); the last few settings are not in the file. Constructed
    by :func:`load`; tests build one with ``dataclasses.replace(Config(), ...)``. Relative
    paths are below the checkout for the job runner (:func:`load` makes them absolute).
    """

    # --- [site]
    base_url: str = "http://127.0.0.1:8080"  # scheme://host[:port], no path
    database: Path = Path("var/web/ssc-web.sqlite3")
    default_repo: str = ""  # prefilled in the start form
    session_hours: float = 12.0
    # --- [server]: the WSGI server (ssc-web serve)
    host: str = "127.0.0.1"
    port: int = 8080
    threads: int = 8
    # --- [github]: github.com, GitHub Enterprise or the local stand-in
    github_client_id: str = ""
    github_authorize_url: str = GITHUB_COM["authorize_url"]
    github_token_url: str = GITHUB_COM["token_url"]
    github_api_url: str = GITHUB_COM["api_url"]
    github_timeout: float = 10.0  # seconds
    # --- [access]: who may start VMs (nobody by default; the blocked list wins). Logins
    # (strings, bound to the account that held them when first seen: web/users.py) and
    # GitHub account ids (integers)
    allowed_logins: tuple[str | int, ...] = ()
    allowed_orgs: tuple[str, ...] = ()  # "org" or "org:team" (team slug)
    blocked_logins: tuple[str | int, ...] = ()
    membership_minutes: float = 15.0  # an org/team membership is read from GitHub this often
    # --- [jobs]: the job runner (ssc-web worker)
    max_concurrent: int = 4  # playbook runs at once, all users
    # seconds a playbook run may take: above roles/user_vm's own bounds (user_vm_cloud_timeout
    # + user_vm_build_timeout + 2 * user_vm_ready_timeout = 6900 s by default), so that a slow
    # build ends in the role, which deletes its VM, not by the runner's kill, which cannot
    job_timeout: int = 7800
    grace_period: int = 30  # seconds running jobs get to finish when the runner stops
    private_data_root: Path = Path("var/web/jobs")  # one private_data_dir per job below it
    playbook_dir: Path = Path("playbooks")
    inventory: Path | None = None  # the site's inventory (required in the file)
    env: Mapping[str, str] = field(default_factory=dict)  # more environment for the runs
    pass_token_secret: bool = True
    runner_stale_seconds: int = 60  # /healthz: the runner is dead after this long silent
    vm_refresh_interval: int = 300  # seconds between readings of the VMs from the cloud
    cull_interval: int = 0  # seconds between the runner's runs of playbooks/cull.yml (0: off)
    job_retention_days: float = 30.0  # finished jobs older than this are deleted
    # --- [proxy]: researchers reach their Jupyter through the site's proxy (web/proxy.py)
    vms_domain: str = ""  # host[:port]; VM <name> at <scheme>://<name>.<vms_domain>/
    auth_cache_seconds: float = 5.0  # how long an answer to the proxy may be reused
    # --- secrets, from the environment
    github_client_secret: str = field(default="", repr=False)
    registration_secret: str = field(default="", repr=False)
    token_secret: str = field(default="", repr=False)  # SSC_TOKEN_SECRET, for the runs
    # --- from the inventory: roles/user_vm's user_vm_allowed_hosts and
    # user_vm_allow_http_hosts, where repositories may come from (host[:port][/prefix]),
    # user_vm_case_insensitive_hosts and user_vm_subgroup_hosts, how their URLs are spelled
    # (launch_request.check_repo; the role's defaults/main.yml says what each does)
    allowed_hosts: tuple[str, ...] = ()
    allow_http_hosts: tuple[str, ...] = ()
    case_insensitive_hosts: tuple[str, ...] = ()
    subgroup_hosts: tuple[str, ...] = ()
    # --- not in the file: the playbook and the job runner's pace
    playbook: Path = Path("user_vm.yml")  # below playbook_dir (unless absolute)
    cull_playbook: Path = Path("cull.yml")  # the same, for cull_interval
    idle_timeout: int = 1800  # seconds a run may go without output (the playbook's cloud
    # waits print nothing for up to user_vm_cloud_timeout, 900 s)
    output_lines: int = 200  # lines of output kept per job
    poll_interval: float = 1.0  # seconds between looks for queued jobs
    heartbeat_interval: float = 5.0  # seconds between the runner's heartbeats

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
    def vms_scheme(self) -> str:
        """The VMs' host names use the app's scheme (https, or http on this machine)."""
        return urlsplit(self.base_url).scheme

    def vm_url(self, name: str) -> str:
        """Where the VM `name` is reached through the proxy, ``""`` without ``vms_domain``
        (the job page then links to the VM's own address)."""
        return f"{self.vms_scheme}://{name}.{self.vms_domain}/" if self.vms_domain else ""

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
    (os.environ by default) and the repository hosts from the inventory it names. Raises
    ConfigError with a clear message."""
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
    "access": {"allowed_logins", "allowed_orgs", "blocked_logins", "membership_minutes"},
    "jobs": {"max_concurrent", "job_timeout", "grace_period", "private_data_root",
             "playbook_dir", "inventory", "env", "pass_token_secret", "runner_stale_seconds",
             "vm_refresh_interval", "cull_interval", "job_retention_days"},
    "proxy": {"vms_domain", "auth_cache_seconds"},
}
# What an older file may still hold, and where it went.
MOVED = {
    ("repos", None): "the repository hosts are the inventory's: set user_vm_allowed_hosts "
                     "and user_vm_allow_http_hosts there ([jobs] inventory), and remove [repos]",
    ("jobs", "timeout"): "[jobs] timeout is now [jobs] job_timeout",
}


def from_dict(data: Mapping, environ: Mapping[str, str], base_dir: Path | None = None,
              source: str = "the configuration") -> Config:
    """A Config from parsed TOML, the environment and the inventory; see :func:`load`.
    Relative paths are relative to `base_dir` (the current directory by default)."""
    base_dir = Path.cwd() if base_dir is None else base_dir
    _check_names(data, source)
    read = _Reader(data, source, base_dir)
    default = Config()
    config = Config(
        base_url=read.text("site", "base_url", default.base_url).rstrip("/"),
        database=read.path("site", "database", default.database),
        default_repo=read.text("site", "default_repo", default.default_repo),
        session_hours=read.number("site", "session_hours", default.session_hours, 0.1, 24 * 30),
        host=read.text("server", "host", default.host),
        port=int(read.number("server", "port", default.port, 1, 65535)),
        threads=int(read.number("server", "threads", default.threads, 1, 256)),
        github_client_id=read.text("github", "client_id", default.github_client_id),
        github_authorize_url=read.text("github", "authorize_url",
                                       default.github_authorize_url),
        github_token_url=read.text("github", "token_url", default.github_token_url),
        github_api_url=read.text("github", "api_url", default.github_api_url).rstrip("/"),
        github_timeout=read.number("github", "timeout", default.github_timeout, 1, 120),
        allowed_logins=read.accounts("access", "allowed_logins"),
        allowed_orgs=read.strings("access", "allowed_orgs"),
        blocked_logins=read.accounts("access", "blocked_logins"),
        membership_minutes=read.number("access", "membership_minutes",
                                       default.membership_minutes, 1, 24 * 60),
        max_concurrent=int(read.number("jobs", "max_concurrent", default.max_concurrent,
                                       1, 1000)),
        job_timeout=int(read.number("jobs", "job_timeout", default.job_timeout, 60, 86400)),
        grace_period=int(read.number("jobs", "grace_period", default.grace_period, 0, 3600)),
        private_data_root=read.path("jobs", "private_data_root", default.private_data_root),
        playbook_dir=read.path("jobs", "playbook_dir", default.playbook_dir),
        inventory=read.path("jobs", "inventory", None),
        env=read.table("jobs", "env"),
        pass_token_secret=read.flag("jobs", "pass_token_secret", default.pass_token_secret),
        runner_stale_seconds=int(read.number("jobs", "runner_stale_seconds",
                                             default.runner_stale_seconds, 5, 86400)),
        vm_refresh_interval=int(read.number("jobs", "vm_refresh_interval",
                                            default.vm_refresh_interval, 0, 86400)),
        cull_interval=int(read.number("jobs", "cull_interval", default.cull_interval,
                                      0, 86400)),
        job_retention_days=read.number("jobs", "job_retention_days",
                                       default.job_retention_days, 1, 3650),
        vms_domain=read.text("proxy", "vms_domain", default.vms_domain).lower().strip("."),
        auth_cache_seconds=read.number("proxy", "auth_cache_seconds",
                                       default.auth_cache_seconds, 0, 60),
        github_client_secret=environ.get("SSC_WEB_GITHUB_CLIENT_SECRET", ""),
        registration_secret=environ.get("SSC_WEB_REGISTRATION_SECRET", ""),
        token_secret=environ.get("SSC_TOKEN_SECRET", ""),
    )
    return with_repository_hosts(validate(config))


def _check_names(data: Mapping, source: str) -> None:
    """ConfigError for an unknown (or moved) section or setting."""
    for section, value in data.items():
        if (section, None) in MOVED:
            raise ConfigError(f"{source}: [{section}]: {MOVED[section, None]}")
        if section not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{section}] "
                              f"(known: {', '.join(SECTIONS)})")
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {section} must be a table [{section}]")
        for key in value:
            if (section, key) in MOVED:
                raise ConfigError(f"{source}: {MOVED[section, key]}")
        unknown = set(value) - SECTIONS[section]
        if unknown:
            raise ConfigError(f"{source}: unknown setting(s) {', '.join(sorted(unknown))} in "
                              f"[{section}] (known: {', '.join(sorted(SECTIONS[section]))})")


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

    def accounts(self, section: str, key: str) -> tuple[str | int, ...]:
        """Logins (strings) and GitHub account ids (integers)."""
        value = self._get(section, key, [])
        if not isinstance(value, list) or not all(
                isinstance(item, str) or (isinstance(item, int) and not isinstance(item, bool))
                for item in value):
            self._fail(section, key, "a list of logins (strings) and account ids (integers)")
        return tuple(value)

    def path(self, section: str, key: str, default: Path | None) -> Path | None:
        text = self.text(section, key, "" if default is None else str(default))
        if not text:
            return None
        value = Path(text)
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
            if isinstance(login, int):
                if not 0 < login < 1 << 63:
                    raise ConfigError(f"[access] {setting}: {login} is not a GitHub "
                                      "account id (a positive whole number)")
            elif not launch_request.is_login(login):
                raise ConfigError(f"[access] {setting}: {login!r} is not a GitHub login "
                                  "(or write an account id as a number, without quotes)")
    for entry in config.allowed_orgs:
        org, _, team = entry.partition(":")
        if not launch_request.is_login(org) or (":" in entry and not team.strip()):
            raise ConfigError(f"[access] allowed_orgs: {entry!r} is not 'org' or 'org:team'")
    _check_vms_domain(config)
    if config.inventory is None:
        raise ConfigError("[jobs] inventory is missing: the site's inventory directory, "
                          "which the playbooks run with (copy inventory/example)")
    return config


def with_repository_hosts(config: Config) -> Config:
    """`config` with ``allowed_hosts``, ``allow_http_hosts``, ``case_insensitive_hosts``
    and ``subgroup_hosts`` as its inventory gives them to the playbooks
    (:func:`web.inventory.repository_hosts`), checked: ConfigError when the inventory cannot
    be read, an entry is not ``host[:port][/prefix]``, no host is allowed, or
    ``default_repo`` is not on an allowed host."""
    try:
        hosts = inventory.repository_hosts(config.inventory)
    except inventory.InventoryError as error:
        raise ConfigError(f"[jobs] inventory: {error}") from None
    config = replace(config, allowed_hosts=hosts.allowed, allow_http_hosts=hosts.allow_http,
                     case_insensitive_hosts=hosts.case_insensitive,
                     subgroup_hosts=hosts.subgroups)
    where = f"the inventory {config.inventory}"
    if not hosts.allowed:
        raise ConfigError(f"{where}: {inventory.ALLOWED_HOSTS} is empty: no repository "
                          "could be started")
    for name, entries in zip(inventory.SETTINGS, hosts, strict=True):
        for entry in entries:
            try:
                launch_request.AllowedHost(entry)
            except ValueError as error:
                raise ConfigError(f"{where}: {name}: {error}") from None
    if config.default_repo:
        try:
            launch_request.check_repo(config.default_repo, *hosts)
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


def _check_vms_domain(config: Config) -> None:
    """``[proxy] vms_domain`` is empty or ``host[:port]``, and not the app's own host name nor
    above it: a researcher's Jupyter must never share the app's origin or its cookies."""
    domain = config.vms_domain
    if not domain:
        return
    parts = urlsplit(f"//{domain}")
    try:
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        parts = None
    if (parts is None or not parts.hostname or parts.path or "@" in domain
            or not VMS_DOMAIN.fullmatch(parts.hostname)):
        raise ConfigError(f"[proxy] vms_domain {domain!r} must be a DNS name with an "
                          "optional :port (e.g. vms.binder.example.org), without a scheme")
    app_host = urlsplit(config.base_url).hostname or ""
    if app_host == parts.hostname or app_host.endswith("." + parts.hostname):
        raise ConfigError(f"[proxy] vms_domain {domain!r} must not be the app's host name or "
                          f"a domain above it ({app_host}): use a domain of its own, such as "
                          f"vms.{app_host}")


def _check_github_url(setting: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ConfigError(f"{setting} {url!r} must be an https:// URL")
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        raise ConfigError(f"{setting} {url!r} must be https:// (plain http:// only for a "
                          "stand-in on 127.0.0.1 or localhost)")
