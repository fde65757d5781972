"""Nova v2.1 with microversions: flavors, keypairs, servers and their actions, limits.

Routes are module-level functions, one per API call, taking the path's parameters and the
``cloud`` (given by the `Inject` plugin); :func:`make_app` wires them to their paths.

Each answer has the shape Nova gives at the request's microversion (its view builders and the
response schemas in nova/api/openstack/compute/schemas), from 2.1 to 2.104; a comment names
the microversion where a field comes or goes. tests/localcloud/test_microversion_sweep.py calls
every route at 2.1, 2.93 (Zed's maximum) and 2.104, and tests/contract checks each answer
against Nova's own schemas. Found that way and fixed: /limits' maxImageMeta (gone at 2.39) and
nova-network limits (gone at 2.36); the quota set's nova-network quotas (below 2.36); the view
PUT /servers/{id} answers (basic below 2.75, server_groups from 2.71).
"""

import base64
import binascii
import hashlib
import re
import subprocess
import tempfile
import time
from pathlib import Path

import bottle
import jsonschema

from localcloud.api import (
    ApiError,
    Inject,
    Microversions,
    at_least,
    bad_request,
    base_url,
    conflict,
    json_body,
    link,
    not_found,
    strict,
)
from localcloud.machines import MachineError
from localcloud.store import now

MICROVERSIONS = Microversions("compute", "2.1", "2.104", "X-OpenStack-Nova-API-Version")
ZONE = "nova"
ACTIVE_STATUS = {"building": "BUILD", "active": "ACTIVE", "stopped": "SHUTOFF",
                 "error": "ERROR", "deleted": "DELETED"}
TASK_STATUS = {"rebooting": "REBOOT", "reboot_pending": "REBOOT", "reboot_started": "REBOOT"}

# Request schemas: the keys Nova's own schemas allow (see nova.api.openstack.compute.schemas),
# so that an unknown or misspelt key is refused with 400 as Nova refuses it.
NAME = {"type": "string", "minLength": 1, "maxLength": 255,
        "pattern": r"^(?![\s])[^\x00-\x1f\x7f]*(?<![\s])$"}
