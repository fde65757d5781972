"""Check recorded localcloud API exchanges against the real OpenStack services' own schemas.

Run with the contract venv (scripts/contract-venv.sh), which holds nova, cinder, keystone and
tempest:

    var/contract-venv/bin/python tests/contract/validate.py RECORD.jsonl [--json]

RECORD.jsonl has one exchange per line:
    {"service": "compute", "method": "POST", "path": "/v2.1/servers", "query": {},
     "microversion": "2.96", "status": 202, "request": {...}, "response": {...}}

Each exchange is routed with the service's own router (nova's ROUTE_LIST, cinder's v3 APIRouter,
keystone's Flask blueprints) to the controller method that would serve it. The request body and
query are validated against the schemas that method's validation decorators register for the
recorded microversion, and so is a 2xx response body (Cinder's against tempest's response
schemas, CINDER_RESPONSES). A refusal must match too: a 400 from
localcloud for a request that the service's schema accepts is a violation unless its message is
one of the service's own 400 messages (a semantic refusal, refusal_patterns), and any other
answer to a request that the schema refuses is one.

nova, cinder and keystone register clashing oslo.config options, so each service is checked in a
process of its own. Exit status: 0 when every checked exchange conforms, 1 otherwise (violations,
routes the service does not know, unreadable lines).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import functools
import inspect
import json
import multiprocessing
import re
import sys
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

CHECKED_SERVICES = ("compute", "volumev3", "identity")
MESSAGE_LIMIT = 300
MIN_REFUSAL_TEXT = 12  # characters of fixed text a refusal's template must have to count
EXCHANGE_LIMIT = 600


class UnknownRoute(Exception):
    """The service has no route (or no controller method) for this method and path."""


class BadVersion(Exception):
    """The recorded microversion is one the service would refuse (400 or 406)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Refusal:
    """The service refuses this exchange before any schema is looked at."""

    status: int
    reason: str


@dataclass
class Operation:
    """The controller method serving an exchange, with its checks for one microversion."""

    name: str
    request_checks: list[Callable[[dict], list[str]]] = field(default_factory=list)
    response_check: Callable[[Any], list[str]] | None = None
    statuses: set[int] = field(default_factory=set)
    # the service's own 400 messages beyond its schema (semantic refusals), as patterns
    refusals: tuple[re.Pattern, ...] = ()


SKIP = "skip"  # version discovery and other exchanges that carry nothing to check


# --- generic checking -------------------------------------------------------------------------


def _short(text: str, limit: int = MESSAGE_LIMIT) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def leaf_errors(error) -> list:
    """A failed oneOf/anyOf as the errors of its closest branch (fewest errors), recursively.

    'x is not valid under any of the given schemas' names neither the field nor the reason;
    the branch the instance nearly matches (a live server, not a server from a down cell) does.
    """
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        return [error]
    branches: dict[int, list] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    if len(branches) < len(error.validator_value):  # some branch matched: oneOf matched twice
        return [error]
    closest = min(branches.values(), key=len)
    return [leaf for sub in closest for leaf in leaf_errors(sub)]


def schema_errors(validator, instance: Any, where: str) -> list[str]:
    """Every error the service's own validator finds, as 'where $.path: message' lines."""
    try:
        errors = [leaf for e in validator.iter_errors(instance) for leaf in leaf_errors(e)]
    except Exception as exc:  # the services turn these (TypeError from patterns...) into 400s
        return [f"{where}: {type(exc).__name__}: {_short(exc)}"]
    lines = []
    for error in sorted(errors, key=lambda e: e.json_path):
        cause = f" ({error.cause})" if error.cause is not None else ""
        lines.append(f"{where} {error.json_path}: {_short(error.message + cause)}")
    return lines


_VALIDATORS: dict[tuple[str, int], tuple[dict, Any]] = {}


def cached_validator(make_validator, schema: dict):
    """The services build a validator class per call; build one per schema and kind instead."""
    key = (make_validator.__qualname__, id(schema))
    if key not in _VALIDATORS:
        _VALIDATORS[key] = (schema, make_validator(schema))  # holding schema keeps its id unique
    return _VALIDATORS[key][1]


