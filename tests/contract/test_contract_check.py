"""Every exchange the suite had with the local cloud, checked against the real services'
own JSON schemas (Nova 34, Cinder 29, Keystone 30), Cinder's answers against tempest 46.3's
response schemas. Runs last: it reads what the others did."""

import json
import subprocess

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.cloud
VENV_PYTHON = ROOT / "var" / "contract-venv" / "bin" / "python"
VALIDATOR = ROOT / "tests" / "contract" / "validate.py"


def test_contract_check(cloud):
    subprocess.run([str(ROOT / "scripts" / "contract-venv.sh")], check=True, timeout=900)
    exchanges = [json.loads(line) for line in cloud.record.read_text().splitlines()]
    compute = [e for e in exchanges if e["service"] == "compute"]
    assert len(compute) >= 20, "the suite recorded too little to check"
    assert any(e["method"] == "POST" and e["path"] == "/v2.1/servers" and e["status"] == 202
               for e in compute)
    result = subprocess.run([str(VENV_PYTHON), str(VALIDATOR), str(cloud.record)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-3000:]
