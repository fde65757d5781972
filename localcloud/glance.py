"""Glance v2: images (the base image and snapshots), their properties and JSON patches."""

import json

import bottle

from localcloud.api import ApiError, Inject, bad_request, base_url, json_body, not_found
from localcloud.store import now

CORE = ("id", "name", "status", "visibility", "protected", "tags", "container_format",
        "disk_format", "min_disk", "min_ram", "size", "virtual_size", "checksum",
        "os_hash_algo", "os_hash_value", "owner", "created_at", "updated_at", "os_hidden")
READ_ONLY = {"id", "status", "size", "virtual_size", "checksum", "os_hash_algo",
             "os_hash_value", "owner", "created_at", "updated_at", "self", "file", "schema",
             "direct_url", "locations"}
WRITABLE_CORE = {"name", "visibility", "protected", "tags", "container_format", "disk_format",
                 "min_disk", "min_ram", "os_hidden"}
PATCH_TYPE = "application/openstack-images-v2.1-json-patch"


def image_view(image: dict) -> dict:
    view = {key: image[key] for key in CORE}
    view.update(image["properties"])
    view.update({"self": f"/v2/images/{image['id']}", "file": f"/v2/images/{image['id']}/file",
                 "schema": "/v2/schemas/image"})
    return view


def make_app(cloud) -> bottle.Bottle:
    """Glance's API on a Bottle app, to be mounted at /image: the routes below, each given
    the `cloud` when it asks for it (`Inject`); `op` names what faults can target."""
    app = bottle.Bottle()
    app.install(Inject(cloud=cloud))
    app.get("/", auth=False, callback=versions)
    app.get("/v2/images", callback=list_images)
    app.get("/v2/images/<image_id>", callback=show_image)
    app.post("/v2/images", op="image.create", callback=create_image)
    app.route("/v2/images/<image_id>", method="PATCH", op="image.update", callback=update_image)
    app.delete("/v2/images/<image_id>", op="image.delete", callback=delete_image)
    return app


def find(cloud, image_id: str) -> dict:
    image = cloud.store.get("images", image_id)
    if image is None:
        raise not_found(f"No image found with ID {image_id}")
    return image


def versions():
    bottle.response.status = 300
    return {"versions": [
        {"id": f"v2.{minor}", "status": "CURRENT" if minor == 16 else "SUPPORTED",
         "links": [{"rel": "self", "href": f"{base_url()}/v2/"}]}
        for minor in range(16, -1, -1)]}


def list_images(cloud):
    query = bottle.request.query
    found = [image_view(i) for i in cloud.store.all("images")]
    for key, value in query.items():
        if key in ("limit", "marker", "sort", "sort_key", "sort_dir", "member_status"):
            continue
        if key == "tag":
            found = [i for i in found if value in i["tags"]]
        elif key == "visibility" and value == "all":
            continue
        elif key == "os_hidden":
            found = [i for i in found if str(i["os_hidden"]).lower() == value.lower()]
        else:
            found = [i for i in found if str(i.get(key)) == value or (
                value.startswith("in:") and str(i.get(key)) in value[3:].split(","))]
    if "os_hidden" not in query:
        found = [i for i in found if not i["os_hidden"]]
    found = sort_images(found, query)
    if query.get("marker"):
        ids = [i["id"] for i in found]
        if query.marker not in ids:
            raise bad_request(f"Invalid marker. Image {query.marker} could not be found.")
        found = found[ids.index(query.marker) + 1:]
    body = {"images": found, "schema": "/v2/schemas/images", "first": "/v2/images"}
    limit = int(query.get("limit") or 25)
    if len(found) > limit:
        body["images"] = found[:limit]
        body["next"] = f"/v2/images?marker={found[limit - 1]['id']}&limit={limit}"
    return body


def sort_images(found: list[dict], query) -> list[dict]:
    keys = []
    if query.get("sort"):
        for part in query.sort.split(","):
            key, _, direction = part.partition(":")
            keys.append((key.strip(), direction or "desc"))
    else:
        keys.append((query.get("sort_key") or "created_at", query.get("sort_dir") or "desc"))
    for key, direction in reversed(keys):
        if direction not in ("asc", "desc"):
            raise bad_request(f"Invalid sort direction: {direction}")
        found = sorted(found, key=lambda i, k=key: (i.get(k) is None, str(i.get(k))),
                       reverse=direction == "desc")
    return found


def show_image(cloud, image_id):
    return image_view(find(cloud, image_id))


def create_image(cloud):
    body = json_body({"type": "object"})
    for key in READ_ONLY & set(body):
        raise ApiError(403, f"Attribute '{key}' is read-only.")
    name = body.pop("name", None)
    core = {k: body.pop(k) for k in list(body) if k in WRITABLE_CORE}
    image = cloud.create_image_record(name, body, **core)
    bottle.response.status = 201
    bottle.response.set_header("Location", f"{base_url()}/v2/images/{image['id']}")
    return image_view(image)


def update_image(cloud, image_id):
    image = find(cloud, image_id)
    if bottle.request.content_type.split(";")[0].strip() != PATCH_TYPE:
        raise ApiError(415, f"Unsupported Content-Type {bottle.request.content_type}",
                       headers={"Accept-Patch": PATCH_TYPE})
    operations = json_body({"type": "array", "items": {"type": "object"}})
    for operation in operations:
        apply_patch(image, operation)
    image["updated_at"] = now()
    cloud.store.put("images", image)
    return image_view(image)


def apply_patch(image: dict, operation: dict) -> None:
    op, path = operation.get("op"), operation.get("path", "")
    if op not in ("add", "replace", "remove") or not isinstance(path, str) or \
            not path.startswith("/") or path.count("/") != 1:
        raise bad_request(f"Unable to find '{op}' operation or path '{path}' is invalid: "
                          f"{json.dumps(operation)[:200]}")
    key = path[1:].replace("~1", "/").replace("~0", "~")
    if key in READ_ONLY:
        raise ApiError(403, f"Attribute '{key}' is read-only.")
    if op == "remove":
        if key in WRITABLE_CORE:
            raise ApiError(403, f"Attribute '{key}' is reserved.")
        if key not in image["properties"]:
            raise ApiError(409, f"Property {key} does not exist.")
        del image["properties"][key]
        return
    if "value" not in operation:
        raise bad_request("Operation objects must contain exactly one member named "
                          "\"value\"")
    value = operation["value"]
    if key in WRITABLE_CORE:
        image[key] = value
    elif op == "replace" and key not in image["properties"]:
        raise ApiError(409, f"Property {key} does not exist.")
    elif not isinstance(value, str):
        raise bad_request(f"Provided object does not match schema 'image': {value!r} is "
                          f"not of type 'string'")
    else:
        image["properties"][key] = value


def delete_image(cloud, image_id):
    image = find(cloud, image_id)
    if image["protected"]:
        raise ApiError(403, f"Image {image_id} is protected and cannot be deleted.")
    cloud.delete_image(image_id)
    bottle.response.status = 204
    return ""
