"""Why a job failed, in words its owner (a researcher) understands: what went wrong and what
they can do, never an Ansible task name, a controller path or a hint meant for the site's
operators (the job runner logs those: :meth:`web.events.JobRun.failure`).

:func:`failure` reads what the run gathered: its status (``timeout``), the failed task's
module (``task_action``) and ``msg``, and the build log's last lines (web/buildlog.py).
The kinds, in the order they are told apart:

==================== ====================================================================
took too long        the job runner's own limit (``job_timeout``) stopped the run
launcher failed      the VM's launcher said ``failed``: fetching, building (repo2docker)
                     or starting Jupyter, with the log's last lines
launcher stopped     following the launcher failed otherwise: no progress, the build cap,
                     or no word from the VM at all
refused request      the request's own rules (``launch_request``): their message is the
                     researcher's already (the web app shows the same words on refusal)
another VM           the user's VM runs another repository
ref not found        the branch or tag does not exist (naming the default branch when the
                     message does)
repository missing   not found, or not public (git's answers to ``git ls-remote``)
cloud full           quota or no valid host (nova's, neutron's and cinder's words)
no image             the site has no image to boot yet
not set up           the site's settings are missing
not in time          Jupyter did not answer within the ready timeout
anything else        a plain sentence, with the message only when it holds no path or
                     internal name
==================== ====================================================================
"""

from __future__ import annotations

import re

from web.buildlog import PROGRESS_ACTIONS, Line
from web.events import MAX_MESSAGE, JobRun

WHAT = {"start": "Starting your VM", "delete": "Deleting your VM",
        "extend": "Keeping your VM longer", "cull": "The site's clean-up"}
AGAIN = " Please try again; if it fails again, tell the site's operators."
LAST_LINES = 8  # lines of the build log a message quotes ...
LAST_CHARS = 1200  # ... and at most this many characters of them (the message has 2000)
# Nova ("Quota exceeded for cores", "No valid host was found"), neutron ("Quota exceeded
# for resources", "No more IP addresses available"), cinder ("exceeds allowed gigabytes
# quota", "VolumeLimitExceeded").
CLOUD_FULL = re.compile(r"(?i)quota|no valid host|not enough hosts|no more ip addresses"
                        r"|limitexceeded|insufficient (?:resources|capacity)")
# git's answers (via git ls-remote) for a repository that is missing or private: GitHub and
# GitLab ask for credentials, Gitea and others answer 404.
NOT_PUBLIC = re.compile(r"(?i)repository not found|could not read username|authentication "
                        r"failed|terminal prompts disabled|not appear to be a git repository"
                        r"|returned error: 40[134]|\b404\b|not found")
NO_HOST = re.compile(r"(?i)could not resolve host|connection (?:timed out|refused)"
                     r"|failed to connect|timed out")
# git_ref's messages (plugins/modules/git_ref.py), older and current wording
REF_NOT_FOUND = re.compile(r"ref '([^']*)' not found in|no ref named"
                           r"|no branch, tag or commit named '([^']*)'")
DEFAULT_BRANCH = re.compile(r"default branch(?: is)? '?([\w./-]+?)'?(?=[\s.,;)]|$)")
ANOTHER_VM = re.compile(r"already has a VM for\s+(.*?)\s*: delete it first")
WITHIN = re.compile(r"did not answer within (\d+) s")
SECONDS = re.compile(r"\b(\d+) ?(?:s|seconds)\b")
# What a researcher must not see: absolute paths, the role's variables, Ansible's words.
INTERNAL = re.compile(r"(?<![\w:/])/(?:[\w.-]+/)+[\w.-]*|\buser_vm_\w+|\bssc_\w+|\.ya?ml\b"
                      r"|\bplaybook|\bstate=|\bTASK\b|\bansible", re.IGNORECASE)


def failure(run: JobRun, action: str = "start", repo: str = "", ref: str = "") -> str:
    """The failed job's message for its owner (at most :data:`MAX_MESSAGE` characters, known
    secrets masked). `action` is the job's, `repo` and `ref` as it asked for them."""
    return run.scrub(_explain(run, action, repo, ref))[:MAX_MESSAGE]


def no_report(action: str) -> str:
    """The message of a run that succeeded without reporting the VM."""
    return f"{WHAT.get(action, 'The job')} did not finish as expected." + AGAIN