def schema_check(make_validator, schema, where: str, pick: Callable[[dict], Any]):
    """A request/response check for one schema, or None when the service validates nothing."""
    if schema is None:
        return None
    validator = cached_validator(make_validator, schema)
    return lambda exchange: schema_errors(validator, pick(exchange), where)


@functools.cache
def source_statuses(func) -> frozenset[int]:
    """2xx codes a method sets by hand (webob.Response(status_int=...), http.client.X)."""
    try:
        source = inspect.getsource(inspect.unwrap(func))
    except (OSError, TypeError):
        return frozenset()
    codes = {int(code) for code in re.findall(r"status_int=(\d{3})", source)}
    for name in re.findall(r"(?:HTTPStatus|http\.client)\.([A-Z_]+)\b", source):
        with contextlib.suppress(KeyError):
            codes.add(HTTPStatus[name].value)
    return frozenset(code for code in codes if 200 <= code < 300)


def judge_refusal(status: int, refusal: Refusal, service: str) -> list[str]:
    if status in (refusal.status, 401):
        return []
    return [f"{service} answers {refusal.status} here ({refusal.reason}); localcloud {status}"]


def judge_request(status: int, operation: Operation, exchange: dict, service: str) -> list[str]:
    if not operation.request_checks or status == 401:
        return []
    errors = [line for check in operation.request_checks for line in check(exchange)]
    if status == 400 and not errors and known_refusal(exchange, operation.refusals):
        return []  # refused past the schema, in words the service itself uses
    if status == 400 and not errors:
        reason = _short(json.dumps(exchange.get("response")), 200)
        return [f"localcloud refused with 400 a request that {service}'s schema accepts: {reason}"]
    if status != 400 and errors:
        return [f"localcloud answered {status}, {service} refuses with 400: {e}" for e in errors]
    return []


def refusal_patterns(exceptions, base: type) -> tuple[re.Pattern, ...]:
    """The messages of a service's exceptions that answer 400 (`exceptions` its exception
    module, `base` their base class), as patterns: each %(name)s or %(name)d stands for any
    text; templates with less than MIN_REFUSAL_TEXT characters of their own are left out. A
    semantic refusal (an availability zone the service does not have, a size below
    the snapshot's) passes its schema, so its 400 is judged by its words instead."""
    patterns = []
    for cls in vars(exceptions).values():
        message = getattr(cls, "msg_fmt", None) or getattr(cls, "message", None)  # nova, cinder
        if (isinstance(cls, type) and issubclass(cls, base) and getattr(cls, "code", None) == 400
                and isinstance(message, str)):
            parts = re.split(r"%\(\w+\)[sd]", message)
            if len("".join(parts).strip()) < MIN_REFUSAL_TEXT:
                continue  # '%(err)s' and the like would take any message
            patterns.append(re.compile(".+".join(re.escape(part) for part in parts),
                                       re.DOTALL))
    return tuple(patterns)


def known_refusal(exchange: dict, refusals: tuple[re.Pattern, ...]) -> bool:
    """Whether a 400's message (OpenStack's {"badRequest": {"message": ...}}) is one of the
    service's own refusals."""
    body = exchange.get("response")
    fault = body.get("badRequest") if isinstance(body, dict) else None
    message = fault.get("message") if isinstance(fault, dict) else None
    return isinstance(message, str) and any(p.fullmatch(message) for p in refusals)


def judge_response(status: int, operation: Operation, exchange: dict, service: str) -> list[str]:
    if not 200 <= status < 300:
        return []
    problems = []
    if operation.statuses and status not in operation.statuses:
        wanted = "/".join(str(code) for code in sorted(operation.statuses))
        problems.append(f"status {status}, {service} answers {wanted}")
    if operation.response_check is not None:
        problems += operation.response_check(exchange)
    return problems


