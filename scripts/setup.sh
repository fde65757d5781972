#!/usr/bin/env bash
# Install everything the project needs on a Debian machine; idempotent and quiet when
# nothing is missing. Called by `make setup` (and so by `make demo` and `make test`).
#   scripts/setup.sh --controller   only what a site's controller runs (the playbooks and the
#                                   web app): no Docker engine, Chromium, test tools or
#                                   local cloud (localcloud/, with the Docker SDK and jsonschema)
#   scripts/setup.sh --venv DIR     the Python packages into DIR instead of .venv
# Every Python package comes at the version constraints.txt names (scripts/lock.sh writes it).
set -euo pipefail

# chromium: the browser of the end-to-end tests (Playwright drives it; never `playwright install`)
# nginx-light: the TLS front and the proxy to the VMs (deploy/nginx-ssc-web.conf, the demo)
# libnss3-tools: certutil, which makes the tests' Chromium trust the local CA (localcloud/front.py)
APT_PACKAGES=(docker.io debootstrap git iproute2 openssh-client curl ca-certificates chromium
              nginx-light openssl libnss3-tools)
VENV=
# what pip installs, editable: the product with its test tools, and the local cloud
PROJECTS=(".[dev]" ./localcloud)
CHECK='import web, ansible_runner, openstack, localcloud, docker'
CONTROLLER=false
while [ $# -gt 0 ]; do
    case "$1" in
        --controller)
            CONTROLLER=true PROJECTS=(.) CHECK='import web, ansible_runner, openstack'
            APT_PACKAGES=(git openssh-client curl ca-certificates nginx-light openssl) ;;
        --venv) VENV=$(realpath -m -- "${2:?--venv needs a directory}"); shift ;;
        *) echo "usage: $0 [--controller] [--venv DIR]" >&2; exit 2 ;;
    esac
    shift
done
cd "$(dirname "$0")/.."
VENV=${VENV:-$PWD/.venv}

say() { printf 'setup: %s\n' "$*"; }

install_apt_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_docker() {
    docker info >/dev/null 2>&1 && return 0
    say "starting the Docker engine"
    if [ -d /run/systemd/system ]; then
        systemctl start docker
    else
        mkdir -p /var/log
        nohup dockerd >/var/log/dockerd.log 2>&1 &
    fi
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && return 0
        sleep 1
    done
    say "the Docker engine did not start; see /var/log/dockerd.log" >&2
    return 1
}

install_venv() {
    # the stamp: what was asked and the hashes of every file that says what to install
    local stamp="$VENV/.installed" want
    want="$(cat pyproject.toml localcloud/pyproject.toml localcloud/setup.py constraints.txt \
        | sha256sum | cut -d' ' -f1) ${PROJECTS[*]}"
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
    say "installing Python packages into $VENV"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    # One at a time: in a venv from before localcloud had its own pyproject.toml, pip
    # replacing the product after installing ssc-localcloud would take the `localcloud`
    # script away with the old product.
    for project in "${PROJECTS[@]}"; do
        "$VENV/bin/pip" install -q --disable-pip-version-check -c constraints.txt -e "$project" \
            2>&1 | grep -v '^WARNING: Location' || true
    done
    # fails loudly if the install did (-P: not from the checkout, only what was installed)
    (cd / && "$VENV/bin/python" -P -c "$CHECK")
    $CONTROLLER || [ -x "$VENV/bin/localcloud" ]
    echo "$want" >"$stamp"
}

link_collection() {
    # ansible.cfg looks in var/collections: make this checkout the ssc.repo2docker collection.
    local dir=var/collections/ansible_collections/ssc site_packages
    mkdir -p "$dir"
    [ -L "$dir/repo2docker" ] || ln -sfn ../../../.. "$dir/repo2docker"
    # and the venv's Python too: the web app imports the shared input rules as
    # ansible_collections.ssc.repo2docker.plugins.module_utils.launch_request (the namespace
    # package ansible_collections merges with the one the ansible package bundles)
    site_packages="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    echo "$PWD/var/collections" >"$site_packages/ssc_repo2docker_collection.pth"
}

# Debian's own python3 needs python3-venv for `python3 -m venv`
python3 -c 'import ensurepip' 2>/dev/null || APT_PACKAGES+=(python3-venv)
install_apt_packages "${APT_PACKAGES[@]}"
$CONTROLLER || start_docker
install_venv
link_collection
