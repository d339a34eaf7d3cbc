"""`python -m bench --before REV`: the app of another git revision measured in the same run as this one's.

REV is checked out into a temporary `git worktree` (removed afterwards, never committed) and its own
`python -m app` runs from there, with PYTHONPATH set to that folder, against a keyspace of its own that its
own schema creates. Both apps are then driven over HTTP the same way, one after the other at each
concurrency: reserve, cancel and move on distinct books, and the first page of the catalogue (with the books those
rows made, many of them held), beside the same bare-LWT baseline. Requests name neither `reservation_id` (which
older revisions accept) nor `idempotency_key` (which the new one wants), except in one row of this revision's app
that prices the key. Every set-up (books, readers, the
reservations to cancel or move) is made over HTTP before the clock starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from app import launcher
from app.db import Database
from app.settings import Settings
from bench.measure import Figures
from bench.workloads import FIRST_READER, PAGE_SIZE, READERS, Workloads, _http_outcome
from toolkit.cli import CliError, bearer, run_bounded

PROJECT_DIR = Path(__file__).resolve().parents[1]
GROUP = "revisions"
SETUP_CONCURRENCY = 32
APP_START_TIMEOUT = 180
OPERATIONS = ("reserve", "cancel", "move", "catalogue")

Progress = Callable[[str], None]


# -- the other revision's code and app ------------------------------------------------------------
def _git(*args: str) -> str:
    result = subprocess.run(["git", "-C", str(PROJECT_DIR), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise CliError(f"git {' '.join(args)}: {result.stderr.strip().splitlines()[-1:] or result.returncode}")
    return result.stdout.strip()


@contextlib.contextmanager
def worktree(revision: str) -> Iterator[tuple[Path, str]]:
    """REV checked out, detached, in a temporary folder; yields the folder and the full commit id."""
    commit = _git("rev-parse", "--verify", f"{revision}^{{commit}}")
    folder = Path(tempfile.mkdtemp(prefix=f"bench-before-{commit[:8]}-"))
    _git("worktree", "add", "--detach", "--force", str(folder), commit)
    try:
        yield folder, commit
    finally:
        with contextlib.suppress(CliError):
            _git("worktree", "remove", "--force", str(folder))
        with contextlib.suppress(CliError):
            _git("worktree", "prune")


def _app_env(folder: Path, settings: Settings) -> dict[str, str]:
    """The environment the code in `folder` runs with: its own keyspace, its own modules first."""
    return {
        **os.environ,
        "CASSANDRA_HOSTS": ",".join(settings.cassandra_hosts),
        "CASSANDRA_KEYSPACE": settings.keyspace,
        "CASSANDRA_REPLICATION": str(settings.replication_factor),
        "SEED_DEMO_DATA": "0",
        "PYTHONPATH": str(folder),
    }


@contextlib.contextmanager
def app_of(folder: Path, settings: Settings, log_path: Path) -> Iterator[str]:
    """`python -m app` of the code in `folder` (cwd and PYTHONPATH), on a free port; yields its URL once /health
    answers. Its schema goes to `settings.keyspace`, which only this process creates."""
    port = launcher.free_port()
    env = {**_app_env(folder, settings), "PORT": str(port)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app"], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            launcher._wait_healthy(process, url, log_path, APP_START_TIMEOUT, "python -m app")
        except RuntimeError as error:
            raise CliError(f"the app of {folder} did not start: {str(error).splitlines()[0]}; see {log_path}") from None
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Run by the other revision's own Python code: its sessions table and how a session is bound to a card are its own
# (a revision before issue 20 has no card generation; today's code could not write its rows, nor it ours).
_ISSUE_TOKENS = """
import asyncio, json, sys
from app.db import Database
from app.repository import Library
from app.settings import Settings