def judge(exchange: dict, outcome: Operation | Refusal, service: str) -> list[str]:
    status = int(exchange.get("status") or 0)
    if isinstance(outcome, Refusal):
        return judge_refusal(status, outcome, service)
    return judge_request(status, outcome, exchange, service) + judge_response(
        status, outcome, exchange, service
    )


def checked_version(versions, text: str, service: str):
    """The service's APIVersionRequest for microversion `text`, `versions` being its
    api_version_request module. BadVersion as the service answers: 400 when it cannot parse
    the text, 406 when the version is outside its range."""
    try:
        version = versions.APIVersionRequest(text)
    except Exception as exc:
        raise BadVersion(400, f"{service} cannot parse microversion {text!r}") from exc
    low, high = versions.min_api_version(), versions.max_api_version()
    if not version.matches(low, high):
        raise BadVersion(406, f"{service} supports {low.get_string()}..{high.get_string()}")
    return version


def strip_version(path: str, segment: str) -> str | None:
    """'/v2.1/servers' -> '/servers'; '/v2.1' -> ''; None when the path is not under segment."""
    prefix = "/" + segment
    if path == prefix:
        return ""
    if path.startswith(prefix + "/"):
        return path[len(prefix) :]
    return None


def action_body(exchange: dict) -> bytes:
    return json.dumps(exchange.get("request")).encode()


def fake_request(version) -> types.SimpleNamespace:
    """What the services' microversion-aware decorators read from a request."""
    return types.SimpleNamespace(api_version_request=version)


# --- nova -------------------------------------------------------------------------------------


class NovaApi:
    """Nova's v2.1 API: routes from ROUTE_LIST, schemas from nova.api.validation decorators."""

    name = "nova"

    def __init__(self):
        from nova import exception
        from nova.api.openstack import ProjectMapper, api_version_request, wsgi
        from nova.api.openstack.compute import routes
        from nova.api.validation import validators

        self.versions = api_version_request
        self.wsgi = wsgi
        self.validators = validators
        self.refusals = refusal_patterns(exception, exception.NovaException)
        self.mapper = ProjectMapper()
        for path, methods in routes.ROUTE_LIST:
            if isinstance(methods, str):  # ('', '/'): the redirect to version discovery
                continue
            for method, (factory, action) in methods.items():
                # the controller factory itself, not an instance: instances need RPC and a DB
                self.mapper.create_route(path, method, factory, action)

    def version(self, microversion: str | None):
        text = microversion or self.versions.DEFAULT_API_VERSION
        return checked_version(self.versions, text, self.name)

    def resolve(self, exchange: dict, version) -> Operation | Refusal | str:
        sub = strip_version(exchange["path"], "v2.1")
        if exchange["path"] in ("", "/") or sub == "":
            return SKIP
        if sub is None:
            raise UnknownRoute("not below /v2.1")
        match = self.mapper.match(sub, environ={"REQUEST_METHOD": exchange["method"]})
        if not match:
            raise UnknownRoute("no route in nova's ROUTE_LIST")
        found = self._method(match["controller"], match["action"], exchange)
        if isinstance(found, Refusal):
            return found
        return self.operation(*found, version)

    def _method(self, factory, action: str, exchange: dict):
        main, subs = factory.args  # functools.partial(_create_controller, Main, [Sub, ...])
        func = getattr(main, action, None)
        if func is not None:
            return func, f"{main.__name__}.{action}"
        if action not in (*self.wsgi._ROUTES_METHODS, "action"):
            raise UnknownRoute(f"{main.__name__} has no method {action}")
        actions = {}
        for cls in (main, *subs):
            actions.update({key: (cls, attr) for key, attr in cls.wsgi_actions.items()})
        try:
            key = self.wsgi.action_peek(action_body(exchange)) if action == "action" else action
        except Exception as exc:
            return Refusal(400, f"malformed action body: {exc}")
        if key not in actions:
            return Refusal(400, f"there is no such action: {key}")
        cls, attr = actions[key]
        return getattr(cls, attr), f"{cls.__name__}.{attr} ({key})"

    def operation(self, func, name: str, version) -> Operation | Refusal:
        low = self.versions.APIVersionRequest(getattr(func, "min_version", None))
        high = self.versions.APIVersionRequest(getattr(func, "max_version", None))
        if not version.matches(low, high):
            return Refusal(404, f"{name} is not in microversion {version.get_string()}")
        if getattr(func, "removed", False):
            return Refusal(410, f"{name} was removed")
        req = fake_request(version)
        operation = Operation(name, statuses=self._statuses(func, req), refusals=self.refusals)
        body = schema_check(self._body_validator, self._pick(func, "request_body_schemas", req),
                            "request", lambda ex: ex.get("request"))
        query = schema_check(self._query_validator, self._pick(func, "request_query_schemas", req),
                             "query", lambda ex: ex.get("query") or {})
        operation.request_checks = [check for check in (body, query) if check]
        operation.response_check = schema_check(
            self._body_validator, self._pick(func, "response_body_schemas", req),
            "response", lambda ex: ex.get("response"))
        return operation

    @staticmethod
    def _pick(func, attribute: str, req):
        schemas = getattr(func, attribute, None)
        return schemas(req) if schemas is not None else None

    def _statuses(self, func, req) -> set[int]:
        codes = set(source_statuses(func))
        if hasattr(func, "wsgi_codes"):
            with contextlib.suppress(Exception):
                codes.add(func.wsgi_codes(req))
        return codes or {200}

    def _body_validator(self, schema):
        return self.validators._SchemaValidator(schema, False, True).validator

    def _query_validator(self, schema):
        return self.validators._SchemaValidator(schema, False, False).validator


