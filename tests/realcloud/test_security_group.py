"""playbooks/security_group.yml against real Neutron: the group with exactly its rules
(Neutron's own default egress rules included in the list), and a second run changes nothing."""

import json
import subprocess

import pytest

from tests.helpers import BIN, ROOT

pytestmark = pytest.mark.realcloud
GROUP = "ssc-r2d-test-group"


def security_group(realcloud, *extra: str) -> tuple[int, dict]:
    env = {**realcloud.env, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), str(ROOT / "playbooks" / "security_group.yml"),
         "-e", "ssc_cloud=realcloud", "-e", f"ssc_security_group={GROUP}",
         "-e", '{"ssc_controller_cidrs": ["192.0.2.10/32"], '
               '"ssc_operator_cidrs": ["198.51.100.0/24"]}', *extra],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    return result.returncode, json.loads(result.stdout)


def test_the_group_has_exactly_its_rules_and_a_rerun_changes_nothing(realcloud):
    conn = realcloud.connect()
    try:
        code, report = security_group(realcloud)
        assert code == 0, report
        group = conn.network.find_security_group(GROUP)
        rules = {(r.direction, r.ether_type, r.protocol, r.port_range_min, r.port_range_max,
                  r.remote_ip_prefix)
                 for r in conn.network.security_group_rules(security_group_id=group.id)}
        assert rules == {("egress", "IPv4", None, None, None, None),
                         ("egress", "IPv6", None, None, None, None),
                         ("ingress", "IPv4", "tcp", 8888, 8888, "192.0.2.10/32"),
                         ("ingress", "IPv4", "tcp", 22, 22, "192.0.2.10/32"),
                         ("ingress", "IPv4", "tcp", 22, 22, "198.51.100.0/24")}
        code, report = security_group(realcloud)
        assert code == 0 and report["stats"]["localhost"]["changed"] == 0
    finally:
        group = conn.network.find_security_group(GROUP)
        if group is not None:
            conn.network.delete_security_group(group)
