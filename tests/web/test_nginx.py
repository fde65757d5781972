"""deploy/nginx-ssc-web.conf as shipped (only its names, ports and paths changed) in front of
the app served in-process and a stand-in Jupyter that echoes what reaches it: the owner
gets through over HTTPS with the token added upstream and the pass cookie kept from the VM,
WebSockets are passed on, everybody else is sent to the app, no ``token=`` or ticket in any
log, and no cookie of the pass's names reaches the VM, however many the browser sends.
Needs Debian's nginx (scripts/setup.sh installs nginx-light); no cloud."""

from __future__ import annotations

import json
import socket
import socketserver
import ssl
import threading
import time
from pathlib import Path

import pytest
import requests

from localcloud.front import NGINX, Authority, SiteFront, loopback_names
from tests.helpers import sign_in as authorize
from tests.web.conftest import free_port
from tests.web.test_proxy import DOMAIN, TOKEN, give_vm

APP = "app.localhost"
pytestmark = pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")


class Jupyter(socketserver.ThreadingTCPServer):
    """Answers each request with the headers that reached it (JSON); an Upgrade request with
    101, then echoes what comes."""

    daemon_threads = True
    allow_reuse_address = True
    seen: list

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            lines = []
            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                lines.append(line.decode("latin1").rstrip("\r\n"))
            if not lines:
                return
            headers = dict(line.split(": ", 1) for line in lines[1:])
            self.server.seen.append({"request": lines[0], **headers})
            if headers.get("Upgrade", "").lower() == "websocket":
                self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\n\r\n")
                self.wfile.write(self.rfile.read1(100))
                return
            body = json.dumps({"request": lines[0], **headers}).encode()
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


@pytest.fixture
def localhost_names():
    """*.localhost resolves to loopback, as in Chromium and curl (glibc here does not)."""
    with loopback_names():
        yield


@pytest.fixture
def front(make_site, github, tmp_path, localhost_names):
    """(site, base URL, https port, the stand-in Jupyter, the CA, the log directory): the
    shipped conf rendered by localcloud.front, as the demo and the end-to-end tests run it."""
    https_port, jupyter_port = free_port(), free_port()
    jupyter = Jupyter(("127.0.0.1", jupyter_port), Jupyter.Handler)
    jupyter.seen = []
    threading.Thread(target=jupyter.serve_forever, daemon=True).start()
    base = f"https://{APP}:{https_port}"
    client_id, client_secret = github.register(f"{base}/auth/callback")
    site = make_site(allowed_logins=("alice", "bob"), vms_domain=f"{DOMAIN}:{https_port}",
                     auth_cache_seconds=0, base_url=base, github_client_id=client_id,
                     github_client_secret=client_secret)
    front = SiteFront(tmp_path / "front", Authority(tmp_path / "ca"),
                      app_port=int(site.url.rsplit(":", 1)[1]), https_port=https_port,
                      app_name=APP, vms_name=DOMAIN, jupyter_port=jupyter_port)
    front.start()
    yield site, base, https_port, jupyter, front.ca, front.logs
    front.stop()
    jupyter.shutdown()
    jupyter.server_close()


def https_browser(ca: Path) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE wins over verify, and no proxies
    session.verify = str(ca)
    return session


def sign_in(base: str, browser: requests.Session, login: str) -> None:
    """Sign in on the app through nginx (GitHub is the plain-HTTP stand-in)."""
    answer = browser.get(f"{base}/auth/login", allow_redirects=False, timeout=10)
    back = authorize(answer.headers["Location"], login, "")
    done = browser.get(back, allow_redirects=False, timeout=10)
    assert done.status_code == 303, done.text


