"""Real Cinder's snapshot API, checked the way the local cloud's is
(tests/localcloud/test_volume_snapshots.py): what the local cloud copies."""

import pytest

from tests.localcloud.test_volume_snapshots import snapshot_api

pytestmark = pytest.mark.realcloud


def test_snapshot_api(realcloud):
    snapshot_api(realcloud.connect(), "rc-snap")
