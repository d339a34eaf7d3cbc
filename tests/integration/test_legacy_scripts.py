"""The earlier system's scripts, as they were written: only against its contract (../shared/README.md). Against
an app of its own, seeded from a catalogue file in the earlier system's format, a stress script reserves for
readers 0, 1, 2, 3 and 132, counts the exact success sentence, and a clean-up script fetches GET
/api/reservations once and removes each entry. Every reservation made is counted, no request is refused for its
reader, one clean-up run leaves nothing, and the audit is clean."""

from __future__ import annotations

import asyncio
import csv
import random
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp
from tool_support import fresh_keyspace, run_tool, tool_env

from app.repository import Library
from app.settings import Settings

KEYSPACE = "test_legacy_scripts"
BOOKS = 150
READERS = (0, 1, 2, 3, 132)  # the card numbers the earlier system's own scripts used


def catalogue_file(path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["book_id", "title", "author", "genre", "published_year"])
        for i in range(BOOKS):
            writer.writerow([uuid.uuid4(), f"Old Title {i}", f"Old Author {i % 7}", "Fiction", 1950 + i % 60])


async def stress_script(url: str, requests: int) -> tuple[int, int, list[str]]:
    """What the earlier system's stress script did: reserve random books of the first page for random readers,
    counting "Reservation made successfully."; returns (made, refused as taken, any other answer)."""
    rng = random.Random(3)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/api/books") as response:
            books = await response.json()
        assert len(books) == 100  # the earlier system's first page

        workers = asyncio.Semaphore(16)  # its script ran a pool of workers, not every request at once

        async def one(_: int) -> str:
            body = {"book_id": rng.choice(books)["book_id"], "user_id": rng.choice(READERS)}
            async with workers, http.post(f"{url}/make_reservation", json=body) as response:
                answer = await response.json()
            return answer.get("message") or answer.get("error")

        answers = await asyncio.gather(*[one(i) for i in range(requests)])
    made = answers.count("Reservation made successfully.")
    taken = answers.count("Book is already reserved.")
    return made, taken, [a for a in answers if a not in ("Reservation made successfully.", "Book is already reserved.")]


async def clean_up_script(url: str) -> int:
    """What the earlier system's clean-up script did: fetch every reservation once, remove each."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/api/reservations") as response:
            reservations = await response.json()
        removed = 0
        for r in reservations:
            body = {"book_id": r["book_id"], "user_id": r["user_id"]}
            async with http.post(f"{url}/remove_reservation", json=body) as response:
                removed += (await response.json()).get("message") == "Reservation removed successfully."
    return removed


async def test_the_earlier_systems_scripts_run_unchanged(
    settings: Settings, cassandra_hosts: list[str], spawn_app: Callable[..., str], tmp_path: Path
) -> None:
    db = await fresh_keyspace(settings, KEYSPACE)
    try:
        path = tmp_path / "catalogue.csv"
        catalogue_file(path)
        seeded = await asyncio.to_thread(
            run_tool, ["-m", "seeder", "--csv", str(path), "--users", "0"], tool_env(cassandra_hosts, KEYSPACE)
        )
        assert seeded.returncode == 0, seeded.stderr
        url = await asyncio.to_thread(spawn_app, KEYSPACE)

        made, taken, other = await stress_script(url, 300)
        print(f"\nthe old stress script: {made} made, {taken} already reserved, other answers: {other}")
        assert other == [] and made + taken == 300 and made > 50
        async with aiohttp.ClientSession() as http, http.get(f"{url}/api/reservations") as response:
            listed = await response.json()
        assert len(listed) == made  # every reservation it made, none of a first page only

        assert await clean_up_script(url) == made
        async with aiohttp.ClientSession() as http, http.get(f"{url}/api/reservations") as response:
            assert await response.json() == []
        report = await Library(db).audit()
        assert report.clean and report.locks == 0, report.violations
    finally:
        db.close()
