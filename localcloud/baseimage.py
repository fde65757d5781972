"""The Debian 13 "cloud image" localcloud's servers boot.

debootstrap (minbase) into a cache directory, apt-get the rest in a chroot, configure it like a
cloud image (cloud-init with NoCloud, default user `debian`, no host keys, empty machine-id),
then `tar | docker import`. The tag carries a hash of the recipe: a changed recipe rebuilds.
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

APT_SOURCES = f"""\
Types: deb
URIs: {MIRROR}
Suites: {SUITE} {SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: {SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

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
    if _image_exists(ref):
        return ref
    cache_dir = Path(cache_dir).resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / ".lock"):
        if not _image_exists(ref):
            started = time.monotonic()
            log(f"baseimage: building {ref} (Debian {SUITE}, takes about a minute)")
            _build(cache_dir, ref, log)
            log(f"baseimage: built {ref} in {time.monotonic() - started:.0f} s")
            _remove_other_tags(ref)
    return ref


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
        "host_ca": _host_certs(),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def _host_certs() -> list[str]:
    if not HOST_CA_BUNDLE.exists():
        return []
    return PEM_CERT.findall(HOST_CA_BUNDLE.read_text())


def _image_exists(ref: str) -> bool:
    result = subprocess.run(["docker", "image", "inspect", ref], capture_output=True)
    return result.returncode == 0


def _remove_other_tags(ref: str) -> None:
    # older recipes go; `docker image rm` leaves those that containers or snapshots still use
    listed = subprocess.run(
        ["docker", "image", "ls", REPOSITORY, "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True, text=True,
    )  # fmt: skip
    for other in set(listed.stdout.split()) - {ref}:
        subprocess.run(["docker", "image", "rm", other], capture_output=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _build(cache_dir: Path, ref: str, log: Log) -> None:
    rootfs = cache_dir / "rootfs"
    debs = cache_dir / "debs"
    debs.mkdir(exist_ok=True)
    _remove_tree(rootfs)
    try:
        _step(log, "debootstrap", _debootstrap, rootfs, debs)
        _step(log, "debootstrap --second-stage", _debootstrap_second_stage, rootfs)
        with _proc_mounted(rootfs):
            _step(log, "apt-get install", _install_packages, rootfs, debs)
            _step(log, "configure", _configure, rootfs)
        _step(log, "docker import", _import, rootfs, ref)
    finally:
        _remove_tree(rootfs)


def _step(log: Log, name: str, func: Callable[..., None], *args: object) -> None:
    started = time.monotonic()
    func(*args)
    log(f"baseimage: {name} took {time.monotonic() - started:.0f} s")


def _run(args: list[str], **kwargs: object) -> None:
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        tail = "\n".join(output[-25:])
        raise BaseImageError(f"{' '.join(args[:4])} failed ({result.returncode}):\n{tail}")


def _chroot(rootfs: Path, *args: str) -> None:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LANG": "C.UTF-8",
    }
    _run(["chroot", str(rootfs), *args], env=env)


def _debootstrap(rootfs: Path, debs: Path) -> None:
    _run([
        "debootstrap", "--foreign", "--variant=minbase", f"--cache-dir={debs}",
        SUITE, str(rootfs), MIRROR,
    ])  # fmt: skip


def _debootstrap_second_stage(rootfs: Path) -> None:
    # A separate stage so that its dpkg runs skip fsync (unsafe-io): 11 s -> 5 s here.
    _write_files(rootfs, BUILD_FILES)
    (rootfs / "usr/sbin/policy-rc.d").chmod(0o755)
    _chroot(rootfs, "/debootstrap/debootstrap", "--second-stage")


def _install_packages(rootfs: Path, debs: Path) -> None:
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    _write_files(rootfs, {"etc/apt/sources.list.d/debian.sources": APT_SOURCES})
    archives = rootfs / "var/cache/apt/archives"
    _link_debs(debs, archives)
    _chroot(rootfs, "apt-get", "-q", "update")
    _chroot(
        rootfs, "apt-get", "install", "-q", "-y", "--no-install-recommends",
        "-o", "Dpkg::Use-Pty=0", *PACKAGES,
    )  # fmt: skip
    _link_debs(archives, debs)


def _link_debs(source: Path, target: Path) -> None:
    for deb in source.glob("*.deb"):
        if not (target / deb.name).exists():
            os.link(deb, target / deb.name)


def _configure(rootfs: Path) -> None:
    _write_files(rootfs, FILES)
    for unit in MASKED_UNITS:
        link = rootfs / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    _add_host_certs(rootfs)
    _chroot(rootfs, "update-ca-certificates")
    _remove(rootfs, REMOVED_AFTER_BUILD)
    (rootfs / "etc/machine-id").write_text("")
    (rootfs / "etc/resolv.conf").write_text("")


def _add_host_certs(rootfs: Path) -> None:
    known = set(PEM_CERT.findall((rootfs / HOST_CA_BUNDLE.relative_to("/")).read_text()))
    extra = [cert for cert in _host_certs() if cert not in known]
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


def _import(rootfs: Path, ref: str) -> None:
    recipe = ref.rpartition(":")[2]
    labels = [f"LABEL {DOCKER_LABEL}=1", f"LABEL {DOCKER_LABEL}.base={recipe}"]
    changes = [arg for change in (*IMAGE_CHANGES, *labels) for arg in ("--change", change)]
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
