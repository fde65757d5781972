"""Nova's metadata service at 169.254.169.254, as a server sees it.

A real cloud answers every server at ``http://169.254.169.254/`` with that server's own
metadata and user-data, found by the address the request comes from (Neutron's metadata
proxy adds the port; Nova's metadata API looks the instance up). User-data there is
readable by any process on the server, and by the server's containers unless they are
blocked: this is why the image's launcher blocks containers from the address (issue 14),
and why localcloud serves it, so that tests can show the block works.

Served paths, as Nova's metadata API serves them (nova/api/metadata/base.py, handler.py;
"Metadata service" in the Nova admin guide):
- ``/openstack`` -> the version list; ``/openstack/latest`` -> the files of a version;
- ``/openstack/latest/meta_data.json`` -> ``{"uuid", "name", "hostname", "meta",
  "availability_zone", "project_id", "launch_index", "public_keys", "keys", "devices"}``;
- ``/openstack/latest/user_data`` -> the raw user-data, 404 when the server has none;
- ``/latest/meta-data/`` (EC2 style) -> ``instance-id``, ``local-hostname``, ``local-ipv4``;
  ``/latest/user-data`` -> the user-data.

A request from an address no server holds gets 404, as Nova answers an unknown instance.
Only requests addressed to 169.254.169.254 are answered (``Host`` header).
"""

from __future__ import annotations

import json

import bottle

ADDRESS = "169.254.169.254"
PORT = 80
VERSIONS = ("2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30",
            "2016-10-06", "2017-02-22", "2018-08-27", "2020-10-14", "latest")
EC2_META = ("instance-id", "local-hostname", "local-ipv4")


def make_app(cloud) -> bottle.Bottle:
    """The metadata routes on a Bottle app, mounted by localcloud's front at ``/openstack``
    and ``/latest`` (paths arrive with the mount prefix in SCRIPT_NAME)."""
    app = bottle.Bottle()

    def server() -> dict:
        host = bottle.request.get_header("Host", "").split(":")[0]
        if host != ADDRESS:
            bottle.abort(404, "Not Found")
        found = _server_at(cloud, bottle.request.remote_addr)
        if found is None:
            bottle.abort(404, "Not Found")
        return found

    def text(body: str) -> str:
        bottle.response.content_type = "text/plain; charset=UTF-8"
        return body

    @app.get("/")
    def versions():
        server()
        if _mount() == "/latest":
            return text("meta-data/\nuser-data" if server().get("user_data") else "meta-data/")
        return text("\n".join(VERSIONS))

    @app.get("/<version>")
    @app.get("/<version>/")
    def files(version):
        server()
        if _mount() != "/openstack" or version not in VERSIONS:
            bottle.abort(404, "Not Found")
        names = ["meta_data.json", "network_data.json", "vendor_data.json", "vendor_data2.json"]
        if server().get("user_data"):
            names.append("user_data")
        return text("\n".join(names))

    @app.get("/<version>/meta_data.json")
    def meta_data(version):
        found = server()
        if _mount() != "/openstack" or version not in VERSIONS:
            bottle.abort(404, "Not Found")
        bottle.response.content_type = "application/json"
        return json.dumps(_meta_data(cloud, found))

    @app.get("/<version>/user_data")
    def user_data(version):
        found = server()
        if _mount() != "/openstack" or version not in VERSIONS or not found.get("user_data"):
            bottle.abort(404, "Not Found")
        return text(found["user_data"])

    @app.get("/meta-data/")
    def ec2_meta_index():
        server()
        return text("\n".join(EC2_META))

    @app.get("/meta-data/<name>")
    def ec2_meta(name):
        found = server()
        values = {"instance-id": found["id"], "local-hostname": found["hostname"],
                  "local-ipv4": _fixed_ip(cloud, found) or ""}
        if name not in values:
            bottle.abort(404, "Not Found")
        return text(values[name])

    @app.get("/user-data")
    def ec2_user_data():
        found = server()
        if not found.get("user_data"):
            bottle.abort(404, "Not Found")
        return text(found["user_data"])

    return app


def _mount() -> str:
    return bottle.request.environ.get("SCRIPT_NAME", "").rstrip("/")


def _fixed_ip(cloud, server: dict) -> str | None:
    port = cloud.store.get("ports", server.get("port_id") or "")
    return port["fixed_ips"][0]["ip_address"] if port and port["fixed_ips"] else None


def _server_at(cloud, address: str | None) -> dict | None:
    """The server whose fixed or floating address `address` is, or None."""
    if not address:
        return None
    for server in cloud.store.all("servers"):
        if _fixed_ip(cloud, server) == address:
            return server
    for floating in cloud.store.all("floatingips"):
        if floating.get("floating_ip_address") == address and floating.get("port_id"):
            port = cloud.store.get("ports", floating["port_id"])
            if port and port.get("device_id"):
                return cloud.store.get("servers", port["device_id"])
    return None


def _meta_data(cloud, server: dict) -> dict:
    keys = []
    if server.get("key_name"):
        keypair = cloud.store.get("keypairs", server["key_name"])
        if keypair:
            keys.append({"name": keypair["name"], "type": keypair.get("type", "ssh"),
                         "data": keypair["public_key"]})
    return {"uuid": server["id"], "name": server["name"], "hostname": server["hostname"],
            "meta": server.get("metadata", {}), "availability_zone": "nova",
            "project_id": cloud.identity["project_id"],
            "launch_index": 0, "devices": [],
            "public_keys": {k["name"]: k["data"] for k in keys}, "keys": keys}
