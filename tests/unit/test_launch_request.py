"""The launch request check (plugins/module_utils/launch_request.py) and its module.

The module utility is imported the way the web app imports it, as part of the collection
`ssc.repo2docker` found in var/collections; the module runs through a real ansible-playbook.
"""

import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / "var" / "collections"
PLAYBOOK = Path(__file__).parent / "playbooks" / "launch_request.yml"


def _link_collection():
    """What scripts/setup.sh's link_collection does, for a checkout without `make setup`."""
    link = COLLECTIONS / "ansible_collections" / "ssc" / "repo2docker"
    if not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("..", "..", "..", ".."))


_link_collection()
sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.ssc.repo2docker.plugins.module_utils.launch_request import (  # noqa: E402
    CASE_INSENSITIVE_HOSTS,
    LaunchRequestError,
    canonical_url,
    check,
    check_ref,
    check_repo,
    check_user,
    check_user_id,
    legacy_vm_name,
    vm_name,
)

# The role's default hosts (a site's, unless its inventory says otherwise).
ROLE_HOSTS = tuple(yaml.safe_load((ROOT / "roles" / "user_vm" / "defaults" / "main.yml")
                                  .read_text())["user_vm_allowed_hosts"])
LOCAL_HOSTS = (*ROLE_HOSTS, "10.89.0.1:8770/git")
LOCAL_HTTP = ("10.89.0.1:8770",)
GOOD = {"user": "octocat", "repo": "https://github.com/binder-examples/requirements",
        "ref": "main"}


def refused(field, value, match=None, **kwargs):
    """Check `value` as `field` and return the LaunchRequestError it must raise."""
    checker = {"user": check_user, "user_id": check_user_id, "repo": check_repo,
               "ref": check_ref}[field]
    if field == "repo":
        kwargs.setdefault("allowed_hosts", ROLE_HOSTS)
    with pytest.raises(LaunchRequestError) as caught:
        checker(value, **kwargs)
    error = caught.value
    assert error.field == field
    assert str(error).startswith(f"{field} ")
    if match is not None:
        assert match in error.reason, str(error)
    return error


# --- accepted -----------------------------------------------------------------------------


@pytest.mark.parametrize("login", ["octocat", "OctoCat", "a", "A1", "a-b-c", "1234",
                                   "x" * 39, "a-" * 19 + "b",
                                   # legacy logins GitHub still has, and managed users'
                                   "a--b", "name-", "a-_acme", "ada_acme"])
def test_user_accepted_as_given(login):
    assert check_user(login) == login


@pytest.mark.parametrize(("user_id", "name"), [
    (583231, "ssc-r2d-583231"),
    ("1", "ssc-r2d-1"),
    ("9" * 20, "ssc-r2d-" + "9" * 20),
])
def test_vm_name_is_the_account_id(user_id, name):
    assert vm_name(user_id) == name
    assert len(name) <= 63
    assert all(char in "abcdefghijklmnopqrstuvwxyz0123456789-" for char in name)


@pytest.mark.parametrize("user_id", ["octocat", "0", "-1", "01", "", 0, True, "1 ", "1.5"])
def test_vm_name_refuses_what_is_not_an_account_id(user_id):
    with pytest.raises(LaunchRequestError, match=r"^user_id "):
        vm_name(user_id)


@pytest.mark.parametrize(("login", "name"), [
    ("octocat", "ssc-r2d-octocat"),
    ("OctoCat", "ssc-r2d-octocat"),
    ("Dr-Who-42", "ssc-r2d-dr-who-42"),
    ("legacy-", "ssc-r2d-legacy-"),
])
def test_legacy_vm_name_is_the_login_in_lower_case(login, name):
    assert legacy_vm_name(login) == name


def test_legacy_vm_name_refuses_an_invalid_login():
    with pytest.raises(LaunchRequestError, match=r"^user "):
        legacy_vm_name("a.b")


@pytest.mark.parametrize(("url", "rebuilt"), [
    ("https://github.com/binder-examples/requirements",
     "https://github.com/binder-examples/requirements"),
    ("https://github.com/binder-examples/requirements.git",
     "https://github.com/binder-examples/requirements"),
    ("HTTPS://GitHub.COM/Owner/Repo", "https://github.com/owner/repo"),
    ("https://github.com/a/b/", "https://github.com/a/b"),
    ("https://github.com/a/b.git/", "https://github.com/a/b"),
    ("https://gitlab.com/a.b/c_d-e.git", "https://gitlab.com/a.b/c_d-e"),
    ("https://codeberg.org/x/y", "https://codeberg.org/x/y"),
    ("https://github.com/0/repo.", "https://github.com/0/repo."),
    ("https://github.com/a/" + "b" * 100, "https://github.com/a/" + "b" * 100),
])
def test_repo_accepted_and_rebuilt(url, rebuilt):
    assert check_repo(url, ROLE_HOSTS) == rebuilt


