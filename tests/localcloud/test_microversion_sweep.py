"""Every route the local cloud's Nova, Cinder and Keystone serve, called at both ends of the
microversion range and at Zed's maximum.

The routes come from the cloud's own route table (`GET /localcloud/routes`), so a route added
later and not called here fails the coverage test, which names it. Every call goes through the
running cloud, which records it; tests/contract/test_contract_check.py (run last) then checks
each recorded request and response against Nova's, Cinder's and Keystone's own JSON schemas at
the recorded microversion. The versions: Nova 2.1, 2.93 (Zed's maximum, what many research
clouds run) and the cloud's maximum; Cinder 3.0, 3.70 (Zed's) and the cloud's maximum; Keystone
has no microversions. Glance and Neutron have none either, and no schemas to check against.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pytest
import requests

from localcloud.nova import ACTIONS
from tests.helpers import wait_for

pytestmark = pytest.mark.cloud

ROOT_URL = "http://127.0.0.1:8770"
ZED_MAXIMUM = {"compute": "2.93", "volumev3": "3.70"}
SWEPT_SERVICES = ("compute", "volumev3", "identity")
MOUNTS = {"compute": "/compute", "volumev3": "/volume", "identity": "/identity"}
HEADER_NAMES = {"compute": "compute", "volumev3": "volume"}
PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHxtU3sOBpJxWvR8Y5Ej5cY+fDdTTUNKqUK8"
              "Yt3Gb2xU sweep@localcloud")


@dataclass
class Client:
    """requests with the cloud's token, at one microversion of one service."""

    token: str
    service: str
    version: str | None = None
    calls: list = field(default_factory=list)

    def __call__(self, method: str, path: str, expect: int | tuple = (200,), **kwargs):
        headers = {"X-Auth-Token": self.token, **kwargs.pop("headers", {})}
        if self.version:
            headers["OpenStack-API-Version"] = f"{HEADER_NAMES[self.service]} {self.version}"
        response = requests.request(method, ROOT_URL + MOUNTS[self.service] + path,
                                    headers=headers, timeout=120, **kwargs)
        wanted = expect if isinstance(expect, tuple) else (expect,)
        assert response.status_code in wanted, (
            f"{method} {path} at {self.version}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content and response.headers.get(
            "Content-Type", "").startswith("application/json") else None


def maximum(token: str, service: str) -> str:
    """The cloud's maximum microversion, from its version document as a client reads it."""
    path = "/v2.1" if service == "compute" else "/v3"
    document = requests.get(ROOT_URL + MOUNTS[service] + path, timeout=30,
                            headers={"X-Auth-Token": token}).json()
    found = document["version"] if "version" in document else document["versions"][0]
    return found["version"]


def versions(token: str, service: str) -> list[str]:
    minimum = "2.1" if service == "compute" else "3.0"
    return list(dict.fromkeys([minimum, ZED_MAXIMUM[service], maximum(token, service)]))


def tag(version: str) -> str:
    return version.replace(".", "-")


# --- the calls, per service and microversion ---------------------------------------------------


