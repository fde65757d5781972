"""The contract checker itself: it accepts exchanges shaped like real OpenStack and flags others.

The checker runs in var/contract-venv (scripts/contract-venv.sh, built here when missing), so
these tests shell out to it with hand-written records. All samples go into one record per run:
starting nova, cinder and keystone takes a few seconds each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / "var" / "contract-venv" / "bin" / "python"
VALIDATOR = Path(__file__).with_name("validate.py")

SERVER_ID = "9f0f8a5e-4c8e-4c1a-9b5e-2f1d3c4b5a69"
VOLUME_ID = "0b6f2a3c-7d4e-4f5a-8b9c-1d2e3f4a5b6c"
SNAPSHOT_ID = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
NETWORK_ID = "5e2d1c0b-9a8f-4e7d-8c6b-5a4f3e2d1c0b"
PROJECT_ID = "6f1b0e9a2c3d4e5f8a7b6c5d4e3f2a1b"
USER_ID = "3c2b1a0f9e8d4c7b8a6f5e4d3c2b1a09"
COMPUTE = "http://127.0.0.1:8774/v2.1"


def links(path: str) -> list[dict]:
    return [
        {"rel": "self", "href": f"{COMPUTE}/{path}"},
        {"rel": "bookmark", "href": f"http://127.0.0.1:8774/{path}"},
    ]


def exchange(method, path, status, request=None, response=None, *, service="compute",
             microversion="2.96", query=None) -> dict:
    return {"service": service, "method": method, "path": path, "query": query or {},
            "microversion": microversion, "status": status, "request": request,
            "response": response}


# --- valid samples ------------------------------------------------------------------------------


def server_create_request() -> dict:
    return {"server": {
        "name": "binder-1",
        "flavorRef": "2",
        "imageRef": "",
        "block_device_mapping_v2": [{
            "boot_index": 0, "uuid": VOLUME_ID, "source_type": "volume",
            "destination_type": "volume", "delete_on_termination": False,
        }],
        "networks": [{"uuid": NETWORK_ID}],
        "user_data": "I2Nsb3VkLWNvbmZpZwpwYWNrYWdlczogW2RvY2tlci5pb10K",
        "metadata": {"repo2docker": "true"},
        "key_name": "ci-key",
        "security_groups": [{"name": "default"}],
    }}


def server_create_response() -> dict:
    return {"server": {
        "id": SERVER_ID,
        "links": links(f"servers/{SERVER_ID}"),
        "adminPass": "***",
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": [{"name": "default"}],
    }}


def server_show_response_296() -> dict:
    """GET /servers/{id} at 2.96, field for field what nova 34's view builder returns."""
    return {"server": {
        "id": SERVER_ID,
        "name": "binder-1",
        "status": "ACTIVE",
        "tenant_id": PROJECT_ID,
        "user_id": USER_ID,
        "metadata": {"repo2docker": "true"},
        "hostId": "2f1d3c4b5a69f0f8a5e4c8e4c1a9b5e2f1d3c4b5a69f0f8a5e4c8e4c",
        "image": "",
        "flavor": {"vcpus": 2, "ram": 4096, "disk": 20, "ephemeral": 0, "swap": 0,
                   "original_name": "m1.medium", "extra_specs": {}},
        "created": "2026-11-26T12:00:00Z",
        "updated": "2026-11-26T12:00:05Z",
        "addresses": {"private": [{
            "version": 4, "addr": "10.0.0.5", "OS-EXT-IPS:type": "fixed",
            "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:12:34:56",
        }]},
        "accessIPv4": "",
        "accessIPv6": "",
        "links": links(f"servers/{SERVER_ID}"),
        "OS-DCF:diskConfig": "MANUAL",
        "progress": 0,
        "OS-EXT-AZ:availability_zone": "nova",
        "pinned_availability_zone": None,
        "config_drive": "",
        "key_name": "ci-key",
        "OS-SRV-USG:launched_at": "2026-11-26T12:00:05.000000",
        "OS-SRV-USG:terminated_at": None,
        "security_groups": [{"name": "default"}],
        "OS-EXT-SRV-ATTR:hostname": "binder-1",
        "OS-EXT-STS:task_state": None,
        "OS-EXT-STS:vm_state": "active",
        "OS-EXT-STS:power_state": 1,
        "os-extended-volumes:volumes_attached": [
            {"id": VOLUME_ID, "delete_on_termination": False},
        ],
        "locked": False,
        "locked_reason": None,
        "description": None,
        "tags": [],
        "trusted_image_certificates": None,
        "server_groups": [],
    }}


