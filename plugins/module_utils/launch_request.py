# Copyright: (c) 2025, ssc-repo2docker developers
# BSD 3-Clause License (see https://opensource.org/licenses/BSD-3-Clause)
"""The one check of a launch request's user input: a GitHub login, a repository URL, a git ref.

Shared by the module ``ssc.repo2docker.launch_request`` (so by the playbooks) and by the web
app, which imports this file as
``ansible_collections.ssc.repo2docker.plugins.module_utils.launch_request``. Pure Python,
standard library only, so that it runs wherever Ansible ships a module.

Every check works on ASCII only, with explicit character classes and ``re.fullmatch``: no
``\\w`` (it matches Unicode letters), no ``$`` (it matches before a trailing newline), no
``re.IGNORECASE`` (with it, ``[a-z]`` matches the Kelvin sign and the dotless i).

A value that fails raises :class:`LaunchRequestError`, whose message names the field and says
why, for the user to read. A bad site setting (an ``allowed_hosts`` entry) raises a plain
:class:`ValueError`: that is the operator's mistake, not the user's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

VM_NAME_PREFIX = "ssc-r2d-"

MAX_USER = 39
MAX_REPO = 2000
MAX_SEGMENT = 100  # owner or repository name in a URL (GitHub's limit for names)
MAX_REF = 255
SHOWN = 60  # at most this many characters of a refused value go back into a message
# GitLab nests groups at most 20 levels deep ("Subgroups can be nested up to 20 levels",
# GitLab Docs, "Subgroups"): a project path has at most 20 namespaces before its name.
MAX_NAMESPACES = 20

# Hosts that find a repository whatever the case of its owner and name, so that the lower-case
# spelling is the same repository. GitHub: "The account owner of the repository. The name is
# not case sensitive." and "The name of the repository without the .git extension. The name
# is not case sensitive." (GitHub REST API, the owner and repo parameters of every repository
# endpoint). GitLab: projects and groups are found by their full path case-insensitively
# (Routable.find_by_full_path falls back to a case-insensitive match of the route). Codeberg
# runs Forgejo, which looks owners and repositories up by their lower-case names
# (lower_name). Gists (gist.github.com/<owner>/<id>): the owner is a GitHub login, the id
# lower-case hex (GitHub REST API, "Get a gist": gist_id). A site adds its own hosts with
# roles/user_vm's user_vm_case_insensitive_hosts.
CASE_INSENSITIVE_HOSTS = ("github.com", "gist.github.com", "gitlab.com", "codeberg.org")
# Hosts whose projects may live in groups and subgroups, <group>/<subgroup>/.../<name>
# (GitLab Docs, "Subgroups"). A site adds its own GitLab with user_vm_subgroup_hosts.
SUBGROUP_HOSTS = ("gitlab.com",)

# GitHub's login rules as GitHub applies them. New logins: letters, digits and single hyphens,
# neither first nor last (GitHub's sign-up form). Accounts made before those rules may still
# hold a login that ends in a hyphen or has two hyphens in a row ("legacy" logins), and an
# Enterprise Managed User's login ends in an underscore and the enterprise's short code
# (GitHub Docs, "About Enterprise Managed Users": "<handle>_<shortcode>").
_LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*(?:_[A-Za-z0-9]+)?")
_USER_ID = re.compile(r"[1-9][0-9]{0,19}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HOST_ENTRY = re.compile(
    r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<prefix>(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*)"
)
# What a ref may contain on top of git's own rules: enough for branches, tags, commit ids and
# refs/pull/1/head, nothing a shell or a template engine gives a meaning to.
_REF_CHARS = re.compile(r"[A-Za-z0-9._/+@-]+")
_REF_FORBIDDEN = frozenset(" ~^:?*[\\")


class LaunchRequestError(ValueError):
    """A launch request's field is refused. ``str(error)`` is meant for the user.

    Attributes: ``field`` (``user``, ``repo`` or ``ref``) and ``reason`` (why, without the
    value).
    """

    def __init__(self, field: str, value: object, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field} {shown(value)} is refused: {reason}")


def shown(value: object) -> str:
    """`value` for a message: ASCII (look-alike characters become visible escapes), at most
    about SHOWN characters of it."""
    if isinstance(value, str) and len(value) > SHOWN:
        return f"{value[:SHOWN]!a}... ({len(value)} characters)"
    return ascii(value)


def _text(field: str, value: object, maximum: int) -> str:
    """`value` if it is a non-empty, not too long, printable ASCII string without spaces."""
    if not isinstance(value, str):
        raise LaunchRequestError(field, value, "it must be a string")
    if not value:
        raise LaunchRequestError(field, value, "it is empty")
    if len(value) > maximum:
        raise LaunchRequestError(field, value, f"it is longer than {maximum} characters")
    for char in value:
        if ord(char) > 0x7F:
            raise LaunchRequestError(
                field, value, f"it contains the non-ASCII character {char!a} "
                "(only ASCII is accepted, so that look-alike characters cannot pass)")
        if ord(char) <= 0x20 or ord(char) == 0x7F:
            raise LaunchRequestError(
                field, value, "it contains a space, a line break or another control character")
    return value


# --- user --------------------------------------------------------------------------------


def is_login(login: object) -> bool:
    """Whether `login` may be a GitHub login (:func:`check_user`'s rule), without raising."""
    try:
        check_user(login)  # type: ignore[arg-type]
    except LaunchRequestError:
        return False
    return True


def check_user(login: str) -> str:
    """`login` if it may be a GitHub login: 1 to 39 ASCII letters, digits and hyphens, not
    starting with a hyphen, as GitHub applies its rules: new logins have single hyphens and do
    not end with one, but older accounts may (``name-``, ``a--b``), and an Enterprise Managed
    User's login ends in ``_<shortcode>``. Returned as given (GitHub logins are
    case-insensitive: compare them in lower case)."""
    _text("user", login, MAX_USER)
    if not _LOGIN.fullmatch(login):
        raise LaunchRequestError(
            "user", login, "a GitHub login has only ASCII letters, digits and hyphens, "
            "and does not start with a hyphen")
    return login


def check_user_id(user_id: object) -> str:
    """`user_id` as a string if it is a GitHub account id: a positive integer (GitHub's REST
    API ``id`` of a user, which never changes when the login does), given as an int or as its
    decimal digits without leading zeros. Raises LaunchRequestError otherwise."""
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    _text("user_id", user_id, 20)
    if not _USER_ID.fullmatch(user_id):  # type: ignore[arg-type]
        raise LaunchRequestError(
            "user_id", user_id, "a GitHub account id is a positive whole number")
    return user_id  # type: ignore[return-value]


def vm_name(user_id: str | int) -> str:
    """The name of GitHub account `user_id`'s VM: ``ssc-r2d-<id>``, a valid host name label
    whatever the account's login (the id never changes, a login may: see module_utils
    ``ownership`` for VMs named by login before). Raises LaunchRequestError for an invalid
    id."""
    return VM_NAME_PREFIX + check_user_id(user_id)


def legacy_vm_name(login: str) -> str:
    """The name a VM of `login` had before VMs were named by account id:
    ``ssc-r2d-<login in lower case>``. Raises LaunchRequestError for an invalid login."""
    return VM_NAME_PREFIX + check_user(login).lower()


# --- repo --------------------------------------------------------------------------------


class AllowedHost:
    """One ``allowed_hosts`` entry, ``host[:port][/prefix]``: ``netloc`` is ``host[:port]``
    in lower case, ``prefix`` is ``""`` or ``/a/b`` (case kept: paths are case-sensitive)."""

    __slots__ = ("netloc", "prefix")

    def __init__(self, entry: str):
        if not isinstance(entry, str):
            raise ValueError(f"allowed host entry {shown(entry)} must be a string")
        cleaned = entry[:-1] if entry.endswith("/") else entry
        match = _HOST_ENTRY.fullmatch(cleaned)
        if (not match or ".." in cleaned
                or (match["port"] is not None and not 0 < int(match["port"]) < 65536)):
            raise ValueError(f"allowed host entry {shown(entry)} is not host[:port][/prefix]")
        self.netloc = match["host"].lower() + (f":{int(match['port'])}" if match["port"] else "")
        self.prefix = match["prefix"]

    def __str__(self) -> str:
        return self.netloc + self.prefix


def _allowed(entries: Iterable[str], setting: str) -> list[AllowedHost]:
    if isinstance(entries, (str, bytes, dict)) or not isinstance(entries, Iterable):
        raise ValueError(f"{setting} must be a list of host[:port][/prefix] strings")
    return [AllowedHost(entry) for entry in entries]


def _split_name(name: str) -> tuple[str, str]:
    """(name without '.git', '.git' or '')."""
    if name.endswith(".git"):
        return name[:-4], ".git"
    return name, ""


def _url_parts(url: object) -> tuple[str, str, str]:
    """``(scheme, netloc, path)`` of the repository URL `url`: scheme and netloc in lower
    case, the path as given without one trailing ``/`` (``""`` or ``/...``). Raises
    LaunchRequestError for what no repository URL here may hold (see :func:`check_repo`)."""
    _text("repo", url, MAX_REPO)

    def refuse(reason: str):
        raise LaunchRequestError("repo", url, reason)

    if url.startswith("-"):  # type: ignore[union-attr]
        refuse("it starts with '-'")
    for char, why in (("@", "it contains '@' (credentials or a user name are not accepted "
                            "in the URL)"),
                      ("%", "it contains '%' (percent-encoding is not accepted)"),
                      ("\\", "it contains a backslash")):
        if char in url:  # type: ignore[operator]
            refuse(why)
    if "::" in url:  # type: ignore[operator]
        refuse("git's transport::address form (such as ext::) is not accepted")
    scheme_match = _SCHEME.match(url)  # type: ignore[arg-type]
    if not scheme_match:
        refuse("it is not an https:// URL (local paths and scp-like host:path are not accepted)")
    scheme = scheme_match[1].lower()
    if scheme not in ("https", "http"):
        refuse(f"the scheme {scheme}:// is not accepted, only https://")
    rest = url[scheme_match.end():]  # type: ignore[index]
    if "?" in rest:
        refuse("a query ('?') is not accepted")
    if "#" in rest:
        refuse("a fragment ('#') is not accepted")
    netloc, slash, path = rest.partition("/")
    path = slash + path
    return scheme, netloc.lower(), path[:-1] if path.endswith("/") else path


def _check_segments(url: str, segments: Sequence[str]) -> str:
    """The path ``/a/.../name`` from `segments` (the last one without ``.git``), each checked:
    ``[A-Za-z0-9][A-Za-z0-9._-]*``, at most 100 characters, no ``..``."""
    def refuse(reason: str):
        raise LaunchRequestError("repo", url, reason)

    *namespaces, name = segments
    stem, _suffix = _split_name(name)
    owner_label = "owner" if len(namespaces) == 1 else "group"
    for label, segment in [*((owner_label, part) for part in namespaces),
                           ("repository name", stem)]:
        if not segment:
            refuse(f"the {label} is empty")
        if len(segment) > MAX_SEGMENT:
            refuse(f"the {label} is longer than {MAX_SEGMENT} characters")
        if not _SEGMENT.fullmatch(segment):
            refuse(f"the {label} must start with a letter or digit and have only letters, "
                   "digits, '.', '_' and '-'")
        if ".." in segment:
            refuse(f"the {label} contains '..'")
    if any(part.endswith(".git") for part in namespaces):
        refuse(f"the {owner_label} ends in .git")
    if stem.endswith(".git"):
        refuse("the repository name ends in .git twice")
    return "/" + "/".join([*namespaces, stem])


def _names(entries: Iterable[str], setting: str) -> list[str]:
    """The entries of the setting `setting` as a list; ValueError if it is not a list."""
    if isinstance(entries, (str, bytes, dict)) or not isinstance(entries, Iterable):
        raise ValueError(f"{setting} must be a list of host[:port][/prefix] strings")
    return list(entries)


def _rule_for(netloc: str, path: str, entries: Iterable[AllowedHost]) -> AllowedHost | None:
    """The entry of `entries` that `netloc` and `path` fall under, the longest prefix first."""
    for entry in sorted(entries, key=lambda entry: -len(entry.prefix)):
        if entry.netloc == netloc and path.startswith(entry.prefix + "/"):
            return entry
    return None


def canonical_url(url: str, case_insensitive_hosts: Iterable[str] = ()) -> str:
    """The one spelling of the repository URL `url`, so that two spellings of a repository
    compare equal (in the image's list of pre-built repositories, a VM's metadata, the image
    name the launcher derives, the web app's "your VM serves ..." check).

    - scheme and host (and port) in lower case;
    - no trailing ``/`` and no ``.git`` at the end (every git host here serves a repository
      with or without it: GitHub, GitLab, Forgejo, and ``git http-backend``, which tries
      ``<path>.git`` when ``<path>`` is no repository);
    - the path after the host in lower case on hosts that find repositories whatever the
      case: :data:`CASE_INSENSITIVE_HOSTS` (github.com, gist.github.com, gitlab.com,
      codeberg.org) and the entries of `case_insensitive_hosts` (``host[:port][/prefix]``,
      roles/user_vm's ``user_vm_case_insensitive_hosts``; a prefix keeps its case, the path
      after it is folded). Elsewhere the path keeps its case: paths are case-sensitive
      (RFC 3986).

    `url` must already be a repository URL this module accepts, without regard to the site's
    hosts: ``http(s)://host[:port]/a/.../name[.git]``, each path part
    ``[A-Za-z0-9][A-Za-z0-9._-]*`` of at most 100 characters without ``..``; the same
    characters are refused as by :func:`check_repo` (``@``, ``%``, backslashes, a query, a
    fragment, ``::``, white space, control and non-ASCII characters), as is anything but
    ``https://`` and ``http://``. Raises LaunchRequestError for those, ValueError for a bad
    `case_insensitive_hosts` entry. Whether the host is allowed and the path has the right
    number of parts is :func:`check_repo`'s to say. ``canonical_url(canonical_url(u)) ==
    canonical_url(u)``.
    """
    rules = _allowed([*CASE_INSENSITIVE_HOSTS, *_names(case_insensitive_hosts,
                                                        "case_insensitive_hosts")],
                     "case_insensitive_hosts")
    scheme, netloc, path = _url_parts(url)
    if not netloc:
        raise LaunchRequestError("repo", url, "it has no host")
    if not _HOST_ENTRY.fullmatch(netloc) or ".." in netloc:
        raise LaunchRequestError("repo", url, f"the host {shown(netloc)} is not a host name")
    segments = path[1:].split("/") if path else []
    if len(segments) < 2:
        raise LaunchRequestError("repo", url, "the path must be /<owner>/<name>")
    path = _check_segments(url, segments)
    rule = _rule_for(netloc, path, rules)
    if rule is not None:
        path = rule.prefix + path[len(rule.prefix):].lower()
    return f"{scheme}://{netloc}{path}"


def check_repo(url: str, allowed_hosts: Sequence[str],
               allow_http_hosts: Sequence[str] = (),
               case_insensitive_hosts: Sequence[str] = (),
               subgroup_hosts: Sequence[str] = ()) -> str:
    """The repository URL `url`, checked, in its canonical spelling (:func:`canonical_url`).

    Accepted: ``https://<host>[:port][/prefix]/<owner>/<name>[.git]`` where
    ``host[:port][/prefix]`` is an entry of `allowed_hosts` (the site's, as roles/user_vm's
    ``user_vm_allowed_hosts`` gives them; host compared case-insensitively,
    exactly: no sub-domains; a port only when the entry has that port; the entry's prefix, if
    any, must follow it exactly). ``http://`` is accepted only for a ``host[:port]`` in
    `allow_http_hosts` (a prefix written there is ignored; the host must still be in
    `allowed_hosts`). Owner and name are ``[A-Za-z0-9][A-Za-z0-9._-]*``, at most 100
    characters, without ``..``; the name may end in ``.git`` once.

    On :data:`SUBGROUP_HOSTS` (gitlab.com) and the entries of `subgroup_hosts`
    (``host[:port][/prefix]``, roles/user_vm's ``user_vm_subgroup_hosts``) a project may sit
    in nested groups: ``/<group>/<subgroup>/.../<name>``, at most :data:`MAX_NAMESPACES`
    groups (GitLab's limit). Other hosts take exactly ``/<owner>/<name>``.

    One trailing slash is dropped (``https://github.com/a/b/`` gives
    ``https://github.com/a/b``), as browsers' address bars write one; anything else is refused:
    credentials or any ``@``, ``%``-encoding, backslashes, a query, a fragment, white space,
    control or non-ASCII characters, other schemes (``file://``, ``git://``, ``ssh://``), git's
    ``transport::address`` form (``ext::``), scp-like ``git@host:path``, a leading ``-``, more
    or fewer path segments, and URLs longer than 2000 characters.

    Returns ``scheme://host[:port][/prefix]/owner/name``, rebuilt from the checked parts and
    then in the canonical spelling of :func:`canonical_url` with `case_insensitive_hosts`:
    never the raw input. Raises LaunchRequestError for the user's mistakes, ValueError for
    a bad setting.
    """
    hosts = _allowed(allowed_hosts, "allowed_hosts")
    if not hosts:
        raise ValueError("allowed_hosts is empty: no repository can be accepted")
    http_netlocs = {host.netloc for host in _allowed(allow_http_hosts, "allow_http_hosts")}
    nested = _allowed([*SUBGROUP_HOSTS, *_names(subgroup_hosts, "subgroup_hosts")],
                      "subgroup_hosts")

    def refuse(reason: str):
        raise LaunchRequestError("repo", url, reason)

    scheme, netloc, path = _url_parts(url)
    candidates = [host for host in hosts if host.netloc == netloc]
    if not candidates:
        refuse(f"the host {shown(netloc)} is not one of the allowed hosts "
               f"({', '.join(str(host) for host in hosts)})")
    if scheme == "http" and netloc not in http_netlocs:
        refuse(f"http:// is not accepted for {netloc}, only https://")

    def shapes(host: AllowedHost) -> range:
        """How many path parts the host takes after its prefix."""
        if _rule_for(netloc, host.prefix + "/x", nested) is not None:
            return range(2, MAX_NAMESPACES + 2)
        return range(2, 3)

    for host in candidates:
        if not path.startswith(host.prefix + "/"):
            continue
        segments = path[len(host.prefix) + 1:].split("/")
        if len(segments) in shapes(host):
            break
    else:
        wanted = " or ".join(
            f"{host.prefix}/<group>[/<subgroup>...]/<name>" if len(shapes(host)) > 1
            else f"{host.prefix}/<owner>/<name>" for host in candidates)
        # A repository's web page (GitHub's /tree/<ref>, /blob/<ref>/<file>) pasted for its
        # address: say what to do with it.
        page = re.search(r"/(?:tree|blob)/", path)
        hint = (f"; this looks like a page of the repository: use the address that ends "
                f"in {shown(path[:page.start()])} and give the branch, tag or commit as the "
                "ref" if page else "")
        refuse(f"the path must be {wanted} (optionally ending in .git){hint}")

    rebuilt = f"{scheme}://{host.netloc}{host.prefix}{_check_segments(url, segments)}"
    return canonical_url(rebuilt, case_insensitive_hosts)


# --- ref ---------------------------------------------------------------------------------


def git_ref_format_error(ref: str) -> str | None:
    """Why `ref` breaks a rule of ``git check-ref-format --allow-onelevel``, or None."""
    for char in ref:
        if ord(char) < 0x20 or ord(char) == 0x7F:
            return "it contains a control character"
        if char in _REF_FORBIDDEN:
            return f"it contains {char!r}"
    if ref == "@":
        return "it is '@'"
    if ".." in ref:
        return "it contains '..'"
    if "@{" in ref:
        return "it contains '@{'"
    if ref.startswith("/") or ref.endswith("/"):
        return "it starts or ends with '/'"
    if "//" in ref:
        return "it contains '//'"
    if ref.endswith("."):
        return "it ends with '.'"
    for component in ref.split("/"):
        if component.startswith("."):
            return "a '/'-separated part starts with '.'"
        if component.endswith(".lock"):
            return "a '/'-separated part ends with '.lock'"
    return None


def check_ref(ref: str | None) -> str | None:
    """`ref` (a branch, a tag, a commit id or a full ref name) if it is valid; None for None
    or ``""`` (the repository's default branch).

    The rules of ``git check-ref-format --allow-onelevel``, at most 255 characters, not
    starting with ``-``, and, stricter than git, only ASCII letters, digits and ``. _ - / + @``:
    characters such as ``$ ( ) ; | & ' " { } < > ` ! #`` are valid in git ref names but have a
    meaning to shells and template engines, and no real branch needs them.
    """
    if ref is None or ref == "":
        return None
    _text("ref", ref, MAX_REF)
    if ref.startswith("-"):
        raise LaunchRequestError("ref", ref, "it starts with '-'")
    problem = git_ref_format_error(ref)
    if problem:
        raise LaunchRequestError("ref", ref, f"it is not a valid git ref name: {problem}")
    if not _REF_CHARS.fullmatch(ref):
        raise LaunchRequestError(
            "ref", ref, "only ASCII letters, digits and '.', '_', '-', '/', '+', '@' are "
            "accepted in a ref")
    return ref


# --- all of it ---------------------------------------------------------------------------


def check(user: str, repo: str, ref: str | None, allowed_hosts: Sequence[str],
          allow_http_hosts: Sequence[str] = (), case_insensitive_hosts: Sequence[str] = (),
          subgroup_hosts: Sequence[str] = (), user_id: str | int | None = None) -> dict:
    """A whole launch request, checked in the order user, user_id, repo, ref; the first
    problem raises LaunchRequestError. Returns ``{"user", "repo" (rebuilt, canonical:
    :func:`check_repo`), "ref" (None for the default branch)}`` and, with `user_id` (the
    GitHub account id), ``"user_id"`` and ``"vm_name"`` (``ssc-r2d-<id>``)."""
    login = check_user(user)
    checked_id = check_user_id(user_id) if user_id is not None else None
    checked = {
        "user": login,
        "repo": check_repo(repo, allowed_hosts, allow_http_hosts, case_insensitive_hosts,
                           subgroup_hosts),
        "ref": check_ref(ref),
    }
    if checked_id is not None:
        checked.update(user_id=checked_id, vm_name=vm_name(checked_id))
    return checked
