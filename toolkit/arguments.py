"""The command line of every tool, `python -m app` and `python -m cluster` included: a usage error is one line on
stderr and exit status 2, never a traceback nor a screenful of usage.

Only the standard library here, so that `python -m cluster` (which must not need the database driver) and
`python -m app` use it without loading the tools' database code (toolkit.cli).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

# argparse's status for a usage error, and the tools' for any input they cannot work with (toolkit.cli.EXIT_ERROR).
USAGE_ERROR = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, but a usage error (an unknown option, a bad value, a missing argument) prints one line,
    `<prog>: error: <what>; see `<prog> --help``, instead of the usage block and the error. The
    subcommands' parsers are of this class too (argparse makes them of the parent's class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def number(kind: type[int] | type[float], minimum: float, maximum: float | None = None) -> Callable[[str], Any]:
    """An argparse `type` for a whole number (`int`) or a number of seconds (`float`) within bounds, whose
    rejection argparse prints as a one-line usage error."""
    noun = "whole number" if kind is int else "number of seconds"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {noun}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise argparse.ArgumentTypeError(f"{value} must be {bounds}")
        return value

    return parse
