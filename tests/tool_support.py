"""Helpers for the tests of the command-line tools: a keyspace of their own, the app as a subprocess, and a
way to run a tool as a person would (a subprocess, its exit status and its output)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from app.db import Database
from app.schema import apply_schema
from app.settings import Settings

PROJECT_DIR = Path(__file__).resolve().parents[1]
TABLES = ("books", "users", "reservation_by_book_id", "reservations", "user_reservations", "book_reservations")
APP_START_TIMEOUT = 180


async def fresh_keyspace(settings: Settings, keyspace: str) -> Database:
    """A connection to `keyspace`, created if missing and emptied. Kept, never dropped, for the reason
    tests/conftest.py gives."""
    own = dataclasses.replace(settings, keyspace=keyspace)
    db = await Database.connect(own)
    await apply_schema(db, own)
    for table in TABLES:
        await db.execute_raw(f"TRUNCATE {keyspace}.{table}")
    return db


def tool_env(hosts: list[str], keyspace: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(CASSANDRA_HOSTS=",".join(hosts), CASSANDRA_KEYSPACE=keyspace, PYTHONPATH=str(PROJECT_DIR), **extra)
    env.pop("CASSANDRA_REPLICATION", None)
    return env


def run_tool(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(hosts: list[str], keyspace: str, log_path: Path) -> Iterator[str]:
    """`python -m app` on a free port against `keyspace`; yields its URL once /health answers."""
    port = free_port()
    env = tool_env(hosts, keyspace, PORT=str(port), SEED_DEMO_DATA="0")
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app"], cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + APP_START_TIMEOUT
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the app exited with {process.returncode}: {log_path.read_text()[-2000:]}")
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the app did not answer within {APP_START_TIMEOUT}s")
                time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
