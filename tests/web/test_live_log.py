"""The job page's live build log in headless Chromium (Debian's, driven by Playwright, as
tests/e2e does), on the cloud-free site: lines the job runner writes appear without a
reload, the progress list follows, and the page shows the outcome once the job ends; with
JavaScript off, the page refreshes itself instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.web.conftest import SAMPLE
from web import buildlog
from web.buildlog import Line

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium here")


@pytest.fixture
def browser_for(site):
    """browser_for(requests browser, javascript=True) -> a Playwright page signed in as the
    same user (its session cookie)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
        contexts = []

        def make(signed_in, javascript: bool = True):
            context = chromium.new_context(java_script_enabled=javascript)
            context.add_cookies([{"name": "ssc_session", "value": signed_in.cookie,
                                  "url": site.url}])
            contexts.append(context)
            return context.new_page()

        yield make
        for context in contexts:
            context.close()
        chromium.close()


def test_the_log_grows_live_and_the_page_shows_the_end(alice, site, browser_for):
    from playwright.sync_api import expect

    alice.post("/VM_start", {"giturl": SAMPLE, "csrf": alice.csrf()})
    [job] = site.jobs()
    site.sql("UPDATE jobs SET state = 'running', phase = 'fetching' WHERE id = ?", job["id"])
    with site.conn() as conn:
        buildlog.append(conn, job["id"], [Line(1, "fetching", "Fetching the repository")])
    page = browser_for(alice)
    page.goto(f"{site.url}/jobs/{job['id']}")
    log = page.locator("#build-log")
    # the lines so far, then the stream's own words for the phase (as BinderHub's page)
    expect(log).to_have_text("Fetching the repository\nFetching the repository...\n")
    page.evaluate("window.stayed = true")  # gone if the page reloads

    site.sql("UPDATE jobs SET phase = 'building' WHERE id = ?", job["id"])
    with site.conn() as conn:
        buildlog.append(conn, job["id"], [Line(2, "building", "Step 1/2 : FROM base"),
                                          Line(3, "building", "Step 2/2 : RUN <i>false</i>")])
    expect(log).to_contain_text("Step 2/2 : RUN <i>false</i>", timeout=10_000)
    expect(page.locator("ol.phases [aria-current=step]")).to_have_text("building")
    expect(page.locator("ol.phases li.done")).to_have_text(
        ["queued", "creating", "booting", "fetching"])
    assert page.evaluate("window.stayed") is True  # no reload: the script appended them
    assert page.locator("#build-log i").count() == 0  # text, never markup

    site.sql("UPDATE jobs SET state = 'failed', phase = 'failed', message = ? WHERE id = ?",
             "The repository's build failed (repo2docker).", job["id"])
    expect(page.get_by_role("alert")).to_contain_text("The repository's build failed",
                                                      timeout=10_000)
    expect(page.locator("#build-log")).to_contain_text("Step 2/2 : RUN <i>false</i>")


def test_without_javascript_the_page_refreshes_itself(alice, site, browser_for):
    from playwright.sync_api import expect

    alice.post("/VM_start", {"giturl": SAMPLE, "csrf": alice.csrf()})
    [job] = site.jobs()
    site.sql("UPDATE jobs SET state = 'running', phase = 'building' WHERE id = ?", job["id"])
    page = browser_for(alice, javascript=False)
    page.goto(f"{site.url}/jobs/{job['id']}")
    with site.conn() as conn:
        buildlog.append(conn, job["id"], [Line(1, "building", "Step 1/2 : FROM base")])
    expect(page.locator("#build-log")).to_have_text("Step 1/2 : FROM base", timeout=10_000)
