"""ssc.repo2docker's server addresses (module_utils/server_address.py) from Neutron's ports
and floating IPs, as user_server reports them."""

from ansible_collections.ssc.repo2docker.plugins.module_utils.server_address import (
    server_addresses,
)

PRIVATE, OTHER = "net-private", "net-other"
PORT = {"id": "p1", "network_id": PRIVATE, "fixed_ips": [{"ip_address": "10.0.0.5"}]}
OTHER_PORT = {"id": "p2", "network_id": OTHER, "fixed_ips": [{"ip_address": "192.168.0.7"}]}


def test_the_fixed_address_when_there_is_no_floating_ip():
    assert server_addresses([PORT], [], PRIVATE) == {
        "fixed_ip": "10.0.0.5", "floating_ip": None, "floating_ips": [], "address": "10.0.0.5"}


def test_the_floating_ip_is_the_address_users_reach():
    floating = [{"floating_ip_address": "203.0.113.9", "port_id": "p1"}]
    assert server_addresses([PORT], floating, PRIVATE) == {
        "fixed_ip": "10.0.0.5", "floating_ip": "203.0.113.9", "floating_ips": ["203.0.113.9"],
        "address": "203.0.113.9"}


def test_the_port_on_the_wanted_network_gives_the_fixed_address():
    assert server_addresses([OTHER_PORT, PORT], [], PRIVATE)["fixed_ip"] == "10.0.0.5"
    assert server_addresses([OTHER_PORT, PORT], [], None)["fixed_ip"] == "192.168.0.7"


def test_floating_ips_of_other_ports_do_not_count():
    floating = [{"floating_ip_address": "203.0.113.1", "port_id": "elsewhere"},
                {"floating_ip_address": "203.0.113.2", "port_id": "p2"}]
    found = server_addresses([PORT, OTHER_PORT], floating, PRIVATE)
    assert found["floating_ips"] == ["203.0.113.2"] and found["address"] == "203.0.113.2"


def test_no_port_no_address():
    assert server_addresses([], [], PRIVATE) == {
        "fixed_ip": None, "floating_ip": None, "floating_ips": [], "address": None}