def test_the_owner_reaches_jupyter_through_nginx_and_others_do_not(front):
    site, base, port, jupyter, ca, logs = front
    alice, bob, stranger = https_browser(ca), https_browser(ca), https_browser(ca)
    sign_in(base, alice, "alice")
    sign_in(base, bob, "bob")
    name = give_vm(site, "alice", address="127.0.0.1")
    give_vm(site, "bob", address="127.0.0.2")
    vm = f"https://{name}.{DOMAIN}:{port}"

    # the owner: to the app and back with a ticket, then the pass cookie on that host
    hops = []
    alice.hooks["response"].append(lambda answer, **_: hops.append(answer.headers.get(
        "Location", "")))
    page = alice.get(vm + "/api/status", timeout=10)
    assert page.status_code == 200, page.text
    assert hops[:2] == [f"{base}/vm/{name}", hops[1]]
    assert hops[1].startswith(f"{vm}/_ssc/pass?ticket=")
    assert hops[2] == vm + "/" and all("token" not in hop for hop in hops)
    seen = page.json()  # what the VM received
    assert seen["request"] == "GET / HTTP/1.1"
    assert seen["Authorization"] == f"token {TOKEN}"
    assert seen["Host"] == f"{name}.{DOMAIN}:{port}"
    assert "ssc_vm" not in seen.get("Cookie", "")  # the pass stays with the proxy
    assert alice.get(vm + "/api/status", timeout=10).json()["request"] == (
        "GET /api/status HTTP/1.1")
    assert alice.get(f"{base}/proxy/auth", timeout=10).status_code == 404

    # a WebSocket is passed on, with the token; one from another origin is refused
    raw = socket.create_connection(("127.0.0.1", port))
    context = ssl.create_default_context(cafile=str(ca))
    with context.wrap_socket(raw, server_hostname=f"{name}.{DOMAIN}") as tls:
        tls.sendall((f"GET /api/kernels/k/channels HTTP/1.1\r\nHost: {name}.{DOMAIN}:{port}\r\n"
                     f"Upgrade: websocket\r\nConnection: Upgrade\r\nOrigin: {vm}\r\n"
                     f"Cookie: __Host-ssc_vm={alice.cookies['__Host-ssc_vm']}\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "\r\n").encode())
        head = tls.recv(1000)
        assert head.startswith(b"HTTP/1.1 101"), head
        tls.sendall(b"ping")
        assert tls.recv(100) == b"ping"
    assert jupyter.seen[-1]["Authorization"] == f"token {TOKEN}"
    refused = alice.get(vm + "/api/kernels", headers={"Origin": f"https://x.{DOMAIN}:{port}"},
                        allow_redirects=False, timeout=10)
    assert refused.status_code == 403

    # another signed-in user and a signed-out visitor never reach the VM
    count = len(jupyter.seen)
    other = bob.get(vm + "/", timeout=10)
    assert other.status_code == 404 and other.url == f"{base}/vm/{name}"
    away = stranger.get(vm + "/", allow_redirects=False, timeout=10)
    assert away.status_code == 302 and away.headers["Location"] == f"{base}/vm/{name}"
    assert stranger.get(away.headers["Location"], allow_redirects=False,
                        timeout=10).headers["Location"].startswith(site.config.github_authorize_url)
    stranger.cookies.set("__Host-ssc_vm", alice.cookies["__Host-ssc_vm"] + "x")
    assert stranger.get(vm + "/", allow_redirects=False, timeout=10).status_code == 302
    assert len(jupyter.seen) == count

    time.sleep(0.2)  # nginx writes its logs as requests end
    for log in logs.iterdir():
        text = log.read_text()
        assert "token=" not in text and TOKEN not in text and "ticket=" not in text, log.name


def test_no_pass_reaches_the_vm_behind_cookies_of_its_name(front):
    """The VM's code can set ``ssc_vm`` cookies on narrower paths, which the browser sends
    before the pass: each is removed with the pass, other cookies go on; with more than nginx
    removes one by one, no cookie goes at all."""
    site, base, port, _, ca, _ = front
    alice = https_browser(ca)
    sign_in(base, alice, "alice")
    name = give_vm(site, "alice", address="127.0.0.1")
    vm = f"https://{name}.{DOMAIN}:{port}"
    assert alice.get(vm + "/", timeout=10).status_code == 200
    pass_id = alice.cookies["__Host-ssc_vm"]

    for cookies, reaching in ((f"ssc_vm=x; __Host-ssc_vm={pass_id}; _xsrf=k", "; _xsrf=k"),
                              (f"a=1;ssc_vm=x;__Host-ssc_vm={pass_id}", "a=1"),
                              (f"ssc_vm=x; ssc_vm=y; __Host-ssc_vm={pass_id}; _xsrf=k", None)):
        page = alice.get(vm + "/api/contents", headers={"Cookie": cookies}, timeout=10)
        assert page.status_code == 200, page.text  # the pass got the owner through
        seen = page.json()
        assert seen["request"] == "GET /api/contents HTTP/1.1"
        assert seen.get("Cookie") == reaching, cookies
        assert pass_id not in str(seen)
