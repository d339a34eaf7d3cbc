"""Every command line of the project, without Cassandra: `--help` answers with exit 0, says what the tool is for
and documents every option its parser defines (the options are read from the parser itself, so a new one cannot be
left out of the help), and a bad option is one line on stderr with exit status 2, never a traceback.

Each tool is started once as a person would start it, a process of its own (`test_every_entry_point_runs_as_a_
process`); the many checks of arguments and settings then run its same entry point as `__main__` in this process
(tool_support.run_in_process), which saves the half-second a new interpreter takes to import the driver.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from tool_support import PROJECT_DIR, run_in_process, run_tool, tool_env

UNREACHABLE_HOST = "127.0.0.254"
EMPTY_CLUSTER_HOME = PROJECT_DIR / "artifacts" / "test_cli_no_cluster"
# A fixed width, so that the help printed by the command and the help of the parser read here are the same text.
COLUMNS = "100"


@dataclass(frozen=True)
class Tool:
    argv: tuple[str, ...]  # what comes after `python`
    module: str  # the module whose parser() builds the command line

    def __str__(self) -> str:
        return " ".join(self.argv)


TOOLS = [
    Tool(("-m", "app"), "app.__main__"),
    Tool(("-m", "seeder"), "seeder.__main__"),
    Tool(("-m", "cluster"), "cluster.__main__"),
    Tool(("-m", "bench"), "bench.__main__"),
    Tool(("-m", "bench.streaming"), "bench.streaming"),
    Tool(("-m", "bench.report"), "bench.report"),
    Tool(("-m", "bench.naive_peer"), "bench.naive_peer"),
    Tool(("stress_test.py",), "stress_test"),
    Tool(("unreserve_all.py",), "unreserve_all"),
    Tool(("add_librarian.py",), "add_librarian"),
]


def parser_of(tool: Tool) -> argparse.ArgumentParser:
    parser = importlib.import_module(tool.module).parser()
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def commands(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """The parser and the parser of each of its subcommands (`python -m cluster up`, ...), with the words that
    select it."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*words, name))


# Every (tool, subcommand) pair, found from the parsers: each is run with --help on its own.
COMMANDS = [(tool, words) for tool in TOOLS for words, _ in commands(parser_of(tool))]


def settings_env(**settings: str) -> dict[str, str]:
    """None of these commands should get past its arguments or settings. Should one do so all the same, it finds
    no Cassandra (nothing listens on 127.0.0.254) and no local cluster to stop or start (an empty CLUSTER_HOME), so
    it fails instead of touching the databases and clusters of this machine."""
    return tool_env(
        [UNREACHABLE_HOST],
        "test_cli_unused",
        COLUMNS=COLUMNS,
        CASSANDRA_TIMEOUT="2",
        SEED_DEMO_DATA="0",
        CLUSTER_HOME=str(EMPTY_CLUSTER_HOME),
        **settings,
    )


def run(args: list[str], stdin: str = "", **settings: str) -> subprocess.CompletedProcess[str]:
    return run_in_process(args, settings_env(**settings), stdin)


def flat(text: str) -> str:
    return " ".join(text.split())


def test_every_entry_point_is_listed() -> None:
    """A new command line (a __main__.py, or a script run as __main__) must be added to TOOLS, and so tested."""
    found = set()
    for folder, subfolders, files in os.walk(PROJECT_DIR):
        # Not the tests, and not what runs leave behind (Cassandra's files, npm packages, artifacts, caches).
        subfolders[:] = [d for d in subfolders if not d.startswith((".", "_")) and d not in ("tests", "artifacts")]
        for name in files:
            path = Path(folder, name)
            if name.endswith(".py") and (
                name == "__main__.py" or re.search(r"""^if __name__ == ["']__main__["']:""", path.read_text(), re.M)
            ):
                found.add(".".join(path.relative_to(PROJECT_DIR).with_suffix("").parts))
    assert found == {tool.module for tool in TOOLS}


