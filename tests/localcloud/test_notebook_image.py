"""The notebook base image, its tarball for servers, and the sample repository, with real Docker.

The sample is built twice: with plain `docker build` (the host's Docker 20.10 has no buildx),
and with real repo2docker, which needs `docker buildx`: the plugin is taken from the servers'
base image (Debian 13's docker-buildx) into a throwaway DOCKER_CONFIG, and repo2docker goes
into a throwaway venv. Everything a test makes is removed at its end.
"""

import json
import re
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from localcloud import githost
from localcloud.baseimage import (
    HOST_CA_BUNDLE,
    NOTEBOOK_LATEST,
    PEM_CERT,
    ensure_base_image,
    ensure_notebook_image,
    export_image,
    notebook_recipe_hash,
)
from localcloud.config import DOCKER_LABEL, Config

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = ROOT / Config().var_dir / "cache"  # as `localcloud up`: its debs cache and lock
SAMPLE = ROOT / "localcloud" / "samples" / "notebook"
REPO2DOCKER = "jupyter-repo2docker==2026.4.0"
BUILDX_IN_BASE_IMAGE = "/usr/libexec/docker/cli-plugins/docker-buildx"
START_TIMEOUT = 60
MAX_SIZE = 450 * 1000 * 1000  # 328 MB when written: Python 3.13, Jupyter Server, Notebook 7


def docker(*args: str, check: bool = True, timeout: int = 600) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed:\n{result.stderr}{result.stdout}")
    return result.stdout.strip()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def notebook_image() -> str:
    return ensure_notebook_image(CACHE_DIR)


@pytest.fixture
def made() -> Iterator[dict[str, list[str]]]:
    """Containers and images a test makes, removed at its end whatever happens."""
    things: dict[str, list[str]] = {"containers": [], "images": []}
    yield things
    for container in things["containers"]:
        docker("rm", "-f", "-v", container, check=False)
    for image in things["images"]:
        docker("image", "rm", image, check=False)


@pytest.fixture
def serve(made: dict[str, list[str]]) -> Callable:
    @contextmanager
    def serve(image: str, *command: str, env: dict[str, str] | None = None) -> Iterator[str]:
        """Run image like a launcher does, published on a free loopback port; its base URL
        once Jupyter answers."""
        port = free_port()
        name = f"localcloud-nbtest-{uuid.uuid4().hex[:8]}"
        made["containers"].append(name)
        environment = [f"--env={key}={value}" for key, value in (env or {}).items()]
        docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8888", *environment,
               image, *command)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                requests.get(f"{url}/api/status", timeout=2)
                break
            except requests.ConnectionError:
                pass
            running = docker("inspect", "--format", "{{.State.Running}}", name)
            if running != "true" or time.monotonic() > deadline:
                logs = docker("logs", "--tail", "30", name, check=False)
                pytest.fail(f"Jupyter in {image} did not answer in {START_TIMEOUT} s:\n{logs}")
            time.sleep(0.3)
        yield url

    return serve


def check_jupyter(url: str, token: str) -> None:
    authorised = requests.get(f"{url}/api/status", timeout=10,
                              headers={"Authorization": f"token {token}"})  # fmt: skip
    assert authorised.status_code == 200, authorised.text
    assert "started" in authorised.json()
    assert requests.get(f"{url}/api/status", timeout=10).status_code == 403
    wrong = requests.get(f"{url}/api/status", timeout=10, headers={"Authorization": "token no"})
    assert wrong.status_code == 403


def check_sample(url: str, token: str) -> None:
    check_jupyter(url, token)
    notebook = requests.get(f"{url}/api/contents/index.ipynb", timeout=10,
                            headers={"Authorization": f"token {token}"})  # fmt: skip
    assert notebook.status_code == 200, notebook.text
    assert notebook.json()["type"] == "notebook"
    assert notebook.json()["writable"] is True  # jovyan owns the copy of the repository


# --- the image -------------------------------------------------------------------------------