async def main():
    db = await Database.connect(Settings.from_env())
    try:
        library = Library(db)
        out = {"staff": await library.session_for_tool("Bench"), "readers": {}}
        if len(sys.argv) > 1:
            first, count = int(sys.argv[1]), int(sys.argv[2])
            tokens = await library.sessions_for_readers(list(range(first, first + count)))
            out["readers"] = {str(user): token for user, token in tokens.items()}
        print(json.dumps(out))
    finally:
        db.close()

asyncio.run(main())
"""


async def signed_in(side: Side, folder: Path, settings: Settings, *, readers: bool) -> None:
    """Tokens for `side`'s app, issued in its own keyspace by its own code (`folder`), if its schema has sessions (a
    revision with sign-in); an older revision's app needs none and gets none. `readers`: each bench reader's too,
    which needs their cards made first (a session is bound to its card), else the librarian's only."""
    db = await Database.connect(settings)
    try:
        tables = await db.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = 'sessions'",
            [settings.keyspace],
        )
    finally:
        db.close()
    if not tables.rows:
        return
    args = [str(FIRST_READER), str(READERS)] if readers else []
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _ISSUE_TOKENS, *args],
        cwd=folder,
        env=_app_env(folder, settings),
        capture_output=True,
        text=True,
        timeout=APP_START_TIMEOUT,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CliError(f"could not sign the bench in to the app of {folder}: {last}")
    tokens = json.loads(done.stdout)
    side.headers = bearer(tokens["staff"])
    if readers:
        side.reader_headers = {int(user): bearer(token) for user, token in tokens["readers"].items()}


async def empty_or_absent(db: Database, keyspace: str) -> None:
    """The keyspace emptied if a previous run left it (its tables are that revision's, as its name says)."""
    rows = await db.execute_raw(
        f"SELECT table_name FROM system_schema.tables WHERE keyspace_name = '{keyspace}'"  # noqa: S608
    )
    for row in rows.rows:
        await db.execute_raw(f"TRUNCATE {keyspace}.{row.table_name}")


# -- one app driven over HTTP ---------------------------------------------------------------------
@dataclass
class Side:
    label: str  # before / after
    url: str
    work: Workloads
    # An app with sign-in takes tokens issued in its own keyspace: the librarian's for set-up, each reader's for
    # their own requests. Empty: the workloads' own (this revision's), which an app without sign-in ignores.
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    reader_headers: dict[int, dict[str, str]] = dataclasses.field(default_factory=dict)

    def as_reader(self, user: int) -> dict[str, str] | None:
        return self.reader_headers.get(user) or self.work.reader_headers.get(user)

    async def books(self, count: int) -> list[UUID]:
        ids = [uuid4() for _ in range(count)]

        async def make(b: UUID) -> None:
            body = {"book_id": str(b), "title": f"Bench book {b.hex[:8]}", "author": "Bench Author"}
            await self._post("/api/books", {**body, "genre": "bench", "published_year": 2000})

        await run_bounded(ids, make, SETUP_CONCURRENCY)
        return ids

    async def readers(self) -> None:
        async def make(u: int) -> None:
            await self._post(
                "/api/users", {"user_id": u, "name": f"Bench reader {u}", "email": f"reader{u}@bench.test"}
            )

        await run_bounded(range(FIRST_READER, FIRST_READER + READERS), make, SETUP_CONCURRENCY)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.work.http().post(f"{self.url}{path}", json=body, headers=self.headers or None) as response:
            if response.status >= 300:
                raise CliError(f"{self.label} app: POST {path} answered {response.status}: {await response.text()}")
            return await response.json()

    async def reserved(self, books: list[UUID]) -> list[dict[str, Any]]:
        """A reservation of each book, each by the bench's readers in turn, made before the clock starts."""
        made: list[dict[str, Any]] = [{} for _ in books]

        async def reserve(i: int) -> None:
            made[i] = await self._post("/api/reservations", {"book_id": str(books[i]), "user_id": self.work._reader(i)})

        await run_bounded(range(len(books)), reserve, SETUP_CONCURRENCY)
        return made

    async def reserve(self, book: UUID, user: int, key: str | None = None) -> str:
        body: dict[str, Any] = {"book_id": str(book), "user_id": user}
        if key is not None:
            body["idempotency_key"] = key
        headers = self.as_reader(user)
        async with self.work.http().post(f"{self.url}/api/reservations", json=body, headers=headers) as response:
            await response.read()
            return _http_outcome(response.status)

    async def cancel(self, r: dict[str, Any]) -> str:
        url = f"{self.url}/api/reservations/{r['reservation_id']}"
        headers = self.as_reader(r["user_id"])
        async with self.work.http().delete(url, params={"user_id": str(r["user_id"])}, headers=headers) as response:
            await response.read()
            return _http_outcome(response.status)

    async def catalogue(self) -> str:
        """The first page of the catalogue, with each book's availability, as the bench's usual row reads it: signed in
        as the librarian (this side's own token)."""
        params = {"page_size": str(PAGE_SIZE)}
        headers = self.headers or None
        async with self.work.http().get(f"{self.url}/api/books", params=params, headers=headers) as response:
            await response.read()
            return _http_outcome(response.status)

    async def move(self, r: dict[str, Any], to: UUID) -> str:
        url = f"{self.url}/api/reservations/{r['reservation_id']}"
        body = {"user_id": r["user_id"], "book_id": str(to)}
        headers = self.as_reader(r["user_id"])
        async with self.work.http().patch(url, json=body, headers=headers) as response:
            await response.read()
            return _http_outcome(response.status)


