"""The Debian 13 "cloud image" localcloud's servers boot, and the notebook base image.

debootstrap (minbase) into a cache directory, apt-get the rest in a chroot, configure it like a
cloud image (cloud-init with NoCloud, default user `debian`, no host keys, empty machine-id),
then `tar | docker import`. The tag carries a hash of the recipe: a changed recipe rebuilds.

The notebook base image (:func:`ensure_notebook_image`) is made the same way, from its own
rootfs with the same debs cache: python3, a venv /opt/notebook with Jupyter, user jovyan. It is
the `FROM` of test repositories that repo2docker builds with their Dockerfile, since no
registry is reachable; :func:`export_image` saves it for servers to `docker load`.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from localcloud.config import DOCKER_LABEL

REPOSITORY = "localcloud/debian-13"
SUITE = "trixie"
MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
RECIPE_VERSION = 1  # bump when the build steps change in a way the data below does not show

PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "libpam-systemd",
    "openssh-server", "openssh-sftp-server", "cloud-init", "python3", "sudo", "locales",
    "docker.io", "docker-cli", "docker-buildx", "iptables", "xz-utils",
    "git", "ca-certificates", "curl", "iproute2", "netbase", "procps", "less",
)  # fmt: skip

# Units that fail, or make no sense, in a container; apt's timers would race with users' apt runs.
MASKED_UNITS = (
    "systemd-modules-load.service",
    "systemd-remount-fs.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "proc-sys-fs-binfmt_misc.mount",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-fs-fuse-connections.mount",
    "systemd-machine-id-commit.service",  # machine-id comes from $container_uuid on every boot
    "getty@tty1.service",
    "console-getty.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "fstrim.timer",
)


def apt_sources(suite: str) -> str:
    """/etc/apt/sources.list.d/debian.sources for a Debian suite: main, updates and security."""
    return f"""\
Types: deb
URIs: {MIRROR}
Suites: {suite} {suite}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: {suite}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


APT_SOURCES = apt_sources(SUITE)

CLOUD_CFG = """\
# localcloud: this "VM" is a Docker container; Docker configures eth0.
datasource_list: [NoCloud, None]
network:
  config: disabled
locale: C.UTF-8
system_info:
  default_user:
    name: debian
    lock_passwd: true
    gecos: Debian
    groups: [adm, audio, cdrom, dialout, dip, floppy, plugdev, sudo, video]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
"""

DOCKER_DROP_IN = """\
[Service]
Environment=DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1
"""

FILES = {
    "etc/apt/sources.list.d/debian.sources": APT_SOURCES,
    "etc/cloud/cloud.cfg.d/90_localcloud.cfg": CLOUD_CFG,
    "etc/systemd/system/docker.service.d/localcloud.conf": DOCKER_DROP_IN,
    "etc/default/locale": "LANG=C.UTF-8\n",
    "etc/hostname": "localhost\n",
}

# Present only while building.
BUILD_FILES = {
    "usr/sbin/policy-rc.d": "#!/bin/sh\nexit 101\n",
    "etc/dpkg/dpkg.cfg.d/localcloud-unsafe-io": "force-unsafe-io\n",
}

