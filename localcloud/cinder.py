"""Cinder v3 with microversions: volumes and their status transitions, snapshots, limits,
quotas."""

import uuid

import bottle

from localcloud.api import ApiError, Microversions, at_least, base_url, json_body, not_found
from localcloud.store import now

MICROVERSIONS = Microversions("volume", "3.0", "3.71")
DEFAULT_TYPE = {"id": "c6b1a3e2-7c5d-4b47-9d4e-3f1e0a3b2d10", "name": "__DEFAULT__",
                "description": "Default Volume Type", "is_public": True, "extra_specs": {},
                "os-volume-type-access:is_public": True, "qos_specs_id": None}
SIZE = {"type": ["integer", "string", "null"], "pattern": "^[0-9]+$", "minimum": 1,
        "maximum": 2147483647}
CREATE = {
    "type": "object",
    "properties": {
        "volume": {"type": "object", "properties": {
            "name": {"type": ["string", "null"], "maxLength": 255},
            "description": {"type": ["string", "null"], "maxLength": 255},
            "display_name": {"type": ["string", "null"], "maxLength": 255},
            "display_description": {"type": ["string", "null"], "maxLength": 255},
            "volume_type": {"type": ["string", "null"], "maxLength": 255},
            "metadata": {"type": ["object", "null"], "additionalProperties": {
                "type": "string", "maxLength": 255}},
            "snapshot_id": {"type": ["string", "null"]},
            "source_volid": {"type": ["string", "null"]},
            "size": SIZE, "availability_zone": {"type": ["string", "null"]},
            "multiattach": {"type": ["boolean", "string", "null"]},
            "image_id": {"type": ["string", "null"], "maxLength": 255},
            "imageRef": {"type": ["string", "null"], "maxLength": 255},
            "group_id": {"type": ["string", "null"]},
            "backup_id": {"type": ["string", "null"]},
        }, "additionalProperties": True},
        "OS-SCH-HNT:scheduler_hints": {"type": ["object", "null"]},
    },
    "required": ["volume"],
    "additionalProperties": False,
}
# cinder/api/schemas/snapshots.py (create): volume_id required, no other keys
SNAPSHOT_CREATE = {
    "type": "object",
    "properties": {"snapshot": {"type": "object", "properties": {
        "name": {"type": ["string", "null"], "maxLength": 255},
        "display_name": {"type": ["string", "null"], "maxLength": 255},
        "description": {"type": ["string", "null"], "maxLength": 255},
        "volume_id": {"type": ["string", "null"]},
        "force": {"type": ["boolean", "string"]},
        "metadata": {"type": ["object", "null"], "additionalProperties": {
            "type": "string", "maxLength": 255}}},
        "required": ["volume_id"], "additionalProperties": False}},
    "required": ["snapshot"],
    "additionalProperties": False,
}
TRUE = ("true", "1", "yes", "on", "y", "t")
FALSE = ("false", "0", "no", "off", "n", "f")


def bool_param(name: str) -> bool:
    """A query parameter Cinder reads as a boolean (cinder/utils.py get_bool_param: oslo's
    strutils, strict): one of TRUE or FALSE in any case, absent is false, anything else 400."""
    value = bottle.request.query.get(name, "false")
    if value.lower() not in TRUE + FALSE:
        raise ApiError(400, f"Value '{value}' for '{name}' is not a boolean.")
    return value.lower() in TRUE

UPDATE = {
    "type": "object",
    "properties": {"volume": {"type": "object", "properties": {
        "name": {"type": ["string", "null"], "maxLength": 255},
        "description": {"type": ["string", "null"], "maxLength": 255},
        "display_name": {"type": ["string", "null"], "maxLength": 255},
        "display_description": {"type": ["string", "null"], "maxLength": 255},
        "metadata": {"type": ["object", "null"]}}, "additionalProperties": False}},
    "required": ["volume"],
    "additionalProperties": False,
}