# --- cinder -----------------------------------------------------------------------------------


def _no_rpc(self, *args, **kwargs):
    """Stands in for cinder.rpc.RPCAPI.__init__, which asks the database for service versions."""


class CinderApi:
    """Cinder's v3 API: its own APIRouter, request schemas from cinder.api.validation
    decorators, response schemas from tempest (CINDER_RESPONSES)."""

    name = "cinder"

    def __init__(self):
        from cinder import objects, rpc
        from oslo_config import cfg

        objects.register_all()
        rpc.RPCAPI.__init__ = _no_rpc
        import cinder.db.api  # noqa: F401  registers the [database] options
        from cinder.api.openstack import api_version_request, wsgi
        from cinder.api.v3 import router
        from cinder.api.validation import validators

        cfg.CONF([], project="cinder", default_config_files=[], default_config_dirs=[])
        cfg.CONF.set_override("connection", "sqlite://", "database")
        from cinder import exception

        self.versions = api_version_request
        self.wsgi = wsgi
        self.validators = validators
        self.router = router.APIRouter()
        self.refusals = refusal_patterns(exception, exception.CinderException)

    def version(self, microversion: str | None):
        text = microversion or self.versions._MIN_API_VERSION
        return checked_version(self.versions, text, self.name)

    def resolve(self, exchange: dict, version) -> Operation | Refusal | str:
        sub = strip_version(exchange["path"], "v3")
        if exchange["path"] in ("", "/") or sub in ("", "/"):
            return SKIP
        if sub is None:
            raise UnknownRoute("not below /v3")
        match = self.router.map.match(sub, environ={"REQUEST_METHOD": exchange["method"]})
        if not match:
            raise UnknownRoute("no route in cinder's v3 APIRouter")
        resource, action = match["controller"], match["action"]
        try:
            meth, _extensions = resource.get_method(None, action, "application/json",
                                                    action_body(exchange))
        except (AttributeError, TypeError) as exc:
            raise UnknownRoute(f"no controller method for {action}") from exc
        except KeyError as exc:
            return Refusal(400, f"there is no such action: {exc.args[0]}")
        except Exception as exc:
            return Refusal(400, f"malformed action body: {exc}")
        return self.operation(meth, version)

    def operation(self, meth, version) -> Operation | Refusal:
        func = self._select_version(meth, version)
        if func is None:
            name = self._versioned_name(meth)
            return Refusal(404, f"{name} is not in microversion {version.get_string()}")
        checks = [
            schema_check(self._validator, schema, "request", lambda ex: ex.get("request"))
            for schema, low, high in self._schemas(func)
            if version.matches(low, high)
        ]
        statuses = set(source_statuses(func))
        if getattr(func, "wsgi_code", None):
            statuses.add(func.wsgi_code)
        return Operation(func.__qualname__, request_checks=checks, statuses=statuses or {200},
                         response_check=self._response_check(func.__qualname__, version),
                         refusals=self.refusals)

    @staticmethod
    def _select_version(meth, version):
        """The function a cinder versioned method ('version_select') would call, or None."""
        if getattr(meth, "__name__", "") != "version_select":
            return meth
        scope = inspect.getclosurevars(meth).nonlocals
        for candidate in scope["self"].versioned_methods[scope["key"]]:
            if version.matches_versioned_method(candidate):
                return candidate.func
        return None

    @staticmethod
    def _versioned_name(meth) -> str:
        scope = inspect.getclosurevars(meth).nonlocals
        return f"{type(scope['self']).__name__}.{scope['key']}"

    @staticmethod
    def _schemas(func):
        """(schema, min, max) of every cinder.api.validation.schema wrapper around func."""
        found = []
        while func is not None:
            names = func.__code__.co_freevars
            cells = dict(zip(names, func.__closure__ or (), strict=True))
            if "request_body_schema" in cells:
                found.append(tuple(cells[key].cell_contents for key in
                                   ("request_body_schema", "min_version", "max_version")))
            func = getattr(func, "__wrapped__", None)
        return found

    def _validator(self, schema):
        return self.validators._SchemaValidator(schema).validator

    def _response_check(self, name: str, version):
        """Tempest's check of a 2xx answer to operation `name` at `version`, or None where
        tempest has no schema for it (CINDER_RESPONSES)."""
        if name not in CINDER_RESPONSES:
            return None
        version_string = version.get_string()

        def check(exchange: dict) -> list[str]:
            schema = tempest_volume_schema(name, version_string, exchange.get("query"))
            if schema is None:
                return []
            problems = []
            if exchange["status"] not in schema["status_code"]:
                wanted = "/".join(str(code) for code in schema["status_code"])
                problems.append(f"status {exchange['status']}, tempest's schema wants {wanted}")
            body = schema.get("response_body")
            if body is not None:
                validator = cached_validator(tempest_validator, body)
                problems += schema_errors(validator, exchange.get("response"), "response")
            elif exchange.get("response"):
                problems.append("response: a body where Cinder answers with none")
            return problems

        return check


