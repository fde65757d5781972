"""playbooks/user_vm.yml and cull.yml end to end on the local cloud, real images and Jupyter."""

import json
import subprocess
import time

import pytest
import requests

from tests.helpers import BIN, LAUNCHER_CONTRACT, ROOT, new_key, process_tree, ssh

pytestmark = pytest.mark.cloud
SAMPLE = "http://10.89.0.1:8770/git/ssc/sample-notebook.git"
# GitHub account ids of the users here, by login in lower case: the VM is named by the id.
IDS = {"ada-lovelace": 1001, "grace": 1002, "hopper": 1003, "hamilton": 1004,
       "hypatia": 1005, "old-timer": 1006, "newcomer": 1007, "ada": 1008, "turing": 1009,
       "idler": 1010, "thinker": 1011, "sleeper": 1012, "keeper": 1013, "babbage": 1014,
       "lovelace": 1015, "noether": 1016, "germain": 1017}


def who(login: str, user_id: int | None = None) -> tuple[str, ...]:
    """The extra vars naming a user: their account id (IDS's unless given) and login."""
    return ("-e", f"user_id={user_id or IDS[login.lower()]}", "-e", f"user={login}")


def vm_name(login: str) -> str:
    return f"ssc-r2d-{IDS[login.lower()]}"


