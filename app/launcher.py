"""`python -m app` as a process of its own, for the tests and the benchmarks that use the service as its
users do: over HTTP, from outside."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.rules import replication_for

PROJECT_DIR = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(
    hosts: list[str],
    keyspace: str,
    log_path: Path,
    **options: Any,
) -> Iterator[str]:
    """`running_app_process`, for callers that need only the URL."""
    with running_app_process(hosts, keyspace, log_path, **options) as (url, _process):
        yield url


@contextlib.contextmanager
def running_app_process(
    hosts: list[str],
    keyspace: str,
    log_path: Path,
    *,
    seed_demo_data: bool = False,
    timeout: float = 180,
    stop_timeout: float = 30,
    extra_env: dict[str, str] | None = None,
    python_args: list[str] | None = None,
    module: tuple[str, ...] = ("app",),
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Starts the app on a free port against `keyspace` (which should exist: two processes creating the same
    tables at once can give Cassandra two ids for one table), yields its URL once /health answers 200, and
    stops it as Ctrl-C would. `python_args` go before `-m app` (e.g. a profiler: `-m pyinstrument ...`); `module` is
    what runs instead of `app`, with its arguments (the bench's naive peer, which answers /health too)."""
    port = free_port()
    env = {
        # No background repair unless asked for (extra_env, or the caller's environment): a test or a bench run checks
        # or measures what its requests do, and a repair beside them is a fault it names (stress_test.py
        # --repair-every, tests/integration/test_repair_loop.py).
        "REPAIR_EVERY_SECONDS": "0",
        **os.environ,
        "CASSANDRA_HOSTS": ",".join(hosts),
        "CASSANDRA_KEYSPACE": keyspace,
        "CASSANDRA_REPLICATION": str(replication_for(hosts)),
        "SEED_DEMO_DATA": "1" if seed_demo_data else "0",
        "PORT": str(port),
        "PYTHONPATH": str(PROJECT_DIR),
        **(extra_env or {}),
    }
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, *(python_args or []), "-m", *module],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(process, url, log_path, timeout, f"python -m {module[0]}")
        yield url, process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(process: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float, name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{name} did not become healthy in {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")