def flavor_list_response() -> dict:
    return {"flavors": [
        {"id": "1", "name": "m1.small", "description": None, "links": links("flavors/1")},
        {"id": "2", "name": "m1.medium", "description": None, "links": links("flavors/2")},
    ]}


def keypair_create_request() -> dict:
    return {"keypair": {"name": "ci-key", "type": "ssh",
                        "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB ci@localcloud"}}


def keypair_create_response() -> dict:
    return {"keypair": {
        "name": "ci-key", "type": "ssh", "user_id": USER_ID,
        "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB ci@localcloud",
        "fingerprint": "1e:2c:9b:56:79:4b:45:77:f9:ca:7a:98:2c:b0:d5:3c",
    }}


def volume_create_request() -> dict:
    return {"volume": {"size": 10, "name": "binder-root", "imageRef": None,
                       "availability_zone": "nova", "metadata": {}}}


VOLUMES = "http://127.0.0.1:8776/v3"


def volume_response(status: str = "creating") -> dict:
    """A volume as Cinder shows it at 3.60 (tempest's base volume schema)."""
    return {"volume": {
        "id": VOLUME_ID, "name": "binder-root", "description": None, "size": 10,
        "status": status, "attachments": [], "availability_zone": "nova", "bootable": "false",
        "encrypted": False, "multiattach": False, "metadata": {}, "migration_status": None,
        "replication_status": None, "consistencygroup_id": None, "group_id": None,
        "snapshot_id": None, "source_volid": None, "volume_type": "__DEFAULT__",
        "user_id": USER_ID, "created_at": "2026-12-07T10:00:00.000000", "updated_at": None,
        "shared_targets": False,
        "links": [{"rel": "self", "href": f"{VOLUMES}/{PROJECT_ID}/volumes/{VOLUME_ID}"},
                  {"rel": "bookmark", "href": f"{VOLUMES}/volumes/{VOLUME_ID}"}]}}


def snapshot_response() -> dict:
    """A snapshot as Cinder 3.0 shows it (no group_snapshot_id before 3.14)."""
    return {"snapshot": {
        "id": SNAPSHOT_ID, "name": "snap", "description": None, "size": 10,
        "status": "available", "volume_id": VOLUME_ID, "metadata": {},
        "created_at": "2026-12-07T10:00:00.000000", "updated_at": None,
        "os-extended-snapshot-attributes:progress": "100%",
        "os-extended-snapshot-attributes:project_id": PROJECT_ID}}


def volume_quota_usage() -> dict:
    usage = {"limit": 10, "in_use": 1, "reserved": 0, "allocated": 0}
    names = ("volumes", "gigabytes", "snapshots", "backups", "backup_gigabytes", "groups",
             "per_volume_gigabytes")
    return {"quota_set": {"id": PROJECT_ID, **{name: dict(usage) for name in names}}}


def token_request() -> dict:
    return {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": "***"}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}},
    }}


def app_credential_request() -> dict:
    return {"application_credential": {"name": "ci", "description": "CI runs",
                                       "unrestricted": False}}


def app_credential_response() -> dict:
    return {"application_credential": {
        "id": "aa12bb34cc56dd78ee90ff12aa34bb56", "name": "ci", "description": "CI runs",
        "user_id": USER_ID, "project_id": PROJECT_ID, "expires_at": None,
        "unrestricted": False, "system": None, "access_rules": [], "secret": "***",
        "roles": [{"id": "9fe2ff9ee4384b1894a90878d3e92bab", "name": "member",
                   "domain_id": None}],
        "links": {"self": f"http://127.0.0.1:5000/v3/users/{USER_ID}/application_credentials/"
                          "aa12bb34cc56dd78ee90ff12aa34bb56"},
    }}