@pytest.mark.parametrize(("url", "rebuilt"), [
    ("http://10.89.0.1:8770/git/ssc/sample-notebook.git",
     "http://10.89.0.1:8770/git/ssc/sample-notebook"),
    ("http://10.89.0.1:8770/git/SSC/Sample-Notebook.git",
     "http://10.89.0.1:8770/git/SSC/Sample-Notebook"),
    ("https://10.89.0.1:8770/git/ssc/sample-notebook", "https://10.89.0.1:8770/git/ssc/sample-notebook"),
    ("HTTP://10.89.0.1:8770/git/ssc/x/", "http://10.89.0.1:8770/git/ssc/x"),
    ("https://github.com/a/b", "https://github.com/a/b"),
])
def test_repo_on_the_local_git_host(url, rebuilt):
    assert check_repo(url, LOCAL_HOSTS, allow_http_hosts=LOCAL_HTTP) == rebuilt


def test_allow_http_hosts_entries_may_carry_the_prefix():
    url = "http://10.89.0.1:8770/git/a/b"
    assert check_repo(url, LOCAL_HOSTS, ["10.89.0.1:8770/git"]) == url


def test_one_host_with_two_prefixes():
    hosts = ["git.example.org/one", "git.example.org/two/deep"]
    assert check_repo("https://git.example.org/one/a/b", hosts) == "https://git.example.org/one/a/b"
    assert (check_repo("https://GIT.example.org/two/deep/a/b.git", hosts)
            == "https://git.example.org/two/deep/a/b")
    error = refused("repo", "https://git.example.org/three/a/b", allowed_hosts=hosts)
    assert "/one/<owner>/<name> or /two/deep/<owner>/<name>" in error.reason


def test_host_entry_case_and_trailing_slash():
    assert check_repo("https://github.com/a/b", ["GitHub.com/"]) == "https://github.com/a/b"


# --- one spelling per repository ------------------------------------------------------------

SAMPLE = "http://10.89.0.1:8770/git/ssc/sample-notebook"


@pytest.mark.parametrize("host", ["github.com", "gitlab.com", "codeberg.org"])
@pytest.mark.parametrize("spelling", [
    "https://{host}/Binder-Examples/Requirements",
    "https://{host}/binder-examples/requirements.git",
    "https://{host}/BINDER-EXAMPLES/REQUIREMENTS.git/",
    "HTTPS://{HOST}/binder-examples/requirements/",
])
def test_every_spelling_on_a_case_insensitive_host_is_one_url(host, spelling):
    url = spelling.format(host=host, HOST=host.upper())
    expected = f"https://{host}/binder-examples/requirements"
    assert canonical_url(url) == expected
    assert check_repo(url, ROLE_HOSTS) == expected
    assert canonical_url(expected) == expected  # a canonical URL stays as it is


def test_the_built_in_case_insensitive_hosts_are_the_role_defaults_allowed_hosts():
    assert set(CASE_INSENSITIVE_HOSTS) == set(ROLE_HOSTS)


@pytest.mark.parametrize("spelling", [SAMPLE, SAMPLE + ".git", SAMPLE + "/", SAMPLE + ".git/",
                                      "HTTP://10.89.0.1:8770/git/ssc/sample-notebook"])
def test_other_hosts_drop_git_and_the_slash_but_keep_the_case(spelling):
    assert canonical_url(spelling) == SAMPLE
    assert canonical_url("http://10.89.0.1:8770/git/SSC/Sample-Notebook.git") == (
        "http://10.89.0.1:8770/git/SSC/Sample-Notebook")


def test_a_site_may_name_more_case_insensitive_hosts():
    hosts = ["10.89.0.1:8770/git"]
    assert canonical_url("http://10.89.0.1:8770/git/SSC/Sample-Notebook.git", hosts) == SAMPLE
    # the prefix keeps its case: it must match as written
    assert canonical_url("http://10.89.0.1:8770/GIT/SSC/x", hosts) == (
        "http://10.89.0.1:8770/GIT/SSC/x")
    assert canonical_url("https://Git.Example.ORG/A/B", ["git.example.org"]) == (
        "https://git.example.org/a/b")
    assert check_repo("http://10.89.0.1:8770/git/SSC/Sample-Notebook/", LOCAL_HOSTS,
                      LOCAL_HTTP, case_insensitive_hosts=hosts) == SAMPLE


