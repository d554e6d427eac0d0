import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from surfaces.render import EditThrottle

# Edit times for the defaults when text keeps flowing (message posted at t=0).
DEFAULT_SCHEDULE = [0.8, 1.8, 3.3, 5.55, 8.925] + [8.925 + 5.0 * k for k in range(1, 26)]


def run_steady_stream(throttle: EditThrottle, until: float, step: float = 0.001) -> list[float]:
    """Simulate a frame every ``step`` seconds and edit whenever one is due."""
    throttle.message_sent(0.0)
    edits: list[float] = []
    now = 0.0
    i = 0
    while now <= until:
        throttle.frame_received(now)
        if throttle.should_edit(now, pending_chars=10):
            throttle.record_edit(now)
            edits.append(now)
        i += 1
        now = i * step
    return edits


def test_default_intervals():
    throttle = EditThrottle()
    assert throttle.interval_after(0) == 0.8
    assert [throttle.interval_after(n) for n in range(1, 8)] == [
        1.0,
        1.5,
        2.25,
        3.375,
        5.0,  # 5.0625 capped
        5.0,
        5.0,
    ]


def test_default_schedule_exact():
    throttle = EditThrottle()
    throttle.message_sent(0.0)
    times = []
    while (at := throttle.next_edit_at()) is not None:
        times.append(at)
        throttle.record_edit(at)
    assert len(times) == 30
    assert times == pytest.approx(DEFAULT_SCHEDULE)
    assert times[-1] == pytest.approx(133.925)
    assert throttle.edits_left == 0


def test_steady_stream_follows_schedule():
    edits = run_steady_stream(EditThrottle(), until=200.0, step=0.025)
    assert len(edits) == 30
    # Frames arrive every 25 ms, so each edit happens within one frame of the schedule.
    for got, want in zip(edits, DEFAULT_SCHEDULE, strict=True):
        assert want - 1e-9 <= got <= want + 0.025 + 1e-9


def test_not_before_first_edit_delay():
    throttle = EditThrottle()
    throttle.message_sent(100.0)
    throttle.frame_received(100.5)
    assert not throttle.should_edit(100.79, pending_chars=5)
    assert throttle.should_edit(100.8, pending_chars=5)


def test_nothing_pending_means_no_edit():
    throttle = EditThrottle()
    throttle.message_sent(0.0)
    assert not throttle.should_edit(50.0, pending_chars=0)
    assert throttle.due_at(0) is None


def test_not_started_means_no_edit():
    throttle = EditThrottle()
    assert throttle.next_edit_at() is None
    assert not throttle.should_edit(10.0, pending_chars=3)


def test_cap_then_only_final_edit():
    throttle = EditThrottle(max_edits=3)
    throttle.message_sent(0.0)
    for t in (1.0, 3.0, 6.0):
        assert throttle.should_edit(t, pending_chars=1)
        throttle.record_edit(t)
    assert throttle.edits_left == 0
    assert throttle.next_edit_at() is None
    assert throttle.due_at(100) is None
    assert not throttle.should_edit(1000.0, pending_chars=100)
    # The final edit is always allowed and free.
    throttle.record_edit(1000.0, final=True)
    assert throttle.edits_done == 3
    assert throttle.edits_left == 0


def test_final_edit_not_counted():
    throttle = EditThrottle()
    throttle.message_sent(0.0)
    throttle.record_edit(0.1, final=True)
    assert throttle.edits_done == 0
    assert throttle.edits_left == 30
    assert throttle.next_edit_at() == pytest.approx(0.8)


def test_zero_cap_allows_no_intermediate_edits():
    throttle = EditThrottle(max_edits=0)
    throttle.message_sent(0.0)
    assert not throttle.should_edit(10.0, pending_chars=10)


def test_new_message_resets_cap():
    throttle = EditThrottle(max_edits=1)
    throttle.message_sent(0.0)
    throttle.record_edit(1.0)
    assert throttle.edits_left == 0
    throttle.message_sent(2.0)  # overflow into a new message
    assert throttle.edits_left == 1
    assert throttle.next_edit_at() == pytest.approx(2.8)


def test_idle_flush_shortcuts_long_interval():
    throttle = EditThrottle()
    throttle.message_sent(0.0)
    for _ in range(6):  # reach the 5 s interval
        at = throttle.next_edit_at()
        assert at is not None
        throttle.record_edit(at)
    last = 13.925
    assert throttle.next_edit_at() == pytest.approx(last + 5.0)
    throttle.frame_received(last + 0.5)  # text arrives, then the agent pauses
    assert throttle.due_at(12) == pytest.approx(last + 2.5)
    assert not throttle.should_edit(last + 2.49, pending_chars=12)
    assert throttle.should_edit(last + 2.5, pending_chars=12)


def test_idle_flush_respects_min_interval():
    throttle = EditThrottle()
    throttle.message_sent(0.0)
    throttle.record_edit(0.8)
    throttle.record_edit(1.8)  # next regular gap: 1.5 s -> 3.3
    # Last frame long ago: idle is due at once, but not sooner than 1.8 + min 1.0.
    assert throttle.due_at(1) == pytest.approx(2.8)


def test_idle_flush_respects_first_edit_delay():
    throttle = EditThrottle(first_edit_after_s=3.0, idle_flush_s=0.5)
    throttle.message_sent(0.0)
    assert throttle.due_at(4) == pytest.approx(3.0)


def test_frames_postpone_idle_flush_but_not_regular_edits():
    throttle = EditThrottle()
    throttle.message_sent(0.0)
    for at in DEFAULT_SCHEDULE[:6]:
        throttle.record_edit(at)  # last edit at 13.925, next regular at 18.925
    throttle.frame_received(14.0)
    assert throttle.due_at(1) == pytest.approx(16.0)  # idle: 14.0 + 2.0
    throttle.frame_received(17.5)
    assert throttle.due_at(1) == pytest.approx(18.925)  # regular comes first


def test_validation():
    with pytest.raises(ValueError, match="max_interval_s"):
        EditThrottle(min_interval_s=5.0, max_interval_s=1.0)
    with pytest.raises(ValueError, match="idle_flush_s"):
        EditThrottle(idle_flush_s=-1.0)
    with pytest.raises(ValueError, match="first_edit_after_s"):
        EditThrottle(first_edit_after_s=float("nan"))


@given(
    events=st.lists(st.tuples(st.floats(0.0, 3.0), st.integers(0, 50), st.booleans()), max_size=200)
)
def test_never_faster_than_min_interval_nor_over_cap(events):
    throttle = EditThrottle()
    throttle.message_sent(0.0)
    now = 0.0
    edits: list[float] = []
    for gap, pending, frame in events:
        now += gap
        if frame:
            throttle.frame_received(now)
        due = throttle.due_at(pending)
        assert throttle.should_edit(now, pending) == (due is not None and now >= due)
        if throttle.should_edit(now, pending):
            throttle.record_edit(now)
            edits.append(now)
    assert len(edits) <= 30
    if edits:
        assert edits[0] >= 0.8
    for a, b in itertools.pairwise(edits):
        assert b - a >= 1.0 - 1e-9
