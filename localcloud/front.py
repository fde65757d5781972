"""The site's TLS front on this machine: deploy/nginx-ssc-web.conf, as shipped, rendered for
loopback and run by Debian's nginx from a directory of its own, with a local certificate
authority. ``make demo`` (localcloud/site.py), the tests and bench/proxy.py all use it.

    https://ssc.localhost:8443/              the app (``[site] base_url``)
    https://<vm name>.vms.localhost:8443/    a VM's Jupyter through the proxy
                                             (``[proxy] vms_domain = "vms.localhost:8443"``)

Names under ``.localhost`` are loopback (RFC 6761 section 6.3): Chromium and curl resolve
them so themselves; glibc does not, so Python clients on this machine use
:func:`loopback_names`. 8443 is above 1024, so nothing runs as root and no system
configuration is touched: nginx's configuration, pid, temporary files and logs live in the
front's directory (``var/web/front`` for the demo).

:class:`Authority` is the local certificate authority: made once with openssl (a key and a
self-signed CA certificate, ``var/ca`` for the demo) and kept, so a browser told to trust it
once keeps trusting it across runs. It signs two server certificates, as the shipped site
has two: one for the app's name and a wildcard for the VMs' domain (on a real site, a
certificate from ACME for the first, and one from ACME DNS-01 for the wildcard).

A test and demo tool: the product never imports it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SITE_CONF = REPO_ROOT / "deploy" / "nginx-ssc-web.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# The shipped site's names, as deploy/nginx-ssc-web.conf spells them.
SHIPPED_APP = "binder.example.org"
SHIPPED_VMS = "vms.binder.example.org"
JUPYTER_PORT = 8888  # roles/user_vm: Jupyter on the VM's fixed address
CA_DAYS = 3650
CERT_DAYS = 365  # browsers cap server certificates at 398 days
START_TIMEOUT = 10.0


class FrontError(RuntimeError):
    """nginx refused the rendered configuration or did not start; says why."""


# --- the certificate authority ---------------------------------------------------------------


@dataclass
class Authority:
    """A local certificate authority in `directory`: ``ca.key`` (0600) and ``ca.pem``."""

    directory: Path
    name: str = "ssc-repo2docker local CA"

    @property
    def certificate(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def key(self) -> Path:
        return self.directory / "ca.key"

    def ensure(self) -> Path:
        """Make the CA unless it exists: its certificate's path."""
        if self.certificate.exists() and self.key.exists():
            return self.certificate
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(CA_DAYS),
                 "-subj", f"/CN={self.name}", "-keyout", self.key, "-out", self.certificate,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return self.certificate

    def issue(self, names: list[str], directory: Path, stem: str) -> tuple[Path, Path]:
        """A server certificate for the DNS `names` (``*.`` for a wildcard), as
        ``<stem>.pem`` and ``<stem>.key`` in `directory`: (certificate, key). Kept while it
        still names exactly these and was signed by this CA; made again otherwise."""
        self.ensure()
        cert, key = directory / f"{stem}.pem", directory / f"{stem}.key"
        wanted = ",".join(f"DNS:{name}" for name in names)
        if cert.exists() and key.exists() and self._valid(cert, wanted):
            return cert, key
        directory.mkdir(parents=True, exist_ok=True)
        csr = directory / f"{stem}.csr"
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={names[0]}",
                 "-keyout", key, "-out", csr)
        extensions = (f"subjectAltName={wanted}\nbasicConstraints=critical,CA:FALSE\n"
                      "keyUsage=critical,digitalSignature,keyEncipherment\n"
                      "extendedKeyUsage=serverAuth\n")
        _openssl("x509", "-req", "-in", csr, "-CA", self.certificate, "-CAkey", self.key,
                 "-CAcreateserial", "-days", str(CERT_DAYS), "-out", cert,
                 "-extfile", "/dev/stdin", stdin=extensions)
        csr.unlink()
        return cert, key

    def _valid(self, cert: Path, wanted: str) -> bool:
        """Whether `cert` verifies against this CA for another day and names `wanted`."""
        verify = subprocess.run(["openssl", "verify", "-CAfile", str(self.certificate),
                                 str(cert)], capture_output=True, check=False)
        ends = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-checkend",
                               "86400", "-ext", "subjectAltName"], capture_output=True,
                              text=True, check=False)
        names = ",".join(line.strip().replace(", ", ",") for line in ends.stdout.splitlines()
                         if line.strip().startswith("DNS:"))
        return verify.returncode == 0 and ends.returncode == 0 and names == wanted