def test_no_other_host_is_case_insensitive():
    assert canonical_url("https://github.com.evil.org/A/B") == "https://github.com.evil.org/A/B"
    assert canonical_url("https://github.com:8443/A/B") == "https://github.com:8443/A/B"


@pytest.mark.parametrize("url", [
    "https://gitlab.com/Group/Sub/Project",
    "https://gitlab.com/group/sub/project.git",
    "https://GITLAB.com/group/SUB/project/",
])
def test_gitlab_subgroups_are_accepted(url):
    assert check_repo(url, ROLE_HOSTS) == "https://gitlab.com/group/sub/project"


def test_gitlab_allows_twenty_groups():
    deep = "https://gitlab.com/" + "g/" * 20 + "p"
    assert check_repo(deep, ROLE_HOSTS) == deep
    refused("repo", "https://gitlab.com/" + "g/" * 21 + "p",
            "the path must be /<group>[/<subgroup>...]/<name>")


@pytest.mark.parametrize(("url", "why"), [
    ("https://github.com/a/b/c", "the path must be /<owner>/<name>"),
    ("https://codeberg.org/a/b/c", "the path must be /<owner>/<name>"),
    ("https://gitlab.com/a", "the path must be /<group>[/<subgroup>...]/<name>"),
    ("https://gitlab.com/a/-/tree/main", "must start with a letter or digit"),
    ("https://gitlab.com/a/b/../c", "must start with a letter or digit"),
    ("https://gitlab.com/a//b", "the group is empty"),
    ("https://gitlab.com/a/b@c/d", "'@'"),
    ("https://gitlab.com/a/b%2Fc/d", "'%'"),
    ("https://gitlab.com/a/b.git/c", "the group ends in .git"),
    ("https://github.com/a.git/c", "the owner ends in .git"),
])
def test_subgroups_only_where_the_host_has_them(url, why):
    refused("repo", url, why)


def test_a_site_may_name_more_subgroup_hosts():
    hosts = [*ROLE_HOSTS, "git.example.org", "10.89.0.1:8770/git"]
    assert check_repo("https://git.example.org/a/b/c.git", hosts,
                      subgroup_hosts=["git.example.org"]) == "https://git.example.org/a/b/c"
    assert check_repo("http://10.89.0.1:8770/git/a/b/c", hosts, LOCAL_HTTP,
                      subgroup_hosts=["10.89.0.1:8770/git"]) == "http://10.89.0.1:8770/git/a/b/c"
    refused("repo", "https://git.example.org/a/b/c", "the path must be /<owner>/<name>",
            allowed_hosts=hosts)


@pytest.mark.parametrize(("url", "why"), [
    ("https://user:pass@github.com/a/b", "'@'"),
    ("git@github.com:a/b.git", "'@'"),
    ("file:///etc/passwd", "scheme file://"),
    ("ext::sh -c x", "space"),
    ("ext::sh", "transport::address"),
    ("git://github.com/a/b", "scheme git://"),
    ("https://github.com/a/b?x=1", "query"),
    ("https://github.com/a/b#x", "fragment"),
    ("https://github.com/a/b%2F..", "'%'"),
    ("https://github.com/a\\b/c", "backslash"),
    ("https://github.com/../b", "must start with a letter or digit"),
    ("https://github.com/a/b..c", "'..'"),
    ("https://github.com/a/b.git.git", "ends in .git twice"),
    ("https://github.com/a/$(id)", "must start with a letter or digit"),
    ("https://github.com/a", "the path must be"),
    ("https:///a/b", "it has no host"),
    ("https://-x/a/b", "is not a host name"),
    ("https://g\u0456thub.com/a/b", "non-ASCII"),
    ("https://github.com/a/b\n", "line break"),
    ("-https://github.com/a/b", "starts with '-'"),
    (None, "must be a string"),
])
def test_canonical_url_refuses_what_check_repo_refuses(url, why):
    with pytest.raises(LaunchRequestError) as caught:
        canonical_url(url)
    assert why in caught.value.reason, str(caught.value)