def test_image_is_cached_tagged_and_labelled(notebook_image: str) -> None:
    assert notebook_image == f"localcloud/notebook-base:{notebook_recipe_hash()}"
    said: list[str] = []
    assert ensure_notebook_image(CACHE_DIR, log=said.append) == notebook_image
    assert said == []  # no build: a look at Docker
    inspected = json.loads(docker("image", "inspect", notebook_image))[0]
    assert docker("image", "inspect", "--format", "{{.Id}}", NOTEBOOK_LATEST) == inspected["Id"]
    labels = inspected["Config"]["Labels"]
    assert labels[DOCKER_LABEL] == "1"
    assert labels[f"{DOCKER_LABEL}.notebook-base"] == notebook_recipe_hash()
    assert inspected["Config"]["User"] == "1000"
    assert "8888/tcp" in inspected["Config"]["ExposedPorts"]
    assert inspected["Size"] < MAX_SIZE, f"{inspected['Size'] / 1e6:.0f} MB"


def test_user_venv_and_versions(notebook_image: str) -> None:
    script = (
        "id -u; id -un; echo $HOME; pwd; command -v jupyter; stat -c %u /opt/notebook; "
        "touch $HOME/w && echo writable; "
        "python -c 'import jupyter_server, notebook; "
        "print(jupyter_server.__version__, notebook.__version__)'"
    )
    output = docker("run", "--rm", notebook_image, "sh", "-c", script).splitlines()
    assert output == ["1000", "jovyan", "/home/jovyan", "/home/jovyan",
                      "/opt/notebook/bin/jupyter", "1000", "writable", "2.21.1 7.6.5"]  # fmt: skip


def test_host_ca_bundle_is_trusted(notebook_image: str) -> None:
    if not HOST_CA_BUNDLE.exists():
        pytest.skip(f"the host has no {HOST_CA_BUNDLE}")
    inside = docker("run", "--rm", notebook_image, "cat", str(HOST_CA_BUNDLE))
    missing = set(PEM_CERT.findall(HOST_CA_BUNDLE.read_text())) - set(PEM_CERT.findall(inside))
    assert not missing, f"{len(missing)} of the host's CA certificates are not trusted"
    pip_cert = docker("run", "--rm", notebook_image, "sh", "-c", "echo $PIP_CERT")
    assert pip_cert == str(HOST_CA_BUNDLE)


def test_serves_jupyter_with_a_token(notebook_image: str, serve: Callable) -> None:
    token = uuid.uuid4().hex
    with serve(notebook_image, "jupyter", "server", "--ip=0.0.0.0", "--port=8888",
               f"--ServerApp.token={token}") as url:  # fmt: skip
        check_jupyter(url, token)


def test_default_command_serves_jupyter(notebook_image: str, serve: Callable) -> None:
    token = uuid.uuid4().hex
    with serve(notebook_image, env={"JUPYTER_TOKEN": token}) as url:
        check_jupyter(url, token)


def test_export_image_saves_both_tags_once(notebook_image: str, tmp_path: Path) -> None:
    tarball = tmp_path / "cache" / "notebook-base.tar"
    assert export_image(notebook_image, tarball) == tarball
    with tarfile.open(tarball) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
    assert sorted(manifest[0]["RepoTags"]) == sorted([notebook_image, NOTEBOOK_LATEST])
    written = tarball.stat().st_mtime_ns
    assert export_image(notebook_image, tarball) == tarball
    assert tarball.stat().st_mtime_ns == written
    assert not list(tarball.parent.glob("*.partial"))


# --- the sample repository -------------------------------------------------------------------


def test_sample_repository_follows_repo2docker_conventions() -> None:
    dockerfile = (SAMPLE / "Dockerfile").read_text()
    assert re.search(rf"^FROM {re.escape(NOTEBOOK_LATEST)}$", dockerfile, re.M)
    for line in ("ARG NB_USER", "ARG NB_UID", "USER ${NB_USER}", "EXPOSE 8888"):
        assert line in dockerfile
    assert json.loads((SAMPLE / "index.ipynb").read_text())["nbformat"] == 4
    assert (SAMPLE / "README.md").exists()


