"""Unit tests import the collection's Python code as Ansible does: ansible_collections.ssc.*
(var/collections/ansible_collections/ssc/repo2docker is this checkout; make setup links it)."""

import sys
from pathlib import Path

COLLECTIONS = Path(__file__).resolve().parents[2] / "var" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
