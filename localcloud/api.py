"""What every service of the local cloud shares: errors, tokens, microversions, faults, records.

Each service is a Bottle app with `ServicePlugin` installed. A route names its operation
(`op="server.create"`) so that faults can target it; handlers raise `ApiError` and return dicts.
Routes that are module-level functions get the cloud from `Inject` by asking for `cloud`.
"""

import functools
import inspect
import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

import bottle
import jsonschema

from localcloud.store import Store

SECRET_KEYS = {"password", "secret", "adminPass", "access_token", "client_secret"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, kind: str | None = None, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind  # the service's own error type name, when it has one
        self.headers = headers or {}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


# --- error bodies, one style per service ---------------------------------------------------

NOVA_FAULT_NAMES = {
    400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
    405: "badMethod", 409: "conflictingRequest", 413: "overLimit", 415: "badMediaType",
    429: "overLimit", 501: "notImplemented", 503: "serviceUnavailable",
}
HTTP_TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 409: "Conflict",
    413: "Request Entity Too Large", 415: "Unsupported Media Type",
    500: "Internal Server Error", 503: "Service Unavailable",
}


def nova_error(error: ApiError) -> dict:
    name = error.kind or NOVA_FAULT_NAMES.get(error.status, "computeFault")
    return {name: {"code": error.status, "message": error.message}}


def keystone_error(error: ApiError) -> dict:
    title = HTTP_TITLES.get(error.status, "Error")
    return {"error": {"code": error.status, "message": error.message, "title": title}}


def neutron_error(error: ApiError) -> dict:
    kind = error.kind or "HTTP" + HTTP_TITLES.get(error.status, "Error").replace(" ", "")
    return {"NeutronError": {"type": kind, "message": error.message, "detail": ""}}


def glance_error(error: ApiError) -> str:
    title = HTTP_TITLES.get(error.status, "Error")
    return f"<html>\n <head>\n  <title>{error.status} {title}</title>\n </head>\n <body>\n  " \
        f"<h1>{error.status} {title}</h1>\n  {bottle.html_escape(error.message)}<br /><br />\n" \
        f"\n\n\n </body>\n</html>"


# --- microversions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Microversions:
    service_type: str  # as in the OpenStack-API-Version header: "compute", "volume"
    minimum: str
    maximum: str
    legacy_header: str | None = None  # X-OpenStack-Nova-API-Version

    def negotiate(self, headers) -> str:
        asked = None
        for value in headers.getall("OpenStack-API-Version") if hasattr(headers, "getall") \
                else [headers.get("OpenStack-API-Version")]:
            if not value:
                continue
            for part in value.split(","):
                service, _, version = part.strip().partition(" ")
                if service.lower() == self.service_type:
                    asked = version.strip()
        if asked is None and self.legacy_header:
            asked = headers.get(self.legacy_header)
        if not asked:
            return self.minimum
        if asked.lower() == "latest":
            return self.maximum
        if not re.fullmatch(r"[1-9][0-9]*\.(0|[1-9][0-9]*)", asked):
            raise ApiError(400, f"API Version String {asked} is of invalid format. Must be of "
                           "format MajorNum.MinorNum.")
        if not version_tuple(self.minimum) <= version_tuple(asked) <= version_tuple(self.maximum):
            raise ApiError(406, f"Version {asked} is not supported by the API. Minimum is "
                           f"{self.minimum} and maximum is {self.maximum}.")
        return asked

    def headers(self, version: str) -> dict:
        headers = {"OpenStack-API-Version": f"{self.service_type} {version}",
                   "Vary": "OpenStack-API-Version"}
        if self.legacy_header:
            headers[self.legacy_header] = version
            headers["Vary"] += f", {self.legacy_header}"
        return headers


def version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


def microversion() -> tuple[int, int]:
    """The negotiated microversion of the request being served."""
    return version_tuple(bottle.request.environ["localcloud.microversion"])


def at_least(version: str) -> bool:
    return microversion() >= version_tuple(version)


# --- fault injection -----------------------------------------------------------------------


class Faults:
    """Rules that make chosen operations fail or slow down, for a count or at a rate.

    A rule: {"operation": "server.create", "action": "error" | "http" | "delay",
             "status": 500, "message": "...", "delay": 2.0, "count": 1, "rate": 1.0}
    "http" answers the request with the status; "error" lets the request succeed and makes
    the resource go to its error state (ERROR, error, killed) when the work happens; "delay"
    sleeps that long before the request (or, for the asynchronous "build" operations, the work).
    """

    def __init__(self, store: Store):
        self.store = store
        self.lock = threading.Lock()

    def take(self, operation: str, actions: tuple[str, ...]) -> dict | None:
        """The first rule for the operation that fires now, its count used up by one."""
        with self.lock, self.store.transaction() as data:
            for rule_id, rule in list(data["faults"].items()):
                if rule["operation"] != operation or rule["action"] not in actions:
                    continue
                if random.random() >= rule.get("rate", 1.0):
                    continue
                if rule.get("count") is not None:
                    rule["count"] -= 1
                    if rule["count"] <= 0:
                        del data["faults"][rule_id]
                rule["fired"] = rule.get("fired", 0) + 1
                return dict(rule)
        return None

    def delay(self, operation: str) -> None:
        rule = self.take(operation, ("delay",))
        if rule:
            time.sleep(float(rule.get("delay", 1.0)))

    def failure(self, operation: str) -> str | None:
        """The message the work of this operation should fail with, if a rule says so."""
        rule = self.take(operation, ("error",))
        return rule.get("message", "Injected fault") if rule else None


