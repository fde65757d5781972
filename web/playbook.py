"""Running playbooks/user_vm.yml for a job with ansible-runner, the AWX way of running it
inside a service:

- its own private data dir (``tempfile.mkdtemp`` below ``private_data_root``, mode 0700),
  deleted afterwards: nothing of a run (events, output, the command's environment) stays on
  disk; every process of the run is ended with it (web/procs.py);
- ``ident`` = the job id, timeouts in ``settings``, ``suppress_env_files``;
- the extra vars ``user_id``, ``user``, ``repo``, ``ref``, ``state`` (``present``, ``absent`` or
  ``extended``) are checked again with the rules the playbook uses (``launch_request.check``)
  and written to ``env/extravars`` as ``!unsafe``
  strings, never passed as ``extravars=`` (ansible-runner would add them as trusted ``-e``
  JSON, and ansible-core 2.19 would render a ``{{ lookup('pipe', ...) }}`` in them);
- the environment is built, not inherited: the names in :data:`ENV_PASSTHROUGH` from this
  process's environment, the settings' ``env``, ``ANSIBLE_CONFIG`` and ``PATH`` (this venv's
  bin first), and what ansible-runner itself sets; nothing else of this process (the web
  app's OAuth secret, say) reaches the playbook.

What the run says is gathered by a :class:`web.events.JobRun`.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import yaml
from ansible_collections.ssc.repo2docker.plugins.module_utils import launch_request

from web import REPO_ROOT
from web.config import Config
from web.events import JobRun
from web.jobqueue import Job
from web.procs import end_processes_of

log = logging.getLogger(__name__)

# What a playbook run may see of this process's environment: locale, home, proxies, CA
# bundles, the cloud's settings (OS_*) and the site's token secret.
ENV_PASSTHROUGH = (
    "HOME", "USER", "LOGNAME", "LANG", "LC_*", "TZ", "TMPDIR",
    "OS_*", "SSC_TOKEN_SECRET",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
)
# Names of environment variables whose values are secrets to keep out of output and messages.
SECRET_NAME = re.compile(r"(?i)secret|password|token|credential|key")
SAFE_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
JOB_DIR_PREFIX = "ssc-r2d-job-"  # of every private data dir, so a new runner finds leftovers


def checkout_path(path: str | os.PathLike) -> Path:
    """`path` as an absolute path (a relative one is below the checkout)."""
    return (REPO_ROOT / path).resolve()


def playbook_path(config: Config) -> Path:
    """The playbook a job runs: ``playbook`` below ``playbook_dir``."""
    return checkout_path(config.playbook_dir) / config.playbook


def inventory_path(config: Config) -> Path:
    """The site's inventory; ValueError if the settings name none."""
    if config.inventory is None:
        raise ValueError("no inventory is configured ([jobs] inventory)")
    return checkout_path(config.inventory)


# --- the extra vars -------------------------------------------------------------------------


class _Unsafe(str):
    """A string written with the tag ``!unsafe``: Ansible never renders it as a template."""


class _ExtravarsDumper(yaml.SafeDumper):
    pass


def _represent_unsafe(dumper: yaml.SafeDumper, value: _Unsafe) -> yaml.ScalarNode:
    # Ansible reads an empty `!unsafe ""` as None: an empty string, which holds no template,
    # is written untagged.
    return dumper.represent_scalar("!unsafe" if value else "tag:yaml.org,2002:str", str(value),
                                   style='"')


_ExtravarsDumper.add_representer(_Unsafe, _represent_unsafe)


def unsafe_extravars(values: dict[str, str]) -> str:
    """YAML mapping every name of `values` to its string tagged ``!unsafe``, double-quoted
    (every control or non-ASCII character escaped, one line per value); ``""`` untagged.
    ValueError for a name that is not a plain identifier, TypeError for a value that is not
    a string."""
    for name, value in values.items():
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"extra var name {name!r} is not a plain identifier")
        if not isinstance(value, str):
            raise TypeError(f"extra var {name} must be a string")
    return yaml.dump({name: _Unsafe(value) for name, value in values.items()},
                     Dumper=_ExtravarsDumper, default_flow_style=False, allow_unicode=False,
                     width=float("inf"), sort_keys=False)


def write_extravars(private_data_dir: str | os.PathLike, values: dict[str, str]) -> Path:
    """Write `values` to ``<private_data_dir>/env/extravars`` (0600) as ``!unsafe`` strings."""
    env_dir = Path(private_data_dir) / "env"
    env_dir.mkdir(mode=0o700, exist_ok=True)
    path = env_dir / "extravars"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(unsafe_extravars(values))
    return path


