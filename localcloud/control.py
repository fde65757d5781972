"""The local cloud's own control API: faults to inject, quotas to set, request counts.

Not OpenStack: tests and people use it (through `localcloud fault` and `localcloud quota`)
to make the cloud misbehave on purpose or to check that nothing reached it.
"""

import bottle

from localcloud.api import ApiError, json_body, not_found, strict
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
    app = bottle.Bottle()
    store = cloud.store

    @app.get("/faults")
    def list_faults():
        return {"faults": store.all("faults")}

    @app.post("/faults")
    def add_fault():
        rule = json_body(FAULT)
        rule["id"] = new_id()
        rule.setdefault("count", None)
        store.put("faults", rule)
        bottle.response.status = 201
        return {"fault": rule}

    @app.delete("/faults")
    def clear_faults():
        with store.transaction() as data:
            data["faults"].clear()
        bottle.response.status = 204
        return ""

    @app.delete("/faults/<fault_id>")
    def delete_fault(fault_id):
        if store.delete("faults", fault_id) is None:
            raise not_found(f"No fault {fault_id}")
        bottle.response.status = 204
        return ""

    @app.get("/quotas")
    def show_quotas():
        return {"quotas": store.get("quotas", "project"), "usage": cloud.usage()}

    @app.put("/quotas")
    def set_quotas():
        changes = json_body({"type": "object", "additionalProperties": {
            "type": "integer", "minimum": -1}})
        unknown = set(changes) - set(DEFAULT_QUOTAS)
        if unknown:
            raise ApiError(400, f"Unknown quota: {', '.join(sorted(unknown))}")
        with store.transaction() as data:
            data["quotas"]["project"].update(changes)
        return {"quotas": store.get("quotas", "project")}

    @app.get("/requests")
    def request_counts():
        return {"requests": dict(cloud.requests)}

    return app