# Cinder declares no response schemas: its validation decorators cover requests only. Tempest,
# OpenStack's integration suite, checks real Cinder's answers against its own
# (tempest/lib/api_schema/response/volume), and these are applied here. operation ->
# (tempest's schema module, the schema's name, the newest microversion it describes or None).
# The volumes module follows the microversion as tempest's VolumesClient chooses it
# (schema_versions_info), except for update: Cinder answers it with the same detail view as
# create (cinder/api/v3/volumes.py; realcloud shows consumes_quota and volume_type_id at
# 3.70), which tempest's update_volume of 3.63 on lacks. The other modules describe
# Cinder's base answers: a snapshot's until 3.13 (3.14 adds group_snapshot_id,
# cinder/api/v3/views/snapshots.py); the snapshot list's summary stays so at every
# microversion. Cinder's availability-zone listing has no tempest schema: not checked.
CINDER_RESPONSES = {
    "VolumeController.index": ("volumes", "list_volumes_no_detail", None),
    "VolumeController.detail": ("volumes", "list_volumes_with_detail", None),
    "VolumeController.show": ("volumes", "show_volume", None),
    "VolumeController.create": ("volumes", "create_volume", None),
    "VolumeController.update": ("volumes", "update_volume", "3.62"),
    "VolumeController.delete": ("volumes", "delete_volume", None),
    "SnapshotsController.index": ("snapshots", "list_snapshots_no_detail", None),
    "SnapshotsController.detail": ("snapshots", "list_snapshots_with_detail", "3.13"),
    "SnapshotsController.show": ("snapshots", "show_snapshot", "3.13"),
    "SnapshotsController.create": ("snapshots", "create_snapshot", "3.13"),
    "SnapshotsController.delete": ("snapshots", "delete_snapshot", None),
    "VolumeTypesController.index": ("volume_types", "list_volume_types", None),
    "VolumeTypesController.show": ("volume_types", "show_volume_type", None),
    "LimitsController.index": ("limits", "show_limits", None),
    "QuotaSetsController.show": ("quotas", "show_quota_set", None),
}