def limits_response(version: str) -> dict:
    """GET /limits as nova 34 answers it at 2.1 or from 2.57 on (views/limits.py)."""
    absolute = {"maxTotalInstances": 10, "maxTotalCores": 20, "maxTotalRAMSize": 51200,
                "maxServerMeta": 128, "maxTotalKeypairs": 100, "maxServerGroups": 10,
                "maxServerGroupMembers": 10, "totalInstancesUsed": 1, "totalCoresUsed": 1,
                "totalRAMUsed": 1024, "totalServerGroupsUsed": 0}
    if version == "2.1":
        absolute.update({"maxImageMeta": 128, "maxPersonality": 5, "maxPersonalitySize": 10240,
                         "maxTotalFloatingIps": -1, "maxSecurityGroups": -1,
                         "maxSecurityGroupRules": -1, "totalFloatingIpsUsed": 0,
                         "totalSecurityGroupsUsed": 0})
    return {"limits": {"rate": [], "absolute": absolute}}


def quota_set_response(version: str) -> dict:
    """GET /os-quota-sets/{id} at 2.1 (with nova-network's quotas) or from 2.57 on."""
    quotas = {"id": PROJECT_ID, "instances": 10, "cores": 20, "ram": 51200, "key_pairs": 100,
              "metadata_items": 128, "server_groups": 10, "server_group_members": 10}
    if version == "2.1":
        quotas.update({"injected_files": 5, "injected_file_content_bytes": 10240,
                       "injected_file_path_bytes": 255, "fixed_ips": -1, "floating_ips": -1,
                       "security_groups": -1, "security_group_rules": -1})
    return {"quota_set": quotas}


VALID = {
    "server create": exchange("POST", "/v2.1/servers", 202, server_create_request(),
                              server_create_response()),
    "server show": exchange("GET", f"/v2.1/servers/{SERVER_ID}", 200, None,
                            server_show_response_296()),
    "flavor list": exchange("GET", "/v2.1/flavors", 200, None, flavor_list_response(),
                            microversion="2.61", query={"is_public": ["None"]}),
    "keypair create": exchange("POST", "/v2.1/os-keypairs", 201, keypair_create_request(),
                               keypair_create_response(), microversion="2.92"),
    "server stop": exchange("POST", f"/v2.1/servers/{SERVER_ID}/action", 202,
                            {"os-stop": None}, None),
    "server console output": exchange("POST", f"/v2.1/servers/{SERVER_ID}/action", 200,
                                      {"os-getConsoleOutput": {"length": 50}},
                                      {"output": "booted\nssc-r2d: {}"}),
    "server console output, all": exchange("POST", f"/v2.1/servers/{SERVER_ID}/action", 200,
                                           {"os-getConsoleOutput": {"length": None}},
                                           {"output": ""}),
    "server delete": exchange("DELETE", f"/v2.1/servers/{SERVER_ID}", 204),
    "compute discovery": exchange("GET", "/", 200, None, {"versions": []}, microversion=None),
    "limits at 2.1": exchange("GET", "/v2.1/limits", 200, None, limits_response("2.1"),
                              microversion="2.1"),
    "limits at 2.104": exchange("GET", "/v2.1/limits", 200, None, limits_response("2.104"),
                                microversion="2.104"),
    "quota set at 2.1": exchange("GET", f"/v2.1/os-quota-sets/{PROJECT_ID}", 200, None,
                                 quota_set_response("2.1"), microversion="2.1"),
    "identity discovery, trailing slash": exchange("GET", "/v3/", 200, None, {"version": {}},
                                                   service="identity", microversion=None),
    "refused bad create": exchange("POST", "/v2.1/servers", 400, {"server": {"name": "x"}},
                                   {"badRequest": {"code": 400, "message": "flavorRef"}}),
    "volume create": exchange("POST", f"/v3/{PROJECT_ID}/volumes", 202,
                              volume_create_request(), volume_response(), service="volumev3",
                              microversion="3.60"),
    "volume delete": exchange("DELETE", f"/v3/{PROJECT_ID}/volumes/{VOLUME_ID}", 202,
                              service="volumev3", microversion="3.70"),
    "snapshot show at 3.0": exchange("GET", f"/v3/{PROJECT_ID}/snapshots/{SNAPSHOT_ID}", 200,
                                     None, snapshot_response(), service="volumev3",
                                     microversion="3.0"),
    "volume create refused for its zone": exchange(
        "POST", f"/v3/{PROJECT_ID}/volumes", 400, {"volume": {"size": 1,
                                                             "availability_zone": "elsewhere"}},
        {"badRequest": {"code": 400, "message": "Invalid input received: Availability zone "
                                                "'elsewhere' is invalid."}},
        service="volumev3", microversion="3.70"),
    "volume quota usage": exchange("GET", f"/v3/{PROJECT_ID}/os-quota-sets/{PROJECT_ID}", 200,
                                   None, volume_quota_usage(), service="volumev3",
                                   microversion="3.70", query={"usage": ["True"]}),
    "token": exchange("POST", "/v3/auth/tokens", 201, token_request(), service="identity",
                      microversion=None),
    "app credential": exchange("POST", f"/v3/users/{USER_ID}/application_credentials", 201,
                               app_credential_request(), app_credential_response(),
                               service="identity", microversion=None),
    "image list": exchange("GET", "/v2/images", 200, None, {"images": []}, service="image",
                           microversion=None),
}


