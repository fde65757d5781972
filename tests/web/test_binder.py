"""BinderHub's interface (web/binder.py): /v2 links through sign-in to a confirmation page
that a GET never gets past, straight to a VM that serves the link's repository, the badges,
the link and badge of a repository, and the /build event stream: same-site only, BinderHub's
phases and fields, no token in a URL. The job runner is not running: tests play its part by
writing the database."""

from __future__ import annotations

import json
import threading
import time
import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest
import requests

from tests.web.conftest import REGISTRATION_SECRET, SAMPLE, Site, forms
from tests.web.test_proxy import DOMAIN, TOKEN, at_vm
from web import db

SPEC = f"{quote(SAMPLE, safe='')}/HEAD"
LINK = f"/v2/git/{SPEC}?urlpath=lab"
SVG = "{http://www.w3.org/2000/svg}svg"


def ready_vm(site: Site, login: str, repo: str = SAMPLE, ref: str = "") -> str:
    name = f"ssc-r2d-{login}"
    with site.conn() as conn:
        db.save_vm(conn, site.user_id(login), login, name=name, repo=repo, ref=ref,
                   url="http://10.89.0.9:8888/", state="ready", address="10.89.0.9",
                   token=TOKEN)
    return name


def events(answer: requests.Response) -> list[dict]:
    """The data of each event of an event stream, in order (comments skipped)."""
    found = []
    for block in answer.text.split("\n\n"):
        data = [line[5:].strip() for line in block.splitlines() if line.startswith("data:")]
        if data:
            found.append(json.loads("\n".join(data)))
    return found


