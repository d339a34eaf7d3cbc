"""The one percentile of the bench and the stress tests: nearest rank, the smallest value with at least p% of
the values at or below it. No database."""

from __future__ import annotations

import random

import pytest

from toolkit.stats import percentile

ONE_TO_HUNDRED = [float(v) for v in range(1, 101)]


@pytest.mark.parametrize(
    ("p", "expected"),
    [(99, 99), (50, 50), (95, 95), (100, 100), (0, 1), (1, 1), (0.5, 1), (99.5, 100), (99.9, 100), (25.01, 26)],
)
def test_one_to_a_hundred(p: float, expected: float) -> None:
    assert percentile(ONE_TO_HUNDRED, p) == expected


def test_it_is_the_smallest_value_with_p_percent_at_or_below_it() -> None:
    rng = random.Random(7)
    for n in (1, 2, 3, 7, 10, 99, 100, 101, 1000):
        values = sorted(rng.uniform(0, 100) for _ in range(n))
        for p in (0, 1, 10, 33.3, 50, 90, 95, 99, 99.9, 100):
            got = percentile(values, p)
            assert sum(v <= got for v in values) * 100 >= p * n
            smaller = [v for v in values if v < got]
            assert not smaller or sum(v <= smaller[-1] for v in values) * 100 < p * n


def test_small_and_empty_lists() -> None:
    assert percentile([], 99) == 0.0
    assert percentile([3.5], 0) == percentile([3.5], 50) == percentile([3.5], 100) == 3.5
    assert percentile([1.0, 2.0], 50) == 1.0
    assert percentile([1.0, 2.0], 50.1) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 99) == 10.0


@pytest.mark.parametrize("p", [-1, 100.5, 1000])
def test_a_percent_out_of_range_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match="not between 0 and 100"):
        percentile(ONE_TO_HUNDRED, p)


def test_the_bench_and_the_stress_tests_use_it() -> None:
    import bench.measure
    import stress.run

    assert bench.measure.percentile is percentile
    assert stress.run.percentile is percentile
