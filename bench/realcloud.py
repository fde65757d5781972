"""Figures for `realcloud up` and its tests (printed, never asserted).

    .venv/bin/python bench/realcloud.py [--build] [--tests] [--timings N]

cold: `realcloud down`, then `realcloud up`: a fresh container from the cached image, until
every service answers and the image and flavors are registered. warm: `realcloud up` again
while it runs (nothing to do but check). --build: first remove realcloud's images, so that
the cold start includes building them (debootstrap, apt, setup: many minutes). --tests: then
time `pytest -m realcloud` (its fixture's own `up` is warm). --timings N: then N times, a
boot-from-volume server (delete on termination) gets a floating IP through Neutron, as
ssc.repo2docker.user_server attaches it, and is deleted: how long real Nova takes to show the
address in the server's `addresses`, and to be rid of the server and then of its boot volume
after the delete was accepted, beside the local cloud's settings that copy them
(LOCALCLOUD_NOVA_FLOATING_IP_DELAY, LOCALCLOUD_NOVA_VOLUME_DELETE_DELAY). Leaves realcloud
running.
"""

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import openstack.config
import openstack.connection
import openstack.exceptions

from localcloud.config import from_environment

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
CLOUDS_YAML = ROOT / "var" / "realcloud" / "clouds.yaml"
PUBLIC_NETWORK = "Public External IPv4 Network"
POLL = 0.05  # seconds between two looks


def timed(*command: str) -> float:
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n"
                 f"{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return seconds


def remove_images() -> None:
    for repository in ("realcloud/zed", "realcloud/zed-packages"):
        tags = subprocess.run(["docker", "image", "ls", repository, "--format",
                               "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True)
        for tag in tags.stdout.split():
            subprocess.run(["docker", "image", "rm", tag], capture_output=True)


def until(condition: Callable[[], bool], timeout: float = 300) -> float:
    """Seconds until condition() holds, looking every POLL seconds."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            sys.exit(f"still waiting after {timeout} s")
        time.sleep(POLL)
    return time.monotonic() - started


def gone(find: Callable, resource_id: str) -> bool:
    try:
        find(resource_id)
    except openstack.exceptions.NotFoundException:
        return True
    return False


def one_round(conn: openstack.connection.Connection, name: str) -> dict[str, float]:
    """A boot-from-volume server with a floating IP, then deleted: seconds from the floating
    IP's association (Neutron's answer) until Nova's `addresses` lists it, and from the
    server delete's 204 until the server, then its boot volume, are gone (404)."""
    image = conn.image.find_image("debian-13", ignore_missing=False)
    server = conn.compute.create_server(
        name=name, flavor_id=conn.compute.find_flavor("ssc.tiny", ignore_missing=False).id,
        networks=[{"uuid": conn.network.find_network("private", ignore_missing=False).id}],
        block_device_mapping=[{"uuid": image.id, "source_type": "image",
                               "destination_type": "volume", "volume_size": 1,
                               "boot_index": 0, "delete_on_termination": True}])  # fmt: skip
    server = conn.compute.wait_for_server(server, wait=300)
    [volume_id] = [volume.id for volume in server.attached_volumes]
    port = next(iter(conn.network.ports(device_id=server.id)))
    ip = conn.network.create_ip(port_id=port.id, floating_network_id=conn.network.find_network(
        PUBLIC_NETWORK, ignore_missing=False).id)
    address = ip.floating_ip_address
    in_addresses = until(lambda: address in str(conn.compute.get_server(server.id).addresses))
    conn.network.delete_ip(ip)
    conn.compute.delete_server(server)
    started = time.monotonic()
    until(lambda: gone(conn.compute.get_server, server.id))
    server_gone = time.monotonic() - started
    until(lambda: gone(conn.block_storage.get_volume, volume_id))
    return {"floating_ip_in_addresses": in_addresses, "server_gone": server_gone,
            "volume_gone": time.monotonic() - started}


def timings(rounds: int) -> None:
    config = openstack.config.OpenStackConfig(config_files=[str(CLOUDS_YAML)])
    conn = openstack.connection.Connection(config=config.get_one(cloud="realcloud"))
    figures = [one_round(conn, f"bench-timings-{n}") for n in range(rounds)]
    local = from_environment()
    print(f"realcloud, {rounds} rounds (median, min-max; seconds):")
    for key, label, setting, value in (
            ("floating_ip_in_addresses", "floating IP in Nova's addresses after association",
             "LOCALCLOUD_NOVA_FLOATING_IP_DELAY", local.nova_floating_ip_delay),
            ("server_gone", "server gone (404) after its delete", None, None),
            ("volume_gone", "boot volume gone (404) after the server's delete",
             "LOCALCLOUD_NOVA_VOLUME_DELETE_DELAY", local.nova_volume_delete_delay)):
        values = [round_figures[key] for round_figures in figures]
        line = (f"  {label}: {statistics.median(values):6.2f} "
                f"({min(values):.2f}-{max(values):.2f})")
        print(line + (f"; localcloud {setting}: {value:g}" if setting else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="include building the images")
    parser.add_argument("--tests", action="store_true", help="also time pytest -m realcloud")
    parser.add_argument("--timings", type=int, default=0, metavar="N",
                        help="also N rounds of Nova's floating IP and boot volume timing")
    args = parser.parse_args()
    realcloud = str(BIN / "realcloud")
    timed(realcloud, "down")
    if args.build:
        remove_images()
    cold = timed(realcloud, "up")
    print(f"cold up{' (with the image build)' if args.build else ''}: {cold:7.1f} s")
    warm = timed(realcloud, "up")
    print(f"warm up:  {warm:7.1f} s")
    if args.tests:
        tests = timed(str(BIN / "pytest"), "-m", "realcloud", "-q", "-p", "no:cacheprovider",
                      "tests/realcloud")  # fmt: skip
        print(f"pytest -m realcloud (fixture's up, tests, down): {tests:7.1f} s")
        timed(realcloud, "up")
    if args.timings:
        timings(args.timings)


if __name__ == "__main__":
    main()
