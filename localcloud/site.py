"""The web trigger on this machine, on the local cloud: ``localcloud site up|down|status|launch``.

A test and demo tool, not part of the product: it drives the product (``web``) from outside.
``make demo`` serves the app this way with the local cloud's GitHub stand-in, behind the
site's TLS front (localcloud/front.py: deploy/nginx-ssc-web.conf rendered for loopback) at
https://ssc.localhost:8443/, each VM's Jupyter at https://<vm>.vms.localhost:8443/; the app
itself listens on http://127.0.0.1:8080. The end-to-end tests run the same processes and
front on other ports and directories; bench/web.py runs the app alone (no front).

A site lives in one directory (``var/web`` for the demo): its configuration
``ssc-web.toml`` (written from the local cloud and inventory/localcloud, so the repository
rules are the inventory's), ``secrets.env`` (0600, made once: the stand-in's OAuth app
secret and a registration secret), the database, the job dirs, the logs and pid files of
``ssc-web serve`` and ``ssc-web worker``, and ``front/`` (nginx's configuration, pid,
certificates and logs). The local certificate authority is kept apart (``var/ca``), made once
and reused, so a browser told to trust it keeps trusting it.

:class:`SiteUser` is a researcher scripted with requests: sign in through the stand-in,
open the registration link, start a repository, follow the job, delete the VM.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from localcloud import github
from localcloud.config import Config as CloudConfig
from localcloud.front import Authority, SiteFront
from web import db
from web.config import Config, load

# The checkout whose playbooks, inventory and web app the site runs: make setup installs
# localcloud in editable mode, so this folder is the package.
REPO_ROOT = Path(__file__).resolve().parents[1]
INVENTORY = REPO_ROOT / "inventory" / "localcloud"
SAMPLE_REPO = "ssc/sample-notebook"
PROCESSES = ("worker", "serve")  # started in this order, stopped in the other
START_TIMEOUT = 60
STOP_TIMEOUT = 60  # the worker gives running jobs 30 s, then cancels them
AUTHORITY = REPO_ROOT / "var" / "ca"
HTTPS_PORT = 8443  # the demo's front: above 1024, so no root


class SiteError(RuntimeError):
    """The site could not start, or a step of a user's visit failed; says why."""