def test_sample_builds_with_docker_build(
    notebook_image: str, made: dict[str, list[str]], serve: Callable
) -> None:
    image = f"localcloud-test/sample-notebook:{uuid.uuid4().hex[:8]}"
    made["images"].append(image)
    docker("build", "-q", "--build-arg", "NB_USER=jovyan", "--build-arg", "NB_UID=1000",
           "-t", image, str(SAMPLE))  # fmt: skip
    token = uuid.uuid4().hex
    with serve(image, env={"JUPYTER_TOKEN": token}) as url:  # the sample's CMD
        check_sample(url, token)


@pytest.fixture(scope="module")
def repo2docker(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """repo2docker in a throwaway venv, and an environment where `docker buildx` works."""
    where = tmp_path_factory.mktemp("repo2docker")
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = subprocess.run([str(venv / "bin/pip"), "install", "-q", REPO2DOCKER],
                               capture_output=True, text=True, timeout=600)  # fmt: skip
    if installed.returncode != 0:
        pytest.skip(f"cannot install {REPO2DOCKER}: {installed.stderr[-500:]}")
    env = {"PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": str(where)}
    if subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode != 0:
        # No buildx on the host (Debian 12): the servers' image has Debian 13's.
        plugins = where / "docker-config" / "cli-plugins"
        plugins.mkdir(parents=True)
        container = docker("create", ensure_base_image(CACHE_DIR))
        try:
            docker("cp", f"{container}:{BUILDX_IN_BASE_IMAGE}", str(plugins / "docker-buildx"))
        finally:
            docker("rm", container)
        env["DOCKER_CONFIG"] = str(plugins.parent)
    check = subprocess.run(["docker", "buildx", "version"], env=env, capture_output=True)
    if check.returncode != 0:
        pytest.skip(f"no working docker buildx: {check.stderr.decode()[-300:]}")
    env["REPO2DOCKER"] = str(venv / "bin/repo2docker")
    # Given a URL, repo2docker's Dataverse provider first downloads a list of installations
    # from iqss.github.io, which is not reachable here: only the local and git providers.
    config = where / "repo2docker_config.py"
    config.write_text("from repo2docker import contentproviders\n"
                      "c.Repo2Docker.content_providers = "
                      "[contentproviders.Local, contentproviders.Git]\n")  # fmt: skip
    env["REPO2DOCKER_CONFIG"] = str(config)
    return env


def test_sample_builds_with_repo2docker(
    notebook_image: str, repo2docker: dict[str, str], made: dict[str, list[str]],
    serve: Callable, tmp_path: Path,
) -> None:  # fmt: skip
    # Published as `localcloud up` does, cloned by repo2docker at a commit, as servers do.
    config = Config(var_dir=tmp_path / "var")
    githost.publish_repository(config, "ssc", "sample-notebook", SAMPLE)
    bare = githost.repository_path(config, "ssc", "sample-notebook")
    commit = subprocess.run(["git", "--git-dir", str(bare), "rev-parse", "HEAD"],
                            capture_output=True, text=True, check=True).stdout.strip()
    image = f"localcloud-test/r2d-sample-notebook:{commit[:12]}"
    made["images"].append(image)
    built = subprocess.run(
        [repo2docker["REPO2DOCKER"], "--config", repo2docker["REPO2DOCKER_CONFIG"],
         "--no-run", "--user-id", "1000", "--user-name", "jovyan",
         "--ref", commit, "--image-name", image, f"file://{bare}"],
        env=repo2docker, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert built.returncode == 0, (built.stdout + built.stderr)[-3000:]
    assert "DockerBuildPack" in built.stdout + built.stderr
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", image))
    assert labels["repo2docker.ref"] == commit
    token = uuid.uuid4().hex
    with serve(image, "jupyter", "server", "--ip=0.0.0.0", "--port=8888",
               f"--ServerApp.token={token}") as url:  # fmt: skip
        check_sample(url, token)
