from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from surfaces.metrics import (
    AGENT_FAILURE_CODES,
    CONTENT_TYPE,
    MAX_ENDPOINT_LABELS,
    SYNC_ERROR_KINDS,
    Metrics,
)


def samples(metrics: Metrics) -> list[tuple[str, dict[str, str], float]]:
    text = metrics.render().decode()
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = [v for n, lab, v in samples(metrics) if n == name and lab == labels]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


@pytest.fixture
def metrics(clock) -> Metrics:
    return Metrics(version="1.2.3", clock=clock)


def test_matrix_requests_are_counted_by_endpoint_and_status(metrics):
    metrics.observe_matrix_request("sync", 200, 29.5)
    metrics.observe_matrix_request("sync", 200, 0.2)
    metrics.observe_matrix_request("send", 429, 0.01)

    assert value(metrics, "matrix_requests_total", endpoint="sync", status="200") == 2
    assert value(metrics, "matrix_requests_total", endpoint="send", status="429") == 1
    assert value(metrics, "matrix_request_seconds_count", endpoint="sync") == 2
    assert value(metrics, "matrix_request_seconds_sum", endpoint="sync") == pytest.approx(29.7)
    # a long-poll sync lands in a bucket below +Inf
    assert value(metrics, "matrix_request_seconds_bucket", endpoint="sync", le="30.0") == 2
    assert value(metrics, "matrix_ratelimited_total") == 1


def test_endpoint_label_values_are_capped(metrics):
    for i in range(MAX_ENDPOINT_LABELS + 10):
        metrics.observe_matrix_request(f"endpoint_{i}", 200, 0.1)

    endpoints = {
        lab["endpoint"] for name, lab, _ in samples(metrics) if name == "matrix_requests_total"
    }
    assert len(endpoints) == MAX_ENDPOINT_LABELS + 1
    assert value(metrics, "matrix_requests_total", endpoint="other", status="200") == 10
    # an endpoint seen before the cap keeps its own series
    metrics.observe_matrix_request("endpoint_0", 200, 0.1)
    assert value(metrics, "matrix_requests_total", endpoint="endpoint_0", status="200") == 2


def test_sync_lag_is_time_since_last_success(metrics, clock):
    clock.now += 7
    assert value(metrics, "matrix_sync_lag_seconds") == 7  # since start: never synced

    metrics.sync_succeeded(clock.now)
    clock.now += 42
    assert value(metrics, "matrix_sync_lag_seconds") == 42

    metrics.sync_succeeded(clock.now)
    assert value(metrics, "matrix_sync_lag_seconds") == 0


def test_sync_errors_use_a_fixed_kind_set(metrics):
    for kind in SYNC_ERROR_KINDS:
        assert value(metrics, "matrix_sync_errors_total", kind=kind) == 0

    metrics.sync_failed("network")
    metrics.sync_failed("network")
    metrics.sync_failed("http_5xx")
    metrics.sync_failed("something new")

    assert value(metrics, "matrix_sync_errors_total", kind="network") == 2
    assert value(metrics, "matrix_sync_errors_total", kind="http_5xx") == 1
    assert value(metrics, "matrix_sync_errors_total", kind="other") == 1
    kinds = {lab["kind"] for n, lab, _ in samples(metrics) if n == "matrix_sync_errors_total"}
    assert kinds == set(SYNC_ERROR_KINDS)


def test_room_queues_have_no_per_room_label(metrics):
    metrics.room_event_enqueued(0)
    metrics.room_event_enqueued(3)
    metrics.room_queues_changed(rooms_active=4, max_depth=3)
    metrics.room_queue_rejected()

    assert value(metrics, "room_queue_depth_count") == 2
    assert value(metrics, "room_queue_depth_sum") == 3
    assert value(metrics, "room_queue_depth_bucket", le="0.0") == 1
    assert value(metrics, "room_queue_depth_max") == 3
    assert value(metrics, "rooms_active") == 4
    assert value(metrics, "room_queue_rejected_total") == 1
    assert not [lab for _, lab, _ in samples(metrics) if "room" in lab or "room_id" in lab]


def test_turns(metrics):
    metrics.turn_started()
    metrics.turn_started()
    assert value(metrics, "turns_active") == 2

    metrics.agent_first_text(0.4)
    metrics.turn_finished("ok", 12.0)
    metrics.turn_finished("weird", None)

    assert value(metrics, "turns_active") == 0
    assert value(metrics, "turns_total", outcome="ok") == 1
    assert value(metrics, "turns_total", outcome="other") == 1
    assert value(metrics, "turns_total", outcome="failed") == 0
    assert value(metrics, "agent_turn_seconds_count") == 1
    assert value(metrics, "agent_turn_seconds_sum") == 12
    assert value(metrics, "agent_first_text_seconds_count") == 1
    assert value(metrics, "agent_first_text_seconds_bucket", le="0.5") == 1
    assert value(metrics, "agent_first_text_seconds_bucket", le="0.25") == 0
    # buckets span 10 ms to 10 min
    les = {lab["le"] for n, lab, _ in samples(metrics) if n == "agent_turn_seconds_bucket"}
    assert {"0.01", "600.0", "+Inf"} <= les


def test_agent_failures_by_code(metrics):
    for code in AGENT_FAILURE_CODES:
        assert value(metrics, "agent_failures_total", code=code) == 0
    metrics.agent_failed("AGENT_TIMEOUT")
    metrics.agent_failed("SOMETHING_ELSE")
    assert value(metrics, "agent_failures_total", code="AGENT_TIMEOUT") == 1
    assert value(metrics, "agent_failures_total", code="other") == 1


def test_counters_and_gauges(metrics):
    metrics.stream_edit_sent()
    metrics.stream_edit_sent()
    metrics.outbox_pending_changed(5)
    metrics.events_admitted(3)
    metrics.events_admitted()
    metrics.events_admitted(0)

    assert value(metrics, "stream_edits_total") == 2
    assert value(metrics, "outbox_pending") == 5
    assert value(metrics, "events_admitted_total") == 4
    assert value(metrics, "bot_info", version="1.2.3") == 1


def test_instances_have_their_own_registries(clock):
    first = Metrics(clock=clock)
    second = Metrics(clock=clock)  # would raise "Duplicated timeseries" on a shared registry
    first.stream_edit_sent()
    assert value(first, "stream_edits_total") == 1
    assert value(second, "stream_edits_total") == 0


def test_render_formats(metrics):
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")
    body, content_type = metrics.render_for(None)
    assert content_type == CONTENT_TYPE
    assert b"turns_active" in body

    body, content_type = metrics.render_for("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_default_clock_outside_trio_does_not_break_rendering():
    metrics = Metrics()  # trio.current_time, but no trio.run here
    assert math.isnan(value(metrics, "matrix_sync_lag_seconds"))
