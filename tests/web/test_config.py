"""web/config.py: settings from TOML, secrets from the environment; the app refuses to start
with a secret missing, short or a known default; `ssc-web` says so and exits 2."""

import subprocess
import tomllib
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest
import yaml

from web.app import make_app
from web.config import Config, ConfigError, from_dict, load

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "ssc-web.example.toml"
SECRETS_EXAMPLE = ROOT / "deploy" / "secrets.env.example"
SITE_INVENTORY = ROOT / "inventory" / "example"  # what an operator copies
ROLE_DEFAULTS = yaml.safe_load((ROOT / "roles" / "user_vm" / "defaults" / "main.yml").read_text())
GOOD = {
    "SSC_WEB_GITHUB_CLIENT_SECRET": "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "SSC_WEB_REGISTRATION_SECRET": "Rk3-xq9WmZ2pLb7Nv4Ty",
    "SSC_TOKEN_SECRET": "t0K3n-s3cr3t-4f9a8b7c6d5e4f3a2b1c0d9e",
}


def example_values() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in SECRETS_EXAMPLE.read_text().splitlines()
             if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def minimal(**sections) -> dict:
    """The least a file holds (a client id, an inventory), with `sections`' settings."""
    data = {"github": {"client_id": "Ov23liTest"}, "jobs": {"inventory": str(SITE_INVENTORY)}}
    for section, settings in sections.items():
        data[section] = data.get(section, {}) | settings
    return data


def example(**jobs) -> dict:
    """deploy/ssc-web.example.toml, on this checkout's example inventory (the file names
    /opt/ssc-repo2docker/inventory/mysite), with `jobs`' settings."""
    data = tomllib.loads(EXAMPLE.read_text())
    data["jobs"] |= {"inventory": str(SITE_INVENTORY)} | jobs
    return data


def test_the_example_loads_with_real_secrets():
    config = from_dict(example(), GOOD)
    assert config.base_url == "https://binder.example.org"
    assert config.secure_cookies
    assert config.database == Path("/var/lib/ssc-web/ssc-web.sqlite3")
    assert config.env["ANSIBLE_CONFIG"] == "/opt/ssc-repo2docker/ansible.cfg"
    assert config.scopes == []
    for name, value in GOOD.items():  # secrets never show in the config's repr
        assert value not in repr(config), name


def test_a_setting_has_the_name_of_its_key():
    """The job runner takes the same Config: [jobs] max_concurrent is config.max_concurrent."""
    config = from_dict(example(max_concurrent=2, job_timeout=120, grace_period=7,
                               env={"OS_CLOUD": "mysite"}), GOOD)
    assert (config.max_concurrent, config.job_timeout, config.grace_period) == (2, 120, 7)
    assert config.env == {"OS_CLOUD": "mysite"}
    assert from_dict(example(), GOOD).cull_interval == 600  # the example culls
    assert from_dict(example(cull_interval=0), GOOD).cull_interval == 0  # off
    with pytest.raises(ConfigError, match=r"\[jobs\] cull_interval must be a number"):
        from_dict(example(cull_interval=-1), GOOD)


def test_relative_paths_are_relative_to_the_file(tmp_path):
    path = tmp_path / "conf" / "ssc-web.toml"
    (path.parent / "site").mkdir(parents=True)
    (path.parent / "site" / "hosts.yml").write_text("all:\n  hosts:\n    localhost:\n")
    path.write_text('[github]\nclient_id = "x"\n[site]\nbase_url = "http://127.0.0.1:8080"\n'
                    'database = "db/web.sqlite3"\n[jobs]\nplaybook_dir = "../playbooks"\n'
                    'inventory = "site"\n')
    config = load(path, GOOD)
    assert config.database == path.parent / "db" / "web.sqlite3"
    assert config.playbook_dir == path.parent / ".." / "playbooks"
    assert config.inventory == path.parent / "site"
    assert not config.secure_cookies


# --- the repository hosts: the inventory's, as the playbooks see them ---------------------


def inventory(tmp_path, group_vars: str, hosts: str = "all:\n  hosts:\n    localhost:\n"):
    """A site inventory directory: hosts.yml and group_vars/all.yml."""
    directory = tmp_path / "inventory"
    (directory / "group_vars").mkdir(parents=True)
    (directory / "hosts.yml").write_text(hosts)
    (directory / "group_vars" / "all.yml").write_text(group_vars)
    return directory


def test_the_repository_hosts_are_the_inventorys(tmp_path):
    site = inventory(tmp_path, (
        "git_host: git.example.org\n"
        "user_vm_allowed_hosts: [github.com, \"{{ git_host }}/git\"]\n"
        "user_vm_allow_http_hosts: [\"{{ git_host }}\"]\n"))
    config = from_dict(minimal(jobs={"inventory": str(site)},
                               site={"default_repo": "http://git.example.org/git/a/b"}), GOOD)
    assert config.allowed_hosts == ("github.com", "git.example.org/git")
    assert config.allow_http_hosts == ("git.example.org",)
    assert all(type(host) is str for host in config.allowed_hosts + config.allow_http_hosts)


