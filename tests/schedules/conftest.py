"""The schedule search (tests/schedules/): needs no Cassandra. Its modules import each other by name."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# The use cases log every heal and every failed write; the search makes thousands of them on purpose.
logging.getLogger("app").setLevel(logging.CRITICAL)