@pytest.mark.parametrize("setting", ["github.com", ["https://x.org"], [None]])
def test_a_bad_case_insensitive_hosts_setting_is_an_operator_error(setting):
    with pytest.raises(ValueError) as caught:
        canonical_url("https://github.com/a/b", setting)
    assert not isinstance(caught.value, LaunchRequestError)


def test_the_filter_is_the_same_rule():
    spec = importlib.util.spec_from_file_location(
        "canonical_url_filter", ROOT / "plugins" / "filter" / "canonical_url.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    spell = plugin.FilterModule().filters()["canonical_url"]
    assert spell("https://GitHub.com/SSC/Sample.git/") == "https://github.com/ssc/sample"
    assert spell("http://h:1/git/A/b.git", ["h:1/git"]) == "http://h:1/git/a/b"
    from ansible.errors import AnsibleFilterError
    with pytest.raises(AnsibleFilterError, match="'@'"):
        spell("https://user@github.com/a/b")


@pytest.mark.parametrize("ref", ["main", "v1.0", "feature/x", "refs/heads/main",
                                 "refs/pull/1/head", "9cbd095e565c4e9f1d4c78643d13a92fd67a6817",
                                 "release-2024.01", "a+b", "user@host", "a_b", "x" * 255,
                                 "a.lockb", "HEAD", "@a", "a@"])
def test_ref_accepted(ref):
    assert check_ref(ref) == ref


@pytest.mark.parametrize("ref", [None, ""])
def test_no_ref_means_the_default_branch(ref):
    assert check_ref(ref) is None


def test_check_returns_the_checked_request():
    assert check("OctoCat", "https://GitHub.com/binder-examples/requirements/", "v1",
                 ROLE_HOSTS, user_id=583231) == {
        "user": "OctoCat", "user_id": "583231",
        "repo": "https://github.com/binder-examples/requirements",
        "ref": "v1", "vm_name": "ssc-r2d-583231"}
    assert check("a", "http://10.89.0.1:8770/git/a/b.git", None, LOCAL_HOSTS, LOCAL_HTTP) == {
        "user": "a", "repo": "http://10.89.0.1:8770/git/a/b", "ref": None}


@pytest.mark.parametrize(("request_", "field"), [
    ({"user": "-x", "repo": "file:///etc/passwd", "ref": ".."}, "user"),
    ({"user": "x", "user_id": "x", "repo": "file:///etc/passwd", "ref": ".."}, "user_id"),
    ({"user": "x", "repo": "file:///etc/passwd", "ref": ".."}, "repo"),
    ({"user": "x", "repo": "https://github.com/a/b", "ref": ".."}, "ref"),
])
def test_check_stops_at_the_first_problem(request_, field):
    with pytest.raises(LaunchRequestError) as caught:
        check(**request_, allowed_hosts=ROLE_HOSTS)
    assert caught.value.field == field


# --- refused: hostile values in every field -----------------------------------------------

HOSTILE = [
    "{{ lookup('pipe','id') }}",
    "{{lookup('pipe','id')}}",
    "{% for x in range(10) %}x{% endfor %}",
    "{#x#}",
    "a;id",
    "$(id)",
    "a$(id)",
    "${IFS}",
    "`id`",
    "a`id`",
    "a|id",
    "a&&id",
    "a&id",
    "a>b",
    "a<b",
    "a'b",
    'a"b',
    "a!b",
    "a\nid",
    "a\rid",
    "a\r\nb",
    "a\tb",
    "a b",
    " a",
    "a\x00b",
    "a\x1b[31m",
    "a\x7f",
    "--upload-pack=touch /tmp/x",
    "--upload-pack=id",
    "-x",
    "-",
    "ext::sh -c touch% /tmp/pwned",
    "ext::sh",
    "file:///etc/passwd",
    "..",
    "a/../b",
    "\u0456",  # Cyrillic small i
    "g\u0456thub",
    "\uff47ithub",  # fullwidth g
    "\u2170",  # small roman numeral one
    "a\u200bb",  # zero-width space
    "a\u00a0b",  # no-break space
    "K\u212a",  # Kelvin sign
    "a\u0131",  # dotless i
    "x" * 10_000,
]
VALID_BEFORE_NEWLINE = {"user": "octocat", "repo": "https://github.com/a/b", "ref": "main"}


@pytest.mark.parametrize("field", ["user", "repo", "ref"])
@pytest.mark.parametrize("value", HOSTILE, ids=lambda value: ascii(value)[:40])
def test_hostile_value_refused(field, value):
    error = refused(field, value)
    assert len(str(error)) < 400, "a long value must not come back whole"


@pytest.mark.parametrize("field", ["user", "repo", "ref"])
@pytest.mark.parametrize("tail", ["\n", "\r", "\r\n", "\x00", " ", "\t", "\u2028"])
def test_trailing_junk_after_a_valid_value_refused(field, tail):
    refused(field, VALID_BEFORE_NEWLINE[field] + tail)


@pytest.mark.parametrize("field", ["user", "repo"])
@pytest.mark.parametrize("value", [None, 1, b"octocat", ["octocat"], ""])
def test_not_a_non_empty_string_refused(field, value):
    refused(field, value)


@pytest.mark.parametrize("value", [1, b"main", ["main"]])
def test_ref_not_a_string_refused(value):
    refused("ref", value, "string")


def test_long_value_truncated_in_the_message():
    error = refused("repo", "https://github.com/a/" + "b" * 10_000)
    assert "(10021 characters)" in str(error)
    assert len(str(error)) < 200


def test_look_alike_shown_escaped_in_the_message():
    error = refused("repo", "https://g\u0456thub.com/a/b", "non-ASCII")
    assert "\\u0456" in str(error)
    assert str(error).isascii()


# --- refused: user ------------------------------------------------------------------------

@pytest.mark.parametrize("login", ["-a", "_a", "a_", "a__b", "a_b-", "a_b_c", "a.b", "a/b",
                                   "x" * 40, "@a", "a@b", "a+b", "a:b"])
def test_user_refused(login):
    refused("user", login)


@pytest.mark.parametrize("user_id", ["1", "583231", 583231, "9" * 20])
def test_user_id_accepted(user_id):
    assert check_user_id(user_id) == str(user_id)


@pytest.mark.parametrize("user_id", ["", "0", "012", "-1", "1.0", "1e3", " 1", "1\n", True,
                                     None, "9" * 21, "\uff11"])
def test_user_id_refused(user_id):
    refused("user_id", user_id)


# --- refused: repo ------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "why"), [
    # credentials, user names
    ("https://user:pass@github.com/a/b", "'@'"),
    ("https://token@github.com/a/b", "'@'"),
    ("https://github.com@evil.org/a/b", "'@'"),
    ("https://github.com/a/b@main", "'@'"),
    ("git@github.com:a/b.git", "'@'"),
    # hosts off the list
    ("https://github.com.evil.org/a/b", "not one of the allowed hosts"),
    ("https://evil.org/github.com/a/b", "not one of the allowed hosts"),
    ("https://evilgithub.com/a/b", "not one of the allowed hosts"),
    ("https://api.github.com/a/b", "not one of the allowed hosts"),
    ("https://github.com./a/b", "not one of the allowed hosts"),
    ("https://github.com:443/a/b", "not one of the allowed hosts"),
    ("https://github.com:/a/b", "not one of the allowed hosts"),
    ("https://127.0.0.1/a/b", "not one of the allowed hosts"),
    ("https://[::1]/a/b", "transport::address"),
    ("https:///github.com/a/b", "not one of the allowed hosts"),
    ("https://", "not one of the allowed hosts"),
    # look-alikes
    ("https://g\u0456thub.com/a/b", "non-ASCII"),
    ("https://\uff47ithub.com/a/b", "non-ASCII"),
    ("https://github\u3002com/a/b", "non-ASCII"),  # ideographic full stop
    ("https://github.com/\u2170/b", "non-ASCII"),
    ("https://github.com/a/b\u200b", "non-ASCII"),
    ("\uff48ttps://github.com/a/b", "non-ASCII"),
    # schemes and git's other address forms
    ("file:///etc/passwd", "scheme file://"),
    ("FILE:///etc/passwd", "scheme file://"),
    ("git://github.com/a/b", "scheme git://"),
    ("ssh://github.com/a/b", "scheme ssh://"),
    ("ftp://github.com/a/b", "scheme ftp://"),
    ("http://github.com/a/b", "http:// is not accepted for github.com"),
    ("ext::sh -c touch% /tmp/pwned", "space"),
    ("ext::sh", "transport::address"),
    ("https::github.com/a/b", "transport::address"),
    ("github.com/a/b", "not an https:// URL"),
    ("github.com:a/b", "not an https:// URL"),
    ("//github.com/a/b", "not an https:// URL"),
    ("https:/github.com/a/b", "not an https:// URL"),
    ("https:github.com/a/b", "not an https:// URL"),
    ("/etc/passwd", "not an https:// URL"),
    ("./repo", "not an https:// URL"),
    ("-https://github.com/a/b", "starts with '-'"),
    ("--upload-pack=id", "starts with '-'"),
    # encoding and separators
    ("https://github.com/a/b%2F..%2Fc", "'%'"),
    ("https://github%2Ecom/a/b", "'%'"),
    ("https://github.com/%61/b", "'%'"),
    ("https://github.com\\.evil.org/a/b", "backslash"),
    ("https://github.com/a\\b/c", "backslash"),
    # query, fragment
    ("https://github.com/a/b?x=1", "query"),
    ("https://github.com/a/b?", "query"),
    ("https://github.com?/a/b", "query"),
    ("https://github.com/a/b#main", "fragment"),
    ("https://github.com#@evil.org/a/b", "'@'"),
    # paths
    ("https://github.com/a/b/c", "the path must be /<owner>/<name>"),
    ("https://github.com/a/b/tree/main", "the path must be"),
    ("https://github.com/a", "the path must be"),
    ("https://github.com/a/", "the path must be"),
    ("https://github.com/", "the path must be"),
    ("https://github.com", "the path must be"),
    ("https://github.com/a/b//", "the path must be"),
    ("https://github.com//a/b", "the path must be"),
    ("https://github.com/a//b", "the path must be"),
    ("https://github.com/a/b.git.git", "ends in .git twice"),
    ("https://github.com/a/.git", "the repository name is empty"),
    ("https://github.com/a/..", "must start with a letter or digit"),
    ("https://github.com/../a/b", "the path must be"),
    ("https://github.com/a/b/../c", "the path must be"),
    ("https://github.com/a/b..c", "'..'"),
    ("https://github.com/a..b/c", "'..'"),
    ("https://github.com/.a/b", "must start with a letter or digit"),
    ("https://github.com/-a/b", "must start with a letter or digit"),
    ("https://github.com/a/_b", "must start with a letter or digit"),
    ("https://github.com/a/b;id", "must start with a letter or digit"),
    ("https://github.com/a/$(id)", "must start with a letter or digit"),
    ("https://github.com/a/b|id", "must start with a letter or digit"),
    ("https://github.com/a/b&&id", "must start with a letter or digit"),
    ("https://github.com/a/`id`", "must start with a letter or digit"),
    ("https://github.com/{{a}}/b", "must start with a letter or digit"),
    ("https://github.com/a/" + "b" * 101, "longer than 100"),
    ("https://github.com/" + "a" * 101 + "/b", "longer than 100"),
    # white space and control characters
    ("https://github.com/a/b\n", "line break"),
    ("https://github.com/a/b\r\nHost: evil.org", "line break"),
    (" https://github.com/a/b", "space"),
    ("https://github.com/a /b", "space"),
    ("https://github.com/a/b\x00", "control"),
    # length
    ("https://github.com/a/" + "b" * 2000, "longer than 2000"),
    ("https://github.com/a/" + "b" * 10_000, "longer than 2000"),
])
def test_repo_refused(url, why):
    refused("repo", url, why)


