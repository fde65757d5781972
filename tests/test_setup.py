"""`scripts/setup.sh --controller` into a fresh venv: the product and the tools its playbooks
run, every package at the version constraints.txt names, and nothing of the local cloud: not
the package `localcloud`, nor the Docker SDK and jsonschema that only it needs.

Slow (a real install, about 2 minutes on 2 cores) and it needs pip's index, as `make setup`
does; nothing of this checkout changes (the collection link setup.sh makes is there already)."""

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# installed into every venv by `python -m venv` itself, or the product in editable mode
NOT_PINNED = {"pip", "setuptools", "ssc-repo2docker"}


def normalized(name: str) -> str:
    """A distribution's name as PEP 503 compares them: `PyYAML` and `pyyaml` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    """constraints.txt as {normalized name: version}."""
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return {normalized(name): version for name, _, version in (
        line.partition("==") for line in lines if line and not line.startswith("#"))}


@pytest.fixture(scope="module")
def controller_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("controller") / "venv"
    result = subprocess.run([str(ROOT / "scripts" / "setup.sh"), "--controller", "--venv",
                             str(venv)], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return venv


def imports(venv: Path, module: str, cwd: Path) -> bool:
    """Whether the venv's python imports `module` from what is installed (-P: not from the
    current directory, so a checkout's folders do not count)."""
    return subprocess.run([str(venv / "bin" / "python"), "-P", "-c", f"import {module}"],
                          cwd=cwd, capture_output=True, timeout=120).returncode == 0


@pytest.mark.slow
def test_a_controller_gets_the_product_and_not_the_local_cloud(controller_venv, tmp_path):
    for module in ("web.app", "web.cli", "ansible_runner", "openstack", "ansible"):
        assert imports(controller_venv, module, tmp_path), module
    for module in ("localcloud", "docker", "jsonschema"):
        assert not imports(controller_venv, module, tmp_path), f"{module} is installed"
    # not from the checkout's own directory either: nothing maps the folder localcloud/
    assert not imports(controller_venv, "localcloud", ROOT)
    scripts = {path.name for path in (controller_venv / "bin").iterdir()}
    assert {"ssc-web", "ansible-playbook", "openstack"} <= scripts
    assert "localcloud" not in scripts


@pytest.mark.slow
def test_a_controller_gets_every_package_at_its_pinned_version(controller_venv):
    listed = subprocess.run([str(controller_venv / "bin" / "pip"), "list", "--format", "json",
                             "--disable-pip-version-check"], capture_output=True, text=True,
                            check=True, timeout=120).stdout
    installed = {normalized(entry["name"]): entry["version"] for entry in json.loads(listed)}
    assert not {"ssc-localcloud", "docker", "jsonschema"} & installed.keys()
    pinned = pins()
    unpinned = sorted(installed.keys() - pinned.keys() - NOT_PINNED)
    assert not unpinned, f"installed but not in constraints.txt: {unpinned}"
    assert {name: version for name, version in installed.items() if name in pinned} == {
        name: pinned[name] for name in installed.keys() & pinned.keys()}
