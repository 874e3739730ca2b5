"""Every algorithm decides in Python exactly as `tidegate replay` does on the same traffic."""

import json
import math
import random
import zlib

import pytest

import tidegate

POLICIES = [
    "fixed_window:5/2s",
    "sliding_window:6/3s",
    "sliding_log:4/1500ms",
    "token_bucket:7/3s,burst=4",
    "token_bucket:100/1m,burst=20",
    "leaky_bucket:5/2s,burst=3",
    "gcra:10/1s,burst=4",
    "gcra:3/7s",
    "throttle:2s",
    "gcra:10/1s;fixed_window:30/10s",
]


def traffic(random_state, costs):
    """A few thousand events on six keys: steady traffic, pauses, and bursts of 40 on one
    key; times in ms, non-decreasing."""
    rng = random.Random(random_state)
    t_ms = 0
    events = []
    while len(events) < 3000:
        if rng.random() < 0.03:
            key = f"user{rng.randrange(6)}"
            for _ in range(40):
                t_ms += rng.choice([0, 1, 3, 10])
                events.append((t_ms, key, rng.choice(costs)))
        t_ms += rng.choice([0, 0, 1, 7, 40, 130, 333, 999, 2500])
        events.append((t_ms, f"user{rng.randrange(6)}", rng.choice(costs)))
    return events


def ms(seconds):
    """Float seconds as the CLI's whole milliseconds, rounded up."""
    if seconds is None:
        return None
    return math.ceil(round(seconds * 1e6) / 1000)


def as_replay_line(t_ms, key, d, with_delay):
    line = {
        "t_ms": t_ms,
        "key": key,
        "allowed": d.allowed,
        "limit": d.limit,
        "remaining": d.remaining,
        "retry_after_ms": ms(d.retry_after),
        "reset_after_ms": ms(d.reset_after),
    }
    if with_delay and d.delay is not None:
        line["delay_ms"] = ms(d.delay)
    return line


@pytest.mark.parametrize("policy", POLICIES)
def test_decisions_equal_tidegate_replay_on_the_same_traffic(policy, run_replay):
    costs = [1] if policy.startswith("throttle") else [1, 1, 1, 2, 3]
    events = traffic(random_state=zlib.crc32(policy.encode()), costs=costs)
    done = run_replay(policy, events)
    assert done.returncode == 0, done.stderr
    expected = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(expected) == len(events)

    limiter = tidegate.Limiter(policy)
    with_delay = "leaky_bucket" in policy
    for (t_ms, key, cost), want in zip(events, expected):
        got = as_replay_line(t_ms, key, limiter.check_at(key, cost, t_ms / 1000), with_delay)
        assert got == want, (policy, t_ms, key, cost)

    allowed = sum(line["allowed"] for line in expected)
    assert 0 < allowed < len(events), "the traffic exercises both admissions and denials"


def test_a_list_of_policies_decides_as_repeated_policy_flags(run_replay):
    events = traffic(random_state=7, costs=[1, 2])
    done = run_replay("gcra:10/1s;fixed_window:30/10s", events)
    expected = [json.loads(line)["allowed"] for line in done.stdout.splitlines()]
    limiter = tidegate.Limiter(["gcra:10/1s", "fixed_window:30/10s"])
    got = [limiter.check_at(key, cost, t_ms / 1000).allowed for t_ms, key, cost in events]
    assert got == expected


@pytest.mark.parametrize(
    "policy",
    ["token_bucket:0/1m", "bogus:1/1s", "gcra:10/0s", "fixed_window:3/10s,burst=2", "token_bucket:5"],
)
def test_a_bad_policy_raises_the_message_the_cli_prints(policy, run_replay):
    done = run_replay(policy, [(0, "k", 1)])
    assert done.returncode != 0
    with pytest.raises(tidegate.PolicyError) as raised:
        tidegate.Limiter(policy)
    assert done.stderr.strip() == f"tidegate: --policy: {raised.value}"
