# Copyright: ssc-repo2docker developers
# BSD-3-Clause
"""The image of a volume-backed server, the Cinder snapshots behind it and the builder volume
they came from: how to read them, and what pruning may delete.

Nova's createImage of a volume-backed server (nova/compute/api.py, snapshot_volume_backed)
snapshots each of its volumes in Cinder and makes a Glance image of size 0 holding no data:
its property ``block_device_mapping`` is a JSON list of block device mappings (v2, property
``bdm_v2`` true), the root one ``{"boot_index": 0, "source_type": "snapshot",
"destination_type": "volume", "snapshot_id": ..., "volume_size": ...,
"delete_on_termination": ...}``. Deleting that image in Glance leaves the snapshots; Cinder
refuses to delete a volume that has snapshots (cinder/volume/api.py, ``delete``: 400
"Invalid volume: Volume status must be ... and must not be ... have snapshots ..."), and
deletes a snapshot only when it is ``available`` or ``error`` (``delete_snapshot``).

So the builder's boot volume lives as long as its image's snapshots: it is marked in its
metadata (BUILDER_OF, BUILDER_PREFIX, BUILDER_SERVER) when build_image.yml makes it, and
pruning deletes it once no snapshot of it is left.
"""

import json

BUILDER_OF = "ssc_r2d_builder_of"  # volume metadata: the name of the image it is built for
BUILDER_PREFIX = "ssc_r2d_prefix"  # volume and image metadata: build_image.yml's name prefix
BUILDER_SERVER = "ssc_r2d_builder"  # volume metadata: the builder server's name
IMAGE_PREFIX = "ssc_r2d_prefix"  # image property: the prefix of the images build_image.yml made
SNAPSHOT_DELETABLE = frozenset({"available", "error"})
SNAPSHOT_MAKING = frozenset({"creating"})
VOLUME_DELETABLE = frozenset({"available", "error", "error_restoring", "error_extending",
                              "error_managing"})


def builder_volume_metadata(image_name: str, prefix: str, server_name: str) -> dict:
    """The metadata that marks a volume as the boot volume of the builder of image_name."""
    return {BUILDER_OF: image_name, BUILDER_PREFIX: prefix, BUILDER_SERVER: server_name}


def block_device_mapping(image: dict) -> list[dict]:
    """The block device mappings of an image (Glance's JSON: properties are top-level keys),
    [] for an image with data. Glance keeps the property as a JSON string; a list (as some
    clients show it) is taken as it is; anything else counts as none."""
    value = image.get("block_device_mapping")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []


def snapshot_ids(image: dict) -> list[str]:
    """The ids of the Cinder snapshots an image's block device mappings name."""
    return [m["snapshot_id"] for m in block_device_mapping(image)
            if m.get("source_type") == "snapshot" and m.get("snapshot_id")]


def boot_snapshot(image: dict) -> dict | None:
    """The root mapping of a volume-backed server's image, ``{"snapshot_id": str,
    "volume_size": int or None}`` (GB), or None for an image that holds its data. The root
    is the mapping with boot_index 0 (Nova writes it as an int; a string is accepted)."""
    for mapping in block_device_mapping(image):
        if str(mapping.get("boot_index")) == "0" and mapping.get("source_type") == "snapshot" \
                and mapping.get("snapshot_id"):
            size = mapping.get("volume_size")
            return {"snapshot_id": mapping["snapshot_id"],
                    "volume_size": int(size) if size not in (None, "") else None}
    return None


def boot_volume_size(requested: int, snapshot_size: int | None) -> int:
    """The size (GB) of a boot volume made from a snapshot: Cinder refuses one smaller than
    the snapshot (400 "Volume size ... cannot be lesser than the snapshot size"), so the
    larger of the two."""
    return max(int(requested), int(snapshot_size or 0))


def prune_plan(images: list[dict], snapshots: list[dict], volumes: list[dict],
               server_names: set[str], prefix: str, keep: int | None) -> dict:
    """What pruning the images of `prefix` deletes.

    images: Glance's JSON of the project's images (``id``, ``name``, ``created_at``,
    properties as top-level keys); snapshots: Cinder's snapshots (``id``, ``volume_id``,
    ``status``); volumes: Cinder's volumes, detail view (``id``, ``status``,
    ``attachments``, ``metadata``); server_names: the names of the project's servers.
    keep: how many of the newest images of `prefix` stay; None deletes no image.

    Returns ``{"images": [image dicts], "snapshots": [ids], "volumes": [ids]}``:
    the images past the newest `keep`; the snapshots those images name, and the snapshots
    of idle builder volumes of `prefix` that no remaining image names (left by a run cut
    off after deleting their image); the idle builder volumes of `prefix` with no snapshot
    left once those are gone. A builder volume is idle when it is not attached and its
    builder server is gone (a build in progress keeps its volume). A snapshot a remaining
    image names is never deleted; nor is a volume that keeps one.
    """
    ours = sorted((i for i in images if i.get(IMAGE_PREFIX) == prefix),
                  key=lambda i: i.get("created_at") or "", reverse=True)
    doomed = ours[keep:] if keep is not None else []
    doomed_ids = {i["id"] for i in doomed}
    needed = {s for i in images if i["id"] not in doomed_ids for s in snapshot_ids(i)}
    idle = {v["id"] for v in volumes
            if (v.get("metadata") or {}).get(BUILDER_PREFIX) == prefix
            and (v.get("metadata") or {}).get(BUILDER_OF)
            and not v.get("attachments")
            and (v.get("metadata") or {}).get(BUILDER_SERVER) not in server_names}
    existing = {s["id"]: s for s in snapshots}
    delete = {s for i in doomed for s in snapshot_ids(i) if s in existing}
    delete |= {s["id"] for s in snapshots if s.get("volume_id") in idle}
    delete -= needed
    left = {s["volume_id"] for s in snapshots if s["id"] not in delete}
    return {"images": doomed,
            "snapshots": sorted(delete),
            "volumes": sorted(v for v in idle if v not in left)}
