#!/usr/bin/python
# Copyright: (c) 2025, ssc-repo2docker developers
# BSD 3-Clause License (see https://opensource.org/licenses/BSD-3-Clause)

DOCUMENTATION = r"""
---
module: git_ref
short_description: Resolve a git repository's branch, tag or ref to a commit without cloning
version_added: 0.1.0
author: ssc-repo2docker developers
description:
  - Asks a remote git repository which commit a branch, a tag or a full ref name points at,
    with C(git ls-remote --symref), and returns that commit. Nothing is cloned or fetched.
  - Used on the controller, to hash a build's inputs and to hand a VM a commit rather than a
    moving branch, and on builder VMs.
  - The module never changes anything; it always reports C(changed=false).
  - Inputs are validated before git runs; an invalid I(repo) or I(ref) fails the task and git
    is not started.
options:
  repo:
    description:
      - URL of the repository.
      - Only C(https://), C(http://) and C(git://) URLs are accepted. Local paths, C(file://),
        C(ssh://), scp-like C(user@host:path) and git's C(<transport>::<address>) forms (for
        example C(ext::)) are refused, as is a URL that starts with C(-), contains white
        space or control characters, or carries a password.
      - Git is also run with C(GIT_ALLOW_PROTOCOL=http:https:git).
    type: str
    required: true
  ref:
    description:
      - What to resolve. Empty, absent or C(HEAD) means the remote's default branch (what its
        C(HEAD) points at).
      - A full commit id (40 hexadecimal digits, or 64 for SHA-256 repositories) is returned as
        it is, in lower case. It is not checked against the repository, which would need a
        fetch.
      - Abbreviated commit ids are not supported (a git server is asked for refs, and cannot
        be asked for a commit by a prefix of its id). A name of 7 to 39 hexadecimal digits that
        is no branch or tag fails with a message asking for the full 40-character commit id.
      - A full ref name (starting with C(refs/)) is looked up as it is.
      - Any other name is looked up as C(refs/heads/<ref>), then C(refs/tags/<ref>), then
        C(refs/<ref>) (so C(pull/1/head) works on GitHub). When a branch and a tag share the
        name, the branch wins, as with C(git checkout), C(git clone --branch) and BinderHub;
        a warning says so, and C(refs/tags/<ref>) selects the tag.
      - When nothing has that name the task fails with a message for the person who asked,
        naming the repository's default branch, for example C(no branch, tag or commit named
        'mian' in https://github.com/a/b; its default branch is 'main').
      - An annotated tag resolves to the commit it points at, not to the tag object.
      - Must be a valid ref name by the rules of C(git check-ref-format --allow-onelevel)
        (no C(..), C(~), C(^), C(:), C(?), C(*), C([), C(\), space or control characters, no
        C(@{), no component starting with C(.) or ending with C(.lock), not ending with C(.)
        or C(/)) and must not start with C(-).
    type: str
    default: ""
  git_executable:
    description:
      - The git program to run, a name looked up in C(PATH) or an absolute path.
    type: str
    default: git
notes:
  - The remote is asked only for the candidate refs and C(HEAD) (C(git ls-remote --symref --
    <repo> <patterns>)), so repositories with very many refs (for example GitHub's
    C(refs/pull/*)) answer quickly, and a missing ref's message can name the default branch.
  - Git never prompts for credentials (C(GIT_TERMINAL_PROMPT=0)); configured credential
    helpers are used as usual.
  - There is no timeout option; use the task keyword C(timeout) to bound a slow remote.
  - Supports check mode; the module behaves the same in it.
requirements:
  - git >= 2.8 on the host that runs the module
attributes:
  check_mode:
    support: full
    description: Runs the same in check mode; it never changes anything.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
"""