@pytest.mark.parametrize(("url", "why"), [
    ("http://10.89.0.1:8770/ssc/x.git", "/git/<owner>/<name>"),
    ("http://10.89.0.1:8770/GIT/ssc/x.git", "/git/<owner>/<name>"),
    ("http://10.89.0.1:8770/git/x.git", "/git/<owner>/<name>"),
    ("http://10.89.0.1:8770/gitx/a/b", "/git/<owner>/<name>"),
    ("http://10.89.0.1/git/a/b", "not one of the allowed hosts"),
    ("http://10.89.0.1:8771/git/a/b", "not one of the allowed hosts"),
    ("http://10.89.0.1:08770/git/a/b", "not one of the allowed hosts"),
    ("http://10.89.0.10:8770/git/a/b", "not one of the allowed hosts"),
    ("http://github.com/a/b", "http:// is not accepted for github.com"),
])
def test_repo_refused_on_the_local_git_host(url, why):
    refused("repo", url, why, allowed_hosts=LOCAL_HOSTS, allow_http_hosts=LOCAL_HTTP)


def test_http_needs_allow_http_hosts():
    refused("repo", "http://10.89.0.1:8770/git/a/b", "http:// is not accepted",
            allowed_hosts=LOCAL_HOSTS)


def test_http_host_must_still_be_allowed():
    refused("repo", "http://10.89.0.1:8770/git/a/b", "not one of the allowed hosts",
            allow_http_hosts=LOCAL_HTTP)