@pytest.mark.parametrize("name", ["badge.svg", "badge_logo.svg"])
def test_badges_are_svg(site, name):
    answer = requests.get(f"{site.url}/{name}", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "image/svg+xml"
    root = ET.fromstring(answer.content)  # noqa: S314
    assert root.tag == SVG and int(root.get("width")) > 0 and int(root.get("height")) > 0


def test_a_link_signed_out_leads_through_sign_in_back_to_the_confirmation(site):
    browser = site.browser()
    back = browser.sign_in("alice", path=LINK)
    assert back == site.url + LINK  # the escapes kept: the URL and the ref told apart
    page = browser.get(LINK)
    assert page.status_code == 200, page.text
    assert SAMPLE in page.text and "the default branch" in page.text and "/lab" in page.text
    form = forms(page.text)[LINK]
    assert form["csrf"] and site.jobs() == []  # a GET started nothing


def test_a_gist_link_leads_to_the_confirmation_of_that_gist(make_site):
    site = make_site(allowed_logins=("alice",),
                     allowed_hosts=("github.com", "gist.github.com"))
    browser = site.browser()
    browser.sign_in("alice")
    link = "/v2/gist/Ada/4f2c9e/master?filepath=analysis.ipynb"
    page = browser.get(link)
    assert page.status_code == 200, page.text
    # the canonical spelling; master is the gist's latest revision, as on BinderHub
    assert "https://gist.github.com/ada/4f2c9e" in page.text
    assert "the default branch" in page.text and "/tree/analysis.ipynb" in page.text
    assert forms(page.text)[link]["csrf"] and site.jobs() == []
    elsewhere = make_site(allowed_logins=("alice",), allowed_hosts=("github.com",)).browser()
    elsewhere.sign_in("alice")
    refused = elsewhere.get("/v2/gist/ada/4f2c9e")
    assert refused.status_code == 400 and "gist.github.com" in refused.text


def test_a_link_opened_before_registering_is_where_the_registration_leads(site):
    browser = site.browser()
    browser.sign_in("newbie", path=LINK)
    refused = browser.get(LINK)
    assert refused.status_code == 403 and "not allowed" in refused.text
    action = f"/register/{REGISTRATION_SECRET}"
    answer = browser.post(action, {"csrf": browser.csrf()})
    assert answer.status_code == 303 and answer.headers["Location"] == site.url + LINK
    page = browser.get(LINK)
    assert page.status_code == 200 and forms(page.text)[LINK]["csrf"]
    # once only: a later registration elsewhere leads to the start page
    other = site.browser()
    other.sign_in("newbie2")
    answer = other.post(action, {"csrf": other.csrf()})
    assert answer.headers["Location"] == site.url + "/"


def test_confirming_queues_the_start_and_the_progress_opens_jupyter_at_the_path(alice, site):
    form = forms(alice.get(LINK).text)[LINK]
    queued = alice.post(LINK, form)
    assert queued.status_code == 303, queued.text
    [job] = site.jobs()
    assert (job["action"], job["repo"], job["ref"]) == ("start", SAMPLE, "")
    progress = queued.headers["Location"]
    assert progress == f"{site.url}/jobs/{job['id']}/binder?urlpath=%2Flab"
    page = alice.get(progress.removeprefix(site.url))
    assert page.status_code == 200 and "queued" in page.text
    ready_vm(site, "alice")
    site.sql("UPDATE jobs SET state = 'succeeded', phase = 'ready' WHERE id = ?", job["id"])
    opened = alice.get(progress.removeprefix(site.url))
    assert opened.status_code == 303
    assert opened.headers["Location"] == f"http://10.89.0.9:8888/lab?token={TOKEN}"


def test_a_link_whose_start_is_under_way_leads_to_its_progress(alice, site):
    with site.conn() as conn:
        job_id = db.enqueue_job(conn, site.user_id("alice"), "alice", "start", SAMPLE, "")
    answer = alice.get(LINK)
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"{site.url}/jobs/{job_id}/binder?urlpath=%2Flab"
    assert len(site.jobs()) == 1


def test_without_csrf_or_from_another_site_nothing_starts(alice, site):
    form = forms(alice.get(LINK).text)[LINK]
    assert alice.post(LINK, {}).status_code == 403
    assert alice.post(LINK, form, headers={"Origin": "https://evil.example"}).status_code == 403
    assert site.jobs() == []


def test_a_vm_serving_the_repository_opens_at_once(alice, site):
    ready_vm(site, "alice")
    opened = alice.get(LINK)
    assert opened.status_code == 303
    assert opened.headers["Location"] == f"http://10.89.0.9:8888/lab?token={TOKEN}"
    assert site.jobs() == []


def test_through_the_proxy_the_vm_opens_at_the_path_without_a_token(make_site):
    site = make_site(allowed_logins=("alice",), vms_domain=DOMAIN, auth_cache_seconds=0)
    alice = site.browser()
    alice.sign_in("alice")
    name = ready_vm(site, "alice")
    opened = alice.get("/v2/gh/binder-examples/requirements/HEAD?labpath=intro.ipynb")
    assert opened.status_code == 303
    assert opened.headers["Location"] == f"{site.url}/vm/{name}?path=%2Fdoc%2Ftree%2Fintro.ipynb"
    to_vm = alice.get(opened.headers["Location"].removeprefix(site.url))
    assert to_vm.status_code == 303 and TOKEN not in to_vm.headers["Location"]
    pass_path = to_vm.headers["Location"].split(f".{DOMAIN}", 1)[1].replace("/_ssc/", "/proxy/")
    taken = at_vm(site, name, pass_path)
    assert taken.status_code == 303
    assert taken.headers["Location"] == f"http://{name}.{DOMAIN}/doc/tree/intro.ipynb"
    hostile = alice.get(f"/vm/{name}?path=%2F%2Fevil.example%2F")
    assert hostile.status_code == 400


def test_a_vm_serving_another_repository_is_named_and_replacing_offered(alice, site):
    ready_vm(site, "alice", repo="https://github.com/binder-examples/conda")
    page = alice.get(LINK)
    assert page.status_code == 200
    assert "binder-examples/conda" in page.text and "replace" in page.text
    assert "/VM_delete" in forms(page.text) and LINK not in forms(page.text)
    assert site.jobs() == []


@pytest.mark.parametrize("link", [
    "/v2/gh/../../etc/HEAD",
    "/v2/gh/owner/repo/main%0Aecho",
    "/v2/gl/group%2F..%2Fproject/main",
    f"/v2/git/{quote('https://evil.example.com/a/b', safe='')}/HEAD",
    f"/v2/git/{quote('https://github.com/a/b', safe='')}/main%0D%0Ax",
    f"/v2/git/{quote('file:///etc/passwd', safe='')}/HEAD",
    "/v2/zenodo/10.5281/zenodo.1",
    f"/v2/git/{SPEC}/..%2F..%2Fx?urlpath=lab",
    f"/v2/git/{SPEC}?urlpath=lab%2F..%2F..%2Fx",
    f"/v2/git/{SPEC}?urlpath=lab%0Ax",
])
def test_hostile_links_are_refused_with_no_job(alice, site, link):
    csrf = alice.csrf()
    for answer in (alice.get(link), alice.post(link, {"csrf": csrf})):
        assert answer.status_code in (400, 404), (link, answer.status_code)
    assert site.jobs() == []


def test_the_link_page_shows_the_launch_link_and_the_badge(alice, site):
    page = alice.get("/binder/link", params={"giturl": SAMPLE, "urlpath": "lab"})
    assert page.status_code == 200
    link = f"{site.url}/v2/git/{SPEC}?urlpath=lab"
    assert f'value="{link}"' in page.text
    assert f"[![Binder]({site.url}/badge_logo.svg)]({link})" in page.text
    assert alice.get("/binder/link", params={"giturl": "https://evil.example/a/b"}
                     ).status_code == 400
    assert 'action="/binder/link"' in alice.get("/").text


# --- the event stream ----------------------------------------------------------------------

STREAM = {"Accept": "text/event-stream"}


def test_a_cross_site_stream_starts_nothing(alice, site):
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site"}):
        answer = alice.get(f"/build/git/{SPEC}", headers={**STREAM, **headers})
        assert answer.status_code == 403
    assert site.jobs() == []


def test_a_stream_needs_sign_in_and_an_event_stream_accept(site, alice):
    assert site.browser().get(f"/build/git/{SPEC}", headers=STREAM).status_code == 403
    assert alice.get(f"/build/git/{SPEC}").status_code == 400
    assert site.jobs() == []


def test_a_refused_spec_fails_in_the_stream_with_no_job(alice, site):
    answer = alice.get(f"/build/git/{quote(SAMPLE, safe='')}/main%20x", headers=STREAM)
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    [failed] = events(answer)
    assert failed["phase"] == "failed" and "ref" in failed["message"]
    assert site.jobs() == []


def test_the_stream_follows_the_job_to_ready(alice, site):
    """The job runner's part played by a thread that moves the job through its phases."""
    seen_waiting = threading.Event()

    def runner():
        assert seen_waiting.wait(10)  # the stream's first event came before the job moved
        [job] = site.jobs()
        log = {"fetching": [(1, "fetching", "Fetching the repository")],
               "building": [(2, "building", "Step 1/3 : FROM notebook-base")],
               "starting": [(3, "starting", "Starting Jupyter"), (4, "ready", "Jupyter is up")]}
        for phase in ("creating", "booting", "fetching", "building", "starting"):
            site.sql("UPDATE jobs SET state = 'running', phase = ? WHERE id = ?", phase,
                     job["id"])
            for seq, record_phase, text in log.get(phase, []):  # as web/buildlog.py keeps them
                site.sql("INSERT INTO job_log (job_id, seq, phase, text) VALUES (?, ?, ?, ?)",
                         job["id"], seq, record_phase, text)
            time.sleep(1.2)
        ready_vm(site, "alice")
        site.sql("UPDATE jobs SET state = 'succeeded', phase = 'ready' WHERE id = ?", job["id"])

    thread = threading.Thread(target=runner)
    thread.start()
    with alice.http.get(f"{site.url}/build/git/{SPEC}", stream=True, timeout=30,
                        headers={**STREAM, "Sec-Fetch-Site": "same-origin",
                                 "Origin": site.url}) as answer:
        assert answer.status_code == 200
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        lines = []
        for line in answer.iter_lines(decode_unicode=True):
            lines.append(line)
            if '"waiting"' in line:
                seen_waiting.set()
    thread.join()
    assert lines[0] == ":heartbeat"
    seen = [json.loads(line[5:]) for line in lines if line.startswith("data:")]
    phases = [item["phase"] for item in seen]
    assert phases[-1] == "ready" and "failed" not in phases
    assert [p for p in dict.fromkeys(phases)] == ["waiting", "fetching", "building",
                                                  "launching", "ready"]
    # the build log's lines, the launcher's own "ready" among them, do not end the stream
    assert {"phase": "building", "message": "Step 1/3 : FROM notebook-base\n"} in seen
    assert {"phase": "launching", "message": "Jupyter is up\n"} in seen
    assert phases.count("ready") == 1
    ready = seen[-1]
    assert ready["url"] == "http://10.89.0.9:8888/" and ready["token"] == TOKEN
    assert "token" not in ready["url"] and TOKEN not in ready["message"]
    # the same link again: the VM serves it, ready at once and no second job
    again = events(alice.get(f"/build/git/{SPEC}", headers=STREAM))
    assert [item["phase"] for item in again] == ["ready"]
    assert len(site.jobs()) == 1


def test_through_the_proxy_ready_has_the_vms_host_and_no_token(make_site):
    site = make_site(allowed_logins=("alice",), vms_domain=DOMAIN, auth_cache_seconds=0)
    alice = site.browser()
    alice.sign_in("alice")
    name = ready_vm(site, "alice")
    [ready] = events(alice.get("/build/gh/binder-examples/requirements/HEAD", headers=STREAM))
    assert ready == {"phase": "ready", "message": f"server running at http://{name}.{DOMAIN}/\n",
                     "url": f"http://{name}.{DOMAIN}/", "token": "", "repo_url": SAMPLE,
                     "binder_request": "v2/gh/binder-examples/requirements/HEAD",
                     "binder_launch_host": site.url + "/"}


def test_a_failed_job_ends_the_stream_with_its_message(alice, site):
    with site.conn() as conn:
        job_id = db.enqueue_job(conn, site.user_id("alice"), "alice", "start", SAMPLE, "")
    site.sql("UPDATE jobs SET state = 'failed', phase = 'failed', message = 'no room' "
             "WHERE id = ?", job_id)
    # a finished job is not followed: a new one is queued, which the test fails at once
    def fail_next():
        deadline = time.monotonic() + 10
        while len(site.jobs()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        site.sql("UPDATE jobs SET state = 'failed', phase = 'failed', message = 'Build failed' "
                 "WHERE id = ?", site.jobs()[-1]["id"])

    thread = threading.Thread(target=fail_next)
    thread.start()
    seen = events(alice.get(f"/build/git/{SPEC}", headers=STREAM))
    thread.join()
    assert seen[-1] == {"phase": "failed", "message": "Build failed\n"}
