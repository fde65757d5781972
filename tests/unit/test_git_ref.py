"""ssc.repo2docker.git_ref: its input checks and its choice of commit, then the module itself
(run as Ansible runs it, with its arguments in a file) against real repositories served by
`git daemon` on 127.0.0.1."""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.unit.conftest import COLLECTIONS

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "plugins" / "modules" / "git_ref.py"
_spec = importlib.util.spec_from_file_location("git_ref", MODULE)
git_ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(git_ref)

SHA_A = "a" * 40
SHA_B = "b" * 40
SHA_C = "c" * 40
SHA_T = "d" * 40


# --- ref names ---------------------------------------------------------------------------

BAD_REFS = ["-x", "--upload-pack=x", "a..b", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[b",
            "a\\b", "@{x}", "a@{1}", "@", "x.lock", "a/b.lock/c", "a\nb", "a\tb", "a\x7f",
            ".a", "a/.b", "a.", "a/", "/a", "a//b"]
GOOD_REFS = ["main", "feature/x", "v1.0", "refs/heads/main", "pull/1/head", "HEAD", "a@b",
             "@x", "a.lock.b", "ümlaut", "x-y_z", "a{b}", SHA_A]


@pytest.mark.parametrize("ref", BAD_REFS)
def test_bad_ref_names_are_refused(ref):
    assert git_ref.ref_format_error(ref)


@pytest.mark.parametrize("ref", GOOD_REFS)
def test_good_ref_names_pass(ref):
    assert git_ref.ref_format_error(ref) is None


@pytest.mark.parametrize("ref", [r for r in BAD_REFS + GOOD_REFS if not r.startswith("-")])
def test_ref_rules_agree_with_git_check_ref_format(ref):
    # `git check-ref-format` takes no `--`: names starting with '-' are left out here (the
    # module refuses them by its own rule).
    git = subprocess.run(["git", "check-ref-format", "--allow-onelevel", ref],
                         capture_output=True)
    assert (git.returncode == 0) == (git_ref.ref_format_error(ref) is None)


# --- repository URLs -----------------------------------------------------------------------

@pytest.mark.parametrize("repo", [
    "https://github.com/binder-examples/requirements",
    "https://github.com/binder-examples/requirements.git",
    "http://10.89.0.1:8770/git/ssc/sample-notebook.git",
    "git://127.0.0.1:9418/r.git",
    "https://token@example.org/x.git",
    "https://[::1]:8080/x.git",
])
def test_good_urls_pass(repo):
    assert git_ref.repo_error(repo) is None


@pytest.mark.parametrize("repo", [
    "ext::sh -c x", "ext::sh", "file:///etc", "file://localhost/etc", "-u", "--upload-pack=x",
    "/tmp/repo", "./repo", "ssh://git@github.com/a/b.git", "git@github.com:a/b.git",
    "https://user:secret@example.org/x.git", "https://", "http:///x.git", "https:example.org",
    "https://example.org/a b", "https://example.org/a\nb", "https://-oProxyCommand=x/a",
    "http::https://example.org/x.git", "fd::17", "HTTPS://example.org/x.git", "", "https://[::1/x",
])
def test_bad_urls_are_refused(repo):
    assert git_ref.repo_error(repo)


# --- choosing the commit -------------------------------------------------------------------

LS_REMOTE = f"""ref: refs/heads/main\tHEAD
{SHA_A}\tHEAD
{SHA_B}\trefs/heads/both
{SHA_C}\trefs/heads/feature
{SHA_A}\trefs/heads/main
{SHA_T}\trefs/tags/both
{SHA_C}\trefs/tags/both^{{}}
{SHA_C}\trefs/tags/light
{"e" * 40}\trefs/tags/v1
{SHA_B}\trefs/tags/v1^{{}}
{"f" * 40}\trefs/pull/1/head
"""


@pytest.mark.parametrize("ref, commit, full", [
    ("main", SHA_A, "refs/heads/main"),
    ("feature", SHA_C, "refs/heads/feature"),
    ("light", SHA_C, "refs/tags/light"),
    ("v1", SHA_B, "refs/tags/v1"),
    ("refs/tags/v1", SHA_B, "refs/tags/v1"),
    ("refs/heads/main", SHA_A, "refs/heads/main"),
    ("refs/tags/both", SHA_C, "refs/tags/both"),
    ("pull/1/head", "f" * 40, "refs/pull/1/head"),
    ("tags/light", SHA_C, "refs/tags/light"),
])
def test_pick_commit(ref, commit, full):
    result = git_ref.pick_commit(LS_REMOTE, ref)
    assert (result["commit"], result["ref"], result["warnings"]) == (commit, full, [])
    assert "default_branch" not in result


@pytest.mark.parametrize("ref", ["", None, "HEAD"])
def test_default_branch(ref):
    assert git_ref.pick_commit(LS_REMOTE, ref) == {
        "commit": SHA_A, "ref": "refs/heads/main", "default_branch": "main", "warnings": []}


def test_a_detached_head_has_no_default_branch():
    output = f"{SHA_A}\tHEAD\n{SHA_B}\trefs/heads/main\n"
    assert git_ref.pick_commit(output, "") == {
        "commit": SHA_A, "ref": "HEAD", "default_branch": None, "warnings": []}


def test_an_empty_repository_has_no_head():
    with pytest.raises(LookupError, match="is empty: it has no default branch"):
        git_ref.pick_commit("", "")


def test_a_branch_wins_over_a_tag_of_the_same_name():
    result = git_ref.pick_commit(LS_REMOTE, "both")
    assert (result["commit"], result["ref"]) == (SHA_B, "refs/heads/both")
    assert "refs/tags/both" in result["warnings"][0]


def test_a_full_commit_is_returned_as_it_is():
    assert git_ref.pick_commit("", SHA_A.upper()) == {
        "commit": SHA_A, "ref": SHA_A, "warnings": []}
    sha256 = "0123456789abcdef" * 4
    assert git_ref.pick_commit("", sha256)["commit"] == sha256


def test_a_missing_ref_names_the_default_branch_not_the_candidates():
    with pytest.raises(LookupError) as caught:
        git_ref.pick_commit(LS_REMOTE, "nope", "https://github.com/a/b")
    assert str(caught.value) == ("no branch, tag or commit named 'nope' in "
                                 "https://github.com/a/b; its default branch is 'main'")


def test_a_missing_full_ref_name_is_a_missing_ref():
    with pytest.raises(LookupError) as caught:
        git_ref.pick_commit(LS_REMOTE, "refs/pull/9/head", "https://github.com/a/b")
    assert str(caught.value) == ("no ref named 'refs/pull/9/head' in https://github.com/a/b; "
                                 "its default branch is 'main'")


def test_without_a_known_default_branch_the_message_says_less():
    output = f"{SHA_A}\tHEAD\n{SHA_B}\trefs/heads/main\n"  # a detached HEAD
    with pytest.raises(LookupError) as caught:
        git_ref.pick_commit(output, "nope", "https://github.com/a/b")
    assert str(caught.value) == "no branch, tag or commit named 'nope' in https://github.com/a/b"


@pytest.mark.parametrize("short", [SHA_A[:7], SHA_A[:12], "ABCDEF0", "0" * 39, "e" * 63])
def test_an_abbreviated_commit_asks_for_the_full_id(short):
    with pytest.raises(LookupError) as caught:
        git_ref.pick_commit(LS_REMOTE, short, "https://github.com/a/b")
    message = str(caught.value)
    assert f"{short!r} looks like a short commit id" in message
    assert "give the full 40-character commit id" in message
    assert "refs/" not in message


@pytest.mark.parametrize("name", ["abcdef", "cafe", "deadbeefx", "123456", "a" * 40 + "x"])
def test_names_that_are_no_abbreviated_commit(name):
    with pytest.raises(LookupError, match="no branch, tag or commit named"):
        git_ref.pick_commit(LS_REMOTE, name)


def test_a_hexadecimal_branch_name_still_resolves():
    output = LS_REMOTE + f"{SHA_C}\trefs/heads/deadbeef\n"
    assert git_ref.pick_commit(output, "deadbeef")["commit"] == SHA_C


def test_lines_that_are_not_refs_are_ignored():
    output = "warning: redirecting to https://x/\n\n" + LS_REMOTE
    assert git_ref.pick_commit(output, "main")["commit"] == SHA_A


def test_patterns_ask_for_the_candidates_and_their_peeled_forms():
    assert git_ref.ls_remote_patterns("") == ["HEAD"]
    assert git_ref.ls_remote_patterns("refs/tags/v1") == [
        "refs/tags/v1", "refs/tags/v1^{}", "HEAD"]
    assert git_ref.ls_remote_patterns("v1") == [
        "refs/heads/v1", "refs/heads/v1^{}", "refs/tags/v1", "refs/tags/v1^{}", "refs/v1",
        "refs/v1^{}", "HEAD"]


def test_documented_options_are_the_argument_spec():
    documented = yaml.safe_load(git_ref.DOCUMENTATION)["options"]
    assert set(documented) == set(git_ref.ARGUMENT_SPEC)
    for name, spec in git_ref.ARGUMENT_SPEC.items():
        assert documented[name]["type"] == spec["type"]
        assert documented[name].get("default") == spec.get("default")
        assert documented[name].get("required", False) == spec.get("required", False)
    keywords = {"name", "register", "check_mode", "delegate_to"}
    modules = [next(key for key in task if key not in keywords)
               for task in yaml.safe_load(git_ref.EXAMPLES)]
    assert "ssc.repo2docker.git_ref" in modules
    assert all(module.count(".") == 2 for module in modules)  # FQCN
    assert set(yaml.safe_load(git_ref.RETURN)) == {"commit", "ref", "default_branch"}


# --- the module against real repositories ------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def git_env(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("home")
    return dict(os.environ, HOME=str(home), GIT_CONFIG_NOSYSTEM="1",
                GIT_CONFIG_GLOBAL=os.devnull, GIT_AUTHOR_NAME="Test",
                GIT_AUTHOR_EMAIL="test@example.org", GIT_COMMITTER_NAME="Test",
                GIT_COMMITTER_EMAIL="test@example.org")


def git(env: dict, *args, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *map(str, args)], cwd=cwd, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def served(tmp_path_factory, git_env):
    """A repository served by `git daemon`: main (two commits, the default branch), feature,
    an annotated tag v1 and a lightweight tag light on the first commit, and `both`, a branch
    at main and an annotated tag at the first commit. Yields its git:// URL and the commits
    git itself gives for each name."""
    base = tmp_path_factory.mktemp("served")
    work = base / "work"
    git(git_env, "init", "--quiet", "--initial-branch=main", work)
    (work / "README.md").write_text("first\n")
    git(git_env, "add", "README.md", cwd=work)
    git(git_env, "commit", "--quiet", "-m", "First", cwd=work)
    git(git_env, "tag", "-a", "v1", "-m", "Version 1", cwd=work)
    git(git_env, "tag", "light", cwd=work)
    git(git_env, "tag", "-a", "both", "-m", "A tag named like a branch", cwd=work)
    git(git_env, "branch", "feature", cwd=work)
    (work / "README.md").write_text("second\n")
    git(git_env, "commit", "--quiet", "-am", "Second", cwd=work)
    git(git_env, "branch", "both", cwd=work)
    # a commit only a pull-request ref points at, as on GitHub
    git(git_env, "checkout", "--quiet", "-b", "proposal", cwd=work)
    (work / "README.md").write_text("proposed\n")
    git(git_env, "commit", "--quiet", "-am", "Proposed", cwd=work)
    git(git_env, "update-ref", "refs/pull/1/head", "HEAD", cwd=work)
    git(git_env, "checkout", "--quiet", "main", cwd=work)
    git(git_env, "branch", "--quiet", "-D", "proposal", cwd=work)
    commits = {name: git(git_env, "rev-parse", f"{ref}^{{commit}}", cwd=work) for name, ref in (
        ("main", "refs/heads/main"), ("feature", "refs/heads/feature"),
        ("v1", "refs/tags/v1"), ("light", "refs/tags/light"), ("both", "refs/heads/both"),
        ("tag both", "refs/tags/both"), ("pull", "refs/pull/1/head"))}
    git(git_env, "clone", "--quiet", "--bare", work, base / "repos" / "demo.git")
    git(git_env, "push", "--quiet", base / "repos" / "demo.git", "refs/pull/1/head", cwd=work)

    port = free_port()
    exec_path = git(git_env, "--exec-path")
    daemon = subprocess.Popen(
        [f"{exec_path}/git-daemon", "--reuseaddr", "--export-all", "--informative-errors",
         f"--base-path={base / 'repos'}", "--listen=127.0.0.1", f"--port={port}",
         str(base / "repos")], env=git_env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert time.monotonic() < deadline, "git daemon did not start"
        time.sleep(0.05)
    yield f"git://127.0.0.1:{port}/demo.git", commits
    daemon.terminate()
    daemon.wait(timeout=10)


def run_module(tmp_path: Path, env: dict, check_mode: bool = False, **args) -> dict:
    """Run git_ref as Ansible runs a module: its arguments in a JSON file, JSON out."""
    arguments = tmp_path / "args.json"
    arguments.write_text(json.dumps(
        {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check_mode}}))
    env = {**env, "PYTHONPATH": os.pathsep.join([str(COLLECTIONS), env.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(MODULE), str(arguments)], env=env,
                            capture_output=True, text=True, timeout=60,
                            start_new_session=True)  # no terminal to prompt on
    return json.loads(result.stdout)


def test_module_resolves_the_default_branch(served, tmp_path, git_env):
    url, commits = served
    result = run_module(tmp_path, git_env, repo=url)
    assert not result.get("failed"), result
    assert (result["commit"], result["ref"], result["default_branch"], result["changed"]) == (
        commits["main"], "refs/heads/main", "main", False)


@pytest.mark.parametrize("ref, name, full", [
    ("main", "main", "refs/heads/main"),
    ("feature", "feature", "refs/heads/feature"),
    ("v1", "v1", "refs/tags/v1"),
    ("light", "light", "refs/tags/light"),
    ("refs/tags/both", "tag both", "refs/tags/both"),
    ("HEAD", "main", "refs/heads/main"),
])
def test_module_resolves_branches_and_tags(served, tmp_path, git_env, ref, name, full):
    url, commits = served
    result = run_module(tmp_path, git_env, repo=url, ref=ref)
    assert not result.get("failed"), result
    assert (result["commit"], result["ref"]) == (commits[name], full)
    assert result["changed"] is False


def test_module_prefers_the_branch_and_warns(served, tmp_path, git_env):
    url, commits = served
    assert commits["both"] != commits["tag both"]
    result = run_module(tmp_path, git_env, repo=url, ref="both")
    assert (result["commit"], result["ref"]) == (commits["both"], "refs/heads/both")
    assert "refs/tags/both" in json.dumps(result["warnings"])


def test_module_returns_a_full_commit_without_asking(tmp_path, git_env):
    # The host does not exist: git is not run for a full commit id.
    result = run_module(tmp_path, git_env, repo="https://git.invalid/x.git", ref=SHA_A)
    assert not result.get("failed"), result
    assert (result["commit"], result["ref"]) == (SHA_A, SHA_A)


def test_module_runs_the_same_in_check_mode(served, tmp_path, git_env):
    url, commits = served
    result = run_module(tmp_path, git_env, check_mode=True, repo=url, ref="v1")
    assert (result["commit"], result["changed"]) == (commits["v1"], False)


def test_module_fails_on_a_missing_ref_naming_the_default_branch(served, tmp_path, git_env):
    url, _ = served
    result = run_module(tmp_path, git_env, repo=url, ref="no-such-branch")
    assert result["failed"]
    assert result["msg"] == (f"no branch, tag or commit named 'no-such-branch' in {url}; "
                             "its default branch is 'main'")


def test_module_asks_for_a_full_commit_id(served, tmp_path, git_env):
    url, commits = served
    result = run_module(tmp_path, git_env, repo=url, ref=commits["feature"][:10])
    assert result["failed"]
    assert result["msg"] == (
        f"'{commits['feature'][:10]}' looks like a short commit id, and no branch or tag in "
        f"{url} has that name: give the full 40-character commit id (a git server cannot be "
        "asked for a commit by an abbreviated id)")


@pytest.mark.parametrize("ref", ["pull/1/head", "refs/pull/1/head"])
def test_module_resolves_a_pull_request_ref(served, tmp_path, git_env, ref):
    url, commits = served
    result = run_module(tmp_path, git_env, repo=url, ref=ref)
    assert not result.get("failed"), result
    assert (result["commit"], result["ref"]) == (commits["pull"], "refs/pull/1/head")


@pytest.mark.parametrize("ref", ["-x", "a..b", "a b", "a~1", "@{x}", "main.lock", "a\nb"])
def test_module_refuses_bad_refs_before_running_git(served, tmp_path, git_env, ref):
    url, _ = served
    # A git that does not exist: had the module run it, the message would say so.
    result = run_module(tmp_path, git_env, repo=url, ref=ref, git_executable="/nonexistent/git")
    assert result["failed"]
    assert "is not a valid git ref name" in result["msg"]


@pytest.mark.parametrize("repo", ["ext::sh -c x", "file:///etc", "-u"])
def test_module_refuses_bad_urls_before_running_git(tmp_path, git_env, repo):
    result = run_module(tmp_path, git_env, repo=repo, git_executable="/nonexistent/git")
    assert result["failed"]
    assert f"repo {repo!r} is refused" in result["msg"]


def test_module_reports_an_unreachable_host(tmp_path, git_env):
    port = free_port()  # nothing listens there any more
    result = run_module(tmp_path, git_env, repo=f"git://127.0.0.1:{port}/demo.git")
    assert result["failed"]
    assert f"git ls-remote git://127.0.0.1:{port}/demo.git failed" in result["msg"]
    assert "unable to connect" in result["msg"]


def test_module_reports_a_repository_the_server_does_not_have(served, tmp_path, git_env):
    url, _ = served
    result = run_module(tmp_path, git_env, repo=url.replace("demo.git", "other.git"))
    assert result["failed"]
    assert "no such repository: /other.git" in result["msg"]


class AskForPassword(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_module_never_prompts_for_credentials(tmp_path, git_env):
    server = ThreadingHTTPServer(("127.0.0.1", 0), AskForPassword)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {k: v for k, v in git_env.items() if k not in ("GIT_ASKPASS", "SSH_ASKPASS")}
        result = run_module(tmp_path, env,
                            repo=f"http://127.0.0.1:{server.server_port}/private.git")
    finally:
        server.shutdown()
        server.server_close()
    assert result["failed"]
    assert "terminal prompts disabled" in result["msg"]
