"""Helpers for the tests: a keyspace of their own, and a way to run a tool as a person would (a subprocess, its
exit status and its output). The app as a subprocess is app.launcher.running_app."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from app.db import Database
from app.schema import DATA_TABLES, apply_schema
from app.settings import Settings

PROJECT_DIR = Path(__file__).resolve().parents[1]


async def fresh_keyspace(settings: Settings, keyspace: str) -> Database:
    """A connection to `keyspace`, created if missing and emptied. Kept, never dropped, for the reason
    tests/integration/conftest.py gives."""
    own = dataclasses.replace(settings, keyspace=keyspace)
    db = await Database.connect(own)
    await apply_schema(db, own)
    for table in DATA_TABLES:
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