@pytest.mark.parametrize("hosts", ["github.com", [], ["https://github.com"], ["git@github.com"],
                                   ["github.com/../x"], ["github.com:99999"], ["github.com/"
                                   "a b"], [None], ["-github.com"]])
def test_bad_allowed_hosts_setting_is_an_operator_error(hosts):
    with pytest.raises(ValueError) as caught:
        check_repo("https://github.com/a/b", hosts)
    assert not isinstance(caught.value, LaunchRequestError)


def test_bad_allow_http_hosts_setting_is_an_operator_error():
    with pytest.raises(ValueError) as caught:
        check_repo("https://github.com/a/b", ROLE_HOSTS, allow_http_hosts="10.89.0.1:8770")
    assert not isinstance(caught.value, LaunchRequestError)


# --- refused: ref -------------------------------------------------------------------------

@pytest.mark.parametrize(("ref", "why"), [
    ("a..b", "'..'"),
    ("a b", "space"),
    ("a~1", "'~'"),
    ("a^", "'^'"),
    ("a:b", "':'"),
    ("a?", "'?'"),
    ("a*", "'*'"),
    ("a[b", "'['"),
    ("a\\b", "'\\\\'"),
    ("/a", "starts or ends with '/'"),
    ("a/", "starts or ends with '/'"),
    ("a//b", "'//'"),
    (".a", "starts with '.'"),
    ("a/.b", "starts with '.'"),
    ("a.lock", "ends with '.lock'"),
    ("a.lock/b", "ends with '.lock'"),
    ("a.", "ends with '.'"),
    ("@", "it is '@'"),
    ("a@{1}", "'@{'"),
    ("-a", "starts with '-'"),
    ("--upload-pack=touch /tmp/x", "space"),
    ("--upload-pack=id", "starts with '-'"),
    ("a\x7fb", "control"),
    ("x" * 256, "longer than 255"),
    ("$(id)", "only ASCII letters"),
    ("a;b", "only ASCII letters"),
    ("{{x}}", "only ASCII letters"),
    ("a#b", "only ASCII letters"),
    ("a,b", "only ASCII letters"),
    ("a=b", "only ASCII letters"),
    ("a%b", "only ASCII letters"),
])
def test_ref_refused(ref, why):
    refused("ref", ref, why)