def playbook(cloud, name: str, *extra: str, timeout: int = 1800) -> tuple[int, dict, str]:
    """Run a playbook; (exit code, its set_stats data, its output)."""
    env = {**cloud.env, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "ANSIBLE_SHOW_CUSTOM_STATS": "true"}
    result = subprocess.run([str(BIN / "ansible-playbook"), str(ROOT / "playbooks" / name),
                             *extra], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"no JSON from {name}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.returncode, report, result.stdout


def stats(report: dict) -> dict:
    return report.get("global_custom_stats", {}) or report.get("custom_stats", {}).get(
        "_run", {})


def changed(report: dict) -> int:
    return report["stats"]["localhost"]["changed"]


def failure(report: dict) -> str:
    messages = [host.get("msg", "") for play in report["plays"] for task in play["tasks"]
                for host in task["hosts"].values() if host.get("failed")]
    return " | ".join(str(m) for m in messages)


def vm(cloud, *args: str) -> tuple[int, dict, str]:
    return playbook(cloud, "user_vm.yml", *args)


def launch(cloud, user: str, repo: str, *extra: str) -> dict:
    code, report, output = vm(cloud, *who(user), "-e", f"repo={repo}", *extra)
    assert code == 0, failure(report) or output[-4000:]
    return stats(report)["ssc_vm"]


def left_of(cloud, user: str) -> list[str]:
    """The user's VM (named by id, or by login as before), and any volume or floating IP."""
    conn = cloud.connect()
    names = {vm_name(user), f"ssc-r2d-{user.lower()}"}
    servers = [s.name for s in conn.compute.servers() if s.name in names]
    volumes = [v.id for v in conn.block_storage.volumes()]
    floating = [f.floating_ip_address for f in conn.network.ips()]
    return servers + volumes + floating


def test_launch_of_a_prebuilt_repository_is_a_cache_hit(cloud, prebuilt_image, tmp_path):
    key = new_key(tmp_path)
    conn = cloud.connect()
    conn.compute.delete_keypair("lc-operator", ignore_missing=True)  # a killed run's
    conn.compute.create_keypair(name="lc-operator", public_key=key.with_suffix(".pub")
                                .read_text())
    try:
        result = launch(cloud, "Ada-Lovelace", SAMPLE, "-e", "user_vm_key_name=lc-operator")
        assert result["image"] == prebuilt_image[1].name
        assert result["cache_hit"] is True
        assert result["name"] == vm_name("ada-lovelace") == "ssc-r2d-1001"
        metadata = conn.compute.get_server(conn.compute.find_server(result["name"]).id).metadata
        assert (metadata["ssc_r2d_owner_id"], metadata["ssc_r2d_owner_login"]) == (
            "1001", "Ada-Lovelace")
        assert "ssc_r2d_owner" not in metadata
        assert "token" not in result["url"]
        base, token = result["url"].rstrip("/"), result["token"]
        assert requests.get(f"{base}/api/status", timeout=10,
                            headers={"Authorization": f"token {token}"}).status_code == 200
        assert requests.get(f"{base}/api/status", timeout=10).status_code == 403
        state = json.loads(ssh(result["ip"], key,
                               f"sudo cat {LAUNCHER_CONTRACT['launcher_state']}"))
        assert (state["phase"], state["cache_hit"]) == ("ready", True)
        journal = ssh(result["ip"], key,
                      f"sudo journalctl -u {LAUNCHER_CONTRACT['launcher_unit']} -o cat")
        assert "Step 1/" not in journal and "Building" not in journal  # nothing was built

        code, report, _ = vm(cloud, *who("Ada-Lovelace"), "-e", f"repo={SAMPLE}")
        assert code == 0 and changed(report) == 0
        assert stats(report)["ssc_vm"]["url"] == result["url"]

        # Renamed on GitHub (same id, new login): the same VM, untouched.
        code, report, _ = vm(cloud, *who("ada-king", 1001), "-e", f"repo={SAMPLE}")
        assert code == 0 and changed(report) == 0, failure(report)
        assert stats(report)["ssc_vm"]["url"] == result["url"]

        # Whoever takes the freed login (another id) gets none of it: no VM to delete, none
        # to keep longer.
        code, report, _ = vm(cloud, *who("ada-lovelace", 2001), "-e", "state=absent")
        assert code == 0 and stats(report)["ssc_vm"]["deleted"] is False
        assert stats(report)["ssc_vm"]["name"] == "ssc-r2d-2001"
        code, report, _ = vm(cloud, *who("ada-lovelace", 2001), "-e", "state=extended")
        assert code != 0 and "no VM to keep longer" in failure(report)
        assert conn.compute.find_server(result["name"]).status == "ACTIVE"

        code, report, _ = vm(cloud, *who("ada-lovelace"), "-e",
                             "repo=http://10.89.0.1:8770/git/ssc/other.git")
        assert code != 0
        assert "delete it first" in failure(report)
    finally:
        code, report, _ = vm(cloud, *who("ada-king", 1001), "-e", "state=absent")
        conn.compute.delete_keypair("lc-operator")
    assert code == 0 and changed(report) > 0
    assert left_of(cloud, "ada-lovelace") == []
    code, report, _ = vm(cloud, *who("ada-lovelace"), "-e", "state=absent")
    assert code == 0 and changed(report) == 0


def test_every_spelling_of_the_sample_is_the_prebuilt_image_and_one_vm(cloud, prebuilt_image):
    """The image pre-built ``.../sample-notebook.git``; ``.../sample-notebook``, its trailing-
    slash form and (on a host the site names case-insensitive) an upper-case owner are the
    same repository: a cache hit, then the same VM."""
    _, image = prebuilt_image
    bare = SAMPLE.removesuffix(".git")
    assert image.properties["ssc_r2d_prebuilt_0"].startswith(bare + "@")
    conn = cloud.connect()
    try:
        result = launch(cloud, "Hopper", bare)
        assert result["cache_hit"] is True
        assert result["name"] == vm_name("hopper")

        code, report, _ = vm(cloud, *who("hopper"), "-e", f"repo={bare}/")
        assert code == 0 and changed(report) == 0, failure(report)
        assert stats(report)["ssc_vm"]["url"] == result["url"]
        assert stats(report)["ssc_vm"]["cache_hit"] is True

        code, report, _ = vm(cloud, *who("hopper"), "-e",
                             "repo=http://10.89.0.1:8770/git/SSC/Sample-Notebook.git", "-e",
                             json.dumps({"user_vm_case_insensitive_hosts": ["10.89.0.1:8770/git"]}))
        assert code == 0 and changed(report) == 0, failure(report)
        assert stats(report)["ssc_vm"]["url"] == result["url"]

        servers = [s for s in conn.compute.servers() if s.name == vm_name("hopper")]
        assert len(servers) == 1
        assert servers[0].metadata["ssc_r2d_repo"] == bare
    finally:
        vm(cloud, *who("hopper"), "-e", "state=absent")
    assert left_of(cloud, "hopper") == []


def test_a_repository_not_prebuilt_is_built_in_the_vm(cloud, prebuilt_image, tmp_path):
    source = tmp_path / "repo"
    source.mkdir()
    (source / "Dockerfile").write_text(
        (ROOT / "localcloud" / "samples" / "notebook" / "Dockerfile").read_text()
        + "RUN echo built in the VM > /tmp/built\n")
    url = cloud.localcloud("publish", "lc-tests/not-prebuilt", str(source)).strip()
    try:
        result = launch(cloud, "grace", url, "-e", json.dumps(
            {"user_vm_floating_ip_pool": "Public External IPv4 Network"}))
        assert result["cache_hit"] is False
        assert result["ip"].startswith("10.89.1.")  # the floating IP is what users reach
        assert "token" not in result["url"]
        base, token = result["url"].rstrip("/"), result["token"]
        assert requests.get(f"{base}/api/status", timeout=10,
                            headers={"Authorization": f"token {token}"}).status_code == 200
    finally:
        vm(cloud, *who("grace"), "-e", "state=absent")
    assert left_of(cloud, "grace") == []


HOSTILE = [
    ("user_id", "0"), ("user_id", "1;id"), ("user_id", "ada"), ("user_id", "{{ 1 }}"),
    ("user", "-rf"), ("user", "a;id"), ("user", "ada\n"), ("user", "{{ lookup('pipe','id') }}"),
    ("repo", "ext::sh -c touch% /tmp/pwned"), ("repo", "file:///etc/passwd"),
    ("repo", "https://user:secret@github.com/a/b"), ("repo", "https://evil.org/a/b"),
    ("repo", "https://g\u0456thub.com/a/b"), ("repo", "https://github.com/a/b?x=1"),
    ("ref", "--upload-pack=touch /tmp/pwned"), ("ref", "a..b"), ("ref", "$(id)"),
]


@pytest.mark.parametrize(("field", "value"), HOSTILE)
def test_bad_input_is_refused_before_the_cloud_hears_of_it(cloud, field, value, tmp_path):
    request = {"user_id": "1008", "user": "ada", "repo": SAMPLE, "ref": "main", field: value}
    extra = tmp_path / "extra.yml"
    # as the web app hands values to ansible-runner: data, never templates
    extra.write_text("".join(f"{k}: !unsafe {json.dumps(v)}\n" for k, v in request.items()))
    token = cloud.connect().auth_token
    before = cloud.request_counts(token)
    code, report, _ = vm(cloud, "-e", f"@{extra}")
    assert code != 0
    assert f"{field} " in failure(report) and "refused" in failure(report)
    after = cloud.request_counts(token)
    assert {k: after.get(k, 0) - before.get(k, 0) for k in ("compute", "volume", "network",
                                                           "image", "identity")} == dict.fromkeys(
        ("compute", "volume", "network", "image", "identity"), 0)


def test_a_fault_at_create_leaves_nothing_and_says_why(cloud, prebuilt_image):
    cloud.localcloud("fault", "server.create", "--action", "error", "--message",
                     "No valid host was found.", "--count", "1")
    code, report, _ = vm(cloud, *who("hopper"), "-e", f"repo={SAMPLE}")
    assert code != 0
    assert "No valid host was found" in failure(report)
    assert left_of(cloud, "hopper") == []


def test_a_run_cut_off_while_the_vm_builds_is_resumed_by_the_next(cloud, prebuilt_image):
    """A run killed while the cloud builds the VM (the job runner restarted, say) leaves a
    server in BUILD without its floating IP; the next run waits for it, gives it the IP and
    serves Jupyter with the token of the VM's own nonce."""
    pool = json.dumps({"user_vm_floating_ip_pool": "Public External IPv4 Network"})
    cloud.localcloud("fault", "server.build", "--action", "delay", "--delay", "15",
                     "--count", "1")
    cut = subprocess.Popen([str(BIN / "ansible-playbook"), str(ROOT / "playbooks/user_vm.yml"),
                            *who("hamilton"), "-e", f"repo={SAMPLE}", "-e", pool],
                           env=cloud.env, cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        conn = cloud.connect()
        deadline = time.monotonic() + 120
        while conn.compute.find_server(vm_name("hamilton")) is None:
            assert time.monotonic() < deadline and cut.poll() is None
            time.sleep(0.2)
    finally:
        # ansible-playbook, its workers (each in a session of its own) and their modules, as
        # the job runner or systemd ends them: a module left running would finish its create
        # and race the next run
        for pid in process_tree("user_id=1004"):
            subprocess.run(["kill", "-9", pid], check=False)
        cut.wait()
    try:
        assert conn.compute.find_server(vm_name("hamilton")).status == "BUILD"
        result = launch(cloud, "hamilton", SAMPLE, "-e", pool)
        assert result["created"] is False
        assert result["ip"].startswith("10.89.1.")
        assert "token" not in result["url"]
        base, token = result["url"].rstrip("/"), result["token"]
        assert requests.get(f"{base}/api/status", timeout=10,
                            headers={"Authorization": f"token {token}"}).status_code == 200
    finally:
        cloud.localcloud("fault", "--clear")
        vm(cloud, *who("hamilton"), "-e", "state=absent")
    assert left_of(cloud, "hamilton") == []


def test_a_vm_in_error_is_reported_not_waited_for(cloud, prebuilt_image):
    cloud.localcloud("fault", "server.create", "--action", "error", "--message",
                     "Exceeded maximum number of retries.", "--count", "1")
    conn = cloud.connect()
    image = prebuilt_image[1]
    server = conn.compute.create_server(
        name="ssc-r2d-hypatia", image_id=image.id, flavor_id=conn.compute.find_flavor(
            "ssc.small").id, networks=[{"uuid": conn.network.find_network("private").id}],
        metadata={"ssc_r2d_owner": "hypatia", "ssc_r2d_repo": SAMPLE, "ssc_r2d_ref": "",
                  "ssc_r2d_nonce": "n" * 32})
    try:
        conn.compute.wait_for_server(server, status="ERROR", failures=[], wait=120)
        code, report, _ = vm(cloud, *who("hypatia"), "-e", f"repo={SAMPLE}")
        assert code != 0
        assert ("The VM ssc-r2d-hypatia exists but is not usable: it is ERROR (Exceeded "
                "maximum number of retries.): delete it") in failure(report)
    finally:
        vm(cloud, *who("hypatia"), "-e", "state=absent")
    assert left_of(cloud, "hypatia") == []


def test_a_vm_named_by_login_is_its_owners_once_marked_with_their_id(cloud, prebuilt_image):
    """A VM made before VMs were named by account id (ssc-r2d-<login>, ssc_r2d_owner only) is
    found by its login, marked with the id of the first request that finds it (once), and
    from then on is that account's only: its owner renamed still has it, whoever takes the
    freed login gets none of it."""
    conn = cloud.connect()
    now = time.time()
    stamp = lambda seconds: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + seconds))  # noqa: E731
    server = conn.compute.create_server(
        name="ssc-r2d-turing", image_id=prebuilt_image[1].id,
        flavor_id=conn.compute.find_flavor("ssc.small").id,
        networks=[{"uuid": conn.network.find_network("private").id}],
        metadata={"ssc_r2d_owner": "turing", "ssc_r2d_repo": SAMPLE, "ssc_r2d_ref": "",
                  "ssc_r2d_nonce": "n" * 32, "ssc_r2d_created": stamp(0),
                  "ssc_r2d_expires": stamp(3600)})
    try:
        conn.compute.wait_for_server(server, status="ACTIVE", wait=300)
        code, report, _ = vm(cloud, *who("Turing"), "-e", "state=extended", "-e", "extension=1")
        assert code == 0, failure(report)
        assert stats(report)["ssc_vm"]["name"] == "ssc-r2d-turing"
        assert stats(report)["ssc_vm"]["extensions"] == 1
        metadata = conn.compute.get_server(server.id).metadata
        assert (metadata["ssc_r2d_owner_id"], metadata["ssc_r2d_owner_login"],
                metadata["ssc_r2d_owner"]) == ("1009", "Turing", "turing")
        code, report, _ = vm(cloud, *who("Turing"), "-e", "state=extended", "-e", "extension=1")
        assert code == 0 and changed(report) == 0, failure(report)

        # The login freed and taken by another account: none of the VM is theirs.
        code, report, _ = vm(cloud, *who("turing", 2009), "-e", "state=extended")
        assert code != 0 and "no VM to keep longer" in failure(report)
        code, report, _ = vm(cloud, *who("turing", 2009), "-e", "state=absent")
        assert code == 0 and stats(report)["ssc_vm"]["deleted"] is False
        assert conn.compute.get_server(server.id).status == "ACTIVE"

        # Its owner, renamed: still theirs.
        code, report, _ = vm(cloud, *who("alan-turing", 1009), "-e", "state=absent")
        assert code == 0, failure(report)
        assert stats(report)["ssc_vm"] == {"name": "ssc-r2d-turing", "state": "absent",
                                           "deleted": True}
    finally:
        if conn.compute.find_server(server.id, ignore_missing=True) is not None:
            conn.compute.delete_server(server.id)
            conn.compute.wait_for_delete(server, wait=300)
    assert left_of(cloud, "turing") == []


