"""Hostile repository URLs and refs: refused with the shared rules' clear message (400), and
no job row. The app imports the rules the playbook uses; it has no copy of its own."""

import html
import inspect
from pathlib import Path

import pytest
from ansible_collections.ssc.repo2docker.plugins.module_utils.launch_request import (
    LaunchRequestError,
    check,
)

import web.app
from tests.web.conftest import SAMPLE, forms

HOSTILE_REPOS = {
    "template expression": "https://github.com/{{ lookup('pipe', 'id') }}/x",
    "template in the name": "https://github.com/a/{{7*7}}",
    "jinja statement": "{% for x in range(9) %}x{% endfor %}",
    "semicolon": "https://github.com/a/b;touch /tmp/pwned",
    "command substitution": "https://github.com/a/$(id)",
    "backticks": "https://github.com/a/`id`",
    "pipe": "https://github.com/a/b|id",
    "ampersand": "https://github.com/a/b&&id",
    "redirection": "https://github.com/a/b>/tmp/x",
    "quote": "https://github.com/a/b'\"",
    "newline": "https://github.com/a/b\nhttps://evil.example/x/y",
    "carriage return": "https://github.com/a/b\r\nX-Injected: 1",
    "nul": "https://github.com/a/b\x00",
    "tab": "https://github.com/a/b\t",
    "space": "https://github.com/a/b c",
    "leading dash": "-uhttps://github.com/a/b",
    "upload-pack option": "--upload-pack=touch /tmp/pwned",
    "ext transport": "ext::sh -c touch% /tmp/pwned",
    "fd transport": "fd::17",
    "file url": "file:///etc/passwd",
    "local path": "/etc/passwd",
    "relative path": "../../etc",
    "ssh url": "ssh://git@github.com/a/b",
    "git url": "git://github.com/a/b",
    "scp-like": "git@github.com:a/b.git",
    "credentials": "https://user:password@github.com/a/b",
    "token as user": "https://ghp_0123456789abcdef@github.com/a/b",
    "at in the path": "https://github.com/a@b/c",
    "host off the list": "https://evil.example/a/b",
    "look-alike suffix": "https://github.com.evil.example/a/b",
    "subdomain": "https://gist.github.com/a/b",
    "port not allowed": "https://github.com:8443/a/b",
    "plain http": "http://github.com/a/b",
    "cyrillic i": "https://g\u0456thub.com/a/b",
    "fullwidth owner": "https://github.com/\uff41/b",
    "right-to-left override": "https://github.com/a/\u202eb",
    "zero-width space": "https://github.com/a\u200b/b",
    "idn": "https://xn--github-9za.com/a/b",
    "percent encoding": "https://github.com/a/b%0a",
    "dot dot": "https://github.com/a/../b",
    "query": "https://github.com/a/b?x=1",
    "fragment": "https://github.com/a/b#x",
    "backslash": "https://github.com\\@evil.example/a/b",
    "too few segments": "https://github.com/a",
    "too many segments": "https://github.com/a/b/c",
    "10 kB": "https://github.com/a/" + "b" * 10_000,
    "10 kB of template": "{{" * 5_000,
    "empty": "",
}

HOSTILE_REFS = {
    "template expression": "{{ lookup('pipe', 'id') }}",
    "semicolon": "main;id",
    "command substitution": "$(id)",
    "backticks": "`id`",
    "pipe": "main|id",
    "newline": "main\nother",
    "space": "main other",
    "leading dash": "-b",
    "upload-pack option": "--upload-pack=touch /tmp/pwned",
    "double dot": "main..other",
    "reflog": "@{-1}",
    "colon": "HEAD:file",
    "lock": "main.lock",
    "cyrillic a": "m\u0430in",
    "fullwidth": "\uff4dain",
    "10 kB": "a" * 10_000,
}


def expected_message(login: str, repo: str, ref: str, site) -> str:
    with pytest.raises(LaunchRequestError) as refused:
        check(login, repo, ref or None, site.config.allowed_hosts,
              site.config.allow_http_hosts)
    return str(refused.value)


def assert_refused(answer, message: str, site) -> None:
    assert answer.status_code == 400, answer.text[:500]
    assert 'role="alert"' in answer.text
    assert message in html.unescape(answer.text)
    assert site.jobs() == []


@pytest.mark.parametrize("repo", HOSTILE_REPOS.values(), ids=HOSTILE_REPOS.keys())
def test_hostile_repository_urls(alice, site, repo):
    if repo == "":
        answer = alice.post("/VM_start", {"giturl": repo, "csrf": alice.csrf()})
        assert_refused(answer, "repo '' is refused: it is empty", site)
        return
    message = expected_message("alice", repo, "", site)
    assert_refused(alice.post("/VM_start", {"giturl": repo, "csrf": alice.csrf()}), message,
                   site)
    assert_refused(alice.post("/VM_run", {"giturl": repo, "csrf": alice.csrf()}), message,
                   site)
    assert_refused(alice.get("/VM_start", params={"giturl": repo}), message, site)


@pytest.mark.parametrize("ref", HOSTILE_REFS.values(), ids=HOSTILE_REFS.keys())
def test_hostile_refs(alice, site, ref):
    message = expected_message("alice", SAMPLE, ref, site)
    assert message.startswith("ref ")
    assert_refused(alice.post("/VM_start", {"giturl": SAMPLE, "ref": ref,
                                            "csrf": alice.csrf()}), message, site)
    assert_refused(alice.get("/VM_start", params={"giturl": SAMPLE, "ref": ref}), message,
                   site)


def test_the_message_never_echoes_markup(alice, site):
    answer = alice.post("/VM_start", {"giturl": "https://github.com/<script>alert(1)</script>/b",
                                      "csrf": alice.csrf()})
    assert answer.status_code == 400
    assert "<script>" not in answer.text


def test_a_value_that_is_not_utf8_is_refused(alice, site):
    answer = alice.get("/VM_start?giturl=https://github.com/a/%FF")
    assert answer.status_code == 400 and "UTF-8" in answer.text
    assert site.jobs() == []


def test_a_good_url_is_rebuilt_before_it_is_stored(alice, site):
    page = alice.get("/VM_start", params={"giturl": "HTTPS://GitHub.com/Owner/Repo.git/"})
    form = forms(page.text)["/VM_start"]
    assert form["giturl"] == "https://github.com/owner/repo"  # its canonical spelling
    alice.post("/VM_start", {"giturl": "HTTPS://GitHub.com/Owner/Repo.git/",
                             "csrf": alice.csrf()})
    assert site.jobs()[0]["repo"] == "https://github.com/owner/repo"


def test_the_app_uses_the_shared_rules():
    assert check.__module__ == (
        "ansible_collections.ssc.repo2docker.plugins.module_utils.launch_request")
    assert web.app.check is check
    assert "re.compile" not in inspect.getsource(web.app)


def test_the_rules_are_imported_as_a_package():
    """scripts/setup.sh writes a .pth that puts var/collections on the venv's path: the
    namespace package ansible_collections then holds this collection beside those the
    ansible package bundles, and nothing edits sys.path at import time."""
    import ansible_collections
    import ansible_collections.openstack.cloud  # bundled

    root = Path(__file__).resolve().parents[2]
    portions = [Path(path) for path in ansible_collections.__path__]
    assert root / "var" / "collections" / "ansible_collections" in portions
    assert any(path.parent.name == "site-packages" for path in portions)
    for source in [*root.glob("web/*.py"), *root.glob("plugins/**/*.py")]:
        assert "sys.path" not in source.read_text(), source
