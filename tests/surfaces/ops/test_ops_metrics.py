from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from surfaces.metrics import (
    AGENT_FAILURE_CODES,
    CONTENT_TYPE,
    MAX_AGENT_LABELS,
    MAX_ENDPOINT_LABELS,
    MAX_STATUS_LABELS,
    SYNC_ERROR_KINDS,
    TURN_OUTCOMES,
    Metrics,
)

ROOT = Path(__file__).resolve().parents[3]
OPERATIONS = ROOT / "docs" / "operations.md"
METRICS_TABLE_MARK = "<!-- metrics table:"


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

    assert value(metrics, "surfaces_matrix_requests_total", endpoint="sync", status="200") == 2
    assert value(metrics, "surfaces_matrix_requests_total", endpoint="send", status="429") == 1
    assert value(metrics, "surfaces_matrix_request_seconds_count", endpoint="sync") == 2
    assert value(metrics, "surfaces_matrix_request_seconds_sum", endpoint="sync") == pytest.approx(
        29.7
    )
    # a long-poll sync lands in a bucket below +Inf
    assert value(metrics, "surfaces_matrix_request_seconds_bucket", endpoint="sync", le="30.0") == 2
    assert value(metrics, "surfaces_matrix_ratelimited_total") == 1


def test_endpoint_label_values_are_capped(metrics):
    for i in range(MAX_ENDPOINT_LABELS + 10):
        metrics.observe_matrix_request(f"endpoint_{i}", 200, 0.1)

    endpoints = {
        lab["endpoint"]
        for name, lab, _ in samples(metrics)
        if name == "surfaces_matrix_requests_total"
    }
    assert len(endpoints) == MAX_ENDPOINT_LABELS + 1
    assert value(metrics, "surfaces_matrix_requests_total", endpoint="other", status="200") == 10
    # an endpoint seen before the cap keeps its own series
    metrics.observe_matrix_request("endpoint_0", 200, 0.1)
    assert (
        value(metrics, "surfaces_matrix_requests_total", endpoint="endpoint_0", status="200") == 2
    )


def test_sync_lag_is_time_since_last_success(metrics, clock):
    clock.now += 7
    assert value(metrics, "surfaces_matrix_sync_lag_seconds") == 7  # since start: never synced

    metrics.sync_succeeded(clock.now)
    clock.now += 42
    assert value(metrics, "surfaces_matrix_sync_lag_seconds") == 42

    metrics.sync_succeeded(clock.now)
    assert value(metrics, "surfaces_matrix_sync_lag_seconds") == 0


def test_sync_errors_use_a_fixed_kind_set(metrics):
    for kind in SYNC_ERROR_KINDS:
        assert value(metrics, "surfaces_matrix_sync_errors_total", kind=kind) == 0

    metrics.sync_failed("network")
    metrics.sync_failed("network")
    metrics.sync_failed("http_5xx")
    metrics.sync_failed("something new")

    assert value(metrics, "surfaces_matrix_sync_errors_total", kind="network") == 2
    assert value(metrics, "surfaces_matrix_sync_errors_total", kind="http_5xx") == 1
    assert value(metrics, "surfaces_matrix_sync_errors_total", kind="other") == 1
    kinds = {
        lab["kind"] for n, lab, _ in samples(metrics) if n == "surfaces_matrix_sync_errors_total"
    }
    assert kinds == set(SYNC_ERROR_KINDS)


def test_room_queues_have_no_per_room_label(metrics):
    metrics.room_event_enqueued(0)
    metrics.room_event_enqueued(3)
    metrics.room_queues_changed(rooms_active=4, max_depth=3)
    metrics.room_queue_rejected()

    assert value(metrics, "surfaces_room_queue_depth_count") == 2
    assert value(metrics, "surfaces_room_queue_depth_sum") == 3
    assert value(metrics, "surfaces_room_queue_depth_bucket", le="0.0") == 1
    assert value(metrics, "surfaces_room_queue_depth_max") == 3
    assert value(metrics, "surfaces_rooms_active") == 4
    assert value(metrics, "surfaces_room_queue_rejected_total") == 1
    assert not [lab for _, lab, _ in samples(metrics) if "room" in lab or "room_id" in lab]