@dataclass
class LocalSite:
    """One site of the web trigger in `directory`, served on 127.0.0.1:`port` by real
    ``ssc-web serve`` and ``ssc-web worker`` processes, against the local cloud `cloud`;
    with `https_port`, behind the TLS front on that port (certificates from the CA in
    `authority`), which then is the site's address and proxies the VMs."""

    directory: Path = REPO_ROOT / "var" / "web"
    port: int = 8080
    cloud: CloudConfig = field(default_factory=lambda: CloudConfig(
        var_dir=REPO_ROOT / "var" / "localcloud"))
    max_concurrent: int = 4
    threads: int = 8
    vm_refresh_interval: int = 300
    https_port: int | None = None
    authority: Path = AUTHORITY

    @property
    def front(self) -> SiteFront | None:
        if self.https_port is None:
            return None
        return SiteFront(self.directory / "front", Authority(self.authority),
                         app_port=self.port, https_port=self.https_port)

    @property
    def url(self) -> str:
        """The site's address: its front's, else the app's own."""
        front = self.front
        return front.base_url if front else self.app_url

    @property
    def app_url(self) -> str:
        """The app's own address (plain HTTP on loopback, behind the front if any)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path | None:
        """The CA certificate that the front's certificates chain to (None without one)."""
        front = self.front
        return front.ca if front else None

    def user(self, login: str) -> SiteUser:
        """A scripted researcher `login` on this site, trusting its CA."""
        return SiteUser(self.url, login, verify=str(self.ca) if self.ca else True)

    @property
    def config_path(self) -> Path:
        return self.directory / "ssc-web.toml"

    @property
    def secrets_path(self) -> Path:
        return self.directory / "secrets.env"

    @property
    def sample_repo(self) -> str:
        return f"{self.cloud.git_base_url}/{SAMPLE_REPO}.git"

    # --- configuration

    def prepare(self) -> Config:
        """Write the configuration and (once) the secrets; returns the loaded configuration."""
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        front = self.front
        if front:
            front.authority.ensure()
        client_id, client_secret = github.oauth_app_for(self.cloud) if front is None else (
            github.oauth_app_for(self.cloud, f"{self.url}/auth/callback"))  # else any port
        known = self.secrets()
        values = {
            "SSC_WEB_GITHUB_CLIENT_SECRET": client_secret,
            "SSC_WEB_REGISTRATION_SECRET": known.get("SSC_WEB_REGISTRATION_SECRET")
            or secrets.token_hex(24),
        }
        if values != known:
            fd = os.open(self.secrets_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.writelines(f"{name}={value}\n" for name, value in values.items())
        self.config_path.write_text(self.configuration(client_id))
        return load(self.config_path, self.environment())

    def configuration(self, client_id: str) -> str:
        """The TOML of the site (see deploy/ssc-web.example.toml for every setting)."""
        stand_in = self.cloud.github_base_url

        def toml(value) -> str:  # TOML's basic strings and arrays read JSON's ASCII ones
            return json.dumps(value)

        return f"""\
# Written by `localcloud site up` for a site on this machine and the local cloud.
[site]
base_url = {toml(self.url)}
database = "ssc-web.sqlite3"
default_repo = {toml(self.sample_repo)}

[server]
host = "127.0.0.1"
port = {self.port}
threads = {self.threads}

[github]
client_id = {toml(client_id)}
authorize_url = {toml(stand_in + "/login/oauth/authorize")}
token_url = {toml(stand_in + "/login/oauth/access_token")}
api_url = {toml(stand_in + "/api/v3")}

[jobs]
max_concurrent = {self.max_concurrent}
private_data_root = "jobs"
playbook_dir = {toml(str(REPO_ROOT / "playbooks"))}
inventory = {toml(str(INVENTORY))}
# inventory/localcloud makes the token secret itself (var/secrets/token-secret)
pass_token_secret = false
vm_refresh_interval = {self.vm_refresh_interval}

[jobs.env]
OS_CLIENT_CONFIG_FILE = {toml(str(self.cloud.var_dir.resolve() / "clouds.yaml"))}
OS_CLOUD = "localcloud"
ANSIBLE_CONFIG = {toml(str(REPO_ROOT / "ansible.cfg"))}
""" + (f"""
[proxy]
# each VM's Jupyter at https://<vm name>.{self.front.vms_domain}/, through the front
vms_domain = {toml(self.front.vms_domain)}
""" if self.front else "")

    def secrets(self) -> dict[str, str]:
        if not self.secrets_path.exists():
            return {}
        lines = self.secrets_path.read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.secrets()}

    @property
    def registration_link(self) -> str:
        return f"{self.url}/register/{self.secrets()['SSC_WEB_REGISTRATION_SECRET']}"

    # --- processes

    def _pid_file(self, name: str) -> Path:
        return self.directory / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        """The pid of `name` ("serve" or "worker") if it runs."""
        try:
            pid = int(self._pid_file(name).read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if str(self.config_path).encode() in cmdline else None

    def start(self) -> None:
        """Start whatever of the worker and the app is not running, wait until ``/healthz``
        says all is well, then start (or reload) the front."""
        self.prepare()
        started = {}
        for name in PROCESSES:
            if self.pid(name):
                continue
            with open(self.directory / f"{name}.log", "ab") as log:
                started[name] = subprocess.Popen(
                    [sys.executable, "-m", "web.cli", name, "--config", str(self.config_path)],
                    cwd=REPO_ROOT, env=self.environment(), stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            self._pid_file(name).write_text(str(started[name].pid))
        deadline = time.monotonic() + START_TIMEOUT
        since = db.now()  # a dead runner's last heartbeat may still look fresh
        while True:
            health = self.health()
            if health.get("runner") == "ok" and (
                    "worker" not in started or health.get("runner_heartbeat", "") >= since):
                break
            gone = [name for name, process in started.items() if process.poll() is not None]
            if gone or time.monotonic() > deadline:
                tails = "\n".join(f"--- {name}.log\n{self.log_tail(name)}" for name in PROCESSES)
                raise SiteError(f"the site did not start ({', '.join(gone) or 'too slow'}; "
                                f"/healthz: {health}):\n{tails}")
            time.sleep(0.2)
        if self.front:
            self.front.start()

    def health(self) -> dict:
        try:
            return requests.get(self.app_url + "/healthz", timeout=5).json()
        except (requests.RequestException, ValueError):
            return {}

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.directory / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if (
            path.exists()) else ""

    def stop(self, name: str | None = None, sig: int = signal.SIGTERM) -> None:
        """Stop the front, the app and the worker (or only the process `name`) with `sig`,
        and wait for them; the worker gives running jobs its grace period, then cancels them."""
        if name is None and self.front:
            self.front.stop()
        for process in reversed(PROCESSES) if name is None else (name,):
            pid = self.pid(process)
            if pid is None:
                continue
            os.kill(pid, sig)
            deadline = time.monotonic() + STOP_TIMEOUT
            while self.pid(process) and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.pid(process):
                os.killpg(pid, signal.SIGKILL)
            self._pid_file(process).unlink(missing_ok=True)


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class SiteUser:
    """A researcher on `site_url`, scripted: the requests a browser sends."""

    def __init__(self, site_url: str, login: str, verify: str | bool = True):
        self.site_url, self.login = site_url, login
        self.http = requests.Session()
        self.http.trust_env = False  # everything is on this machine: no proxy
        self.http.verify = verify  # the front's CA (localcloud/front.py)

    def _get(self, path: str) -> requests.Response:
        response = self.http.get(self.site_url + path, timeout=30)
        if response.status_code != 200:
            raise SiteError(f"GET {path}: {response.status_code}")
        return response

    def _post(self, path: str, form_page: str, **fields) -> requests.Response:
        token = CSRF.search(self._get(form_page).text)
        if token is None:
            raise SiteError(f"{form_page} has no form for {self.login}")
        response = self.http.post(self.site_url + path, data={"csrf": token[1], **fields},
                                  timeout=30, allow_redirects=False)
        if response.status_code != 303:
            raise SiteError(f"POST {path}: {response.status_code} "
                            f"{_message(response.text)}")
        return response

    def sign_in(self) -> None:
        """Through the GitHub stand-in's authorize page, as `login`."""
        begin = self.http.get(self.site_url + "/auth/login", allow_redirects=False, timeout=30)
        if begin.status_code not in (302, 303):
            raise SiteError(f"/auth/login: {begin.status_code}")
        back = github.approve(begin.headers["Location"], self.login, session=self.http)
        self.http.get(back, timeout=30).raise_for_status()

    def register(self, registration_link: str) -> None:
        path = registration_link.removeprefix(self.site_url)
        self._post(path, path)

    def start(self, repo: str, ref: str = "") -> str:
        """Start a VM for `repo` at `ref`: the job's id."""
        answer = self._post("/VM_start", "/", giturl=repo, ref=ref)
        return answer.headers["Location"].rsplit("/", 1)[-1]

    def delete(self) -> str:
        """Delete the VM: the job's id."""
        return self._post("/VM_delete", "/VM_delete").headers["Location"].rsplit("/", 1)[-1]

    def keep(self) -> str:
        """Keep the VM longer (the page's "keep it" button): the job's id."""
        return self._post("/VM_extend", "/").headers["Location"].rsplit("/", 1)[-1]

    def job(self, job_id: str) -> dict:
        return self._get(f"/jobs/{job_id}.json").json()

    def follow(self, job_id: str, timeout: float = 1200, on_phase=None) -> dict:
        """Wait until job `job_id` is done (calling ``on_phase(job)`` when its phase
        changes): the job as /jobs/<id>.json gives it."""
        deadline, phase = time.monotonic() + timeout, None
        while True:
            job = self.job(job_id)
            if on_phase and job["phase"] != phase:
                on_phase(job)
            phase = job["phase"]
            if job["done"]:
                return job
            if time.monotonic() > deadline:
                raise SiteError(f"job {job_id} is still {job['state']} ({phase})")
            time.sleep(1)


def _message(page: str) -> str:
    found = re.search(r'role="alert">\s*<p>(.*?)</p>', page, re.S)
    return found[1].strip() if found else ""