def test_the_spelling_settings_are_the_inventorys(tmp_path):
    site = inventory(tmp_path, (
        "user_vm_allowed_hosts: [github.com, git.example.org]\n"
        "user_vm_case_insensitive_hosts: [git.example.org]\n"
        "user_vm_subgroup_hosts: [git.example.org]\n"))
    config = from_dict(minimal(jobs={"inventory": str(site)},
                               site={"default_repo": "https://git.example.org/A/B/C.git"}), GOOD)
    assert config.case_insensitive_hosts == ("git.example.org",)
    assert config.subgroup_hosts == ("git.example.org",)


def test_without_them_the_roles_defaults_apply():
    config = from_dict(minimal(), GOOD)  # inventory/example says nothing of them
    assert list(config.allowed_hosts) == ROLE_DEFAULTS["user_vm_allowed_hosts"]
    assert list(config.allow_http_hosts) == ROLE_DEFAULTS["user_vm_allow_http_hosts"]
    assert list(config.case_insensitive_hosts) == ROLE_DEFAULTS["user_vm_case_insensitive_hosts"]
    assert list(config.subgroup_hosts) == ROLE_DEFAULTS["user_vm_subgroup_hosts"]


@pytest.mark.parametrize("group_vars, message", [
    ("user_vm_allowed_hosts: [https://github.com]\n", "is not host"),
    ("user_vm_allowed_hosts: []\n", "user_vm_allowed_hosts is empty"),
    ("user_vm_allowed_hosts: github.com\n", "must be a list"),
    ("user_vm_allow_http_hosts: [git@host]\n", "user_vm_allow_http_hosts"),
    ("user_vm_case_insensitive_hosts: [https://x.org]\n", "user_vm_case_insensitive_hosts"),
    ("user_vm_subgroup_hosts: x.org\n", "user_vm_subgroup_hosts must be a list"),
    ("user_vm_allowed_hosts: \"{{ undefined_name }}\"\n", "undefined_name"),
])
def test_unusable_hosts_in_the_inventory_are_refused_clearly(tmp_path, group_vars, message):
    site = inventory(tmp_path, group_vars)
    with pytest.raises(ConfigError, match=message):
        from_dict(minimal(jobs={"inventory": str(site)}), GOOD)


def test_an_unreadable_inventory_is_refused_clearly(tmp_path):
    with pytest.raises(ConfigError, match="inventory is missing"):
        from_dict({"github": {"client_id": "x"}}, GOOD)
    with pytest.raises(ConfigError, match="does not exist"):
        from_dict(minimal(jobs={"inventory": str(tmp_path / "none")}), GOOD)
    (tmp_path / "hosts.yml").write_text("- a list, not a mapping\n")
    with pytest.raises(ConfigError, match="could not be parsed as an inventory"):
        from_dict(minimal(jobs={"inventory": str(tmp_path / "hosts.yml")}), GOOD)


@pytest.mark.parametrize("name", list(GOOD))
def test_a_missing_secret_is_refused(name):
    with pytest.raises(ConfigError, match=f"{name} is not set"):
        from_dict(minimal(), {key: value for key, value in GOOD.items() if key != name})


@pytest.mark.parametrize("name", list(GOOD))
def test_a_short_secret_is_refused(name):
    with pytest.raises(ConfigError, match=f"{name} is too short"):
        from_dict(minimal(), GOOD | {name: "Ab3-x9Zq7"})


def test_the_token_secret_needs_32_characters():
    with pytest.raises(ConfigError, match="SSC_TOKEN_SECRET is too short: at least 32"):
        from_dict(minimal(), GOOD | {"SSC_TOKEN_SECRET": "q7W-e9Rt2Yu4Io6Pa8Sd0Fg1Hj3Kl5Zx"[:31]})


@pytest.mark.parametrize("name", list(GOOD))
def test_the_shipped_example_secrets_are_refused(name):
    with pytest.raises(ConfigError, match=f"{name} is a default or example value"):
        from_dict(minimal(), GOOD | {name: example_values()[name]})


@pytest.mark.parametrize("value", [
    "changeme-changeme-changeme-changeme", "CHANGE-ME-0123456789-abcdefghij", "x" * 40,
    "abababababababababababababababab", "your-secret-goes-here-please-1234",
    "0123456789abcdef0123456789abcdef", "example-secret-value-1234567890ab",
])
def test_default_looking_secrets_are_refused(value):
    with pytest.raises(ConfigError, match="default or example value"):
        from_dict(minimal(), GOOD | {"SSC_WEB_GITHUB_CLIENT_SECRET": value})


def test_the_token_secret_is_optional_when_the_inventory_has_it():
    environ = {key: value for key, value in GOOD.items() if key != "SSC_TOKEN_SECRET"}
    config = from_dict(minimal(jobs={"pass_token_secret": False}), environ)
    assert config.token_secret == ""


def test_the_registration_secret_must_fit_in_a_path():
    with pytest.raises(ConfigError, match="part of the registration link"):
        from_dict(minimal(), GOOD | {"SSC_WEB_REGISTRATION_SECRET": "Rk3/xq9WmZ2pLb7Nv4Ty"})


