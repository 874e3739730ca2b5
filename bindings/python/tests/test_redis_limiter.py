"""tidegate.RedisLimiter against a real redis-server: limits shared exactly between
processes, with asyncio, and with `tidegate serve`; the failure policies."""

import asyncio
import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

import tidegate

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server on PATH")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(directory):
    """A redis-server on a free loopback port, once it answers PING: (process, url)."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return server, f"redis://127.0.0.1:{port}"
        except OSError:
            pass
        assert time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    server.terminate()
    server.wait(timeout=10)


def start_cluster(directory, nodes=3):
    """A Redis Cluster of `nodes` masters on free loopback ports (each with its bus port,
    port + 10000, free too), once every node says `cluster_state:ok`: (processes, url)."""
    ports = []
    while len(ports) < nodes:
        port = free_port()
        if port + 10000 >= 65536 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    servers = [
        subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf", "--dir", str(directory)],
            stdout=subprocess.DEVNULL,
        )
        for port in ports
    ]
    def cli(port, *args):
        return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=30)
    deadline = time.monotonic() + 20
    while not all(cli(port, "PING").stdout.strip() == "PONG" for port in ports):
        assert time.monotonic() < deadline, "cluster nodes did not start"
        time.sleep(0.05)
    created = subprocess.run(
        ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{port}" for port in ports),
         "--cluster-replicas", "0", "--cluster-yes"],
        capture_output=True, text=True, timeout=60,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    while not all("cluster_state:ok" in cli(port, "CLUSTER", "INFO").stdout for port in ports):
        assert time.monotonic() < deadline, "the cluster did not become ok"
        time.sleep(0.05)
    return servers, ",".join(f"redis://127.0.0.1:{port}" for port in ports)


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory):
    if shutil.which("redis-cli") is None:
        pytest.skip("needs redis-cli on PATH to create the cluster")
    servers, url = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield url
    for server in servers:
        server.terminate()
    for server in servers:
        server.wait(timeout=10)


@pytest.fixture
def name(request):
    """A limiter name of its own per test, so that tests share no keys."""
    return request.node.name.replace("[", "-").replace("]", "").replace(":", "-")[:60]


CHILD = """
import sys, tidegate
url, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
limiter = tidegate.RedisLimiter(url, name, "fixed_window:150/1h", timeout=2)
print(sum(bool(limiter.check("shared")) for _ in range(n)))
"""


def test_two_python_processes_share_one_limit_exactly(redis_url, name):
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, redis_url, name, "200"], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    admitted = [int(child.communicate(timeout=120)[0]) for child in children]
    assert sum(admitted) == 150, admitted
    assert all(child.returncode == 0 for child in children)


CHILD_KEYS = """
import json, sys, tidegate
url, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
limiter = tidegate.RedisLimiter(url, name, "fixed_window:15/1h", timeout=2)
admitted = {}
for i in range(n):
    key = f"user-{i % 10}"
    admitted[key] = admitted.get(key, 0) + bool(limiter.check(key))
