"""`realcloud up | down [--purge] | status`: a real OpenStack control plane in one container.

`up` builds the image once (see image.py), starts the container `realcloud` at 10.89.9.2 on
the Docker network `realcloud`, waits until every service answers and Nova's and Cinder's
services report up, writes var/realcloud/clouds.yaml (clouds `realcloud`: the demo user in
project demo; `realcloud-admin`: admin) and registers the image `debian-13` and the flavors
ssc.tiny ... ssc.xlarge. A second `up` keeps the running container and changes nothing.
`down` removes the container, its network and clouds.yaml (`--purge`: also its images and
var/realcloud). `status` exits 0 when it runs, 3 when it does not.
"""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import keystoneauth1.exceptions
import openstack.config
import openstack.connection
import requests
import yaml

from localcloud.cloud import FLAVORS
from localcloud.realcloud.image import (
    ADDRESS,
    BUILD_CONTAINER,
    CONTAINER_OPTIONS,
    CREDENTIALS,
    LABEL,
    NETWORK,
    PACKAGES_REPOSITORY,
    REPOSITORY,
    RealcloudError,
    docker,
    ensure_network,
    ensure_realcloud_image,
)

CONTAINER = "realcloud"
CLOUD = "realcloud"
ADMIN_CLOUD = "realcloud-admin"
IMAGE_NAME = "debian-13"
IMAGE_SIZE = 1024 * 1024  # bytes of zeros: a raw disk Cinder copies into a volume in a moment
IMAGE_PROPERTIES = {"os_distro": "debian", "os_version": "13", "os_admin_user": "debian",
                    "hw_disk_bus": "virtio"}  # fmt: skip
START_TIMEOUT = 600  # seconds from `docker run` until every service answers (60 s when idle)
API_TIMEOUT = 120  # seconds a client waits for one answer (clouds.yaml api_timeout)
ENDPOINTS = {  # service: a URL that answers (any status) once it serves
    "keystone": f"http://{ADDRESS}:5000/v3",
    "glance": f"http://{ADDRESS}:9292/",
    "placement": f"http://{ADDRESS}:8778/",
    "nova": f"http://{ADDRESS}:8774/",
    "neutron": f"http://{ADDRESS}:9696/",
    "cinder": f"http://{ADDRESS}:8776/",
}
COMPUTE_SERVICES = {"nova-conductor", "nova-scheduler", "nova-compute"}
VOLUME_SERVICES = {"cinder-scheduler", "cinder-volume"}


def say(message: str) -> None:
    print(f"realcloud: {message}", flush=True)


def default_var_dir() -> Path:
    return Path(os.environ.get("REALCLOUD_VAR_DIR", "var/realcloud"))


def up(var_dir: Path) -> None:
    """Start (building first if needed), wait, write clouds.yaml, register image and flavors.
    Raises RealcloudError when a step fails or a service does not answer in time."""
    started = time.monotonic()
    var_dir.mkdir(parents=True, exist_ok=True)
    ref = ensure_realcloud_image(var_dir / "cache", log=say)
    # START_TIMEOUT counts from `docker run`, not from `up`: a first run builds the image
    # for about 15 minutes before that (the build has its own timeouts).
    running_since = time.monotonic()
    if container_image(running_only=True) == ref:
        say(f"already running ({ref})")
    else:
        docker("rm", "-f", CONTAINER, check=False)
        ensure_network()
        docker("run", "-d", "--name", CONTAINER, "--label", f"{LABEL}=1",
               *CONTAINER_OPTIONS, ref)  # fmt: skip
        say(f"started {CONTAINER} ({ref}) at {ADDRESS}")
    clouds_yaml = write_clouds_yaml(var_dir)
    admin = connect(clouds_yaml, ADMIN_CLOUD)
    wait_until_serving(admin, START_TIMEOUT - (time.monotonic() - running_since))
    register_flavors(admin)
    register_image(admin)
    say(f"up in {time.monotonic() - started:.0f} s; clouds.yaml: {clouds_yaml} "
        f"(clouds {CLOUD}, {ADMIN_CLOUD})")


