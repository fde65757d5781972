"""The app and its job runner restarted in the middle of a launch, the hard way: the runner
killed outright (SIGKILL: an OOM kill, a crash, a host reboot of the service only), the app
stopped. Once they are back: the playbook the dead runner left is ended, the job is marked
interrupted, the user's VM is what the cloud says it is, and starting again resumes it."""

from __future__ import annotations

import signal
import time

from localcloud.site import SiteUser
from tests.e2e.conftest import delete_vm, find_vm
from tests.helpers import process_tree

LOGIN = "restart-researcher"


def wait_for_phase(user: SiteUser, job_id: str, *phases: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while (job := user.job(job_id))["phase"] not in phases:
        assert not job["done"] and time.monotonic() < deadline, job
        time.sleep(0.2)
    return job


def playbook_processes(site) -> set[str]:
    """The playbook runs of the site's job runner: pids, with all their descendants."""
    return process_tree(str(site.directory / "jobs"))


def test_a_launch_cut_off_by_a_restart_is_marked_and_its_vm_reported(site, cloud):
    user = SiteUser(site.url, LOGIN)
    try:
        user.sign_in()
        user.register(site.registration_link)
        # the cloud takes 20 s to build the server: the launch is cut off while it waits
        cloud.localcloud("fault", "server.build", "--action", "delay", "--delay", "20",
                         "--count", "1")
        job_id = user.start(site.sample_repo)
        wait_for_phase(user, job_id, "creating")
        deadline = time.monotonic() + 60
        while find_vm(cloud, LOGIN) is None:
            assert time.monotonic() < deadline, user.job(job_id)
            time.sleep(0.2)
        assert playbook_processes(site)

        site.stop("worker", signal.SIGKILL)
        site.stop("serve")
        left = playbook_processes(site)
        assert left, "the killed runner's playbook goes on (what the new runner must end)"

        site.start()
        assert playbook_processes(site) == set()
        assert list((site.directory / "jobs").iterdir()) == []
        job = user.job(job_id)
        assert (job["state"], job["phase"]) == ("interrupted", "failed"), job
        assert "stopped while this job ran" in job["message"]

        # the VM is reported as the cloud has it
        server = find_vm(cloud, LOGIN)
        assert server is not None
        page = user.http.get(site.url + "/", timeout=30).text
        state = "unknown" if server.status == "ACTIVE" else server.status.lower()  # build
        assert f"<dt>State</dt><dd>{state}</dd>" in page, page
        assert "did not finish" in page and "Delete this VM" in page

        # starting again reconnects to it; deleting it leaves nothing
        again = user.follow(user.start(site.sample_repo))
        assert again["state"] == "succeeded", again
        assert find_vm(cloud, LOGIN).id == server.id
        gone = user.follow(user.delete())
        assert gone["state"] == "succeeded", gone
        assert find_vm(cloud, LOGIN) is None
    finally:
        cloud.localcloud("fault", "--clear")
        delete_vm(cloud, LOGIN)
