"""playbooks/cull.yml and keeping a VM longer (user_vm.yml state=extended) on the local cloud,
with real VMs and real Jupyter: a VM in use is never culled, whatever its last_activity says;
a VM whose Jupyter does not answer is counted unreachable, not idle; a VM idle past the limit
goes with its volume; expiry is a hard limit, which an extension moves."""

import base64
import json
import os
import socket
import struct
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import requests

from tests.integration.test_user_vm import (
    SAMPLE,
    changed,
    failure,
    launch,
    playbook,
    stats,
    vm,
    vm_name,
    who,
)

pytestmark = pytest.mark.cloud
QUICK = ("-e", "user_vm_cull_probe_timeout=3")
IDLE_SOON = ("-e", "user_vm_idle_hours=0.001")  # 3.6 seconds
USERS = ("idler", "thinker", "sleeper", "keeper")
# Their VMs, named by their account ids.
IDLER, THINKER, SLEEPER, KEEPER = (vm_name(user) for user in USERS)


def cull(cloud, *extra: str) -> dict:
    """One cull round; its set_stats data, with `ssc_cull` as {name: decision}."""
    code, report, output = playbook(cloud, "cull.yml", *QUICK, *extra)
    assert code == 0, failure(report) or output[-4000:]
    data = stats(report)
    return {**data, "ssc_cull": {d["name"]: d for d in data["ssc_cull"]}}


def api(result: dict) -> tuple[str, dict]:
    """A launched VM's Jupyter: its base URL and the header with its token (published apart
    from the URL, which never holds it)."""
    return result["url"].rstrip("/"), {"Authorization": f"token {result['token']}"}


def kernels(result: dict) -> list[dict]:
    base, headers = api(result)
    return requests.get(f"{base}/api/kernels?no_track_activity=1", headers=headers,
                        timeout=10).json()


def start_computing(result: dict, code: str) -> None:
    """Start a kernel through Jupyter's REST API and have it run `code`, sent over the
    kernel's websocket in Jupyter's JSON protocol as a notebook page does; hang up once the
    kernel is busy, as a researcher closing the page does. Kernels go on computing."""
    base, headers = api(result)
    kernel = requests.post(f"{base}/api/kernels", headers=headers, json={"name": "python3"},
                           timeout=60).json()
    address = urlsplit(base)
    with socket.create_connection((address.hostname, address.port), timeout=60) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /api/kernels/{kernel['id']}/channels HTTP/1.1\r\n"
                      f"Host: {address.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"Authorization: {headers['Authorization']}\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 101"), answer[:200]
        session = uuid.uuid4().hex
        message = {
            "channel": "shell", "parent_header": {}, "metadata": {}, "buffers": [],
            "header": {"msg_id": uuid.uuid4().hex, "msg_type": "execute_request",
                       "username": "tests", "session": session, "version": "5.3",
                       "date": datetime.now(UTC).isoformat()},
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }
        sock.sendall(websocket_frame(json.dumps(message).encode()))
        deadline = time.monotonic() + 120
        while not any(k["id"] == kernel["id"] and k["execution_state"] == "busy"
                      for k in kernels(result)):
            assert time.monotonic() < deadline, kernels(result)
            time.sleep(0.5)