def check_volume_type(wanted: str | None) -> None:
    """A volume create's `volume_type`, a name or an id, must be a type there is (the one,
    __DEFAULT__): Cinder answers 404 otherwise (cinder/volume/volume_types.py,
    get_by_name_or_id: VolumeTypeNotFound for an id-like value, else VolumeTypeNotFoundByName).
    """
    if not wanted or wanted in (DEFAULT_TYPE["name"], DEFAULT_TYPE["id"]):
        return
    try:
        uuid.UUID(wanted)
    except ValueError:
        raise not_found(f"Volume type with name {wanted} could not be found.") from None
    raise not_found(f"Volume type {wanted} could not be found.")


def make_app(cloud) -> bottle.Bottle:
    app = bottle.Bottle()
    store = cloud.store
    project = cloud.identity["project_id"]

    def links(volume_id: str) -> list[dict]:
        return [{"rel": "self", "href": f"{base_url()}/v3/{project}/volumes/{volume_id}"},
                {"rel": "bookmark", "href": f"{base_url()}/{project}/volumes/{volume_id}"}]

    def check_project(project_id: str) -> None:
        if project_id != project:
            raise ApiError(403, "Policy doesn't allow this project's resources to be used.")

    def find(volume_id: str) -> dict:
        volume = store.get("volumes", volume_id)
        if volume is None:
            raise not_found(f"Volume {volume_id} could not be found.")
        return volume

    def detail_view(volume: dict, extended: bool = True) -> dict:
        """cinder/api/v3/views/volumes.py, detail. `extended`: with what Cinder's API
        extensions add to show and the detail list only, not to create or update
        (cinder/api/contrib/volume_tenant_attribute.py, volume_image_metadata.py; seen so
        on realcloud): the owning project and the image the volume was made from."""
        view = {
            "id": volume["id"], "status": volume["status"], "size": volume["size"],
            "availability_zone": volume["availability_zone"],
            "created_at": volume["created_at"].replace("Z", ".000000"),
            "updated_at": volume["updated_at"] and volume["updated_at"].replace("Z", ".000000"),
            "name": volume["name"], "description": volume["description"],
            "volume_type": DEFAULT_TYPE["name"], "snapshot_id": volume.get("snapshot_id"),
            "source_volid": None,
            "metadata": volume["metadata"], "links": links(volume["id"]),
            "user_id": volume["user_id"], "bootable": str(volume["bootable"]).lower(),
            "encrypted": False, "replication_status": None, "consistencygroup_id": None,
            "multiattach": False, "attachments": volume["attachments"],
        }
        if extended:
            view["os-vol-tenant-attr:tenant_id"] = project
        if extended and volume["image_id"]:
            image = store.get("images", volume["image_id"]) or {}
            view["volume_image_metadata"] = {
                "image_id": volume["image_id"], "image_name": image.get("name"),
                "container_format": image.get("container_format"),
                "disk_format": image.get("disk_format"), "min_disk": str(image.get(
                    "min_disk", 0)), "min_ram": str(image.get("min_ram", 0)),
                "size": str(image.get("size"))}
        if at_least("3.13"):
            view["group_id"] = None
        if at_least("3.48"):
            view["shared_targets"] = False
            view["service_uuid"] = None
        if at_least("3.63"):
            view["volume_type_id"] = DEFAULT_TYPE["id"]
        if at_least("3.65"):
            view["consumes_quota"] = True
        return view

    def summary_view(volume: dict) -> dict:
        return {"id": volume["id"], "name": volume["name"], "links": links(volume["id"])}

    def version_document() -> dict:
        return {"id": "v3.0", "status": "CURRENT", "version": MICROVERSIONS.maximum,
                "min_version": MICROVERSIONS.minimum, "updated": "2023-08-31T00:00:00Z",
                "links": [{"rel": "self", "href": f"{base_url()}/v3/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.volume+json;version=3"}]}

    @app.get("/", auth=False)
    def versions():
        bottle.response.status = 300
        return {"versions": [version_document()]}

    @app.get("/v3", auth=False)
    @app.get("/v3/", auth=False)
    def version():
        return {"versions": [version_document()]}

    def matching(project_id: str) -> list[dict]:
        check_project(project_id)
        query = bottle.request.query
        found = sorted(store.all("volumes"), key=lambda v: v["created_at"], reverse=True)
        for key in ("name", "status"):
            if query.get(key):
                found = [v for v in found if v[key] == query[key]]
        if query.get("bootable") and at_least("3.2"):
            wanted = query.bootable.lower() in ("true", "1")
            found = [v for v in found if v["bootable"] == wanted]
        return found

    @app.get("/v3/<project_id>/volumes")
    def list_volumes(project_id):
        return {"volumes": [summary_view(v) for v in matching(project_id)]}

    @app.get("/v3/<project_id>/volumes/detail")
    def list_volumes_detail(project_id):
        return {"volumes": [detail_view(v) for v in matching(project_id)]}

    @app.get("/v3/<project_id>/volumes/<volume_id>")
    def show_volume(project_id, volume_id):
        check_project(project_id)
        return {"volume": detail_view(find(volume_id))}

    @app.post("/v3/<project_id>/volumes", op="volume.create")
    def create_volume(project_id):
        check_project(project_id)
        request = json_body(CREATE)["volume"]
        check_volume_type(request.get("volume_type"))  # Cinder looks the type up first
        image_id = request.get("imageRef") or request.get("image_id")
        image = None
        if image_id:
            image = store.get("images", image_id)
            if image is None or image["status"] != "active":
                raise ApiError(400, "Invalid image identifier or unable to access requested "
                               "image.")
        for unsupported in ("source_volid", "backup_id"):
            if request.get(unsupported):
                raise ApiError(400, f"Creating a volume from {unsupported} is not supported "
                               "by this cloud.")
        snapshot = None
        if request.get("snapshot_id"):
            snapshot = find_snapshot(request["snapshot_id"])
            # cinder/volume/flows/api/create_volume.py: the snapshot must be available; the
            # size defaults to the snapshot's and may not be smaller
            if snapshot["status"] != "available":
                raise ApiError(400, "Invalid snapshot: Originating snapshot status must be "
                               "one of 'available' values")
            if request.get("size") is None:
                request["size"] = snapshot["size"]
        if request.get("size") is None:
            raise ApiError(400, "Invalid input received: Size is required.")
        size = int(request["size"])
        if snapshot and size < snapshot["size"]:
            raise ApiError(400, f"Invalid input received: Volume size '{size}'GB cannot be "
                           f"smaller than the snapshot size {snapshot['size']}GB. They must "
                           "be >= original snapshot size.")
        if image and size < image["min_disk"]:
            raise ApiError(400, f"Volume size {size}GB cannot be smaller than the image "
                           f"minDisk size {image['min_disk']}GB.")
        zone = request.get("availability_zone")
        if zone not in (None, "nova"):
            raise ApiError(400, f"Invalid input received: Availability zone '{zone}' is "
                           "invalid.")
        volume = cloud.create_volume(
            size=size, name=request.get("name", request.get("display_name")),
            description=request.get("description", request.get("display_description")),
            image_id=image_id, metadata=request.get("metadata") or {}, snapshot=snapshot)
        bottle.response.status = 202
        return {"volume": detail_view(volume, extended=False)}

    @app.put("/v3/<project_id>/volumes/<volume_id>", op="volume.update")
    def update_volume(project_id, volume_id):
        check_project(project_id)
        find(volume_id)
        request = json_body(UPDATE)["volume"]
        changes = {"updated_at": now()}
        for key, field in (("name", "name"), ("display_name", "name"),
                           ("description", "description"),
                           ("display_description", "description"), ("metadata", "metadata")):
            if key in request:
                changes[field] = request[key]
        volume = store.update("volumes", volume_id, **changes)
        return {"volume": detail_view(volume, extended=False)}

    @app.delete("/v3/<project_id>/volumes/<volume_id>", op="volume.delete")
    def delete_volume(project_id, volume_id):
        check_project(project_id)
        volume = find(volume_id)
        if volume["status"] not in ("available", "error", "error_restoring",
                                    "error_extending", "error_managing"):
            raise ApiError(400, "Invalid volume: Volume status must be available or error or "
                           "error_restoring or error_extending or error_managing and must "
                           "not be migrating, attached, belong to a group, have snapshots, "
                           "awaiting a transfer, or be disassociated from snapshots after "
                           "volume transfer.")
        if cloud.volume_snapshots(volume_id):  # cinder/volume/api.py, delete (no cascade)
            raise ApiError(400, "Invalid volume: Volume status must be available or error or "
                           "error_restoring or error_extending or error_managing and must "
                           "not be migrating, attached, belong to a group, have snapshots, "
                           "awaiting a transfer, or be disassociated from snapshots after "
                           "volume transfer.")
        cloud.delete_volume(volume_id)
        bottle.response.status = 202
        return ""

    # --- snapshots: cinder/api/v3/snapshots.py and its views -----------------------------

    def find_snapshot(snapshot_id: str) -> dict:
        snapshot = store.get("snapshots", snapshot_id)
        if snapshot is None:
            raise not_found(f"Snapshot {snapshot_id} could not be found.")
        return snapshot

    def snapshot_summary(snapshot: dict) -> dict:
        """cinder/api/views/snapshots.py, summary (the list's items)."""
        return {"id": snapshot["id"],
                "created_at": snapshot["created_at"].replace("Z", ".000000"),
                "updated_at": snapshot["updated_at"] and snapshot["updated_at"].replace(
                    "Z", ".000000"),
                "name": snapshot["name"], "description": snapshot["description"],
                "volume_id": snapshot["volume_id"], "status": snapshot["status"],
                "size": snapshot["size"], "metadata": snapshot["metadata"]}

    def snapshot_detail(snapshot: dict, extended: bool = True) -> dict:
        """cinder/api/v3/views/snapshots.py, detail: group_snapshot_id from 3.14, user_id
        from 3.41, consumes_quota from 3.65. `extended`: with the extended snapshot
        attributes, which Cinder adds to show and the detail list only, not to create
        (cinder/api/contrib/extended_snapshot_attributes.py; seen so on realcloud)."""
        view = snapshot_summary(snapshot)
        if extended:
            view["os-extended-snapshot-attributes:project_id"] = project
            view["os-extended-snapshot-attributes:progress"] = snapshot["progress"]
        if at_least("3.14"):
            view["group_snapshot_id"] = None
        if at_least("3.41"):
            view["user_id"] = snapshot["user_id"]
        if at_least("3.65"):
            view["consumes_quota"] = True
        return view

    def matching_snapshots(project_id: str) -> list[dict]:
        check_project(project_id)
        query = bottle.request.query
        found = sorted(store.all("snapshots"), key=lambda s: s["created_at"], reverse=True)
        for key in ("name", "status", "volume_id"):
            if query.get(key):
                found = [s for s in found if s[key] == query[key]]
        return found

    @app.get("/v3/<project_id>/snapshots")
    def list_snapshots(project_id):
        return {"snapshots": [snapshot_summary(s) for s in matching_snapshots(project_id)]}

    @app.get("/v3/<project_id>/snapshots/detail")
    def list_snapshots_detail(project_id):
        return {"snapshots": [snapshot_detail(s) for s in matching_snapshots(project_id)]}

    @app.get("/v3/<project_id>/snapshots/<snapshot_id>")
    def show_snapshot(project_id, snapshot_id):
        check_project(project_id)
        return {"snapshot": snapshot_detail(find_snapshot(snapshot_id))}

    @app.post("/v3/<project_id>/snapshots", op="snapshot.create")
    def create_snapshot(project_id):
        """cinder/volume/api.py, _create_snapshot: an attached volume only with force."""
        check_project(project_id)
        request = json_body(SNAPSHOT_CREATE)["snapshot"]
        volume = store.get("volumes", request.get("volume_id") or "")
        if volume is None:
            raise not_found(f"Volume {request.get('volume_id')} could not be found.")
        force = str(request.get("force", False)).lower() in TRUE
        allowed = ("available", "in-use") if force else ("available",)
        if volume["status"] not in allowed:
            raise ApiError(400, f"Invalid volume: Volume {volume['id']} status must be "
                           f"{', '.join(allowed)} , but current status is: "
                           f"{volume['status']}.")
        snapshot = cloud.create_snapshot(
            volume, request.get("name", request.get("display_name")),
            request.get("description"), request.get("metadata") or {})
        bottle.response.status = 202
        return {"snapshot": snapshot_detail(snapshot, extended=False)}

    @app.delete("/v3/<project_id>/snapshots/<snapshot_id>", op="snapshot.delete")
    def delete_snapshot(project_id, snapshot_id):
        """cinder/volume/api.py, delete_snapshot: available or error only."""
        check_project(project_id)
        snapshot = find_snapshot(snapshot_id)
        if snapshot["status"] not in ("available", "error"):
            raise ApiError(400, "Invalid snapshot: Snapshot status must be available or "
                           "error and must not be part of a group.")
        cloud.delete_snapshot(snapshot_id)
        bottle.response.status = 202
        return ""

    @app.get("/v3/<project_id>/types")
    def list_types(project_id):
        check_project(project_id)
        return {"volume_types": [DEFAULT_TYPE]}

    @app.get("/v3/<project_id>/types/<type_id>")
    def show_type(project_id, type_id):
        check_project(project_id)
        if type_id not in (DEFAULT_TYPE["id"], DEFAULT_TYPE["name"], "default"):
            raise not_found(f"Volume type {type_id} could not be found.")
        return {"volume_type": DEFAULT_TYPE}

    @app.get("/v3/<project_id>/os-availability-zone")
    def availability_zones(project_id):
        check_project(project_id)
        return {"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {
            "available": True}}]}

    @app.get("/v3/<project_id>/limits")
    def limits(project_id):
        check_project(project_id)
        used = cloud.usage()
        return {"limits": {"rate": [], "absolute": {
            "maxTotalVolumes": cloud.quota("volumes"),
            "maxTotalVolumeGigabytes": cloud.quota("gigabytes"),
            "maxTotalSnapshots": cloud.quota("snapshots"),
            "maxTotalBackups": 10, "maxTotalBackupGigabytes": 1000,
            "totalVolumesUsed": used["volumes"], "totalGigabytesUsed": used["gigabytes"],
            "totalSnapshotsUsed": used["snapshots"], "totalBackupsUsed": 0,
            "totalBackupGigabytesUsed": 0}}}

    @app.get("/v3/<project_id>/os-quota-sets/<target>")
    def quotas(project_id, target):
        check_project(project_id)
        used = cloud.usage()
        usage = bool_param("usage")
        view = {"id": target}
        for name, in_use in (("volumes", used["volumes"]), ("gigabytes", used["gigabytes"]),
                             ("snapshots", used["snapshots"]), ("backups", 0),
                             ("backup_gigabytes", 0), ("groups", 0),
                             ("per_volume_gigabytes", 0)):
            limit = -1 if name == "per_volume_gigabytes" else cloud.quota(name) \
                if name in ("volumes", "gigabytes", "snapshots") else 10
            view[name] = {"limit": limit, "in_use": in_use, "reserved": 0,
                          "allocated": 0} if usage else limit
        return {"quota_set": view}

    return app
