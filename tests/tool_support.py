"""Helpers for the tests: a keyspace of their own, and two ways to run a tool as a person would, with its exit
status and its output: `run_tool`, a subprocess, and `run_in_process`, the same entry point run as `__main__` in
this process, for the unit tier's many checks of arguments and settings. The app as a subprocess is
app.launcher.running_app."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import runpy
import subprocess
import sys
import traceback
from collections.abc import Iterator
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


def run_in_process(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`python *args` as `run_tool` runs it, but in this process: `-m module` through runpy.run_module and a script
    through runpy.run_path, both as `__main__`, so the tool's own entry point runs (its `if __name__ ==
    "__main__"` line, its parser, `run_cli`'s one-line errors and exit status), with `env` as the whole environment,
    `stdin` as standard input and standard output and error captured. What it skips is a new interpreter and its
    imports (half a second each, the database driver above all); `tests/unit/test_cli.py` starts every entry
    point once as a real process too. Only for runs that stop at their arguments or settings: a tool that got
    further would run inside the test's process."""
    if args[0] == "-m":
        argv0, rest = args[1], args[2:]

        def run() -> object:
            # runpy runs a fresh copy of the module; one imported already (for its parser) would only be warned about.
            imported = {name: sys.modules.pop(name) for name in (argv0, f"{argv0}.__main__") if _is_module(name)}
            try:
                return runpy.run_module(argv0, run_name="__main__", alter_sys=True)
            finally:
                sys.modules.update(imported)
    else:
        argv0, rest = str(PROJECT_DIR / args[0]), args[1:]

        def run() -> object:
            return runpy.run_path(argv0, run_name="__main__")

    out, err = io.StringIO(), io.StringIO()
    status = 0
    with _environment(env), _argv([argv0, *rest]), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        sys.stdin = io.StringIO(stdin)
        try:
            run()
        except SystemExit as stop:
            # As the interpreter answers sys.exit(): None is 0, a number is the status, anything else is printed.
            if stop.code is None or isinstance(stop.code, int):
                status = stop.code or 0
            else:
                print(stop.code, file=sys.stderr)
                status = 1
        except BaseException:
            traceback.print_exc()
            status = 1
        finally:
            sys.stdin = sys.__stdin__
    return subprocess.CompletedProcess(["python", *args], status, out.getvalue(), err.getvalue())


def _is_module(name: str) -> bool:
    """Imported, and a module rather than a package (a package stays imported: it is what the module runs in)."""
    return name in sys.modules and not hasattr(sys.modules[name], "__path__")


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved
