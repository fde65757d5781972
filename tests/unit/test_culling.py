"""The culling rules (plugins/module_utils/culling.py): expiry, what a probe says about use,
the cull decision with its reason, and extensions. Pure functions, no cloud; the playbooks
against real VMs are in tests/localcloud/test_cull.py."""

from datetime import UTC, datetime, timedelta

import pytest
from ansible_collections.ssc.repo2docker.plugins.module_utils.culling import (
    CullRules,
    ExtensionRefused,
    ProbeError,
    activity,
    decide,
    extend,
    format_time,
    jupyter_url,
    parse_time,
    schedule,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
RULES = CullRules(idle_hours=4, unreachable_report=3, unreachable_delete=0)


def ago(**delta) -> str:
    return format_time(NOW - timedelta(**delta))


def later(**delta) -> str:
    return format_time(NOW + timedelta(**delta))


def server(status="ACTIVE", **metadata) -> dict:
    """A user VM as openstack.cloud.server_info lists it."""
    return {"id": "id-1", "name": "ssc-r2d-ada", "status": status,
            "addresses": {"private": [{"addr": "10.0.0.5", "OS-EXT-IPS:type": "fixed"}]},
            "metadata": {"ssc_r2d_owner": "ada", "ssc_r2d_created": ago(hours=10),
                         "ssc_r2d_expires": later(hours=14), **metadata}}


def answered(last_activity: str, kernels=(), terminals=(), connections=0) -> dict:
    """A probe that succeeded, with Jupyter's three answers."""
    return {"ok": True, "kernels": list(kernels), "terminals": list(terminals),
            "status": {"started": ago(hours=10), "last_activity": last_activity,
                       "kernels": len(kernels), "connections": connections}}


def kernel(state="idle", last_activity=None, connections=0) -> dict:
    return {"id": "k1", "name": "python3", "execution_state": state,
            "last_activity": last_activity or ago(hours=6), "connections": connections}


FAILED = {"ok": False, "error": "no answer within 10 s"}


# --- times ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "2026-03-01T12:00:00Z", "2026-03-01T12:00:00.123456Z", "2026-03-01T12:00:00+00:00",
    "2026-03-01T13:00:00+01:00", "2026-03-01T12:00:00", " 2026-03-01T12:00:00z "])
def test_times_are_read_as_utc(text):
    assert parse_time(text).replace(microsecond=0) == NOW


@pytest.mark.parametrize("value", [None, "", "  ", "yesterday", "2026-13-01T00:00:00Z", 12])
def test_bad_times_are_none(value):
    assert parse_time(value) is None


def test_times_are_written_to_the_second_in_utc():
    assert format_time(NOW + timedelta(microseconds=999)) == "2026-03-01T12:00:00Z"
    assert format_time(parse_time("2026-03-01T13:00:00+01:00")) == "2026-03-01T12:00:00Z"


# --- what Jupyter's answers say -------------------------------------------------------------

def test_activity_is_the_latest_time_any_answer_gives():
    seen = activity({"last_activity": ago(hours=5), "started": ago(hours=9)},
                    [kernel(last_activity=ago(hours=2)), kernel(last_activity=ago(hours=7))],
                    [{"name": "1", "last_activity": ago(hours=3)}])
    assert seen == {"last_activity": NOW - timedelta(hours=2), "busy_kernels": 0,
                    "terminals": 1, "connections": 0}


def test_busy_kernels_and_connections_are_counted():
    seen = activity({"last_activity": ago(hours=5), "connections": 1},
                    [kernel("busy", connections=2), kernel("busy"), kernel("idle")], [])
    assert (seen["busy_kernels"], seen["connections"]) == (2, 2)


def test_started_stands_in_for_a_missing_last_activity():
    assert activity({"started": ago(hours=1)}, [], [])["last_activity"] == NOW - timedelta(
        hours=1)


@pytest.mark.parametrize("status, kernels, terminals, message", [
    ([], [], [], "/api/status"),
    ({"last_activity": "never"}, [], [], "neither last_activity nor started"),
    ({"last_activity": ago(hours=1)}, {"k": 1}, [], "/api/kernels"),
    ({"last_activity": ago(hours=1)}, ["k"], [], "/api/kernels"),
    ({"last_activity": ago(hours=1)}, [], None, "/api/terminals"),
])
def test_answers_of_another_shape_are_refused(status, kernels, terminals, message):
    with pytest.raises(ProbeError, match=message):
        activity(status, kernels, terminals)


# --- the decision ---------------------------------------------------------------------------

def test_an_expired_vm_goes_even_while_busy():
    decision = decide(server(ssc_r2d_expires=ago(minutes=1)),
                      answered(ago(seconds=1), kernels=[kernel("busy")], connections=3),
                      NOW, RULES)
    assert (decision["decision"], decision["reason"]) == (
        "delete", f"expired at {ago(minutes=1)}")


def test_an_expired_vm_goes_even_when_unreachable():
    decision = decide(server(ssc_r2d_expires=ago(hours=1)), FAILED, NOW, RULES)
    assert decision["decision"] == "delete" and decision["reason"].startswith("expired at ")


def test_a_vm_idle_past_the_limit_goes():
    decision = decide(server(), answered(ago(hours=5)), NOW, RULES)
    assert (decision["decision"], decision["reason"]) == ("delete", f"idle since {ago(hours=5)}")
    assert decision["last_activity"] == ago(hours=5)


def test_exactly_at_the_limit_is_idle():
    assert decide(server(), answered(ago(hours=4)), NOW, RULES)["decision"] == "delete"


def test_a_vm_active_within_the_limit_stays_and_records_when_it_would_go():
    decision = decide(server(), answered(ago(hours=1)), NOW, RULES)
    assert (decision["decision"], decision["reason"]) == ("keep", f"active at {ago(hours=1)}")
    assert decision["idle_deadline"] == later(hours=3)
    assert decision["metadata"] == {"ssc_r2d_last_activity": ago(hours=1),
                                    "ssc_r2d_idle_deadline": later(hours=3)}


def test_nothing_is_recorded_when_nothing_changed():
    vm = server(ssc_r2d_last_activity=ago(hours=1), ssc_r2d_idle_deadline=later(hours=3),
                ssc_r2d_unreachable="0")
    assert decide(vm, answered(ago(hours=1)), NOW, RULES)["metadata"] == {}


@pytest.mark.parametrize("probe, reason", [
    (answered(ago(hours=9), kernels=[kernel("busy")]), "busy kernel"),
    (answered(ago(hours=9), kernels=[kernel("busy"), kernel("busy")]), "2 busy kernels"),
    (answered(ago(hours=9), terminals=[{"name": "1", "last_activity": ago(hours=9)}]),
     "open terminal"),
    (answered(ago(hours=9), connections=1), "open connection"),
    (answered(ago(hours=9), kernels=[kernel(connections=2)]), "2 open connections"),
])
def test_a_busy_kernel_an_open_terminal_or_connection_is_activity_now(probe, reason):
    decision = decide(server(), probe, NOW, RULES)
    assert (decision["decision"], decision["reason"]) == ("keep", reason)
    assert decision["last_activity"] == format_time(NOW)
    assert decision["idle_deadline"] == later(hours=4)


def test_a_failed_probe_is_never_idle_and_is_counted():
    decision = decide(server(ssc_r2d_last_activity=ago(hours=30)), FAILED, NOW, RULES)
    assert (decision["decision"], decision["reason"]) == ("keep", "unreachable 1 time in a row")
    assert (decision["unreachable"], decision["attention"]) == (1, False)
    assert decision["error"] == "no answer within 10 s"
    assert decision["metadata"] == {"ssc_r2d_unreachable": "1"}
    assert decision["last_activity"] == ago(hours=30)  # what was seen before, for the page


def test_an_answer_of_another_shape_is_a_failed_probe():
    decision = decide(server(), {"ok": True, "status": "OK", "kernels": [], "terminals": []},
                      NOW, RULES)
    assert decision["decision"] == "keep" and decision["unreachable"] == 1
    assert "/api/status" in decision["error"]


def test_unreachable_rounds_in_a_row_are_reported_at_the_site_limit():
    decision = decide(server(ssc_r2d_unreachable="2"), FAILED, NOW, RULES)
    assert (decision["decision"], decision["reason"]) == ("keep", "unreachable 3 times in a row")
    assert decision["attention"] is True


def test_unreachable_vms_are_deleted_only_when_the_site_says_so():
    rules = CullRules(idle_hours=4, unreachable_report=3, unreachable_delete=5)
    kept = decide(server(ssc_r2d_unreachable="3"), FAILED, NOW, rules)
    gone = decide(server(ssc_r2d_unreachable="4"), FAILED, NOW, rules)
    assert kept["decision"] == "keep" and kept["unreachable"] == 4
    assert (gone["decision"], gone["reason"]) == ("delete", "unreachable 5 times in a row")
    never = decide(server(ssc_r2d_unreachable="999"), FAILED, NOW, RULES)
    assert never["decision"] == "keep"


def test_a_probe_that_succeeds_resets_the_count():
    decision = decide(server(ssc_r2d_unreachable="7"), answered(ago(minutes=5)), NOW, RULES)
    assert decision["unreachable"] == 0
    assert decision["metadata"]["ssc_r2d_unreachable"] == "0"


def test_a_vm_reachable_again_after_long_silence_is_judged_by_what_it_says():
    decision = decide(server(ssc_r2d_unreachable="7"), answered(ago(hours=8)), NOW, RULES)
    assert decision["decision"] == "delete" and decision["reason"].startswith("idle since")


@pytest.mark.parametrize("status", ["BUILD", "SHUTOFF", "ERROR", ""])
def test_a_server_not_active_is_kept_without_counting(status):
    decision = decide(server(status, ssc_r2d_unreachable="2"), None, NOW, RULES)
    assert decision["decision"] == "keep" and decision["reason"].startswith("the server is")
    assert decision["metadata"] == {} and decision["unreachable"] == 2


def test_a_vm_without_a_recorded_expiry_is_judged_by_its_activity_only():
    vm = server()
    del vm["metadata"]["ssc_r2d_expires"]
    assert decide(vm, answered(ago(hours=1)), NOW, RULES)["decision"] == "keep"
    assert decide(vm, answered(ago(hours=5)), NOW, RULES)["decision"] == "delete"


def test_fractions_of_an_hour_are_allowed():
    rules = CullRules(idle_hours=0.01)  # 36 seconds
    assert decide(server(), answered(ago(seconds=40)), NOW, rules)["decision"] == "delete"
    assert decide(server(), answered(ago(seconds=30)), NOW, rules)["decision"] == "keep"


@pytest.mark.parametrize("settings", [
    {"idle_hours": 0}, {"idle_hours": -1}, {"idle_hours": 4, "unreachable_report": 0},
    {"idle_hours": 4, "unreachable_delete": -1}])
def test_bad_site_settings_are_refused(settings):
    with pytest.raises(ValueError):
        CullRules(**settings)


def test_the_url_is_the_fixed_address_else_the_floating_one():
    vm = server(ssc_r2d_port="9999")
    assert jupyter_url(vm, 8888) == "http://10.0.0.5:9999"
    vm["addresses"]["private"].append({"addr": "192.0.2.7", "OS-EXT-IPS:type": "floating"})
    del vm["metadata"]["ssc_r2d_port"]
    assert jupyter_url(vm, 8888) == "http://10.0.0.5:8888"
    vm["addresses"]["private"] = [{"addr": "192.0.2.7", "OS-EXT-IPS:type": "floating"}]
    assert jupyter_url(vm, 8888) == "http://192.0.2.7:8888"
    vm["addresses"] = {"v6": [{"addr": "fd00::5", "OS-EXT-IPS:type": "fixed"}]}
    assert jupyter_url(vm, 8888) == "http://[fd00::5]:8888"
    vm["addresses"] = {}
    assert jupyter_url(vm, 8888) is None