def _explain(run: JobRun, action: str, repo: str, ref: str) -> str:
    what = WHAT.get(action, "The job")
    msg = run.failed_msg or ""
    if run.status == "timeout":
        return f"{what} took longer than this site allows, and was stopped." + AGAIN
    if run.log.phase == "failed":
        return launcher_failed(list(run.log.tail), msg)
    if run.failed_action in PROGRESS_ACTIONS:
        return progress_stopped(list(run.log.tail), msg)
    if run.failed_action in ("ssc.repo2docker.launch_request", "launch_request") and msg:
        return msg if not INTERNAL.search(msg) else f"{what} was refused." + AGAIN
    another = ANOTHER_VM.search(msg)
    if another:
        return (f"You already have a VM for {another.group(1)}. Delete it first, then start "
                "this one.")
    if REF_NOT_FOUND.search(msg):
        return ref_not_found(msg, repo, ref)
    if "ls-remote" in msg:
        if NO_HOST.search(msg):
            return (f"The host of {repo or 'the repository'} could not be reached. Please "
                    "try again later.")
        if NOT_PUBLIC.search(msg):
            return (f"The repository {repo} was not found, or it is not public. Check its "
                    "address; private repositories cannot be started here.")
    if CLOUD_FULL.search(msg):
        return "The cloud is full right now: there is no room for your VM. Please try later."
    if "No active image" in msg:
        return ("This site has no image to start VMs from yet. Please try later, or tell "
                "the site's operators.")
    if "Set user_vm_cloud" in msg:
        return "This site is not set up to start VMs yet. Please tell the site's operators."
    within = WITHIN.search(msg)
    if within:
        return not_in_time(int(within.group(1)), list(run.log.tail), "was deleted" in msg)
    if action == "start" and "Creating the VM" in msg:
        return "The cloud could not create your VM." + AGAIN
    if msg and not INTERNAL.search(msg) and len(msg) <= 300:
        return f"{what} failed: {msg.rstrip('.')}." + AGAIN
    return f"{what} failed." + AGAIN


def last_lines(lines: list[Line], count: int = LAST_LINES) -> str:
    """The last `count` lines of the build log as text, those that fit in
    :data:`LAST_CHARS` characters (the end of the last one, if it alone does not)."""
    kept: list[str] = []
    size = 0
    for text in reversed([line.text for line in lines if line.text][-count:]):
        if size + len(text) + 1 > LAST_CHARS:
            if not kept:
                kept.append(text[-LAST_CHARS:])
            break
        kept.append(text)
        size += len(text) + 1
    return "\n".join(reversed(kept))


def launcher_failed(lines: list[Line], msg: str) -> str:
    """The launcher on the VM failed: say in which step (the phase of the lines before its
    ``failed``), with the log's last lines (or, without a log, the task's message when it
    holds nothing internal)."""
    steps = [line.phase for line in lines if line.phase not in ("", "failed")]
    step = steps[-1] if steps else "building"
    said = {
        "fetching": "The repository could not be fetched.",
        "building": "The repository's build failed (repo2docker).",
    }.get(step, "The repository was built, but Jupyter did not start.")
    tail = last_lines(lines) or (msg if msg and not INTERNAL.search(msg) else "")
    return said + (f" Its last lines:\n{tail}" if tail else "") + (
        "\nFix the repository, then start it again." if step != "fetching" else "")


def progress_stopped(lines: list[Line], msg: str) -> str:
    """Following the launcher failed without the launcher failing: it made no progress, or
    took longer than the site allows, or could not be read (no line at all: the VM did
    not start)."""
    steps = [line.phase for line in lines if line.phase]
    seconds = SECONDS.search(msg)
    limit = f" (within {duration(int(seconds.group(1)))})" if seconds else ""
    if not steps:
        return f"Your VM did not start in time{limit}." + AGAIN
    said = {"fetching": "Fetching the repository", "starting": "Starting Jupyter"}.get(
        steps[-1], "Building the repository's environment")
    return (f"{said} did not finish in time{limit}, and was stopped. The last lines of its "
            f"log:\n{last_lines(lines)}" + AGAIN)


def duration(seconds: int) -> str:
    """`seconds` as a person says them: "90 seconds", "10 minutes"."""
    return f"{seconds // 60} minutes" if seconds >= 120 else f"{seconds} seconds"


def ref_not_found(msg: str, repo: str, ref: str) -> str:
    """The branch or tag does not exist: name it, and the default branch when known."""
    found = REF_NOT_FOUND.search(msg)
    name = ref or (found.group(1) or found.group(2) or "" if found else "")
    default = DEFAULT_BRANCH.search(msg)
    where = f" in {repo}" if repo else ""
    said = (f"There is no branch or tag named '{name}'{where}." if name and name != "HEAD"
            else f"The repository{where} has no default branch.")
    if default:
        return said + f" Its default branch is '{default.group(1)}'."
    return said + " Leave the ref empty to start its default branch."


def not_in_time(seconds: int, lines: list[Line], deleted: bool) -> str:
    """Jupyter did not answer within `seconds`."""
    said = f"Your VM did not start Jupyter in time (within {duration(seconds)})."
    tail = last_lines(lines)
    if tail:
        said += f" The last lines of its log:\n{tail}"
    if deleted:
        said += "\nThe VM was deleted."
    return said + AGAIN