def sweep_compute(api: Client, ids: dict) -> dict:
    """Nova's routes at api.version, up to a server to wait for; returns what to finish with."""
    for path in ("/", "/v2.1", "/v2.1/"):
        api("GET", path, expect=(200, 300))
    flavors = api("GET", "/v2.1/flavors")["flavors"]
    flavor = next(f for f in flavors if f["name"] == "ssc.tiny")["id"]
    api("GET", "/v2.1/flavors/detail")
    api("GET", f"/v2.1/flavors/{flavor}")
    api("GET", f"/v2.1/flavors/{flavor}/os-extra_specs")
    keypair = {"name": f"sweep-{tag(api.version)}"}
    if api.version != "2.1":  # at 2.1 Nova makes the key; from 2.92 on it must be given
        keypair["public_key"] = PUBLIC_KEY
    api("POST", "/v2.1/os-keypairs", expect=(200, 201), json={"keypair": keypair})
    api("GET", "/v2.1/os-keypairs")
    api("GET", f"/v2.1/os-keypairs/{keypair['name']}")
    api("DELETE", f"/v2.1/os-keypairs/{keypair['name']}", expect=(202, 204))
    for path in ("/v2.1/os-availability-zone", "/v2.1/os-availability-zone/detail",
                 "/v2.1/limits", f"/v2.1/os-quota-sets/{ids['project']}",
                 f"/v2.1/os-quota-sets/{ids['project']}/detail"):
        api("GET", path)
    server = {"name": f"sweep-{tag(api.version)}", "imageRef": ids["image"],
              "flavorRef": flavor, "metadata": {"sweep": api.version}}
    if api.version == "2.1":  # Nova's 2.1 schema refuses what later microversions added
        api("POST", "/v2.1/servers", expect=400,
            json={"server": {**server, "description": "from 2.19 on"}})
    else:  # networks required from 2.37 on; description, tags, hostname from 2.19, 2.52, 2.90
        server.update(networks="auto", description=f"swept at {api.version}",
                      tags=["sweep"], hostname=hostname(api.version))
        # a hostname is one RFC 1123 label until 2.93, a fully qualified name from 2.94 on
        refused = "bad_name!" if fqdn_hostnames(api.version) else "sweep.example.org"
        api("POST", "/v2.1/servers", expect=400, json={"server": {**server,
                                                                  "hostname": refused}})
    created = api("POST", "/v2.1/servers", expect=202, json={"server": server})
    return created["server"]["id"]


def fqdn_hostnames(version: str) -> bool:
    """Nova's hostname is an FQDN from 2.94 (nova/api/validation/parameter_types.py)."""
    return tuple(map(int, version.split("."))) >= (2, 94)


def hostname(version: str, suffix: str = "") -> str:
    name = f"sweep-{tag(version)}{suffix}"
    return f"{name}.example.org" if fqdn_hostnames(version) else name


def finish_compute(api: Client, server_id: str) -> None:
    """Nova's routes that need the ACTIVE server, which is deleted at the end."""
    base = f"/v2.1/servers/{server_id}"
    wait_for(lambda: api("GET", base)["server"]["status"] == "ACTIVE")
    api("GET", "/v2.1/servers")
    api("GET", "/v2.1/servers/detail")
    update = {"name": f"sweep-{tag(api.version)}-renamed"}
    if api.version != "2.1":
        update["description"] = "renamed"  # from 2.19 on
        update["hostname"] = hostname(api.version, "-renamed")  # from 2.90 on
    updated = api("PUT", base, json={"server": update})["server"]
    if api.version != "2.1":
        shown = api("GET", base)["server"]
        assert shown["OS-EXT-SRV-ATTR:hostname"] == update["hostname"], shown
        assert updated["name"] == update["name"]
    api("PUT", f"{base}/metadata", json={"metadata": {"a": "1", "b": "2"}})
    api("POST", f"{base}/metadata", json={"metadata": {"c": "3"}})
    api("GET", f"{base}/metadata")
    api("PUT", f"{base}/metadata/a", json={"meta": {"a": "4"}})
    api("GET", f"{base}/metadata/a")
    api("DELETE", f"{base}/metadata/b", expect=204)
    for part in ("ips", "os-security-groups", "os-volume_attachments", "os-interface"):
        api("GET", f"{base}/{part}")
    server_actions(api, base)
    api("DELETE", base, expect=204)
    # gone before the next test lists servers (Nova deletes asynchronously)
    wait_for(lambda: "itemNotFound" in (api("GET", base, expect=(200, 404)) or {}))


def server_actions(api: Client, base: str) -> None:
    """Each action of POST /servers/{id}/action, the server ACTIVE again at the end."""
    def settled(status):
        server = api("GET", base)["server"]
        return server["status"] == status and server["OS-EXT-STS:task_state"] is None

    api("POST", f"{base}/action", json={"os-getConsoleOutput": {"length": 5}})
    api("POST", f"{base}/action", expect=202, json={"os-stop": None})
    wait_for(lambda: settled("SHUTOFF"))
    answer = requests.post(ROOT_URL + MOUNTS["compute"] + f"{base}/action", timeout=120,
                           headers={"X-Auth-Token": api.token, "OpenStack-API-Version":
                                    f"compute {api.version}"},
                           json={"createImage": {"name": f"sweep-{tag(api.version)}",
                                                 "metadata": {"sweep": api.version}}})
    assert answer.status_code == 202, answer.text
    image = f"{ROOT_URL}/image/v2/images/" + answer.headers["Location"].rsplit("/", 1)[-1]
    wait_for(lambda: settled("SHUTOFF"))
    assert requests.get(image, headers={"X-Auth-Token": api.token},
                        timeout=30).json()["status"] == "active"
    assert requests.delete(image, headers={"X-Auth-Token": api.token},
                           timeout=60).status_code == 204
    api("POST", f"{base}/action", expect=202, json={"os-start": None})
    wait_for(lambda: settled("ACTIVE"))
    api("POST", f"{base}/action", expect=202, json={"reboot": {"type": "SOFT"}})
    wait_for(lambda: settled("ACTIVE"))


