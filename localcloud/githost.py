"""Read-only git hosting over HTTP for repositories published from local directories.

Clone URLs look like GitHub's: {config.git_base_url}/<owner>/<name>.git (the .git is
optional when cloning). Requests are answered by `git http-backend`, run as a CGI program
with GIT_PROJECT_ROOT=var_dir/git: the smart protocol (info/refs?service=git-upload-pack
and POST git-upload-pack, protocol v0 to v2) and the dumb protocol's files. Pushing is
refused. Repositories get there through :func:`publish_repository`.
"""

import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from bottle import Bottle, HTTPResponse, abort, request

from localcloud.config import Config

log = logging.getLogger(__name__)

NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
# What a git client asks of a repository; anything else in it is no one's business.
GIT_PATHS = re.compile(r"""
    info/refs | git-upload-pack | HEAD
  | objects/info/(?:alternates|http-alternates|packs)
  | objects/[0-9a-f]{2}/(?:[0-9a-f]{38}|[0-9a-f]{62})
  | objects/pack/pack-(?:[0-9a-f]{40}|[0-9a-f]{64})\.(?:pack|idx)
""", re.VERBOSE)
GIT_PROTOCOL = re.compile(r"[A-Za-z0-9=:._-]{1,256}")  # e.g. version=2
CHUNK = 64 * 1024
PUBLISHER = {"GIT_AUTHOR_NAME": "localcloud", "GIT_AUTHOR_EMAIL": "localcloud@localhost",
             "GIT_COMMITTER_NAME": "localcloud", "GIT_COMMITTER_EMAIL": "localcloud@localhost"}
# Variables that would point git at some other repository than the one named.
REPOSITORY_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                        "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE",
                        "GIT_PREFIX", "GIT_CEILING_DIRECTORIES")

_publishing = threading.Lock()


def check_name(name: str) -> str:
    """A GitHub-like owner or repository name: letters, digits, '.', '_', '-'; no leading
    dot or dash. Raises ValueError otherwise."""
    if not NAME.fullmatch(name) or name[0] in ".-":
        raise ValueError(f"{name!r} is not a valid owner or repository name")
    return name


def _repository_name(name: str) -> str:
    """The name without the optional .git, checked."""
    return check_name(name.removesuffix(".git") if name != ".git" else name)


def repository_path(config: Config, owner: str, name: str) -> Path:
    """Where the bare repository owner/name lives: var_dir/git/<owner>/<name>.git."""
    return _git_root(config) / check_name(owner) / f"{_repository_name(name)}.git"


def repository_url(config: Config, owner: str, name: str) -> str:
    """The clone URL of owner/name, as servers (and the host) reach it."""
    return f"{config.git_base_url}/{check_name(owner)}/{_repository_name(name)}.git"


def _git_root(config: Config) -> Path:
    return (Path(config.var_dir) / "git").absolute()


# --- publishing ----------------------------------------------------------------------------


class PublishError(RuntimeError):
    """A git command failed while publishing."""


def publish_repository(config: Config, owner: str, name: str, source: Path) -> str:
    """Create or update the bare repository owner/name from source and return its URL.

    A git repository (work tree or bare) is mirrored: all its branches and tags, with
    branches and tags it no longer has removed; uncommitted changes are not published.
    HEAD follows the source's current branch. A plain directory is committed as it is
    (.gitignore files are honoured) on branch main, on top of what was published before;
    nothing is committed when nothing changed.
    """
    source = Path(source).absolute()
    if not source.is_dir():
        raise NotADirectoryError(f"not a directory: {source}")
    bare = repository_path(config, owner, name)
    with _publishing:
        _init_bare(bare)
        if _is_git_repository(source):
            _mirror(source, bare)
        else:
            _commit_directory(source, bare)
        _git("--git-dir", bare, "update-server-info")  # for the dumb protocol
    return repository_url(config, owner, name)