def with_image_meta_limit() -> dict:
    """2.39 dropped maxImageMeta from /limits (a check from outside found it at 2.104)."""
    body = limits_response("2.104")
    body["limits"]["absolute"]["maxImageMeta"] = 128
    return exchange("GET", "/v2.1/limits", 200, None, body, microversion="2.104")


def without_network_quotas() -> dict:
    """Below 2.36 a quota set still lists nova-network's quotas."""
    body = quota_set_response("2.1")
    for name in ("fixed_ips", "floating_ips", "security_groups", "security_group_rules"):
        del body["quota_set"][name]
    return exchange("GET", f"/v2.1/os-quota-sets/{PROJECT_ID}", 200, None, body,
                    microversion="2.1")


# --- invalid samples: each must be flagged --------------------------------------------------------


def with_unknown_create_key() -> dict:
    body = server_create_request()
    body["server"]["flavor_name"] = "m1.medium"
    return exchange("POST", "/v2.1/servers", 202, body, server_create_response())


def without_required_show_field() -> dict:
    body = server_show_response_296()
    del body["server"]["pinned_availability_zone"]
    return exchange("GET", f"/v2.1/servers/{SERVER_ID}", 200, None, body)


def with_old_microversion_shape() -> dict:
    """A 2.46-style flavor reference where 2.96 embeds the flavor."""
    body = server_show_response_296()
    body["server"]["flavor"] = {"id": "2", "links": links("flavors/2")}
    return exchange("GET", f"/v2.1/servers/{SERVER_ID}", 200, None, body)


def with_keypair_generation() -> dict:
    """2.92 dropped server-side key generation: public_key is required."""
    body = keypair_create_request()
    del body["keypair"]["public_key"]
    return exchange("POST", "/v2.1/os-keypairs", 201, body, keypair_create_response(),
                    microversion="2.92")


def with_create_image_location() -> dict:
    """From 2.45 createImage answers {"image_id": ...}, not an empty body."""
    return exchange("POST", f"/v2.1/servers/{SERVER_ID}/action", 202,
                    {"createImage": {"name": "snap"}}, None)


def volume_without(field: str) -> dict:
    body = volume_response("available")
    del body["volume"][field]
    return exchange("GET", f"/v3/{PROJECT_ID}/volumes/{VOLUME_ID}", 200, None, body,
                    service="volumev3", microversion="3.70")