def sweep_volume(api: Client, ids: dict) -> str:
    project = f"/v3/{ids['project']}"
    for path in ("/", "/v3", "/v3/"):
        api("GET", path, expect=(200, 300))
    for path in ("/snapshots", "/snapshots/detail", "/os-availability-zone", "/limits",
                 f"/os-quota-sets/{ids['project']}"):
        api("GET", project + path)
    for usage in ("true", "Yes", "0"):
        quotas = api("GET", f"{project}/os-quota-sets/{ids['project']}",
                     params={"usage": usage})["quota_set"]
        assert isinstance(quotas["volumes"], dict) == (usage != "0"), quotas
    # cinder/utils.py get_bool_param: not a boolean string, 400
    api("GET", f"{project}/os-quota-sets/{ids['project']}", params={"usage": "maybe"},
        expect=400)
    types = api("GET", f"{project}/types")["volume_types"]
    api("GET", f"{project}/types/{types[0]['id']}")
    volume = api("POST", f"{project}/volumes", expect=202, json={"volume": {
        "size": 1, "name": f"sweep-{tag(api.version)}"}})["volume"]
    return volume["id"]


def finish_volume(api: Client, ids: dict, volume_id: str) -> None:
    project = f"/v3/{ids['project']}"
    path = f"{project}/volumes/{volume_id}"
    wait_for(lambda: api("GET", path)["volume"]["status"] == "available")
    api("GET", f"{project}/volumes")
    api("GET", f"{project}/volumes/detail")
    api("PUT", path, json={"volume": {"description": f"swept at {api.version}"}})
    snapshot = api("POST", f"{project}/snapshots", expect=202, json={"snapshot": {
        "volume_id": volume_id, "name": f"sweep-{tag(api.version)}"}})["snapshot"]
    snapshot_path = f"{project}/snapshots/{snapshot['id']}"
    wait_for(lambda: api("GET", snapshot_path)["snapshot"]["status"] == "available")
    api("DELETE", snapshot_path, expect=202)
    wait_for(lambda: "itemNotFound" in (api("GET", snapshot_path, expect=(200, 404)) or {}))
    api("DELETE", path, expect=202)
    wait_for(lambda: "itemNotFound" in (api("GET", path, expect=(200, 404)) or {}))


def sweep_identity(api: Client, ids: dict, password: str) -> None:
    for path in ("/", "/v3", "/v3/"):
        api("GET", path, expect=(200, 300))
    issued = requests.post(f"{ROOT_URL}/identity/v3/auth/tokens", timeout=30, json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": ids["username"], "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"id": ids["project"]}}}})
    assert issued.status_code == 201, issued.text
    subject = {"X-Subject-Token": issued.headers["X-Subject-Token"]}
    api("GET", "/v3/auth/tokens", headers=subject)
    api("HEAD", "/v3/auth/tokens", headers=subject)
    api("DELETE", "/v3/auth/tokens", expect=204, headers=subject)
    for path in ("/v3/auth/catalog", "/v3/auth/projects", f"/v3/users/{ids['user']}/projects",
                 "/v3/projects", f"/v3/projects/{ids['project']}", f"/v3/users/{ids['user']}"):
        api("GET", path)
    credentials = f"/v3/users/{ids['user']}/application_credentials"
    made = api("POST", credentials, expect=201, json={"application_credential": {
        "name": "sweep", "description": "the microversion sweep's"}})
    credential = made["application_credential"]["id"]
    api("GET", credentials)
    api("GET", f"{credentials}/{credential}")
    api("DELETE", f"{credentials}/{credential}", expect=204)


