"""Rate limiting and event throttling, with tidegate's exact algorithms in Rust.

- ``EventThrottler``: the first event per key per window (a drop-in for the
  per-key ``EventThrottler`` with ``should_process(timestamp, event_id, key)``).
- ``Limiter``: any tidegate policy (or several on one key) in memory.
- ``RedisLimiter``: the same policies shared through Redis with other processes and
  ``tidegate serve``, blocking ``check`` or ``await acquire``.
- ``Decision``: what ``check`` answers.
- ``PolicyError`` and ``CostError``: a policy or a cost that cannot be used;
  ``StoreFullError``: a new key beyond ``max_keys``.
"""

from tidegate._tidegate import (
    CostError,
    StoreFullError,
    Decision,
    EventThrottler,
    Limiter,
    PolicyError,
    __version__,
)

__all__ = [
    "CostError",
    "StoreFullError",
    "Decision",
    "EventThrottler",
    "Limiter",
    "PolicyError",
    "__version__",
]

try:
    from tidegate._tidegate import RedisLimiter  # noqa: F401
except ImportError:  # built without the `redis` cargo feature
    pass
else:
    __all__.append("RedisLimiter")
