"""Every role documents each of its defaults in meta/argument_specs.yml, and nothing more."""

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parent.parent / "roles"
ROLE_DIRS = sorted(path for path in ROLES.iterdir() if (path / "tasks").is_dir())


def _defaults(role: Path) -> dict:
    path = role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def _options(role: Path) -> dict:
    path = role / "meta" / "argument_specs.yml"
    assert path.exists(), f"{role.name} has no meta/argument_specs.yml"
    specs = yaml.safe_load(path.read_text()) or {}
    return specs["argument_specs"]["main"].get("options") or {}


def test_there_are_roles():
    assert ROLE_DIRS, f"no roles under {ROLES}"


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda path: path.name)
def test_defaults_and_argument_specs_name_the_same_variables(role: Path):
    defaults, options = _defaults(role), _options(role)
    only_defaults = sorted(set(defaults) - set(options))
    only_specs = sorted(set(options) - set(defaults))
    assert not only_defaults, f"in defaults/main.yml but not in argument_specs: {only_defaults}"
    assert not only_specs, f"in argument_specs but not in defaults/main.yml: {only_specs}"


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda path: path.name)
def test_argument_specs_describe_the_defaults(role: Path):
    defaults, options = _defaults(role), _options(role)
    for name, value in defaults.items():
        option = options.get(name, {})
        assert option.get("description"), f"{name} has no description"
        assert option.get("type"), f"{name} has no type"
        if isinstance(value, str) and "{{" in value:
            continue  # a computed default: the spec describes it in words
        assert option.get("default") == value, (
            f"{name}: default {value!r} in defaults/main.yml, "
            f"{option.get('default')!r} in argument_specs")
