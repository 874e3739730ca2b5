"""tidegate.EventThrottler: the first event per key per window."""

import copy
import pickle
import time

import pytest

import tidegate
from tidegate import EventThrottler


def test_the_documented_example_gives_the_documented_answers():
    throttler = EventThrottler(window=10)
    assert throttler.should_process(1, "e1", "userA") is True  # first event
    assert throttler.should_process(5, "e2", "userA") is False  # within 10s window
    assert throttler.should_process(12, "e3", "userA") is True  # after window
    assert throttler.should_process(15, "e4", "userB") is True  # new user
    assert throttler.should_process(20, "e5", "userB") is False  # still within window
    throttler.update_window(20)
    assert throttler.get_window() == 20


def admitted(throttler, timestamps, key="k"):
    """The throttler's answers for one event of `key` at each timestamp, in order."""
    return [throttler.should_process(t, f"e{i}", key) for i, t in enumerate(timestamps)]


def test_an_event_exactly_window_after_the_last_admitted_is_admitted():
    throttler = EventThrottler(window=10)
    assert admitted(throttler, [100, 109, 110, 119, 120]) == [True, False, True, False, True]


def test_a_denied_event_does_not_move_the_window():
    throttler = EventThrottler(window=10)
    assert admitted(throttler, range(11)) == [True] + [False] * 9 + [True]


def test_an_event_earlier_than_the_last_admitted_is_not_admitted():
    throttler = EventThrottler(window=10)
    assert admitted(throttler, [50, 49, 0, 60]) == [True, False, False, True]


def test_float_timestamps_are_exact_to_the_microsecond():
    throttler = EventThrottler(window=0.5)
    assert throttler.get_window() == 0.5
    assert admitted(throttler, [1.0, 1.499999, 1.5]) == [True, False, True]


def test_a_longer_window_applies_to_existing_keys_at_once():
    throttler = EventThrottler(window=10)
    assert throttler.should_process(0, "e1", "k")
    throttler.update_window(30)
    assert admitted(throttler, [10, 29, 30]) == [False, False, True]


def test_a_shorter_window_applies_to_existing_keys_at_once():
    throttler = EventThrottler(window=60)
    assert throttler.should_process(0, "e1", "k")
    assert not throttler.should_process(5, "e2", "k")
    throttler.update_window(5)
    assert throttler.get_window() == 5
    assert throttler.should_process(5, "e3", "k")


def test_clear_forgets_every_key():
    throttler = EventThrottler(window=10)
    for i in range(100):
        throttler.should_process(0, "e", f"user{i}")
    assert throttler.get_key_count() == 100
    throttler.clear()
    assert throttler.get_key_count() == 0
    assert throttler.should_process(1, "e", "user0")


def test_cleanup_removes_keys_idle_for_longer_than_the_window():
    throttler = EventThrottler(window=10)
    for i in range(1000):
        throttler.should_process(0, "e", f"user{i}")
    throttler.should_process(5, "e", "late")
    assert throttler.cleanup() == 0
    throttler.should_process(10, "e", "late")
    assert throttler.cleanup() == 1000
    assert throttler.get_key_count() == 1


def test_idle_keys_are_removed_in_the_background():
    throttler = EventThrottler(window=10)
    for i in range(1000):
        throttler.should_process(0, "e", f"user{i}")
    throttler.should_process(100, "e", "late")
    deadline = time.monotonic() + 10
    while throttler.get_key_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert throttler.get_key_count() == 1


@pytest.mark.parametrize("window", [0, -1, 0.0, -0.5])
def test_a_window_that_is_not_positive_is_a_policy_error(window):
    with pytest.raises(tidegate.PolicyError) as raised:
        EventThrottler(window=window)
    assert isinstance(raised.value, ValueError)
    message = str(raised.value)
    assert "`window`" in message
    assert "must be" in message


def test_update_window_refuses_zero_and_keeps_the_old_window():
    throttler = EventThrottler(window=10)
    with pytest.raises(tidegate.PolicyError, match=r"^invalid policy: `window` must be greater than zero$"):
        throttler.update_window(0)
    assert throttler.get_window() == 10


def test_a_negative_timestamp_is_refused_with_its_name():
    throttler = EventThrottler(window=10)
    with pytest.raises(ValueError, match=r"^`timestamp` must be zero or more seconds, got -1$"):
        throttler.should_process(-1, "e", "k")


def test_a_timestamp_that_is_not_a_number_is_a_type_error():
    throttler = EventThrottler(window=10)
    with pytest.raises(TypeError, match=r"`timestamp` must be a number of seconds \(int or float\), got str"):
        throttler.should_process("1", "e", "k")
    with pytest.raises(ValueError, match="`timestamp` must be a finite number of seconds, got NaN"):
        throttler.should_process(float("nan"), "e", "k")


def test_the_repr_shows_window_and_keys():
    throttler = EventThrottler(window=10)
    throttler.should_process(0, "e", "k")
    assert repr(throttler) == "EventThrottler(window=10, keys=1)"
    assert repr(EventThrottler(window=2.5)) == "EventThrottler(window=2.5, keys=0)"


def test_pickling_and_copying_are_refused_with_the_reason():
    throttler = EventThrottler(window=10)
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="tidegate.EventThrottler cannot be pickled or copied"):
            attempt(throttler)


def test_a_throttler_is_truthy_even_when_empty():
    assert EventThrottler(window=10)


def test_keys_are_compared_by_their_text():
    throttler = EventThrottler(window=10)
    assert throttler.should_process(0, "e", "user-é")
    assert not throttler.should_process(1, "e", "".join(["user-", "é"]))
    assert throttler.should_process(1, "e", "user-e")


def test_a_key_that_is_not_a_str_is_a_type_error():
    throttler = EventThrottler(window=10)
    with pytest.raises(TypeError, match=r"^`key` must be a str, got int$"):
        throttler.should_process(0, "e", 42)
    with pytest.raises(UnicodeEncodeError):
        throttler.should_process(0, "e", "\udcff")