def volume_with_newer_field() -> dict:
    """consumes_quota is shown from 3.65 on, not at 3.0."""
    body = volume_response("available")
    body["volume"]["consumes_quota"] = True
    return exchange("GET", f"/v3/{PROJECT_ID}/volumes/{VOLUME_ID}", 200, None, body,
                    service="volumev3", microversion="3.0")


def quota_set_without_usage() -> dict:
    """With ?usage=true each quota is {limit, in_use, reserved}, not a number."""
    body = volume_quota_usage()
    body["quota_set"]["volumes"] = 10
    return exchange("GET", f"/v3/{PROJECT_ID}/os-quota-sets/{PROJECT_ID}", 200, None, body,
                    service="volumev3", microversion="3.70", query={"usage": ["true"]})


def with_refused_valid_request() -> dict:
    return exchange("POST", "/v2.1/servers", 400, server_create_request(),
                    {"badRequest": {"code": 400, "message": "Invalid input"}})


INVALID = {
    "unknown key in create": with_unknown_create_key(),
    "show missing required field": without_required_show_field(),
    "show with 2.46 flavor at 2.96": with_old_microversion_shape(),
    "keypair create without public_key at 2.92": with_keypair_generation(),
    "createImage without image_id at 2.96": with_create_image_location(),
    "400 for a request nova accepts": with_refused_valid_request(),
    "maxImageMeta at 2.104": with_image_meta_limit(),
    "quota set at 2.1 without network quotas": without_network_quotas(),
    "create answered 200 instead of 202": {**VALID["server create"], "status": 200},
    "microversion beyond nova": {**VALID["server show"], "microversion": "2.105"},
    "unknown server action": exchange("POST", f"/v2.1/servers/{SERVER_ID}/action", 202,
                                      {"os-explode": None}, None),
    "console output of -2 lines accepted": exchange(
        "POST", f"/v2.1/servers/{SERVER_ID}/action", 200,
        {"os-getConsoleOutput": {"length": -2}}, {"output": ""}),
    "volume create with unknown key": exchange(
        "POST", f"/v3/{PROJECT_ID}/volumes", 202, {"volume": {"size": 1, "colour": "red"}},
        service="volumev3", microversion="3.60"),
    "volume show without status": volume_without("status"),
    "volume show at 3.0 with consumes_quota": volume_with_newer_field(),
    "volume quota usage as numbers": quota_set_without_usage(),
    "volume delete with a body": exchange(
        "DELETE", f"/v3/{PROJECT_ID}/volumes/{VOLUME_ID}", 202, None, volume_response(),
        service="volumev3", microversion="3.70"),
    "volume create answered 200": {**VALID["volume create"], "status": 200},
    "volume create refused in words Cinder has not": exchange(
        "POST", f"/v3/{PROJECT_ID}/volumes", 400, {"volume": {"size": 1}},
        {"badRequest": {"code": 400, "message": "Volumes are not made today."}},
        service="volumev3", microversion="3.70"),
    "token without identity": exchange("POST", "/v3/auth/tokens", 201,
                                       {"auth": {"scope": "unscoped"}}, service="identity",
                                       microversion=None),
    "app credential with unknown key": exchange(
        "POST", f"/v3/users/{USER_ID}/application_credentials", 201,
        {"application_credential": {"name": "ci", "colour": "red"}}, service="identity",
        microversion=None),
}

UNKNOWN = {
    "made-up compute route": exchange("GET", "/v2.1/os-made-up", 200, None, {}),
}


# --- running the checker --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def contract_python() -> Path:
    """The contract venv's python; the script is quick when the venv is up to date."""
    subprocess.run(["bash", str(ROOT / "scripts" / "contract-venv.sh")], check=True)
    return VENV_PYTHON