def container_image(running_only: bool = False) -> str | None:
    """The image (repository:tag) of the container `realcloud`, if it exists (and runs)."""
    state = docker("container", "inspect", "--format", "{{.State.Running}} {{.Config.Image}}",
                   CONTAINER, check=False).split()  # fmt: skip
    if not state or (running_only and state[0] != "true"):
        return None
    return state[1]


def write_clouds_yaml(var_dir: Path) -> Path:
    """var_dir/clouds.yaml (mode 0600) from the credentials the image was built with; every
    request of a client using it gives up after API_TIMEOUT seconds (openstacksdk's api_timeout),
    so a stuck service fails a call instead of hanging it."""
    credentials = json.loads(docker("exec", CONTAINER, "cat", CREDENTIALS))
    clouds = {}
    for name, who in ((CLOUD, "demo"), (ADMIN_CLOUD, "admin")):
        clouds[name] = {
            "auth": {"auth_url": credentials["auth_url"], **credentials[who],
                     "user_domain_name": "Default", "project_domain_name": "Default"},
            "region_name": credentials["region_name"], "interface": "public",
            "identity_api_version": 3, "api_timeout": API_TIMEOUT}  # fmt: skip
    path = var_dir / "clouds.yaml"
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump({"clouds": clouds}, sort_keys=False))
    return path


def connect(clouds_yaml: Path, cloud: str) -> openstack.connection.Connection:
    config = openstack.config.OpenStackConfig(config_files=[str(clouds_yaml)])
    return openstack.connection.Connection(config=config.get_one(cloud=cloud))


def wait_until_serving(admin: openstack.connection.Connection, timeout: float) -> None:
    """Until every API answers, Nova's and Cinder's services are up (their first
    heartbeats after the start: the image holds ones from its build, long stale) and their
    schedulers can place a server and a volume (:func:`schedulers_without_hosts`)."""
    deadline = time.monotonic() + max(timeout, 30)
    waiting = "the APIs"
    while time.monotonic() < deadline:
        try:
            waiting = ", ".join(name for name, url in ENDPOINTS.items() if not answers(url))
            if not waiting:
                waiting = ", ".join(sorted(services_down(admin))) or ""
                if not waiting:
                    waiting = ", ".join(schedulers_without_hosts(admin))
                if not waiting:
                    return
        except (openstack.exceptions.SDKException, keystoneauth1.exceptions.ClientException):
            pass  # an API may answer before it serves (e.g. Keystone before MariaDB)
        time.sleep(2)
    logs = docker("exec", CONTAINER, "systemctl", "--failed", "--no-legend", check=False)
    raise RealcloudError(f"not serving after {timeout:.0f} s; waiting for {waiting}; "
                         f"failed units: {logs.strip() or 'none'} "
                         f"(see `docker exec {CONTAINER} journalctl` and /var/log there)")


def answers(url: str) -> bool:
    try:
        requests.get(url, timeout=5)
    except requests.RequestException:
        return False
    return True


def services_down(admin: openstack.connection.Connection) -> set[str]:
    """Nova's and Cinder's services not (yet) reporting up."""
    up = {s.binary for s in admin.compute.services() if s.state == "up"}
    up |= {s.binary for s in admin.block_storage.services() if s.state == "up"}
    return (COMPUTE_SERVICES | VOLUME_SERVICES) - up


