"""The job runner reads the users' VMs from the cloud again now and then, so that a VM culled
(playbooks/cull.yml) or deleted by an operator behind the app leaves its owner's page."""

from __future__ import annotations

import subprocess
import time

from openstack.compute.v2.server import Server

from tests.e2e.conftest import account_id, delete_vm
from tests.helpers import BIN, ROOT
from web import db, vms

LOGIN = "reconcile-researcher"


def test_a_vm_deleted_behind_the_app_leaves_its_owners_page(make_site, cloud):
    site = make_site(vm_refresh_interval=1)
    user = site.user(LOGIN)
    try:
        user.sign_in()
        user.register(site.registration_link)
        assert user.follow(user.start(site.sample_repo))["state"] == "succeeded"
        time.sleep(3)  # a few readings of the cloud: the VM is there, its row stays
        assert "Open Jupyter" in user.http.get(site.url + "/", timeout=30).text

        subprocess.run([str(BIN / "ansible-playbook"), str(ROOT / "playbooks" / "user_vm.yml"),
                        "-e", f"user_id={account_id(cloud, LOGIN)}", "-e", f"user={LOGIN}",
                        "-e", "state=absent"], env=cloud.env, cwd=ROOT,
                       check=True, capture_output=True, timeout=600)
        deadline = time.monotonic() + 60
        while "You have no VM at the moment." not in (
                page := user.http.get(site.url + "/", timeout=30).text):
            assert time.monotonic() < deadline, page
            time.sleep(0.5)
        assert "Open Jupyter" not in page
    finally:
        delete_vm(cloud, LOGIN)


def test_reconciling_leaves_the_rows_jobs_are_about(tmp_path):
    """Rows of users with a job in progress, or written after the cloud was listed, are the
    jobs' to write; a VM in ERROR says so; one of another owner is not the user's."""
    conn = db.connect(tmp_path / "ssc-web.sqlite3")
    db.init(conn)
    for github_id, login in ((1, "gone"), (2, "busy"), (3, "broken"), (4, "fine"),
                             (5, "taken"), (7, "renamed"), (8, "freed")):
        db.save_vm(conn, github_id, login, name=f"ssc-r2d-{login}", state="ready")
    db.enqueue_job(conn, 2, "busy", "delete", "", "")
    servers = [Server(name="ssc-r2d-broken", status="ERROR", metadata={}),
               Server(name="ssc-r2d-fine", status="ACTIVE", metadata={"ssc_r2d_owner": "fine"}),
               Server(name="ssc-r2d-taken", status="ACTIVE",
                      metadata={"ssc_r2d_owner": "someone-else"}),
               # by account id: 7 renamed still has its VM named by its old login; 8 took
               # the login "freed" that account 9 gave up, and has none of 9's VM
               Server(name="ssc-r2d-old-name", status="ACTIVE",
                      metadata={"ssc_r2d_owner": "old-name", "ssc_r2d_owner_id": "7"}),
               Server(name="ssc-r2d-freed", status="ACTIVE",
                      metadata={"ssc_r2d_owner": "freed", "ssc_r2d_owner_id": "9"})]
    listed_at = db.now()
    db.save_vm(conn, 6, "new", name="ssc-r2d-new", state="ready")  # after the listing
    assert sorted(vms.reconcile_vms(conn, servers, listed_at)) == ["broken", "freed", "gone",
                                                                   "taken"]
    rows = {row["login"]: row["state"] for row in conn.execute("SELECT * FROM vms")}
    assert rows == {"busy": "ready", "broken": "error", "fine": "ready", "new": "ready",
                    "renamed": "ready"}
