"""Neutron v2.0: networks, subnets, ports, security groups and rules, floating IPs, routers."""

import ipaddress
import time

import bottle

from localcloud.api import ApiError, base_url, json_body, strict
from localcloud.store import new_id, now

EXTENSIONS = [
    ("security-group", "security-group", "The security groups extension."),
    ("external-net", "Neutron external network", "Adds external network attribute."),
    ("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding."),
    ("quotas", "Quota management support", "Expose functions for quotas management."),
    ("port-security", "Port Security", "Provides port security"),
    ("standard-attr-description", "standard-attr-description", "Extension to add "
     "descriptions to standard attributes"),
    ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at "
     "fields to all Neutron resources that have Neutron standard attributes."),
    ("standard-attr-tag", "Tag support for resources with standard attribute",
     "Enables to set tag on resources with standard attribute."),
    ("standard-attr-revisions", "Resource revision numbers", "This extension will display "
     "the revision number of neutron resources."),
    ("network-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    ("availability_zone", "Availability Zone", "The availability zone extension."),
    ("binding", "Port Binding", "Expose port bindings of a virtual port to external "
     "application"),
]
NOT_FOUND_KINDS = {"networks": "NetworkNotFound", "subnets": "SubnetNotFound",
                   "ports": "PortNotFound", "security-groups": "SecurityGroupNotFound",
                   "security-group-rules": "SecurityGroupRuleNotFound",
                   "floatingips": "FloatingIPNotFound", "routers": "RouterNotFound"}
NOT_FOUND_NAMES = {"networks": "Network", "subnets": "Subnet", "ports": "Port",
                   "security-groups": "Security group", "security-group-rules":
                   "Security group rule", "floatingips": "Floating IP",
                   "routers": "Router"}


def not_found(kind: str, item_id: str) -> ApiError:
    return ApiError(404, f"{NOT_FOUND_NAMES[kind]} {item_id} could not be found.",
                    kind=NOT_FOUND_KINDS[kind])


def matches(item: dict, query) -> bool:
    """Neutron's list filters: every given attribute equals one of the given values."""
    for key in query:
        if key in ("fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"):
            continue
        wanted = query.getall(key)
        value = item.get(key)
        if key == "fixed_ips":
            addresses = {f"ip_address={ip['ip_address']}" for ip in value or []} | \
                {f"subnet_id={ip['subnet_id']}" for ip in value or []}
            if not set(wanted) <= addresses:
                return False
            continue
        if isinstance(value, bool):
            value = str(value).lower()
            wanted = [w.lower() for w in wanted]
        if isinstance(value, list):
            if not set(wanted) <= {str(v) for v in value}:
                return False
        elif str(value) not in wanted and not (value is None and "" in wanted):
            return False
    return True


def select_fields(item: dict, query) -> dict:
    fields = query.getall("fields")
    return {k: v for k, v in item.items() if k in fields} if fields else item


