"""A researcher's whole visit in headless Chromium (Debian's, driven by Playwright) through the
site's TLS front (deploy/nginx-ssc-web.conf on loopback, localcloud/front.py): sign in through
the GitHub stand-in, register, start the sample repository, watch the progress reach ready,
open Jupyter at the VM's own host name (https://<vm>.vms.localhost:<port>/) through the
proxy's one-time handshake, start a kernel with Jupyter's REST API and run a cell over the
kernel's WebSocket, read 42; another signed-in user and a signed-out visitor are refused at
that host name; delete the VM; the cloud has no VM left. No ``token=`` and no Jupyter token
in any URL, redirect, page, job record or log of the app or nginx.

Chromium trusts the local CA as a person's would (tests/e2e/conftest.py's ``browser``)."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time

import requests
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.e2e.conftest import delete_vm, find_vm

LOGIN = "e2e-researcher"
OTHER = "e2e-other"
LAUNCH_TIMEOUT = 600_000  # ms: a cache hit takes seconds; this only bounds a broken run

# In the page, on the VM's origin: start a kernel (REST), send an execute_request on its
# channels WebSocket (Jupyter's messaging protocol, JSON frames), resolve with the result.
RUN_CELL = """async (code) => {
  const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1];
  const headers = {"Content-Type": "application/json"};
  if (xsrf) headers["X-XSRFToken"] = decodeURIComponent(xsrf);
  const made = await fetch("/api/kernels", {method: "POST", headers, body: "{}"});
  if (!made.ok) throw new Error(`POST /api/kernels: ${made.status} ${await made.text()}`);
  const kernel = await made.json();
  const socket = new WebSocket(`wss://${location.host}/api/kernels/${kernel.id}/channels`);
  const id = crypto.randomUUID();
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no result in 120 s")), 120000);
    socket.onerror = () => reject(new Error("the kernel's WebSocket failed"));
    socket.onopen = () => socket.send(JSON.stringify({
      header: {msg_id: id, msg_type: "execute_request", username: "e2e",
               session: crypto.randomUUID(), date: new Date().toISOString(), version: "5.3"},
      parent_header: {}, metadata: {}, channel: "shell", buffers: [],
      content: {code, silent: false, store_history: false, user_expressions: {},
                allow_stdin: false, stop_on_error: true}}));
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.parent_header.msg_id !== id) return;
      if (message.msg_type === "execute_result" || message.msg_type === "error") {
        clearTimeout(timer);
        socket.close();
        resolve({kernel: kernel.id, type: message.msg_type,
                 output: message.content.data ? message.content.data["text/plain"]
                                              : message.content.evalue});
      }
    };
  });
}"""


def phases_seen(page, done) -> list[str]:
    """The current step of the progress list as the page shows it on each of its refreshes,
    until the locator `done`, or an error, is on the page."""
    seen: list[str] = []
    finished = done.or_(page.get_by_role("alert"))
    deadline = time.monotonic() + LAUNCH_TIMEOUT / 1000
    while True:
        assert time.monotonic() < deadline, f"still not done; phases seen: {seen}"
        done_now = finished.count()  # a finished job's page no longer refreshes
        current = None
        with contextlib.suppress(PlaywrightError):  # the page was reloading
            current = page.locator("ol.phases [aria-current=step]").first.inner_text(
                timeout=2000)
        if current and (not seen or seen[-1] != current):
            seen.append(current)
        if done_now:
            return seen
        page.wait_for_timeout(300)


class Recorder:
    """Every URL the page asks for, every redirect (status and Location) it follows, and the
    HTML of each page it shows, for the no-token checks."""

    def __init__(self, page):
        self.urls: list[str] = []
        self.hops: list[tuple[int, str, str]] = []
        self.pages: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("response", self._response)

    def _response(self, response) -> None:
        if response.request.resource_type == "document":
            self.hops.append((response.status, response.url,
                              response.headers.get("location", "")))

    def keep(self, page) -> None:
        self.pages.append(page.content())

    def text(self) -> str:
        return "\n".join([*self.urls, *(" ".join(map(str, hop)) for hop in self.hops),
                          *self.pages])


def leaks(text: str, token: str) -> list[str]:
    """Where `text` holds ``token=`` or the Jupyter `token`, with 80 characters around."""
    return [text[max(0, found.start() - 80):found.end() + 80]
            for found in re.finditer(f"token=|{re.escape(token)}", text)]


def test_sign_in_register_start_open_delete(site, cloud, browser, page):
    seen = Recorder(page)
    port = site.https_port
    try:
        page.goto(site.url)
        assert site.url.startswith("https://ssc.localhost:")
        seen.keep(page)
        page.get_by_role("link", name="Sign in with GitHub").click()
        # the GitHub stand-in's authorize page
        page.get_by_label("Login").fill(LOGIN)
        page.get_by_role("button", name="Authorize").click()
        expect(page).to_have_url(site.url + "/")
        expect(page.get_by_role("alert")).to_contain_text("registration")

        page.goto(site.registration_link)
        page.get_by_role("button", name="Register").click()
        expect(page).to_have_url(site.url + "/")
        expect(page.get_by_label("Repository URL")).to_have_value(site.sample_repo)
        seen.keep(page)
        page.get_by_role("button", name="Start").click()

        expect(page).to_have_url(f"{site.url}/jobs/" + page.url.rsplit("/", 1)[-1])
        page.set_default_timeout(LAUNCH_TIMEOUT)
        phases = phases_seen(page, page.get_by_role("link", name="Open Jupyter"))
        assert not page.get_by_role("alert").count(), page.get_by_role("alert").inner_text()
        assert phases[-1] == "ready" and phases == sorted(phases, key=(
            "queued", "creating", "booting", "fetching", "building", "starting",
            "ready").index), phases
        name = find_vm(cloud, LOGIN).name  # named by the account's id, not its login
        assert re.fullmatch(r"ssc-r2d-[0-9]+", name), name
        expect(page.get_by_role("status")).to_contain_text(f"{name} is ready")
        seen.keep(page)

        # Jupyter at the VM's own host name, through the proxy's handshake
        jupyter = page.get_by_role("link", name="Open Jupyter").get_attribute("href")
        vm = f"https://{name}.vms.localhost:{port}"
        assert jupyter == vm + "/"
        first = len(seen.hops)
        opened = page.goto(jupyter)
        assert opened.status == 200 and page.url.startswith(vm + "/"), page.url
        hops = seen.hops[first:]
        assert [hop[0] for hop in hops[:3]] == [302, 303, 303], hops
        assert hops[0][2] == f"{site.url}/vm/{name}"  # no pass yet: to the app
        assert hops[1][2].startswith(f"{vm}/_ssc/pass?ticket=")  # a one-time ticket
        assert hops[2][2] == vm + "/"  # the pass is set for this host; on to Jupyter
        page.wait_for_load_state("networkidle")
        seen.keep(page)

        # a cell in a kernel, over the kernel's WebSocket through the proxy
        ran = page.evaluate(RUN_CELL, "6 * 7")
        assert ran["type"] == "execute_result" and ran["output"] == "42", ran
        listed = page.evaluate("async () => (await (await fetch('/api/kernels')).json())"
                               ".map((kernel) => kernel.id)")
        assert ran["kernel"] in listed
        with sqlite3.connect(site.directory / "ssc-web.sqlite3") as conn:
            token = conn.execute("SELECT token FROM vms WHERE name = ?", (name,)).fetchone()[0]
        assert len(token) >= 32

        # another signed-in (registered) user is refused at that host name, in their browser
        other_context = browser.new_context()
        other = other_context.new_page()
        other.goto(site.url + "/auth/login")
        other.get_by_label("Login").fill(OTHER)
        other.get_by_role("button", name="Authorize").click()
        expect(other).to_have_url(site.url + "/")
        other.goto(site.registration_link)
        other.get_by_role("button", name="Register").click()
        refused = other.goto(jupyter)
        assert refused.status == 404 and other.url == f"{site.url}/vm/{name}", other.url
        # and with requests (the CA trusted, no pass of theirs reaches the VM)
        scripted = site.user(OTHER)
        scripted.sign_in()
        answer = scripted.http.get(jupyter + "api/status", timeout=30)
        assert answer.status_code == 404 and answer.url == f"{site.url}/vm/{name}"
        other_context.close()
        # a signed-out visitor is sent to sign in, in a browser and with requests
        visitor_context = browser.new_context()
        visitor = visitor_context.new_page()
        visitor.goto(jupyter + "api/kernels")
        expect(visitor.get_by_label("Login")).to_be_visible()  # the GitHub stand-in
        assert visitor.url.startswith(site.cloud.github_base_url), visitor.url
        visitor_context.close()
        stranger = requests.Session()
        stranger.trust_env, stranger.verify = False, str(site.ca)
        away = stranger.get(jupyter + "api/kernels", allow_redirects=False, timeout=30)
        assert away.status_code == 302 and away.headers["Location"] == f"{site.url}/vm/{name}"
        assert stranger.get(jupyter + "api/kernels", timeout=30).url.startswith(
            site.cloud.github_base_url)

        page.goto(site.url)
        expect(page.get_by_role("link", name="Open Jupyter")).to_be_visible()
        page.get_by_role("button", name="Delete this VM").click()
        phases = phases_seen(page, page.get_by_role("status").filter(has_text="deleted"))
        assert not page.get_by_role("alert").count(), page.get_by_role("alert").inner_text()
        assert phases[-1] == "deleted", phases
        expect(page.get_by_role("status")).to_contain_text(f"{name} was deleted")
        assert find_vm(cloud, LOGIN) is None
        page.goto(site.url)
        expect(page.get_by_text("You have no VM at the moment.")).to_be_visible()
        seen.keep(page)

        # no token in what the browser saw, the job records, or the app's and nginx's logs
        browsed = seen.text()
        assert not leaks(browsed, token), leaks(browsed, token)
        with sqlite3.connect(site.directory / "ssc-web.sqlite3") as conn:
            records = "\n".join(conn.iterdump())
            jobs = "\n".join(map(str, conn.execute("SELECT * FROM jobs").fetchall()))
        assert "token=" not in records and token not in jobs
        logs = [site.directory / "serve.log", site.directory / "worker.log",
                *site.front.logs.iterdir()]
        assert {log.name for log in logs} >= {"ssc-web.access.log", "ssc-vms.access.log",
                                              "error.log"}
        for log in logs:
            text = log.read_text(errors="replace")
            assert "token=" not in text and token not in text, log
    finally:
        delete_vm(cloud, LOGIN)
