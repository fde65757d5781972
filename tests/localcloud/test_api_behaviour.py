"""The local cloud answers like the real APIs: validation, microversions, quotas, faults."""

import json
import subprocess

import openstack
import pytest
import requests

pytestmark = pytest.mark.cloud

COMPUTE = "http://127.0.0.1:8770/compute/v2.1"


def token(cloud) -> str:
    return cloud.connect().auth_token


def server_names(cloud) -> list[str]:
    return [s.name for s in cloud.connect().compute.servers()]


def create_body(cloud, **extra) -> dict:
    conn = cloud.connect()
    server = {"name": "lc-invalid", "imageRef": conn.image.find_image("debian-13").id,
              "flavorRef": conn.compute.find_flavor("ssc.tiny").id, "networks": "auto"}
    server.update(extra)
    return {"server": server}


def test_unknown_key_is_refused_with_400_and_creates_nothing(cloud):
    before = server_names(cloud)
    ports_before = len(list(cloud.connect().network.ports()))
    headers = {"X-Auth-Token": token(cloud), "OpenStack-API-Version": "compute 2.96"}
    response = requests.post(f"{COMPUTE}/servers", headers=headers, timeout=30,
                             json=create_body(cloud, flavour="typo"))
    assert response.status_code == 400
    message = response.json()["badRequest"]["message"]
    assert "flavour" in message
    missing = create_body(cloud)
    del missing["server"]["networks"]  # required from 2.37 on
    response = requests.post(f"{COMPUTE}/servers", headers=headers, timeout=30, json=missing)
    assert response.status_code == 400
    assert server_names(cloud) == before
    assert len(list(cloud.connect().network.ports())) == ports_before


def test_microversions_are_negotiated(cloud):
    headers = {"X-Auth-Token": token(cloud)}
    latest = requests.get(f"{COMPUTE}/flavors", timeout=10,
                          headers={**headers, "OpenStack-API-Version": "compute latest"})
    assert latest.headers["OpenStack-API-Version"] == "compute 2.104"
    default = requests.get(f"{COMPUTE}/flavors", headers=headers, timeout=10)
    assert default.headers["X-OpenStack-Nova-API-Version"] == "2.1"
    too_new = requests.get(f"{COMPUTE}/flavors", timeout=10,
                           headers={**headers, "OpenStack-API-Version": "compute 2.999"})
    assert too_new.status_code == 406
    names = [f["name"] for f in default.json()["flavors"]]
    assert names == ["ssc.tiny", "ssc.small", "ssc.medium", "ssc.large", "ssc.xlarge"]


def test_not_found_has_the_service_error_body(cloud):
    conn = cloud.connect()
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.compute.get_server("00000000-0000-4000-8000-000000000000")
    response = requests.get(f"{COMPUTE}/servers/nothing", timeout=10,
                            headers={"X-Auth-Token": token(cloud)})
    assert response.json() == {"itemNotFound": {
        "code": 404, "message": "Instance nothing could not be found."}}


def test_quota_refusal_is_the_real_403(cloud):
    cloud.localcloud("quota", "instances=0")
    try:
        result = cloud.cli("server", "create", "--image", "debian-13", "--flavor", "ssc.tiny",
                           "--network", "private", "lc-over-quota", check=False)
        assert result.returncode != 0
        assert "Quota exceeded for instances" in result.stderr
        assert "ForbiddenException: 403" in result.stderr
    finally:
        cloud.localcloud("quota", "instances=10")
    assert "lc-over-quota" not in server_names(cloud)


def test_volume_quota_is_cinders_413(cloud):
    conn = cloud.connect()
    with pytest.raises(openstack.exceptions.HttpException) as refused:
        conn.block_storage.create_volume(size=5000, name="lc-too-big")
    assert refused.value.status_code == 413
    assert "VolumeSizeExceedsAvailableQuota" in str(refused.value)


def test_injected_http_fault_surfaces_as_the_api_error(cloud):
    cloud.localcloud("fault", "server.create", "--status", "503", "--message",
                     "Service Unavailable: try later", "--count", "1")
    result = cloud.cli("server", "create", "--image", "debian-13", "--flavor", "ssc.tiny",
                       "--network", "private", "lc-fault", check=False)
    assert result.returncode != 0
    assert "try later" in result.stderr and "503" in result.stderr
    assert "lc-fault" not in server_names(cloud)
    assert json.loads(cloud.localcloud("fault")) == []  # used up


def test_injected_error_sends_the_server_to_error(cloud):
    cloud.localcloud("fault", "server.create", "--action", "error", "--message",
                     "No valid host was found.", "--count", "1")
    conn = cloud.connect()
    server = conn.compute.create_server(
        name="lc-error", image_id=conn.image.find_image("debian-13").id,
        flavor_id=conn.compute.find_flavor("ssc.tiny").id, networks="auto")
    with pytest.raises(openstack.exceptions.ResourceFailure):
        conn.compute.wait_for_server(server, wait=120)
    shown = conn.compute.get_server(server.id)
    assert shown.status == "ERROR"
    assert shown.fault["message"] == "No valid host was found."
    conn.delete_server(server.id, wait=True, timeout=120)


def test_injected_auth_fault(cloud):
    cloud.localcloud("fault", "token.issue", "--status", "500", "--count", "1")
    result = cloud.cli("token", "issue", check=False)
    assert result.returncode != 0
    assert "500" in result.stderr


def test_volume_status_transitions(cloud):
    conn = cloud.connect()
    volume = conn.block_storage.create_volume(size=1, name="lc-volume")
    assert volume.status == "creating"
    volume = conn.block_storage.wait_for_status(volume, "available", wait=60)
    assert volume.size == 1
    conn.block_storage.delete_volume(volume)
    conn.block_storage.wait_for_delete(volume, wait=60)
    listed = subprocess.run(["docker", "volume", "ls", "-q"], capture_output=True, text=True,
                            check=True).stdout
    assert volume.id not in listed