REMOVED_AFTER_BUILD = (
    "etc/apt/sources.list",
    "etc/ssh/ssh_host_*",
    "var/lib/dbus/machine-id",
    "var/lib/apt/lists/*",
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/cache/debconf/*-old",
    "var/lib/cloud",
    "var/log/*.log",
    "var/log/apt/*",
    "tmp/*",
    *BUILD_FILES,
)

IMAGE_CHANGES = (
    'CMD ["/lib/systemd/systemd"]',
    "ENV container=docker",
)  # `docker import` takes no STOPSIGNAL: containers are created with SIGRTMIN+3

PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)

Log = Callable[[str], object]


class BaseImageError(RuntimeError):
    pass


def ensure_base_image(cache_dir: Path, *, log: Log = print) -> str:
    ref = f"{REPOSITORY}:{recipe_hash()}"
    ensure_image(ref, cache_dir, _build, f"Debian {SUITE}, about a minute", log)
    return ref


def ensure_image(ref: str, cache_dir: Path, build: Callable[[Path, str, Log], None],
                 what: str, log: Log, keep: tuple[str, ...] = ()) -> None:
    """Build the Docker image `ref` ("repository:recipe hash") unless it exists.

    build(cache_dir, ref, log) makes it; one build at a time per cache_dir (a file lock: the
    debs are shared), so a second caller waits and then finds the image. Afterwards the tags
    `keep` point at it too and the repository's other tags (older recipes) are removed.
    `what` says in the log what is built and how long it takes.
    Raises what build raises (BaseImageError for a failed step).
    """
    if image_exists(ref):
        return
    cache_dir = Path(cache_dir).resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / ".lock"):
        if image_exists(ref):
            return
        started = time.monotonic()
        log(f"baseimage: building {ref} ({what})")
        build(cache_dir, ref, log)
        log(f"baseimage: built {ref} in {time.monotonic() - started:.0f} s")
        for tag in keep:
            _run(["docker", "tag", ref, tag])
        _remove_other_tags(ref, keep=keep)


def recipe_hash() -> str:
    recipe = {
        "version": RECIPE_VERSION,
        "suite": SUITE,
        "mirror": MIRROR,
        "packages": PACKAGES,
        "masked": MASKED_UNITS,
        "files": FILES,
        "build_files": BUILD_FILES,
        "removed": REMOVED_AFTER_BUILD,
        "changes": IMAGE_CHANGES,
        "host_ca": host_certs(),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def host_certs() -> list[str]:
    """The host's CA certificates (PEM blocks), which images built here trust too."""
    if not HOST_CA_BUNDLE.exists():
        return []
    return PEM_CERT.findall(HOST_CA_BUNDLE.read_text())


def image_exists(ref: str) -> bool:
    """Whether Docker has the image ref ("repository:tag")."""
    result = subprocess.run(["docker", "image", "inspect", ref], capture_output=True)
    return result.returncode == 0


def _remove_other_tags(ref: str, keep: tuple[str, ...] = ()) -> None:
    # older recipes go; `docker image rm` leaves those that containers or snapshots still use
    repository = ref.rpartition(":")[0]
    listed = subprocess.run(
        ["docker", "image", "ls", repository, "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True, text=True,
    )  # fmt: skip
    for other in set(listed.stdout.split()) - {ref, *keep}:
        subprocess.run(["docker", "image", "rm", other], capture_output=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _build(cache_dir: Path, ref: str, log: Log) -> None:
    build_rootfs_image(cache_dir, ref, suite=SUITE, packages=PACKAGES, configure=_configure,
                       log=log)


def build_rootfs_image(
    cache_dir: Path, ref: str, *, suite: str, packages: tuple[str, ...],
    configure: Callable[[Path], None], log: Log, name: str = "rootfs",
    image_changes: tuple[str, ...] = IMAGE_CHANGES, kind: str = "base",
    label: str = DOCKER_LABEL,
) -> None:
    """Import a Debian `suite` root file system as the Docker image `ref`.

    debootstrap (minbase) into cache_dir/name, with cache_dir/debs as the shared .deb cache;
    `apt-get install --no-install-recommends packages` in a chroot (services never start:
    policy-rc.d says no); configure(rootfs) with /proc mounted, which must remove BUILD_FILES
    (see _configure); then `docker import` with image_changes and the labels `<label>=1` and
    `<label>.<kind>=<recipe hash>` (localcloud purges, and takes helpers from, the images
    labelled io.localcloud). The directory is removed afterwards, also on failure.
    Raises BaseImageError naming the step that failed.
    """
    rootfs = cache_dir / name
    debs = cache_dir / "debs"
    debs.mkdir(exist_ok=True)
    _remove_tree(rootfs)
    try:
        _step(log, f"{name}: debootstrap {suite}", _debootstrap, rootfs, debs, suite)
        _step(log, f"{name}: debootstrap --second-stage", _debootstrap_second_stage, rootfs)
        with _proc_mounted(rootfs):
            _step(log, f"{name}: apt-get install", _install_packages, rootfs, debs, packages,
                  suite)  # fmt: skip
            _step(log, f"{name}: configure", configure, rootfs)
        _step(log, f"{name}: docker import", _import, rootfs, ref, image_changes, kind, label)
    finally:
        _remove_tree(rootfs)


def _step(log: Log, name: str, func: Callable[..., None], *args: object) -> None:
    started = time.monotonic()
    func(*args)
    log(f"baseimage: {name} took {time.monotonic() - started:.0f} s")


def _run(args: list[str], **kwargs: object) -> str:
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        tail = "\n".join(output[-25:])
        raise BaseImageError(f"{' '.join(args[:4])} failed ({result.returncode}):\n{tail}")
    return result.stdout


def _chroot(rootfs: Path, *args: str, env: dict[str, str] | None = None) -> str:
    environment = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LANG": "C.UTF-8",
        **(env or {}),
    }
    return _run(["chroot", str(rootfs), *args], env=environment)


def _debootstrap(rootfs: Path, debs: Path, suite: str = SUITE) -> None:
    _run([
        "debootstrap", "--foreign", "--variant=minbase", f"--cache-dir={debs}",
        suite, str(rootfs), MIRROR,
    ])  # fmt: skip


def _debootstrap_second_stage(rootfs: Path) -> None:
    # A separate stage so that its dpkg runs skip fsync (unsafe-io): 11 s -> 5 s here.
    _write_files(rootfs, BUILD_FILES)
    (rootfs / "usr/sbin/policy-rc.d").chmod(0o755)
    _chroot(rootfs, "/debootstrap/debootstrap", "--second-stage")


def _install_packages(
    rootfs: Path, debs: Path, packages: tuple[str, ...] = PACKAGES, suite: str = SUITE
) -> None:
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    _write_files(rootfs, {"etc/apt/sources.list.d/debian.sources": apt_sources(suite)})
    archives = rootfs / "var/cache/apt/archives"
    _link_debs(debs, archives)
    _chroot(rootfs, "apt-get", "-q", "update")
    _chroot(
        rootfs, "apt-get", "install", "-q", "-y", "--no-install-recommends",
        "-o", "Dpkg::Use-Pty=0", *packages,
    )  # fmt: skip
    _link_debs(archives, debs)


def _link_debs(source: Path, target: Path) -> None:
    for deb in source.glob("*.deb"):
        if not (target / deb.name).exists():
            os.link(deb, target / deb.name)


def _configure(rootfs: Path) -> None:
    finish_rootfs(rootfs, FILES, MASKED_UNITS, REMOVED_AFTER_BUILD)


def finish_rootfs(rootfs: Path, files: dict[str, str], masked: tuple[str, ...],
                  removed: tuple[str, ...]) -> None:
    """Make a chroot a systemd container's root: write `files` (path below / -> text), mask
    the `masked` systemd units, trust the host's CA certificates, delete the `removed` globs
    (which should hold BUILD_FILES), empty machine-id (made from $container_uuid at boot)."""
    _write_files(rootfs, files)
    for unit in masked:
        link = rootfs / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    _add_host_certs(rootfs)
    _chroot(rootfs, "update-ca-certificates")
    _remove(rootfs, removed)
    (rootfs / "etc/machine-id").write_text("")
    (rootfs / "etc/resolv.conf").write_text("")


def _add_host_certs(rootfs: Path) -> None:
    known = set(PEM_CERT.findall((rootfs / HOST_CA_BUNDLE.relative_to("/")).read_text()))
    extra = [cert for cert in host_certs() if cert not in known]
    target = rootfs / "usr/local/share/ca-certificates"
    for number, cert in enumerate(extra):
        (target / f"localcloud-host-{number:03d}.crt").write_text(cert + "\n")


def _write_files(rootfs: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = rootfs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _remove(rootfs: Path, patterns: tuple[str, ...]) -> None:
    for pattern in patterns:
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def _import(
    rootfs: Path, ref: str, image_changes: tuple[str, ...] = IMAGE_CHANGES, kind: str = "base",
    label: str = DOCKER_LABEL,
) -> None:
    recipe = ref.rpartition(":")[2]
    labels = [f"LABEL {label}=1", f"LABEL {label}.{kind}={recipe}"]
    changes = [arg for change in (*image_changes, *labels) for arg in ("--change", change)]
    tar = subprocess.Popen(
        ["tar", "-C", str(rootfs), "--numeric-owner", "--xattrs", "--xattrs-include=*",
         "-c", "."],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        _run(["docker", "import", *changes, "-", ref], stdin=tar.stdout)
    finally:
        tar.stdout.close()
        tar.wait()
    if tar.returncode != 0:
        raise BaseImageError(f"tar of {rootfs} failed ({tar.returncode})")


@contextlib.contextmanager
def _proc_mounted(rootfs: Path) -> Iterator[None]:
    _run(["mount", "-t", "proc", "proc", str(rootfs / "proc")])
    try:
        yield
    finally:
        _unmount_below(rootfs)


def _unmount_below(root: Path) -> None:
    prefix = str(root.resolve()) + "/"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        _run(["umount", "-l", point])


def _remove_tree(root: Path) -> None:
    if root.exists():
        _unmount_below(root)
        shutil.rmtree(root)


# --- the notebook base image -----------------------------------------------------------------

NOTEBOOK_REPOSITORY = "localcloud/notebook-base"
NOTEBOOK_LATEST = f"{NOTEBOOK_REPOSITORY}:latest"  # what Dockerfiles say FROM: see samples/
NOTEBOOK_RECIPE_VERSION = 1  # bump when the build steps change and the data below does not
NOTEBOOK_PACKAGES = ("python3", "python3-venv", "ca-certificates", "tini")
NOTEBOOK_REQUIREMENTS = ("jupyter-server==2.21.1", "notebook==7.6.5")
NOTEBOOK_VENV = "/opt/notebook"
NOTEBOOK_USER = "jovyan"
NOTEBOOK_UID = 1000
NOTEBOOK_PORT = 8888
NOTEBOOK_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

# Like Debian's -slim images: no documentation, manuals or translations, in this image and in
# what images built from it install with apt.
DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""

NOTEBOOK_FILES = {
    "etc/dpkg/dpkg.cfg.d/localcloud-slim": DPKG_EXCLUDES,
    "etc/apt/apt.conf.d/localcloud-slim": 'APT::Install-Recommends "false";\n',
    "etc/default/locale": "LANG=C.UTF-8\n",
}

NOTEBOOK_REMOVED_AFTER_BUILD = (
    # what debootstrap's first stage unpacked before the dpkg excludes applied (and
    # usr/share/doc/*, but for copyright files: see _remove_docs)
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/[!l]*",
    "usr/share/lintian/*",
    "root/.cache",
    *(pattern for pattern in REMOVED_AFTER_BUILD if not pattern.startswith("etc/ssh")),
)

NOTEBOOK_IMAGE_CHANGES = (
    f"ENV PATH={NOTEBOOK_VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "ENV SHELL=/bin/bash",
    # pip trusts the system store (which holds the host's CA) on its own; requests does not
    f"ENV PIP_CERT={NOTEBOOK_CA_BUNDLE}",
    f"ENV REQUESTS_CA_BUNDLE={NOTEBOOK_CA_BUNDLE}",
    f"ENV NB_USER={NOTEBOOK_USER}",
    f"ENV NB_UID={NOTEBOOK_UID}",
    f"USER {NOTEBOOK_UID}",  # numeric, so that Kubernetes' runAsNonRoot can check it
    f"WORKDIR /home/{NOTEBOOK_USER}",
    f"EXPOSE {NOTEBOOK_PORT}",
    'ENTRYPOINT ["tini", "-g", "--"]',
    f'CMD ["jupyter", "server", "--ip=0.0.0.0", "--port={NOTEBOOK_PORT}"]',
)


def ensure_notebook_image(cache_dir: Path, *, log: Log = print) -> str:
    """The notebook base image `localcloud/notebook-base:<recipe hash>`, built if missing.

    Also tagged `localcloud/notebook-base:latest`. Debian 13 minbase with python3, tini and the
    host's CA bundle trusted; a venv /opt/notebook (on PATH, owned by jovyan so that images built
    from it can pip install as the user) with jupyter-server and notebook; user jovyan (uid 1000,
    home /home/jovyan) by default. `docker run -p 8888:8888 IMAGE` serves Jupyter on port 8888.
    cache_dir is the one given to :func:`ensure_base_image`: the debs cache is shared.
    """
    ref = f"{NOTEBOOK_REPOSITORY}:{notebook_recipe_hash()}"
    ensure_image(ref, cache_dir, _build_notebook, f"Debian {SUITE} and Jupyter, about a minute",
                 log, keep=(NOTEBOOK_LATEST,))
    if _image_id(NOTEBOOK_LATEST) != _image_id(ref):
        _run(["docker", "tag", ref, NOTEBOOK_LATEST])
    return ref


def notebook_recipe_hash() -> str:
    recipe = {
        "version": NOTEBOOK_RECIPE_VERSION,
        "suite": SUITE,
        "mirror": MIRROR,
        "sources": APT_SOURCES,
        "packages": NOTEBOOK_PACKAGES,
        "requirements": NOTEBOOK_REQUIREMENTS,
        "venv": NOTEBOOK_VENV,
        "user": [NOTEBOOK_USER, NOTEBOOK_UID],
        "files": NOTEBOOK_FILES,
        "build_files": BUILD_FILES,
        "removed": NOTEBOOK_REMOVED_AFTER_BUILD,
        "changes": NOTEBOOK_IMAGE_CHANGES,
        "host_ca": host_certs(),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def export_image(ref: str, tarball: Path) -> Path:
    """`docker save` the image ref to tarball, unless it already holds that image; the path.

    The tarball also carries the image's other tags in the same repository (for the notebook
    image: `:latest`, which Dockerfiles name), so `docker load` restores them all. A file
    tarball + ".json" records what it holds; a changed image is saved again.
    """
    tarball = Path(tarball).absolute()
    image = _image_id(ref)
    if image is None:
        raise BaseImageError(f"no image {ref} to export")
    tags = [ref, *_other_tags(ref)]
    stamp = tarball.with_name(tarball.name + ".json")
    wanted = {"id": image, "tags": tags}
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with _locked(tarball.with_name(f".{tarball.name}.lock")):
        if tarball.exists() and _read_json(stamp) == wanted:
            return tarball
        partial = tarball.with_name(f".{tarball.name}.partial")
        try:
            _run(["docker", "save", "-o", str(partial), *tags])
            stamp.unlink(missing_ok=True)
            partial.chmod(0o644)  # docker save makes it 0600; it holds nothing secret
            partial.replace(tarball)
        finally:
            partial.unlink(missing_ok=True)
        stamp.write_text(json.dumps(wanted))
    return tarball


def _image_id(ref: str) -> str | None:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True
    )
    return result.stdout.strip() if result.returncode == 0 else None


def _other_tags(ref: str) -> list[str]:
    """The image's tags in the same repository as ref, other than ref."""
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .RepoTags}}", ref],
        capture_output=True, text=True,
    )  # fmt: skip
    repository = ref.rpartition(":")[0]
    tags = json.loads(result.stdout or "[]") or []
    return sorted(tag for tag in tags if tag != ref and tag.rpartition(":")[0] == repository)


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _build_notebook(cache_dir: Path, ref: str, log: Log) -> None:
    rootfs = cache_dir / "notebook-rootfs"
    debs = cache_dir / "debs"
    debs.mkdir(exist_ok=True)
    _remove_tree(rootfs)
    try:
        _step(log, "notebook: debootstrap", _debootstrap, rootfs, debs)
        _write_files(rootfs, NOTEBOOK_FILES)  # before dpkg runs, for its excludes
        _step(log, "notebook: debootstrap --second-stage", _debootstrap_second_stage, rootfs)
        with _proc_mounted(rootfs):
            _step(log, "notebook: apt-get install", _install_packages, rootfs, debs,
                  NOTEBOOK_PACKAGES)  # fmt: skip
            _add_host_certs(rootfs)
            _chroot(rootfs, "update-ca-certificates")
            _step(log, "notebook: pip install", _install_notebook, rootfs)
            _configure_notebook(rootfs)
        _step(log, "notebook: docker import", _import, rootfs, ref, NOTEBOOK_IMAGE_CHANGES,
              "notebook-base")  # fmt: skip
    finally:
        _remove_tree(rootfs)


def _install_notebook(rootfs: Path) -> None:
    # pip runs in the chroot, on the host's network: no registry, no container networking.
    # It trusts the chroot's CA store, which now holds the host's CA too.
    _chroot(rootfs, "python3", "-m", "venv", NOTEBOOK_VENV)
    _chroot(
        rootfs, f"{NOTEBOOK_VENV}/bin/pip", "install", "--no-cache-dir", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--cert", NOTEBOOK_CA_BUNDLE,
        *NOTEBOOK_REQUIREMENTS,
        env={"HOME": "/root", "PIP_ROOT_USER_ACTION": "ignore"},
    )  # fmt: skip
    freeze = _chroot(rootfs, f"{NOTEBOOK_VENV}/bin/pip", "freeze", "--all")
    (rootfs / NOTEBOOK_VENV.lstrip("/") / "requirements.lock").write_text(freeze)


def _configure_notebook(rootfs: Path) -> None:
    _chroot(rootfs, "useradd", "--create-home", "--user-group", "--no-log-init",
            "--uid", str(NOTEBOOK_UID), "--shell", "/bin/bash", NOTEBOOK_USER)  # fmt: skip
    _chroot(rootfs, "chown", "-R", f"{NOTEBOOK_UID}:{NOTEBOOK_UID}", NOTEBOOK_VENV)
    _remove(rootfs, NOTEBOOK_REMOVED_AFTER_BUILD)
    _remove_docs(rootfs)
    (rootfs / "etc/resolv.conf").write_text("")


def _remove_docs(rootfs: Path) -> None:
    for package in (rootfs / "usr/share/doc").iterdir():
        if package.is_dir() and not package.is_symlink():
            for path in package.iterdir():
                if path.name == "copyright":
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