def websocket_frame(payload: bytes) -> bytes:
    """One masked text frame (RFC 6455, section 5), as a client sends it."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x81, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def jupyter_container(cloud, name: str, action: str) -> None:
    """`docker pause` or `unpause` the Jupyter container inside the VM `name` (a container of
    the local cloud's, labelled with the server's id)."""
    server_id = cloud.connect().compute.find_server(name).id
    machine = subprocess.run(["docker", "ps", "-q", "--filter",
                              f"label=io.localcloud.server={server_id}"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert len(machine) == 1, machine
    subprocess.run(["docker", "exec", machine[0], "docker", action, "repo2docker-jupyter"],
                   check=True, capture_output=True, timeout=60)


def metadata(cloud, name: str) -> dict:
    conn = cloud.connect()
    return dict(conn.compute.get_server(conn.compute.find_server(name).id).metadata)


def volumes_of(cloud, name: str) -> list[str]:
    conn = cloud.connect()
    server = conn.compute.get_server(conn.compute.find_server(name).id)
    return [volume["id"] for volume in server.attached_volumes or []]


def servers(cloud) -> set[str]:
    return {server.name for server in cloud.connect().compute.servers()}


@pytest.fixture(scope="module")
def vms(cloud, prebuilt_image):
    """Three VMs serving the sample: {user: its ssc_vm}. All four users' VMs are deleted
    afterwards."""
    try:
        yield {user: launch(cloud, user, SAMPLE) for user in ("idler", "thinker", "sleeper")}
    finally:
        for user in USERS:
            vm(cloud, *who(user), "-e", "state=absent")


def test_a_round_keeps_vms_in_use_or_unreachable_and_deletes_the_idle(cloud, vms):
    start_computing(vms["thinker"], "import time; time.sleep(3600)")
    jupyter_container(cloud, SLEEPER, "pause")
    idler_volumes = volumes_of(cloud, IDLER)
    assert idler_volumes
    time.sleep(4)  # every VM's last activity is now past the 3.6 s idle limit

    dry = cull(cloud, *IDLE_SOON, "-e", "dry_run=true")
    reasons = {name: (d["decision"], d["reason"]) for name, d in dry["ssc_cull"].items()}
    assert reasons[IDLER][0] == "delete"
    assert reasons[IDLER][1].startswith("idle since ")
    assert reasons[THINKER] == ("keep", "busy kernel")
    assert reasons[SLEEPER] == ("keep", "unreachable 1 time in a row")
    assert dry["ssc_cull"][SLEEPER]["error"] == "no answer within 3 s"
    assert [c["name"] for c in dry["ssc_culled"]] == [IDLER]
    # a dry run changes nothing: no VM deleted, no count recorded
    assert {IDLER, THINKER, SLEEPER} <= servers(cloud)
    assert "ssc_r2d_unreachable" not in metadata(cloud, SLEEPER)

    done = cull(cloud, *IDLE_SOON)
    assert [(c["name"], c["reason"].split()[0]) for c in done["ssc_culled"]] == [
        (IDLER, "idle")]
    assert IDLER not in servers(cloud)
    conn = cloud.connect()
    assert [v for v in idler_volumes if conn.block_storage.find_volume(v) is not None] == []
    assert done["ssc_cull"][THINKER]["reason"] == "busy kernel"
    assert done["ssc_cull"][SLEEPER]["reason"] == "unreachable 1 time in a row"
    assert done["ssc_cull_attention"] == []
    sleeper = metadata(cloud, SLEEPER)
    assert sleeper["ssc_r2d_unreachable"] == "1"
    thinker = metadata(cloud, THINKER)
    assert thinker["ssc_r2d_last_activity"] == done["ssc_cull"][THINKER][
        "last_activity"]
    assert thinker["ssc_r2d_idle_deadline"] > thinker["ssc_r2d_last_activity"]

    # unreachable again: reported to the operator at the site's count, still kept
    again = cull(cloud, *IDLE_SOON, "-e", "user_vm_cull_unreachable_report=2")
    assert again["ssc_cull"][SLEEPER]["reason"] == "unreachable 2 times in a row"
    assert again["ssc_cull_attention"] == [SLEEPER]
    assert again["ssc_culled"] == []
    # a site that deletes unreachable VMs would delete it at its count (a dry run says so)
    would = cull(cloud, *IDLE_SOON, "-e", "user_vm_cull_unreachable_delete=3", "-e",
                 "dry_run=true")
    assert [(c["name"], c["reason"]) for c in would["ssc_culled"]] == [
        (SLEEPER, "unreachable 3 times in a row")]

    # answering again resets the count
    jupyter_container(cloud, SLEEPER, "unpause")
    back = cull(cloud)
    assert back["ssc_cull"][SLEEPER]["reason"].startswith("active at ")
    assert metadata(cloud, SLEEPER)["ssc_r2d_unreachable"] == "0"
    assert {THINKER, SLEEPER} <= servers(cloud)


def test_expiry_is_a_hard_limit_which_an_extension_moves(cloud, vms):
    assert any(k["execution_state"] == "busy" for k in kernels(vms["thinker"]))
    conn = cloud.connect()
    past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # as if the thinker's lifetime had passed while its kernel computes
    conn.compute.set_server_metadata(conn.compute.find_server(THINKER),
                                     ssc_r2d_expires=past)
    thinker_volumes = volumes_of(cloud, THINKER)
    launch(cloud, "keeper", SAMPLE, "-e", "user_vm_lifetime_hours=0")  # expired at once

    code, report, _ = vm(cloud, *who("keeper"), "-e", "state=extended")
    assert code == 0, failure(report)
    kept = stats(report)["ssc_vm"]
    assert (kept["state"], kept["extended"], kept["extensions"]) == ("extended", True, 1)
    assert kept["expires"] > kept["previous_expires"]
    assert kept["expires"] > datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert metadata(cloud, KEEPER)["ssc_r2d_extensions"] == "1"
    # the same request again (a retried job) changes nothing
    code, report, _ = vm(cloud, *who("keeper"), "-e", "state=extended", "-e",
                         "extension=1")
    assert code == 0 and changed(report) == 0
    assert stats(report)["ssc_vm"]["expires"] == kept["expires"]
    # past the site's cap: refused, with a message for the researcher
    code, report, _ = vm(cloud, *who("keeper"), "-e", "state=extended", "-e",
                         "user_vm_max_extensions=1")
    assert code != 0
    assert (f"This VM has been kept longer 1 time, the most this site allows; it goes at "
            f"{kept['expires']}.") in failure(report)

    done = cull(cloud)
    assert done["ssc_cull"][THINKER]["reason"] == f"expired at {past}"
    assert [c["name"] for c in done["ssc_culled"]] == [THINKER]
    assert done["ssc_cull"][KEEPER]["decision"] == "keep"
    # by account id, with the login for people
    assert [(c["owner_id"], c["owner"]) for c in done["ssc_culled"]] == [("1011", "thinker")]
    assert THINKER not in servers(cloud) and KEEPER in servers(cloud)
    assert [v for v in thinker_volumes if conn.block_storage.find_volume(v) is not None] == []
