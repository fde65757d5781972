"""Figures for the site's proxy (printed, never asserted), measured side by side in one run.

    .venv/bin/python bench/proxy.py [--seconds 10]

1. nginx's authorization subrequests: ``GET /proxy/auth`` of the app (a VM owner's pass
   cookie, the VM's Host) against a bare Bottle page, both under waitress with the same
   threads (8, as ``ssc-web serve``), at 50 connections with wrk: requests per second and
   p99, and their ratio. Target (issue 14): the ratio at 0.6 or more.
2. A notebook's page load from a VM's Jupyter through the proxy (deploy/nginx-ssc-web.conf
   over HTTPS as localcloud/front.py runs it: TLS, the auth subrequest with the pass cookie,
   the token added) against the same load direct (``Authorization: token``, as the proxy
   adds it), as ratios: requests per second, p50 and p99 of the notebook's page
   (``/notebooks/<nb>``, its HTML) and of the API call the page makes to load the notebook
   (``/api/contents/<nb>?type=notebook&content=1&hash=0``, JupyterLab's Drive.get as
   Notebook 7 calls it). The Jupyter is the VMs' own: the image localcloud/notebook-base
   in a local container started as the launcher starts it (bench/jupyter.py), holding the
   sample repository's index.ipynb; the container is removed at the end.
No cloud is needed; nginx (nginx-light) and wrk come from Debian's packages, the notebook
image from localcloud/baseimage.py (already built by `make demo` or `localcloud up`).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.jupyter import notebook_server  # noqa: E402
from bench.web import ensure_wrk, wrk  # noqa: E402
from localcloud.front import Authority, SiteFront, loopback_names  # noqa: E402
from web import db, proxy, sessions, users  # noqa: E402

THREADS = 8
APP, DOMAIN = "ssc.localhost", "vms.localhost"
NAME = "ssc-r2d-bench"
TOKEN = "b" * 48
NOTEBOOK = ROOT / "localcloud" / "samples" / "notebook" / "index.ipynb"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(code: str, port: int) -> subprocess.Popen:
    """A Python process serving the WSGI app `code` defines (as ``app``) under waitress."""
    program = textwrap.dedent(code) + textwrap.dedent(f"""
        import logging
        import waitress
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth"
        waitress.serve(app, host="127.0.0.1", port={port}, threads={THREADS}, _quiet=True)
    """)
    process = subprocess.Popen([sys.executable, "-c", program], cwd=ROOT)
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.1)
    raise SystemExit(f"nothing answers on port {port}")


def prepare_site(directory: Path, vms_domain: str, upstream: str) -> tuple[Path, str]:
    """A database with one signed-in user, their ready VM and a pass: (path, pass id)."""
    path = directory / "ssc-web.sqlite3"
    conn = db.connect(path)
    db.init(conn)
    db.save_user(conn, 1, "bench")
    users.bind(conn, "bench", 1)  # as its first sign-in does: allowed_logins names it
    hour = timedelta(hours=1)
    session = sessions.start_signed_in(conn, 1, False, hour, hour)
    db.save_vm(conn, 1, "bench", name=NAME, url=f"http://{upstream}/", state="ready",
               address=upstream.split(":")[0], token=TOKEN)
    pass_id, _ = proxy.take_ticket(conn, proxy.issue_ticket(conn, session, NAME), NAME)
    conn.close()
    return path, pass_id


def line(label: str, figures: dict) -> str:
    return (f"  {label:<34} {figures['rps']:>9.0f} req/s   p99 {figures['p99']:>7.2f} ms"
            f"   errors {figures['errors']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    seconds = parser.parse_args().seconds
    # Stopped from outside (kill, a CI's timeout): unwind, so the container and nginx go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ensure_wrk()
    processes = []
    with tempfile.TemporaryDirectory() as temp, ExitStack() as stack:
        temp = Path(temp)
        bare_port, app_port, jupyter_port, https_port = (free_port() for _ in range(4))
        vms_domain = f"{DOMAIN}:{https_port}"
        database, pass_id = prepare_site(temp, vms_domain, "127.0.0.1")
        try:
            processes.append(serve("""
                from bottle import Bottle
                app = Bottle()
                app.route("/", "GET", lambda: "ok")
            """, bare_port))
            processes.append(serve(f"""
                from pathlib import Path
                from web.app import make_app
                from web.config import Config
                app = make_app(Config(base_url="https://{APP}:{https_port}",
                                      database=Path({str(database)!r}),
                                      vms_domain={vms_domain!r}, allowed_logins=("bench",)))
            """, app_port))
            print(f"1. authorization subrequests, {seconds} s each, 50 connections, waitress "
                  f"{THREADS} threads")
            side_by_side(("bare Bottle page", f"http://127.0.0.1:{bare_port}/"),
                         ("/proxy/auth (the owner's pass)",
                          f"http://127.0.0.1:{app_port}/proxy/auth"),
                         seconds, f"__Host-ssc_vm={pass_id}", f"{NAME}.{vms_domain}",
                         " (target 0.6 or more)")

            front = start_nginx(temp, app_port, https_port, jupyter_port)
            stack.callback(front.stop)
            notebook = stack.enter_context(
                notebook_server(jupyter_port, TOKEN, NOTEBOOK, f"{NAME}-jupyter-{os.getpid()}"))
            print(f"2. a notebook's page load ({NOTEBOOK.name}), {seconds} s each, 50 "
                  "connections, Jupyter in localcloud/notebook-base")
            notebook_load(front, jupyter_port, notebook, pass_id, seconds)
        finally:
            for process in processes:
                process.terminate()


def side_by_side(base: tuple[str, str], measured: tuple[str, str], seconds: int,
                 cookie: str, host: str, target: str = "") -> None:
    """Load `base` (label, URL) plainly and `measured` with the pass `cookie` for `host`, one
    after the other in this run; print both and measured/base requests per second."""
    first = wrk(base[1], seconds)
    second = wrk(measured[1], seconds, cookie, host=host)
    print(line(base[0], first))
    print(line(measured[0], second))
    print(f"  ratio {second['rps'] / first['rps']:.2f}{target}")


def notebook_load(front: SiteFront, jupyter_port: int, notebook: str, pass_id: str,
                  seconds: int) -> None:
    """For the notebook's page and its contents call: direct, then through the proxy; print
    both and proxied/direct for requests per second, p50 and p99."""
    host = f"{NAME}.{front.vms_domain}"
    cookie = f"__Host-ssc_vm={pass_id}"
    auth = f"Authorization: token {TOKEN}"
    print(f"  {'':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for label, path in (("notebook page", f"/notebooks/{notebook}"),
                        ("contents API", f"/api/contents/{notebook}"
                                         "?type=notebook&content=1&hash=0")):
        direct_url = f"http://127.0.0.1:{jupyter_port}{path}"
        proxied_url = f"https://127.0.0.1:{front.https_port}{path}"
        check(direct_url, {"Authorization": f"token {TOKEN}"})
        with loopback_names():
            check(f"https://{host}{path}", {"Cookie": cookie}, front.ca)
        direct = wrk(direct_url, seconds, headers=(auth,))
        proxied = wrk(proxied_url, seconds, cookie, host=host)
        for name, figures in (("direct", direct), ("through the proxy", proxied)):
            print(f"  {f'{label}, {name}':<34}{figures['rps']:>9.0f}{figures['p50']:>9.2f}"
                  f"{figures['p99']:>9.2f}{figures['errors']:>8}")
        print(f"  {f'{label}, proxy/direct':<34}{proxied['rps'] / direct['rps']:>8.2f}x"
              f"{proxied['p50'] / direct['p50']:>8.2f}x{proxied['p99'] / direct['p99']:>8.2f}x")


def check(url: str, headers: dict, ca: Path | None = None) -> None:
    """One GET of `url` must answer 200 itself: wrk counts a redirect (to Jupyter's login or
    the site's sign-in) as a success, which would measure the wrong page."""
    answer = requests.get(url, headers=headers, verify=str(ca) if ca else True,
                          allow_redirects=False, timeout=10)
    if answer.status_code != 200:
        raise SystemExit(f"{url} answered {answer.status_code}, not 200")


def start_nginx(temp: Path, app_port: int, https_port: int, page_port: int) -> SiteFront:
    """The shipped site (localcloud.front, as the demo runs it) in front of the app, passing
    the VMs' Jupyter on to loopback's `page_port`."""
    front = SiteFront(temp / "front", Authority(temp / "ca"), app_port=app_port,
                      https_port=https_port, app_name=APP, vms_name=DOMAIN,
                      jupyter_port=page_port)
    front.start()
    return front


if __name__ == "__main__":
    main()