print(json.dumps(admitted))
"""


def test_two_python_processes_on_a_redis_cluster_share_each_keys_limit_exactly(cluster_url, name):
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD_KEYS, cluster_url, name, "200"], stdout=subprocess.PIPE,
                         text=True)
        for _ in range(2)
    ]
    counts = [json.loads(child.communicate(timeout=120)[0]) for child in children]
    assert all(child.returncode == 0 for child in children)
    # Ten keys spread over the cluster's slots, each asked 40 times in all: 15 admitted.
    per_key = {key: counts[0].get(key, 0) + counts[1].get(key, 0) for key in counts[0].keys() | counts[1].keys()}
    assert per_key == {f"user-{i}": 15 for i in range(10)}, per_key


def test_asyncio_acquire_shares_the_limit_with_blocking_check(redis_url, name):
    limiter = tidegate.RedisLimiter(redis_url, name, "fixed_window:20/1h", timeout=2)
    assert limiter.check("k", 5).remaining == 15

    async def main():
        return await asyncio.gather(*(limiter.acquire("k") for _ in range(40)))

    decisions = asyncio.run(main())
    assert sum(map(bool, decisions)) == 15
    assert all(isinstance(d, tidegate.Decision) for d in decisions)
    denied = limiter.check("k")
    assert not denied and 0 < denied.retry_after <= 3600


def test_peek_and_reset_go_through_redis(redis_url, name):
    limiter = tidegate.RedisLimiter(redis_url, name, "gcra:3/1m", timeout=2)
    assert limiter.reset("k") is False
    assert limiter.check("k", 3)
    assert not limiter.peek("k")
    other = tidegate.RedisLimiter(redis_url, name, "gcra:3/1m", timeout=2)
    assert not other.check("k"), "a second limiter of the same name sees the same state"
    assert limiter.reset("k") is True
    assert other.check("k")
    assert repr(limiter) == f"RedisLimiter({redis_url!r}, {name!r}, 'gcra:3/1m')"
    with pytest.raises(TypeError, match="tidegate.RedisLimiter cannot be pickled or copied"):
        pickle.dumps(limiter)


def test_a_redis_limiter_shares_limits_with_tidegate_serve(redis_url, name, tidegate_cli, tmp_path):
    port = free_port()
    config = tmp_path / "tidegate.toml"
    config.write_text(f'[store]\nurl = "{redis_url}"\ntimeout = "2s"\n\n[policies]\n{name} = "fixed_window:5/1h"\n')
    server = subprocess.Popen(
        [*tidegate_cli, "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # The server reads TIDEGATE_* variables as configuration: give it none.
        env={k: v for k, v in os.environ.items() if not k.startswith("TIDEGATE_")},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, server.stderr.read().decode()
            assert time.monotonic() < deadline, "tidegate serve did not become ready"
            time.sleep(0.1)

        limiter = tidegate.RedisLimiter(redis_url, name, "fixed_window:5/1h", timeout=2)
        assert limiter.check("alice", 3).remaining == 2

        def served():
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/check",
                data=json.dumps({"policy": name, "key": "alice"}).encode(),
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as r:
                    return r.status, json.load(r)
            except urllib.error.HTTPError as e:
                return e.code, json.load(e)

        status, body = served()
        assert (status, body["allowed"], body["limit"], body["remaining"]) == (200, True, 5, 1)
        served()
        status, body = served()
        assert (status, body["allowed"], body["remaining"]) == (429, False, 0)
        assert not limiter.check("alice"), "the server's admissions count here too"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize(
    ("on_error", "expected"),
    [("local", [True, True, False]), ("fail_open", [True, True, True]), ("fail_closed", [False, False, False])],
)
def test_when_redis_does_not_answer_the_failure_policy_decides(on_error, expected):
    url = f"redis://127.0.0.1:{free_port()}"  # nothing listens there
    limiter = tidegate.RedisLimiter(url, "down", "fixed_window:2/1h", on_error=on_error, timeout=0.05)
    started = time.monotonic()
    assert [bool(limiter.check("k")) for _ in range(3)] == expected
    assert time.monotonic() - started < 5


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match=r'^`on_error` must be "local", "fail_open" or "fail_closed", got "sometimes"$'):
        tidegate.RedisLimiter("redis://127.0.0.1:1", "n", "gcra:1/1s", on_error="sometimes")
    with pytest.raises(ValueError, match=r"^`url`: .*must start with redis://, rediss:// \(TLS\) or redis\+sentinel://"):
        tidegate.RedisLimiter("http://127.0.0.1:1", "n", "gcra:1/1s")
    with pytest.raises(tidegate.PolicyError, match=r"`name` `a:b` must be non-empty and free of"):
        tidegate.RedisLimiter("redis://127.0.0.1:1", "a:b", "gcra:1/1s")
    with pytest.raises(tidegate.PolicyError):
        tidegate.RedisLimiter("redis://127.0.0.1:1", "n", "gcra:0/1s")
    with pytest.raises(tidegate.CostError, match="the policy admits at most 1 at once"):
        tidegate.RedisLimiter("redis://127.0.0.1:1", "n", "gcra:1/1s").check("k", 2)


def test_a_check_waiting_on_a_stalled_redis_releases_the_gil_and_keeps_to_its_timeout(tmp_path):
    server, url = start_redis(tmp_path)
    try:
        limiter = tidegate.RedisLimiter(url, "stalled", "fixed_window:1/1h", on_error="local", timeout=0.5)
        assert limiter.check("warm-up") and not limiter.check("warm-up")
        server.send_signal(signal.SIGSTOP)
        result = {}

        def blocked():
            started = time.monotonic()
            result["decision"] = limiter.check("k")
            result["waited"] = time.monotonic() - started

        thread = threading.Thread(target=blocked)
        thread.start()
        spins = 0
        while thread.is_alive():
            spins += 1
        thread.join()
        assert 0.4 <= result["waited"] < 2.0, result
        assert result["decision"].allowed, "the local limiter answered"
        assert spins > 10_000, "this thread ran while the other one waited on Redis"
    finally:
        server.send_signal(signal.SIGCONT)
        server.terminate()
        server.wait(timeout=10)
