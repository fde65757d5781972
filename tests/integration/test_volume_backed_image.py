"""A volume-backed builder (build_image.yml with ssc_image_builder_volume_size) against the
local cloud: its image holds no data, only Cinder snapshots of the builder's volume (as real
Nova makes it; localcloud/README.md). server_snapshot makes it and a second run changes
nothing; the builder's deletion keeps the volume its snapshot needs; a user VM boots from
the snapshot at the snapshot's size and reports the snapshot image; build_image.yml's
pruning deletes the image, its snapshot and the builder's volume: no snapshot and no volume
left. The same scenario against real Nova, Cinder and Glance:
tests/realcloud/test_volume_backed_image.py."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import BIN, ROOT, run_module
from tests.integration.test_user_server import launch_args, user_server

pytestmark = pytest.mark.cloud

PLAYBOOK = Path(__file__).parent / "playbooks" / "build_image_tasks.yml"
BUILDER_SIZE = 2  # GB; the user VM asks for 1 and gets the snapshot's 2


def build_tasks(env: dict, settings: dict, *steps: str, check: bool = False) -> str:
    """build_image.yml's tasks files (playbooks/tasks/<step>.yml) in order, in check mode
    when `check`; the output."""
    extra = Path(settings["ssc_image_builder_key"]).parent.parent / "vars.json"
    extra.write_text(json.dumps({**settings, "steps": list(steps)}))
    result = subprocess.run([str(BIN / "ansible-playbook"), str(PLAYBOOK), "-e", f"@{extra}",
                             *(["--check"] if check else [])],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return result.stdout


def changed(output: str) -> int:
    [recap] = [line for line in output.splitlines() if line.startswith("localhost")]
    return int(recap.split("changed=")[1].split()[0])


def volume_backed_image_lifecycle(env: dict, cloud_name: str, conn, tmp_path: Path,
                                  prefix: str, cli) -> None:
    image_name, builder = f"{prefix}-0123456789ab", f"{prefix}-0123456789ab-builder"
    (tmp_path / "key").mkdir()
    settings = {"ssc_cloud": cloud_name, "ssc_image_base": "debian-13",
                "ssc_image_name_prefix": prefix, "ssc_image_name": image_name,
                "ssc_image_builder_name": builder, "ssc_image_keep": 0,
                "ssc_image_builder_volume_size": BUILDER_SIZE,
                "ssc_image_builder_key": str(tmp_path / "key" / "id_ed25519")}
    base = conn.image.find_image("debian-13")

    # the builder's volume, marked; the builder boots from it (builder_start.yml's boot
    # needs SSH on the builder, which realcloud's fake driver never gives)
    build_tasks(env, settings, "builder_volume")
    [volume] = list(conn.block_storage.volumes(details=True))
    assert volume.metadata["ssc_r2d_builder_of"] == image_name and volume.size == BUILDER_SIZE
    conn.create_server(name=builder, flavor="ssc.tiny", network="private",
                       boot_volume=volume.id, terminate_volume=True, wait=True, timeout=600)

    properties = {"ssc_r2d_prefix": prefix, "ssc_r2d_inputs_hash": "0123456789ab",
                  "ssc_r2d_prebuilt_0": "https://example.org/r.git@" + "0" * 40}
    snapshot_args = {"cloud": cloud_name, "server": builder, "name": image_name,
                     "properties": properties, "timeout": 600}
    made = run_module(env, "ssc.repo2docker.server_snapshot", snapshot_args)
    assert made.get("changed") is True, made
    raw = conn.image.get(f"/images/{made['id']}").json()
    assert raw["status"] == "active" and raw["size"] == 0 and raw["bdm_v2"] == "True"
    assert properties.items() <= raw.items()
    [mapping] = json.loads(raw["block_device_mapping"])
    assert (mapping["source_type"], mapping["boot_index"], mapping["volume_size"]) == (
        "snapshot", 0, BUILDER_SIZE)
    [snapshot] = list(conn.block_storage.snapshots(details=True))
    assert (snapshot.id, snapshot.volume_id, snapshot.status) == (
        mapping["snapshot_id"], volume.id, "available")
    checked = run_module(env, "ssc.repo2docker.server_snapshot", snapshot_args, check=True)
    assert checked.get("changed") is False and checked["id"] == made["id"], checked
    again = run_module(env, "ssc.repo2docker.server_snapshot", snapshot_args)
    assert again.get("changed") is False and again["id"] == made["id"], again
    assert run_module(env, "ssc.repo2docker.server_snapshot", {
        **snapshot_args, "properties": {**properties, "ssc_r2d_prebuilt_count": "1"}},
        check=True).get("changed") is True

    # the builder goes; its volume stays while the image's snapshot holds it
    build_tasks(env, settings, "builder_delete")
    assert conn.compute.find_server(builder) is None
    assert [v.id for v in conn.block_storage.volumes()] == [volume.id]

    # a user VM from the image: a volume from the snapshot, at least the snapshot's size;
    # the image it reports is the snapshot image, not the builder's base image
    vm = f"{prefix}-user"
    created = user_server(env, cloud_name, vm, **{**launch_args(volume_size=1),
                                                   "image": made["id"]})
    assert not created.get("failed"), created
    [boot] = created["server"]["volumes"]
    boot_volume = conn.block_storage.get_volume(boot)
    assert (boot_volume.snapshot_id, boot_volume.size) == (snapshot.id, BUILDER_SIZE)
    assert created["server"]["image"] == made["id"] != base.id
    assert user_server(env, cloud_name, vm)["server"]["image"] == made["id"]
    assert user_server(env, cloud_name, vm, state="absent")["changed"] is True

    # pruning: the image, then its snapshot (waited for), then the builder's volume
    assert changed(build_tasks(env, settings, "image_prune", check=True)) == 1
    assert len(list(conn.block_storage.snapshots())) == 1  # check mode deletes nothing
    assert changed(build_tasks(env, settings, "image_prune")) == 1
    assert conn.image.find_image(made["id"]) is None
    assert cli("volume", "snapshot", "list") == []
    assert cli("volume", "list") == []
    assert changed(build_tasks(env, settings, "image_prune")) == 0


def test_a_volume_backed_image_from_snapshot_to_pruning(cloud, tmp_path):
    volume_backed_image_lifecycle(cloud.env, "localcloud", cloud.connect(), tmp_path,
                                  "lc-vb", cloud.cli)