def run_validator(python: Path, tmp_path: Path, samples: dict) -> tuple[int, dict, dict]:
    """Run the checker on the samples; returns exit code, report, and sample name by line."""
    record = tmp_path / "record.jsonl"
    names = list(samples)
    record.write_text("".join(json.dumps(samples[name]) + "\n" for name in names))
    proc = subprocess.run([str(python), str(VALIDATOR), str(record), "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode not in (0, 1):
        sys.stderr.write(proc.stderr)
        pytest.fail(f"validator crashed with {proc.returncode}")
    return proc.returncode, json.loads(proc.stdout), dict(enumerate(names, start=1))


def flagged(report: dict, kind: str, names: dict) -> dict[str, list[str]]:
    found = {}
    for summary in report["services"].values():
        for entry in summary[kind]:
            found[names[entry["line"]]] = entry["problems"]
    return found


@pytest.fixture(scope="module")
def mixed_run(contract_python, tmp_path_factory):
    samples = {**VALID, **INVALID, **UNKNOWN}
    return run_validator(contract_python, tmp_path_factory.mktemp("mixed"), samples)


def test_valid_samples_pass(contract_python, tmp_path):
    code, report, names = run_validator(contract_python, tmp_path, VALID)
    assert flagged(report, "violations", names) == {}
    assert flagged(report, "unknown", names) == {}
    assert code == 0
    services = report["services"]
    assert services["compute"]["checked"] == 12
    assert services["compute"]["skipped"] == 1
    assert services["volumev3"]["checked"] == 5
    assert services["identity"]["checked"] == 2
    assert services["identity"]["skipped"] == 1
    assert services["image"]["not_checked"] == 1


def test_every_invalid_sample_is_flagged(mixed_run):
    code, report, names = mixed_run
    assert code == 1
    violations = flagged(report, "violations", names)
    assert sorted(violations) == sorted(INVALID)


def test_unknown_routes_are_reported_separately(mixed_run):
    _code, report, names = mixed_run
    assert sorted(flagged(report, "unknown", names)) == sorted(UNKNOWN)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("unknown key in create", "Additional properties are not allowed ('flavor_name'"),
        ("show missing required field", "pinned_availability_zone"),
        ("show with 2.46 flavor at 2.96", "$.server.flavor: Additional properties"),
        ("keypair create without public_key at 2.92", "'public_key' is a required property"),
        ("createImage without image_id at 2.96", "None is not of type 'object'"),
        ("400 for a request nova accepts", "refused with 400"),
        ("maxImageMeta at 2.104", "'maxImageMeta' was unexpected"),
        ("quota set at 2.1 without network quotas", "'fixed_ips' is a required property"),
        ("create answered 200 instead of 202", "nova answers 202"),
        ("microversion beyond nova", "answers 406 here (microversion 2.105: nova supports 2.1"),
        ("unknown server action", "no such action: os-explode"),
        ("volume create with unknown key", "'colour' was unexpected"),
        ("volume show without status", "'status' is a required property"),
        ("volume show at 3.0 with consumes_quota", "'consumes_quota' was unexpected"),
        ("volume quota usage as numbers", "$.quota_set.volumes: 10 is not of type 'object'"),
        ("volume delete with a body", "a body where Cinder answers with none"),
        ("volume create answered 200", "tempest's schema wants 202"),
        ("volume create refused in words Cinder has not", "refused with 400 a request"),
        ("token without identity", "identity"),
        ("app credential with unknown key", "'colour' was unexpected"),
    ],
)
def test_problem_names_the_cause(mixed_run, name, expected):
    _code, report, names = mixed_run
    problems = flagged(report, "violations", names)[name]
    assert any(expected in problem for problem in problems), problems


def test_text_report(contract_python, tmp_path):
    record = tmp_path / "record.jsonl"
    samples = [INVALID["unknown key in create"], VALID["flavor list"]]
    record.write_text("".join(json.dumps(s) + "\n" for s in samples) + "not json\n")
    proc = subprocess.run([str(contract_python), str(VALIDATOR), str(record)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    summary = "compute: checked 2 exchanges, 1 violations, 0 unknown routes, 0 version discovery"
    assert summary in lines
    violation = "  VIOLATION line 1: POST /v2.1/servers @2.96 [202] -> ServersController.create"
    assert violation in lines
    assert "ERROR line 3: not JSON: Expecting value: line 1 column 1 (char 0)" in lines
    assert lines[-1] == "contract: FAILED"

