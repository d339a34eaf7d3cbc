"""The bench's parts that need no Cassandra: the profile summary, and bad options as one line with exit status 2
(tests/integration/test_bench.py runs the bench itself at a tiny size)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tool_support import run_tool, tool_env

KEYSPACE = "test_bench"


def test_the_profile_summary_leaves_idle_time_out(tmp_path: Path) -> None:
    from pyinstrument import Profiler

    from bench.profile import top_costs

    profiler = Profiler(interval=0.001)
    profiler.start()
    sum(i * i for i in range(300_000))
    profiler.stop()
    session_file = tmp_path / "s.pyisession"
    profiler.last_session.save(str(session_file))
    summary = top_costs(session_file, tmp_path)
    assert summary["busy_s"] > 0 and summary["self"]
    assert Path(summary["text"]).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "1,x"], "'x' is not a whole number"),
        (["--ops", "0"], "0 must be at least 1"),
        (["--nodes", "both"], "--nodes both needs the local clusters"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str) -> None:
    env = tool_env(["127.0.0.1"], KEYSPACE)
    result = run_tool(["-m", "bench", *args], env, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