UUID_OR_NAME = {"type": "string", "minLength": 1, "maxLength": 255}
BOOL = {"type": ["boolean", "string"],
        "enum": [True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
                 False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"]}
METADATA = {"type": "object", "patternProperties": {
    r"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string", "maxLength": 255}},
    "additionalProperties": False}
BDM_V2 = strict({
    "virtual_name": {"type": "string", "maxLength": 255},
    "volume_id": {"type": "string"}, "snapshot_id": {"type": "string"},
    "volume_size": {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1},
    "device_name": {"type": "string", "minLength": 1, "maxLength": 255,
                    "pattern": "^[a-zA-Z0-9._/-]*$"},
    "delete_on_termination": BOOL, "no_device": {}, "connection_info": {"type": "string"},
    "source_type": {"type": "string", "enum": ["volume", "image", "snapshot", "blank"]},
    "uuid": {"type": "string", "minLength": 1, "maxLength": 255,
             "pattern": "^[a-zA-Z0-9._-]*$"},
    "image_id": {"type": "string"},
    "destination_type": {"type": "string", "enum": ["local", "volume"]},
    "guest_format": {"type": "string", "maxLength": 255},
    "device_type": {"type": "string", "maxLength": 255},
    "disk_bus": {"type": "string", "maxLength": 255},
    "boot_index": {"type": ["integer", "string", "null"], "pattern": "^-?[0-9]+$"},
    "tag": {"type": "string", "minLength": 1, "maxLength": 60},
    "volume_type": {"type": ["string", "null"], "minLength": 0, "maxLength": 255},
})
NETWORKS = {"oneOf": [
    {"type": "array", "items": strict({
        "fixed_ip": {"type": "string", "format": "ipv4"},
        "port": {"type": ["string", "null"], "format": "uuid"},
        "uuid": {"type": "string"}, "tag": {"type": "string"}})},
    {"type": "string", "enum": ["none", "auto"]}]}
# nova/api/validation/parameter_types.py: a server's `hostname` is an RFC 1123 label from 2.90
# and may be a fully qualified domain name from 2.94 on (underscores allowed, "as it sometimes
# occurs in real systems"); `host` and `hypervisor_hostname` are the latter.
HOSTNAME = {"type": "string", "pattern": "^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$",
            "minLength": 2, "maxLength": 63}
FQDN = {"type": "string", "pattern": "^[a-zA-Z0-9-._]*$", "minLength": 1, "maxLength": 255}


def hostname_schema() -> dict:
    """The schema of `hostname` in create and update at the request's microversion."""
    return FQDN if at_least("2.94") else HOSTNAME


SERVER_CREATE = {
    "name": NAME, "imageRef": {"type": "string"}, "flavorRef": {"type": ["string", "integer"],
                                                                "minLength": 1},
    "adminPass": {"type": "string"}, "metadata": METADATA, "networks": NETWORKS,
    "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
    "accessIPv4": {"type": "string", "format": "ipv4"},
    "accessIPv6": {"type": "string", "format": "ipv6"},
    "personality": {"type": "array"}, "availability_zone": NAME,
    "block_device_mapping": {"type": "array"},
    "block_device_mapping_v2": {"type": "array", "items": BDM_V2},
    "config_drive": BOOL, "key_name": NAME,
    "min_count": {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 1},
    "max_count": {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 1},
    "return_reservation_id": BOOL,
    "security_groups": {"type": "array", "items": strict({"name": NAME})},
    "user_data": {"type": "string", "maxLength": 65535},
    "description": {"type": ["string", "null"], "maxLength": 255},
    "tags": {"type": "array", "maxItems": 50, "items": {"type": "string", "minLength": 1,
                                                        "maxLength": 60}},
    "trusted_image_certificates": {"type": ["array", "null"]},
    "host": FQDN, "hypervisor_hostname": FQDN,
    "hostname": HOSTNAME,  # FQDN from 2.94 on: hostname_schema()
}
SINCE = {"description": "2.19", "tags": "2.52", "trusted_image_certificates": "2.63",
         "host": "2.74", "hypervisor_hostname": "2.74", "hostname": "2.90"}
UNTIL = {"personality": "2.56"}
HINTS = {"type": "object", "additionalProperties": True}


def create_schema() -> dict:
    properties = {k: v for k, v in SERVER_CREATE.items()
                  if at_least(SINCE.get(k, "2.1")) and not at_least_after(UNTIL.get(k))}
    if "hostname" in properties:
        properties["hostname"] = hostname_schema()
    required = ("name", "flavorRef", "networks") if at_least("2.37") else ("name", "flavorRef")
    return strict({"server": strict(properties, required), "os:scheduler_hints": HINTS,
                   "OS-SCH-HNT:scheduler_hints": HINTS}, ("server",))


def at_least_after(version: str | None) -> bool:
    if version is None:
        return False
    major, minor = version.split(".")
    return at_least(f"{major}.{int(minor) + 1}")



def make_app(cloud) -> bottle.Bottle:
    """Nova's API on a Bottle app, to be mounted at /compute: the routes below, each given
    the `cloud` when it asks for it (`Inject`); `op` names what faults can target."""
    app = bottle.Bottle()
    app.install(Inject(cloud=cloud))
    app.get("/", auth=False, callback=versions)
    app.get("/v2.1", auth=False, callback=version)
    app.get("/v2.1/", auth=False, callback=version)
    app.get("/v2.1/flavors", callback=list_flavors)
    app.get("/v2.1/flavors/detail", callback=list_flavors_detail)
    app.get("/v2.1/flavors/<flavor_id>", callback=show_flavor)
    app.get("/v2.1/flavors/<flavor_id>/os-extra_specs", callback=flavor_extra_specs)
    app.get("/v2.1/os-keypairs", callback=list_keypairs)
    app.get("/v2.1/os-keypairs/<name>", callback=show_keypair)
    app.post("/v2.1/os-keypairs", op="keypair.create", callback=create_keypair)
    app.delete("/v2.1/os-keypairs/<name>", op="keypair.delete", callback=delete_keypair)
    app.get("/v2.1/servers", callback=list_servers)
    app.get("/v2.1/servers/detail", callback=list_servers_detail)
    app.get("/v2.1/servers/<server_id>", callback=show_server)
    app.post("/v2.1/servers", op="server.create", callback=create_server)
    app.put("/v2.1/servers/<server_id>", op="server.update", callback=update_server)
    app.delete("/v2.1/servers/<server_id>", op="server.delete", callback=delete_server)
    app.post("/v2.1/servers/<server_id>/action", op="server.action", callback=server_action)
    metadata = "/v2.1/servers/<server_id>/metadata"
    app.get(metadata, callback=list_metadata)
    app.put(metadata, op="server.metadata", callback=replace_metadata)
    app.post(metadata, op="server.metadata", callback=update_metadata)
    app.get(metadata + "/<key>", callback=show_metadata_item)
    app.put(metadata + "/<key>", op="server.metadata", callback=set_metadata_item)
    app.delete(metadata + "/<key>", op="server.metadata", callback=delete_metadata_item)
    app.get("/v2.1/servers/<server_id>/ips", callback=server_ips)
    app.get("/v2.1/servers/<server_id>/os-security-groups", callback=server_security_groups)
    app.get("/v2.1/servers/<server_id>/os-volume_attachments",
            callback=server_volume_attachments)
    app.get("/v2.1/servers/<server_id>/os-interface", callback=server_interfaces)
    app.get("/v2.1/os-availability-zone", callback=availability_zones)
    app.get("/v2.1/os-availability-zone/detail", callback=availability_zones_detail)
    app.get("/v2.1/limits", callback=limits)
    app.get("/v2.1/os-quota-sets/<project_id>", callback=show_quota)
    app.get("/v2.1/os-quota-sets/<project_id>/detail", callback=show_quota_detail)
    return app


# --- helpers -------------------------------------------------------------------------------


def url(*parts: str) -> str:
    return "/".join([base_url() + "/v2.1", *parts])


def bookmark(*parts: str) -> str:
    return "/".join([base_url(), *parts])


def links(kind: str, item_id: str) -> list[dict]:
    return [link(url(kind, item_id)), link(bookmark(kind, item_id), "bookmark")]


def find_server(cloud, server_id: str) -> dict:
    server = cloud.store.get("servers", server_id)
    if server is None:
        raise not_found(f"Instance {server_id} could not be found.")
    return server


def find_flavor(cloud, flavor_id: str) -> dict:
    for flavor in cloud.store.all("flavors"):
        if str(flavor_id) in (flavor["id"], flavor["name"]):
            return flavor
    raise not_found(f"Flavor {flavor_id} could not be found.")


def find_image(cloud, image_id: str) -> dict:
    image = cloud.store.get("images", image_id)
    if image is None:
        raise bad_request("Can not find requested image")
    if image["status"] != "active":
        raise bad_request(f"Image {image_id} is not active.")
    if "block_device_mapping" in image["properties"]:
        # real Nova boots such an image from volumes made from its snapshots; this cloud
        # does not: make the volume from the snapshot and boot from it
        raise bad_request(f"Image {image_id} is an image of a volume-backed server; this "
                          "cloud boots it only from a volume made from its snapshot.")
    return image


def created(body: dict, status: int = 202) -> dict:
    bottle.response.status = status
    return body


def accepted() -> str:
    bottle.response.status = 202
    return ""


# --- versions ------------------------------------------------------------------------------


def version_document(version_id: str) -> dict:
    current = version_id == "v2.1"
    return {"id": version_id, "status": "CURRENT" if current else "SUPPORTED",
            "version": MICROVERSIONS.maximum if current else "",
            "min_version": MICROVERSIONS.minimum if current else "",
            "updated": "2013-07-23T11:33:21Z",
            "links": [link(f"{base_url()}/{version_id}/")],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}]}


