# Copyright: ssc-repo2docker developers
# BSD-3-Clause
"""A user VM's boot volume, made before the server so a create cut off while Cinder copies
the image leaves a volume the next run can find: its metadata names the server and image.

Cinder's volume statuses (cinder/objects/fields.py, VolumeStatus): ``creating`` and
``downloading`` (copying the image) lead to ``available`` or ``error``; Cinder deletes only a
volume that is ``available`` or ``error*`` (else 400 "Invalid volume: Volume status must be
available or error…"), and one being made cannot be deleted until it is done."""

BOOT_VOLUME_OF = "ssc_r2d_boot_volume_of"  # volume metadata: the server it is the boot volume of
BOOT_IMAGE = "ssc_r2d_boot_image"  # volume metadata: the image id it was made from
MAKING = frozenset({"creating", "downloading"})
DELETABLE = frozenset({"available", "error", "error_restoring", "error_extending",
                       "error_managing"})


def boot_volume_metadata(server_name: str, image_id: str) -> dict:
    """The metadata that marks a boot volume as the one of server_name, from image_id."""
    return {BOOT_VOLUME_OF: server_name, BOOT_IMAGE: image_id}


def marked_for(volumes: list[dict], server_name: str) -> list[dict]:
    """The volumes (Cinder's detail view: ``id``, ``status``, ``size``, ``metadata``,
    ``created_at``) marked as server_name's boot volume."""
    return [v for v in volumes if (v.get("metadata") or {}).get(BOOT_VOLUME_OF) == server_name]


def boot_volume_plan(volumes: list[dict], server_name: str, image_id: str, size: int,
                     placement: dict | None = None) -> dict:
    """What to do with the boot volumes an earlier, cut-off create left for server_name,
    before its server is made (no server of that name exists).

    volumes: Cinder volumes as in marked_for() (others are ignored); size in GB; placement:
    the wanted ``availability_zone`` and ``volume_type`` (name or id), each when given.
    Returns ``{"adopt": id or None, "delete": [ids], "wait": [ids]}``:
    adopt the newest volume of the same image, size and placement that is ``available`` or
    still being made (``creating``/``downloading``): booting from it saves a copy of the image;
    delete the other marked volumes Cinder can delete now (``available``/``error``);
    wait for the other marked ones still being made, then delete them.
    Volumes attached (``in-use`` …) or already ``deleting`` are left alone.
    """
    mine = sorted(marked_for(volumes, server_name), key=lambda v: v.get("created_at") or "",
                  reverse=True)
    fits = [v for v in mine if v["status"] in MAKING | {"available"}
            and int(v["size"]) == size and v["metadata"].get(BOOT_IMAGE) == image_id
            and placed(v, placement or {})]
    # an available one first: booting from it needs no wait
    fits.sort(key=lambda v: v["status"] != "available")
    adopt = fits[0]["id"] if fits else None
    others = [v for v in mine if v["id"] != adopt]
    return {"adopt": adopt,
            "delete": [v["id"] for v in others if v["status"] in DELETABLE],
            "wait": [v["id"] for v in others if v["status"] in MAKING]}


def placed(volume: dict, placement: dict) -> bool:
    """Whether a volume (Cinder's detail view) is in the wanted availability zone and of the
    wanted volume type: Cinder shows the type's name, and its id from microversion 3.63."""
    zone, kind = placement.get("availability_zone"), placement.get("volume_type")
    if zone and volume.get("availability_zone") != zone:
        return False
    return not kind or kind in (volume.get("volume_type"), volume.get("volume_type_id"))


def booted_image(volume: dict) -> str | None:
    """The id of the image a boot volume (Cinder's detail view) was made for: the one its
    metadata names when this collection made it, else Cinder's volume_image_metadata.

    Cinder's volume_image_metadata names the image the volume's data first came from: for a
    volume made from a snapshot of a volume-backed server's image, that is the base image
    the builder booted from (Cinder copies the source volume's image metadata to its
    snapshots and to volumes made from them), not the snapshot image."""
    marked = (volume.get("metadata") or {}).get(BOOT_IMAGE)
    if marked:
        return marked
    return (volume.get("volume_image_metadata") or {}).get("image_id")