def test_a_quota_refusal_leaves_nothing_and_says_why(cloud, prebuilt_image):
    cloud.localcloud("quota", "instances=0")
    try:
        code, report, _ = vm(cloud, *who("hopper"), "-e", f"repo={SAMPLE}")
    finally:
        cloud.localcloud("quota", "instances=10")
    assert code != 0
    assert "Quota exceeded for instances" in failure(report)
    assert left_of(cloud, "hopper") == []


def test_cull_removes_an_expired_vm_and_keeps_a_fresh_one(cloud, prebuilt_image):
    launch(cloud, "old-timer", SAMPLE, "-e", "user_vm_lifetime_hours=0")
    launch(cloud, "newcomer", SAMPLE)
    try:
        code, report, _ = playbook(cloud, "cull.yml", "-e", "dry_run=true")
        assert code == 0
        assert [c["name"] for c in stats(report)["ssc_culled"]] == [vm_name("old-timer")]
        names = {s.name for s in cloud.connect().compute.servers()}
        assert {vm_name("old-timer"), vm_name("newcomer")} <= names

        code, report, _ = playbook(cloud, "cull.yml")
        assert code == 0
        culled = stats(report)["ssc_culled"]
        assert [(c["name"], c["owner_id"], c["owner"], c["reason"].split()[0])
                for c in culled] == [(vm_name("old-timer"), "1006", "old-timer", "expired")]
        names = {s.name for s in cloud.connect().compute.servers()}
        assert vm_name("old-timer") not in names and vm_name("newcomer") in names
    finally:
        for user in ("old-timer", "newcomer"):
            vm(cloud, *who(user), "-e", "state=absent")
