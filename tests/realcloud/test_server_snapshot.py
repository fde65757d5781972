"""ssc.repo2docker.server_snapshot of an image-backed server against realcloud (real Nova
and Glance; the server on Nova's fake driver, which takes the snapshot without uploading
data, so the image stays being made): createImage with our properties, a second run and a
check-mode run change nothing, a run with a new property would. The volume-backed case:
tests/realcloud/test_volume_backed_image.py."""

import pytest

from tests.helpers import run_module

pytestmark = pytest.mark.realcloud


def test_an_image_backed_snapshot_keeps_its_properties_and_a_rerun_changes_nothing(realcloud):
    conn = realcloud.connect()
    server = conn.create_server(name="rc-snap-builder", image="debian-13", flavor="ssc.tiny",
                                network="private", wait=True, timeout=600)
    properties = {"ssc_r2d_prefix": "rc-snap", "ssc_r2d_inputs_hash": "fedcba987654"}
    args = {"cloud": "realcloud", "server": server.name, "name": "rc-snap-fedcba987654",
            "properties": properties, "wait": False}
    try:
        made = run_module(realcloud.env, "ssc.repo2docker.server_snapshot", args)
        assert made.get("changed") is True, made
        raw = conn.image.get(f"/images/{made['id']}").json()  # Glance's own JSON
        assert raw["name"] == args["name"] and raw["visibility"] == "private"
        assert properties.items() <= raw.items()
        assert "block_device_mapping" not in raw  # not volume-backed

        for check in (True, False):
            again = run_module(realcloud.env, "ssc.repo2docker.server_snapshot", args,
                               check=check)
            assert again.get("changed") is False and again["id"] == made["id"], again
        newer = run_module(realcloud.env, "ssc.repo2docker.server_snapshot", {
            **args, "properties": {**properties, "ssc_r2d_prebuilt_count": "1"}}, check=True)
        assert newer.get("changed") is True, newer
        assert [i.id for i in conn.image.images() if i.name == args["name"]] == [made["id"]]
    finally:
        for image in conn.image.images():
            if image.name == args["name"]:
                conn.image.delete_image(image, ignore_missing=True)
        conn.delete_server(server.id, wait=True, timeout=300)
    assert not [s for s in conn.compute.servers() if s.name == "rc-snap-builder"]
    assert not [i for i in conn.image.images() if i.name == args["name"]]