def _git_accepts(ref: str) -> bool:
    result = subprocess.run(["git", "check-ref-format", "--allow-onelevel", ref],
                            capture_output=True, check=False)
    return result.returncode == 0


def _our_git_rules_accept(ref: str) -> bool:
    try:
        check_ref(ref)
    except LaunchRequestError as error:
        return "not a valid git ref name" not in error.reason
    return True


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_ref_rules_agree_with_git():
    """On names made of the characters that matter to git's rules, our reading of
    `git check-ref-format --allow-onelevel` gives git's answer."""
    pieces = ["a", "b", ".", "/", "@", "{", "-", ".lock", "lock", "..", "~", "^", ":", "*"]
    rng = random.Random(20250101)
    refs = {"".join(rng.choice(pieces) for _ in range(rng.randint(1, 6))) for _ in range(600)}
    refs = sorted(ref for ref in refs if not ref.startswith("-"))
    disagree = [ref for ref in refs if _git_accepts(ref) != _our_git_rules_accept(ref)]
    assert not disagree


# --- the module, through ansible-playbook -------------------------------------------------


def run_playbook(tmp_path: Path, extra_vars_yaml: str,
                 *options: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Run the playbook with the extra vars of a YAML file; the first task's result."""
    vars_file = tmp_path / "request.yml"
    vars_file.write_text(extra_vars_yaml)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1")
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(PLAYBOOK),
         "-e", f"@{vars_file}", *options],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = json.loads(result.stdout)
    first_task = output["plays"][0]["tasks"][0]
    return result, first_task["hosts"]["localhost"]


def test_module_accepts_a_good_request(tmp_path):
    result, task = run_playbook(tmp_path, (
        'user: !unsafe "OctoCat"\n'
        'repo: !unsafe "https://GitHub.com/binder-examples/requirements/"\n'
        'ref: !unsafe "v1.0"\n'))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert task["changed"] is False
    assert {key: task[key] for key in ("user_id", "user", "repo", "ref", "vm_name",
                                       "legacy_vm_name")} == {
        "user_id": "583231", "user": "OctoCat",
        "repo": "https://github.com/binder-examples/requirements",
        "ref": "v1.0", "vm_name": "ssc-r2d-583231", "legacy_vm_name": "ssc-r2d-octocat"}


