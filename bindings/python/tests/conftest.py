"""Shared fixtures: the `tidegate` command the replay comparisons run."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def tidegate_cli():
    """The command line of the real `tidegate` binary: $PYTEST_TIDEGATE_BIN, the workspace's
    target/debug/tidegate, `tidegate` on PATH, or `cargo run` as a last resort."""
    if os.environ.get("PYTEST_TIDEGATE_BIN"):
        return [os.environ["PYTEST_TIDEGATE_BIN"]]
    built = REPO / "target" / "debug" / "tidegate"
    if built.exists():
        return [str(built)]
    on_path = shutil.which("tidegate")
    if on_path:
        return [on_path]
    return ["cargo", "run", "-q", "--manifest-path", str(REPO / "Cargo.toml"), "-p", "tidegate-cli", "--"]


@pytest.fixture
def run_replay(tidegate_cli, tmp_path):
    """Runs `tidegate replay --policy P --input FILE` on events; returns the completed process."""

    def run(policy, events):
        lines = "".join(
            '{"t_ms": %d, "key": "%s", "cost": %d}\n' % (t_ms, key, cost) for t_ms, key, cost in events
        )
        path = tmp_path / "traffic.jsonl"
        path.write_text(lines)
        return subprocess.run(
            [*tidegate_cli, "replay", "--policy", policy, "--input", str(path)],
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run