def test_every_entry_point_runs_as_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m app --help`, `python stress_test.py --help`...: each a process of its own, all at once, each printing
    the help of the parser the other tests examine in this process."""
    monkeypatch.setenv("COLUMNS", COLUMNS)
    with ThreadPoolExecutor(len(TOOLS)) as pool:
        results = list(pool.map(lambda tool: run_tool([*tool.argv, "--help"], settings_env(), timeout=60), TOOLS))
    for tool, result in zip(TOOLS, results, strict=True):
        assert result.returncode == 0 and result.stderr == "", (str(tool), result.stderr)
        assert result.stdout == parser_of(tool).format_help(), str(tool)


@pytest.mark.parametrize(("tool", "words"), COMMANDS, ids=[" ".join((str(t), *w)) for t, w in COMMANDS])
def test_help_documents_the_purpose_and_every_option(
    tool: Tool, words: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", COLUMNS)
    parser = dict(commands(parser_of(tool)))[words]
    result = run([*tool.argv, *words, "--help"])
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # The command prints the help of the parser examined here, not of some other one.
    assert result.stdout == parser.format_help()
    help_text = flat(result.stdout)

    assert parser.description, f"{tool} {' '.join(words)}: no description of what it is for"
    assert flat(parser.description) in help_text
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help, f"subcommand {choice.dest} has no help"
                assert choice.dest in help_text and flat(choice.help) in help_text
            continue
        name = action.option_strings or [action.metavar or action.dest]
        assert action.help and action.help != argparse.SUPPRESS, f"{tool}: {name} is undocumented"
        for option in name:
            assert str(option) in result.stdout, f"{tool}: {option} is missing from --help"
        # argparse expands %(default)s and the like; the rest of the sentence must be there as written.
        assert flat(action.help.split("%(")[0]) in help_text


@pytest.mark.parametrize(("tool", "words"), COMMANDS, ids=[" ".join((str(t), *w)) for t, w in COMMANDS])
def test_a_bad_option_is_one_line_and_exit_status_2(tool: Tool, words: tuple[str, ...]) -> None:
    result = run([*tool.argv, *words, "--no-such-option"])
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert re.fullmatch(r"python .+: error: .+; see `python .+ --help`", lines[0]), lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "seeder", "--books", "many"], "argument --books: 'many' is not a whole number"),
        (["-m", "seeder", "--concurrency", "0"], "argument --concurrency: 0 must be between 1 and 1024"),
        (["-m", "cluster", "up", "--nodes", "6"], "argument --nodes: invalid choice: 6 (choose from 1, 2, 3, 4, 5)"),
        (["-m", "cluster", "up", "--timeout", "soon"], "argument --timeout: 'soon' is not a number of seconds"),
        (["-m", "cluster", "up", "--dcs", "2", "--nodes", "3"], "--dcs 2 runs two nodes in each datacenter"),
        (["-m", "cluster", "up", "--dcs", "3"], "argument --dcs: invalid choice: 3 (choose from 1, 2)"),
        (["-m", "cluster", "stop", "9"], "argument node: 9 must be between 1 and 5"),
        (["-m", "cluster", "start", "0"], "argument node: 0 must be between 1 and 5"),
        (["-m", "cluster", "cqlsh", "6"], "argument node: 6 must be between 1 and 5"),
        (["-m", "cluster", "decommission", "6"], "argument node: 6 must be between 1 and 5"),
        (["-m", "cluster", "add", "--token", "x"], "argument --token: 'x' is not a whole number"),
        (["-m", "cluster", "add", "--node", "0"], "argument --node: 0 must be between 1 and 5"),
        (["-m", "cluster", "add", "--token", "9223372036854775808"], "argument --token: 9223372036854775808 must be"),
        (["-m", "cluster"], "the following arguments are required: COMMAND"),
        (["-m", "bench", "--ops", "0"], "argument --ops: 0 must be at least 1"),
        (["-m", "bench.streaming", "--reservations", "x"], "argument --reservations: 'x' is not a whole number"),
        (["-m", "bench.report"], "the following arguments are required: [LABEL=]FILE.json"),
        (["-m", "bench.naive_peer", "--port", "0"], "argument --port: 0 must be between 1 and 65535"),
        (["stress_test.py", "8"], "argument test: invalid choice: 8"),
        (["unreserve_all.py", "--concurrency", "2000"], "argument --concurrency: 2000 must be between 1 and 1024"),
        (["-m", "app", "extra"], "unrecognized arguments: extra"),
        (["add_librarian.py", "--email", "a@b.c"], "the following arguments are required: --name"),
        (["add_librarian.py", "--name", "A", "--email", "a@b.c", "--card", "0"], "argument --card: 0 must be between"),
    ],
)
def test_a_bad_value_is_named_in_one_line(args: list[str], message: str) -> None:
    result = run(args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr


def test_add_librarian_refuses_a_short_password_or_a_bad_email_in_one_line() -> None:
    """The service's own rules (app/rules.py), checked before Cassandra is looked for."""
    for args, stdin, message in (
        (["--name", "Lee", "--email", "lee@example.org"], "short\n", "password must be 10 to 128 characters"),
        (["--name", "Lee", "--email", "nobody"], "a-long-enough-password\n", "email must look like"),
    ):
        result = run(["add_librarian.py", *args, "--password-stdin"], stdin)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PORT", "eighty", "bad setting:"),
        ("LOG_LEVEL", "LOUD", "bad setting: LOG_LEVEL='LOUD' is not a log level"),
        ("CASSANDRA_CONSISTENCY", "MOST", "bad setting: CASSANDRA_CONSISTENCY='MOST' is not a consistency level"),
        ("LIBRARY_ENV", "staging", "bad setting: LIBRARY_ENV='staging' must be 'development' or 'production'"),
        ("LIBRARY_ENV", "production", "needs COOKIE_SECRET and PAGE_TOKEN_SECRET set"),
        ("LOG_FORMAT", "xml", "bad setting: LOG_FORMAT='xml' must be 'plain' (lines for people) or 'json'"),
        ("METRICS_PORT", "99999", "bad setting: METRICS_PORT='99999' is not a port number (1-65535)"),
        ("METRICS_PORT", "8888", "bad setting: METRICS_PORT=8888 is PORT too"),
        ("METRICS_ADDRESS", "everywhere", "bad setting: METRICS_ADDRESS='everywhere' is not an IP address"),
    ],
)
def test_the_app_refuses_a_bad_setting_in_one_line(variable: str, value: str, message: str) -> None:
    """Checked before Cassandra is looked for."""
    result = run(["-m", "app"], **{variable: value})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr


def test_the_local_clusters_topologies() -> None:
    """Two datacenters of two nodes each: dc1 on 127.0.0.1-2 and dc2 on 127.0.0.3-4, one seed in each, balanced
    tokens in each datacenter (the second's offset, so no two nodes share one); the 3-node cluster keeps the
    tokens its data was written with."""
    from cluster import config

    two = config.TWO_DATACENTERS
    assert [two.datacenter_of(i) for i in range(1, 5)] == ["dc1", "dc1", "dc2", "dc2"]
    assert two.seeds() == [1, 3] and config.snitch(two) == "GossipingPropertyFileSnitch"
    assert [two.initial_token(i) for i in range(1, 5)] == [-(2**63), 0, -(2**63) + 100, 100]
    assert config.rackdc_properties(two, 3) == "dc=dc2\nrack=rack1\n"
    three = config.THREE_NODES
    assert [str(three.initial_token(i)) for i in (1, 2, 3)] == [
        "-9223372036854775808",
        "-3074457345618258603",
        "3074457345618258602",
    ]
    assert three.datacenters == [config.DATACENTER] and config.snitch(three) == "SimpleSnitch"


def test_no_two_test_modules_share_a_name() -> None:
    """pytest imports each test module by its bare name (the tests' folders are not packages), so a second
    test_x.py in another folder stops the whole run at collection ("import file mismatch"), which only the full
    suite shows: two did, tests/unit/ and tests/integration/ each had a test_monitoring.py and a test_repair_loop.py."""
    tests = Path(__file__).resolve().parents[1]
    names = Counter(path.name for path in tests.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
