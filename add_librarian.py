"""python add_librarian.py --name NAME --email EMAIL [--card N]: make a librarian's card, the first one included.

The password is asked for twice on the terminal (never an argument, which `ps` and shell histories would show),
or read from the first line of standard input when there is no terminal (`--password-stdin`), for scripts.
Only its argon2 hash is stored. An existing card is never overwritten: use the staff screens to change one.
"""

from __future__ import annotations

import getpass
import sys

from app.models import Conflict, InvalidInput, Role
from app.repository import Library
from app.rules import FIRST_CARD, MAX_CARD, MIN_STAFF_PIN, check_email, check_pin, check_text
from toolkit.arguments import ArgumentParser, number
from toolkit.cli import CliError, add_database_arguments, keyspace_exists, open_database, run_cli, settings_from


def parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python add_librarian.py",
        description=(
            "Add a librarian: a card that signs in to the staff screens and may act for any reader. The password "
            f"({MIN_STAFF_PIN} or more characters) is asked for on the terminal, or read from standard input with "
            "--password-stdin; only its hash is stored. Prints the card number to sign in with."
        ),
        epilog="Cassandra is named by $CASSANDRA_HOSTS and $CASSANDRA_KEYSPACE, as for the app; the keyspace must "
        "exist (start the app once). Exit status: 0 added, 2 bad input, 1 the card exists or Cassandra failed.",
    )
    p.add_argument("--name", required=True, help="the librarian's name, as the staff log shows it")
    p.add_argument("--email", required=True, help="the librarian's e-mail address")
    p.add_argument(
        "--card",
        type=number(int, FIRST_CARD, MAX_CARD),
        help="the card number to give (default: a free seven-digit number)",
    )
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of standard input"
    )
    add_database_arguments(p)
    return p


def read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        if not from_stdin:
            raise CliError("no terminal to ask for the password on: pass --password-stdin and pipe it in")
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password for the new librarian: ")
    if getpass.getpass("The same password again: ") != first:
        raise CliError("the two passwords differ; nothing was added")
    return first


def main_parse(argv: list[str] | None) -> tuple[object, str]:
    """The arguments and the password, checked by the service's own rules before Cassandra is looked for: a bad
    name, e-mail or password is a usage error (exit 2)."""
    command_line = parser()
    args = command_line.parse_args(argv)
    password = read_password(args.password_stdin)
    try:
        check_text(args.name, "name")
        check_email(args.email, "email")
        check_pin(password, staff=True, field="password")
    except InvalidInput as error:
        command_line.error(str(error))
    return args, password


async def main(argv: list[str] | None = None) -> int:
    args, password = main_parse(argv)
    settings = settings_from(args)  # type: ignore[arg-type]
    async with open_database(settings) as db:
        if not keyspace_exists(db, settings.keyspace):
            raise CliError(f"keyspace {settings.keyspace} does not exist: start the app once to create it")
        try:
            user = await Library(db).create_user(
                args.name,  # type: ignore[attr-defined]
                args.email,  # type: ignore[attr-defined]
                args.card,  # type: ignore[attr-defined]
                role=Role.LIBRARIAN,
                pin=password,
            )
        except Conflict as error:
            raise CliError(f"{error}; nothing was added") from error
    print(f"added librarian {user.name}: sign in with card {user.user_id} and the password")
    return 0


if __name__ == "__main__":
    run_cli(main)
