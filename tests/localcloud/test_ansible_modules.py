"""The openstack.cloud Ansible modules against the local cloud, through ansible-playbook."""

import subprocess
from pathlib import Path

import pytest

from tests.helpers import BIN, ROOT, new_key

pytestmark = pytest.mark.cloud
PLAYBOOK = Path(__file__).parent / "playbooks" / "openstack_modules.yml"


def test_openstack_cloud_modules(cloud, tmp_path):
    key = new_key(tmp_path)
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), str(PLAYBOOK), "-e",
         f"public_key='{key.with_suffix('.pub').read_text().strip()}'"],
        env=cloud.env, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert "failed=0" in result.stdout
    assert not cloud.server_containers()
