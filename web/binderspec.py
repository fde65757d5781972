"""Binder links read as launch requests: ``/v2/<provider>/<spec>?urlpath=`` and
``/build/<provider>/<spec>``, as BinderHub defines them, into a repository URL, a ref and the
path to open in Jupyter. Pure: no request, no database; every result passes the start form's
own checks (``launch_request.check_repo`` / ``check_ref`` with the site's allowed hosts).

Providers (BinderHub's ``binderhub/repoproviders.py``; the interface, not the code):

====== ======================================= =============================================
prefix spec                                    repository
====== ======================================= =============================================
gh     ``<owner>/<repo>/<ref>`` (ref may hold  ``https://github.com/<owner>/<repo>``
       ``/``; a trailing ``.git`` on the repo  (BinderHub's GitHubRepoProvider: the spec
       is dropped)                             split on its first two slashes)
gist   ``<user>/<gist id>[/<ref>]`` (no ref,  ``https://gist.github.com/<user>/<gist id>``
       ``HEAD``, ``master`` or ``main``: the   (GistRepoProvider: the spec split on every
       latest revision)                        slash)
gl     ``<url-escaped project path>/<ref>``    ``https://gitlab.com/<project path>``
       (``group%2Fproject/main``)              (GitLabRepoProvider: split on the first slash,
                                               both parts unescaped)
git    ``<url-escaped URL>/<ref>``             the URL itself (GitRepoProvider: split on the
                                               first slash, both parts unescaped); any host
                                               the site allows: Codeberg, a Gitea or Forgejo
                                               server, a GitLab under its own name
====== ======================================= =============================================

BinderHub's ``HEAD`` means the repository's default branch: it becomes "" here, the start
form's own "default branch". A gist is served only where the site allows its host
(``gist.github.com`` in ``user_vm_allowed_hosts``); BinderHub also refuses secret gists by
default, which it tells apart through GitHub's API: this site cannot, so a secret gist's link
works here for whoever holds it, as the gist itself does. Like BinderHub, the site does not
check that ``<user>`` owns the gist (GitHub finds a gist by its id).

Where Jupyter opens (BinderHub's ``LaunchSpec.fromSearchParams`` in its JavaScript client):
``labpath=<file>`` opens ``doc/tree/<file>``, else ``filepath=<file>`` opens
``tree/<file>``, else ``urlpath=<path>`` opens ``<path>`` (leading slashes dropped); none of
them opens the server's root. The result is checked as a path on the VM's own host.

Errors: :class:`BinderSpecError` (a ``ValueError``) with a message for the researcher; a
refused repository or ref raises the start form's ``LaunchRequestError`` as is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from ansible_collections.ssc.repo2docker.plugins.module_utils.launch_request import (
    check_ref,
    check_repo,
    shown,
)

GITHUB = "github.com"
GITLAB = "gitlab.com"
GIST = "gist.github.com"
PROVIDERS = ("gh", "gist", "gl", "git")
DEFAULT_REF = "HEAD"  # BinderHub's name for the default branch
# what BinderHub's GistRepoProvider takes for the gist's latest revision, besides no ref
GIST_LATEST = (DEFAULT_REF, "master", "main")
MAX_SPEC = 2100
MAX_PATH = 2000
# What a path to open may hold, percent-escapes included: RFC 3986's pchar, '/' and a query.
_PATH_CHARS = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@/?%-]*")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


class BinderSpecError(ValueError):
    """A Binder link that is not accepted; ``str(error)`` is for the researcher."""


@dataclass(frozen=True)
class Launch:
    """What a Binder link asks for: ``repo`` (checked and rebuilt as the start form does),
    ``ref`` ("" for the default branch), ``path`` (``/`` or ``/lab/tree/x.ipynb``: where to
    open Jupyter, on the VM's host), ``provider`` and ``spec`` (as in the link, escaped)."""

    provider: str
    spec: str
    repo: str
    ref: str
    path: str = "/"

    @property
    def binder_request(self) -> str:
        """``v2/<provider>/<spec>``, as BinderHub's ``binder_request`` field writes it."""
        return f"v2/{self.provider}/{self.spec}"


def parse(provider: str, spec: str, allowed_hosts, allow_http_hosts=()) -> tuple[str, str]:
    """``(repository URL, ref)`` of a Binder `spec` (raw: still percent-escaped, as in the
    request line) for `provider` (one of :data:`PROVIDERS`). ``ref`` is "" for ``HEAD``.
    Raises BinderSpecError or LaunchRequestError."""
    if not isinstance(spec, str) or not spec or len(spec) > MAX_SPEC:
        raise BinderSpecError("This Binder link names no repository, or is too long.")
    if any(not 0x21 <= ord(char) <= 0x7E for char in spec):
        raise BinderSpecError("This Binder link holds spaces, line breaks or non-ASCII "
                              "characters: it is not accepted.")
    spec = spec.rstrip("/")  # BinderHub's BuildHandler does the same
    if provider == "gh":
        parts = spec.split("/", 2)
        if len(parts) != 3 or not all(parts):
            raise BinderSpecError(f"A GitHub Binder link is /v2/gh/<owner>/<repo>/<ref>, not "
                                  f"{shown(spec)}.")
        owner, name, ref = parts
        name = name.removesuffix(".git")
        url = f"https://{GITHUB}/{owner}/{name}"
    elif provider == "gist":
        parts = spec.split("/")
        if len(parts) not in (2, 3) or not all(parts[:2]):
            raise BinderSpecError(f"A Gist Binder link is /v2/gist/<user>/<gist id>[/<ref>], "
                                  f"not {shown(spec)}.")
        user, gist_id, *rest = parts
        ref = DEFAULT_REF if not rest or rest[0] in GIST_LATEST else rest[0]
        url = f"https://{GIST}/{user}/{gist_id.removesuffix('.git')}"
    elif provider in ("gl", "git"):
        escaped, slash, ref = spec.partition("/")
        if not escaped or not slash or not ref:
            raise BinderSpecError(f"This Binder link is /v2/{provider}/<URL-escaped "
                                  f"{'project' if provider == 'gl' else 'URL'}>/<ref>, not "
                                  f"{shown(spec)}.")
        target, ref = _unescape(escaped), _unescape(ref)
        url = f"https://{GITLAB}/{target}" if provider == "gl" else target
    else:
        raise BinderSpecError(f"Binder links of the kind {shown(provider)} are not served here "
                              f"(only {', '.join(PROVIDERS)}).")
    repo = check_repo(url, allowed_hosts, allow_http_hosts)
    return repo, check_ref(None if ref == DEFAULT_REF else ref) or ""


def _unescape(text: str) -> str:
    """`text` with its ``%XX`` escapes decoded (UTF-8); BinderSpecError for a stray ``%`` or
    an escape that does not decode, so that nothing is decoded twice downstream."""
    if "%" in _ESCAPE.sub("", text):
        raise BinderSpecError(f"{shown(text)} has a '%' that is not a %XX escape.")
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise BinderSpecError(f"{shown(text)} is not UTF-8 once unescaped.") from None


def open_path(urlpath: str = "", labpath: str = "", filepath: str = "") -> str:
    """Where Jupyter opens, from a Binder link's query fields (BinderHub's mapping, see the
    module's doc): ``/`` or ``/<path>``. Raises BinderSpecError for a path that is not a plain
    path of the VM's own host: ``..`` or ``.`` parts (escaped or not), ``//``, backslashes,
    control or non-ASCII characters, a fragment, or more than 2000 characters."""
    if labpath:
        path = "doc/tree/" + quote(labpath.rstrip("/"), safe="/~!$&'()*+,;=:@")
    elif filepath:
        path = "tree/" + quote(filepath.rstrip("/"), safe="/~!$&'()*+,;=:@")
    else:
        path = (urlpath or "").lstrip("/")
    return check_path("/" + path)


def check_path(path: str) -> str:
    """`path` if it is a plain path (and query) of one host, to append to a VM's address;
    BinderSpecError otherwise (see :func:`open_path`)."""
    if len(path) > MAX_PATH or not path.startswith("/") or not _PATH_CHARS.fullmatch(path):
        raise BinderSpecError(f"The path to open, {shown(path)}, is not accepted: only a "
                              "plain path of the Jupyter server (letters, digits and URL "
                              "punctuation, no fragment).")
    if "%" in _ESCAPE.sub("", path):
        raise BinderSpecError(f"The path to open, {shown(path)}, has a stray '%'.")
    route = path.partition("?")[0]
    decoded = unquote(route, errors="replace")
    if (path.startswith("//") or "//" in route or "\\" in decoded
            or any(ord(char) < 0x20 or ord(char) == 0x7F for char in unquote(path))
            or any(part in (".", "..") for part in decoded.split("/"))):
        raise BinderSpecError(f"The path to open, {shown(path)}, is not accepted: no '..', "
                              "'.', '//', backslashes or control characters.")
    return path


def launch(provider: str, spec: str, query: dict[str, str], allowed_hosts,
           allow_http_hosts=()) -> Launch:
    """A whole Binder link: `provider`, raw `spec` and its query fields (``urlpath``,
    ``labpath``, ``filepath``; others ignored) as a :class:`Launch`. Raises BinderSpecError or
    LaunchRequestError."""
    repo, ref = parse(provider, spec, allowed_hosts, allow_http_hosts)
    path = open_path(query.get("urlpath", ""), query.get("labpath", ""),
                     query.get("filepath", ""))
    return Launch(provider, spec.rstrip("/"), repo, ref, path)


def link_for(base_url: str, repo: str, ref: str = "", urlpath: str = "") -> str:
    """The ``/v2/git/…`` launch link of `repo` at `ref` ("" for ``HEAD``) on the site at
    `base_url` (``scheme://host[:port]``), with ``?urlpath=`` when given."""
    link = f"{base_url}/v2/git/{quote(repo, safe='')}/{quote(ref or DEFAULT_REF, safe='/')}"
    return link + (f"?urlpath={quote(urlpath, safe='/')}" if urlpath else "")


def badge_markdown(base_url: str, link: str) -> str:
    """The Markdown of a launch badge for `link`, the badge served by the site."""
    return f"[![Binder]({base_url}/badge_logo.svg)]({link})"


def same_repo(a: str, b: str) -> bool:
    """Whether two checked repository URLs name the same repository (a ``.git`` ending and
    the case of the host aside)."""
    def key(url: str) -> str:
        scheme, _, rest = (url or "").removesuffix(".git").partition("://")
        host, _, path = rest.partition("/")
        return f"{scheme.lower()}://{host.lower()}/{path}"
    return bool(a and b) and key(a) == key(b)
