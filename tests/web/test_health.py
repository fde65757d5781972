"""/healthz: the app, its database and the job runner (its heartbeat) are alive."""

from datetime import UTC, datetime, timedelta

from web import db


def test_without_a_runner_heartbeat_it_is_unhealthy(site):
    answer = site.browser().get("/healthz")
    assert answer.status_code == 503
    assert answer.json() == {"app": "ok", "database": "ok", "runner": "missing",
                             "runner_heartbeat": None}


def test_a_fresh_heartbeat_is_healthy(site):
    with site.conn() as conn:
        db.beat(conn)
    answer = site.browser().get("/healthz")
    assert answer.status_code == 200
    body = answer.json()
    assert body["app"] == body["database"] == body["runner"] == "ok"
    assert body["runner_heartbeat"].endswith("Z")


def test_a_stale_heartbeat_is_unhealthy(make_site):
    site = make_site(runner_stale_seconds=30)
    old = db.format_time(datetime.now(UTC) - timedelta(seconds=31))
    site.sql("INSERT INTO heartbeat (name, at) VALUES ('runner', ?)", old)
    answer = site.browser().get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["runner"] == "stale"


def test_a_broken_database_is_unhealthy(site):
    with site.conn() as conn:
        db.beat(conn)
    site.sql("DROP TABLE jobs")
    answer = site.browser().get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["database"] == "error"


def test_health_needs_no_session_and_makes_none(site):
    browser = site.browser()
    browser.get("/healthz")
    assert browser.cookie is None
    assert site.sql("SELECT * FROM sessions") == []
