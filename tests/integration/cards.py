"""Card numbers the tests name themselves, for readers they create in the tests' shared keyspace."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from app.rules import HANDED_OUT_CARDS


def chosen_cards(first: int) -> Iterator[int]:
    """Cards `first`, `first + 1`, ... all below HANDED_OUT_CARDS[0]. The tests' keyspace is not seeded, so these
    are free, while a card in the handed-out range can be drawn at any moment by a `create_user` that names none
    (elsewhere in the same session): a CI run once lost a test to that draw."""
    for card in itertools.count(first):
        assert card < HANDED_OUT_CARDS[0], f"card {card} is in the range the service hands out"
        yield card
