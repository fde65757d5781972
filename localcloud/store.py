"""The cloud's records: one lock, one JSON file, rewritten atomically on every change."""

import copy
import json
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

COLLECTIONS = (
    "tokens", "app_credentials", "flavors", "keypairs", "servers", "images", "volumes",
    "snapshots",
    "networks", "subnets", "ports", "security_groups", "security_group_rules",
    "floatingips", "faults", "quotas",
)


def new_id() -> str:
    return str(uuid.uuid4())


def now() -> str:
    """A timestamp as OpenStack APIs print them: 2026-11-26T12:00:00Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """Records by collection and id. Reads return copies; writes go through `transaction`."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.RLock()
        self.data: dict[str, dict[str, dict]] = {name: {} for name in COLLECTIONS}
        if path.exists():
            self.data.update(json.loads(path.read_text()))

    def get(self, collection: str, record_id: str) -> dict | None:
        with self.lock:
            record = self.data[collection].get(record_id)
            return copy.deepcopy(record)

    def all(self, collection: str) -> list[dict]:
        with self.lock:
            return copy.deepcopy(list(self.data[collection].values()))

    def find(self, collection: str, **match) -> list[dict]:
        return [r for r in self.all(collection) if all(r.get(k) == v for k, v in match.items())]

    @contextmanager
    def transaction(self) -> Iterator[dict[str, dict[str, dict]]]:
        """Hold the lock, hand out the live data, save when the block ends without error."""
        with self.lock:
            yield self.data
            self._save()

    def put(self, collection: str, record: dict) -> dict:
        with self.transaction() as data:
            data[collection][record["id"]] = copy.deepcopy(record)
        return record

    def update(self, collection: str, record_id: str, **changes) -> dict | None:
        with self.transaction() as data:
            record = data[collection].get(record_id)
            if record is None:
                return None
            record.update(changes)
            return copy.deepcopy(record)

    def delete(self, collection: str, record_id: str) -> dict | None:
        with self.transaction() as data:
            return data[collection].pop(record_id, None)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f)
        os.replace(tmp, self.path)
