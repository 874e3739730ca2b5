"""Rate limiting and event throttling, with tidegate's exact algorithms in Rust.

- ``EventThrottler``: the first event per key per window (a drop-in for the
  per-key ``EventThrottler`` with ``should_process(timestamp, event_id, key)``).
- ``Limiter``: any tidegate policy (or several on one key) in memory.
- ``Decision``: what ``Limiter.check`` answers.
- ``PolicyError`` and ``CostError``: a policy or a cost that cannot be used.
"""

from tidegate._tidegate import (
    CostError,
    Decision,
    EventThrottler,
    Limiter,
    PolicyError,
    __version__,
)

__all__ = [
    "CostError",
    "Decision",
    "EventThrottler",
    "Limiter",
    "PolicyError",
    "__version__",
]