EXAMPLES = r"""
- name: Resolve the default branch of a repository
  ssc.repo2docker.git_ref:
    repo: https://github.com/binder-examples/requirements
  register: resolved

- name: Show the commit and the default branch
  ansible.builtin.debug:
    msg: "{{ resolved.default_branch }} is at {{ resolved.commit }}"

- name: Resolve a tag on the controller, to hand the VM a commit
  ssc.repo2docker.git_ref:
    repo: https://github.com/binder-examples/requirements.git
    ref: v1.0
  delegate_to: localhost
  register: pinned

- name: Resolve a ref whose name is both a branch and a tag, choosing the tag
  ssc.repo2docker.git_ref:
    repo: https://example.org/group/project.git
    ref: refs/tags/release
    git_executable: /usr/bin/git
"""

RETURN = r"""
commit:
  description: The commit the ref points at (for an annotated tag, the tagged commit).
  returned: success
  type: str
  sample: 9cbd095e565c4e9f1d4c78643d13a92fd67a6817
ref:
  description:
    - The full ref name that matched, for example C(refs/heads/main) or C(refs/tags/v1).
    - The commit itself when I(ref) was a full commit id.
    - C(HEAD) when the default branch was asked for and the remote does not say which
      branch its C(HEAD) is.
  returned: success
  type: str
  sample: refs/heads/main
default_branch:
  description:
    - The remote's default branch, the short name of what its C(HEAD) points at.
    - Null when the remote does not say (a detached C(HEAD) or an old server).
  returned: when I(ref) is empty or C(HEAD)
  type: str
  sample: main
"""

import re
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ssc.repo2docker.plugins.module_utils.launch_request import (
    git_ref_format_error,
)

ARGUMENT_SPEC = dict(
    repo=dict(type="str", required=True),
    ref=dict(type="str", default=""),
    git_executable=dict(type="str", default="git"),
)
ALLOWED_SCHEMES = ("https", "http", "git")
COMMIT = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
# What looks like an abbreviated commit id: git abbreviates to 7 hex digits at least
# (core.abbrev's default), shorter than a full SHA-1 or SHA-256 id.
SHORT_COMMIT = re.compile(r"[0-9a-fA-F]{7,39}|[0-9a-fA-F]{41,63}")
PEELED = "^{}"
STDERR_LINES = 5


def ref_format_error(ref):
    """Why `ref` is not a ref name by `git check-ref-format --allow-onelevel`, or by our own
    rule that it must not start with '-'; None when it is fine."""
    if not ref:
        return "it is empty"
    if ref.startswith("-"):
        return "it starts with '-'"
    return git_ref_format_error(ref)


def repo_error(repo):
    """Why `repo` is not a URL this module will hand to git, or None."""
    if not repo:
        return "it is empty"
    if repo.startswith("-"):
        return "it starts with '-'"
    if any(char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F for char in repo):
        return "it contains white space or control characters"
    try:
        parts = urlsplit(repo)
        hostname = parts.hostname
    except ValueError as error:
        return f"it is not a valid URL ({error})"
    if not repo.startswith(tuple(f"{scheme}://" for scheme in ALLOWED_SCHEMES)):
        return "only https://, http:// and git:// URLs are allowed"
    if not hostname:
        return "it has no host"
    if hostname.startswith("-"):
        return "its host starts with '-'"
    if parts.password is not None:
        return "it carries a password (it would show in process lists and logs)"
    return None


def candidates(ref):
    """The full ref names `ref` may stand for, in order of preference; ['HEAD'] for the
    default branch."""
    if not ref or ref == "HEAD":
        return ["HEAD"]
    if ref.startswith("refs/"):
        return [ref]
    return [f"refs/heads/{ref}", f"refs/tags/{ref}", f"refs/{ref}"]


def ls_remote_patterns(ref):
    """The patterns for `git ls-remote`: the candidates and their peeled forms (without the
    peeled form in the patterns, git filters an annotated tag's commit out), then HEAD, whose
    target names the default branch in a message when no candidate exists."""
    patterns = []
    for name in candidates(ref):
        if name != "HEAD":
            patterns += [name, name + PEELED]
    return [*patterns, "HEAD"]


