"""web/explain.py: each kind of failure in a researcher's words, from the failed task's event
(as ansible-runner reports it) and the build log; never a task name, a controller path or
a hint meant for the site's operators."""

import pytest

from web import explain
from web.events import JobRun

REPO = "https://github.com/binder-examples/requirements"
INTERNAL = ("Create the VM, or find it", "Resolve the ref", "/home/", "/opt/", ".yml",
            "user_vm_", "ssc_", "state=absent", "Give the VM a key", "playbook", "ansible")


def failed(task: str, action: str, msg: str | None, records=(), status="failed",
           action_of_job="start", ref="") -> str:
    """The message of a job whose task `task` (module `action`) failed with `msg`, after the
    launcher reported `records`."""
    run = JobRun("j", action_of_job)
    if records:
        run.event_handler({"event": "runner_retry", "stdout": "", "event_data": {
            "task": "Follow the VM's launcher", "task_action": "ssc.repo2docker.launch_progress",
            "res": {"records": list(records), "phase": records[-1]["phase"]}}})
    res = {"failed": True, "changed": False}
    if msg is not None:
        res["msg"] = msg
    else:
        res |= {"censored": "the output has been hidden", "_ansible_no_log": True}
    run.event_handler({"event": "runner_on_failed", "stdout": "", "event_data": {
        "task": task, "task_action": action, "res": res}})
    run.status = status
    message = explain.failure(run, action_of_job, REPO, ref)
    for internal in (*INTERNAL, task):
        assert internal not in message, (internal, message)
    return message


def lines(*texts: tuple[str, str]) -> list[dict]:
    return [{"seq": n, "phase": phase, "text": text} for n, (phase, text) in enumerate(texts)]


BUILD = lines(("fetching", "Fetching the repository"),
              ("building", "Step 1/2 : FROM buildpack-deps:jammy"),
              ("building", "Step 2/2 : RUN pip install nosuchpackage"),
              ("building", "ERROR: No matching distribution found for nosuchpackage"),
              ("failed", "repo2docker exited with 1"))


def test_the_build_failed_with_its_last_lines():
    message = failed("Follow the VM's launcher", "ssc.repo2docker.launch_progress",
                     "repo2docker failed: see /var/log/ssc-r2d/launcher.log", BUILD)
    assert message.startswith("The repository's build failed (repo2docker). Its last lines:\n")
    assert "ERROR: No matching distribution found for nosuchpackage" in message
    assert "Fix the repository" in message


def test_a_failed_launcher_is_told_even_when_another_task_fails_after_it():
    message = failed("Delete the VM this run made", "ssc.repo2docker.user_server",
                     "Timeout waiting for the server", BUILD)
    assert message.startswith("The repository's build failed")


def test_fetching_failed():
    message = failed("Follow the VM's launcher", "ssc.repo2docker.launch_progress", "failed",
                     lines(("fetching", "fatal: reference is not a tree: 0123abc"),
                           ("failed", "git fetch failed")))
    assert message.startswith("The repository could not be fetched.")
    assert "reference is not a tree" in message


def test_jupyter_did_not_start():
    message = failed("Follow the VM's launcher", "ssc.repo2docker.launch_progress", "failed",
                     lines(("building", "Successfully built 0123abc"),
                           ("starting", "exec: jupyter: not found"), ("failed", "exited")))
    assert message.startswith("The repository was built, but Jupyter did not start.")
    assert "jupyter: not found" in message


def test_a_build_that_stopped_making_progress_or_a_vm_that_never_said_anything():
    message = failed("Follow the VM's launcher", "ssc.repo2docker.launch_progress",
                     "no progress for 300 s (user_vm_progress_timeout)",
                     lines(("fetching", "Fetching"), ("building", "Step 3/9 : RUN make")))
    assert message.startswith("Building the repository's environment did not finish in time "
                              "(within 5 minutes), and was stopped. The last lines of its log:\n"
                              "Fetching\nStep 3/9 : RUN make")
    silent = failed("Follow the VM's launcher", "ssc.repo2docker.launch_progress",
                    "no word from the launcher within 90 s")
    assert silent.startswith("Your VM did not start in time (within 90 seconds).")


def test_the_launchers_message_without_a_log_only_when_it_says_nothing_internal():
    said_failed = lines(("failed", ""))
    plain = failed("Follow", "ssc.repo2docker.launch_progress", "the image could not be built",
                   said_failed)
    assert plain.endswith("Its last lines:\nthe image could not be built\n"
                          "Fix the repository, then start it again.")
    hidden = failed("Follow", "ssc.repo2docker.launch_progress", "see /opt/repo2docker/log",
                    said_failed)
    assert hidden == ("The repository's build failed (repo2docker).\n"
                      "Fix the repository, then start it again.")


def test_a_refused_request_says_why_as_the_form_does():
    msg = "ref 'abc1234' is refused: give the full 40-character commit id"
    assert failed("Check the request", "ssc.repo2docker.launch_request", msg) == msg


def test_another_vm():
    message = failed("Refuse a second VM for another repository", "ansible.builtin.assert",
                     f"alice already has a VM for {REPO} main: delete it first (state=absent), "
                     "then start this one.")
    assert message == (f"You already have a VM for {REPO} main. Delete it first, then start "
                       "this one.")


