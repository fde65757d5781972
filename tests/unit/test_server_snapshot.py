"""ssc.repo2docker.server_snapshot: what it decides to do from the images it finds (Glance's
JSON), and how it reads the requested properties. The module against a cloud is in
tests/integration/test_modules.py."""

import importlib.util
from pathlib import Path

import pytest
import yaml

from tests.helpers import assert_documented_options

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "plugins" / "modules" / "server_snapshot.py"
_spec = importlib.util.spec_from_file_location("server_snapshot", MODULE)
server_snapshot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(server_snapshot)

decide = server_snapshot.decide
SnapshotError = server_snapshot.SnapshotError


def glance(status="active", image_id="img-1", **properties) -> dict:
    """An image as Glance's API shows it: core attributes and properties side by side."""
    return {"id": image_id, "name": "snap", "status": status, "visibility": "private",
            "size": 0, "min_disk": 5, "image_type": "snapshot", **properties}


# --- properties ----------------------------------------------------------------------------

def test_properties_become_strings():
    assert server_snapshot.normalize_properties(
        {"a": "x", "n": 3, "f": 1.5, "yes": True, "no": False}) == {
        "a": "x", "n": "3", "f": "1.5", "yes": "true", "no": "false"}
    assert server_snapshot.normalize_properties(None) == {}


@pytest.mark.parametrize("properties, message", [
    ({"name": "x"}, "core image attribute"),
    ({"visibility": "public"}, "core image attribute"),
    ({"min_disk": 10}, "core image attribute"),
    ({"os_hidden": True}, "core image attribute"),
    ({"a": ["x"]}, "not list"),
    ({"a": {"b": "c"}}, "not dict"),
    ({"a": None}, "not NoneType"),
    ({"a": "x" * 256}, "longer than 255"),
    ({"k" * 256: "x"}, "1 to 255 characters"),
    ({"": "x"}, "1 to 255 characters"),
    ({1: "x"}, "1 to 255 characters"),
])
def test_bad_properties_are_refused(properties, message):
    with pytest.raises(SnapshotError, match=message):
        server_snapshot.normalize_properties(properties)


def test_property_changes_are_the_missing_and_the_different():
    image = glance(purpose="test", cached="true")
    assert server_snapshot.property_changes(image, {}) == {}
    assert server_snapshot.property_changes(image, {"purpose": "test"}) == {}
    assert server_snapshot.property_changes(
        image, {"purpose": "build", "cached": "true", "new": "1"}) == {
        "purpose": "build", "new": "1"}


# --- decisions -----------------------------------------------------------------------------

def test_no_image_means_create_with_the_properties():
    assert decide([], "snap", {"a": "1"}) == {
        "action": "create", "image": None, "changes": {"a": "1"}}


def test_an_active_image_with_the_properties_is_left_alone():
    image = glance(a="1")
    assert decide([image], "snap", {"a": "1"}) == {
        "action": "none", "image": image, "changes": {}}


def test_an_active_image_missing_properties_is_updated():
    image = glance(a="1")
    plan = decide([image], "snap", {"a": "2", "b": "3"})
    assert (plan["action"], plan["changes"]) == ("update", {"a": "2", "b": "3"})


def test_properties_nova_added_are_not_touched():
    image = glance(a="1", instance_uuid="srv", base_image_ref="base")
    assert decide([image], "snap", {"a": "1"})["action"] == "none"


@pytest.mark.parametrize("status", ["queued", "saving", "uploading", "importing", "SAVING"])
def test_an_image_being_made_is_waited_for(status):
    image = glance(status=status)
    assert decide([image], "snap", {})["action"] == "wait"


@pytest.mark.parametrize("status", ["killed", "deleted", "pending_delete", "deactivated",
                                    "error"])
def test_a_failed_image_fails_and_is_not_deleted(status):
    with pytest.raises(SnapshotError, match=f"exists with status {status}.*does not delete"):
        decide([glance(status=status)], "snap", {})


def test_an_unknown_status_fails():
    with pytest.raises(SnapshotError, match="unexpected status strange"):
        decide([glance(status="strange")], "snap", {})
    with pytest.raises(SnapshotError, match="unexpected status none"):
        decide([glance(status=None)], "snap", {})


def test_several_images_of_the_name_fail_and_are_named():
    images = [glance(image_id="img-2"), glance(image_id="img-1", status="killed")]
    with pytest.raises(SnapshotError, match=r"2 images are named 'snap' \(img-1, img-2\)"):
        decide(images, "snap", {})


def test_a_volume_backed_servers_image_of_size_zero_is_a_normal_image():
    image = glance(size=0, block_device_mapping='[{"snapshot_id": "s1"}]', bdm_v2="True",
                   root_device_name="/dev/vda")
    assert decide([image], "snap", {})["action"] == "none"


@pytest.mark.parametrize("action, changes, wait, changed", [
    ("create", {}, True, True),
    ("create", {}, False, True),
    ("update", {"a": "1"}, True, True),
    ("none", {}, True, False),
    ("wait", {}, True, False),
    ("wait", {"a": "1"}, True, True),
    ("wait", {"a": "1"}, False, False),
])
def test_what_counts_as_a_change(action, changes, wait, changed):
    plan = {"action": action, "image": None, "changes": changes}
    assert server_snapshot.reports_change(plan, wait) is changed


# --- documentation -------------------------------------------------------------------------

def test_documented_options_are_the_argument_spec():
    assert_documented_options(server_snapshot.DOCUMENTATION,
                              server_snapshot.ServerSnapshotModule.argument_spec)
    keywords = {"name", "register", "check_mode", "delegate_to"}
    modules = [next(key for key in task if key not in keywords)
               for task in yaml.safe_load(server_snapshot.EXAMPLES)]
    assert "ssc.repo2docker.server_snapshot" in modules
    assert all(module.count(".") == 2 for module in modules)  # FQCN
    assert set(yaml.safe_load(server_snapshot.RETURN)) == {"id", "image"}
