"""Launch feedback on the local cloud (issue 12): the launcher reports on the VM's console, the
playbook follows it (ssc.repo2docker.launch_progress) and fails with the build's own error;
Jupyter is started as repo2docker starts it whatever the image's CMD; the exact commit is
fetched, so a pull-request ref launches; a VM the controller cannot reach ends the wait and is
deleted. Real images, real repo2docker, real Jupyter."""

import json
import subprocess
import time

import pytest
import requests

from tests.helpers import BIN, ROOT
from tests.integration.test_user_vm import SAMPLE, failure, launch, left_of, vm, vm_name, who

pytestmark = pytest.mark.cloud
BASE = (ROOT / "localcloud" / "samples" / "notebook" / "Dockerfile").read_text()


def publish(cloud, tmp_path, name: str, dockerfile: str) -> str:
    source = tmp_path / name
    source.mkdir()
    (source / "Dockerfile").write_text(dockerfile)
    return cloud.localcloud("publish", f"lc-tests/{name}", str(source)).strip()


def answers(result: dict) -> int:
    return requests.get(f"{result['url'].rstrip('/')}/api/status", timeout=10,
                        headers={"Authorization": f"token {result['token']}"}).status_code


def progress_results(report: dict) -> list[dict]:
    """The results of the task that follows the launcher (what the web app reads)."""
    return [host for play in report["plays"] for task in play["tasks"]
            for host in task["hosts"].values()
            if host.get("action") == "ssc.repo2docker.launch_progress"]


def test_a_failing_build_fails_the_job_with_its_own_error(cloud, prebuilt_image, tmp_path):
    url = publish(cloud, tmp_path, "broken-build", BASE + (
        'RUN echo "frobnicate: the step that cannot work" >&2 && exit 3\n'))
    try:
        code, report, output = vm(cloud, *who("babbage"), "-e", f"repo={url}")
        assert code != 0, output[-3000:]
        message = failure(report)
        assert "frobnicate: the step that cannot work" in message
        assert "Your environment could not be started" in message
        assert "The VM was deleted." in message
        assert "user_vm_" not in message and "ssh" not in message.lower()
        (result,) = progress_results(report)
        assert result["phase"] == "failed"
        seqs = [r["seq"] for r in result["records"]]
        assert seqs == sorted(seqs) and seqs[0] == 1
        assert {r["phase"] for r in result["records"]} >= {"fetching", "building", "failed"}
        assert all(set(r) == {"seq", "phase", "text"} for r in result["records"])
    finally:
        vm(cloud, *who("babbage"), "-e", "state=absent")
    assert left_of(cloud, "babbage") == []


def test_a_dockerfile_whose_cmd_is_not_jupyter_serves_jupyter(cloud, prebuilt_image, tmp_path):
    url = publish(cloud, tmp_path, "python-cmd", BASE + 'CMD ["python3"]\n')
    try:
        result = launch(cloud, "lovelace", url)
        assert result["cache_hit"] is False
        assert answers(result) == 200
    finally:
        vm(cloud, *who("lovelace"), "-e", "state=absent")
    assert left_of(cloud, "lovelace") == []


def test_a_jupyter_that_exits_as_it_starts_fails_at_once_with_its_output(
        cloud, prebuilt_image, tmp_path):
    # a broken entrypoint (or `start` script): the container exits every time Docker starts it
    url = publish(cloud, tmp_path, "exits-at-start", BASE + (
        'ENTRYPOINT ["/bin/sh", "-c", "echo \'start: no config.yml found\' >&2; exit 1", "--"]\n'))
    try:
        code, report, output = vm(cloud, *who("germain"), "-e", f"repo={url}")
        assert code != 0, output[-3000:]
        message = failure(report)
        assert "start: no config.yml found" in message
        assert "exited as it started" in message  # not after the launcher's 300 s wait
        assert "The VM was deleted." in message
    finally:
        vm(cloud, *who("germain"), "-e", "state=absent")
    assert left_of(cloud, "germain") == []


def test_a_commit_only_under_a_pull_request_ref_launches(cloud, prebuilt_image, tmp_path):
    url = publish(cloud, tmp_path, "pulled", BASE)
    bare = cloud.var_dir / "git" / "lc-tests" / "pulled.git"
    work = tmp_path / "contributor"
    git = ["git", "-c", "user.name=Contributor", "-c", "user.email=c@example.org"]
    subprocess.run([*git, "clone", "--quiet", str(bare), str(work)], check=True)
    (work / "CONTRIBUTED").write_text("from a pull request\n")
    subprocess.run([*git, "-C", str(work), "add", "CONTRIBUTED"], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "--quiet", "-m", "A contribution"],
                   check=True)
    commit = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    # as GitHub keeps a pull request's head: a ref outside branches and tags
    subprocess.run(["git", "-C", str(work), "push", "--quiet", str(bare),
                    "HEAD:refs/pull/1/head"], check=True)
    subprocess.run(["git", "--git-dir", str(bare), "update-server-info"], check=True)
    try:
        result = launch(cloud, "turing", url, "-e", "ref=pull/1/head")
        assert result["commit"] == commit
        assert answers(result) == 200
    finally:
        vm(cloud, *who("turing"), "-e", "state=absent")
    assert left_of(cloud, "turing") == []


def test_a_vm_the_controller_cannot_reach_ends_the_wait_and_is_deleted(cloud, prebuilt_image):
    command = [str(BIN / "ansible-playbook"), str(ROOT / "playbooks" / "user_vm.yml"),
               *who("noether"), "-e", f"repo={SAMPLE}", "-e", "user_vm_ready_timeout=60"]
    env = {**cloud.env, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    run = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        conn = cloud.connect()
        dropped, why = False, "no server"
        while not dropped and run.poll() is None:
            server = conn.compute.find_server(vm_name("noether"))
            if server is not None:
                # packets from outside to Jupyter's port vanish, as behind a broken network
                rule = subprocess.run(
                    ["docker", "exec", f"localcloud-{server.id}", "iptables", "-t", "raw", "-I",
                     "PREROUTING", "-i", "eth0", "-p", "tcp", "--dport", "8888", "-j", "DROP"],
                    capture_output=True, text=True)
                dropped, why = rule.returncode == 0, rule.stderr
            time.sleep(0.2)
        assert dropped, why
        output, _ = run.communicate(timeout=1800)
        assert run.returncode != 0
        message = failure(json.loads(output))
        assert "Jupyter did not answer within 60 seconds" in message
        assert "The VM was deleted." in message
    finally:
        if run.poll() is None:
            run.kill()
        vm(cloud, *who("noether"), "-e", "state=absent")
    assert left_of(cloud, "noether") == []
