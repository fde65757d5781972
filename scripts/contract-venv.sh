#!/usr/bin/env bash
# Build var/contract-venv: nova, cinder and keystone themselves, whose routers and JSON schemas
# tests/contract/validate.py checks localcloud's recorded API exchanges against, and tempest,
# whose response schemas it checks Cinder's answers with (Cinder has none of its own).
# Idempotent and quiet when already done (a stamp holds the hash of this script).
#
# The three services resolve together in one venv (they only clash at run time, in
# oslo.config, which validate.py handles with a process per service). uv installs the ~170
# packages in a few seconds where pip takes ~40 s; pip is the fallback. --exclude-newer pins
# the dependency set to what PyPI had on that day, so every machine gets the same one.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=var/contract-venv
PACKAGES=(nova==34.0.0 cinder==29.0.0 keystone==30.0.0 tempest==46.3.0 jsonschema==4.26.0)
SNAPSHOT=2026-11-26T00:00:00Z

say() { printf 'contract-venv: %s\n' "$*"; }

quiet_pip() {
    "$VENV/bin/pip" install -q --disable-pip-version-check "$@" 2>&1 | grep -v '^WARNING: Location' || true
}

install_packages() {
    quiet_pip uv
    if "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --exclude-newer "$SNAPSHOT" \
        "${PACKAGES[@]}"; then
        return 0
    fi
    say "uv failed; installing with pip"
    quiet_pip "${PACKAGES[@]}"
}

main() {
    local stamp="$VENV/.installed" want
    want=$(sha256sum "$0" | cut -d' ' -f1)
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
    say "installing ${PACKAGES[*]} into $VENV"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    install_packages
    # fails loudly if the install did
    "$VENV/bin/python" -W ignore -c 'import nova.api.openstack.compute.routes, cinder.api, keystone.api, tempest.lib.common.rest_client, jsonschema'
    echo "$want" >"$stamp"
}

main
