"""Keystone v3: password and application-credential tokens, the catalog, app credentials."""

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

import bottle

from localcloud.api import ApiError, base_url, json_body, not_found
from localcloud.store import Store, new_id, now

TOKEN_LIFETIME = timedelta(hours=12)
DOMAIN = {"id": "default", "name": "Default"}
UNAUTHORIZED = "The request you have made requires authentication."


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


class Tokens:
    """Issues and checks tokens for the one user and project of the local cloud."""

    def __init__(self, store: Store, identity: dict, auth_url: str):
        self.store = store
        self.identity = identity  # user_id, username, password_hash, project_id, project_name
        self.auth_url = auth_url

    def check(self, token_id: str | None) -> dict:
        token = self.store.get("tokens", token_id) if token_id else None
        if token is None or token["expires_at"] < iso(datetime.now(UTC)):
            raise ApiError(401, UNAUTHORIZED)
        return token

    def issue(self, methods: list[str], app_credential: dict | None = None) -> dict:
        issued = datetime.now(UTC)
        token = {
            "id": secrets.token_hex(32),
            "methods": methods,
            "issued_at": iso(issued),
            "expires_at": iso(issued + TOKEN_LIFETIME),
            "user_id": self.identity["user_id"],
            "project_id": self.identity["project_id"],
            "application_credential": app_credential,
        }
        self.store.put("tokens", token)
        self._forget_expired()
        return token

    def _forget_expired(self) -> None:
        cutoff = iso(datetime.now(UTC))
        with self.store.transaction() as data:
            for token_id in [t for t, v in data["tokens"].items() if v["expires_at"] < cutoff]:
                del data["tokens"][token_id]