def test_module_accepts_the_local_git_host(tmp_path):
    result, task = run_playbook(tmp_path, (
        "user: ada\n"
        "repo: http://10.89.0.1:8770/git/ssc/sample-notebook.git\n"
        "allowed_hosts: [github.com, 10.89.0.1:8770/git]\n"
        "allow_http_hosts: [10.89.0.1:8770]\n"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert task["repo"] == "http://10.89.0.1:8770/git/ssc/sample-notebook"
    assert task["ref"] is None


def test_module_spells_the_repository_canonically(tmp_path):
    result, task = run_playbook(tmp_path, (
        "user: ada\n"
        "repo: http://10.89.0.1:8770/git/SSC/Sample-Notebook.git/\n"
        "allowed_hosts: [github.com, gitlab.com, 10.89.0.1:8770/git]\n"
        "allow_http_hosts: [10.89.0.1:8770]\n"
        "case_insensitive_hosts: [10.89.0.1:8770/git]\n"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert task["repo"] == "http://10.89.0.1:8770/git/ssc/sample-notebook"


def test_module_accepts_gitlab_subgroups(tmp_path):
    result, task = run_playbook(tmp_path, (
        "user: ada\n"
        "repo: https://gitlab.com/Group/Sub/Project.git\n"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert task["repo"] == "https://gitlab.com/group/sub/project"


def test_module_without_repo_checks_the_user_in_check_mode(tmp_path):
    """As roles/user_vm does to delete a VM: no repository, only the login."""
    result, task = run_playbook(tmp_path, "user: Ada-L\nuser_id: 42\n", "--check")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert task["changed"] is False
    assert (task["user_id"], task["user"], task["repo"], task["ref"], task["vm_name"],
            task["legacy_vm_name"]) == ("42", "Ada-L", None, None, "ssc-r2d-42", "ssc-r2d-ada-l")
    result, task = run_playbook(tmp_path, 'user: !unsafe "ada;id"\n', "--check")
    assert result.returncode != 0
    assert task["msg"].startswith("user 'ada;id' is refused: ")
    result, task = run_playbook(tmp_path, 'user: ada\nuser_id: !unsafe "42;id"\n', "--check")
    assert result.returncode != 0
    assert task["msg"].startswith("user_id '42;id' is refused: ")


def test_module_refuses_a_template_and_runs_nothing(tmp_path):
    pwned = tmp_path / "pwned"
    result, task = run_playbook(tmp_path, (
        'user: !unsafe "octocat"\n'
        f"repo: !unsafe \"{{{{ lookup('pipe', 'touch {pwned}') }}}}\"\n"))
    assert result.returncode != 0
    assert task["failed"] is True
    assert task["msg"].startswith("repo \"{{ lookup('pipe', 'touch "), task["msg"]
    assert "is refused" in task["msg"]
    assert not pwned.exists()


def test_without_unsafe_the_same_value_would_run(tmp_path):
    """The control for the test above: the vars file is the only thing that keeps Ansible from
    templating the value, so the test above would see the file if the tag were missing."""
    pwned = tmp_path / "pwned"
    result, task = run_playbook(tmp_path, (
        "user: octocat\n"
        f"repo: \"{{{{ lookup('pipe', 'touch {pwned}') }}}}\"\n"))
    assert pwned.exists()
    assert result.returncode != 0  # the lookup's output, "", is then refused as empty
    assert task["msg"] == "repo '' is refused: it is empty"


def test_a_pasted_page_of_a_repository_is_refused_with_what_to_do():
    for page in ("https://github.com/owner/repo/tree/main",
                 "https://github.com/owner/repo/blob/main/index.ipynb"):
        with pytest.raises(LaunchRequestError) as refused:
            check_repo(page, ["github.com", "gitlab.com"])
        message = str(refused.value)
        assert "this looks like a page of the repository" in message, message
        assert "'/" + "/".join(page.split("/")[3:5]) + "'" in message, message
    with pytest.raises(LaunchRequestError) as refused:
        check_repo("https://github.com/owner/repo/extra", ["github.com"])
    assert "page of the repository" not in str(refused.value)
