"""Sign-ins under way, kept in the browser: one short-lived cookie per sign-in, named after its
OAuth ``state``, holding the state, the PKCE verifier and where to go next, signed with an
HMAC so that the app can trust it when the browser brings it back. Nothing is written to the
database before GitHub sends the browser back (anonymous visits cost no rows), and two sign-ins
started in one browser (two tabs) each find their own cookie by the state GitHub returns, in
either order: the fault JupyterHub fixed in its pull request 1439, where the first callback
discarded the second's pending state.

The cookie's value is ``<payload>.<mac>``: the payload is base64url of JSON (never a pickle or
another format that runs code when read), the MAC is HMAC-SHA256 over it with a key derived
from the GitHub client secret (rotating that secret ends sign-ins under way, nothing else).
A browser holds at most :data:`MAX_PENDING` of them; a new sign-in drops the oldest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from web.config import Config

LIFETIME = 600  # seconds a sign-in may take (GitHub's codes last 10 minutes)
MAX_PENDING = 5  # sign-ins under way per browser
MAX_NEXT = 1500  # characters of the path to come back to; longer ones come back to "/"
# (browsers keep cookies of up to 4096 bytes: the state, verifier and MAC take about 250)
PREFIX = "ssc_signin_"
KEY_LABEL = b"ssc-web pending sign-in cookie v1"


@dataclass(frozen=True)
class PendingSignIn:
    state: str
    verifier: str
    next: str
    created: float  # seconds since the epoch


def _key(config: Config) -> bytes:
    return hmac.new(config.github_client_secret.encode(), KEY_LABEL, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def prefix(config: Config) -> str:
    """The names' prefix: ``__Host-`` (Secure, this host only) unless plain HTTP here."""
    return ("__Host-" if config.secure_cookies else "") + PREFIX


def cookie_name(config: Config, state: str) -> str:
    """The cookie of the sign-in with this OAuth state."""
    digest = hashlib.sha256(state.encode("utf-8", "replace")).hexdigest()[:24]
    return prefix(config) + digest


def pack(config: Config, pending: PendingSignIn) -> str:
    """The cookie value: signed JSON (a `next` longer than :data:`MAX_NEXT` becomes "/")."""
    next_path = pending.next if len(pending.next) <= MAX_NEXT else "/"
    payload = _b64(json.dumps({"s": pending.state, "v": pending.verifier, "n": next_path,
                               "t": pending.created}, separators=(",", ":")).encode())
    mac = hmac.new(_key(config), payload.encode("ascii"), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def unpack(config: Config, value: str | None, now: float | None = None) -> PendingSignIn | None:
    """The sign-in in a cookie value if its MAC is right and it is younger than
    :data:`LIFETIME`; None otherwise (forged, damaged, expired or absent)."""
    if not value or len(value) > 4096 or value.count(".") != 1:
        return None
    payload, mac = value.split(".")
    try:
        expected = hmac.new(_key(config), payload.encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(_unb64(mac), expected):
            return None
        data = json.loads(_unb64(payload))
        pending = PendingSignIn(str(data["s"]), str(data["v"]), str(data["n"]),
                                float(data["t"]))
    except (ValueError, KeyError, TypeError, UnicodeError):
        return None
    age = (time.time() if now is None else now) - pending.created
    return pending if 0 <= age < LIFETIME else None


def find(config: Config, cookies: Mapping[str, str], state: str) -> PendingSignIn | None:
    """The sign-in that sent the browser to GitHub with `state`, from its cookie: None if the
    browser has none (another browser's, or used already) or it does not hold `state`."""
    if not state:
        return None
    pending = unpack(config, cookies.get(cookie_name(config, state)))
    if pending is None or not hmac.compare_digest(pending.state.encode("utf-8", "replace"),
                                                  state.encode("utf-8", "replace")):
        return None
    return pending


def to_drop(config: Config, cookies: Mapping[str, str]) -> list[str]:
    """The names of the browser's sign-in cookies to drop before it starts another one:
    unreadable or expired ones, and the oldest beyond :data:`MAX_PENDING` - 1."""
    mine = {name: unpack(config, value) for name, value in cookies.items()
            if name.startswith(prefix(config))}
    dead = [name for name, pending in mine.items() if pending is None]
    live = sorted((pending.created, name) for name, pending in mine.items() if pending)
    extra = len(live) - (MAX_PENDING - 1)
    return dead + [name for _, name in live[:max(extra, 0)]]
