# Copyright: ssc-repo2docker developers
# BSD-3-Clause
"""The addresses of a server as Neutron has them: its fixed address and its floating IPs.

Neutron is the source, not Nova's ``addresses``: Nova lists a floating IP only once Neutron
has told it about the association (the ``network-changed`` external event, after which Nova
refreshes its network info cache), so right after ``POST /v2.0/floatingips`` Nova still shows
the fixed address alone."""


def server_addresses(ports: list[dict], floating_ips: list[dict],
                     network_id: str | None = None) -> dict:
    """The server's addresses from its Neutron ports and floating IPs.

    ports: Neutron ports of the server (``device_id`` = server id), each
    ``{"id", "network_id", "fixed_ips": [{"ip_address"}, ...]}``; the first port on
    network_id is the server's, else the first one.
    floating_ips: Neutron floating IPs, each ``{"floating_ip_address", "port_id"}``; those
    on the server's ports count, in the order given.
    Returns ``{"fixed_ip", "floating_ip", "floating_ips", "address"}``: address is the first
    floating IP if any (what users reach), else the fixed address; None where there is none.
    """
    ordered = sorted(ports, key=lambda port: port.get("network_id") != network_id)
    port_ids = {port["id"] for port in ports}
    fixed = [ip["ip_address"] for port in ordered for ip in port.get("fixed_ips") or []]
    floating = [ip["floating_ip_address"] for ip in floating_ips if ip.get("port_id") in port_ids]
    fixed_ip = fixed[0] if fixed else None
    floating_ip = floating[0] if floating else None
    return {"fixed_ip": fixed_ip, "floating_ip": floating_ip, "floating_ips": floating,
            "address": floating_ip or fixed_ip}
