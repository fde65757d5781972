"""A researcher's whole visit in headless Chromium (Debian's, driven by Playwright): sign in
through the GitHub stand-in, register, start the sample repository, watch the progress reach
ready, open Jupyter, delete the VM; the cloud has no VM left."""

from __future__ import annotations

import contextlib
import re
import time

import pytest
import requests
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

from tests.e2e.conftest import delete_vm, find_vm

CHROMIUM = "/usr/bin/chromium"
# The flags this machine needs (no sandbox as root; no calls home on a closed network).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
LOGIN = "e2e-researcher"
LAUNCH_TIMEOUT = 600_000  # ms: a cache hit takes seconds; this only bounds a broken run


@pytest.fixture
def page(tmp_path):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        context = browser.new_context()
        yield context.new_page()
        context.close()
        browser.close()


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


def test_sign_in_register_start_open_delete(site, cloud, page):
    try:
        page.goto(site.url)
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

        jupyter = page.get_by_role("link", name="Open Jupyter").get_attribute("href")
        assert "token=" in jupyter
        opened = page.goto(jupyter)
        assert opened.status == 200
        assert requests.get(jupyter, timeout=30).status_code == 200
        assert find_vm(cloud, LOGIN).status == "ACTIVE"

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
        # and the token went nowhere it should not: not into the job's output or the logs
        token = jupyter.split("token=")[1]
        for log in ("serve", "worker"):
            assert token not in (site.directory / f"{log}.log").read_text()
    finally:
        delete_vm(cloud, LOGIN)