def tempest_volume_schema(name: str, version: str, query: dict | None = None) -> dict | None:
    """Tempest's response schema for Cinder operation `name` at microversion `version`
    ('3.70') and the request's query (parse_qs form), or None where CINDER_RESPONSES has none
    that describes it. A quota set asked for with `usage` gets tempest's usage schema, as
    its QuotasClient.show_quota_set chooses."""
    import importlib

    from tempest.lib.common import api_version_request
    from tempest.lib.services.volume.v3.volumes_client import VolumesClient

    if name not in CINDER_RESPONSES:
        return None
    module_name, schema_name, newest = CINDER_RESPONSES[name]
    wanted = api_version_request.APIVersionRequest(version)
    if newest is not None and wanted > api_version_request.APIVersionRequest(newest):
        return None
    if module_name == "volumes":
        for entry in VolumesClient.schema_versions_info:
            low = api_version_request.APIVersionRequest(entry["min"])
            high = api_version_request.APIVersionRequest(entry["max"])
            if wanted.matches(low, high):
                return getattr(entry["schema"], schema_name)
        return None
    if schema_name == "show_quota_set" and wants_usage(query):
        schema_name = "show_quota_set_usage"
    module = importlib.import_module(f"tempest.lib.api_schema.response.volume.{module_name}")
    return getattr(module, schema_name)


def wants_usage(query: dict | None) -> bool:
    """Whether a quota-set query asks for usage, as Cinder reads it (utils.get_bool_param:
    oslo's strutils.bool_from_string, strict)."""
    from oslo_utils import strutils

    values = (query or {}).get("usage") or ["false"]
    try:
        return strutils.bool_from_string(values[0], strict=True)
    except ValueError:
        return False


def tempest_validator(schema: dict):
    """The validator tempest's RestClient.validate_response uses, with its format checker."""
    from tempest.lib.common import rest_client

    return rest_client.JSONSCHEMA_VALIDATOR(schema, format_checker=rest_client.FORMAT_CHECKER)


# --- keystone ---------------------------------------------------------------------------------