async def _rows_of(side: Side, operation: str, concurrency: int, n: int) -> list[Figures]:
    work = side.work

    async def row(name: str, op: Callable[[int], Awaitable[str]]) -> Figures:
        return await work._row(GROUP, f"{side.label}: {name}", "http", op, concurrency=concurrency)

    if operation == "reserve":
        books = await side.books(n)
        out = [await row("reserve (http)", lambda i: side.reserve(books[i], work._reader(i)))]
        if side.label == "after":
            books = await side.books(n)
            keys = [uuid4().hex for _ in range(n)]
            out.append(await row("reserve+key (http)", lambda i: side.reserve(books[i], work._reader(i), keys[i])))
        return out
    if operation == "catalogue":  # the books the rows before made, many of them held: the same on both sides
        return [await row("catalogue (http)", lambda i: side.catalogue())]
    if operation == "cancel":
        made = await side.reserved(await side.books(n))
        return [await row("cancel (http)", lambda i: side.cancel(made[i]))]
    books, targets = await side.books(n), await side.books(n)
    made = await side.reserved(books)
    return [await row("move (http)", lambda i: side.move(made[i], targets[i]))]


def summary(results: list[Figures]) -> list[dict[str, Any]]:
    """after against before, operation by operation, at each concurrency."""
    by_name = {(r.name, r.concurrency): r for r in results}
    out = []
    for concurrency in sorted({r.concurrency for r in results}):
        base = by_name.get(("lwt baseline", concurrency))
        pairs = [(op, f"{op} (http)", f"{op} (http)") for op in OPERATIONS]
        pairs.append(("reserve+key", "reserve (http)", "reserve+key (http)"))
        for label, before_name, after_name in pairs:
            before, after = (
                by_name.get((f"before: {before_name}", concurrency)),
                by_name.get((f"after: {after_name}", concurrency)),
            )
            if before is None or after is None:
                continue
            out.append(
                {
                    "operation": label,
                    "concurrency": concurrency,
                    "baseline_ops_s": base.throughput if base else None,
                    "before_ops_s": before.throughput,
                    "after_ops_s": after.throughput,
                    "throughput_after_over_before": round(after.throughput / before.throughput, 3)
                    if before.throughput
                    else None,
                    "before_p50_ms": before.p50_ms,
                    "after_p50_ms": after.p50_ms,
                    "p50_after_over_before": round(after.p50_ms / before.p50_ms, 3) if before.p50_ms else None,
                    "before_p99_ms": before.p99_ms,
                    "after_p99_ms": after.p99_ms,
                    "before_errors": before.errors,
                    "after_errors": after.errors,
                }
            )
    return out