def versions():
    return {"versions": [version_document("v2.0"), version_document("v2.1")]}


def version():
    return {"version": version_document("v2.1")}


# --- flavors -------------------------------------------------------------------------------


def flavor_view(flavor: dict, detail: bool) -> dict:
    view = {"id": flavor["id"], "name": flavor["name"], "links": links("flavors",
                                                                       flavor["id"])}
    if at_least("2.55"):
        view["description"] = flavor["description"]
    if not detail:
        return view
    view.update({"ram": flavor["ram"], "disk": flavor["disk"], "vcpus": flavor["vcpus"],
                 "swap": flavor["swap"] if at_least("2.75") else (flavor["swap"] or ""),
                 "OS-FLV-EXT-DATA:ephemeral": flavor["ephemeral"],
                 "os-flavor-access:is_public": flavor["is_public"]})
    if not at_least("2.102"):
        view["rxtx_factor"] = flavor["rxtx_factor"]
        view["OS-FLV-DISABLED:disabled"] = False
    if at_least("2.61"):
        view["extra_specs"] = flavor["extra_specs"]
    return view


def flavors(cloud, detail: bool) -> dict:
    query = bottle.request.query
    found = sorted(cloud.store.all("flavors"), key=lambda f: int(f["id"]))
    if query.get("minRam"):
        found = [f for f in found if f["ram"] >= int(query.minRam)]
    if query.get("minDisk"):
        found = [f for f in found if f["disk"] >= int(query.minDisk)]
    if query.get("name") and at_least("2.102"):
        found = [f for f in found if f["name"] == query.name]
    return {"flavors": [flavor_view(f, detail) for f in found]}


def list_flavors(cloud):
    return flavors(cloud, detail=False)


def list_flavors_detail(cloud):
    return flavors(cloud, detail=True)


def show_flavor(cloud, flavor_id):
    return {"flavor": flavor_view(find_flavor(cloud, flavor_id), detail=True)}


def flavor_extra_specs(cloud, flavor_id):
    return {"extra_specs": find_flavor(cloud, flavor_id)["extra_specs"]}


# --- keypairs ------------------------------------------------------------------------------


def keypair_view(cloud, keypair: dict, full: bool) -> dict:
    view = {"name": keypair["name"], "public_key": keypair["public_key"],
            "fingerprint": keypair["fingerprint"]}
    if at_least("2.2"):
        view["type"] = keypair["type"]
    if full:
        view.update({"user_id": cloud.identity["user_id"], "id": keypair["numeric_id"],
                     "created_at": keypair["created_at"].replace("Z", ".000000"),
                     "deleted": False, "deleted_at": None, "updated_at": None})
    return view


def list_keypairs(cloud):
    return {"keypairs": [{"keypair": keypair_view(cloud, k, False)}
                         for k in sorted(cloud.store.all("keypairs"), key=lambda k: k["name"])]}


def show_keypair(cloud, name):
    keypair = cloud.store.get("keypairs", name)
    if keypair is None:
        raise not_found(f"Keypair {name} not found for user {cloud.identity['user_id']}")
    return {"keypair": keypair_view(cloud, keypair, True)}


def create_keypair(cloud):
    key_properties = {"name": {"type": "string", "minLength": 1, "maxLength": 255,
                               "pattern": r"^[a-zA-Z0-9 @._-]+$" if at_least("2.92")
                               else r"^[\x20-\x7E]+$"},
                      "public_key": {"type": "string"}}
    if at_least("2.2"):
        key_properties["type"] = {"type": "string", "enum": ["ssh", "x509"]}
    if at_least("2.10"):
        key_properties["user_id"] = {"type": "string"}
    required = ("name", "public_key") if at_least("2.92") else ("name",)
    body = json_body(strict({"keypair": strict(key_properties, required)}, ("keypair",)))
    request = body["keypair"]
    if cloud.store.get("keypairs", request["name"]):
        raise conflict(f"Key pair '{request['name']}' already exists.")
    cloud.check_quota(key_pairs=1)
    private_key = None
    public_key = request.get("public_key")
    if public_key is None:
        private_key, public_key = generate_keypair()
    fingerprint = ssh_fingerprint(public_key)
    keypair = {"id": request["name"], "name": request["name"], "public_key": public_key,
               "fingerprint": fingerprint, "type": request.get("type", "ssh"),
               "created_at": now(), "numeric_id": len(cloud.store.all("keypairs")) + 1}
    cloud.store.put("keypairs", keypair)
    view = keypair_view(cloud, keypair, False)
    view["user_id"] = cloud.identity["user_id"]
    if private_key:
        view["private_key"] = private_key
    return created({"keypair": view}, 201 if at_least("2.2") else 200)


def delete_keypair(cloud, name):
    if cloud.store.delete("keypairs", name) is None:
        raise not_found(f"Keypair {name} not found for user {cloud.identity['user_id']}")
    bottle.response.status = 204 if at_least("2.2") else 202
    return ""


# --- servers: views ------------------------------------------------------------------------


def status(server: dict) -> str:
    return TASK_STATUS.get(server["task_state"], ACTIVE_STATUS[server["vm_state"]])


