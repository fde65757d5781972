"""Start and delete through their confirmation pages, job pages for their owner only, the
user's VM on the start page, and what every page sends along."""

import html
import json
import re

import pytest

from tests.web.conftest import SAMPLE, forms
from web import db

LOCAL = "http://10.89.0.1:8770/git/ssc/sample-notebook.git"


@pytest.mark.parametrize("path", ["/VM_start", "/VM_run"])
def test_get_shows_a_confirmation_and_creates_nothing(alice, site, path):
    page = alice.get(path, params={"giturl": SAMPLE + "/", "ref": "v1.0"})
    assert page.status_code == 200
    form = forms(page.text)[path]
    assert form["giturl"] == SAMPLE  # as the shared rules rebuilt it
    assert form["ref"] == "v1.0"
    assert form["csrf"] == alice.csrf()
    assert site.jobs() == []


def test_get_without_giturl_offers_the_site_default(alice, site):
    page = alice.get("/VM_start")
    assert forms(page.text)["/VM_start"]["giturl"] == SAMPLE
    assert site.jobs() == []


def test_the_start_page_prefills_the_default(alice):
    form = forms(alice.get("/").text)["/VM_start"]
    assert form["giturl"] == SAMPLE and form["ref"] == ""


@pytest.mark.parametrize("path", ["/VM_start", "/VM_run"])
def test_post_queues_a_start_job(alice, site, path):
    answer = alice.post(path, {"giturl": LOCAL, "ref": "main", "csrf": alice.csrf()})
    assert answer.status_code == 303
    [job] = site.jobs()
    assert answer.headers["Location"] == f"{site.url}/jobs/{job['id']}"
    assert (job["github_id"], job["login"], job["action"], job["repo"], job["ref"],
            job["state"], job["phase"]) == (site.user_id("alice"), "alice", "start",
                                            LOCAL.removesuffix(".git"), "main", "queued",
                                            "queued")


@pytest.mark.parametrize("spelling", [
    LOCAL.removesuffix(".git"), LOCAL.removesuffix(".git") + "/", LOCAL + "/",
    "HTTP://10.89.0.1:8770/git/ssc/sample-notebook"])
def test_a_vm_for_the_repository_in_another_spelling_is_the_same(alice, site, spelling):
    with site.conn() as conn:
        db.save_vm(conn, site.user_id("alice"), "alice", name="ssc-r2d-alice", repo=LOCAL,
                   state="ready")
        conn.commit()
    page = alice.get("/VM_start", params={"giturl": spelling}).text
    assert forms(page)["/VM_start"]["giturl"] == LOCAL.removesuffix(".git")
    assert "delete it first" not in page
    other = alice.get("/VM_start", params={"giturl": "http://10.89.0.1:8770/git/ssc/other"})
    assert "delete it first to serve another" in other.text


def test_github_spellings_are_one_repository(alice, site):
    with site.conn() as conn:
        db.save_vm(conn, site.user_id("alice"), "alice", name="ssc-r2d-alice",
                   repo="https://github.com/Binder-Examples/Requirements.git", state="ready")
        conn.commit()
    page = alice.get("/VM_start", params={"giturl": SAMPLE.upper().replace("HTTPS", "https")})
    assert forms(page.text)["/VM_start"]["giturl"] == SAMPLE
    assert "delete it first" not in page.text


def test_the_default_branch_is_an_empty_ref(alice, site):
    alice.post("/VM_start", {"giturl": SAMPLE, "ref": "", "csrf": alice.csrf()})
    assert site.jobs()[0]["ref"] == ""


def test_one_job_at_a_time(alice, site):
    csrf = alice.csrf()
    assert alice.post("/VM_start", {"giturl": SAMPLE, "csrf": csrf}).status_code == 303
    [job] = site.jobs()
    again = alice.post("/VM_start", {"giturl": SAMPLE, "csrf": csrf})
    assert again.status_code == 409
    assert f"/jobs/{job['id']}" in again.text
    assert alice.post("/VM_delete", {"csrf": csrf}).status_code == 409
    assert len(site.jobs()) == 1
    page = alice.get("/").text
    assert "/VM_start" not in forms(page) and f"/jobs/{job['id']}" in page
    site.sql("UPDATE jobs SET state = 'succeeded', phase = 'ready'")
    assert alice.post("/VM_delete", {"csrf": csrf}).status_code == 303


