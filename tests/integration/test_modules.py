"""The collection's modules (server_snapshot, git_ref) against the local cloud, through
ansible-playbook."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import BIN, ROOT

pytestmark = pytest.mark.cloud
PLAYBOOK = Path(__file__).parent / "playbooks" / "modules.yml"


def git(*args, cwd: Path) -> str:
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
               GIT_AUTHOR_NAME="Test", GIT_AUTHOR_EMAIL="test@example.org",
               GIT_COMMITTER_NAME="Test", GIT_COMMITTER_EMAIL="test@example.org")
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def work_tree(path: Path) -> dict:
    """main with two commits, an annotated tag v1 and a lightweight tag light on the first,
    a branch feature with a commit of its own; the commits they point at."""
    path.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=path)
    (path / "README.md").write_text("first\n")
    git("add", "README.md", cwd=path)
    git("commit", "--quiet", "-m", "First", cwd=path)
    git("tag", "-a", "v1", "-m", "Version 1", cwd=path)
    git("tag", "light", cwd=path)
    git("switch", "--quiet", "-c", "feature", cwd=path)
    (path / "feature.txt").write_text("feature\n")
    git("add", "feature.txt", cwd=path)
    git("commit", "--quiet", "-m", "Feature", cwd=path)
    git("switch", "--quiet", "main", cwd=path)
    (path / "README.md").write_text("second\n")
    git("commit", "--quiet", "-am", "Second", cwd=path)
    return {name: git("rev-parse", f"{name}^{{commit}}", cwd=path)
            for name in ("main", "feature", "v1", "light")}


def test_collection_modules(cloud, tmp_path):
    commits = work_tree(tmp_path / "source")
    url = cloud.localcloud("publish", "modules-test/demo", str(tmp_path / "source")).strip()
    assert url.endswith("/git/modules-test/demo.git")
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"git_repo": url, "git_commits": commits}))

    result = subprocess.run(
        [str(BIN / "ansible-playbook"), str(PLAYBOOK), "-e", f"@{extra}"],
        env=cloud.env, cwd=ROOT, capture_output=True, text=True, timeout=1800)

    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "failed=0" in result.stdout
    connection = cloud.connect()
    left = [*connection.compute.servers(), *connection.image.images()]
    assert not [thing.name for thing in left if thing.name.startswith("lc-modules")]
