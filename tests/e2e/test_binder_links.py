"""Binder links on a real site (issue 13), in headless Chromium: a ``/v2/git/…?urlpath=lab``
link, signed out, leads through sign-in and the confirmation page to JupyterLab; the same
link with the VM running opens it at once; a small client speaking BinderHub's event-stream
protocol follows ``/build/…`` to ``ready`` and opens the URL it gets; a cross-site request
to ``/build/…`` starts nothing. All through the site's TLS front: Jupyter at the VM's own
host name, the ``ready`` event's ``url`` that host and its ``token`` empty."""

from __future__ import annotations

import json
from urllib.parse import quote

import requests
from ansible_collections.ssc.repo2docker.plugins.module_utils.launch_request import (
    canonical_url,
)
from playwright.sync_api import expect

from tests.e2e.conftest import delete_vm, find_vm
from tests.e2e.test_browser import LAUNCH_TIMEOUT

LOGIN = "binder-researcher"


def binder_events(url: str, cookies: dict, ca: str, timeout: float = 600) -> list[dict]:
    """What a BinderHub client does: GET the build URL as an event stream, read ``data:``
    lines as JSON until ``ready`` or ``failed``; ``:`` lines are comments (the heartbeat)."""
    seen = []
    with requests.get(url, headers={"Accept": "text/event-stream"}, cookies=cookies,
                      stream=True, timeout=timeout, verify=ca) as answer:
        answer.raise_for_status()
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        for line in answer.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                seen.append(json.loads(line[5:]))
                if seen[-1]["phase"] in ("ready", "failed"):
                    break
    return seen


def test_a_binder_link_signs_in_confirms_and_opens_jupyterlab(site, cloud, page):
    user = site.user(LOGIN)  # registered beforehand, in a browser of its own
    user.sign_in()
    user.register(site.registration_link)
    spec = f"{quote(site.sample_repo, safe='')}/HEAD"
    link = f"{site.url}/v2/git/{spec}?urlpath=lab"
    try:
        page.goto(link)  # signed out: to the GitHub stand-in
        page.get_by_label("Login").fill(LOGIN)
        page.get_by_role("button", name="Authorize").click()
        expect(page).to_have_url(link)  # back at the link, escapes and all
        # the repository in its one canonical spelling (launch_request.canonical_url)
        expect(page.get_by_text(canonical_url(site.sample_repo))).to_be_visible()
        assert page.get_by_role("button", name="Launch").count() == 1
        page.get_by_role("button", name="Launch").click()
        page.wait_for_url(lambda url: "/jobs/" in url or "/lab" in url)
        page.wait_for_url(lambda url: not url.startswith(site.url) and "/lab" in url,
                          timeout=LAUNCH_TIMEOUT)
        expect(page.locator("#jp-main-dock-panel")).to_be_attached(timeout=120_000)
        jupyter = page.url

        page.goto(link)  # the VM serves it: JupyterLab at once, no job
        assert page.url.split("?")[0] == jupyter.split("?")[0]
        expect(page.locator("#jp-main-dock-panel")).to_be_attached(timeout=120_000)
        jobs = user.http.get(site.url + "/", timeout=30).text.count("/jobs/")

        # a BinderHub client on the researcher's session: ready at once for the running VM,
        cookies = {cookie["name"]: cookie["value"] for cookie in page.context.cookies(site.url)}
        build = f"{site.url}/build/git/{spec}"
        ca = str(site.ca)
        assert [event["phase"] for event in binder_events(build, cookies, ca)] == ["ready"]
        # and through a whole launch once the VM is gone
        assert user.follow(user.delete(), timeout=600)["state"] == "succeeded"
        seen = binder_events(build, cookies, ca)
        ready = seen[-1]
        phases = list(dict.fromkeys(event["phase"] for event in seen))
        assert phases[0] == "waiting" and phases[-1] == "ready" and "failed" not in phases, seen
        assert "launching" in phases, seen
        # through the site's proxy: the VM's own host name, and no Jupyter token to hand out
        # (the proxy adds it upstream); the researcher's browser opens it through the
        # proxy's handshake, as a BinderHub client's redirect does
        name = find_vm(cloud, LOGIN).name
        assert ready["url"] == f"https://{name}.vms.localhost:{site.https_port}/", ready
        assert ready["token"] == "" and "token" not in ready["url"]
        page.goto(ready["url"] + "api/status")
        assert page.url == ready["url"] + "api/status"
        assert "started" in json.loads(page.locator("body").inner_text())

        refused = requests.get(build, cookies=cookies, timeout=30, verify=ca, headers={
            "Accept": "text/event-stream", "Origin": "https://evil.example",
            "Sec-Fetch-Site": "cross-site"})
        assert refused.status_code == 403
        assert user.http.get(site.url + "/", timeout=30).text.count("/jobs/") == jobs + 2
    finally:
        delete_vm(cloud, LOGIN)