def _openssl(*args, stdin: str | None = None) -> None:
    answer = subprocess.run(["openssl", *map(str, args)], capture_output=True, check=False,
                            input=stdin.encode() if stdin is not None else None)
    if answer.returncode:
        raise FrontError(f"openssl {args[0]} failed: {answer.stderr.decode()[-500:]}")


def trust_in_nss(authority: Authority, home: Path) -> Path:
    """An NSS database at ``<home>/.pki/nssdb`` trusting `authority` for TLS servers: where
    Chromium on Linux reads the user's trusted CAs (run it with ``HOME=<home>``). Needs
    certutil (Debian's libnss3-tools). Returns the database's directory."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True, exist_ok=True)
    certutil = shutil.which("certutil")
    if certutil is None:
        raise FrontError("certutil is missing: apt-get install libnss3-tools")
    database = f"sql:{nssdb}"
    if not (nssdb / "cert9.db").exists():
        subprocess.run([certutil, "-N", "-d", database, "--empty-password"], check=True,
                       capture_output=True)
    subprocess.run([certutil, "-A", "-d", database, "-n", authority.name, "-t", "C,,",
                    "-i", str(authority.ensure())], check=True, capture_output=True)
    return nssdb


# --- the shipped site, rendered ----------------------------------------------------------------


def render(conf: str, app_name: str, vms_domain: str, https_port: int, app_port: int,
           certificates: dict[str, tuple[Path, Path]], logs: Path,
           jupyter_port: int = JUPYTER_PORT) -> str:
    """deploy/nginx-ssc-web.conf's text `conf` with this machine's names and ports: the app at
    ``https://<app_name>:<https_port>/`` proxied to ``127.0.0.1:<app_port>``, VMs at
    ``https://<vm>.<vms_domain>:<https_port>/`` proxied to ``<address>:<jupyter_port>``,
    listening on 127.0.0.1 only (no IPv6, no plain-HTTP redirect), the certificates
    (``{"app": (cert, key), "vms": (cert, key)}``) and the log directory `logs`. Only names,
    ports and paths change; FrontError if the text no longer has what is changed."""
    text = re.sub(r"\nserver \{\n    listen 80;.*?\n\}\n", "\n", conf, count=1, flags=re.S)
    for live, (cert, key) in ((f"/etc/letsencrypt/live/{SHIPPED_VMS}", certificates["vms"]),
                              (f"/etc/letsencrypt/live/{SHIPPED_APP}", certificates["app"])):
        text = text.replace(f"{live}/fullchain.pem", str(cert)).replace(
            f"{live}/privkey.pem", str(key))
    for old, new in (
            (SHIPPED_VMS.replace(".", "\\."), re.escape(vms_domain)),
            (SHIPPED_VMS, vms_domain),
            (f"{SHIPPED_APP}/vm/", f"{app_name}:{https_port}/vm/"),
            (SHIPPED_APP, app_name),
            ("listen [::]:443 ssl http2;", ""),
            ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
            ("127.0.0.1:8080", f"127.0.0.1:{app_port}"),
            (f":{JUPYTER_PORT};", f":{jupyter_port};"),
            ("/var/log/nginx", str(logs))):
        if old not in text:
            raise FrontError(f"{SITE_CONF.name} has no {old!r} any more: update front.render")
        text = text.replace(old, new)
    if "example.org" in text or "letsencrypt" in text or "listen 80" in text:
        raise FrontError(f"{SITE_CONF.name} has names or paths front.render does not know")
    return text


def main_conf(prefix: Path, logs: Path, daemon: bool = True) -> str:
    """The nginx.conf around the site: everything nginx writes under `prefix` and `logs`."""
    return (f"pid {prefix}/nginx.pid;\nerror_log {logs}/error.log;\nworker_processes auto;\n"
            f"daemon {'on' if daemon else 'off'};\nevents {{}}\nhttp {{\n"
            f"  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n"
            f"  fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n"
            f"  scgi_temp_path {prefix}/scgi;\n  include {prefix}/site.conf;\n}}\n")


# --- the front ---------------------------------------------------------------------------------


@dataclass
class SiteFront:
    """nginx serving deploy/nginx-ssc-web.conf in `directory` for the app on
    ``127.0.0.1:<app_port>``, signed by `authority`."""

    directory: Path
    authority: Authority
    app_port: int
    https_port: int = 8443
    app_name: str = "ssc.localhost"
    vms_name: str = "vms.localhost"
    jupyter_port: int = JUPYTER_PORT

    @property
    def base_url(self) -> str:
        """The app's address, ``[site] base_url``."""
        return f"https://{self.app_name}:{self.https_port}"

    @property
    def vms_domain(self) -> str:
        """``[proxy] vms_domain``: the VMs' domain with the port."""
        return f"{self.vms_name}:{self.https_port}"

    @property
    def ca(self) -> Path:
        return self.authority.certificate

    @property
    def logs(self) -> Path:
        return self.directory / "logs"

    @property
    def pid_file(self) -> Path:
        return self.directory / "nginx.pid"

    def prepare(self) -> Path:
        """Certificates (made when missing or stale) and the rendered configuration, tested
        with ``nginx -t``: the main configuration's path."""
        self.logs.mkdir(parents=True, exist_ok=True)
        certs = self.directory / "certs"
        certificates = {
            "app": self.authority.issue([self.app_name], certs, "app"),
            "vms": self.authority.issue([f"*.{self.vms_name}"], certs, "vms"),
        }
        (self.directory / "site.conf").write_text(render(
            SITE_CONF.read_text(), self.app_name, self.vms_name, self.https_port,
            self.app_port, certificates, self.logs, self.jupyter_port))
        conf = self.directory / "nginx.conf"
        conf.write_text(main_conf(self.directory, self.logs))
        test = subprocess.run([NGINX, "-t", "-q", *self._args(conf)], capture_output=True,
                              text=True, check=False)
        if test.returncode:
            raise FrontError(f"nginx -t refused {conf}: {test.stderr.strip()}")
        return conf

    def _args(self, conf: Path) -> list[str]:
        return ["-p", str(self.directory), "-c", str(conf), "-e", str(self.logs / "error.log")]

    def pid(self) -> int | None:
        """nginx's master pid if this front's nginx runs."""
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if str(self.directory).encode() in cmdline else None

    def start(self) -> None:
        """Start nginx (reload it if it runs) and wait until it accepts connections."""
        conf = self.prepare()
        running = self.pid()
        if running:
            os.kill(running, signal.SIGHUP)
            return
        started = subprocess.run([NGINX, *self._args(conf)], capture_output=True, text=True,
                                 check=False)
        if started.returncode:
            raise FrontError(f"nginx did not start: {started.stderr.strip()}")
        deadline = time.monotonic() + START_TIMEOUT
        while not self._accepts():
            if time.monotonic() > deadline:
                raise FrontError(f"nginx does not answer on 127.0.0.1:{self.https_port}")
            time.sleep(0.05)

    def _accepts(self) -> bool:
        with socket.socket() as probe:
            return self.pid() is not None and probe.connect_ex(
                ("127.0.0.1", self.https_port)) == 0

    def stop(self) -> None:
        """Stop nginx (a graceful quit, then a kill) and wait for it to go."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + START_TIMEOUT
        while self.pid() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.pid():
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)


# --- names under .localhost for Python clients -------------------------------------------------


@contextlib.contextmanager
def loopback_names() -> Iterator[None]:
    """While inside, this process resolves ``*.localhost`` to 127.0.0.1 as Chromium and curl
    do (RFC 6761 6.3); glibc leaves them to DNS. For requests-driven visitors in tests and
    ``localcloud site launch``."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.lower().rstrip(".").endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = real