class KeystoneApi:
    """Keystone's v3 API: its Flask blueprints, schemas from keystone.api.validation decorators."""

    name = "keystone"

    def __init__(self):
        import flask
        from keystone import exception as ks_exception
        from keystone.api.validation import validators
        from keystone.auth import schema as auth_schema
        from keystone.common.validation.validators import SchemaValidator
        from keystone.server.flask import application
        from werkzeug import exceptions, routing

        app = flask.Flask("contract")
        for api in application.__apis__:
            for blueprint in api.APIs:
                blueprint.instantiate_and_register_to_app(app)
        self.app = app
        self.urls = app.url_map.bind("localhost")
        self.not_routed = (exceptions.NotFound, exceptions.MethodNotAllowed,
                           routing.RequestRedirect)
        self.validators = validators
        self.auth_schema = auth_schema
        self.token_validator = SchemaValidator(auth_schema.token_issue).validator
        self.schema_error = ks_exception.SchemaValidationError

    @staticmethod
    def version(microversion: str | None):
        return microversion

    def resolve(self, exchange: dict, version) -> Operation | str:
        try:
            endpoint, _args = self.urls.match(normalize_url(exchange["path"]),
                                              method=exchange["method"])
        except self.not_routed as exc:
            raise UnknownRoute(f"no route in keystone's blueprints ({exc})") from exc
        view_class = getattr(self.app.view_functions[endpoint], "view_class", None)
        if view_class is None:  # plain view functions: version discovery
            return SKIP
        method = exchange["method"].lower()
        func = getattr(view_class, method, None)
        if func is None and method == "head":
            func = getattr(view_class, "get", None)
        if func is None:
            raise UnknownRoute(f"{view_class.__name__} has no {method}")
        return self.operation(func, f"{view_class.__name__}.{func.__name__}")

    def operation(self, func, name: str) -> Operation:
        body = schema_check(self._validator, getattr(func, "_request_body_schema", None),
                            "request", lambda ex: ex.get("request") or {})
        query = schema_check(self._validator, getattr(func, "_request_query_schema", None),
                             "query", lambda ex: first_values(ex.get("query")))
        if name == "AuthTokenResource.post":
            body = self._token_check
        return Operation(
            name,
            request_checks=[check for check in (body, query) if check],
            response_check=schema_check(
                self._validator, getattr(func, "_response_body_schema", None),
                "response", lambda ex: ex.get("response")),
            statuses=set(source_statuses(func)) or {200},
        )

    def _token_check(self, exchange: dict) -> list[str]:
        """POST /v3/auth/tokens: keystone validates in the method, not with a decorator.

        validate_issue_token_auth is token_issue's schema plus checks in code; the schema's
        errors come first, from iter_errors, for their paths.
        """
        auth = (exchange.get("request") or {}).get("auth")
        if auth is None:  # keystone skips validation, then fails to authenticate
            return []
        errors = schema_errors(self.token_validator, auth, "request.auth")
        if errors:
            return errors
        try:
            self.auth_schema.validate_issue_token_auth(auth)
        except self.schema_error as exc:
            return [f"request.auth: {_short(exc)}"]
        return []

    def _validator(self, schema):
        return self.validators._SchemaValidator(schema, is_body=True).validator


def normalize_url(path: str) -> str:
    """'/v3/' -> '/v3': keystone's URLNormalizingMiddleware strips trailing slashes before its
    Flask app routes a request (keystone/server/flask/request_processing/middleware)."""
    return path.rstrip("/") or "/"


def first_values(query: dict | None) -> dict:
    """parse_qs form to what keystone validates: flask's MultiDict yields each key's first value."""
    return {key: values[0] for key, values in (query or {}).items() if values}


APIS = {"compute": NovaApi, "volumev3": CinderApi, "identity": KeystoneApi}


# --- one service, in its own process ----------------------------------------------------------


def check_exchange(api, exchange: dict) -> dict:
    result = {"line": exchange["line"], "operation": None, "problems": []}
    try:
        outcome = api.resolve(exchange, api.version(exchange.get("microversion")))
    except UnknownRoute as exc:
        return {**result, "outcome": "unknown", "problems": [f"unknown to {api.name}: {exc}"]}
    except BadVersion as exc:
        outcome = Refusal(exc.status, f"microversion {exchange.get('microversion')}: {exc}")
    if outcome == SKIP:
        return {**result, "outcome": "skipped"}
    if isinstance(outcome, Operation):
        result["operation"] = outcome.name
    return {**result, "outcome": "checked", "problems": judge(exchange, outcome, api.name)}


def check_service(service: str, exchanges: list[dict]) -> list[dict]:
    """Worker entry point: import one service and check its exchanges."""
    warnings.simplefilter("ignore")
    with contextlib.redirect_stdout(sys.stderr):
        api = APIS[service]()
    results = []
    for exchange in exchanges:
        try:
            results.append(check_exchange(api, exchange))
        except Exception as exc:  # a checker bug must not hide the other exchanges
            results.append({"line": exchange["line"], "outcome": "checked", "operation": None,
                            "problems": [f"checker error: {type(exc).__name__}: {_short(exc)}"]})
    return results


