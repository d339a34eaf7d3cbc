"""What the circulation desk reads, on a real Cassandra, in a keyspace of its own: a reader found by the beginning of
a name or an e-mail address on Cassandra's own index (and the terms following every write of the card), the
catalogue's "available now" composed with a search, the books of a title for the desk's list of reservations, and a
book's reservation history written by the service after each change."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest
from tool_support import fresh_keyspace

from app.access import Caller
from app.models import BookEvent, Role
from app.repository import Library
from app.search import words
from app.service import LibraryService
from app.settings import Settings

KEYSPACE = "test_desk"

READERS = [
    ("Rosa Reader", "rosa.reader@example.org"),
    ("Rosalind Franklin", "r.franklin@kings.example"),
    ("Ros Ángel Núñez", "angel@example.org"),
    ("Bob Roskilde", "bob@roskilde.example"),
    ("Ada Lovelace", "ada@analytical.example"),
]


@pytest.fixture(scope="module")
async def desk(settings: Settings) -> AsyncIterator[Library]:
    db = await fresh_keyspace(dataclasses.replace(settings), KEYSPACE)
    library = Library(db)
    for card, (name, email) in enumerate(READERS, start=1):
        await library.create_user(name, email, card)
    yield library
    db.close()


def found_by(name: str, email: str, typed: str) -> bool:
    """The rule, said independently of the index: each typed word begins a word of the name or the e-mail."""
    have = words(f"{name} {email}")
    return all(any(w.startswith(t) for w in have) for t in words(typed))


@pytest.mark.parametrize(
    ("typed", "cards"),
    [
        ("ros", {1, 2, 3, 4}),  # a name's beginning, a surname's, an e-mail's
        ("rosa", {1, 2}),
        ("ROSA READ", {1}),
        ("angel", {3}),  # folded: "Ángel"
        ("nunez", {3}),
        ("rosa.reader@example.org", {1}),  # the address as typed
        ("r.franklin@kin", {2}),  # its beginning
        ("analytical", {5}),
        ("zz", set()),
    ],
)
async def test_a_reader_is_found_by_a_beginning_of_name_or_e_mail(desk: Library, typed: str, cards: set[int]) -> None:
    found = {u.user_id for u in await desk.matching_users(typed)}
    assert found == cards
    assert all(found_by(*READERS[c - 1], typed) for c in found)
    assert {u.user_id for u in (await desk.list_users(q=typed, page_size=200)).items} == cards


async def test_the_terms_follow_every_write_of_the_card(desk: Library) -> None:
    card = 40 + uuid.uuid4().int % 1000
    await desk.create_user("Wanda Writes", "wanda@example.org", card)
    assert [u.user_id for u in await desk.matching_users("wanda")] == [card]
    await desk.update_user(card, name="Petra Penn", email="petra@example.org")
    assert await desk.matching_users("wanda") == []
    assert [u.user_id for u in await desk.matching_users("petra pen")] == [card]
    await desk.import_user("Ilse Import", "ilse@example.org", card)  # the seeder's upsert
    assert [u.user_id for u in await desk.matching_users("ilse")] == [card]
    await desk.delete_user(card)
    assert await desk.matching_users("ilse") == []


async def test_available_now_composes_with_the_search(desk: Library) -> None:
    word = "Avail" + uuid.uuid4().hex[:6]
    books = [
        await desk.create_book(f"{word} {i}", "Una Author", "Mystery" if i < 3 else "Poetry", 2000) for i in range(5)
    ]
    await desk.reserve(books[0].book_id, 1)
    await desk.reserve(books[3].book_id, 1)
    every = await desk.search_books(word)
    free = await desk.search_books(word, available_only=True)
    assert every.total == 5 and free.total == 3
    assert {b.book_id for b in free.books} == {books[i].book_id for i in (1, 2, 4)}
    assert [(f.value, f.count) for f in free.genres] == [("Mystery", 2), ("Poetry", 1)]  # counts of what is shown
    narrowed = await desk.search_books(word, genre="Poetry", available_only=True)
    assert [b.book_id for b in narrowed.books] == [books[4].book_id]


async def test_available_now_beyond_the_bound_is_counted_as_not_the_whole_answer(desk: Library) -> None:
    word = "Bound" + uuid.uuid4().hex[:6]
    books = [await desk.create_book(f"{word} {i}", "Una Author", "Mystery", 2000) for i in range(5)]
    await desk.reserve(books[0].book_id, 1)
    # 5 matches, a bound of 3: the read sees 4 (the 4th only says "more"); what is free among the first 3 is shown,
    # never the 4th, and the count is not exact, however few are left after the filter.
    free = await desk.search_books(word, available_only=True, bound=3)
    assert not free.exact and free.looked_at == 3 and free.total == len(free.books) <= 3
    every = await desk.search_books(word, bound=3)
    first_three = {b.book_id for b in every.books}
    assert {b.book_id for b in free.books} == first_three - {books[0].book_id}
    assert free.total + (books[0].book_id in first_three) == 3
    whole = await desk.search_books(word, available_only=True, bound=10)
    assert whole.exact and whole.total == 4


async def test_the_books_of_a_title_and_who_holds_them(desk: Library) -> None:
    word = "Harbor" + uuid.uuid4().hex[:6]
    held = await desk.create_book(f"{word} Lights", "Ida Isle", "Travel", 1990)
    free = await desk.create_book(f"{word} Beacons", "Ida Isle", "Travel", 1991)
    taken = await desk.reserve(held.book_id, 2)
    matches = await desk.matching_books(word.lower())
    assert {b.book_id for b in matches} == {held.book_id, free.book_id}
    holders = await desk.holders([b.book_id for b in matches])
    assert holders == {held.book_id: taken}
    # More books than one read of the locks asks for: read in several at once, all answered.
    many = await desk.holders([uuid.uuid4() for _ in range(250)] + [held.book_id])
    assert many == {held.book_id: taken}
    # The books of many ids, as a list sorted by title reads them: in batches, the missing ones left out.
    books = await desk.get_books([uuid.uuid4() for _ in range(250)] + [held.book_id, free.book_id, held.book_id])
    assert books == {held.book_id: held, free.book_id: free}


async def test_each_change_is_a_line_of_the_books_history(desk: Library) -> None:
    service = LibraryService.over(desk)
    reader = Caller(4, Role.READER, "Bob Roskilde")
    librarian = await desk.create_user("Lena Desk", "lena@library.example", 90, role=Role.LIBRARIAN)
    at_desk = Caller(librarian.user_id, Role.LIBRARIAN, librarian.name)
    first = await desk.create_book("History One", "H. Author", "History", 1950)
    second = await desk.create_book("History Two", "H. Author", "History", 1951)
    held = await service.reserve(reader, first.book_id)
    await service.move(reader, held.reservation_id)  # renew
    await service.move(reader, held.reservation_id, new_book_id=second.book_id)
    await service.cancel(at_desk, held.reservation_id)
    assert [(line.event, line.user_id, line.by_id) for line in await desk.book_history(first.book_id)] == [
        (BookEvent.MOVED_AWAY, 4, 4),
        (BookEvent.RENEWED, 4, 4),
        (BookEvent.RESERVED, 4, 4),
    ]
    lines = await desk.book_history(second.book_id)
    assert [(line.event, line.by_id) for line in lines] == [(BookEvent.CANCELLED, 90), (BookEvent.MOVED_HERE, 4)]
    assert all(line.reservation_id == held.reservation_id for line in lines)
    assert lines[0].happened_at >= lines[1].happened_at
    # A retried keyed reserve answers the first request's reservation, and its line is the first one's row again.
    third = await desk.create_book("History Three", "H. Author", "History", 1952)
    first_try = await service.reserve(reader, third.book_id, idempotency_key="history-retry")
    retried = await service.reserve(reader, third.book_id, idempotency_key="history-retry")
    assert retried == first_try
    assert [line.event for line in await desk.book_history(third.book_id)] == [BookEvent.RESERVED]
    ttl = await desk.db.execute(
        f"SELECT TTL(event) AS left FROM {KEYSPACE}.book_history WHERE book_id = ? LIMIT 1", [second.book_id]
    )
    assert 364 * 86400 < ttl.one().left <= 365 * 86400  # a year, then it goes by itself