def parse_ls_remote(output):
    """`git ls-remote --symref` output as ({ref name: object id}, {symref: target})."""
    refs, symrefs = {}, {}
    for line in output.splitlines():
        if not line.strip():
            continue
        left, _, name = line.partition("\t")
        if left.startswith("ref: "):
            symrefs[name] = left[len("ref: "):]
        elif COMMIT.fullmatch(left) and name:
            refs[name] = left.lower()
    return refs, symrefs


def default_branch(symrefs):
    """The short name of the branch HEAD points at, or None (a detached HEAD, an old server)."""
    target = symrefs.get("HEAD")
    if target and target.startswith("refs/heads/"):
        return target[len("refs/heads/"):]
    return None


def not_found_message(ref, repo, branch):
    """Why `ref` resolves to nothing in `repo`, for the person who asked for it: what to give
    instead (the full commit id, or the default branch `branch` when known). Never the list
    of ref names that were tried."""
    if SHORT_COMMIT.fullmatch(ref):
        return (f"{ref!r} looks like a short commit id, and no branch or tag in {repo} has that "
                "name: give the full 40-character commit id (a git server cannot be asked for "
                "a commit by an abbreviated id)")
    what = "ref" if ref.startswith("refs/") else "branch, tag or commit"
    message = f"no {what} named {ref!r} in {repo}"
    return message + (f"; its default branch is {branch!r}" if branch else "")


def pick_commit(ls_remote_output, ref, repo="the repository"):
    """Resolve `ref` against `git ls-remote --symref` output for the repository `repo`.

    Returns a dict with `commit`, `ref` (the full name that matched), `default_branch` (only
    when resolving HEAD) and `warnings` (a list). Raises LookupError when nothing matches,
    its message for the person who asked (:func:`not_found_message`). A full commit id is
    returned as it is, whatever the output says.
    """
    ref = ref or ""
    if COMMIT.fullmatch(ref):
        return {"commit": ref.lower(), "ref": ref.lower(), "warnings": []}
    refs, symrefs = parse_ls_remote(ls_remote_output)
    names = candidates(ref)
    if names == ["HEAD"]:
        if "HEAD" not in refs:
            raise LookupError(f"the repository {repo} is empty: it has no default branch")
        return {"commit": refs["HEAD"], "ref": symrefs.get("HEAD") or "HEAD",
                "default_branch": default_branch(symrefs), "warnings": []}
    found = [name for name in names if name in refs]
    if not found:
        raise LookupError(not_found_message(ref, repo, default_branch(symrefs)))
    name = found[0]
    warnings = []
    if name.startswith("refs/heads/") and f"refs/tags/{ref}" in found:
        warnings.append(f"{ref!r} is both a branch and a tag; using the branch {name} "
                        f"(write refs/tags/{ref} for the tag)")
    return {"commit": refs.get(name + PEELED, refs[name]), "ref": name, "warnings": warnings}


def first_lines(text, count=STDERR_LINES):
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[:count]) or "no message"


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    repo, ref = module.params["repo"], module.params["ref"] or ""

    problem = repo_error(repo)
    if problem:
        module.fail_json(msg=f"repo {repo!r} is refused: {problem}")
    if ref != "HEAD" and ref and not COMMIT.fullmatch(ref):
        problem = ref_format_error(ref)
        if problem:
            module.fail_json(msg=f"ref {ref!r} is not a valid git ref name: {problem}")

    if COMMIT.fullmatch(ref):
        result = pick_commit("", ref)
    else:
        git = module.params["git_executable"]
        if "/" not in git:
            git = module.get_bin_path(git, required=True)
        command = [git, "ls-remote", "--symref", "--", repo, *ls_remote_patterns(ref)]
        rc, out, err = module.run_command(
            command, expand_user_and_vars=False,
            environ_update={"GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": "http:https:git"})
        if rc != 0:
            module.fail_json(msg=f"git ls-remote {repo} failed (exit {rc}): {first_lines(err)}",
                             rc=rc, stderr=err)
        try:
            result = pick_commit(out, ref, repo)
        except LookupError as error:
            module.fail_json(msg=str(error))

    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