def test_job_pages_for_the_owner(alice, site):
    alice.post("/VM_start", {"giturl": SAMPLE, "csrf": alice.csrf()})
    [job] = site.jobs()
    page = alice.get(f"/jobs/{job['id']}")
    assert page.status_code == 200
    assert '<meta http-equiv="refresh"' in page.text
    assert '<li aria-current="step">queued</li>' in page.text
    data = alice.get(f"/jobs/{job['id']}.json")
    assert data.status_code == 200 and data.headers["Content-Type"].startswith(
        "application/json")
    view = data.json()
    assert {key: view[key] for key in ("id", "action", "repo", "state", "phase", "done")} == {
        "id": job["id"], "action": "start", "repo": SAMPLE, "state": "queued",
        "phase": "queued", "done": False}
    assert view["phases"] == ["queued", "creating", "booting", "fetching", "building",
                              "starting", "ready"]
    assert view["log"] == []


def test_another_users_job_is_404(alice, bob, site):
    alice.post("/VM_start", {"giturl": SAMPLE, "csrf": alice.csrf()})
    [job] = site.jobs()
    for browser in (bob, site.browser()):
        assert browser.get(f"/jobs/{job['id']}.json").status_code == 404
    assert bob.get(f"/jobs/{job['id']}").status_code == 404
    assert site.browser().get(f"/jobs/{job['id']}").status_code == 302  # sign in first
    assert alice.get(f"/jobs/{'0' * 32}").status_code == 404
    assert alice.get(f"/jobs/{'0' * 32}.json").json()["status"] == 404
    assert alice.get("/jobs/not-an-id").status_code == 404


def test_progress_as_the_runner_reports_it(alice, site):
    alice.post("/VM_start", {"giturl": SAMPLE, "csrf": alice.csrf()})
    [job] = site.jobs()
    path = f"/jobs/{job['id']}"
    site.sql("UPDATE jobs SET state = 'running', phase = 'building', "
             "message = 'Building the image' WHERE id = ?", job["id"])
    page = alice.get(path).text
    assert '<li class="done">booting</li>' in page
    assert '<li aria-current="step">building</li>' in page
    assert "Building the image" in page

    gid = site.user_id("alice")
    with_token = "http://10.89.0.9:8888/?token=abc123"
    with site.conn() as conn:
        db.save_vm(conn, gid, "alice", name="ssc-r2d-alice", repo=SAMPLE, url=with_token,
                   state="ready")
    site.sql("UPDATE jobs SET state = 'succeeded', phase = 'ready', message = '' WHERE id = ?",
             job["id"])
    page = alice.get(path).text
    assert "http-equiv" not in page  # done: no more refreshing
    assert f'href="{html.escape(with_token)}"' in page
    assert alice.get(path + ".json").json()["jupyter_url"] == with_token
    home = alice.get("/").text
    assert f'href="{html.escape(with_token)}"' in home
    assert "/VM_delete" in forms(home)


def test_a_failed_job_shows_why_and_its_output(alice, site):
    alice.post("/VM_start", {"giturl": SAMPLE, "csrf": alice.csrf()})
    [job] = site.jobs()
    output = "TASK [user_vm : Wait for Jupyter]\nfatal: <script>alert(1)</script> {{7*7}}"
    site.sql("UPDATE jobs SET state = 'failed', phase = 'failed', message = ?, output = ? "
             "WHERE id = ?", "Jupyter did not come up in 600 s", output, job["id"])
    page = alice.get(f"/jobs/{job['id']}").text
    assert 'role="alert"' in page and "Jupyter did not come up in 600 s" in page
    assert "<script>" not in page
    assert html.escape(output, quote=False) in page.replace("&#039;", "'")
    assert "{{7*7}}" in page  # shown as text, never evaluated
    assert alice.get(f"/jobs/{job['id']}.json").json()["output"] == output


