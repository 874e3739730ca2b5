"""tidegate.Limiter and tidegate.Decision."""

import copy
import pickle

import pytest

import tidegate
from tidegate import CostError, Decision, Limiter, PolicyError


def test_a_fixed_window_admits_its_limit_then_denies_with_a_retry_after():
    limiter = Limiter("fixed_window:3/10s")
    for remaining in (2, 1, 0):
        d = limiter.check_at("alice", 1, 0)
        assert d.allowed and d.remaining == remaining and d.retry_after is None
    denied = limiter.check_at("alice", 1, 4)
    assert not denied
    assert (denied.limit, denied.remaining, denied.retry_after, denied.reset_after) == (3, 0, 6.0, 6.0)
    assert limiter.check_at("alice", 1, 10).allowed


def test_a_token_is_back_at_exactly_twelve_seconds_with_5_per_minute():
    limiter = Limiter("token_bucket:5/1m")
    assert all(limiter.check_at("k", 1, 0) for _ in range(5))
    denied = limiter.check_at("k", 1, 0)
    assert denied.retry_after == 12.0
    assert not limiter.check_at("k", 1, 11.999999)
    assert limiter.check_at("k", 1, 12)


def test_check_decides_on_the_monotonic_clock():
    limiter = Limiter("token_bucket:100/1m,burst=20")
    first = limiter.check("client-42")
    assert first.allowed and first.limit == 100 and first.remaining == 19
    assert all(limiter.check("client-42") for _ in range(19))
    denied = limiter.check("client-42")
    assert not denied and 0 < denied.retry_after <= 0.6


def test_peek_consumes_nothing():
    limiter = Limiter("fixed_window:2/1h")
    for _ in range(5):
        assert limiter.peek("k").remaining == 1
    assert limiter.check("k", 2).allowed
    assert not limiter.peek("k")


def test_reset_forgets_a_key():
    limiter = Limiter("fixed_window:1/1h")
    assert limiter.check("k")
    assert not limiter.check("k")
    assert limiter.reset("k") is True
    assert limiter.reset("k") is False
    assert limiter.check("k")


def test_several_policies_admit_only_when_all_admit_and_consume_from_all():
    limiter = Limiter("gcra:10/1s;fixed_window:12/1d")
    assert sum(bool(limiter.check_at("k", 1, 0)) for _ in range(20)) == 10
    assert sum(bool(limiter.check_at("k", 1, 5)) for _ in range(20)) == 2
    assert limiter.check_at("k", 1, 6).retry_after == pytest.approx(86400 - 6)
    assert Limiter(["gcra:10/1s", "fixed_window:12/1d"]).policy == limiter.policy


def test_a_leaky_bucket_admission_carries_its_delay():
    limiter = Limiter("leaky_bucket:20/1m")
    delays = [limiter.check_at("k", 1, 0).delay for _ in range(3)]
    assert delays == [0.0, 3.0, 6.0]
    assert Limiter("gcra:1/1s").check_at("k", 1, 0).delay is None


def test_weighted_costs_are_all_or_nothing():
    limiter = Limiter("fixed_window:5/1m")
    assert limiter.check_at("k", 4, 0).remaining == 1
    denied = limiter.check_at("k", 2, 0)
    assert not denied and denied.remaining == 1
    assert limiter.check_at("k", 1, 0).remaining == 0


def test_max_keys_refuses_a_new_key_instead_of_admitting_it_unlimited():
    limiter = Limiter("fixed_window:1/1h", max_keys=10)
    for i in range(10):
        assert limiter.check_at(f"user{i}", 1, 0)
    with pytest.raises(tidegate.StoreFullError, match="maximum of 10 keys"):
        limiter.check_at("user10", 1, 0)
    assert isinstance(tidegate.StoreFullError("x"), RuntimeError)
    # Known keys are still limited exactly.
    assert not limiter.check_at("user0", 1, 0)
    assert limiter.key_count() == 10


def test_the_decision_repr_names_every_field():
    d = Limiter("fixed_window:3/10s").check_at("k", 1, 0)
    assert repr(d) == "Decision(allowed=True, limit=3, remaining=2, retry_after=None, reset_after=10.0, delay=None)"
    assert isinstance(d, Decision)
    assert d == Limiter("fixed_window:3/10s").check_at("other", 1, 0)


def test_the_limiter_repr_shows_the_normalised_policy_and_keys():
    limiter = Limiter("token_bucket:100/1m,burst=20")
    limiter.check("k")
    assert repr(limiter) == "Limiter('token_bucket:100/1m,burst=20', keys=1)"


@pytest.mark.parametrize("cost", [0, -3])
def test_a_cost_below_one_is_a_cost_error(cost):
    with pytest.raises(CostError, match=r"^cost must be at least 1$"):
        Limiter("fixed_window:5/1m").check("k", cost)


def test_a_cost_above_the_capacity_is_a_cost_error_naming_both():
    limiter = Limiter("token_bucket:100/1m,burst=20")
    with pytest.raises(CostError, match=r"^cost 21 can never be admitted: the policy admits at most 20 at once$"):
        limiter.check("k", 21)
    with pytest.raises(CostError, match=r"^cost 100000000000000000000 can never be admitted"):
        limiter.check("k", 10**20)
    assert limiter.key_count() == 0
    assert issubclass(CostError, ValueError) and issubclass(PolicyError, ValueError)


def test_a_cost_that_is_not_an_int_is_a_type_error():
    limiter = Limiter("fixed_window:5/1m")
    for cost in (1.5, "1", True):
        with pytest.raises(TypeError, match="`cost` must be an int"):
            limiter.check("k", cost)


def test_a_bad_policy_names_the_field_and_the_reason():
    with pytest.raises(PolicyError) as raised:
        Limiter("token_bucket:100/1m,burst=0")
    assert str(raised.value) == "invalid policy `token_bucket:100/1m,burst=0`: `burst` must be at least 1"
    with pytest.raises(PolicyError, match="`policies` must list at least one policy"):
        Limiter([])
    with pytest.raises(TypeError, match="`policy` must be a string or a list of strings"):
        Limiter(42)


def test_one_limiter_cannot_mix_the_monotonic_clock_and_replay_time():
    live = Limiter("fixed_window:5/1m")
    live.check("k")
    with pytest.raises(ValueError, match="runs on the monotonic clock"):
        live.check_at("k", 1, 0)
    replay = Limiter("fixed_window:5/1m")
    replay.check_at("k", 1, 0)
    with pytest.raises(ValueError, match="runs on replay time"):
        replay.check("k")


def test_pickling_and_copying_are_refused_with_the_reason():
    limiter = Limiter("fixed_window:5/1m")
    for thing, name in ((limiter, "Limiter"), (limiter.check("k"), "Decision")):
        for attempt in (pickle.dumps, copy.copy):
            with pytest.raises(TypeError, match=f"tidegate.{name} cannot be pickled or copied"):
                attempt(thing)


def test_the_package_exports_its_names_and_version():
    assert set(tidegate.__all__) >= {"EventThrottler", "Limiter", "Decision", "PolicyError", "CostError"}
    assert tidegate.__version__ == "0.1.0"
    assert tidegate.PolicyError.__module__ == "tidegate"
