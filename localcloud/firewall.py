"""Security groups enforced: what may reach a server, as Neutron's firewall drivers decide it.

Neutron's model ("Security groups" in the Networking API reference and the admin guide):
a port's groups hold rules; an ingress rule allows traffic from ``remote_ip_prefix`` (or from
the addresses of the ports in ``remote_group_id``; or from anywhere when neither is set) for
``protocol`` and the port range ``port_range_min``..``port_range_max`` (for ICMP: type and
code); whatever no rule allows in is dropped; a stateful group lets replies to what the
server sent come back in. Egress is not filtered here (every group the tests use allows all
egress, as Neutron's default rules do).

localcloud applies it as the iptables firewall driver does on a compute host, in the
server's own network namespace: a ``mangle`` chain that sees packets coming in on the
server's cloud-facing interfaces (``eth*``; not the Docker bridges inside the server) before
anything inside the server (its own Docker engine's NAT) does. :func:`ruleset` makes the
chain's contents; ``Machines.apply_ingress`` loads them atomically.
"""

from __future__ import annotations

import ipaddress

CHAIN = "LOCALCLOUD-INGRESS"
# Neutron's protocol names for the numbers iptables takes (neutron_lib.constants).
PROTOCOLS = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "icmp": "icmp", "1": "icmp",
             "sctp": "sctp", "132": "sctp"}
PORTED = {"tcp", "udp", "sctp"}


def server_rules(store, server: dict) -> list[dict]:
    """The IPv4 ingress rules of the groups on `server`'s port, with ``remote_group_id``
    resolved: each returned rule has ``sources`` (CIDRs; ``["0.0.0.0/0"]`` for anywhere),
    ``protocol`` (iptables' name or None for any) and the port range."""
    port = store.get("ports", server.get("port_id") or "")
    if port is None:
        return []
    rules = []
    for group_id in port.get("security_groups", []):
        for rule in store.find("security_group_rules", security_group_id=group_id):
            if rule["direction"] != "ingress" or rule["ethertype"] != "IPv4":
                continue
            rules.append({"sources": _sources(store, rule),
                          "protocol": _protocol(rule.get("protocol")),
                          "port_range_min": rule.get("port_range_min"),
                          "port_range_max": rule.get("port_range_max")})
    return rules


def ruleset(rules: list[dict]) -> str:
    """The ``iptables-restore --noflush`` input that makes :data:`CHAIN` allow `rules` and
    drop the rest; replies (ESTABLISHED, RELATED) always pass, as in a stateful group."""
    lines = ["*mangle", f":{CHAIN} - [0:0]", f"-F {CHAIN}",
             f"-A {CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN"]
    for rule in rules:
        match = _match(rule)
        if match is None:
            continue
        for source in rule["sources"]:
            lines.append(f"-A {CHAIN} -s {source}{match} -j RETURN")
    lines += [f"-A {CHAIN} -j DROP", "COMMIT", ""]
    return "\n".join(lines)


def _sources(store, rule: dict) -> list[str]:
    if rule.get("remote_group_id"):
        members = [p for p in store.all("ports")
                   if rule["remote_group_id"] in p.get("security_groups", [])]
        return sorted({f"{ip['ip_address']}/32" for p in members for ip in p["fixed_ips"]
                       if ipaddress.ip_address(ip["ip_address"]).version == 4})
    prefix = rule.get("remote_ip_prefix")
    return [str(ipaddress.ip_network(prefix, strict=False)) if prefix else "0.0.0.0/0"]


def _protocol(value) -> str | None:
    if value in (None, "", "any", "0", 0):
        return None
    return PROTOCOLS.get(str(value).lower(), str(value))


def _match(rule: dict) -> str | None:
    """The iptables match of one rule's protocol and ports ("" for everything)."""
    protocol = rule["protocol"]
    if protocol is None:
        return ""
    low, high = rule["port_range_min"], rule["port_range_max"]
    if protocol in PORTED:
        if low is None:
            return f" -p {protocol}"
        ports = f"{int(low)}:{int(high if high is not None else low)}"
        return f" -p {protocol} -m {protocol} --dport {ports}"
    if protocol == "icmp" and low is not None:
        icmp = f"{int(low)}/{int(high)}" if high is not None else f"{int(low)}"
        return f" -p icmp --icmp-type {icmp}"
    if protocol.isdigit() or protocol == "icmp":
        return f" -p {protocol}"
    return None  # a protocol iptables does not name is allowed by no rule here
