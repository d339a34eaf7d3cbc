"""python -m seeder: create the schema if missing, then fill books and readers."""

from __future__ import annotations

import sys
from pathlib import Path

from app.demo_data import DEFAULT_SEED
from app.repository import Library
from app.rules import HANDED_OUT_CARDS
from app.schema import apply_schema
from seeder.catalogue_csv import MAX_ERRORS_SHOWN, CatalogueError, read_catalogue
from seeder.load import DEFAULT_CONCURRENCY, seed
from toolkit.arguments import ArgumentParser, number
from toolkit.cli import CliError, add_database_arguments, open_database, run_cli, settings_from

DEFAULT_BOOKS = 1000
DEFAULT_USERS = 100


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m seeder",
        description=(
            "Create the schema if it is missing, then fill the catalogue and the readers with made-up data "
            "(the same data for the same --seed) or with a catalogue CSV file. Running it twice duplicates "
            "nothing: rows are written under ids derived from the seed or taken from the file."
        ),
        epilog="Cassandra is named by $CASSANDRA_HOSTS, $CASSANDRA_KEYSPACE, $CASSANDRA_REPLICATION, as for the app.",
    )
    p.add_argument(
        "--books", type=number(int, 0), help=f"made-up books to write (default {DEFAULT_BOOKS}; not with --csv)"
    )
    p.add_argument(
        # Seeded cards stay below the ones the service hands out: seeding upserts, and must not rewrite those readers.
        "--users",
        type=number(int, 0, HANDED_OUT_CARDS[0] - 1),
        default=DEFAULT_USERS,
        help=f"readers 1..M (default {DEFAULT_USERS}; at most {HANDED_OUT_CARDS[0] - 1})",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    p.add_argument(
        "--csv",
        type=Path,
        metavar="FILE",
        help="import this catalogue (header book_id,title,author,genre,published_year) instead of made-up books",
    )
    p.add_argument(
        "--concurrency",
        type=number(int, 1, 1024),
        default=DEFAULT_CONCURRENCY,
        help=f"writes in flight at once (default {DEFAULT_CONCURRENCY})",
    )
    add_database_arguments(p)
    return p


async def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.csv is not None and args.books is not None:
        raise CliError("give either --books or --csv, not both")
    catalogue = None
    if args.csv is not None:
        # The whole file is checked before connecting: a bad file must not import half of itself.
        try:
            catalogue = read_catalogue(args.csv)
        except CatalogueError as error:
            for problem in error.problems[:MAX_ERRORS_SHOWN]:
                print(f"error: {problem}", file=sys.stderr)
            if len(error.problems) > MAX_ERRORS_SHOWN:
                print(f"error: ... and {len(error.problems) - MAX_ERRORS_SHOWN} more problems", file=sys.stderr)
            raise CliError(f"{args.csv}: nothing was imported") from None
    settings = settings_from(args)
    async with open_database(settings) as db:
        await apply_schema(db, settings)
        print(
            f"schema ready: keyspace {settings.keyspace} (replication {settings.replication_factor}) "
            f"on {','.join(settings.cassandra_hosts)}",
            file=sys.stderr,
        )
        result = await seed(
            Library(db),
            books=DEFAULT_BOOKS if args.books is None else args.books,
            users=args.users,
            seed=args.seed,
            catalogue=catalogue,
            concurrency=args.concurrency,
            show_progress=True,
        )
    print(result.summary(settings.keyspace))
    return 0


if __name__ == "__main__":
    run_cli(main)
