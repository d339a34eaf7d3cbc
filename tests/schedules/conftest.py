"""The schedule search (tests/schedules/): needs no Cassandra. Its modules import each other by name."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# The use cases log every heal and every failed write; the search makes thousands of them on purpose.
logging.getLogger("app").setLevel(logging.CRITICAL)


def pytest_terminal_summary(terminalreporter: object) -> None:
    from test_schedules import TOTALS

    if TOTALS["searches"]:
        write = terminalreporter.write_line  # type: ignore[attr-defined]
        write(
            f"schedule search: {int(TOTALS['schedules'])} complete schedules (+{int(TOTALS['cut'])} cut short by sleep "
            f"sets) in {int(TOTALS['searches'])} searches, {TOTALS['seconds']:.0f} CPU s of search in workers, "
            f"{TOTALS['wall']:.0f} s wall time"
        )