def _is_git_repository(path: Path) -> bool:
    bare = (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()
    return (path / ".git").exists() or bare


def _init_bare(bare: Path) -> None:
    if not (bare / "HEAD").exists():
        bare.parent.mkdir(parents=True, exist_ok=True)
        _git("init", "--quiet", "--bare", "--initial-branch=main", bare)
    # Like GitHub: partial clones work, and any commit of the history can be fetched by id.
    for key, value in (("http.receivepack", "false"), ("uploadpack.allowFilter", "true"),
                       ("uploadpack.allowReachableSHA1InWant", "true")):
        _git("--git-dir", bare, "config", key, value)


def _mirror(source: Path, bare: Path) -> None:
    _git("--git-dir", bare, "fetch", "--quiet", "--force", "--prune", "--no-tags", source,
         "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
    current = _git("-C", source, "rev-parse", "--abbrev-ref", "HEAD", check=False)
    branches = _git("--git-dir", bare, "for-each-ref", "--format=%(refname:short)",
                    "refs/heads").splitlines()
    if current in branches:
        _git("--git-dir", bare, "symbolic-ref", "HEAD", f"refs/heads/{current}")
    elif branches and "main" not in branches:
        _git("--git-dir", bare, "symbolic-ref", "HEAD", f"refs/heads/{branches[0]}")


def _commit_directory(source: Path, bare: Path) -> None:
    parent = _git("--git-dir", bare, "rev-parse", "--quiet", "--verify", "refs/heads/main^{commit}",
                  check=False)
    with tempfile.TemporaryDirectory() as scratch:
        index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _git("--git-dir", bare, "--work-tree", source, "add", "--all", ".", env=index)
        tree = _git("--git-dir", bare, "--work-tree", source, "write-tree", env=index)
    if parent and _git("--git-dir", bare, "rev-parse", f"{parent}^{{tree}}") == tree:
        return
    parents = ["-p", parent] if parent else []
    commit = _git("--git-dir", bare, "commit-tree", "--no-gpg-sign", *parents,
                  "-m", f"Publish {source.name}", tree, env=PUBLISHER)
    _git("--git-dir", bare, "update-ref", "refs/heads/main", commit, parent or "")
    _git("--git-dir", bare, "symbolic-ref", "HEAD", "refs/heads/main")


def _git(*args: str | Path, env: dict[str, str] | None = None, check: bool = True) -> str:
    """Run git; its output, stripped. A failure raises PublishError unless check is False,
    then the output is ''."""
    environment = {k: v for k, v in os.environ.items() if k not in REPOSITORY_VARIABLES}
    environment.update(env or {})
    command = ["git", *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if result.returncode != 0:
        if check:
            raise PublishError(f"{' '.join(command)}: {result.stderr.strip()}")
        return ""
    return result.stdout.strip()


# --- serving -------------------------------------------------------------------------------


def make_app(config: Config) -> Bottle:
    """The git host as a Bottle app, to be mounted at /git."""
    app = Bottle()

    @app.route("/<owner>/<name>/<rest:path>", method=["GET", "HEAD", "POST"])
    def serve(owner, name, rest):
        if rest == "git-receive-pack" or request.query.get("service") == "git-receive-pack":
            abort(403, "Pushing is not supported: this git host is read-only.")
        try:
            bare = repository_path(config, owner, name)
        except ValueError:
            abort(404, "Repository not found.")
        if not GIT_PATHS.fullmatch(rest):
            abort(404, "Not Found")
        if (request.method == "POST") != (rest == "git-upload-pack"):
            abort(405, "Method Not Allowed")
        if not (bare / "HEAD").is_file():
            abort(404, "Repository not found.")
        path_info = f"/{bare.relative_to(_git_root(config))}/{rest}"
        return _run_http_backend(_cgi_environment(config, path_info), request.body)

    return app


def _cgi_environment(config: Config, path_info: str) -> dict[str, str]:
    """What git http-backend needs to know of this request, and nothing else."""
    environ = request.environ
    cgi = {
        "PATH": os.environ.get("PATH", os.defpath),
        "GIT_PROJECT_ROOT": str(_git_root(config)),
        "GIT_HTTP_EXPORT_ALL": "1",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
        "REQUEST_METHOD": request.method,
        "PATH_INFO": path_info,
        "QUERY_STRING": environ.get("QUERY_STRING", ""),
        "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
        "REMOTE_ADDR": environ.get("REMOTE_ADDR", ""),
    }
    if request.method == "POST":
        cgi["CONTENT_LENGTH"] = str(max(request.content_length, 0))
    if environ.get("HTTP_CONTENT_ENCODING"):
        cgi["HTTP_CONTENT_ENCODING"] = environ["HTTP_CONTENT_ENCODING"]
    protocol = environ.get("HTTP_GIT_PROTOCOL", "")
    if GIT_PROTOCOL.fullmatch(protocol):
        cgi["HTTP_GIT_PROTOCOL"] = cgi["GIT_PROTOCOL"] = protocol
    return cgi


def _run_http_backend(cgi: dict[str, str], body: BinaryIO) -> HTTPResponse:
    """Run git http-backend on one request; its answer streams out as it comes."""
    process = subprocess.Popen(["git", "http-backend"], env=cgi, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    threading.Thread(target=_feed, args=(body, process.stdin), daemon=True).start()
    threading.Thread(target=_log_errors, args=(process.stderr,), daemon=True).start()
    status, headers = _read_cgi_headers(process.stdout)
    if status is None:
        _finish(process, completed=False)
        abort(502, "git http-backend gave no answer")
    return HTTPResponse(_stream(process), status, headers=headers)


def _feed(body: BinaryIO, pipe: BinaryIO) -> None:
    # OSError: the backend stopped reading, and has said why on stderr.
    with suppress(OSError), pipe:
        shutil.copyfileobj(body, pipe, CHUNK)


def _log_errors(stderr: BinaryIO) -> None:
    with stderr:
        for line in stderr:
            log.warning("git http-backend: %s", line.decode(errors="replace").rstrip())


def _read_cgi_headers(stdout: BinaryIO) -> tuple[str | None, list[tuple[str, str]]]:
    """The status line and headers of a CGI answer; status None if there was none."""
    status, headers = "200 OK", []
    while True:
        line = stdout.readline(8192)
        if not line:
            return None, []
        line = line.decode("latin-1").rstrip("\r\n")
        if not line:
            return status, headers
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = value.strip()
        else:
            headers.append((name.strip(), value.strip()))


def _stream(process: subprocess.Popen) -> Iterator[bytes]:
    completed = False
    try:
        while chunk := process.stdout.read1(CHUNK):
            yield chunk
        completed = True
    finally:
        _finish(process, completed)


def _finish(process: subprocess.Popen, completed: bool) -> None:
    """Reap the backend; kill it first if the client went away before the end."""
    process.stdout.close()
    if not completed:
        process.kill()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
