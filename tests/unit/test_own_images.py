"""Filter ssc.repo2docker.own_images: which images user VMs may boot and pruning may delete."""

import importlib.util

from tests.helpers import ROOT

spec = importlib.util.spec_from_file_location(
    "own_images_filter", ROOT / "plugins" / "filter" / "own_images.py")
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)
own_images = plugin.FilterModule().filters()["own_images"]


def image(name, created, visibility="private", prefix="ssc-repo2docker", flat=False):
    marks = {"ssc_r2d_prefix": prefix} if prefix else {}
    return {"name": name, "created_at": created, "visibility": visibility,
            **(marks if flat else {"properties": marks})}


def test_newest_first_and_only_this_projects_images_of_the_prefix():
    images = [image("old", "2026-11-01T00:00:00Z"), image("new", "2026-11-03T00:00:00Z"),
              image("flat", "2026-11-02T00:00:00Z", flat=True),
              # another project's, newer, carrying the same property: never ours
              image("planted-public", "2026-12-01T00:00:00Z", visibility="public"),
              image("planted-shared", "2026-12-01T00:00:00Z", visibility="shared"),
              image("planted-community", "2026-12-01T00:00:00Z", visibility="community"),
              image("other-prefix", "2026-12-01T00:00:00Z", prefix="course-x"),
              image("base", "2026-12-01T00:00:00Z", prefix=None)]
    assert [i["name"] for i in own_images(images, "ssc-repo2docker")] == ["new", "flat", "old"]
    assert own_images([], "ssc-repo2docker") == own_images(None, "ssc-repo2docker") == []
