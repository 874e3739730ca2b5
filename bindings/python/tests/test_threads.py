"""Many threads on shared keys: every decision is counted exactly once."""

import threading

import tidegate

THREADS = 8


def run_threads(target):
    barrier = threading.Barrier(THREADS)
    results = [None] * THREADS

    def worker(i):
        barrier.wait()
        results[i] = target(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_eight_threads_admit_exactly_one_event_per_key_per_window():
    throttler = tidegate.EventThrottler(window=10)
    keys = [f"user{i}" for i in range(500)]
    windows = 4
    between_windows = threading.Barrier(THREADS)

    def target(i):
        admitted = 0
        for w in range(windows):
            between_windows.wait()
            for _ in range(5):  # every thread sends each key 5 events per window
                for key in keys:
                    admitted += throttler.should_process(w * 10, f"e{i}", key)
        return admitted

    results = run_threads(target)
    assert sum(results) == len(keys) * windows
    assert throttler.get_key_count() == len(keys)


def test_eight_threads_on_one_fixed_window_consume_exactly_its_limit():
    limiter = tidegate.Limiter("fixed_window:1000/1h")

    def target(i):
        return sum(bool(limiter.check(key)) for key in ("shared", "other") for _ in range(500))

    results = run_threads(target)
    assert sum(results) == 2 * 1000
    assert limiter.peek("shared").remaining == 0


def test_eight_threads_with_weighted_costs_never_overdraw_a_bucket():
    limiter = tidegate.Limiter("token_bucket:10000/1d")

    def target(i):
        return sum(3 for _ in range(1000) if limiter.check_at("k", 3, 1.0))

    results = run_threads(target)
    assert sum(results) == 9999  # 3333 admissions of cost 3; the last token stays
    assert limiter.peek_at("k", 1, 1.0).allowed
    assert not limiter.peek_at("k", 2, 1.0).allowed