def test_turns(metrics):
    metrics.turn_started()
    metrics.turn_started()
    assert value(metrics, "surfaces_turns_active") == 2

    metrics.agents_known(["agent-0"])
    metrics.agent_first_text(0.4)
    metrics.turn_finished("ok", 12.0, agent="agent-0")
    metrics.turn_finished("weird", None, agent="agent-0")

    assert value(metrics, "surfaces_turns_active") == 0
    assert value(metrics, "surfaces_turns_total", agent="agent-0", outcome="ok") == 1
    assert value(metrics, "surfaces_turns_total", agent="agent-0", outcome="other") == 1
    assert value(metrics, "surfaces_turns_total", agent="agent-0", outcome="failed") == 0
    assert value(metrics, "surfaces_agent_turn_seconds_count") == 1
    assert value(metrics, "surfaces_agent_turn_seconds_sum") == 12
    assert value(metrics, "surfaces_agent_first_text_seconds_count") == 1
    assert value(metrics, "surfaces_agent_first_text_seconds_bucket", le="0.5") == 1
    assert value(metrics, "surfaces_agent_first_text_seconds_bucket", le="0.25") == 0
    # buckets span 10 ms to 10 min
    les = {lab["le"] for n, lab, _ in samples(metrics) if n == "surfaces_agent_turn_seconds_bucket"}
    assert {"0.01", "600.0", "+Inf"} <= les


def test_agent_failures_by_code(metrics):
    for code in AGENT_FAILURE_CODES:
        assert value(metrics, "surfaces_agent_failures_total", code=code) == 0
    metrics.agent_failed("AGENT_TIMEOUT")
    metrics.agent_failed("SOMETHING_ELSE")
    assert value(metrics, "surfaces_agent_failures_total", code="AGENT_TIMEOUT") == 1
    assert value(metrics, "surfaces_agent_failures_total", code="other") == 1


def test_counters_and_gauges(metrics):
    metrics.stream_edit_sent()
    metrics.stream_edit_sent()
    metrics.outbox_pending_changed(5)
    metrics.events_admitted(3)
    metrics.events_admitted()
    metrics.events_admitted(0)

    assert value(metrics, "surfaces_stream_edits_total") == 2
    assert value(metrics, "surfaces_outbox_pending") == 5
    assert value(metrics, "surfaces_events_admitted_total") == 4
    assert value(metrics, "surfaces_build_info", version="1.2.3") == 1


def test_instances_have_their_own_registries(clock):
    first = Metrics(clock=clock)
    second = Metrics(clock=clock)  # would raise "Duplicated timeseries" on a shared registry
    first.stream_edit_sent()
    assert value(first, "surfaces_stream_edits_total") == 1
    assert value(second, "surfaces_stream_edits_total") == 0


def test_render_formats(metrics):
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")
    body, content_type = metrics.render_for(None)
    assert content_type == CONTENT_TYPE
    assert b"surfaces_turns_active" in body

    body, content_type = metrics.render_for("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_default_clock_outside_trio_does_not_break_rendering():
    metrics = Metrics()  # trio.current_time, but no trio.run here
    assert math.isnan(value(metrics, "surfaces_matrix_sync_lag_seconds"))


# -- the names and labels operators see ------------------------------------------


def exercise(metrics: Metrics) -> None:
    """Touch every metric, so every labelled family has children."""
    metrics.observe_matrix_request("GET /sync", 200, 0.1)
    metrics.observe_matrix_request("PUT /rooms/{roomId}/send", 429, 0.1)
    metrics.sync_succeeded(metrics.clock())
    metrics.sync_failed("network")
    metrics.events_admitted(2)
    metrics.room_event_enqueued(1)
    metrics.room_queue_rejected()
    metrics.room_queues_changed(rooms_active=1, max_depth=1)
    metrics.turn_started()
    metrics.agent_first_text(0.2)
    metrics.turn_finished("ok", 1.0)
    metrics.agent_failed("AGENT_TIMEOUT")
    metrics.stream_edit_sent()
    metrics.outbox_pending_changed(1)


def exposed_names(text: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))


def documented_names() -> set[str]:
    lines = OPERATIONS.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(METRICS_TABLE_MARK))
    names = set()
    for line in lines[start + 3 :]:  # the marker, the header, the separator
        if not line.startswith("|"):
            break
        names.add(line.split("|")[1].strip().strip("`"))
    return names


