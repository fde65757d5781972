"""Every plugin's DOCUMENTATION, EXAMPLES and RETURN are YAML that parses (ansible-doc and
ansible-lint read them; a colon in a plain scalar breaks them silently)."""

import ast
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT

PLUGINS = sorted(path for kind in ("modules", "filter", "lookup", "action")
                 for path in (ROOT / "plugins" / kind).glob("*.py")
                 if path.name != "__init__.py")


def documents(path: Path) -> dict[str, str]:
    """The plugin's documentation strings by name (module-level string assignments)."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN")
                and isinstance(node.value, ast.Constant)):
            found[node.targets[0].id] = node.value.value
    return found


@pytest.mark.parametrize("path", PLUGINS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_the_documentation_parses(path):
    for name, text in documents(path).items():
        try:
            yaml.safe_load(text)
        except yaml.YAMLError as error:
            pytest.fail(f"{path.name} {name}: {error}")