@pytest.mark.parametrize(("msg", "default"), [
    (f"ref 'mian' not found in {REPO}: no ref named refs/heads/mian or refs/tags/mian", None),
    (f"ref 'mian' not found in {REPO}: no ref named refs/heads/mian; the default branch is "
     "'main'", "main"),
    (f"ref 'mian' not found in {REPO}: its default branch is main.", "main"),
    # git_ref's wording now
    (f"no branch, tag or commit named 'mian' in {REPO}; its default branch is 'main'", "main"),
])
def test_a_branch_or_tag_that_does_not_exist(msg, default):
    message = failed("Resolve the ref to a commit", "ssc.repo2docker.git_ref", msg, ref="mian")
    assert message.startswith(f"There is no branch or tag named 'mian' in {REPO}.")
    if default:
        assert message.endswith(f"Its default branch is '{default}'.")
    else:
        assert message.endswith("Leave the ref empty to start its default branch.")


@pytest.mark.parametrize("stderr", [
    "remote: Repository not found. / fatal: repository 'x' not found",
    "fatal: could not read Username for 'https://github.com': terminal prompts disabled",
    "fatal: unable to access 'x': The requested URL returned error: 404",
])
def test_a_repository_that_is_missing_or_private(stderr):
    message = failed("Resolve the ref to a commit", "ssc.repo2docker.git_ref",
                     f"git ls-remote {REPO} failed (exit 128): {stderr}")
    assert message == (f"The repository {REPO} was not found, or it is not public. Check its "
                       "address; private repositories cannot be started here.")


def test_a_host_that_cannot_be_reached():
    message = failed("Resolve the ref to a commit", "ssc.repo2docker.git_ref",
                     f"git ls-remote {REPO} failed (exit 128): fatal: unable to access 'x': "
                     "Could not resolve host: github.com")
    assert message.startswith(f"The host of {REPO} could not be reached.")


@pytest.mark.parametrize("msg", [
    "Creating the VM ssc-r2d-alice failed: HttpException: 403: Client Error for url: "
    "http://10.0.0.1:8774/v2.1/servers, Quota exceeded for cores: Requested 2, but already "
    "used 10 of 10 cores",
    "Creating the VM ssc-r2d-alice failed: Error in creating the server. Compute service "
    "reports fault: No valid host was found. There are not enough hosts available.",
    "Quota exceeded for resources: ['floatingip'].",
])
def test_the_cloud_is_full(msg):
    message = failed("Create the VM, or find it", "ssc.repo2docker.user_server", msg)
    assert message == ("The cloud is full right now: there is no room for your VM. Please "
                       "try later.")


def test_the_cloud_could_not_create_the_vm():
    message = failed("Create the VM, or find it", "ssc.repo2docker.user_server",
                     "Creating the VM ssc-r2d-alice failed: Timeout waiting for the server")
    assert message.startswith("The cloud could not create your VM. Please try again")


def test_no_image_and_no_settings_are_the_sites_not_the_researchers():
    message = failed("Fail when there is no image to boot", "ansible.builtin.assert",
                     "No active image built with prefix ssc-repo2docker: run "
                     "playbooks/build_image.yml first.")
    assert message.startswith("This site has no image to start VMs from yet.")
    assert "build_image" not in message
    message = failed("Check the site settings", "ansible.builtin.assert",
                     "Set user_vm_cloud (or ssc_cloud), user_vm_network (or ssc_network), and "
                     "a token secret of at least 32 characters.")
    assert message == "This site is not set up to start VMs yet. Please tell the site's operators."


def test_the_vm_did_not_start_in_time():
    message = failed("Fail with what is known", "ansible.builtin.fail",
                     "Jupyter on ssc-r2d-alice (10.0.0.5) did not answer within 600 s. Give "
                     "the VM a key (user_vm_key_name, user_vm_ssh_private_key) to see the "
                     "launcher's log. The VM was deleted.",
                     lines(("building", "Step 9/9 : RUN sleep 10000")))
    assert message.startswith("Your VM did not start Jupyter in time (within 10 minutes). "
                              "The last lines of its log:\nStep 9/9 : RUN sleep 10000\n"
                              "The VM was deleted.")


def test_the_job_took_too_long():
    message = failed("Wait for Jupyter", "ansible.builtin.uri", None, status="timeout")
    assert message.startswith("Starting your VM took longer than this site allows")


def test_anything_else_plainly_and_without_what_is_internal():
    hidden = failed("Derive the VM's Jupyter token", "ansible.builtin.set_fact", None)
    assert hidden == ("Starting your VM failed. Please try again; if it fails again, tell "
                      "the site's operators.")
    assert failed("Do a thing", "ansible.builtin.command",
                  "[Errno 2] No such file or directory: '/home/site/ssc/bin/x'") == hidden
    assert failed("Delete the VM", "ssc.repo2docker.user_server", "The server is locked",
                  action_of_job="delete") == (
        "Deleting your VM failed: The server is locked. Please try again; if it fails "
        "again, tell the site's operators.")


def test_the_quoted_lines_fit_in_the_message_with_its_end():
    long = lines(*(("building", f"line {n} " + "x" * 490) for n in range(10)),
                 ("failed", "repo2docker exited with 1"))
    message = failed("Follow the VM's launcher", "ssc.repo2docker.launch_progress", "failed",
                     long)
    assert len(message) <= explain.LAST_CHARS + 200
    assert "line 9 " in message and "line 5 " not in message
    assert message.endswith("repo2docker exited with 1\nFix the repository, then start it "
                            "again.")