def addresses(cloud, server: dict) -> dict:
    if server["vm_state"] == "building":
        return {}
    port = cloud.store.get("ports", server["port_id"])
    if port is None:
        return {}
    network = cloud.store.get("networks", port["network_id"])
    entries = [{"version": 4, "addr": ip["ip_address"], "OS-EXT-IPS:type": "fixed",
                "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]} for ip in port["fixed_ips"]]
    entries += [{"version": 4, "addr": f["floating_ip_address"],
                 "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]}
                for f in cloud.store.find("floatingips", port_id=port["id"])
                # Nova's network info cache has it once Neutron has notified Nova
                if f.get("in_nova_at", 0) <= time.time()]
    return {network["name"]: entries}


def flavor_of(cloud, server: dict) -> dict:
    flavor = cloud.store.get("flavors", server["flavor_id"])
    if at_least("2.47"):
        return {"vcpus": flavor["vcpus"], "ram": flavor["ram"], "disk": flavor["disk"],
                "ephemeral": flavor["ephemeral"], "swap": flavor["swap"],
                "original_name": flavor["name"], "extra_specs": flavor["extra_specs"]}
    return {"id": flavor["id"], "links": [link(bookmark("flavors", flavor["id"]),
                                               "bookmark")]}


def image_of(cloud, server: dict):
    if not server["image_id"]:
        return ""
    image = {"id": server["image_id"],
             "links": [link(bookmark("images", server["image_id"]), "bookmark")]}
    if at_least("2.98"):
        image["properties"] = {k: v for k, v in (cloud.store.get("images", server["image_id"])
                                                 or {}).get("properties", {}).items()
                               if k in IMAGE_META_PROPS}
    return image


def server_view(cloud, server: dict, *, full: bool = True, server_groups: bool = False) -> dict:
    """A server as Nova's view builder shows it (nova/api/openstack/compute/views/servers.py,
    ViewBuilder.show). `full=False` is PUT /servers/{id}'s answer below 2.75: no AZ, config
    drive, key, usage dates, security groups, extended status or volumes, and addresses without
    their type and MAC; `server_groups` adds the server's groups (GET from 2.71, PUT too)."""
    view = {
        "id": server["id"], "name": server["name"], "status": status(server),
        "tenant_id": cloud.identity["project_id"], "user_id": cloud.identity["user_id"],
        "metadata": server["metadata"], "hostId": host_id(server),
        "image": image_of(cloud, server), "flavor": flavor_of(cloud, server),
        "created": server["created"], "updated": server["updated"],
        "addresses": addresses(cloud, server) if full else basic_addresses(cloud, server),
        "accessIPv4": server["access_ipv4"], "accessIPv6": server["access_ipv6"],
        "links": links("servers", server["id"]), "OS-DCF:diskConfig": "MANUAL",
    }
    if full:
        view.update(extended_attributes(server))
    if status(server) in ("ERROR", "DELETED") and server["fault"]:
        view["fault"] = server["fault"]
    if status(server) in ("BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"):
        view["progress"] = 0
    if at_least("2.9"):
        view["locked"] = server["locked"]
    if at_least("2.19"):
        view["description"] = server["description"]
    if at_least("2.26"):
        view["tags"] = server["tags"]
    if at_least("2.63"):
        view["trusted_image_certificates"] = None
    if server_groups:
        view["server_groups"] = []  # no server groups here
    if at_least("2.73"):
        view["locked_reason"] = None
    if at_least("2.90"):
        view["OS-EXT-SRV-ATTR:hostname"] = server["hostname"]
    if full and at_least("2.96"):
        view["pinned_availability_zone"] = server["availability_zone"]
    if at_least("2.100"):
        view["scheduler_hints"] = server["scheduler_hints"]
    return view


def extended_attributes(server: dict) -> dict:
    """What Nova's full view adds (AZ, config drive, key, usage, security groups, status,
    volumes): in GET and, from 2.75 on, in PUT /servers/{id}."""
    return {
        "OS-EXT-AZ:availability_zone": ZONE if server["vm_state"] != "building" else "",
        "config_drive": server["config_drive"], "key_name": server["key_name"],
        "OS-SRV-USG:launched_at": launched_at(server),
        "OS-SRV-USG:terminated_at": None,
        "security_groups": [{"name": g["name"]} for g in server["security_groups"]],
        "OS-EXT-STS:task_state": server["task_state"],
        "OS-EXT-STS:vm_state": server["vm_state"],
        "OS-EXT-STS:power_state": server["power_state"],
        "os-extended-volumes:volumes_attached": [
            {"id": v["id"], **({"delete_on_termination": v["delete_on_termination"]}
                               if at_least("2.3") else {})} for v in server["volumes"]],
    }


def basic_addresses(cloud, server: dict) -> dict:
    """Addresses without Nova's extensions (OS-EXT-IPS:type, OS-EXT-IPS-MAC:mac_addr)."""
    return {name: [{"version": a["version"], "addr": a["addr"]} for a in entries]
            for name, entries in addresses(cloud, server).items()}


def summary_view(server: dict) -> dict:
    return {"id": server["id"], "name": server["name"],
            "links": links("servers", server["id"])}


# --- servers: list, show, create, update, delete -------------------------------------------


def matching_servers(cloud) -> list[dict]:
    query = bottle.request.query
    found = sorted(cloud.store.all("servers"), key=lambda s: s["created"], reverse=True)
    if query.get("name"):
        try:
            pattern = re.compile(query.name)
        except re.error:
            raise bad_request(f"Invalid regex pattern: {query.name}") from None
        found = [s for s in found if pattern.search(s["name"])]
    if query.get("status"):
        found = [s for s in found if status(s) == query.status.upper()]
    if query.get("image"):
        found = [s for s in found if s["image_id"] == query.image]
    if query.get("flavor"):
        found = [s for s in found if s["flavor_id"] == query.flavor]
    if query.get("ip"):
        found = [s for s in found if any(
            re.search(query.ip, a["addr"]) for entries in addresses(cloud, s).values()
            for a in entries)]
    if query.get("marker"):
        ids = [s["id"] for s in found]
        if query.marker not in ids:
            raise bad_request(f"marker [{query.marker}] not found")
        found = found[ids.index(query.marker) + 1:]
    if query.get("limit"):
        found = found[:int(query.limit)]
    return found


def list_servers(cloud):
    return {"servers": [summary_view(s) for s in matching_servers(cloud)]}


def list_servers_detail(cloud):
    return {"servers": [server_view(cloud, s) for s in matching_servers(cloud)]}


def show_server(cloud, server_id):
    return {"server": server_view(cloud, find_server(cloud, server_id),
                                  server_groups=at_least("2.71"))}


def create_server(cloud):
    body = json_body(create_schema())
    request = body["server"]
    spec = server_spec(cloud, request)
    spec["scheduler_hints"] = body.get("os:scheduler_hints") or body.get(
        "OS-SCH-HNT:scheduler_hints") or {}
    server = cloud.create_server(spec)
    bottle.response.set_header("Location", url("servers", server["id"]))
    result = {"id": server["id"], "links": links("servers", server["id"]),
              "OS-DCF:diskConfig": "MANUAL",
              "security_groups": [{"name": g["name"]} for g in spec["security_groups"]]}
    if not at_least("2.91") or request.get("adminPass"):
        result["adminPass"] = request.get("adminPass") or "localcloud-not-a-password"
    return created({"server": result})


def server_spec(cloud, request: dict) -> dict:
    """Check the parts of a create request that need the cloud's records."""
    flavor = find_flavor(cloud, str(request["flavorRef"]).rsplit("/", 1)[-1])
    spec = {"name": request["name"], "flavor": flavor,
            "metadata": request.get("metadata", {}), "description":
            request.get("description"), "tags": request.get("tags", []),
            "availability_zone": request.get("availability_zone"),
            "access_ipv4": request.get("accessIPv4", ""),
            "access_ipv6": request.get("accessIPv6", ""),
            "hostname": request.get("hostname") or hostname_from(request["name"])}
    if spec["availability_zone"] not in (None, ZONE):
        raise bad_request("The requested availability zone is not available")
    if int(request.get("min_count", 1)) > 1 or int(request.get("max_count", 1)) > 1:
        raise bad_request("This cloud boots one server per request.")
    if request.get("user_data") is not None:
        spec["user_data"] = decode_user_data(request["user_data"])
    if request.get("key_name"):
        if cloud.store.get("keypairs", request["key_name"]) is None:
            raise bad_request("Invalid key_name provided.")
        spec["key_name"] = request["key_name"]
    spec["security_groups"] = security_groups(cloud, request.get("security_groups",
                                                                 [{"name": "default"}]))
    spec.update(boot_source(cloud, request))
    spec.update(network_choice(cloud, request.get("networks")))
    return spec


def decode_user_data(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        raise bad_request("User data needs to be valid base 64.") from None


def security_groups(cloud, requested: list[dict]) -> list[dict]:
    groups = []
    for wanted in requested:
        match = [g for g in cloud.store.all("security_groups")
                 if wanted["name"] in (g["name"], g["id"])]
        if not match:
            raise bad_request(f"Security group {wanted['name']} not found for project "
                              f"{cloud.identity['project_id']}.")
        groups.append({"id": match[0]["id"], "name": match[0]["name"]})
    return groups


def boot_source(cloud, request: dict) -> dict:
    if request.get("block_device_mapping"):
        raise bad_request("The legacy block_device_mapping is not supported here; use "
                          "block_device_mapping_v2.")
    boot = [b for b in request.get("block_device_mapping_v2", [])
            if str(b.get("boot_index", "0")) == "0"]
    if not boot:
        image_ref = request.get("imageRef", "")
        if not image_ref:
            raise bad_request("Missing imageRef attribute")
        return {"image_id": find_image(cloud, image_ref.rsplit("/", 1)[-1])["id"]}
    mapping = boot[0]
    source = mapping.get("source_type")
    destination = mapping.get("destination_type", "volume" if source == "volume"
                              else "local")
    delete = str(mapping.get("delete_on_termination", False)).lower() in (
        "true", "1", "on", "yes")
    if source == "image" and destination == "volume":
        image = find_image(cloud, mapping.get("uuid") or mapping.get("image_id", ""))
        if not mapping.get("volume_size"):
            raise bad_request("Images with destination_type 'volume' need to have a "
                              "non-zero size specified")
        return {"image_id": "", "boot_volume": {
            "image_id": image["id"], "new_size": int(mapping["volume_size"]),
            "delete_on_termination": delete}}
    if source == "image" and destination == "local":
        return {"image_id": find_image(cloud, mapping.get("uuid", ""))["id"]}
    if source == "volume":
        volume = cloud.store.get("volumes", mapping.get("uuid") or mapping.get("volume_id", ""))
        if volume is None:
            raise bad_request(f"Block Device Mapping is Invalid: failed to get volume "
                              f"{mapping.get('uuid')}.")
        if volume["status"] != "available" or not volume["image_id"]:
            raise bad_request(f"Block Device Mapping is Invalid: volume {volume['id']} "
                              f"is not available or not bootable.")
        return {"image_id": "", "boot_volume": {
            "volume_id": volume["id"], "delete_on_termination": delete}}
    raise bad_request(f"Block Device Mapping is Invalid: source_type {source} with "
                      f"destination_type {destination} is not supported here.")


def network_choice(cloud, networks) -> dict:
    private = cloud.network(external=False)
    if networks in (None, "auto") or networks == []:
        return {}
    if networks == "none":
        raise bad_request("Servers without a network are not supported by this cloud.")
    if len(networks) > 1:
        raise bad_request("This cloud gives each server one network interface.")
    wanted = networks[0]
    if wanted.get("port"):
        port = cloud.store.get("ports", wanted["port"])
        if port is None:
            raise bad_request(f"Port {wanted['port']} could not be found.")
        return {"port_id": port["id"]}
    if wanted.get("uuid") and wanted["uuid"] != private["id"]:
        if cloud.store.get("networks", wanted["uuid"]) is None:
            raise bad_request(f"Network {wanted['uuid']} could not be found.")
        raise bad_request(f"Network {wanted['uuid']} is external; servers attach to the "
                          f"network {private['id']} ({private['name']}).")
    return {"fixed_ip": wanted.get("fixed_ip")}


def update_server(cloud, server_id):
    find_server(cloud, server_id)
    properties = {"name": NAME, "accessIPv4": SERVER_CREATE["accessIPv4"],
                  "accessIPv6": SERVER_CREATE["accessIPv6"],
                  "OS-DCF:diskConfig": SERVER_CREATE["OS-DCF:diskConfig"]}
    if at_least("2.19"):
        properties["description"] = SERVER_CREATE["description"]
    if at_least("2.90"):
        properties["hostname"] = hostname_schema()
    request = json_body(strict({"server": strict(properties)}, ("server",)))["server"]
    changes = {"updated": now()}
    for key, field in (("name", "name"), ("description", "description"),
                       ("hostname", "hostname"), ("accessIPv4", "access_ipv4"),
                       ("accessIPv6", "access_ipv6")):
        if key in request:
            changes[field] = request[key]
    # PUT answers Nova's basic view below 2.75 and the full one from 2.75 on; the server's
    # groups from 2.71 on (nova/api/openstack/compute/servers.py, ServersController.update)
    return {"server": server_view(cloud, cloud.store.update("servers", server_id, **changes),
                                  full=at_least("2.75"), server_groups=at_least("2.71"))}


def delete_server(cloud, server_id):
    server = find_server(cloud, server_id)
    if server["locked"]:
        raise conflict(f"Instance {server_id} is locked")
    if server["task_state"] != "deleting":
        cloud.delete_server(server_id)
    bottle.response.status = 204
    return ""


# --- server actions ------------------------------------------------------------------------


def server_action(cloud, server_id):
    server = find_server(cloud, server_id)
    body = json_body()
    if not isinstance(body, dict) or len(body) != 1:
        raise bad_request("There is either no action or more than one action in the "
                          "request body.")
    (action, argument), = body.items()
    handler = ACTIONS.get(action)
    if handler is None:
        raise bad_request(f"There is no such action: {action}")
    cloud.faults.delay(f"server.{action}")
    rule = cloud.faults.take(f"server.{action}", ("http",))
    if rule:
        raise ApiError(int(rule.get("status", 500)), rule.get("message", "Injected fault"))
    return handler(cloud, server, argument)


def require_state(server: dict, action: str, *states: str) -> None:
    if server["vm_state"] not in states or server["task_state"] is not None:
        raise conflict(f"Cannot '{action}' instance {server['id']} while it is in "
                       f"vm_state {server['vm_state']}" +
                       (f", task_state {server['task_state']}"
                        if server["task_state"] else ""))


def no_argument(argument, action: str) -> None:
    if argument is not None and argument != {}:
        raise bad_request(f"Invalid input for field/attribute {action}. "
                          f"Value: {argument}. None is not of type 'null'")


def stop(cloud, server, argument):
    no_argument(argument, "os-stop")
    require_state(server, "stop", "active", "error")
    cloud.power(server["id"], "stop")
    return accepted()


def start(cloud, server, argument):
    no_argument(argument, "os-start")
    require_state(server, "start", "stopped")
    cloud.power(server["id"], "start")
    return accepted()


def reboot(cloud, server, argument):
    if not isinstance(argument, dict) or set(argument) != {"type"} or \
            str(argument["type"]).upper() not in ("HARD", "SOFT"):
        raise bad_request("Invalid input for field/attribute reboot. Value: "
                          f"{argument}. 'type' is a required property")
    require_state(server, "reboot", "active", "stopped", "error")
    cloud.power(server["id"], "reboot")
    return accepted()


def create_image(cloud, server, argument):
    if not isinstance(argument, dict) or set(argument) - {"name", "metadata"} or \
            not isinstance(argument.get("name"), str) or not argument["name"].strip():
        raise bad_request("Invalid input for field/attribute createImage. 'name' is a "
                          "required property and only 'name' and 'metadata' are allowed")
    metadata = argument.get("metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str)
                                                 for v in metadata.values()):
        raise bad_request("Invalid input for field/attribute metadata.")
    require_state(server, "createImage", "active", "stopped")
    image = cloud.snapshot_server(server["id"], argument["name"], metadata)
    bottle.response.set_header("Location", bookmark("images", image["id"]))
    if at_least("2.45"):
        return created({"image_id": image["id"]})
    return accepted()


# os-getConsoleOutput as Nova (Zed) answers it, checked against realcloud
# (tests/realcloud/test_console_output.py): nova/api/openstack/compute/console_output.py and
# its schema, checked as nova/api/validation/validators.py checks it (JSON Schema draft 4, so
# 2.0 and true are no integers; the minimum applies to a string that is a number too, the
# pattern to strings only); the compute manager's get_console_output and _tail_log
# (lines[-int(length):] after splitting on newlines: 0 gives nothing, -1 every line but the
# first; null or absent: all; bytes decoded as ASCII, each other byte a U+FFFD); the libvirt
# driver's MAX_CONSOLE_BYTES (the last 100 KiB). Control characters other than tab and
# newline are removed. 409 "is not ready" while no host has the instance (Nova's
# check_instance_host); while it is deleted Nova still asks its host, which answers until the
# machine is gone, then 404.
CONSOLE_OUTPUT = strict({"length": {"type": ["integer", "string", "null"],
                                    "pattern": "^-?[0-9]+$", "minimum": -1}})
MAX_CONSOLE_BYTES = 100 * 1024
CONSOLE_CONTROL = re.compile("[\x00-\x08\x0B-\x1F]")


def minimum_of_number_or_string(validator, minimum, instance, schema):
    """Nova's _SchemaValidator._validate_minimum: a string that reads as a number is
    compared as that number; anything else that is no number passes."""
    for convert in (int, float):
        try:
            number = convert(instance)
        except (ValueError, TypeError):
            continue
        yield from jsonschema.Draft4Validator.VALIDATORS["minimum"](
            validator, minimum, number, schema)
        return


NovaValidator = jsonschema.validators.extend(
    jsonschema.Draft4Validator, {"minimum": minimum_of_number_or_string})
CONSOLE_VALIDATOR = NovaValidator(CONSOLE_OUTPUT)


def console_output(cloud, server, argument):
    check_console_request(argument)
    try:
        log = cloud.machines.console(server["id"])
    except MachineError as error:
        if server["task_state"] == "deleting":
            raise not_found(f"Instance {server['id']} could not be found.") from error
        raise conflict(f"Instance {server['id']} is not ready") from error
    output = tail_lines(log[-MAX_CONSOLE_BYTES:], argument.get("length"))
    return {"output": CONSOLE_CONTROL.sub("", output)}


def check_console_request(argument) -> None:
    """400 with Nova's message (nova/api/validation/validators.py) unless the action's
    argument passes Nova's schema."""
    error = next(CONSOLE_VALIDATOR.iter_errors(argument), None)
    if error is None:
        return
    # the last key of the path in the request body
    field = error.path[-1] if error.path else "os-getConsoleOutput"
    raise bad_request(f"Invalid input for field/attribute {field}. Value: {error.instance}. "
                      f"{error.message}")


def tail_lines(log: bytes, length) -> str:
    """The console as Nova's compute manager returns it for `length` (see above)."""
    if length is not None:
        lines = int(length)
        log = b"\n".join(log.split(b"\n")[-lines:]) if lines != 0 else b""
    return log.decode("ascii", errors="replace")


ACTIONS = {"os-stop": stop, "os-start": start, "reboot": reboot, "createImage": create_image,
           "os-getConsoleOutput": console_output}


# --- server metadata, addresses, security groups -------------------------------------------


def list_metadata(cloud, server_id):
    return {"metadata": find_server(cloud, server_id)["metadata"]}


def write_metadata(cloud, server_id: str, replace: bool) -> dict:
    server = find_server(cloud, server_id)
    metadata = json_body(strict({"metadata": METADATA}, ("metadata",)))["metadata"]
    merged = metadata if replace else {**server["metadata"], **metadata}
    if len(merged) > cloud.quota("metadata_items"):
        raise ApiError(403, "Quota exceeded for metadata_items: the maximum is "
                       f"{cloud.quota('metadata_items')}")
    cloud.store.update("servers", server_id, metadata=merged, updated=now())
    return {"metadata": merged}


def replace_metadata(cloud, server_id):
    return write_metadata(cloud, server_id, replace=True)


def update_metadata(cloud, server_id):
    return write_metadata(cloud, server_id, replace=False)


def show_metadata_item(cloud, server_id, key):
    metadata = find_server(cloud, server_id)["metadata"]
    if key not in metadata:
        raise not_found("Metadata item was not found")
    return {"meta": {key: metadata[key]}}


def set_metadata_item(cloud, server_id, key):
    server = find_server(cloud, server_id)
    meta = json_body(strict({"meta": {**METADATA, "minProperties": 1,
                                      "maxProperties": 1}}, ("meta",)))["meta"]
    if key not in meta:
        raise bad_request("Request body and URI mismatch")
    cloud.store.update("servers", server_id, metadata={**server["metadata"], **meta},
                       updated=now())
    return {"meta": meta}


def delete_metadata_item(cloud, server_id, key):
    server = find_server(cloud, server_id)
    if key not in server["metadata"]:
        raise not_found("Metadata item was not found")
    del server["metadata"][key]
    cloud.store.update("servers", server_id, metadata=server["metadata"], updated=now())
    bottle.response.status = 204
    return ""


def server_ips(cloud, server_id):
    return {"addresses": basic_addresses(cloud, find_server(cloud, server_id))}


def server_security_groups(cloud, server_id):
    server = find_server(cloud, server_id)
    return {"security_groups": [{
        "id": g["id"], "name": g["name"], "description": "",
        "tenant_id": cloud.identity["project_id"], "rules": []}
        for g in server["security_groups"]]}


def server_volume_attachments(cloud, server_id):
    server = find_server(cloud, server_id)
    return {"volumeAttachments": [{
        "id": v["id"], "volumeId": v["id"], "serverId": server_id, "device": "/dev/vda",
        **({"tag": None} if at_least("2.70") else {}),
        **({"delete_on_termination": v["delete_on_termination"]}
           if at_least("2.79") else {}),
        **({"attachment_id": v["id"], "bdm_uuid": v["id"]} if at_least("2.89") else {}),
    } for v in server["volumes"]]}


def server_interfaces(cloud, server_id):
    server = find_server(cloud, server_id)
    port = cloud.store.get("ports", server["port_id"])
    return {"interfaceAttachments": [] if port is None else [{
        "port_id": port["id"], "net_id": port["network_id"], "mac_addr":
        port["mac_address"], "port_state": port["status"], "fixed_ips": port["fixed_ips"],
        **({"tag": None} if at_least("2.70") else {})}]}


# --- zones, limits, quotas -----------------------------------------------------------------


def availability_zones():
    return {"availabilityZoneInfo": [{"zoneName": ZONE, "zoneState": {"available": True},
                                      "hosts": None}]}


def availability_zones_detail():
    return {"availabilityZoneInfo": [{"zoneName": ZONE, "zoneState": {"available": True},
                                      "hosts": {"localcloud": {"nova-compute": {
                                          "available": True, "active": True,
                                          "updated_at": now()}}}}]}


# Nova's quotas for the nova-network resources it no longer manages ("Deprecated nova-network
# quotas, retained to avoid changing API responses" in nova/quota.py): AbsoluteResources with
# no limit of their own, so Nova reports -1 (unlimited) and 0 in use. Neutron's own quotas
# are what limit floating IPs and security groups.
NOVA_NETWORK_QUOTAS = ("fixed_ips", "floating_ips", "security_groups", "security_group_rules")
# Nova's limits below 2.36 (nova/api/openstack/compute/views/limits.py): these three of the
# quotas above, with their usage.
NOVA_NETWORK_LIMITS = {"maxTotalFloatingIps": -1, "maxSecurityGroups": -1,
                       "maxSecurityGroupRules": -1, "totalFloatingIpsUsed": 0,
                       "totalSecurityGroupsUsed": 0}


def limits(cloud):
    """GET /limits as nova/api/openstack/compute/limits.py answers it: the network limits
    only below 2.36, maxImageMeta only below 2.39, the personality limits only below 2.57."""
    used = cloud.usage()
    absolute = {
        "maxTotalInstances": cloud.quota("instances"),
        "maxTotalCores": cloud.quota("cores"), "maxTotalRAMSize": cloud.quota("ram"),
        "maxServerMeta": cloud.quota("metadata_items"),
        "maxTotalKeypairs": cloud.quota("key_pairs"),
        "maxServerGroups": cloud.quota("server_groups"),
        "maxServerGroupMembers": cloud.quota("server_group_members"),
        "totalInstancesUsed": used["instances"], "totalCoresUsed": used["cores"],
        "totalRAMUsed": used["ram"], "totalServerGroupsUsed": 0,
    }
    if not at_least("2.39"):  # 2.39 dropped the image metadata limit (Glance's to enforce)
        absolute["maxImageMeta"] = cloud.quota("metadata_items")
    if not at_least("2.57"):  # 2.57 dropped personality files
        absolute.update({"maxPersonality": 5, "maxPersonalitySize": 10240})
    if not at_least("2.36"):  # 2.36 dropped the network proxy APIs and their limits
        absolute.update(NOVA_NETWORK_LIMITS)
    return {"limits": {"rate": [], "absolute": absolute}}


NOVA_QUOTAS = ("instances", "cores", "ram", "key_pairs", "metadata_items",
               "server_groups", "server_group_members")


def quota_view(cloud, detail: bool) -> dict:
    """A quota set as nova/api/openstack/compute/quota_sets.py shows it: the nova-network
    quotas only below 2.36 (FILTERED_QUOTAS_v236), the injected-file ones only below 2.57."""
    used = cloud.usage()
    view = {"id": cloud.identity["project_id"]}
    for name in NOVA_QUOTAS:
        view[name] = ({"limit": cloud.quota(name), "in_use": used[name], "reserved": 0}
                      if detail else cloud.quota(name))
    fixed = []
    if not at_least("2.57"):
        fixed += [("injected_files", 5), ("injected_file_content_bytes", 10240),
                  ("injected_file_path_bytes", 255)]
    if not at_least("2.36"):
        fixed += [(name, -1) for name in NOVA_NETWORK_QUOTAS]
    view.update({k: ({"limit": v, "in_use": 0, "reserved": 0} if detail else v)
                 for k, v in fixed})
    return {"quota_set": view}


def show_quota(cloud, project_id):
    return quota_view(cloud, detail=False)


def show_quota_detail(cloud, project_id):
    return quota_view(cloud, detail=True)


# Standard image properties Nova embeds in a server's image from 2.98 on (a subset of
# nova.objects.ImageMetaProps that images here carry).
IMAGE_META_PROPS = {"os_distro", "os_version", "os_admin_user", "hw_disk_bus",
                    "hw_machine_type", "hw_vif_model", "os_type", "architecture"}


def host_id(server: dict) -> str:
    if server["vm_state"] == "building":
        return ""
    return hashlib.sha224(b"localcloud" + server["id"][:8].encode()).hexdigest()


def launched_at(server: dict):
    stamp = server["launched_at"]
    return stamp.replace("Z", ".000000") if stamp else None


def hostname_from(name: str) -> str:
    """Nova's sanitisation of a display name into a hostname."""
    hostname = re.sub(r"[^\w.-]+", "-", name.lower(), flags=re.ASCII).strip(".-")
    hostname = re.sub(r"[_.]", "-", hostname)[:63].strip("-")
    return hostname or "server"


def generate_keypair() -> tuple[str, str]:
    """A new RSA key pair as Nova made them before 2.92: (private PEM, public OpenSSH)."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "key"
        subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "",
                        "-C", "Generated-by-Nova", "-f", str(path)], check=True)
        return path.read_text(), path.with_suffix(".pub").read_text().strip()


def ssh_fingerprint(public_key: str) -> str:
    """The MD5 fingerprint Nova prints, colon-separated; 400 for a key it cannot read."""
    parts = public_key.strip().split()
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (IndexError, binascii.Error, ValueError):
        raise bad_request("Keypair data is invalid: failed to generate fingerprint") from None
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
