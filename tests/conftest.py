"""Fixtures shared by the suite: the local cloud, started once per session with recording on."""

import subprocess
import sys

import pytest

from tests.helpers import BIN, RECORD, ROOT, VAR, LocalCloud, labelled


@pytest.fixture(scope="session")
def cloud() -> LocalCloud:
    """The local cloud, restarted with every API exchange recorded for the contract check."""
    command = [str(BIN / "localcloud")]
    subprocess.run([*command, "down"], cwd=ROOT, check=True, timeout=300,
                   stdout=subprocess.DEVNULL)
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text("")
    started = subprocess.run([*command, "up", "--record", str(RECORD)], cwd=ROOT, timeout=1200,
                             capture_output=True, text=True)
    if started.returncode != 0:
        sys.stderr.write(started.stdout + started.stderr)
        pytest.fail("localcloud up failed")
    local = LocalCloud(VAR / "clouds.yaml", VAR, RECORD,
                       frozenset(labelled("container", "io.localcloud.server")))
    # the site's set-up: the VMs' security group (Jupyter and SSH from this machine only)
    group = subprocess.run([str(BIN / "ansible-playbook"),
                            str(ROOT / "playbooks" / "security_group.yml")], env=local.env,
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert group.returncode == 0, group.stdout[-4000:] + group.stderr[-2000:]
    yield local
    subprocess.run([*command, "down"], cwd=ROOT, timeout=300, stdout=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def prebuilt_image(cloud) -> tuple[subprocess.CompletedProcess, object]:
    """playbooks/build_image.yml run once on the local inventory (the sample pre-built):
    its run and the newest image it made."""
    result = subprocess.run([str(BIN / "ansible-playbook"),
                             str(ROOT / "playbooks" / "build_image.yml")], env=cloud.env,
                            cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
    images = [i for i in cloud.connect().image.images()
              if i.properties.get("ssc_r2d_prefix") == "ssc-repo2docker"]
    return result, max(images, key=lambda i: i.created_at)


def pytest_collection_modifyitems(items):
    """A test that uses the local cloud is marked ``cloud`` (so ``-m "not cloud"`` leaves out
    every one of them, wherever it is); the contract check reads what every other test
    recorded: it runs last."""
    for item in items:
        if "cloud" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cloud)
    items.sort(key=lambda item: "contract_check" in item.nodeid)
