"""The launch request rules the playbook applies (plugins/module_utils/launch_request.py), imported
as part of the collection ssc.repo2docker that scripts/setup.sh links into var/collections."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "var" / "collections"))

from ansible_collections.ssc.repo2docker.plugins.module_utils.launch_request import (
    LaunchRequestError,
    check,
)

__all__ = ["LaunchRequestError", "check"]
