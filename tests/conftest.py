"""Fixtures shared by the suite: the local cloud, started once per session with recording on."""

import subprocess
import sys

import pytest

from tests.helpers import BIN, RECORD, ROOT, VAR, LocalCloud


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
    yield LocalCloud(VAR / "clouds.yaml", VAR, RECORD)
    subprocess.run([*command, "down"], cwd=ROOT, timeout=300, stdout=subprocess.DEVNULL)


def pytest_collection_modifyitems(items):
    """The contract check reads what every other test recorded: it runs last."""
    items.sort(key=lambda item: "contract_check" in item.nodeid)
