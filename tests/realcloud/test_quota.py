"""Quotas on realcloud: real Nova refuses a server over the project's instances or cores
quota (403), real Cinder a volume over its gigabytes or volumes quota (413).
ssc.repo2docker.user_server and playbooks/user_vm.yml fail with the cloud's own message and
leave nothing: no server, no volume (user_server makes the boot volume before the server),
no floating IP, no port. The quotas are set with realcloud's admin credentials and put back
after each test."""

import contextlib

import pytest

from tests.integration.test_user_server import launch_args, user_server
from tests.integration.test_user_vm import failure
from tests.realcloud.test_user_vm import NOTHING, left_over, start

pytestmark = pytest.mark.realcloud

COMPUTE = ("instances", "cores")
VOLUME = ("gigabytes", "volumes")


@contextlib.contextmanager
def quotas(realcloud, **limits: int):
    """The demo project's Nova and Cinder quotas set to `limits` (admin's call), then put
    back as they were."""
    admin, project = realcloud.connect("realcloud-admin"), realcloud.connect().current_project_id
    compute = {k: v for k, v in limits.items() if k in COMPUTE}
    volume = {k: v for k, v in limits.items() if k in VOLUME}
    before_compute = admin.get_compute_quotas(project)
    before_volume = admin.get_volume_quotas(project)
    try:
        if compute:
            admin.set_compute_quotas(project, **compute)
        if volume:
            admin.set_volume_quotas(project, **volume)
        yield
    finally:
        if compute:
            admin.set_compute_quotas(project, **{k: before_compute[k] for k in compute})
        if volume:
            admin.set_volume_quotas(project, **{k: before_volume[k] for k in volume})


# The real services' messages (nova.exception.TooManyInstances, cinder.exception's
# VolumeSizeExceedsAvailableQuota and VolumeLimitExceeded), for a 1-vCPU flavor and a 1 GB
# boot volume in an empty project.
REFUSALS = [
    ({"instances": 0}, "Quota exceeded for instances: Requested 1, but already used 0 of 0 "
                       "instances"),
    ({"cores": 0}, "Quota exceeded for cores: Requested 1, but already used 0 of 0 cores"),
    ({"gigabytes": 0}, "Requested volume or snapshot exceeds allowed gigabytes quota. "
                       "Requested 1G, quota is 0G and 0G has been consumed."),
    ({"volumes": 0}, "Maximum number of volumes allowed (0) exceeded for quota 'volumes'."),
]


@pytest.mark.parametrize(("limits", "message"), REFUSALS, ids=[str(r[0]) for r in REFUSALS])
def test_user_server_fails_with_the_clouds_message_and_leaves_nothing(realcloud, limits,
                                                                      message):
    conn = realcloud.connect()
    with quotas(realcloud, **limits):
        result = user_server(realcloud.env, "realcloud", "rc-over-quota", **launch_args())
    assert result.get("failed"), result
    assert result["msg"].startswith("Creating the VM rc-over-quota failed: ")
    assert message in result["msg"]
    assert left_over(conn) == NOTHING


@pytest.mark.parametrize(("limits", "message"), [REFUSALS[0], REFUSALS[2]],
                         ids=["instances", "gigabytes"])
def test_user_vm_fails_with_the_clouds_message_and_leaves_nothing(realcloud, limits, message):
    conn = realcloud.connect()
    with quotas(realcloud, **limits):
        code, report, _ = start(realcloud, 3021)
    assert code != 0
    assert message in failure(report)
    assert left_over(conn) == NOTHING
