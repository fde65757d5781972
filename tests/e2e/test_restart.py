"""The app and its job runner restarted in the middle of a launch, the hard way: the runner
killed outright (SIGKILL: an OOM kill, a crash, a host reboot of the service only), the app
stopped. Once they are back: the playbook the dead runner left is ended, the job is marked
interrupted, the user's VM is what the cloud says it is, and starting again resumes it.

The launch makes the boot volume first, then the server (ssc.repo2docker.user_server): the
runner may die while Cinder still makes the volume (no server yet) or once the server is
building. Either way starting again finishes the launch, on the same server or from the
volume left behind, and deleting leaves nothing."""

from __future__ import annotations

import signal
import time

from localcloud.site import SiteUser
from tests.e2e.conftest import delete_vm, find_vm, vm_name_of
from tests.helpers import BOOT_VOLUME, process_tree

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


def boot_volumes(cloud) -> list[str]:
    """Ids of the volumes marked as the VM's boot volume (ssc.repo2docker.user_server makes
    the boot volume before the server), except those being deleted."""
    return [v.id for v in cloud.connect().block_storage.volumes(details=True)
            if (v.metadata or {}).get(BOOT_VOLUME["BOOT_VOLUME_OF"]) == vm_name_of(cloud, LOGIN)
            and v.status != "deleting"]


def test_a_launch_cut_off_by_a_restart_is_marked_and_its_vm_reported(site, cloud):
    user = site.user(LOGIN)
    try:
        user.sign_in()
        user.register(site.registration_link)
        # the cloud takes 20 s to build the server: the launch is cut off while it waits
        cloud.localcloud("fault", "server.build", "--action", "delay", "--delay", "20",
                         "--count", "1")
        job_id = user.start(site.sample_repo)
        wait_for_phase(user, job_id, "creating")
        deadline = time.monotonic() + 60
        while not boot_volumes(cloud) and find_vm(cloud, LOGIN) is None:
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
        page = user.http.get(site.url + "/", timeout=30).text
        if server is not None:  # cut off once the server was made
            state = "unknown" if server.status == "ACTIVE" else server.status.lower()  # build
            assert f"<dt>State</dt><dd>{state}</dd>" in page, page
            assert "did not finish" in page and "Delete this VM" in page
        else:  # cut off while the boot volume was made: no VM yet, the volume left
            assert "Delete this VM" not in page, page
            left = boot_volumes(cloud)
            assert len(left) == 1, left

        # starting again reconnects to the server, or boots one from the volume left
        again = user.follow(user.start(site.sample_repo))
        assert again["state"] == "succeeded", again
        now = find_vm(cloud, LOGIN)
        if server is not None:
            assert now.id == server.id
        else:
            assert [v["id"] for v in now.attached_volumes] == left
        # deleting it leaves nothing
        gone = user.follow(user.delete())
        assert gone["state"] == "succeeded", gone
        assert find_vm(cloud, LOGIN) is None
        assert boot_volumes(cloud) == []
    finally:
        cloud.localcloud("fault", "--clear")
        delete_vm(cloud, LOGIN)