def test_secrets_must_differ():
    same = GOOD | {"SSC_WEB_REGISTRATION_SECRET": GOOD["SSC_WEB_GITHUB_CLIENT_SECRET"]}
    with pytest.raises(ConfigError, match="must differ"):
        from_dict(minimal(), same)


def test_access_lists_take_logins_and_account_ids():
    config = from_dict(minimal(access={"allowed_logins": ["alice", 1234567, "legacy-"],
                                       "blocked_logins": [42, "a--b"]}), GOOD)
    assert config.allowed_logins == ("alice", 1234567, "legacy-")
    assert config.blocked_logins == (42, "a--b")
    assert (config.membership_minutes, config.job_retention_days) == (15, 30)


@pytest.mark.parametrize("sections, message", [
    ({"github": {}}, "client_id is missing"),
    ({"site": {"base_url": "http://binder.example.org"}}, "must be https://"),
    ({"site": {"base_url": "https://binder.example.org/app"}}, "without a path"),
    ({"site": {"base_url": "binder.example.org"}}, "must be an http"),
    ({"github": {"client_id": "x", "token_url": "http://ghe.example.org/t"}}, "https://"),
    ({"access": {"allowed_orgs": ["acme:"]}}, "is not 'org' or 'org:team'"),
    ({"access": {"allowed_orgs": ["not an org"]}}, "is not 'org' or 'org:team'"),
    ({"access": {"allowed_logins": ["-bad-"]}}, "is not a GitHub login"),
    ({"access": {"blocked_logins": "alice"}}, "must be a list of logins"),
    ({"access": {"blocked_logins": [True]}}, "must be a list of logins"),
    ({"access": {"allowed_logins": [0]}}, "is not a GitHub account id"),
    ({"access": {"allowed_logins": ["1234 5"]}}, "is not a GitHub login"),
    ({"access": {"membership_minutes": 0}}, "membership_minutes must be a number"),
    ({"jobs": {"job_retention_days": 0}}, "job_retention_days must be a number"),
    ({"repos": {"allowed_hosts": ["github.com"]}}, "user_vm_allowed_hosts"),
    ({"jobs": {"timeout": 600}}, "job_timeout"),
    ({"site": {"default_repo": "https://evil.example/a/b"}}, "default_repo"),
    ({"server": {"threads": 0}}, "threads must be a number"),
    ({"jobs": {"env": {"X": 1}}}, "a table of strings"),
    ({"jobs": {"pass_token_secret": "yes"}}, "true or false"),
    ({"jobs": {"grace_period": -1}}, "grace_period must be a number from 0 to 3600"),
    ({"sitee": {}}, "unknown section"),
    ({"site": {"base_ulr": "x"}}, "unknown setting"),
])
def test_bad_settings_are_refused_clearly(sections, message):
    data = minimal(**sections)
    if "github" in sections and "client_id" not in sections["github"]:
        data["github"] = sections["github"]
    with pytest.raises(ConfigError, match=message):
        from_dict(data, GOOD)


def test_organizations_ask_for_read_org():
    config = from_dict(minimal(access={"allowed_orgs": ["acme:devs"]}), GOOD)
    assert config.scopes == ["read:org"]


@pytest.mark.parametrize("base_url, secure", [
    ("https://binder.example.org", True), ("http://127.0.0.1:8080", False),
    ("http://localhost:8080", False), ("https://127.0.0.1:8443", True),
])
def test_secure_cookies(base_url, secure):
    assert Config(base_url=base_url).secure_cookies is secure


def test_an_https_site_sets_a_secure_host_only_cookie(tmp_path):
    config = from_dict(minimal(site={"base_url": "https://binder.example.org",
                                     "database": str(tmp_path / "db.sqlite3")}), GOOD)
    app = make_app(config)
    environ = {"PATH_INFO": "/auth/login", "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers

    b"".join(app(environ, start_response))
    assert seen["status"].startswith("302")
    cookie = dict(seen["headers"])["Set-Cookie"]  # the sign-in under way (web/pending.py)
    assert cookie.startswith("__Host-ssc_signin_")
    assert "Secure" in cookie and "HttpOnly" in cookie and "Domain" not in cookie
    assert "Path=/;" in cookie or cookie.endswith("Path=/")


def test_the_example_is_valid_toml_with_known_settings():
    from_dict(example(), GOOD)  # no unknown section or setting


def test_ssc_web_refuses_to_start_without_secrets(tmp_path):
    environ = {"PATH": "/usr/bin:/bin", "SSC_WEB_GITHUB_CLIENT_SECRET": "changeme"}
    for command in ("serve", "worker"):
        result = subprocess.run([str(ROOT / ".venv" / "bin" / "ssc-web"), command, "--config",
                                 str(EXAMPLE)], env=environ, capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 2
        assert "SSC_WEB_GITHUB_CLIENT_SECRET is too short" in result.stderr
        assert "Traceback" not in result.stderr


def test_ssc_web_says_when_the_file_is_missing(tmp_path):
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "ssc-web"), "serve", "--config",
                             str(tmp_path / "none.toml")], capture_output=True, text=True,
                            timeout=60, check=False, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "cannot read the configuration file" in result.stderr