def make_app(cloud) -> bottle.Bottle:
    app = bottle.Bottle()
    identity = cloud.identity
    tokens: Tokens = cloud.tokens

    def catalog() -> list[dict]:
        root = cloud.config.endpoint
        services = [
            ("identity", "keystone", f"{root}/identity"),
            ("compute", "nova", f"{root}/compute/v2.1"),
            ("image", "glance", f"{root}/image"),
            ("block-storage", "cinder", f"{root}/volume/v3/{identity['project_id']}"),
            ("volumev3", "cinderv3", f"{root}/volume/v3/{identity['project_id']}"),
            ("network", "neutron", f"{root}/network"),
        ]
        return [{
            "id": hashlib.md5(kind.encode(), usedforsecurity=False).hexdigest(),
            "type": kind, "name": name,
            "endpoints": [{"id": hashlib.md5(f"{kind}{face}".encode(),
                                             usedforsecurity=False).hexdigest(),
                           "interface": face, "region": cloud.config.region,
                           "region_id": cloud.config.region, "url": url}
                          for face in ("public", "internal")],
        } for kind, name, url in services]

    def token_body(token: dict) -> dict:
        body = {
            "methods": token["methods"],
            "user": {"id": identity["user_id"], "name": identity["username"],
                     "domain": DOMAIN, "password_expires_at": None},
            "audit_ids": [hashlib.sha256(token["id"].encode()).hexdigest()[:22]],
            "expires_at": token["expires_at"],
            "issued_at": token["issued_at"],
            "project": {"id": identity["project_id"], "name": identity["project_name"],
                        "domain": DOMAIN},
            "is_domain": False,
            "roles": [{"id": identity["role_ids"][name], "name": name}
                      for name in ("admin", "member", "reader")],
            "catalog": catalog(),
        }
        if token.get("application_credential"):
            body["application_credential"] = token["application_credential"]
        return {"token": body}

    def version_document() -> dict:
        return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": f"{base_url()}/v3/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.identity-v3+json"}]}

    @app.get("/", auth=False)
    def versions():
        bottle.response.status = 300
        return {"versions": {"values": [version_document()]}}

    @app.get("/v3", auth=False)
    @app.get("/v3/", auth=False)
    def version():
        return {"version": version_document()}

    @app.post("/v3/auth/tokens", auth=False, op="token.issue")
    def issue_token():
        auth = json_body().get("auth")
        if not isinstance(auth, dict) or not isinstance(auth.get("identity"), dict):
            raise ApiError(400, "Invalid input for field 'identity': 'identity' is a required "
                           "property")
        methods = auth["identity"].get("methods") or []
        if "password" in methods:
            check_password(auth["identity"].get("password") or {})
            check_scope(auth.get("scope"))
            token = tokens.issue(["password"])
        elif "application_credential" in methods:
            if auth.get("scope"):
                raise ApiError(401, "Application credentials cannot request a scope.")
            credential = check_app_credential(auth["identity"].get("application_credential")
                                              or {})
            token = tokens.issue(["application_credential"],
                                 {"id": credential["id"], "name": credential["name"],
                                  "restricted": not credential["unrestricted"]})
        else:
            raise ApiError(401, UNAUTHORIZED)
        bottle.response.status = 201
        bottle.response.set_header("X-Subject-Token", token["id"])
        return token_body(token)

    def check_password(password: dict) -> None:
        user = password.get("user") or {}
        known = user.get("id") == identity["user_id"] or (
            user.get("name") == identity["username"]
            and (user.get("domain") or {}).get("id", "default") == "default"
            and (user.get("domain") or {}).get("name", "Default") == "Default")
        given = hash_secret(str(user.get("password", "")))
        if not (known and hmac.compare_digest(given, identity["password_hash"])):
            raise ApiError(401, UNAUTHORIZED)

    def check_scope(scope) -> None:
        project = (scope or {}).get("project")
        if scope and not project:
            raise ApiError(401, "Only project scope is available in this cloud.")
        if project and project.get("id", identity["project_id"]) != identity["project_id"]:
            raise ApiError(401, UNAUTHORIZED)
        if project and project.get("name", identity["project_name"]) != \
                identity["project_name"]:
            raise ApiError(401, UNAUTHORIZED)

    def check_app_credential(given: dict) -> dict:
        matches = [c for c in cloud.store.all("app_credentials")
                   if c["id"] == given.get("id") or (
                       not given.get("id") and c["name"] == given.get("name"))]
        secret_hash = hash_secret(str(given.get("secret", "")))
        for credential in matches:
            if hmac.compare_digest(secret_hash, credential["secret_hash"]):
                if credential["expires_at"] and credential["expires_at"] < iso(
                        datetime.now(UTC)):
                    break
                return credential
        raise ApiError(401, UNAUTHORIZED)

    @app.get("/v3/auth/tokens")
    @app.route("/v3/auth/tokens", method="HEAD")
    def validate_token():
        token = tokens.check(bottle.request.get_header("X-Subject-Token"))
        bottle.response.set_header("X-Subject-Token", token["id"])
        return token_body(token)

    @app.delete("/v3/auth/tokens")
    def revoke_token():
        token = tokens.check(bottle.request.get_header("X-Subject-Token"))
        cloud.store.delete("tokens", token["id"])
        bottle.response.status = 204
        return ""

    @app.get("/v3/auth/catalog")
    def get_catalog():
        return {"catalog": catalog(), "links": {"self": bottle.request.url}}

    def project_view() -> dict:
        return {"id": identity["project_id"], "name": identity["project_name"],
                "domain_id": "default", "description": "", "enabled": True,
                "is_domain": False, "parent_id": "default", "tags": [], "options": {},
                "links": {"self": f"{base_url()}/v3/projects/{identity['project_id']}"}}

    def user_view() -> dict:
        return {"id": identity["user_id"], "name": identity["username"],
                "domain_id": "default", "enabled": True, "password_expires_at": None,
                "options": {}, "links": {"self": f"{base_url()}/v3/users/{identity['user_id']}"}}

    @app.get("/v3/auth/projects")
    @app.get("/v3/users/<user_id>/projects")
    def my_projects(user_id=None):
        return {"projects": [project_view()], "links": {"self": bottle.request.url}}

    @app.get("/v3/projects")
    def list_projects():
        wanted = bottle.request.query.get("name")
        found = [project_view()] if wanted in (None, identity["project_name"]) else []
        return {"projects": found, "links": {"self": bottle.request.url}}

    @app.get("/v3/projects/<project_id>")
    def show_project(project_id):
        if project_id not in (identity["project_id"], identity["project_name"]):
            raise not_found(f"Could not find project: {project_id}.")
        return {"project": project_view()}

    @app.get("/v3/users/<user_id>")
    def show_user(user_id):
        if user_id != identity["user_id"]:
            raise not_found(f"Could not find user: {user_id}.")
        return {"user": user_view()}

    def own_user(user_id: str) -> None:
        if user_id != identity["user_id"]:
            raise ApiError(403, "You are not authorized to perform the requested action.")

    def credential_view(credential: dict, secret: str | None = None) -> dict:
        view = {k: credential[k] for k in ("id", "name", "description", "expires_at",
                                           "unrestricted", "project_id", "user_id")}
        view["roles"] = [{"id": identity["role_ids"]["member"], "name": "member",
                          "domain_id": None}]
        view["access_rules"] = []
        view["links"] = {"self": f"{base_url()}/v3/application_credentials/{credential['id']}"}
        if secret:
            view["secret"] = secret
        return view

    @app.post("/v3/users/<user_id>/application_credentials", op="app_credential.create")
    def create_app_credential(user_id):
        own_user(user_id)
        body = json_body(APP_CREDENTIAL_SCHEMA)["application_credential"]
        if cloud.store.find("app_credentials", name=body["name"]):
            raise ApiError(409, "Conflict occurred attempting to store application_credential "
                           "- Duplicate entry found with name {}.".format(body["name"]))
        secret = body.get("secret") or secrets.token_urlsafe(64)
        credential = {"id": new_id().replace("-", ""), "name": body["name"],
                      "description": body.get("description"),
                      "expires_at": body.get("expires_at"),
                      "unrestricted": bool(body.get("unrestricted", False)),
                      "project_id": identity["project_id"], "user_id": user_id,
                      "secret_hash": hash_secret(secret), "created_at": now()}
        cloud.store.put("app_credentials", credential)
        bottle.response.status = 201
        return {"application_credential": credential_view(credential, secret)}

    @app.get("/v3/users/<user_id>/application_credentials")
    def list_app_credentials(user_id):
        own_user(user_id)
        wanted = bottle.request.query.get("name")
        return {"application_credentials": [
            credential_view(c) for c in cloud.store.all("app_credentials")
            if wanted in (None, c["name"])], "links": {"self": bottle.request.url}}

    @app.get("/v3/users/<user_id>/application_credentials/<credential_id>")
    def show_app_credential(user_id, credential_id):
        own_user(user_id)
        credential = cloud.store.get("app_credentials", credential_id)
        if credential is None:
            raise not_found(f"Could not find Application Credential: {credential_id}.")
        return {"application_credential": credential_view(credential)}

    @app.delete("/v3/users/<user_id>/application_credentials/<credential_id>")
    def delete_app_credential(user_id, credential_id):
        own_user(user_id)
        if cloud.store.delete("app_credentials", credential_id) is None:
            raise not_found(f"Could not find Application Credential: {credential_id}.")
        bottle.response.status = 204
        return ""

    return app


APP_CREDENTIAL_SCHEMA = {
    "type": "object",
    "properties": {"application_credential": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": {"type": ["string", "null"]},
            "secret": {"type": ["string", "null"]},
            "expires_at": {"type": ["string", "null"]},
            "roles": {"type": "array"},
            "unrestricted": {"type": ["boolean", "null"]},
            "access_rules": {"type": "array"},
        },
        "required": ["name"],
        "additionalProperties": False,
    }},
    "required": ["application_credential"],
    "additionalProperties": False,
}
