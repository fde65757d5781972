"""realcloud for the tests marked `realcloud`: started once per session by `realcloud up`
(which builds its image on the machine's first run), removed by `realcloud down` at the end."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import openstack.config
import openstack.connection
import pytest

from tests.helpers import BIN, ROOT

VAR = ROOT / "var" / "realcloud"
UP_TIMEOUT = 3600  # a cold start builds the image: about 15 minutes on 2 busy cores


@dataclass
class RealCloud:
    clouds_yaml: Path

    @property
    def env(self) -> dict:
        return {**os.environ, "OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml),
                "OS_CLOUD": "realcloud", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}

    def connect(self, cloud: str = "realcloud") -> openstack.connection.Connection:
        config = openstack.config.OpenStackConfig(config_files=[str(self.clouds_yaml)])
        return openstack.connection.Connection(config=config.get_one(cloud=cloud))

    def cli(self, *args: str, cloud: str = "realcloud", parse: bool = True):
        """Run the real `openstack` CLI against realcloud; its JSON output parsed (or its
        stdout when parse is false). AssertionError with stderr when it fails."""
        command = [str(BIN / "openstack"), "--os-cloud", cloud, *args]
        if parse:
            command += ["-f", "json"]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True,
                                timeout=600, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise AssertionError(f"openstack {' '.join(args)} failed:\n{result.stderr}")
        return json.loads(result.stdout) if parse and result.stdout.strip() else result.stdout


@pytest.fixture(scope="session")
def realcloud() -> RealCloud:
    command = [str(BIN / "realcloud"), "--var-dir", str(VAR)]
    started = subprocess.run([*command, "up"], cwd=ROOT, timeout=UP_TIMEOUT,
                             capture_output=True, text=True)
    if started.returncode != 0:
        sys.stderr.write(started.stdout + started.stderr)
        pytest.fail("realcloud up failed")
    yield RealCloud(VAR / "clouds.yaml")
    subprocess.run([*command, "down"], cwd=ROOT, timeout=300, stdout=subprocess.DEVNULL)