def make_app(cloud) -> bottle.Bottle:
    app = bottle.Bottle()
    store = cloud.store
    project = cloud.identity["project_id"]

    def owned(record: dict) -> dict:
        return {"tenant_id": project, "project_id": project,
                "created_at": record.get("created_at"), "updated_at": record.get("updated_at"),
                "revision_number": record.get("revision_number", 0),
                "description": record.get("description", ""), "tags": record.get("tags", [])}

    def network_view(network: dict) -> dict:
        return {"id": network["id"], "name": network["name"], "admin_state_up": True,
                "mtu": network["mtu"], "status": "ACTIVE", "subnets": network["subnets"],
                "shared": network["shared"], "availability_zone_hints": [],
                "availability_zones": ["nova"], "ipv4_address_scope": None,
                "ipv6_address_scope": None, "router:external": network["external"],
                "port_security_enabled": True, "is_default": network["external"],
                "l2_adjacency": True, "qos_policy_id": None, **owned(network)}

    def subnet_view(subnet: dict) -> dict:
        return {"id": subnet["id"], "name": subnet["name"], "network_id": subnet["network_id"],
                "cidr": subnet["cidr"], "gateway_ip": subnet["gateway_ip"], "ip_version": 4,
                "enable_dhcp": subnet["enable_dhcp"], "allocation_pools":
                subnet["allocation_pools"], "dns_nameservers": [], "host_routes": [],
                "ipv6_address_mode": None, "ipv6_ra_mode": None, "service_types": [],
                "subnetpool_id": None, "segment_id": None, "dns_publish_fixed_ip": False,
                **owned(subnet)}

    def port_view(port: dict) -> dict:
        return {"id": port["id"], "name": port["name"], "network_id": port["network_id"],
                "mac_address": port["mac_address"], "fixed_ips": port["fixed_ips"],
                "device_id": port["device_id"], "device_owner": port["device_owner"],
                "status": port["status"], "admin_state_up": port["admin_state_up"],
                "security_groups": port["security_groups"], "allowed_address_pairs": [],
                "extra_dhcp_opts": [], "port_security_enabled": True,
                "binding:vnic_type": "normal", "qos_policy_id": None, **owned(port)}

    def group_view(group: dict) -> dict:
        rules = [rule_view(r) for r in store.find("security_group_rules",
                                                  security_group_id=group["id"])]
        return {"id": group["id"], "name": group["name"], "description": group["description"],
                "stateful": group["stateful"], "security_group_rules": rules,
                "shared": False, **{k: v for k, v in owned(group).items()
                                    if k != "description"}}

    def rule_view(rule: dict) -> dict:
        return {k: v for k, v in rule.items()} | {"tenant_id": project, "project_id": project}

    def floating_view(floating: dict) -> dict:
        return {"id": floating["id"], "floating_ip_address": floating["floating_ip_address"],
                "floating_network_id": floating["floating_network_id"],
                "fixed_ip_address": floating["fixed_ip_address"],
                "port_id": floating["port_id"], "router_id": floating["router_id"],
                "status": floating["status"], "dns_domain": "", "dns_name": "",
                "port_details": None, "qos_policy_id": None, **owned(floating)}

    def router_view(router: dict) -> dict:
        public = cloud.network(external=True)
        subnet = store.get("subnets", public["subnets"][0])
        return {"id": router["id"], "name": router["name"], "status": "ACTIVE",
                "admin_state_up": True, "external_gateway_info": {
                    "network_id": public["id"], "enable_snat": True,
                    "external_fixed_ips": [{"subnet_id": subnet["id"],
                                            "ip_address": subnet["gateway_ip"]}]},
                "routes": [], "availability_zone_hints": [], "availability_zones": ["nova"],
                "distributed": False, "ha": False, "flavor_id": None, **owned(router)}

    def routers() -> list[dict]:
        private = cloud.network(external=False)
        return [{"id": private["id"][:8] + "-0000-4000-8000-" + private["id"][-12:],
                 "name": "router1", "created_at": private["created_at"],
                 "updated_at": private["updated_at"]}]

    COLLECTIONS = {
        "networks": ("networks", "network", network_view),
        "subnets": ("subnets", "subnet", subnet_view),
        "ports": ("ports", "port", port_view),
        "security-groups": ("security_groups", "security_group", group_view),
        "security-group-rules": ("security_group_rules", "security_group_rule", rule_view),
        "floatingips": ("floatingips", "floatingip", floating_view),
    }

    def records(kind: str) -> list[dict]:
        if kind == "routers":
            return routers()
        return store.all(COLLECTIONS[kind][0])

    def view(kind: str, record: dict) -> dict:
        return router_view(record) if kind == "routers" else COLLECTIONS[kind][2](record)

    def find(kind: str, item_id: str) -> dict:
        for record in records(kind):
            if record["id"] == item_id:
                return record
        raise not_found(kind, item_id)

    # --- discovery -------------------------------------------------------------------

    @app.get("/", auth=False)
    def versions():
        return {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
            {"rel": "self", "href": f"{base_url()}/v2.0/"}]}]}

    @app.get("/v2.0")
    @app.get("/v2.0/")
    def resources():
        return {"resources": [{"name": singular, "collection": kind, "links": [
            {"rel": "self", "href": f"{base_url()}/v2.0/{kind}"}]}
            for kind, (_, singular, _) in COLLECTIONS.items()]}

    @app.get("/v2.0/extensions")
    def extensions():
        return {"extensions": [{"alias": alias, "name": name, "description": description,
                                "updated": "2013-01-01T10:00:00-00:00", "links": []}
                               for alias, name, description in EXTENSIONS]}

    @app.get("/v2.0/extensions/<alias>")
    def extension(alias):
        for known, name, description in EXTENSIONS:
            if known == alias:
                return {"extension": {"alias": alias, "name": name, "description":
                                      description, "updated": "2013-01-01T10:00:00-00:00",
                                      "links": []}}
        raise ApiError(404, f"Extension with alias {alias} does not exist")

    # --- generic list and show -------------------------------------------------------

    def list_route(kind: str):
        singular_plural = kind.replace("-", "_")

        def handler():
            query = bottle.request.query
            items = [view(kind, r) for r in records(kind)]
            items = [select_fields(i, query) for i in items if matches(i, query)]
            return {singular_plural: items}
        return handler

    def show_route(kind: str, singular: str):
        def handler(item_id):
            return {singular: select_fields(view(kind, find(kind, item_id)),
                                            bottle.request.query)}
        return handler

    for kind, (_, singular, _) in [*COLLECTIONS.items(), ("routers", (None, "router", None))]:
        app.route(f"/v2.0/{kind}", "GET", list_route(kind))
        app.route(f"/v2.0/{kind}/<item_id>", "GET", show_route(kind, singular))

    # --- ports -----------------------------------------------------------------------

    @app.post("/v2.0/ports", op="port.create")
    def create_port():
        request = json_body(strict({"port": {"type": "object"}}, ("port",)))["port"]
        network = find("networks", str(request.get("network_id")))
        if network["external"]:
            raise ApiError(400, "Ports on the external network are made by floating IPs.",
                           kind="BadRequest")
        cloud.check_quota(port=1)
        groups = request.get("security_groups")
        names = [g["name"] for g in store.all("security_groups")
                 if (groups is None and g["name"] == "default") or g["id"] in (groups or [])]
        port = cloud.create_port(network, name=request.get("name", ""),
                                 security_group_names=names,
                                 fixed_ip=(request.get("fixed_ips") or [{}])[0].get(
                                     "ip_address"))
        bottle.response.status = 201
        return {"port": port_view(port)}

    @app.put("/v2.0/ports/<port_id>", op="port.update")
    def update_port(port_id):
        find("ports", port_id)
        request = json_body(strict({"port": {"type": "object"}}, ("port",)))["port"]
        allowed = {"name", "description", "security_groups", "admin_state_up"}
        if set(request) - allowed:
            raise ApiError(400, f"Cannot update read-only attribute "
                           f"{sorted(set(request) - allowed)[0]}", kind="HTTPBadRequest")
        request["updated_at"] = now()
        updated = store.update("ports", port_id, **request)
        if "security_groups" in request:
            cloud.enforce_security_groups()
        return {"port": port_view(updated)}

    @app.delete("/v2.0/ports/<port_id>", op="port.delete")
    def delete_port(port_id):
        port = find("ports", port_id)
        if port["device_owner"] == "compute:nova" and store.get("servers", port["device_id"]):
            raise ApiError(409, f"Port {port_id} is in use by server {port['device_id']}.",
                           kind="PortInUse")
        for floating in store.find("floatingips", port_id=port_id):
            store.update("floatingips", floating["id"], port_id=None, fixed_ip_address=None,
                         status="DOWN")
        store.delete("ports", port_id)
        bottle.response.status = 204
        return ""

    # --- security groups and rules ---------------------------------------------------

    @app.post("/v2.0/security-groups", op="security_group.create")
    def create_security_group():
        request = json_body(strict({"security_group": strict({
            "name": {"type": "string", "maxLength": 255},
            "description": {"type": "string", "maxLength": 255},
            "stateful": {"type": "boolean"}, "tenant_id": {"type": "string"},
            "project_id": {"type": "string"}}, ("name",))}, ("security_group",)))
        group = request["security_group"]
        if group["name"] == "default":
            raise ApiError(409, "Default security group already exists.",
                           kind="SecurityGroupDefaultAlreadyExists")
        used = cloud.usage()["security_group"]
        if used + 1 > cloud.quota("security_group"):
            raise ApiError(409, "Quota exceeded for resources: ['security_group'].",
                           kind="OverQuota")
        created = cloud.create_security_group(group["name"], group.get("description", ""))
        bottle.response.status = 201
        return {"security_group": group_view(created)}

    @app.put("/v2.0/security-groups/<group_id>", op="security_group.update")
    def update_security_group(group_id):
        find("security-groups", group_id)
        request = json_body(strict({"security_group": strict({
            "name": {"type": "string", "maxLength": 255},
            "description": {"type": "string", "maxLength": 255}})}, ("security_group",)))
        group = store.update("security_groups", group_id, updated_at=now(),
                             **request["security_group"])
        return {"security_group": group_view(group)}

    @app.delete("/v2.0/security-groups/<group_id>", op="security_group.delete")
    def delete_security_group(group_id):
        group = find("security-groups", group_id)
        in_use = [p for p in store.all("ports") if group_id in p["security_groups"]]
        if group["name"] == "default" or in_use:
            raise ApiError(409, f"Security Group {group_id} in use.", kind="SecurityGroupInUse")
        for rule in store.find("security_group_rules", security_group_id=group_id):
            store.delete("security_group_rules", rule["id"])
        store.delete("security_groups", group_id)
        bottle.response.status = 204
        return ""

    @app.post("/v2.0/security-group-rules", op="security_group_rule.create")
    def create_rule():
        """One rule, or several at once (Neutron's bulk create: ``security_group_rules``,
        all or none; openstack.cloud's security_group module sends its rules so)."""
        port = {"type": ["integer", "string", "null"], "minimum": 0, "maximum": 65535}
        rule_schema = strict({
            "security_group_id": {"type": "string"},
            "direction": {"type": "string", "enum": ["ingress", "egress"]},
            "ethertype": {"type": "string", "enum": ["IPv4", "IPv6"]},
            "protocol": {"type": ["string", "integer", "null"]},
            "port_range_min": port, "port_range_max": port,
            "remote_ip_prefix": {"type": ["string", "null"]},
            "remote_group_id": {"type": ["string", "null"]},
            "remote_address_group_id": {"type": ["string", "null"]},
            "description": {"type": "string"}, "tenant_id": {"type": "string"},
            "project_id": {"type": "string"}},
            ("security_group_id", "direction"))
        request = json_body({"type": "object", "oneOf": [
            strict({"security_group_rule": rule_schema}, ("security_group_rule",)),
            strict({"security_group_rules": {"type": "array", "items": rule_schema,
                                             "minItems": 1}}, ("security_group_rules",))]})
        bulk = "security_group_rules" in request
        rules = request["security_group_rules"] if bulk else [request["security_group_rule"]]
        checked = []
        for rule in rules:
            find("security-groups", rule["security_group_id"])
            rule.pop("tenant_id", None)
            rule.pop("project_id", None)
            fields = check_rule(rule)
            existing = store.find("security_group_rules",
                                  security_group_id=rule["security_group_id"])
            for other in [*existing, *({"security_group_id": g, **f} for g, f in checked)]:
                if other.get("security_group_id") == rule["security_group_id"] and all(
                        other.get(k) == v for k, v in fields.items() if k != "description"):
                    raise ApiError(409, f"Security group rule already exists. Rule id is "
                                   f"{other.get('id', '')}.", kind="SecurityGroupRuleExists")
            checked.append((rule["security_group_id"], fields))
        if cloud.usage()["security_group_rule"] + len(checked) > cloud.quota(
                "security_group_rule"):
            raise ApiError(409, "Quota exceeded for resources: ['security_group_rule'].",
                           kind="OverQuota")
        created = [rule_view(cloud.add_rule(group_id, **fields)) for group_id, fields in checked]
        cloud.enforce_security_groups()
        bottle.response.status = 201
        return {"security_group_rules": created} if bulk else {"security_group_rule": created[0]}

    def check_rule(rule: dict) -> dict:
        fields = {k: v for k, v in rule.items() if k != "security_group_id"}
        fields.setdefault("ethertype", "IPv4")
        protocol = fields.get("protocol")
        if protocol is not None:
            fields["protocol"] = str(protocol).lower()
        for key in ("port_range_min", "port_range_max"):
            if fields.get(key) is not None:
                fields[key] = int(fields[key])
        low, high = fields.get("port_range_min"), fields.get("port_range_max")
        if low is not None and high is not None and low > high:
            raise ApiError(400, "For TCP/UDP protocols, port_range_min must be <= "
                           "port_range_max", kind="SecurityGroupInvalidPortRange")
        if fields.get("remote_ip_prefix"):
            try:
                network = ipaddress.ip_network(fields["remote_ip_prefix"], strict=False)
            except ValueError:
                raise ApiError(400, f"Invalid input for remote_ip_prefix. Reason: "
                               f"'{fields['remote_ip_prefix']}' is not a valid IP prefix.",
                               kind="HTTPBadRequest") from None
            if f"IPv{network.version}" != fields["ethertype"]:
                raise ApiError(400, f"Conflicting value ethertype {fields['ethertype']} for "
                               f"CIDR {fields['remote_ip_prefix']}",
                               kind="SecurityGroupRuleParameterConflict")
        return fields

    @app.delete("/v2.0/security-group-rules/<rule_id>", op="security_group_rule.delete")
    def delete_rule(rule_id):
        find("security-group-rules", rule_id)
        store.delete("security_group_rules", rule_id)
        cloud.enforce_security_groups()
        bottle.response.status = 204
        return ""

    # --- floating IPs ----------------------------------------------------------------

    @app.post("/v2.0/floatingips", op="floatingip.create")
    def create_floating_ip():
        request = json_body(strict({"floatingip": strict({
            "floating_network_id": {"type": "string"}, "port_id": {"type": ["string", "null"]},
            "fixed_ip_address": {"type": ["string", "null"]},
            "floating_ip_address": {"type": "string"}, "subnet_id": {"type": "string"},
            "description": {"type": "string"}, "tenant_id": {"type": "string"},
            "project_id": {"type": "string"}, "dns_name": {"type": "string"},
            "dns_domain": {"type": "string"}},
            ("floating_network_id",))}, ("floatingip",)))["floatingip"]
        network = find("networks", request["floating_network_id"])
        if not network["external"]:
            raise ApiError(400, f"Bad floatingip request: Network {network['id']} is not a "
                           "valid external network.", kind="BadRequest")
        if cloud.usage()["floatingip"] + 1 > cloud.quota("floatingip"):
            raise ApiError(409, "Quota exceeded for resources: ['floatingip'].",
                           kind="OverQuota")
        subnet = store.get("subnets", network["subnets"][0])
        with cloud.ip_lock:
            address = request.get("floating_ip_address") or cloud.free_address(subnet)
            stamp = now()
            floating = {"id": new_id(), "floating_ip_address": address,
                        "floating_network_id": network["id"], "fixed_ip_address": None,
                        "port_id": None, "router_id": None, "status": "DOWN",
                        "description": request.get("description", ""), "created_at": stamp,
                        "updated_at": stamp, "tags": []}
            store.put("floatingips", floating)
        if request.get("port_id"):
            floating = associate(floating, request["port_id"], request.get("fixed_ip_address"))
        bottle.response.status = 201
        return {"floatingip": floating_view(floating)}

    def associate(floating: dict, port_id: str | None, fixed_ip: str | None) -> dict:
        if floating["port_id"] and floating["port_id"] != port_id:
            old = store.get("ports", floating["port_id"])
            if old and old["device_id"]:
                cloud.machines.detach_floating_ip(old["device_id"],
                                                  floating["floating_ip_address"])
        if port_id is None:
            return store.update("floatingips", floating["id"], port_id=None,
                                fixed_ip_address=None, router_id=None, status="DOWN",
                                updated_at=now())
        port = find("ports", port_id)
        if store.find("floatingips", port_id=port_id) and floating["port_id"] != port_id:
            raise ApiError(409, f"Cannot associate floating IP {floating['floating_ip_address']}"
                           f" with port {port_id}: it already has a floating IP.",
                           kind="FloatingIPPortAlreadyAssociated")
        if port["device_id"] and store.get("servers", port["device_id"]):
            cloud.machines.attach_floating_ip(port["device_id"],
                                              floating["floating_ip_address"])
        # Nova lists it in the server's addresses only once Neutron's network-changed event
        # has made it refresh its network info cache: a moment later (nova.py, addresses())
        in_nova_at = time.time() + cloud.config.nova_floating_ip_delay
        return store.update("floatingips", floating["id"], port_id=port_id,
                            fixed_ip_address=fixed_ip or port["fixed_ips"][0]["ip_address"],
                            router_id=routers()[0]["id"], status="ACTIVE", updated_at=now(),
                            in_nova_at=in_nova_at)

    @app.put("/v2.0/floatingips/<floating_id>", op="floatingip.update")
    def update_floating_ip(floating_id):
        floating = find("floatingips", floating_id)
        request = json_body(strict({"floatingip": strict({
            "port_id": {"type": ["string", "null"]},
            "fixed_ip_address": {"type": ["string", "null"]},
            "description": {"type": "string"}})}, ("floatingip",)))["floatingip"]
        if "description" in request:
            floating = store.update("floatingips", floating_id,
                                    description=request["description"])
        if "port_id" in request:
            floating = associate(floating, request["port_id"], request.get("fixed_ip_address"))
        return {"floatingip": floating_view(floating)}

    @app.delete("/v2.0/floatingips/<floating_id>", op="floatingip.delete")
    def delete_floating_ip(floating_id):
        floating = find("floatingips", floating_id)
        if floating["port_id"]:
            associate(floating, None, None)
        store.delete("floatingips", floating_id)
        bottle.response.status = 204
        return ""

    # --- quotas ----------------------------------------------------------------------

    NEUTRON_QUOTAS = ("network", "subnet", "port", "router", "floatingip", "security_group",
                      "security_group_rule")

    @app.get("/v2.0/quotas/<project_id>")
    def show_quota(project_id):
        return {"quota": {name: cloud.quota(name) for name in NEUTRON_QUOTAS}}

    @app.get("/v2.0/quotas/<project_id>/details.json")
    @app.get("/v2.0/quotas/<project_id>/details")
    def show_quota_details(project_id):
        used = cloud.usage()
        return {"quota": {name: {"limit": cloud.quota(name), "used": used[name],
                                 "reserved": 0} for name in NEUTRON_QUOTAS}}

    return app
