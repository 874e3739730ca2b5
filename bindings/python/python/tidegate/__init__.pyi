"""Type stubs of the tidegate package."""

from typing import Awaitable, List, Literal, Optional, Sequence, Union

__version__: str
__all__: List[str]

Seconds = Union[int, float]

class PolicyError(ValueError):
    """A policy (or a throttler window) that cannot be used; the message names the
    field and the reason, as ``tidegate replay --policy`` prints it."""

class CostError(ValueError):
    """A cost the policy can never admit: zero or less, or more than its full quota."""

class StoreFullError(RuntimeError):
    """A new key did not fit: the limiter already holds ``max_keys`` keys. It is
    refused rather than admitted unlimited."""

class EventThrottler:
    """Processes only the first event per key within a window of seconds.

    An event is processed when no event of its key was processed in the last
    ``window`` seconds: one exactly ``window`` after the last processed one is
    processed, an earlier one is not. Safe to share between threads. Keys idle for
    longer than the window (against the latest timestamp seen) are removed in the
    background. Times are exact to the microsecond.
    """

    def __init__(self, window: Seconds = 10) -> None:
        """Raises PolicyError when ``window`` is not positive."""
    def should_process(self, timestamp: Seconds, event_id: object, key: str) -> bool:
        """Whether the event at ``timestamp`` (seconds, zero or more) should be
        processed for ``key``; ``event_id`` does not affect the decision."""
    def update_window(self, new_window: Seconds) -> None:
        """Changes the window; it applies to existing keys at once. Raises
        PolicyError when ``new_window`` is not positive (the window is unchanged)."""
    def get_window(self) -> Seconds:
        """The current window in seconds (an int when whole)."""
    def clear(self) -> None:
        """Forgets every key."""
    def get_key_count(self) -> int:
        """Number of keys tracked."""
    def cleanup(self) -> int:
        """Removes keys idle for longer than the window now; returns how many."""

class Decision:
    """The outcome of one decision; true when the request was admitted."""

    @property
    def allowed(self) -> bool:
        """Whether the request was admitted (and its cost consumed)."""
    @property
    def limit(self) -> int:
        """The policy's limit (the binding policy's, when several guard the key)."""
    @property
    def remaining(self) -> int:
        """Cost that could still be admitted right now, after this decision."""
    @property
    def retry_after(self) -> Optional[float]:
        """Seconds until this cost could be admitted; None when admitted."""
    @property
    def reset_after(self) -> float:
        """Seconds until the full quota is back."""
    @property
    def delay(self) -> Optional[float]:
        """For ``leaky_bucket``: seconds the admitted request waits before proceeding."""
    def __bool__(self) -> bool: ...
    def __eq__(self, other: object) -> bool: ...

class Limiter:
    """Decides allow/deny per key with one policy or several guarding each key
    together, in memory. Safe to share between threads.

    ``policy`` is the short form (``"token_bucket:100/1m,burst=20"``,
    ``"gcra:10/1s;fixed_window:1000/1d"``) or a list of them. ``max_keys`` bounds the
    keys held (default 10 million); at the bound a new key raises StoreFullError.
    Raises PolicyError for a policy that cannot be used.
    """

    def __init__(
        self,
        policy: Union[str, Sequence[str]],
        *,
        max_keys: Optional[int] = None,
    ) -> None: ...
    @property
    def policy(self) -> str:
        """The policies, in short form (several separated by ``;``)."""
    def check(self, key: str, cost: int = 1) -> Decision:
        """Decides now for ``key``, consuming ``cost`` if admitted. Raises CostError
        for a cost the policy can never admit."""
    def peek(self, key: str, cost: int = 1) -> Decision:
        """The decision ``check`` would give now, consuming nothing."""
    def check_at(self, key: str, cost: int, at_seconds: Seconds) -> Decision:
        """Decides at ``at_seconds`` on the caller's own timeline (a replay of recorded
        traffic). A limiter used with ``check_at`` cannot also use ``check``/``peek``."""
    def peek_at(self, key: str, cost: int, at_seconds: Seconds) -> Decision:
        """The decision ``check_at`` would give, consuming nothing."""
    def reset(self, key: str) -> bool:
        """Forgets ``key``'s state; returns whether there was one."""
    def key_count(self) -> int:
        """Number of keys held (expired ones are removed in the background)."""


class RedisLimiter:
    """Decides per key through Redis, sharing each key's quota exactly with every
    limiter of the same ``name`` and policies on the same Redis and ``namespace``:
    other processes, other machines, ``tidegate serve`` (whose policy names are the
    ``name``). Safe to share between threads.

    ``url``: ``redis://host:port`` (``rediss://`` for TLS; several comma-separated URLs
    of cluster nodes for Redis Cluster). A single node that cannot be reached yet is not
    an error: decisions follow ``on_error`` until it answers. ``on_error``: what decides
    when Redis does not answer within ``timeout`` seconds (default 0.05): ``"local"``
    (an in-memory limiter with the same policies, in this process), ``"fail_open"``
    (admit) or ``"fail_closed"`` (deny). Blocking calls release the GIL while they wait.
    """

    def __init__(
        self,
        url: str,
        name: str,
        policy: Union[str, Sequence[str]],
        *,
        on_error: Literal["local", "fail_open", "fail_closed"] = "local",
        timeout: Optional[Seconds] = None,
        namespace: str = "tidegate",
    ) -> None: ...
    @property
    def policy(self) -> str:
        """The policies, in short form."""
    @property
    def name(self) -> str:
        """The limiter's name (its keys are ``<namespace>:<name>:{=<key>}:...``)."""
    def check(self, key: str, cost: int = 1) -> Decision:
        """Decides now for ``key`` through Redis, consuming ``cost`` if admitted."""
    def peek(self, key: str, cost: int = 1) -> Decision:
        """The decision ``check`` would give now, consuming nothing."""
    def acquire(self, key: str, cost: int = 1) -> Awaitable[Decision]:
        """``await limiter.acquire(key)``: the decision of ``check``, for asyncio."""
    def reset(self, key: str) -> bool:
        """Forgets ``key``'s state in Redis; returns whether there was one."""
