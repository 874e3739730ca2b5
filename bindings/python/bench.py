"""should_process calls per second at 100k keys: tidegate.EventThrottler against the
pure-Python dict + RLock throttler (as its README describes it, with its per-call debug
logging call) and against the `limits` library (memory storage, moving window).

    pip install ./bindings/python limits
    python bindings/python/bench.py [--keys 100000] [--calls 1000000] [--threads 1,4]

Each contender gets the same pre-generated sequence of (timestamp, event_id, key): keys
uniformly random among `--keys`, timestamps rising by one second every `--keys` calls,
window 10 s, so about one call in ten is admitted. Threads split the sequence; the figure
is total calls per second. Memory per key: the growth of the process's resident memory
while each contender learns `--keys` new keys, divided by their number.
"""

import argparse
import gc
import logging
import random
import threading
import time

import tidegate

logger = logging.getLogger("throttler")
logging.basicConfig(level=logging.INFO)  # the original's default LOG_LEVEL


class PurePythonThrottler:
    """The per-key EventThrottler as its README documents it: a dict of the last
    processed timestamp per key under a threading.RLock, a debug log call per event."""

    def __init__(self, window=10):
        self.window = window
        self.last_processed = {}
        self.lock = threading.RLock()

    def should_process(self, timestamp, event_id, key):
        with self.lock:
            logger.debug("Event %s for key %s at %s", event_id, key, timestamp)
            last = self.last_processed.get(key)
            if last is None or timestamp - last >= self.window:
                self.last_processed[key] = timestamp
                return True
            return False


class LimitsThrottler:
    """The `limits` library, memory storage, moving window: one hit per key per 10 s."""

    def __init__(self, window=10):
        from limits import RateLimitItemPerSecond
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter

        self.item = RateLimitItemPerSecond(1, window)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def should_process(self, timestamp, event_id, key):
        return self.limiter.hit(self.item, key)


class CallFloor:
    """No throttling at all: the same loop calling a built-in of three arguments
    (`slice`), the least any native should_process can cost from Python."""

    should_process = slice


def workload(keys, calls, random_state=1):
    rng = random.Random(random_state)
    names = [f"user{i}" for i in range(keys)]
    return [(i // keys, f"e{i}", names[rng.randrange(keys)]) for i in range(calls)]


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def memory_per_key(make, keys):
    gc.collect()
    throttler = make()
    before = rss_bytes()
    for i in range(keys):
        throttler.should_process(0, "e", f"mem-{i}")
    gc.collect()
    grown = rss_bytes() - before
    del throttler
    return grown / keys


def run(throttler, events, threads):
    chunks = [events[i::threads] for i in range(threads)]
    barrier = threading.Barrier(threads + 1)
    admitted = [0] * threads

    def worker(n):
        should = throttler.should_process
        barrier.wait()
        count = 0
        for t, e, k in chunks[n]:
            count += should(t, e, k) is True
        admitted[n] = count

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for p in pool:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    for p in pool:
        p.join()
    return len(events) / (time.perf_counter() - start), sum(admitted)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--threads", default="1,4")
    parser.add_argument("--rounds", type=int, default=3, help="best of N runs")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]

    contenders = [
        ("tidegate.EventThrottler", lambda: tidegate.EventThrottler(window=10)),
        ("pure Python dict + RLock", lambda: PurePythonThrottler(window=10)),
    ]
    try:
        import limits  # noqa: F401

        contenders.append(("limits (moving window)", lambda: LimitsThrottler(window=10)))
    except ImportError:
        print("(limits not installed: pip install limits)")

    contenders.append(("(floor: a built-in call)", CallFloor))
    events = workload(args.keys, args.calls)
    print(f"{args.calls} calls, {args.keys} keys, best of {args.rounds}")
    results = {}
    for name, make in contenders:
        per_key = memory_per_key(make, args.keys) if make is not CallFloor else 0
        for n in threads:
            best = 0.0
            for _ in range(args.rounds):
                throttler = make()
                for t, e, k in events[: args.keys]:  # every key known before timing
                    throttler.should_process(t, e, k)
                rate, _ = run(throttler, events, n)
                best = max(best, rate)
                del throttler
            results[(name, n)] = best
        print(f"{name:28} " + "  ".join(f"{n} thread(s): {results[(name, n)]:>12,.0f}/s" for n in threads)
              + f"  memory/key: {per_key:,.0f} B")
    base = "tidegate.EventThrottler"
    for name, _ in contenders[1:-1]:
        print(f"tidegate vs {name}: " + ", ".join(f"{results[(base, n)] / results[(name, n)]:.1f}x at {n} thread(s)" for n in threads))


if __name__ == "__main__":
    main()
