"""A VM's Jupyter on this machine, for bench/proxy.py: the notebook image the local cloud's
VMs run (``localcloud/notebook-base:latest``, built by localcloud/baseimage.py), started as
roles/repo2docker_image's launcher starts it on a VM (its JUPYTER_COMMAND, the token from
JUPYTER_TOKEN, its page configuration through JUPYTER_CONFIG_PATH), with one notebook in the
home directory and its port published on loopback only. No registry is asked: the image must
already be on this machine.
"""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = runpy.run_path(str(ROOT / "roles" / "repo2docker_image" / "files"
                              / "repo2docker-launcher"))
IMAGE = "localcloud/notebook-base:latest"
HOME = "home/jovyan"
JOVYAN = 1000  # the image's user (uid and gid), as the image-build role asks repo2docker for
READY_TIMEOUT = 60.0  # seconds from `docker start` to Jupyter answering /api/status


def _archive(notebook: Path) -> bytes:
    """A tar stream for ``docker cp - <container>:/``: the launcher's Jupyter configuration
    at its mount point (root's, read-only to others) and `notebook` in jovyan's home (theirs,
    so Jupyter reports it writable, as a repository's notebook is on a VM)."""
    stream = io.BytesIO()
    config = LAUNCHER["JUPYTER_CONFIG_MOUNT"].strip("/")
    with tarfile.open(fileobj=stream, mode="w") as tar:
        parts = config.split("/")
        for depth in range(1, len(parts) + 1):
            entry = tarfile.TarInfo("/".join(parts[:depth]))
            entry.type, entry.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(entry)
        for name, data, owner, mode in (
                (f"{config}/jupyter_server_config.py", LAUNCHER["JUPYTER_CONFIG"].encode(), 0,
                 0o644),
                (f"{HOME}/{notebook.name}", notebook.read_bytes(), JOVYAN, 0o644)):
            entry = tarfile.TarInfo(name)
            entry.size, entry.mode, entry.uid, entry.gid = len(data), mode, owner, owner
            tar.addfile(entry, io.BytesIO(data))
    return stream.getvalue()


def _wait_ready(port: int, token: str, container: str) -> None:
    """Until Jupyter answers ``GET /api/status`` (jupyter_server's REST API) with the token;
    RuntimeError with the container's last log lines after READY_TIMEOUT."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/status",
                                     headers={"Authorization": f"token {token}"})
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:  # noqa: S310
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    logs = subprocess.run(["docker", "logs", "--tail", "20", container], capture_output=True,
                          text=True)
    raise RuntimeError(f"Jupyter in {container} did not answer within {READY_TIMEOUT:.0f} s:\n"
                       f"{(logs.stdout + logs.stderr)[-1500:]}")


@contextlib.contextmanager
def notebook_server(port: int, token: str, notebook: Path, name: str) -> Iterator[str]:
    """Jupyter from IMAGE in a container called `name`, answering on ``127.0.0.1:<port>``
    with `token`, `notebook` at the top of its tree; yields the notebook's path in Jupyter's
    URLs (its file name). The container is removed on the way out, whatever happened."""
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode:
        raise SystemExit(f"{IMAGE} is not on this machine: localcloud/baseimage.py builds it "
                         "(`make demo` or `localcloud up`)")
    subprocess.run(["docker", "create", "--name", name, "--publish", f"127.0.0.1:{port}:8888",
                    "--env", "JUPYTER_TOKEN",
                    "--env", f"JUPYTER_CONFIG_PATH={LAUNCHER['JUPYTER_CONFIG_MOUNT']}",
                    IMAGE, *LAUNCHER["JUPYTER_COMMAND"]], check=True, capture_output=True,
                   env={**os.environ, "JUPYTER_TOKEN": token})  # not on a command line
    try:
        subprocess.run(["docker", "cp", "--archive", "-", f"{name}:/"],
                       input=_archive(notebook), check=True, capture_output=True)
        subprocess.run(["docker", "start", name], check=True, capture_output=True)
        _wait_ready(port, token, name)
        yield notebook.name
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True)
