#!/usr/bin/env bash
# Write constraints.txt afresh: resolve pyproject.toml (with [dev]) and localcloud/pyproject.toml
# in a throwaway venv with no constraints, and pin every package pip installed. Run it after
# changing a dependency in either pyproject.toml, and commit constraints.txt with that change;
# `make setup` then reinstalls on every machine (its stamp holds the file's hash).
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check -e ".[dev]" -e ./localcloud 2>&1 \
    | grep -v '^WARNING: Location' || true
{
    echo "# Every Python package \`make setup\` installs, pinned: scripts/setup.sh runs"
    echo "# \`pip install -c constraints.txt\`, so two machines get the same tools. Written by"
    echo "# scripts/lock.sh (run it after changing a dependency in pyproject.toml or"
    echo "# localcloud/pyproject.toml); do not edit by hand."
    "$work/venv/bin/pip" freeze --exclude-editable --disable-pip-version-check
} >constraints.txt.new
mv constraints.txt.new constraints.txt
echo "lock: $(grep -vc '^#' constraints.txt) packages pinned in constraints.txt"
