from __future__ import annotations

import json

import pytest
import trio

from surfaces.ops import HealthState


def make(clock, **kwargs) -> HealthState:
    return HealthState(stale_after_s=100.0, clock=clock, **kwargs)


async def test_sync_check_needs_a_running_loop(clock):
    health = make(clock)
    report = await health.check_health()
    assert not report.ok
    assert report.failed == ["sync"]
    assert report.checks["sync"].detail == "sync loop not running"


async def test_sync_check_goes_stale_and_recovers(clock):
    health = make(clock)
    with health.sync_loop_running():
        # before the first success, staleness counts from the loop start
        clock.now += 100
        assert (await health.check_health()).ok
        clock.now += 1
        report = await health.check_health()
        assert report.failed == ["sync"]
        assert "no successful sync yet" in report.checks["sync"].detail

        health.sync_succeeded()
        assert (await health.check_health()).ok
        clock.now += 150
        report = await health.check_health()
        assert report.status_code == 503
        assert "last successful sync 150.0 s ago (limit 100 s)" in report.checks["sync"].detail

        health.sync_succeeded(clock.now - 5)  # an explicit reading of the clock
        assert (await health.check_health()).status_code == 200

    assert (await health.check_health()).failed == ["sync"]  # the loop exited


async def test_db_probe_outcomes(clock):
    outcome: object = None

    async def probe() -> bool | None:
        if isinstance(outcome, Exception):
            raise outcome
        return outcome  # type: ignore[return-value]

    health = make(clock, db_probe=probe)
    health.sync_loop_started()

    for good in (None, True):
        outcome = good
        report = await health.check_health()
        assert report.ok, report
        assert report.checks["database"].detail == "writable"

    outcome = False
    assert (await health.check_health()).failed == ["database"]

    outcome = OSError("disk full")
    report = await health.check_health()
    assert report.failed == ["database"]
    assert report.checks["database"].detail == "probe failed: OSError: disk full"


async def test_db_probe_is_bounded_in_time(clock, autojump_clock):
    async def hanging_probe() -> None:
        await trio.sleep_forever()

    health = make(clock, db_probe=hanging_probe, db_probe_timeout_s=3.0)
    health.sync_loop_started()
    start = trio.current_time()
    report = await health.check_health()
    assert trio.current_time() - start == pytest.approx(3.0)
    assert report.failed == ["database"]
    assert "timed out after 3 s" in report.checks["database"].detail


async def test_no_probe_means_no_database_check_failure(clock):
    health = make(clock)
    health.sync_loop_started()
    report = await health.check_health()
    assert report.ok
    assert report.checks["database"].detail == "no probe configured"


def test_readiness(clock):
    health = make(clock)
    report = health.check_ready()
    assert report.failed == ["startup"]
    assert not health.ready

    health.mark_ready()
    assert health.check_ready().ok
    assert health.ready

    health.mark_shutting_down()
    report = health.check_ready()
    assert report.failed == ["shutdown"]
    assert report.status_code == 503
    assert not health.ready


def test_report_json_names_each_check(clock):
    health = make(clock)
    health.mark_shutting_down()
    body = json.loads(health.check_ready().to_json())
    assert body == {
        "status": "fail",
        "failed": ["startup", "shutdown"],
        "checks": {
            "startup": {"ok": False, "detail": "starting up"},
            "shutdown": {"ok": False, "detail": "shutting down"},
        },
    }
