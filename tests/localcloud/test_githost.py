"""The git host: publish local repositories, clone them over HTTP, push nothing."""

import gzip
import http.client
import socket
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest
import requests
from bottle import Bottle
from waitress import create_server

from localcloud import githost
from localcloud.config import Config
from localcloud.service import Front


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def git_env(tmp_path, monkeypatch):
    """Git as a fresh user has it: no one's global config, a known identity."""
    (tmp_path / "gitconfig").write_text("[user]\n\tname = Test\n\temail = test@example.org\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@pytest.fixture
def config(tmp_path, git_env) -> Config:
    return Config(var_dir=tmp_path / "var", port=free_port())


@pytest.fixture
def base_url(config) -> str:
    """The git host served as localcloud serves it, mounted at /git; its URL from the host."""
    front = Front({"/git": githost.make_app(config), "": Bottle()}, Counter())
    server = create_server(front, host="127.0.0.1", port=config.port, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{config.port}/git"
    server.close()


def git(*args, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          check=check)


def rev(repository: Path, ref: str) -> str:
    return git("rev-parse", ref, cwd=repository).stdout.strip()


@pytest.fixture
def work_tree(tmp_path, git_env) -> Path:
    """A repository with two commits on main, a tag v1 on the first, a branch feature."""
    path = tmp_path / "source"
    git("init", "--quiet", "--initial-branch=main", path)
    (path / "README.md").write_text("first\n")
    git("add", "README.md", cwd=path)
    git("commit", "--quiet", "-m", "First", cwd=path)
    git("tag", "-a", "v1", "-m", "Version 1", cwd=path)
    git("branch", "feature", cwd=path)
    (path / "README.md").write_text("second\n")
    git("commit", "--quiet", "-am", "Second", cwd=path)
    return path


def test_publish_returns_the_clone_url(config, work_tree):
    url = githost.publish_repository(config, "alice", "demo", work_tree)
    assert url == f"{config.git_base_url}/alice/demo.git"
    assert url == f"http://{config.gateway}:{config.port}/git/alice/demo.git"
    assert (config.var_dir / "git" / "alice" / "demo.git" / "HEAD").is_file()


def test_clone_gets_history_tags_and_branches(config, base_url, work_tree, tmp_path):
    githost.publish_repository(config, "alice", "demo", work_tree)
    clone = tmp_path / "clone"
    git("clone", "--quiet", f"{base_url}/alice/demo.git", clone)
    assert (clone / "README.md").read_text() == "second\n"
    assert git("log", "--format=%s", cwd=clone).stdout.split() == ["Second", "First"]
    assert rev(clone, "v1^{commit}") == rev(work_tree, "v1^{commit}")
    assert rev(clone, "origin/feature") == rev(work_tree, "feature")


@pytest.mark.parametrize("version", ["0", "1", "2"])
def test_ls_remote_in_every_protocol_version(config, base_url, work_tree, version):
    githost.publish_repository(config, "alice", "demo", work_tree)
    listing = git("-c", f"protocol.version={version}", "ls-remote", "--symref",
                  f"{base_url}/alice/demo.git").stdout
    refs = {ref: oid for oid, ref in (line.split("\t") for line in listing.splitlines()
                                      if not line.startswith("ref:"))}
    assert refs["refs/heads/main"] == rev(work_tree, "main")
    assert refs["refs/heads/feature"] == rev(work_tree, "feature")
    assert refs["refs/tags/v1"] == rev(work_tree, "v1")
    assert refs["refs/tags/v1^{}"] == rev(work_tree, "v1^{commit}")
    assert "ref: refs/heads/main\tHEAD" in listing


def test_clone_without_dot_git_and_shallow(config, base_url, work_tree, tmp_path):
    githost.publish_repository(config, "alice", "demo", work_tree)
    clone = tmp_path / "shallow"
    git("clone", "--quiet", "--depth=1", "--branch=v1", f"{base_url}/alice/demo", clone)
    assert (clone / "README.md").read_text() == "first\n"


def test_republishing_follows_the_source(config, base_url, work_tree):
    githost.publish_repository(config, "alice", "demo", work_tree)
    git("branch", "-D", "feature", cwd=work_tree)
    git("tag", "v2", cwd=work_tree)
    git("checkout", "--quiet", "-b", "develop", cwd=work_tree)
    githost.publish_repository(config, "alice", "demo", work_tree)
    listing = git("ls-remote", "--symref", f"{base_url}/alice/demo.git").stdout
    assert "refs/heads/feature" not in listing
    assert "refs/tags/v2" in listing
    assert "ref: refs/heads/develop\tHEAD" in listing


def test_plain_directory_is_committed_on_main(config, base_url, tmp_path):
    directory = tmp_path / "plain"
    (directory / "binder").mkdir(parents=True)
    (directory / "binder" / "requirements.txt").write_text("numpy\n")
    (directory / "index.ipynb").write_text("{}\n")
    url = githost.publish_repository(config, "bob", "notebooks", directory)
    assert url.endswith("/git/bob/notebooks.git")
    githost.publish_repository(config, "bob", "notebooks", directory)  # nothing changed
    (directory / "index.ipynb").write_text('{"cells": []}\n')
    githost.publish_repository(config, "bob", "notebooks", directory)

    clone = tmp_path / "clone"
    git("clone", "--quiet", f"{base_url}/bob/notebooks.git", clone)
    assert git("branch", "--show-current", cwd=clone).stdout.strip() == "main"
    assert git("rev-list", "--count", "HEAD", cwd=clone).stdout.strip() == "2"
    assert (clone / "binder" / "requirements.txt").read_text() == "numpy\n"
    assert (clone / "index.ipynb").read_text() == '{"cells": []}\n'


def test_push_is_refused(config, base_url, work_tree):
    githost.publish_repository(config, "alice", "demo", work_tree)
    before = rev(config.var_dir / "git" / "alice" / "demo.git", "main")
    git("commit", "--quiet", "--allow-empty", "-m", "Third", cwd=work_tree)
    pushed = git("push", f"{base_url}/alice/demo.git", "main", cwd=work_tree, check=False)
    assert pushed.returncode != 0
    assert "403" in pushed.stderr
    assert rev(config.var_dir / "git" / "alice" / "demo.git", "main") == before

    advertised = requests.get(f"{base_url}/alice/demo.git/info/refs",
                              params={"service": "git-receive-pack"}, timeout=10)
    assert advertised.status_code == 403
    posted = requests.post(f"{base_url}/alice/demo.git/git-receive-pack", data=b"0000",
                           headers={"Content-Type": "application/x-git-receive-pack-request"},
                           timeout=10)
    assert posted.status_code == 403


def raw_get(config: Config, path: str) -> tuple[int, bytes]:
    """GET a path exactly as written: no client tidies up the dots."""
    connection = http.client.HTTPConnection("127.0.0.1", config.port, timeout=10)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


@pytest.mark.parametrize("path", [
    "/git/../../../etc/passwd",
    "/git/alice/../alice/demo.git/info/refs",
    "/git/alice/demo.git/../../../../etc/passwd",
    "/git/alice/demo.git/objects/../config",
    "/git/alice/demo.git/config",
    "/git/alice/demo.git/hooks/pre-receive.sample",
    "/git/alice/%2e%2e/alice/demo.git/info/refs",
    "/git/alice/demo.git/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/git/.alice/demo.git/info/refs",
    "/git/-alice/demo.git/info/refs",
    "/git/alice/demo.git/info/refs/../../config",
])
def test_paths_outside_what_git_needs_are_refused(config, base_url, work_tree, path):
    githost.publish_repository(config, "alice", "demo", work_tree)
    status, body = raw_get(config, path)
    assert status in (400, 403, 404)
    assert b"root:" not in body
    assert b"[core]" not in body


def test_unknown_repository_is_not_found(base_url):
    answer = requests.get(f"{base_url}/alice/nothing.git/info/refs",
                          params={"service": "git-upload-pack"}, timeout=10)
    assert answer.status_code == 404


def test_smart_advertisement_headers(config, base_url, work_tree):
    githost.publish_repository(config, "alice", "demo", work_tree)
    answer = requests.get(f"{base_url}/alice/demo.git/info/refs",
                          params={"service": "git-upload-pack"}, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/x-git-upload-pack-advertisement"
    assert answer.content.startswith(b"001e# service=git-upload-pack\n")


def test_dumb_protocol_files_are_served(config, base_url, work_tree):
    githost.publish_repository(config, "alice", "demo", work_tree)
    answer = requests.get(f"{base_url}/alice/demo.git/info/refs", timeout=10)
    assert answer.status_code == 200
    assert f"{rev(work_tree, 'main')}\trefs/heads/main" in answer.text
    head = requests.get(f"{base_url}/alice/demo.git/HEAD", timeout=10)
    assert head.text == "ref: refs/heads/main\n"


def pkt_line(text: str) -> bytes:
    data = text.encode()
    return b"%04x" % (len(data) + 4) + data


def test_gzip_request_body_is_understood(config, base_url, work_tree):
    """Git gzips big negotiation bodies; the backend must see Content-Encoding."""
    githost.publish_repository(config, "alice", "demo", work_tree)
    request = pkt_line("command=ls-refs\n") + b"0001" + pkt_line("peel\n") + b"0000"
    answer = requests.post(
        f"{base_url}/alice/demo.git/git-upload-pack", data=gzip.compress(request),
        headers={"Content-Type": "application/x-git-upload-pack-request",
                 "Content-Encoding": "gzip", "Git-Protocol": "version=2"},
        timeout=10)
    assert answer.status_code == 200
    assert f"{rev(work_tree, 'main')} refs/heads/main".encode() in answer.content


@pytest.mark.parametrize("owner, name", [
    ("..", "demo"), ("alice", ".."), (".hidden", "demo"), ("-x", "demo"), ("alice", "-x"),
    ("a/b", "demo"), ("alice", "de/mo"), ("", "demo"), ("alice", ""), ("al ice", "demo"),
    ("alice", ".git"), ("alice", "x" * 101),
])
def test_invalid_names_are_refused(config, work_tree, owner, name):
    with pytest.raises(ValueError):
        githost.publish_repository(config, owner, name, work_tree)
    assert not (config.var_dir / "git").exists() or not any((config.var_dir / "git").iterdir())


def test_a_missing_source_is_refused(config, tmp_path):
    with pytest.raises(NotADirectoryError):
        githost.publish_repository(config, "alice", "demo", tmp_path / "missing")