def schedulers_without_hosts(admin: openstack.connection.Connection) -> list[str]:
    """The schedulers that would not place a small server or volume yet: Nova's while
    Placement has no allocation candidate for one vCPU and 64 MiB (nova-compute reports its
    resources to Placement after it starts: Placement API 1.10, GET /allocation_candidates),
    Cinder's while it knows no pool (cinder-volume reports its capacity after it starts:
    GET /scheduler-stats/get_pools). Before both, a boot fails "No valid host" or a volume
    goes to error; services reporting up is not enough."""
    waiting = []
    found = admin.placement.get("/allocation_candidates",
                                params={"resources": "VCPU:1,MEMORY_MB:64"},
                                headers={"OpenStack-API-Version": "placement 1.10"})
    if found.status_code != 200 or not found.json().get("allocation_requests"):
        waiting.append("placement's allocation candidates")
    pools = admin.block_storage.get("/scheduler-stats/get_pools")
    if pools.status_code != 200 or not pools.json().get("pools"):
        waiting.append("cinder's pools")
    return waiting


def register_flavors(admin: openstack.connection.Connection) -> None:
    """localcloud's flavors (names and sizes), public, unless a flavor has the name."""
    known = {flavor.name for flavor in admin.compute.flavors()}
    for name, vcpus, ram, disk in FLAVORS:
        if name not in known:
            admin.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=disk,
                                        is_public=True)  # fmt: skip


def register_image(admin: openstack.connection.Connection) -> None:
    """The public raw image `debian-13` (IMAGE_SIZE zero bytes), unless one is there."""
    if admin.image.find_image(IMAGE_NAME):
        return
    admin.image.create_image(name=IMAGE_NAME, data=bytes(IMAGE_SIZE), disk_format="raw",
                             container_format="bare", visibility="public", wait=True,
                             **IMAGE_PROPERTIES)  # fmt: skip


def down(var_dir: Path, purge: bool) -> None:
    for name in (CONTAINER, BUILD_CONTAINER):
        docker("rm", "-f", name, check=False)
    docker("network", "rm", NETWORK, check=False)
    (var_dir / "clouds.yaml").unlink(missing_ok=True)
    if not purge:
        say("stopped; its images are kept (`down --purge` removes them)")
        return
    for repository in (REPOSITORY, PACKAGES_REPOSITORY):
        tags = docker("image", "ls", repository, "--format", "{{.Repository}}:{{.Tag}}")
        for tag in tags.split():
            docker("image", "rm", tag, check=False)
    shutil.rmtree(var_dir, ignore_errors=True)
    say("stopped; its images and var directory are gone")


def status(var_dir: Path) -> int:
    image = container_image(running_only=True)
    clouds_yaml = var_dir / "clouds.yaml"
    if image is None or not clouds_yaml.exists():
        say("not running")
        return 3
    admin = connect(clouds_yaml, ADMIN_CLOUD)
    try:
        down_services = services_down(admin)
        counts = {
            "server(s)": len(list(admin.compute.servers(all_projects=True))),
            "volume(s)": len(list(admin.block_storage.volumes(all_projects=True))),
            "floating IP(s)": len(list(admin.network.ips())),
            "image(s)": len(list(admin.image.images())),
        }
    except openstack.exceptions.SDKException as error:
        say(f"running ({image}) but not answering: {error}")
        return 1
    services = f"services down: {', '.join(sorted(down_services))}" if down_services else (
        "every service up")
    say(f"running at {ADDRESS} ({image}), {services}; "
        + ", ".join(f"{count} {what}" for what, count in counts.items())
        + f"; clouds.yaml: {clouds_yaml}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="realcloud", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--var-dir", type=Path, default=None,
                        help="its clouds.yaml and build cache (default var/realcloud, "
                             "or $REALCLOUD_VAR_DIR)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start it (builds its image once: about 10 minutes)")
    down_parser = commands.add_parser("down", help="remove its container and network")
    down_parser.add_argument("--purge", action="store_true",
                             help="also its images and var directory")
    commands.add_parser("status", help="does it run, and what does it hold")
    args = parser.parse_args(argv)
    var_dir = args.var_dir or default_var_dir()
    try:
        if args.command == "up":
            up(var_dir)
        elif args.command == "down":
            down(var_dir, args.purge)
        else:
            return status(var_dir)
    except RealcloudError as error:
        sys.exit(f"realcloud: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