def job_extravars(job: Job, config: Config) -> dict[str, str]:
    """The extra vars of `job`, checked again here with the site's repository hosts (the app
    checked them too: defence in depth): ``user_id`` (the GitHub account id, the user's
    identity in the cloud: roles/user_vm names and finds the VM by it) and ``user`` (the
    login, for people to read), and per action the rest. Raises ``LaunchRequestError`` (a
    ValueError) with a message for the user, ValueError for an unknown action."""
    who = {"user_id": launch_request.check_user_id(job.github_id),
           "user": launch_request.check_user(job.login)}
    if job.action == "delete":
        return {**who, "state": "absent"}
    if job.action == "extend":  # "keep it": one more extension (web/lifetime.py)
        return {**who, "state": "extended"}
    if job.action != "start":
        raise ValueError(f"unknown action {job.action!r}")
    request = launch_request.check(job.login, job.repo, job.ref or None,
                                   allowed_hosts=config.allowed_hosts,
                                   allow_http_hosts=config.allow_http_hosts,
                                   case_insensitive_hosts=config.case_insensitive_hosts,
                                   subgroup_hosts=config.subgroup_hosts,
                                   user_id=job.github_id)
    return {**who, "repo": request["repo"], "ref": request["ref"] or "", "state": "present"}


# --- the environment ------------------------------------------------------------------------


def job_environment(config: Config, venv_bin: str | None = None) -> dict[str, str]:
    """The environment variables a playbook run gets (ansible-runner adds its own)."""
    pass_secret = config.pass_token_secret
    env = {name: value for name, value in os.environ.items()
           if any(fnmatch.fnmatchcase(name, pattern) for pattern in ENV_PASSTHROUGH)
           and (pass_secret or name != "SSC_TOKEN_SECRET")}
    if pass_secret and config.token_secret:
        env["SSC_TOKEN_SECRET"] = config.token_secret
    env.update({str(k): str(v) for k, v in config.env.items()})
    env.setdefault("ANSIBLE_CONFIG", str(REPO_ROOT / "ansible.cfg"))
    env["ANSIBLE_NOCOLOR"] = "1"
    venv_bin = venv_bin or str(Path(sys.prefix) / "bin")
    path = env.get("PATH") or os.environ.get("PATH") or os.defpath
    env["PATH"] = os.pathsep.join([venv_bin, *(p for p in path.split(os.pathsep)
                                               if p and p != venv_bin)])
    return env


def secret_values(env: dict[str, str]) -> set[str]:
    """Values of variables whose names say they are secrets."""
    return {value for name, value in env.items() if SECRET_NAME.search(name) and value}


# --- a run ----------------------------------------------------------------------------------


def clean_leftover_runs(config: Config) -> list[str]:
    """End the processes of runs a previous worker left behind (it was killed, not stopped),
    and delete their private data dirs below ``private_data_root`` (another worker's runs
    are elsewhere). Returns the dirs cleaned."""
    root = checkout_path(config.private_data_root)
    if not root.is_dir():
        return []
    cleaned = []
    for leftover in sorted(root.glob(JOB_DIR_PREFIX + "*")):
        killed = end_processes_of(leftover)
        if killed:
            log.warning("%s: ended %d process(es) of an earlier run", leftover.name, len(killed))
        shutil.rmtree(leftover, ignore_errors=True)
        cleaned.append(str(leftover))
    return cleaned


def run_playbook(config: Config, job_id: str, extravars: dict[str, str], run: JobRun) -> JobRun:
    """Run the configured playbook with `extravars` (taken as already checked: this layer
    only makes sure they stay data) and return `run`, filled by the events. The private data
    dir is made fresh and deleted after, with every process of the run."""
    import ansible_runner

    parent = checkout_path(config.private_data_root)
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_data_dir = tempfile.mkdtemp(prefix=JOB_DIR_PREFIX, dir=parent)
    try:
        os.chmod(private_data_dir, 0o700)
        write_extravars(private_data_dir, extravars)
        env = job_environment(config)
        run.add_secrets(secret_values(env))
        runner_config = ansible_runner.RunnerConfig(
            private_data_dir=private_data_dir,
            project_dir=str(REPO_ROOT),
            playbook=str(playbook_path(config)),
            inventory=str(inventory_path(config)),
            ident=job_id if SAFE_IDENT.fullmatch(job_id) else uuid.uuid4().hex,
            envvars=env,
            settings={
                "job_timeout": config.job_timeout,
                "idle_timeout": config.idle_timeout,
                "pexpect_timeout": 1,  # how often cancel_callback runs
                "suppress_output_file": True,
                "suppress_ansible_output": True,
            },
            suppress_env_files=True,
            quiet=True,
        )
        runner_config.prepare()
        # Inherit only what was chosen: drop every variable of this process that
        # ansible-runner copied unchanged and that is not in `env`.
        runner_config.env = {name: value for name, value in runner_config.env.items()
                             if name in env or os.environ.get(name) != value}
        runner = ansible_runner.Runner(runner_config, event_handler=run.event_handler,
                                       cancel_callback=run.cancel_callback,
                                       status_handler=run.status_handler)
        status, _rc = runner.run()
        run.status = "canceled" if run.cancelled and status != "successful" else status
    finally:
        # After a cancellation or a timeout, ansible-core's workers outlive ansible-playbook.
        killed = end_processes_of(private_data_dir)
        if killed:
            log.warning("job %s: ended %d process(es) left of its run", job_id, len(killed))
        shutil.rmtree(private_data_dir, ignore_errors=True)
    return run