def render(before_after: dict[str, Any]) -> str:
    lines = [
        f"before = {before_after['revision']} ({before_after['commit'][:10]}), after = this working tree "
        f"({before_after['after_commit'][:10]}{', app/ modified' if before_after['after_app_modified'] else ''}); "
        "reserve+key: after with an idempotency key, against before without",
        f"  {'operation':<12} {'c':>3} {'lwt ops/s':>10} {'before ops/s':>13} {'after ops/s':>12} {'after/before':>13} "
        f"{'p50 before':>11} {'p50 after':>10} {'p50 a/b':>8}",
    ]
    for r in before_after["rows"]:
        base = "-" if r["baseline_ops_s"] is None else f"{r['baseline_ops_s']:.1f}"
        ratio = r["throughput_after_over_before"]
        p50_ratio = r["p50_after_over_before"]
        lines.append(
            f"  {r['operation']:<12} {r['concurrency']:>3} {base:>10} {r['before_ops_s']:>13.1f} "
            f"{r['after_ops_s']:>12.1f} {'-' if ratio is None else f'{ratio:.2f}':>13} {r['before_p50_ms']:>11.2f} "
            f"{r['after_p50_ms']:>10.2f} {'-' if p50_ratio is None else f'{p50_ratio:.2f}':>8}"
        )
    return "\n".join(lines)


async def compare(
    revision: str,
    concurrencies: list[int],
    settings: Settings,
    db: Database,
    work: Workloads,
    url: str,
    logs: Path,
    progress: Progress,
) -> dict[str, Any]:
    """Both apps, every operation at every concurrency; which app goes first alternates with the concurrency, so
    neither always meets the cluster a little warmer or fuller."""
    first = len(work.results)
    with worktree(revision) as (folder, commit):
        keyspace = f"{settings.keyspace}_before_{commit[:8]}"
        await empty_or_absent(db, keyspace)
        before_settings = dataclasses.replace(settings, keyspace=keyspace)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        log_path = logs / f"app-before-{commit[:8]}-{stamp}.log"
        progress(f"before: {revision} ({commit[:10]}) from {folder}, keyspace {keyspace}, log {log_path}")
        with app_of(folder, before_settings, log_path) as before_url:
            before, after = Side("before", before_url, work), Side("after", url, work)
            await signed_in(before, folder, before_settings, readers=False)
            await before.readers()
            # The readers' tokens once their cards exist: a session is bound to its card.
            await signed_in(before, folder, before_settings, readers=True)
            n = work.ops + work.warmup
            for k, concurrency in enumerate(concurrencies):
                progress(f"before/after, concurrency {concurrency}")
                keys = [uuid4() for _ in range(n)]

                def lwt(i: int, keys: list[UUID] = keys) -> Any:
                    return work._bare_lwt(keys[i], i)

                await work._row(GROUP, "lwt baseline", "driver", lwt, concurrency=concurrency, baseline=True)
                for operation in OPERATIONS:
                    for side in (before, after) if k % 2 == 0 else (after, before):
                        await _rows_of(side, operation, concurrency, n)
    result = {
        "revision": revision,
        "commit": commit,
        "keyspace": keyspace,
        # "after" is this working tree: its commit, and whether app/ differed from it when measured.
        "after_commit": _git("rev-parse", "HEAD"),
        "after_app_modified": bool(_git("status", "--porcelain", "--", "app")),
        "after_app_diff_sha256": hashlib.sha256(_git("diff", "HEAD", "--", "app").encode()).hexdigest()[:16],
        "rows": summary(work.results[first:]),
    }
    progress(render(result))
    return result
