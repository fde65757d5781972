"""The thin web trigger of ssc-repo2docker: GitHub sign-in, one VM per user, jobs in SQLite."""

from pathlib import Path

# The checkout this package runs from: the collection ssc.repo2docker, its playbooks, roles
# and ansible.cfg. The job runner's relative paths are below it.
REPO_ROOT = Path(__file__).resolve().parents[1]
