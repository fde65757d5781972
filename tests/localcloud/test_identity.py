"""Keystone through real clients: tokens by password and by application credential."""

import subprocess

import openstack
import openstack.config
import openstack.connection
import pytest
import requests
import yaml

pytestmark = pytest.mark.cloud


def test_token_issue_with_password(cloud):
    token = cloud.cli("token", "issue")
    assert len(token["id"]) >= 32
    assert token["project_id"]


def test_token_issue_with_application_credential(cloud):
    token = cloud.cli("token", "issue", cloud="localcloud-appcred")
    assert token["id"]
    conn = cloud.connect("localcloud-appcred")
    assert [f.name for f in conn.compute.flavors()][:1] == ["ssc.tiny"]


def test_bad_password_is_refused_with_401(cloud, tmp_path, monkeypatch):
    # openstacksdk puts $OS_CLIENT_CONFIG_FILE before the files it is given
    monkeypatch.delenv("OS_CLIENT_CONFIG_FILE", raising=False)
    clouds = yaml.safe_load(cloud.clouds_yaml.read_text())
    clouds["clouds"]["localcloud"]["auth"]["password"] = "not-the-password"
    bad = tmp_path / "clouds.yaml"
    bad.write_text(yaml.safe_dump(clouds))
    env = {**cloud.env, "OS_CLIENT_CONFIG_FILE": str(bad)}
    result = subprocess.run([str(cloud.clouds_yaml.parents[2] / ".venv/bin/openstack"),
                             "token", "issue"], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "401" in result.stderr
    config = openstack.config.OpenStackConfig(config_files=[str(bad)])
    conn = openstack.connection.Connection(config=config.get_one(cloud="localcloud"))
    with pytest.raises(openstack.exceptions.SDKException, match=r"HTTP 401"):
        conn.authorize()


def test_requests_without_a_valid_token_get_401(cloud):
    for path in ("compute/v2.1/servers", "image/v2/images", "network/v2.0/networks"):
        response = requests.get(f"http://127.0.0.1:8770/{path}",
                                headers={"X-Auth-Token": "forged"}, timeout=10)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == 401
        assert "WWW-Authenticate" in response.headers


def test_version_discovery_answers_without_a_token(cloud):
    compute = requests.get("http://127.0.0.1:8770/compute/v2.1", timeout=10).json()
    assert compute["version"]["min_version"] == "2.1"
    assert compute["version"]["version"] == "2.104"
    identity = requests.get("http://127.0.0.1:8770/identity/v3", timeout=10).json()
    assert identity["version"]["id"].startswith("v3")
