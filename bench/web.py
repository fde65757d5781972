"""Figures for the web trigger (printed, never asserted).

    .venv/bin/python bench/web.py [--users 20] [--seconds 10] [--skip-launch]

1. Requests per second and latency (p50, p99) of ``/`` (signed out, and signed in: a
   session and the user's VM read from SQLite) and ``/healthz`` at 50 concurrent
   connections, measured with wrk (Debian's package, installed when missing) against
   ``ssc-web serve`` as `make demo` runs it (waitress, 8 threads).
   Target on 2 cores: ``/`` at 1000 req/s or more, p99 under 50 ms, no errors.
2. ``--users`` researchers start the sample repository at once through the app (sign in
   through the GitHub stand-in, register, POST /VM_start, follow /jobs/<id>.json), then
   delete their VMs: how many reached ready, the time until the last did, and the peak
   memory (RSS) of the app, the job runner and every playbook run it started, together.
   Target: all succeed, with the app and its runners under 1.5 GB together.
   Needs `localcloud up` and an image from playbooks/build_image.yml (`make demo` does both).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from localcloud.site import LocalSite, SiteUser  # noqa: E402
from web import procs  # noqa: E402

CONNECTIONS = 50
PAGE = 4096  # bytes; /proc/<pid>/statm counts pages


def wrk(url: str, seconds: int, cookie: str | None = None, host: str | None = None,
        headers: tuple[str, ...] = ()) -> dict:
    """`url` under load for `seconds`: {"rps": requests/s, "p50"/"p99": ms, "errors": count
    of non-2xx/3xx answers and socket errors}; `headers` are more "Name: value" lines."""
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", url]
    for header in headers:
        command[1:1] = ["-H", header]
    if cookie:
        command[1:1] = ["-H", f"Cookie: {cookie}"]
    if host:
        command[1:1] = ["-H", f"Host: {host}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}
    for percent in ("50", "99"):
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        figures[f"p{percent}"] = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        out)
    figures["errors"] = (int(errors[1]) if errors else 0) + (
        sum(int(n) for n in sockets.groups()) if sockets else 0)
    return figures


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("installing wrk (Debian's package)")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL,
             "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}}
    if subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], **quiet).returncode:
        subprocess.run(["apt-get", "update", "-qq"], check=True, **quiet)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, **quiet)


def http_figures(site: LocalSite, seconds: int) -> None:
    ensure_wrk()
    user = SiteUser(site.url, "bench-reader")
    user.sign_in()
    cookie = "; ".join(f"{c.name}={c.value}" for c in user.http.cookies
                       if c.domain.startswith("127.0.0.1"))
    print(f"\nHTTP, {CONNECTIONS} connections, {seconds} s each (target for /: >= 1000 req/s, "
          "p99 < 50 ms, no errors)")
    print(f"  {'path':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>9}")
    for label, path, with_cookie in (("/ (signed out)", "/", False),
                                     ("/ (signed in)", "/", True),
                                     ("/healthz", "/healthz", False)):
        figures = wrk(site.url + path, seconds, cookie if with_cookie else None)
        print(f"  {label:<22}{figures['rps']:>10.0f}{figures['p50']:>10.1f}"
              f"{figures['p99']:>10.1f}{figures['errors']:>9}")


class MemoryWatch(threading.Thread):
    """Samples the RSS of the given processes and all their descendants; keeps the peak."""

    def __init__(self, roots: list[int]):
        super().__init__(daemon=True)
        self.roots, self.peak, self.peak_processes = set(roots), 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.25):
            pids = procs.with_descendants(self.roots)
            total = sum(self.rss(pid) for pid in pids)
            if total > self.peak:
                self.peak, self.peak_processes = total, len(pids)

    @staticmethod
    def rss(pid: int) -> int:
        try:
            return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            return 0


def launch_figures(site: LocalSite, users: int) -> None:
    cloud = [str(ROOT / ".venv" / "bin" / "localcloud"), "quota"]
    subprocess.run([*cloud, f"instances={users + 5}", f"cores={2 * users + 10}",
                    f"ram={4096 * users + 10240}", f"volumes={users + 5}"], check=True,
                   stdout=subprocess.DEVNULL)
    watch = MemoryWatch([site.pid("serve"), site.pid("worker")])
    watch.start()
    people = [SiteUser(site.url, f"bench-{n:02d}") for n in range(users)]

    def start(user: SiteUser) -> tuple[str, float, str]:
        user.sign_in()
        user.register(site.registration_link)
        job = user.follow(user.start(site.sample_repo), timeout=3600)
        return job["state"], time.monotonic(), job["message"]

    def delete(user: SiteUser) -> str:
        return user.follow(user.delete(), timeout=3600)["state"]

    print(f"\n{users} researchers start the sample at once (at most {site.max_concurrent} "
          "playbook runs at a time, the rest queued in order)")
    began = time.monotonic()
    try:
        with ThreadPoolExecutor(users) as pool:
            results = list(pool.map(start, people))
        ready = [r for r in results if r[0] == "succeeded"]
        print(f"  ready: {len(ready)}/{users}; last ready after "
              f"{max((r[1] for r in ready), default=began) - began:.1f} s")
        for state, _, message in results:
            if state != "succeeded":
                print(f"  {state}: {message}")
        began = time.monotonic()
        with ThreadPoolExecutor(users) as pool:
            deleted = list(pool.map(delete, people))
        print(f"  deleted: {deleted.count('succeeded')}/{users} in "
              f"{time.monotonic() - began:.1f} s")
    finally:
        watch.done.set()
        watch.join()
        subprocess.run([*cloud, "instances=10", "cores=20", "ram=51200", "volumes=10"],
                       check=True, stdout=subprocess.DEVNULL)
    print(f"  peak memory of the app, the runner and its playbook runs: "
          f"{watch.peak / 2**20:.0f} MiB over {watch.peak_processes} processes "
          "(target < 1536 MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--skip-launch", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ssc-web-bench-") as directory:
        site = LocalSite(Path(directory), port=8089)
        site.start()
        try:
            http_figures(site, args.seconds)
            if not args.skip_launch:
                launch_figures(site, args.users)
        finally:
            site.stop()


if __name__ == "__main__":
    main()
