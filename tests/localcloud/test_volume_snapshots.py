"""The local cloud's Cinder snapshots answer as real Cinder's (cinder/api/v3/snapshots.py, its
views and API extensions, cinder/volume/api.py): create, list, show at several microversions,
what create's answers leave out, a volume made from one, a volume that has one refused
deletion, delete. The same checks against real Cinder: tests/realcloud/test_volume_snapshots.py."""

import time
import uuid

import pytest

pytestmark = pytest.mark.cloud

SUMMARY = {"id", "created_at", "updated_at", "name", "description", "volume_id", "status",
           "size", "metadata"}
EXTENDED = {"os-extended-snapshot-attributes:project_id",
            "os-extended-snapshot-attributes:progress"}
VOLUME_EXTENDED = {"os-vol-tenant-attr:tenant_id", "volume_image_metadata"}


def wait_for(read, want: str, timeout: float = 300) -> dict:
    """Poll read() (a resource's JSON) until its status is `want`, or it is gone when want is
    'gone'."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = read()
        status = current["status"] if current else "gone"
        if status == want:
            return current
        assert not status.startswith("error"), current
        time.sleep(1)
    raise AssertionError(f"not {want} after {timeout} s: {current}")


def snapshot_api(conn, prefix: str) -> None:
    storage = conn.block_storage

    def get(path: str, version: str = "3.0") -> dict | None:
        response = storage.get(path, microversion=version)
        return None if response.status_code == 404 else response.json()

    def volume(volume_id: str) -> dict | None:
        found = get(f"/volumes/{volume_id}")
        return found and found["volume"]

    def snapshot(snapshot_id: str) -> dict | None:
        found = get(f"/snapshots/{snapshot_id}")
        return found and found["snapshot"]

    image = conn.image.find_image("debian-13")
    source = storage.post("/volumes", json={"volume": {
        "size": 1, "imageRef": image.id, "name": f"{prefix}-source"}}).json()["volume"]
    # API extensions add these to show and the detail list, not to create's answer
    assert not VOLUME_EXTENDED & set(source), source
    assert set(wait_for(lambda: volume(source["id"]), "available")) >= VOLUME_EXTENDED

    made = storage.post("/snapshots", json={"snapshot": {
        "volume_id": source["id"], "name": f"{prefix}-snap", "metadata": {"k": "v"}}})
    assert made.status_code == 202, made.text
    snap = made.json()["snapshot"]
    assert (snap["status"], snap["size"], snap["volume_id"]) == ("creating", 1, source["id"])
    assert set(snap) == SUMMARY  # no extended attributes in create's answer
    snap = wait_for(lambda: snapshot(snap["id"]), "available")
    assert set(snap) == SUMMARY | EXTENDED and snap["metadata"] == {"k": "v"}
    latest = get(f"/snapshots/{snap['id']}", "3.65")["snapshot"]
    assert set(latest) == SUMMARY | EXTENDED | {"group_snapshot_id", "user_id",
                                                "consumes_quota"}
    [listed] = [s for s in get("/snapshots")["snapshots"] if s["id"] == snap["id"]]
    assert set(listed) == SUMMARY
    [detailed] = [s for s in get("/snapshots/detail", "3.41")["snapshots"]
                  if s["id"] == snap["id"]]
    assert set(detailed) == SUMMARY | EXTENDED | {"group_snapshot_id", "user_id"}
    assert get("/limits")["limits"]["absolute"]["totalSnapshotsUsed"] == 1

    refused = storage.delete(f"/volumes/{source['id']}")
    assert refused.status_code == 400 and "have snapshots" in refused.json()[
        "badRequest"]["message"]
    small = storage.post("/volumes", json={"volume": {"size": 1, "snapshot_id": snap["id"]}})
    assert small.status_code == 202  # the snapshot's own size is allowed
    wait_for(lambda: volume(small.json()["volume"]["id"]), "available")
    larger = storage.post("/volumes", json={"volume": {
        "size": 2, "snapshot_id": snap["id"], "name": f"{prefix}-copy"}})
    copy = wait_for(lambda: volume(larger.json()["volume"]["id"]), "available")
    assert (copy["size"], copy["snapshot_id"], copy["bootable"]) == (2, snap["id"], "true")
    # Cinder copies the source volume's image metadata: the image it was first made from
    assert copy["volume_image_metadata"]["image_id"] == image.id

    gone = storage.delete(f"/snapshots/{snap['id']}")
    assert gone.status_code == 202, gone.text
    wait_for(lambda: snapshot(snap["id"]), "gone")
    for volume_id in (source["id"], copy["id"], small.json()["volume"]["id"]):
        assert storage.delete(f"/volumes/{volume_id}").status_code == 202
        wait_for(lambda v=volume_id: volume(v), "gone")
    assert get("/limits")["limits"]["absolute"]["totalSnapshotsUsed"] == 0


def test_snapshot_api(cloud):
    snapshot_api(cloud.connect(), "lc-snap")


def test_unknown_volume_key_or_snapshot(cloud):
    storage = cloud.connect().block_storage
    missing = storage.post("/snapshots", json={"snapshot": {"volume_id": str(uuid.uuid4())}})
    assert missing.status_code == 404
    unknown = storage.post("/snapshots", json={"snapshot": {"volume_id": str(uuid.uuid4()),
                                                            "colour": 1}})
    assert unknown.status_code == 400
    assert storage.delete(f"/snapshots/{uuid.uuid4()}").status_code == 404
