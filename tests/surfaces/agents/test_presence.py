"""The presence state machine: every transition, on explicit times (no clock)."""

from __future__ import annotations

import pytest

from agent_client import AgentFailure
from surfaces.agents import (
    AgentPresence,
    PresenceState,
    Thresholds,
    TurnOutcome,
    is_connect_failure,
)

ONLINE, AWAY, OFFLINE, UNKNOWN = (
    PresenceState.ONLINE,
    PresenceState.AWAY,
    PresenceState.OFFLINE,
    PresenceState.UNKNOWN,
)
T = Thresholds(away_status_s=5.0, away_failures=2, away_window_s=300.0)


def fresh() -> AgentPresence:
    return AgentPresence(T)


def test_unknown_until_first_observation():
    p = fresh()
    assert p.state is UNKNOWN
    assert p.since is None
    assert p.last_seen is None
    assert not p.state.up
    assert p.refresh(10.0) is UNKNOWN


def test_probe_answer_is_online_and_seen():
    p = fresh()
    assert p.observe_probe(ok=True, status_s=0.01, now=10.0, wall=1000.0) is ONLINE
    assert (p.since, p.last_seen, p.last_seen_wall) == (10.0, 10.0, 1000.0)
    assert p.status_latency_s == 0.01
    assert p.state.up


def test_probe_without_answer_is_offline_at_once_and_keeps_last_seen():
    p = fresh()
    p.observe_probe(ok=True, status_s=0.01, now=10.0, wall=1000.0)
    assert p.observe_probe(ok=False, status_s=None, now=40.0, wall=1030.0) is OFFLINE
    assert p.since == 40.0
    assert p.last_seen == 10.0  # when it last answered
    assert not p.state.up


def test_first_probe_failing_is_offline_never_seen():
    p = fresh()
    assert p.observe_probe(ok=False, status_s=None, now=1.0, wall=1.0) is OFFLINE
    assert p.last_seen is None


def test_slow_status_is_away_and_a_fast_one_online_again():
    p = fresh()
    assert p.observe_probe(ok=True, status_s=5.5, now=10.0, wall=0) is AWAY
    assert p.state.up
    assert p.observe_probe(ok=True, status_s=5.0, now=40.0, wall=0) is ONLINE  # not over
    assert p.since == 40.0


def test_offline_back_online_and_since_moves_only_on_change():
    p = fresh()
    p.observe_probe(ok=False, status_s=None, now=10.0, wall=0)
    p.observe_probe(ok=False, status_s=None, now=40.0, wall=0)
    assert p.since == 10.0
    assert p.observe_probe(ok=True, status_s=0.1, now=70.0, wall=0) is ONLINE
    assert p.since == 70.0


def test_turn_ok_marks_online_from_any_state():
    for setup in (None, False, True):
        p = fresh()
        if setup is not None:
            p.observe_probe(ok=setup, status_s=0.1 if setup else None, now=1.0, wall=0)
        assert p.observe_turn(TurnOutcome.OK, now=5.0, wall=50.0) is ONLINE
        assert (p.last_seen, p.last_seen_wall) == (5.0, 50.0)


def test_turn_connect_failure_marks_offline_at_once():
    p = fresh()
    p.observe_probe(ok=True, status_s=0.1, now=1.0, wall=0)
    assert p.observe_turn(TurnOutcome.CONNECT_FAILED, now=5.0, wall=0) is OFFLINE
    assert p.last_seen == 1.0


def test_failed_turns_in_the_window_make_away_then_age_out():
    p = fresh()
    p.observe_probe(ok=True, status_s=0.1, now=0.0, wall=0)
    assert p.observe_turn(TurnOutcome.FAILED, now=10.0, wall=0) is ONLINE  # one is not enough
    assert p.observe_turn(TurnOutcome.FAILED, now=20.0, wall=0) is AWAY
    assert p.recent_failures(20.0) == 2
    # the first failure leaves the 300 s window at 310 s: one left, online again
    assert p.refresh(309.0) is AWAY
    assert p.refresh(310.5) is ONLINE
    assert p.recent_failures(310.5) == 1


def test_successful_turn_clears_failures():
    p = fresh()
    p.observe_turn(TurnOutcome.FAILED, now=1.0, wall=0)
    assert p.observe_turn(TurnOutcome.FAILED, now=2.0, wall=0) is AWAY
    assert p.observe_turn(TurnOutcome.OK, now=3.0, wall=0) is ONLINE
    assert p.recent_failures(3.0) == 0


def test_failed_turn_after_offline_means_reachable_again():
    """A turn that failed after it connected proves the agent is reachable."""
    p = fresh()
    p.observe_probe(ok=False, status_s=None, now=1.0, wall=0)
    assert p.observe_turn(TurnOutcome.FAILED, now=2.0, wall=0) is ONLINE
    assert p.last_seen is None  # it did not answer properly: not "seen"


def test_probe_of_an_away_agent_keeps_it_away_while_failures_are_recent():
    p = fresh()
    p.observe_turn(TurnOutcome.FAILED, now=1.0, wall=0)
    p.observe_turn(TurnOutcome.FAILED, now=2.0, wall=0)
    assert p.observe_probe(ok=True, status_s=0.1, now=30.0, wall=0) is AWAY
    assert p.observe_probe(ok=False, status_s=None, now=60.0, wall=0) is OFFLINE
    assert p.observe_probe(ok=True, status_s=0.1, now=400.0, wall=0) is ONLINE


def test_failures_kept_are_bounded():
    p = fresh()
    for n in range(1000):
        p.observe_turn(TurnOutcome.FAILED, now=float(n) / 10, wall=0)
    assert len(p.failures) <= 64
    assert p.state is AWAY


@pytest.mark.parametrize(
    ("code", "phase", "connect"),
    [
        ("AGENT_UNAVAILABLE", None, True),
        ("AGENT_TIMEOUT", "connect", True),
        ("AGENT_TIMEOUT", "status", False),
        ("AGENT_TIMEOUT", "first_text", False),
        ("AGENT_DISCONNECTED", None, False),
        ("AGENT_ERROR", None, False),
        ("AGENT_PROTOCOL_ERROR", None, False),
    ],
)
def test_connect_failures(code, phase, connect):
    assert is_connect_failure(AgentFailure(code, "x", phase=phase)) is connect