# --- the sweep and its coverage ----------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep(cloud) -> dict:
    """Runs every call; returns the route table and the exchanges recorded meanwhile."""
    conn = cloud.connect()
    token = conn.auth_token
    auth = conn.config.config["auth"]
    ids = {"project": conn.current_project_id, "user": conn.current_user_id,
           "username": auth["username"], "image": conn.image.find_image("debian-13").id}
    routes = requests.get(f"{ROOT_URL}/localcloud/routes", timeout=30,
                          headers={"X-Auth-Token": token}).json()["routes"]
    start = cloud.record.stat().st_size
    compute = {v: Client(token, "compute", v) for v in versions(token, "compute")}
    volume = {v: Client(token, "volumev3", v) for v in versions(token, "volumev3")}
    servers = {v: sweep_compute(api, ids) for v, api in compute.items()}
    volumes = {v: sweep_volume(api, ids) for v, api in volume.items()}
    sweep_identity(Client(token, "identity"), ids, auth["password"])
    for v, api in volume.items():
        finish_volume(api, ids, volumes[v])
    for v, api in compute.items():
        finish_compute(api, servers[v])
    with cloud.record.open() as record:
        record.seek(start)
        exchanges = [json.loads(line) for line in record if line.strip()]
    return {"routes": routes, "exchanges": exchanges,
            "versions": {"compute": list(compute), "volumev3": list(volume),
                         "identity": [None]}}


def rule_pattern(rule: str) -> re.Pattern:
    """A Bottle rule ('/v2.1/servers/<server_id>') as a regular expression for paths."""
    parts = re.split(r"<[^>]+>", rule)
    return re.compile("[^/]+".join(re.escape(part) for part in parts) + "$")


def route_of(exchange: dict, routes: list[dict]) -> dict | None:
    """The route Bottle serves an exchange with: a static rule first, then the first match."""
    candidates = [r for r in routes if r["service"] == exchange["service"]
                  and r["method"] == exchange["method"]]
    for route in candidates:
        if "<" not in route["rule"] and route["rule"] == exchange["path"]:
            return route
    return next((r for r in candidates if rule_pattern(r["rule"]).match(exchange["path"])),
                None)


def test_the_route_table_lists_the_services(sweep):
    listed = {(r["service"], r["method"], r["rule"]) for r in sweep["routes"]}
    assert ("compute", "POST", "/v2.1/servers") in listed
    assert ("volumev3", "POST", "/v3/<project_id>/volumes") in listed
    assert ("identity", "POST", "/v3/auth/tokens") in listed


def test_every_route_answered_at_every_version(sweep):
    """Each route of Nova, Cinder and Keystone had a successful exchange at each version."""
    answered = set()
    for exchange in sweep["exchanges"]:
        route = route_of(exchange, sweep["routes"])
        if route is not None and exchange["status"] < 400:
            answered.add((route["service"], route["method"], route["rule"],
                          exchange["microversion"]))
    missing = [f"{route['service']} {route['method']} {route['rule']}"
               + (f" at {version}" if version else "")
               for route in sweep["routes"] if route["service"] in SWEPT_SERVICES
               for version in sweep["versions"][route["service"]]
               if (route["service"], route["method"], route["rule"], version) not in answered]
    assert not missing, "routes the sweep did not call (add them to it):\n" + "\n".join(missing)


def test_every_server_action_answered_at_every_version(sweep):
    """Each action localcloud's Nova takes (POST /servers/{id}/action) at each version."""
    answered = {(next(iter(e["request"])), e["microversion"]) for e in sweep["exchanges"]
                if e["service"] == "compute" and e["path"].endswith("/action")
                and e["status"] < 400 and isinstance(e["request"], dict)}
    missing = [f"{action} at {version}" for action in ACTIONS
               for version in sweep["versions"]["compute"]
               if (action, version) not in answered]
    assert not missing, "server actions the sweep did not take:\n" + "\n".join(missing)


def test_versions_reach_the_top(sweep):
    """The sweep asks for the cloud's maximum, which is at or above Zed's."""
    for service in ("compute", "volumev3"):
        swept = sweep["versions"][service]
        top = max(swept, key=lambda v: tuple(int(n) for n in v.split(".")))
        assert tuple(map(int, top.split("."))) >= tuple(map(int,
                                                            ZED_MAXIMUM[service].split(".")))
