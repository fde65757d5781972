"""The local cloud's own control API: faults to inject, quotas to set, request counts, and
(added by `localcloud.service`, which holds every service's app) `GET /routes`, the route
table of the OpenStack services, which tests/localcloud/test_microversion_sweep.py calls in
full.

Not OpenStack: tests and people use it (through `localcloud fault` and `localcloud quota`)
to make the cloud misbehave on purpose or to check that nothing reached it.
"""

import bottle

from localcloud.api import ApiError, Inject, json_body, not_found, strict
from localcloud.cloud import DEFAULT_QUOTAS
from localcloud.store import new_id

FAULT = strict({
    "operation": {"type": "string", "minLength": 1},
    "action": {"type": "string", "enum": ["http", "error", "delay"]},
    "status": {"type": "integer", "minimum": 400, "maximum": 599},
    "message": {"type": "string"},
    "delay": {"type": "number", "minimum": 0},
    "count": {"type": ["integer", "null"], "minimum": 1},
    "rate": {"type": "number", "minimum": 0, "maximum": 1},
}, ("operation", "action"))


def make_app(cloud) -> bottle.Bottle:
    """The control API on a Bottle app, to be mounted at /localcloud: the routes below, each
    given the `cloud` when it asks for it (`Inject`)."""
    app = bottle.Bottle()
    app.install(Inject(cloud=cloud))
    app.get("/faults", callback=list_faults)
    app.post("/faults", callback=add_fault)
    app.delete("/faults", callback=clear_faults)
    app.delete("/faults/<fault_id>", callback=delete_fault)
    app.get("/quotas", callback=show_quotas)
    app.put("/quotas", callback=set_quotas)
    app.get("/requests", callback=request_counts)
    return app


def list_faults(cloud):
    return {"faults": cloud.store.all("faults")}


def add_fault(cloud):
    rule = json_body(FAULT)
    rule["id"] = new_id()
    rule.setdefault("count", None)
    cloud.store.put("faults", rule)
    bottle.response.status = 201
    return {"fault": rule}


def clear_faults(cloud):
    with cloud.store.transaction() as data:
        data["faults"].clear()
    bottle.response.status = 204
    return ""


def delete_fault(cloud, fault_id):
    if cloud.store.delete("faults", fault_id) is None:
        raise not_found(f"No fault {fault_id}")
    bottle.response.status = 204
    return ""


def show_quotas(cloud):
    return {"quotas": cloud.store.get("quotas", "project"), "usage": cloud.usage()}


def set_quotas(cloud):
    changes = json_body({"type": "object", "additionalProperties": {
        "type": "integer", "minimum": -1}})
    unknown = set(changes) - set(DEFAULT_QUOTAS)
    if unknown:
        raise ApiError(400, f"Unknown quota: {', '.join(sorted(unknown))}")
    with cloud.store.transaction() as data:
        data["quotas"]["project"].update(changes)
    return {"quotas": cloud.store.get("quotas", "project")}


def request_counts(cloud):
    return {"requests": dict(cloud.requests)}
