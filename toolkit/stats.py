"""The one percentile of the tools' figures (the bench's p50/p99, the stress tests' p50/p95/p99)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile of an already sorted sequence: its smallest value such that at least p% of
    the values are <= it. p99 of 1..100 is 99, p50 is 50, p100 is the largest value and p0 the smallest;
    an empty sequence gives 0.

    The rank, ceil(p/100 * n), is worked out exactly (p as written, not as the nearest binary float), so
    that e.g. p99 of 100 values is the 99th and never the 100th."""
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is not between 0 and 100")
    if not sorted_values:
        return 0.0
    rank = math.ceil(Fraction(str(p)) * len(sorted_values) / 100)
    return sorted_values[max(1, rank) - 1]
