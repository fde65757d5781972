"""The researcher's page shows when their VM expires, and "keep it" moves the expiry on the
VM itself (issue 15), through real `ssc-web serve` and `ssc-web worker` processes."""

from __future__ import annotations

from tests.e2e.conftest import delete_vm, find_vm
from web.lifetime import shown

LOGIN = "keep-it-researcher"


def metadata(cloud) -> dict:
    conn = cloud.connect()
    server = find_vm(cloud, LOGIN)
    assert server is not None and server.name.removeprefix("ssc-r2d-").isdigit()
    return dict(conn.compute.get_server(server.id).metadata or {})


def test_the_page_shows_the_expiry_and_keep_it_moves_it(site, cloud):
    user = site.user(LOGIN)
    try:
        user.sign_in()
        user.register(site.registration_link)
        assert user.follow(user.start(site.sample_repo))["state"] == "succeeded"
        before = metadata(cloud)["ssc_r2d_expires"]
        page = user.http.get(site.url + "/", timeout=30).text
        assert f"{shown(before)} (in " in page and 'action="/VM_extend"' in page

        job = user.follow(user.keep(), timeout=600)
        assert (job["action"], job["state"], job["phase"]) == ("extend", "succeeded",
                                                               "extended"), job
        kept = metadata(cloud)
        after = kept["ssc_r2d_expires"]
        assert after > before and kept["ssc_r2d_extensions"] == "1"
        assert job["message"].startswith(f"Your VM is kept until {shown(after)}.")
        assert "task" not in job["message"].lower()
        page = user.http.get(site.url + "/", timeout=30).text
        assert f"{shown(after)} (in " in page and f"{shown(before)} (in " not in page
        assert "Open Jupyter" in page  # the VM itself is untouched
    finally:
        delete_vm(cloud, LOGIN)