def test_exposed_families_are_exactly_the_documented_ones(metrics):
    exercise(metrics)
    exposed = exposed_names(metrics.render().decode())
    assert exposed == documented_names()
    ours = {name for name in exposed if not name.startswith(("process_", "python_"))}
    assert ours
    assert all(name.startswith("surfaces_") for name in ours), sorted(ours)
    assert "surfaces_build_info" in exposed


def test_no_created_series_in_either_format(metrics):
    exercise(metrics)
    text = metrics.render().decode()
    body, _ = metrics.render_for("application/openmetrics-text; version=1.0.0")
    for exposition in (text, body.decode()):
        assert "_created" not in exposition
    # done on our registry's output only: other registries in the process keep theirs
    other = CollectorRegistry()
    Counter("unrelated", "x", registry=other).inc()
    assert b"unrelated_created" in generate_latest(other)


def test_process_and_runtime_metrics(metrics):
    assert value(metrics, "process_resident_memory_bytes") > 0
    assert value(metrics, "process_start_time_seconds") > 0
    assert value(metrics, "process_open_fds") > 0
    assert value(metrics, "process_cpu_seconds_total") >= 0
    pythons = [lab for name, lab, _ in samples(metrics) if name == "python_info"]
    assert len(pythons) == 1
    assert pythons[0]["implementation"]
    assert value(metrics, "python_gc_collections_total", generation="0") >= 0


def test_status_label_values_are_bounded(metrics):
    metrics.observe_matrix_request("GET /sync", 0, 30.0)  # no response
    metrics.observe_matrix_request("GET /sync", 999, 0.1)  # not an HTTP status
    assert value(metrics, "surfaces_matrix_requests_total", endpoint="GET /sync", status="0") == 1
    assert (
        value(metrics, "surfaces_matrix_requests_total", endpoint="GET /sync", status="other") == 1
    )
    for status in range(200, 200 + MAX_STATUS_LABELS + 5):
        metrics.observe_matrix_request("GET /versions", status, 0.1)
    statuses = {
        lab["status"]
        for name, lab, _ in samples(metrics)
        if name == "surfaces_matrix_requests_total"
    }
    assert len(statuses) == MAX_STATUS_LABELS + 1  # and "other"
    assert "other" in statuses


def test_every_label_value_is_documented():
    docs = OPERATIONS.read_text(encoding="utf-8")
    for fixed in (SYNC_ERROR_KINDS, TURN_OUTCOMES, AGENT_FAILURE_CODES):
        for label_value in fixed:
            assert f"`{label_value}`" in docs, label_value
    # every endpoint template the Matrix client reports
    client = "\n".join(
        path.read_text(encoding="utf-8") for path in (ROOT / "matrix_client").glob("_*.py")
    )
    endpoints = set(re.findall(r'"((?:GET|PUT|POST|DELETE) /[^"]*)"', client))
    assert len(endpoints) > 20
    missing = sorted(e for e in endpoints if f"`{e}`" not in docs)
    assert not missing
    assert "`0` when no response arrived" in docs


def test_tokens_and_refusals_are_counted_per_agent_with_a_bounded_label(metrics):
    metrics.agents_known(["agent-0", "agent-1"])
    assert value(metrics, "surfaces_agent_tokens_total", agent="agent-1") == 0
    assert value(metrics, "surfaces_turns_total", agent="agent-1", outcome="refused") == 0
    metrics.agent_tokens("agent-0", 120)
    metrics.agent_tokens("agent-0", 0)  # an unknown count adds nothing
    metrics.turn_refused("agent-1")
    assert value(metrics, "surfaces_agent_tokens_total", agent="agent-0") == 120
    assert value(metrics, "surfaces_turns_total", agent="agent-1", outcome="refused") == 1
    for n in range(MAX_AGENT_LABELS + 10):
        metrics.agent_tokens(f"stray-{n}", 1)
    agents = {
        lab["agent"] for name, lab, _ in samples(metrics) if name == "surfaces_agent_tokens_total"
    }
    assert len(agents) == MAX_AGENT_LABELS + 1  # and "other"
    assert value(metrics, "surfaces_agent_tokens_total", agent="other") == 12