def test_a_vm_url_that_is_not_http_is_not_linked(alice, site):
    with site.conn() as conn:
        db.save_vm(conn, site.user_id("alice"), "alice", repo=SAMPLE,
                   url="javascript:alert(1)", state="ready")
    assert "javascript:" not in alice.get("/").text


def test_delete_acts_on_the_callers_own_vm_only(alice, bob, site):
    alice_id, bob_id = site.user_id("alice"), site.user_id("bob")
    with site.conn() as conn:
        db.save_vm(conn, alice_id, "alice", name="ssc-r2d-alice", repo=SAMPLE,
                   url="http://10.89.0.9:8888/?token=secret-of-alice", state="ready")
    assert "secret-of-alice" not in bob.get("/").text  # bob does not see alice's VM
    assert "no VM" in bob.get("/").text
    confirm = bob.get("/VM_delete", params={"user": "alice"})
    assert confirm.status_code == 200 and SAMPLE not in confirm.text
    answer = bob.post("/VM_delete", {"csrf": bob.csrf(), "user": "alice", "login": "alice",
                                     "github_id": str(alice_id), "name": "ssc-r2d-alice"})
    assert answer.status_code == 303
    [job] = site.jobs()
    assert (job["github_id"], job["login"], job["action"]) == (bob_id, "bob", "delete")
    assert site.sql("SELECT * FROM jobs WHERE github_id = ?", alice_id) == []


def test_delete_confirmation_then_post(alice, site):
    with site.conn() as conn:
        db.save_vm(conn, site.user_id("alice"), "alice", repo=SAMPLE, ref="main",
                   state="ready")
    page = alice.get("/VM_delete")
    assert page.status_code == 200 and SAMPLE in page.text
    assert site.jobs() == []
    answer = alice.post("/VM_delete", {"csrf": forms(page.text)["/VM_delete"]["csrf"]})
    assert answer.status_code == 303
    [job] = site.jobs()
    assert (job["action"], job["repo"], job["ref"]) == ("delete", SAMPLE, "main")
    view = alice.get(f"/jobs/{job['id']}.json").json()
    assert view["phases"] == ["queued", "deleting", "deleted"]


def test_signed_out_visitors_are_sent_to_sign_in(site):
    browser = site.browser()
    home = browser.get("/")
    assert home.status_code == 200 and 'href="/auth/login"' in home.text
    for path in ("/VM_start", "/VM_run", "/VM_delete"):
        answer = browser.get(path)
        assert answer.status_code == 302
        assert answer.headers["Location"].startswith(site.config.github_authorize_url)


def test_security_headers_on_every_answer(alice, site):
    for answer in (alice.get("/"), alice.get("/no/such/page"), alice.post("/VM_start"),
                   alice.get("/healthz"), alice.get("/VM_start", params={"giturl": "x"})):
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "same-origin"
        assert answer.headers["Cache-Control"] == "no-store"


def test_errors_are_pages_that_say_what_happened(alice):
    answer = alice.get("/no/such/page")
    assert answer.status_code == 404
    assert 'role="alert"' in answer.text and "Back to the start page" in answer.text
    assert alice.http.put(alice.site.url + "/", timeout=10).status_code == 405


def test_templates_only_escape():
    from pathlib import Path

    import web

    templates = Path(web.__file__).parent / "templates"
    for path in templates.glob("*.tpl"):
        text = path.read_text()
        assert "{{!" not in text, path
        # no inline script: only the app's own files (the CSP allows no other)
        assert not re.search(r"<script(?![^>]* src=\"/static/[a-z]+\.js\")", text), path


def test_job_json_is_plain_data(alice, site):
    alice.post("/VM_start", {"giturl": SAMPLE, "csrf": alice.csrf()})
    [job] = site.jobs()
    text = alice.get(f"/jobs/{job['id']}.json").text
    assert json.loads(text)["id"] == job["id"]