# --- recording -----------------------------------------------------------------------------


class Recorder:
    """Appends every exchange as a JSON line, secrets blanked, when a path is given."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def record(self, **exchange) -> None:
        if not self.path:
            return
        line = json.dumps(redact(exchange), default=str)
        with self.lock, open(self.path, "a") as f:
            f.write(line + "\n")


def redact(value):
    if isinstance(value, dict):
        return {k: "***" if k in SECRET_KEYS and isinstance(v, str) else redact(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


# --- the plugin ----------------------------------------------------------------------------


class ServicePlugin:
    """Token check, microversion, faults, error bodies and recording around every route."""

    name = "localcloud"
    api = 2

    def __init__(self, *, service: str, tokens, faults: Faults, recorder: Recorder,
                 error_body: Callable, microversions: Microversions | None = None):
        self.service = service
        self.tokens = tokens
        self.faults = faults
        self.recorder = recorder
        self.error_body = error_body
        self.microversions = microversions

    def apply(self, callback, route):
        needs_token = route.config.get("auth", True)
        operation = route.config.get("op")

        def wrapper(*args, **kwargs):
            request, response = bottle.request, bottle.response
            version = None
            try:
                if needs_token:
                    request.environ["localcloud.token"] = self.tokens.check(
                        request.get_header("X-Auth-Token"))
                if self.microversions:
                    version = self.microversions.negotiate(request.headers)
                    request.environ["localcloud.microversion"] = version
                    for name, value in self.microversions.headers(version).items():
                        response.set_header(name, value)
                if operation:
                    self.faults.delay(operation)
                    rule = self.faults.take(operation, ("http",))
                    if rule:
                        raise ApiError(int(rule.get("status", 500)),
                                       rule.get("message", "Injected fault"))
                result = callback(*args, **kwargs)
            except ApiError as error:
                result = self.error_body(error)
                response.status = error.status
                for name, value in error.headers.items():
                    response.set_header(name, value)
                if isinstance(result, str):
                    response.content_type = "text/html; charset=UTF-8"
                if error.status == 401:
                    response.set_header("WWW-Authenticate",
                                        f"Keystone uri='{self.tokens.auth_url}'")
            self._record(version, result)
            if isinstance(result, dict | list):
                response.content_type = "application/json"
                return json.dumps(result)
            return result

        return wrapper

    def _record(self, version, result) -> None:
        if not self.recorder.path:
            return
        request = bottle.request
        self.recorder.record(
            service=self.service, method=request.method, path=request.path,
            query=parse_qs(request.query_string), microversion=version,
            status=bottle.response.status_code, request=json_body_or_none(),
            response=result if isinstance(result, dict | list) else None)


class Inject:
    """Bottle plugin: gives each route the values it asks for by parameter name, e.g.
    ``Inject(cloud=cloud)`` for ``def show_server(cloud, server_id)``; routes that ask for
    none of them are left as they are (Bottle's own plugin style, as bottle-sqlite's ``db``)."""

    name = "localcloud_inject"
    api = 2

    def __init__(self, **values):
        self.values = values

    def apply(self, callback, route):
        wanted = inspect.signature(route.callback).parameters
        given = {name: value for name, value in self.values.items() if name in wanted}
        if not given:
            return callback

        @functools.wraps(callback)
        def wrapper(*args, **kwargs):
            return callback(*args, **kwargs, **given)

        return wrapper


def json_body_or_none():
    try:
        raw = bottle.request.body.read()
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def json_body(schema: dict | None = None) -> dict:
    """The request's JSON body, checked against a JSON schema; 400 on any problem."""
    request = bottle.request
    try:
        raw = request.body.read()
        body = json.loads(raw) if raw else None
    except ValueError:
        raise bad_request("Malformed request body") from None
    if body is None:
        raise bad_request("The request body is empty or not JSON.")
    if schema is not None:
        try:
            jsonschema.validate(body, schema, format_checker=jsonschema.FormatChecker())
        except jsonschema.ValidationError as error:
            where = "/".join(str(p) for p in error.absolute_path)
            raise bad_request(f"Invalid input for field/attribute {where or 'body'}. "
                              f"Value: {json.dumps(error.instance)[:200]}. "
                              f"{error.message}") from None
    return body


def strict(properties: dict, required: tuple = ()) -> dict:
    """A JSON schema object with exactly these properties allowed, as Nova writes them."""
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


def link(href: str, rel: str = "self") -> dict:
    return {"rel": rel, "href": href}


def base_url() -> str:
    """The URL of the service root the request came in on (scheme, host and mount point)."""
    request = bottle.request
    return request.urlparts.scheme + "://" + request.urlparts.netloc + \
        request.environ.get("SCRIPT_NAME", "").rstrip("/")