# --- extensions -----------------------------------------------------------------------------

def metadata(**extra) -> dict:
    return {"ssc_r2d_created": ago(hours=20), "ssc_r2d_expires": later(hours=4), **extra}


def test_an_extension_moves_the_expiry_and_is_counted():
    plan = extend(metadata(), NOW, hours=24, max_extensions=2, max_lifetime_hours=72)
    assert plan == {"changed": True, "expires": later(hours=28), "extensions": 1,
                    "metadata": {"ssc_r2d_expires": later(hours=28),
                                 "ssc_r2d_extensions": "1"}}


def test_an_expired_vm_not_yet_culled_is_extended_from_now():
    plan = extend(metadata(ssc_r2d_expires=ago(hours=1)), NOW, 24, 2, 72)
    assert plan["expires"] == later(hours=24)


def test_extensions_past_the_cap_are_refused_with_a_message_for_the_researcher():
    with pytest.raises(ExtensionRefused, match=r"kept longer 2 times, the most this site "
                                               rf"allows; it goes at {later(hours=4)}"):
        extend(metadata(ssc_r2d_extensions="2"), NOW, 24, 2, 72)
    with pytest.raises(ExtensionRefused, match="does not let VMs be kept longer"):
        extend(metadata(), NOW, 24, 0, 72)


def test_the_lifetime_limit_cuts_the_extension_then_refuses_it():
    plan = extend(metadata(ssc_r2d_expires=later(hours=40)), NOW, 24, 5, 72)
    assert plan["expires"] == later(hours=52)  # created 20 hours ago + 72
    with pytest.raises(ExtensionRefused, match=r"as long as this site allows \(72 hours"):
        extend(metadata(ssc_r2d_expires=later(hours=52)), NOW, 24, 5, 72)


def test_no_lifetime_limit_when_it_is_zero():
    plan = extend(metadata(ssc_r2d_expires=later(hours=100)), NOW, 24, 5, 0)
    assert plan["expires"] == later(hours=124)


def test_a_repeated_request_changes_nothing_and_a_stale_one_is_refused():
    vm = metadata(ssc_r2d_extensions="1")
    assert extend(vm, NOW, 24, 2, 72, extension=1) == {
        "changed": False, "expires": later(hours=4), "extensions": 1, "metadata": {}}
    assert extend(vm, NOW, 24, 2, 72, extension=2)["extensions"] == 2
    with pytest.raises(ExtensionRefused, match="extension 3 cannot be the next"):
        extend(vm, NOW, 24, 2, 72, extension=3)


def test_a_vm_without_an_expiry_cannot_be_extended():
    with pytest.raises(ExtensionRefused, match="no expiry recorded"):
        extend({}, NOW, 24, 2, 72)


@pytest.mark.parametrize("hours, most, lifetime", [(0, 2, 72), (-1, 2, 72), (24, -1, 72),
                                                   (24, 2, -5)])
def test_bad_extension_settings_are_the_sites_mistake(hours, most, lifetime):
    with pytest.raises(ValueError):
        extend(metadata(), NOW, hours, most, lifetime)


def test_schedule_reads_what_the_page_shows():
    assert schedule(metadata(ssc_r2d_extensions="1", ssc_r2d_idle_deadline=later(hours=2),
                             ssc_r2d_unreachable="x")) == {
        "expires": NOW + timedelta(hours=4), "idle_deadline": NOW + timedelta(hours=2),
        "last_activity": None, "extensions": 1, "unreachable": 0}
