"""Figures for the site's proxy (printed, never asserted), measured side by side in one run.

    .venv/bin/python bench/proxy.py [--seconds 10]

1. nginx's authorization subrequests: ``GET /proxy/auth`` of the app (a VM owner's pass
   cookie, the VM's Host) against a bare Bottle page, both under waitress with the same
   threads (8, as ``ssc-web serve``), at 50 connections with wrk: requests per second and
   p99, and their ratio. Target (issue 14): the ratio at 0.6 or more.
2. A page of a VM's Jupyter through the proxy (deploy/nginx-ssc-web.conf over HTTPS: TLS,
   the auth subrequest, the token added) against the same page fetched direct, as a ratio of
   requests per second. The VM is a stand-in serving a 40 kB page at loopback (no cloud).
No cloud is needed; nginx (nginx-light) and wrk come from Debian's packages.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.web import ensure_wrk, wrk  # noqa: E402
from localcloud.front import Authority, SiteFront  # noqa: E402
from web import db, proxy, sessions  # noqa: E402

THREADS = 8
APP, DOMAIN = "ssc.localhost", "vms.localhost"
NAME = "ssc-r2d-bench"
TOKEN = "b" * 48


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(code: str, port: int) -> subprocess.Popen:
    """A Python process serving the WSGI app `code` defines (as ``app``) under waitress."""
    program = textwrap.dedent(code) + textwrap.dedent(f"""
        import waitress
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
    ensure_wrk()
    processes, fronts = [], []
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        bare_port, app_port, page_port, https_port = (free_port() for _ in range(4))
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
            processes.append(serve("""
                page = ("<html><body>" + "<p>notebook cell output</p>" * 1600
                        + "</body></html>").encode()
                def app(environ, start_response):
                    start_response("200 OK", [("Content-Type", "text/html"),
                                              ("Content-Length", str(len(page)))])
                    return [page]
            """, page_port))
            print(f"1. authorization subrequests, {seconds} s each, 50 connections, waitress "
                  f"{THREADS} threads")
            side_by_side(("bare Bottle page", f"http://127.0.0.1:{bare_port}/"),
                         ("/proxy/auth (the owner's pass)",
                          f"http://127.0.0.1:{app_port}/proxy/auth"),
                         seconds, f"__Host-ssc_vm={pass_id}", f"{NAME}.{vms_domain}",
                         " (target 0.6 or more)")

            fronts.append(start_nginx(temp, app_port, https_port, page_port))
            print(f"2. a 40 kB page of the VM, {seconds} s each")
            side_by_side(("direct (http://<vm>:8888/)", f"http://127.0.0.1:{page_port}/"),
                         ("through the proxy (https, auth)", f"https://127.0.0.1:{https_port}/"),
                         seconds, f"__Host-ssc_vm={pass_id}", f"{NAME}.{vms_domain}")
        finally:
            for front in fronts:
                front.stop()
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


def start_nginx(temp: Path, app_port: int, https_port: int, page_port: int) -> SiteFront:
    """The shipped site (localcloud.front, as the demo runs it) in front of the app, with the
    page server playing the VM's Jupyter."""
    front = SiteFront(temp / "front", Authority(temp / "ca"), app_port=app_port,
                      https_port=https_port, app_name=APP, vms_name=DOMAIN,
                      jupyter_port=page_port)
    front.start()
    return front


if __name__ == "__main__":
    main()
