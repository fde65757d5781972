"""The local cloud as one WSGI service: every API mounted under its path, served by waitress.

Run by `localcloud up` as `python -m localcloud.service`; never imported by the product.
"""

import argparse
import logging
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import bottle
import waitress

from localcloud import cinder, control, githost, github, glance, keystone, metadata, neutron, nova
from localcloud.api import (
    ServicePlugin,
    glance_error,
    keystone_error,
    neutron_error,
    nova_error,
)
from localcloud.baseimage import ensure_base_image
from localcloud.cloud import Cloud
from localcloud.config import from_environment

log = logging.getLogger("localcloud")

BASE_IMAGE_NAME = "debian-13"
CONNECTION_LIMIT = 2000  # open client connections at once (waitress: 100 by default)
SERVICES = [
    # path, service name in records, module, error body, microversions
    ("/identity", "identity", keystone, keystone_error, None),
    ("/compute", "compute", nova, nova_error, nova.MICROVERSIONS),
    ("/image", "image", glance, glance_error, None),
    ("/volume", "volumev3", cinder, nova_error, cinder.MICROVERSIONS),
    ("/network", "network", neutron, neutron_error, None),
    ("/localcloud", "localcloud", control, keystone_error, None),
]


def unauthorized_as_keystone(error_body):
    """Keystone middleware answers 401 for every service with its own body."""
    def body(error):
        return keystone_error(error) if error.status == 401 else error_body(error)
    return body


def make_app(cloud: Cloud) -> "Front":
    """One WSGI app: each service's Bottle app under its path, as a real cloud's proxy does."""
    apps = {}
    for path, name, module, error_body, versions in SERVICES:
        app = module.make_app(cloud)
        app.install(ServicePlugin(service=name, tokens=cloud.tokens, faults=cloud.faults,
                                  recorder=cloud.recorder, microversions=versions,
                                  error_body=unauthorized_as_keystone(error_body)))
        apps[path] = app
    apps["/localcloud"].get("/routes", callback=lambda: {"routes": route_table(apps)})
    apps["/github"] = github.make_app(cloud.config)
    apps["/git"] = githost.make_app(cloud.config)
    # Nova's metadata service, answering servers at 169.254.169.254 (OpenStack and EC2 paths)
    apps["/openstack"] = apps["/latest"] = metadata.make_app(cloud)
    root = bottle.Bottle()

    @root.get("/")
    def index():
        return {"localcloud": {"pid": os.getpid(), "var_dir": str(cloud.config.var_dir.resolve()),
                               "identity": f"{cloud.config.endpoint}/identity",
                               "github": cloud.config.github_base_url,
                               "git": cloud.config.git_base_url}}

    apps[""] = root
    return Front(apps, cloud.requests)


def route_table(apps: dict) -> list[dict]:
    """Every route of the OpenStack services, as the tests that call each one read it:
    [{"service": "compute", "method": "GET", "rule": "/v2.1/servers/<server_id>",
    "auth": True}, ...], in the order each service's router tries them. "service" is the name
    exchanges are recorded under; "rule" is Bottle's, below the service's mount point."""
    names = {path: name for path, name, *_ in SERVICES if name != "localcloud"}
    return [{"service": names[path], "method": route.method, "rule": route.rule,
             "auth": route.config.get("auth", True)}
            for path, app in apps.items() if path in names for route in app.routes]


class Front:
    """WSGI dispatch by the first path segment, moved into SCRIPT_NAME so that each service
    sees paths below its endpoint; counts requests per service for tests to read."""

    def __init__(self, apps: dict, counter: Counter):
        self.apps = apps
        self.counter = counter

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "/") or "/"
        prefix = "/" + path.lstrip("/").split("/", 1)[0]
        app = self.apps.get(prefix)
        if app is None:
            prefix, app = "", self.apps[""]
        self.counter[prefix.strip("/") or "root"] += 1
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
        environ["PATH_INFO"] = path[len(prefix):] or "/"
        return app(environ, start_response)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m localcloud.service")
    parser.add_argument("--var-dir", type=Path, default=None)
    parser.add_argument("--record", default=os.environ.get("LOCALCLOUD_RECORD"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = from_environment(args.var_dir)
    cloud = Cloud(config, record_path=args.record)
    cloud.machines.ensure_networks()
    cloud.seed()
    base = ensure_base_image(config.var_dir / "cache", log=log.info)
    cloud.register_base_image(BASE_IMAGE_NAME, base, cloud.machines.image_size(base))
    cloud.recover()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listen = f"{config.host}:{config.port} {config.gateway}:{config.port}"
    if cloud.machines.ensure_metadata_address(metadata.ADDRESS):
        listen += f" {metadata.ADDRESS}:{metadata.PORT}"
    log.info("localcloud serving on %s", listen)
    # A real cloud's API sits behind a proxy that takes thousands of connections. Waitress's
    # default limit (100) was reached under the full suite, whose clients (openstacksdk in
    # each Ansible task, the VMs' git fetches, console polling) leave idle keep-alive
    # connections open until channel_timeout: new ones then waited, and calls timed out.
    waitress.serve(make_app(cloud), listen=listen, threads=16, connection_limit=CONNECTION_LIMIT,
                   ident="localcloud", channel_timeout=600)


if __name__ == "__main__":
    main()