def run_services(groups: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Each service in a fresh process: nova, cinder and keystone clash in oslo.config."""
    wanted = [service for service in CHECKED_SERVICES if groups.get(service)]
    if not wanted:
        return {}
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=len(wanted), mp_context=context, max_tasks_per_child=1
    ) as pool:
        futures = {service: pool.submit(check_service, service, groups[service])
                   for service in wanted}
        return {service: future.result() for service, future in futures.items()}


# --- input and report -------------------------------------------------------------------------


REQUIRED_KEYS = ("service", "method", "path", "status")


def load_exchanges(path: str) -> tuple[list[dict], list[str]]:
    exchanges, errors = [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                exchange = json.loads(line)
            except ValueError as exc:
                errors.append(f"line {number}: not JSON: {exc}")
                continue
            if not isinstance(exchange, dict) or any(k not in exchange for k in REQUIRED_KEYS):
                errors.append(f"line {number}: an exchange needs {', '.join(REQUIRED_KEYS)}")
                continue
            exchanges.append({**exchange, "line": number})
    return exchanges, errors


def group_by_service(exchanges: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for exchange in exchanges:
        groups.setdefault(exchange["service"], []).append(exchange)
    return groups


def build_report(groups, results, load_errors) -> dict:
    by_line = {ex["line"]: ex for exchanges in groups.values() for ex in exchanges}
    services = {}
    for service, exchanges in groups.items():
        rows = results.get(service)
        if rows is None:
            services[service] = {"checked": 0, "not_checked": len(exchanges), "violations": [],
                                 "unknown": [], "skipped": 0}
            continue
        services[service] = summarise(rows, by_line)
    failed = bool(load_errors) or any(s["violations"] or s["unknown"] for s in services.values())
    return {"ok": not failed, "load_errors": load_errors, "services": services}


def summarise(rows: list[dict], by_line: dict) -> dict:
    def entry(row):
        exchange = {k: v for k, v in by_line[row["line"]].items() if k != "line"}
        return {"line": row["line"], "operation": row["operation"], "problems": row["problems"],
                "exchange": exchange}

    return {
        "checked": sum(row["outcome"] == "checked" for row in rows),
        "skipped": sum(row["outcome"] == "skipped" for row in rows),
        "not_checked": 0,
        "violations": [entry(r) for r in rows if r["outcome"] == "checked" and r["problems"]],
        "unknown": [entry(r) for r in rows if r["outcome"] == "unknown"],
    }


def describe(entry: dict) -> str:
    ex = entry["exchange"]
    version = f" @{ex['microversion']}" if ex.get("microversion") else ""
    operation = f" -> {entry['operation']}" if entry["operation"] else ""
    return f"line {entry['line']}: {ex['method']} {ex['path']}{version} [{ex['status']}]{operation}"


def print_entries(kind: str, entries: list[dict]) -> None:
    for entry in entries:
        print(f"  {kind} {describe(entry)}")
        for problem in entry["problems"]:
            print(f"    - {problem}")
        print(f"    exchange: {_short(json.dumps(entry['exchange']), EXCHANGE_LIMIT)}")


def print_report(report: dict) -> None:
    for error in report["load_errors"]:
        print(f"ERROR {error}")
    for service, summary in sorted(report["services"].items()):
        if summary["not_checked"]:
            print(f"{service}: {summary['not_checked']} exchanges not checked (no schemas)")
            continue
        print(f"{service}: checked {summary['checked']} exchanges, "
              f"{len(summary['violations'])} violations, {len(summary['unknown'])} unknown routes, "
              f"{summary['skipped']} version discovery")
        print_entries("VIOLATION", summary["violations"])
        print_entries("UNKNOWN", summary["unknown"])
    print("contract: OK" if report["ok"] else "contract: FAILED")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", help="JSON lines file of recorded exchanges")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        exchanges, load_errors = load_exchanges(args.record)
    except OSError as exc:
        print(f"contract: cannot read {args.record}: {exc}", file=sys.stderr)
        return 2
    groups = group_by_service(exchanges)
    report = build_report(groups, run_services(groups), load_errors)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_report(report)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
