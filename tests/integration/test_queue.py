"""A book's queue against real Cassandra (issue 22): joining and leaving, the hand-off when the holder lets go, and
the races the lock's conditions close (docs/reservation-protocol.md, rows join to promote). Each ends with a clean
audit."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller
from integration.api_support import assert_error, call, new_user
from integration.reservation_support import new_book, new_users, settled

from app.db import OutcomeUnknown
from app.models import Conflict, ConflictKind, HoldEnd, NotFound, Place, Reservation
from app.repository import Library
from app.repository.locks import LockState, T
from app.repository.seats import WAITING, CassandraSeats


async def clean(library: Library) -> None:
    report = await settled(library).audit()
    assert report.clean, report.violations


async def held_by_someone(library: Library) -> tuple[uuid.UUID, Reservation]:
    book = await new_book(library)
    (holder,) = await new_users(library, 1)
    return book.book_id, await library.reserve(book.book_id, holder.user_id)


async def test_readers_queue_in_the_order_they_joined_and_the_first_gets_the_book_when_the_holder_cancels(
    library: Library,
) -> None:
    book_id, held = await held_by_someone(library)
    first, second, third = await new_users(library, 3)
    one = await library.join(book_id, first.user_id)
    two = await library.join(book_id, second.user_id)
    three = await library.join(book_id, third.user_id)
    assert isinstance(one, Place) and isinstance(two, Place) and isinstance(three, Place)
    assert [(p.position, p.waiting) for p in (one, two, three)] == [(1, 1), (2, 2), (3, 3)]
    assert [p.user_id for p in await library.queue(book_id)] == [first.user_id, second.user_id, third.user_id]
    assert [(p.book_id, p.position, p.waiting) for p in await library.places(second.user_id)] == [(book_id, 2, 3)]

    await library.cancel(held.reservation_id, held.user_id)
    lock = await library.locks.read(book_id, serial=True)
    assert lock.holds(one.reservation_id) and lock.user_id == first.user_id  # never free in between
    now_held = await library.get_reservation(one.reservation_id)
    assert now_held.book_id == book_id and now_held.user_id == first.user_id
    assert [r.reservation_id for r in await library.book_reservations(book_id)] == [one.reservation_id]
    assert [r.reservation_id for r in (await library.user_reservations(first.user_id)).items] == [one.reservation_id]
    assert (await library.user_reservations(held.user_id)).items == []
    with pytest.raises(NotFound):
        await library.get_reservation(held.reservation_id)
    assert [(p.user_id, p.position, p.waiting) for p in await library.queue(book_id)] == [
        (second.user_id, 1, 2),
        (third.user_id, 2, 2),
    ]
    assert await library.places(first.user_id) == []

    # A repeated or late hand-off does nothing: it names the reservation that held the book, which no longer does.
    entry = lock.next_in_line()
    assert entry is not None
    late = await library.locks.run(
        T.HAND_OFF,
        book_id,
        reservation_id=held.reservation_id,
        next_user_id=entry.user_id,
        next_reservation_id=entry.reservation_id,
        next_entry=entry.cell(),
        reserved_at=held.reserved_at,
        **library.reservations.window(),
    )
    assert not late.applied
    assert (await library.locks.read(book_id, serial=True)).holds(one.reservation_id)

    # The last one out frees the book; nobody waits then.
    await library.leave(book_id, third.user_id)
    await library.cancel(one.reservation_id, first.user_id)
    await library.cancel(two.reservation_id, second.user_id)
    lock = await library.locks.read(book_id, serial=True)
    assert lock.state is LockState.FREE and lock.waiting == ()
    await clean(library)


async def test_joining_twice_or_the_queue_of_ones_own_book_is_refused_and_a_free_book_is_reserved(
    library: Library,
) -> None:
    book_id, held = await held_by_someone(library)
    (reader,) = await new_users(library, 1)
    with pytest.raises(Conflict) as own:
        await library.join(book_id, held.user_id)
    assert own.value.held_by_caller
    await library.join(book_id, reader.user_id)
    with pytest.raises(Conflict) as twice:
        await library.join(book_id, reader.user_id)
    assert twice.value.kind is ConflictKind.ALREADY_WAITING
    await library.leave(book_id, reader.user_id)
    with pytest.raises(NotFound):
        await library.leave(book_id, reader.user_id)

    free = await new_book(library)
    reserved = await library.join(free.book_id, reader.user_id)
    assert isinstance(reserved, Reservation) and reserved.book_id == free.book_id
    await library.cancel(reserved.reservation_id, reader.user_id)
    await library.cancel(held.reservation_id, held.user_id)
    await clean(library)


async def test_a_reader_joins_a_queue_once_however_many_requests_race(library: Library) -> None:
    book_id, held = await held_by_someone(library)
    (reader,) = await new_users(library, 1)
    others = settled(library)  # a second instance
    results = await asyncio.gather(
        *[(library if i % 2 else others).join(book_id, reader.user_id) for i in range(20)], return_exceptions=True
    )
    kinds = Counter(type(r).__name__ for r in results)
    assert kinds == Counter({"Place": 1, "Conflict": 19}), results
    lock = await library.locks.read(book_id, serial=True)
    assert [w.user_id for w in lock.waiting] == [reader.user_id]
    await library.leave(book_id, reader.user_id)
    await library.cancel(held.reservation_id, held.user_id)
    await clean(library)


async def test_a_cancel_racing_a_join_never_leaves_the_book_free_while_someone_waits(library: Library) -> None:
    """The cancel meets the join's entry (and hands the book over), or the join meets the book free (and takes it):
    each of the two reads the lock after the other could have changed it, in one linearizable row."""
    (holder, reader) = await new_users(library, 2)
    for _ in range(15):
        book = await new_book(library)
        held = await library.reserve(book.book_id, holder.user_id)
        cancelled, joined = await asyncio.gather(
            library.cancel(held.reservation_id, holder.user_id), settled(library).join(book.book_id, reader.user_id)
        )
        lock = await library.locks.read(book.book_id, serial=True)
        assert lock.state is LockState.HELD and lock.user_id == reader.user_id and lock.waiting == (), lock
        await library.cancel(lock.reservation_id, reader.user_id)  # type: ignore[arg-type]
    await clean(library)


async def test_six_readers_looping_reserve_and_cancel_cannot_keep_a_queued_seventh_from_the_book(
    library: Library,
) -> None:
    book = await new_book(library)
    looping = await new_users(library, 6)
    (seventh,) = await new_users(library, 1)
    stop = asyncio.Event()
    won = Counter[int]()

    async def loop(user_id: int, instance: Library) -> None:
        while not stop.is_set():
            try:
                r = await instance.reserve(book.book_id, user_id)
            except Conflict:
                await asyncio.sleep(0.005)
                continue
            won[user_id] += 1
            await instance.cancel(r.reservation_id, user_id)

    instances = [library, settled(library)]
    tasks = [asyncio.create_task(loop(u.user_id, instances[i % 2])) for i, u in enumerate(looping)]
    await asyncio.sleep(0.5)
    place = None
    for _ in range(200):  # join while the book is held (a free one is simply reserved)
        try:
            joined = await library.join(book.book_id, seventh.user_id)
        except Conflict:
            continue
        place = joined
        break
    assert place is not None
    cancels_before = sum(won.values())
    lock = await library.locks.read(book.book_id, serial=True)
    for _ in range(200):
        lock = await library.locks.read(book.book_id, serial=True)
        if lock.holds(place.reservation_id):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*tasks)
    assert lock.holds(place.reservation_id), f"the seventh reader never got the book ({won})"
    # At their turn: at most the one reservation that held the book when they joined came between.
    assert sum(won.values()) - cancels_before <= 1 or isinstance(place, Reservation)
    await library.cancel(place.reservation_id, seventh.user_id)
    await clean(library)


async def test_a_book_the_holder_moves_away_from_goes_to_its_queue(library: Library) -> None:
    book_id, held = await held_by_someone(library)
    other = await new_book(library)
    (reader,) = await new_users(library, 1)
    place = await library.join(book_id, reader.user_id)
    moved = await library.move(held.reservation_id, held.user_id, other.book_id)
    assert moved.book_id == other.book_id
    lock = await library.locks.read(book_id, serial=True)
    assert lock.holds(place.reservation_id) and lock.waiting == ()
    await library.cancel(moved.reservation_id, held.user_id)
    await library.cancel(place.reservation_id, reader.user_id)
    await clean(library)


async def test_a_reader_who_waits_cannot_be_deleted_and_a_leave_after_the_hand_off_cancels_it(
    library: Library,
) -> None:
    book_id, held = await held_by_someone(library)
    (reader,) = await new_users(library, 1)
    place = await library.join(book_id, reader.user_id)
    with pytest.raises(Conflict) as waiting:
        await library.delete_user(reader.user_id)
    assert waiting.value.kind is ConflictKind.READER_WAITING
    with pytest.raises(Conflict):
        await library.delete_book(book_id)
    await library.cancel(held.reservation_id, held.user_id)
    assert (await library.locks.read(book_id, serial=True)).holds(place.reservation_id)
    with pytest.raises(NotFound):  # not waiting any more: the book is theirs, and a leave says so
        await library.leave(book_id, reader.user_id)
    await library.cancel(place.reservation_id, reader.user_id)
    await library.delete_user(reader.user_id)
    await clean(library)


# -- the API ------------------------------------------------------------------------------------------------------
@pytest.fixture
async def http(web_url: str, staff_headers: dict[str, str]) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=web_url, headers=staff_headers) as session:
        yield session


async def test_the_queue_over_http(http: aiohttp.ClientSession, library: Library) -> None:
    book_id, held = await held_by_someone(library)
    reader = await new_user(http, "Quinn Queue", "quinn@example.org")
    path = f"/api/books/{book_id}/queue"
    status, joined, response = await call(http, "POST", path, {"user_id": reader["user_id"]})
    assert status == 201 and joined["status"] == "waiting" and joined["position"] == 1 and joined["waiting"] == 1
    assert response.headers["Location"] == path
    status, again, _ = await call(http, "POST", path, {"user_id": reader["user_id"]})
    assert_error(status, again, 409)
    status, queue, _ = await call(http, "GET", path)
    assert status == 200 and queue["waiting"] == 1 and [p["user_id"] for p in queue["places"]] == [reader["user_id"]]
    status, places, _ = await call(http, "GET", f"/api/users/{reader['user_id']}/queues")
    assert status == 200 and [p["book_id"] for p in places["places"]] == [str(book_id)]
    status, body, _ = await call(http, "DELETE", path, params={"user_id": reader["user_id"]})
    assert status == 204, body
    status, body, _ = await call(http, "DELETE", path, params={"user_id": reader["user_id"]})
    assert_error(status, body, 404)
    status, body, _ = await call(http, "POST", "/api/books/not-a-uuid/queue", {"user_id": reader["user_id"]})
    assert_error(status, body, 400, "book_id")
    free = await new_book(library)
    status, ready, _ = await call(http, "POST", f"/api/books/{free.book_id}/queue", {"user_id": reader["user_id"]})
    assert status == 201 and ready["status"] == "ready" and ready["book_id"] == str(free.book_id)
    await library.cancel(uuid.UUID(ready["reservation_id"]), reader["user_id"])
    await library.cancel(held.reservation_id, held.user_id)


async def test_a_free_book_left_with_readers_waiting_goes_to_them_by_the_repair_or_the_next_reserve(
    library: Library,
) -> None:
    """What a crash between a move's freeing of its source and the promotion of the source's queue leaves: a free lock
    with an entry. The audit names it and its repair gives the book to the reader; a reserve meeting it does the same,
    and is refused."""
    (reader, other) = await new_users(library, 2)
    for mend in ("repair", "reserve"):
        book = await new_book(library)
        rid, joined = uuid.uuid4(), library.clock.next()
        await library.db.execute(
            f"UPDATE {library.ks}.reservation_by_book_id SET waiting[?] = (?, ?, null), queue_seq = ? "
            "WHERE book_id = ?",
            [reader.user_id, joined, rid, joined, book.book_id],
        )
        if mend == "repair":
            report = await settled(library).audit(repair=True)
            assert any("free while 1 reader(s) wait" in v for v in report.violations), report.violations
        else:
            with pytest.raises(Conflict):
                await library.reserve(book.book_id, other.user_id)
        lock = await library.locks.read(book.book_id, serial=True)
        assert lock.holds(rid) and lock.user_id == reader.user_id and lock.waiting == ()
        assert (await library.get_reservation(rid)).book_id == book.book_id
        await library.cancel(rid, reader.user_id)
    await clean(library)


# -- the pickup window ----------------------------------------------------------------------------------------------
def with_window(library: Library, pickup: float, renewals: int = 2) -> Library:
    """Another instance on the same session whose holds wait `pickup` seconds to be collected."""
    return settled(library, hold_pickup_seconds=pickup, hold_renewals=renewals)


async def test_a_hold_carries_its_pickup_window_and_a_renewal_extends_it_a_set_number_of_times(
    library: Library,
) -> None:
    lib = with_window(library, 3600, renewals=2)
    book = await new_book(lib)
    (reader,) = await new_users(lib, 1)
    before = datetime.now(UTC).replace(tzinfo=None)
    held = await lib.reserve(book.book_id, reader.user_id)
    assert held.ready_until is not None
    assert timedelta(seconds=3590) < held.ready_until - before < timedelta(seconds=3610)
    shown = await lib.get_reservation(held.reservation_id)
    assert shown.ready_until == held.ready_until  # the views show the window the lock gave
    await asyncio.sleep(0.01)
    once = await lib.move(held.reservation_id, reader.user_id)
    assert once.ready_until is not None and once.ready_until > held.ready_until
    await lib.move(held.reservation_id, reader.user_id)
    with pytest.raises(Conflict) as enough:
        await lib.move(held.reservation_id, reader.user_id)
    assert enough.value.kind is ConflictKind.RENEWED_ENOUGH
    await lib.cancel(held.reservation_id, reader.user_id)
    await clean(lib)


async def test_a_hold_past_its_window_ends_at_the_sweep_or_at_the_next_reserve_and_passes_to_the_queue(
    library: Library,
) -> None:
    lib = with_window(library, 0.5)
    holder, first, late = await new_users(lib, 3)
    queued, lone, met = await new_book(lib), await new_book(lib), await new_book(lib)
    held = await lib.reserve(queued.book_id, holder.user_id)
    place = await lib.join(queued.book_id, first.user_id)
    alone = await lib.reserve(lone.book_id, holder.user_id)
    stale = await lib.reserve(met.book_id, holder.user_id)
    await asyncio.sleep(0.7)
    assert await lib.sweep() >= 2
    lock = await lib.locks.read(queued.book_id, serial=True)
    # the next reader's hold has a window of its own, from the hand-off
    assert lock.holds(place.reservation_id) and lock.ready_until is not None and held.ready_until is not None
    assert lock.ready_until > held.ready_until
    assert (await lib.locks.read(lone.book_id, serial=True)).state is LockState.FREE
    for gone in (held, alone):
        with pytest.raises(NotFound):
            await lib.get_reservation(gone.reservation_id)
    # A sweep may not have reached the third yet; a reserve that meets it ends it and takes the book.
    taken = await lib.reserve(met.book_id, late.user_id)
    assert taken.book_id == met.book_id
    with pytest.raises(NotFound):
        await lib.get_reservation(stale.reservation_id)
    await lib.cancel(taken.reservation_id, late.user_id)
    await lib.cancel(place.reservation_id, first.user_id)
    await clean(lib)


async def test_two_instances_sweeping_at_once_hand_each_book_on_once_in_queue_order(library: Library) -> None:
    """Each end of an expired hold is conditioned on the exact state read: three sweeps on two instances at once end
    each hold once, and each book goes to its first reader, never on to the second (the handed-on holds get the
    sweepers' long window, so none of them expires during the test)."""
    short = with_window(library, 0.5)
    one, two = with_window(library, 600), with_window(library, 600)
    holder, first, second = await new_users(short, 3)
    books = [await new_book(short) for _ in range(8)]
    places = {}
    for book in books:
        await short.reserve(book.book_id, holder.user_id)
        places[book.book_id] = (
            await short.join(book.book_id, first.user_id),
            await short.join(book.book_id, second.user_id),
        )
    await asyncio.sleep(0.7)
    ended = await asyncio.gather(one.sweep(), two.sweep(), one.sweep())
    assert sum(ended) == len(books), ended
    for book in books:
        lock = await one.locks.read(book.book_id, serial=True)
        first_place, second_place = places[book.book_id]
        assert lock.holds(first_place.reservation_id), lock
        assert [w.reservation_id for w in lock.waiting] == [second_place.reservation_id]
        await one.cancel(first_place.reservation_id, first.user_id)
        await one.cancel(second_place.reservation_id, second.user_id)
        assert (await one.locks.read(book.book_id, serial=True)).state is LockState.FREE
    await clean(one)


async def test_a_renewal_racing_the_sweep_either_renews_or_finds_the_hold_ended_never_both(library: Library) -> None:
    lib = with_window(library, 0.3, renewals=50)
    (reader,) = await new_users(lib, 1)
    renewed = ended = 0
    for _ in range(10):
        book = await new_book(lib)
        held = await lib.reserve(book.book_id, reader.user_id)
        await asyncio.sleep(0.35)
        renewal, swept = await asyncio.gather(
            lib.move(held.reservation_id, reader.user_id), with_window(library, 0.3).sweep(), return_exceptions=True
        )
        assert not isinstance(swept, BaseException), swept
        lock = await lib.locks.read(book.book_id, serial=True)
        if isinstance(renewal, Reservation):
            renewed += 1
            assert lock.holds(held.reservation_id) or lock.ready_until is None or lock.state is LockState.FREE
            if lock.holds(held.reservation_id):
                await lib.cancel(held.reservation_id, reader.user_id)
        else:
            ended += 1
            assert isinstance(renewal, NotFound | Conflict), renewal
            assert not lock.holds(held.reservation_id)
    assert renewed + ended == 10
    await clean(lib)


# -- the per-reader limits ------------------------------------------------------------------------------------------
def with_limits(library: Library, ready: int, waiting: int = 0, claim_seconds: int = 60) -> Library:
    """Another instance on the same session whose readers may hold `ready` reservations and wait in `waiting` queues
    at once (0: no limit); an unconfirmed seat claim lives `claim_seconds`."""
    other = settled(library, hold_limit_ready=ready, hold_limit_waiting=waiting)
    other.reservations.seats = CassandraSeats(other.db, claim_seconds)
    return other


async def test_a_hundred_parallel_reserves_by_one_reader_on_two_instances_give_exactly_the_limit(
    library: Library,
) -> None:
    one, two = with_limits(library, 5), with_limits(library, 5)
    (reader,) = await new_users(one, 1)
    books = [await new_book(one) for _ in range(100)]
    results = await asyncio.gather(
        *[(one if i % 2 else two).reserve(b.book_id, reader.user_id) for i, b in enumerate(books)],
        return_exceptions=True,
    )
    made = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, Conflict) and r.kind is ConflictKind.LIMIT_REACHED]
    others = [r for r in results if not isinstance(r, Reservation | Conflict)]
    assert len(made) == 5 and len(refused) == 95, (len(made), len(refused), others[:3])
    held = [b for b in books if (await one.locks.read(b.book_id, serial=True)).state is LockState.HELD]
    assert len(held) == 5
    # A cancel frees a seat: the next reserve is made, the one after is refused again.
    await one.cancel(made[0].reservation_id, reader.user_id)
    free = [b for b in books if b.book_id not in {r.book_id for r in made[1:]}]
    again = await two.reserve(free[0].book_id, reader.user_id)
    with pytest.raises(Conflict):
        await one.reserve(free[1].book_id, reader.user_id)
    for r in [*made[1:], again]:
        await one.cancel(r.reservation_id, reader.user_id)
    await clean(one)


async def test_a_reserve_paused_past_its_seat_claim_takes_its_hold_back_when_another_has_the_seat(
    library: Library,
) -> None:
    """The claim of a seat expires (here after a second) if its request stalls: the seat may then be another's. A
    request that took the book and finds its seat gone cannot confirm it, claims none (the limit is 1 and taken), and
    gives the book back: the reader never holds more than the limit. Without the confirm after the take, the reader
    ends with two."""
    paused, other = with_limits(library, 1, claim_seconds=1), with_limits(library, 1, claim_seconds=1)
    (reader,) = await new_users(paused, 1)
    first, second = await new_book(paused), await new_book(paused)
    gate = asyncio.Event()

    async def stall(name: str, facts: dict[str, object]) -> None:
        await gate.wait()

    paused.reservations.steps["reserve.locked"] = stall
    stalled = asyncio.create_task(paused.reserve(first.book_id, reader.user_id))
    await asyncio.sleep(1.5)  # the stalled request holds the first book; its seat's claim has expired
    made = await other.reserve(second.book_id, reader.user_id)
    gate.set()
    with pytest.raises(Conflict) as refused:
        await stalled
    assert refused.value.kind is ConflictKind.LIMIT_REACHED
    assert (await paused.locks.read(first.book_id, serial=True)).state is LockState.FREE
    assert [r.reservation_id for r in (await paused.user_reservations(reader.user_id)).items] == [made.reservation_id]
    await other.cancel(made.reservation_id, reader.user_id)
    await clean(paused)


async def test_parallel_joins_by_one_reader_give_exactly_the_limit_of_places_and_a_leave_frees_one(
    library: Library,
) -> None:
    lib = with_limits(library, 0, waiting=2)
    holder, reader = await new_users(lib, 2)
    books = [await new_book(lib) for _ in range(10)]
    for book in books:
        await lib.reserve(book.book_id, holder.user_id)
    results = await asyncio.gather(*[lib.join(b.book_id, reader.user_id) for b in books], return_exceptions=True)
    places = [r for r in results if isinstance(r, Place)]
    assert len(places) == 2, results
    assert len(await lib.places(reader.user_id)) == 2
    await lib.leave(places[0].book_id, reader.user_id)
    rest = [b for b in books if b.book_id not in {p.book_id for p in places}]
    assert isinstance(await lib.join(rest[0].book_id, reader.user_id), Place)
    with pytest.raises(Conflict):
        await lib.join(rest[1].book_id, reader.user_id)
    for place in await lib.places(reader.user_id):
        await lib.leave(place.book_id, reader.user_id)
    for book in books:
        held = await lib.locks.read(book.book_id, serial=True)
        await lib.cancel(held.reservation_id, holder.user_id)  # type: ignore[arg-type]
    await clean(lib)


# -- the notice when it is your turn ---------------------------------------------------------------------------------
class Inbox:
    """A real SMTP server's handler (aiosmtpd): keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append(message_from_bytes(envelope.content, policy=default_policy))  # type: ignore[arg-type]
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_smtp(library: Library, port: int) -> Library:
    other = settled(library, smtp_url=f"smtp://127.0.0.1:{port}")
    other.notices.first_retry = 0.3
    return other


async def test_the_next_reader_gets_an_e_mail_when_the_book_is_theirs_and_a_failed_send_is_retried(
    library: Library,
) -> None:
    port = free_port()
    lib = with_smtp(library, port)
    holder, reader = await new_users(lib, 2)
    book = await lib.create_book("The Notice", "Mae Mailer", "Drama", 1999)
    held = await lib.reserve(book.book_id, holder.user_id)
    place = await lib.join(book.book_id, reader.user_id)
    # Nothing listens yet: the hand-off does not wait for the notice, nor does its failure undo it.
    await lib.cancel(held.reservation_id, holder.user_id)
    assert (await lib.locks.read(book.book_id, serial=True)).holds(place.reservation_id)
    inbox = Inbox()
    await asyncio.sleep(0.4)  # the first attempt failed; the next comes after 0.3 s, then 0.6 s
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        await asyncio.wait_for(lib.notices.drain(), timeout=20)
    finally:
        server.stop()
    (mail,) = inbox.messages
    assert mail["To"] == reader.email and "“The Notice” is ready for you to collect" in mail["Subject"]
    body = mail.get_content()
    assert f"Dear {reader.name}" in body and "Please collect it by" in body and str(place.reservation_id) in body
    await lib.cancel(place.reservation_id, reader.user_id)
    await clean(lib)


# -- a reader's past holds ------------------------------------------------------------------------------------------
async def test_a_readers_past_holds_say_how_each_ended_newest_first_a_page_at_a_time(
    library: Library, http: aiohttp.ClientSession
) -> None:
    lib = with_window(library, 0.5)
    holder, reader = await new_users(lib, 2)
    cancelled, expired, left = await new_book(lib), await new_book(lib), await new_book(lib)
    one = await lib.reserve(cancelled.book_id, reader.user_id)
    await lib.cancel(one.reservation_id, reader.user_id)
    two = await lib.reserve(expired.book_id, reader.user_id)
    await asyncio.sleep(0.7)
    await lib.sweep()
    other = await lib.reserve(left.book_id, holder.user_id)
    place = await lib.join(left.book_id, reader.user_id)
    await lib.leave(left.book_id, reader.user_id)
    lines, older = await lib.past_holds(reader.user_id)
    assert [(line.outcome, line.book_id) for line in lines] == [
        (HoldEnd.LEFT, left.book_id),
        (HoldEnd.EXPIRED, expired.book_id),
        (HoldEnd.CANCELLED, cancelled.book_id),
    ]
    assert older is None and lines[1].reservation_id == two.reservation_id and lines[0].since is None
    first, older = await lib.past_holds(reader.user_id, limit=2)
    assert [line.reservation_id for line in first] == [place.reservation_id, two.reservation_id] and older
    rest, _ = await lib.past_holds(reader.user_id, before=older, limit=2)
    assert [line.reservation_id for line in rest] == [one.reservation_id]
    status, body, _ = await call(http, "GET", f"/api/users/{reader.user_id}/history")
    assert status == 200 and [i["outcome"] for i in body["items"]] == ["left", "expired", "cancelled"]
    status, body, _ = await call(http, "GET", f"/api/users/{reader.user_id}/history", params={"before": "nope"})
    assert_error(status, body, 400, "before")
    status, body, _ = await call(
        http, "GET", f"/api/users/{reader.user_id}/history", params={"before": str(uuid.uuid4())}
    )
    assert_error(status, body, 400, "before")
    await lib.cancel(other.reservation_id, holder.user_id)
    await clean(lib)


async def test_a_join_whose_answer_was_lost_while_another_joined_is_still_the_readers_place_with_its_seat(
    library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner judges a lost answer by the column the transition stamps, and a join's (queue_seq) is moved on by
    any later join: a join that landed, whose answer was lost while another reader joined, was judged refused, and
    the reader was answered 409 (already waiting) with their seat freed under them. Its entry names its fresh
    reservation, which settles it (found by review)."""
    lib, other = with_limits(library, 0, waiting=1), with_limits(library, 0, waiting=1)
    holder, reader, second = await new_users(lib, 3)
    book = await new_book(lib)
    held = await lib.reserve(book.book_id, holder.user_id)
    real = lib.db.execute
    lost: list[str] = []

    async def execute(statement: Any, *args: Any, **kwargs: Any) -> Any:
        text = statement if isinstance(statement, str) else getattr(statement, "query_string", "")
        if not lost and "SET waiting[?] = ?" in text:
            lost.append(text)
            await real(statement, *args, **kwargs)  # it lands...
            await other.join(book.book_id, second.user_id)  # ...another reader joins after it...
            raise OutcomeUnknown("injected: the answer was lost")  # ...and its answer never comes
        return await real(statement, *args, **kwargs)

    monkeypatch.setattr(lib.db, "execute", execute)
    place = await lib.join(book.book_id, reader.user_id)
    assert lost, "the fault was not injected"
    assert isinstance(place, Place) and place.position == 1 and place.waiting == 2
    (seat,) = await lib.reservations.seats.read(reader.user_id, WAITING)  # type: ignore[union-attr]
    assert seat.confirmed and seat.reservation_id == place.reservation_id
    monkeypatch.undo()
    await lib.leave(book.book_id, reader.user_id)
    await lib.leave(book.book_id, second.user_id)
    await lib.cancel(held.reservation_id, holder.user_id)
    await clean(lib)


async def test_a_deletion_that_is_refused_does_not_cost_a_waiting_reader_their_turn(library: Library) -> None:
    """A deletion marks the card closing before it looks for the reader's holds and places, and a waiting reader's
    is refused, which clears the mark. A hand-off meeting the mark waits for the deletion to be over: before, it took
    the reader out of the queue at once, and the book went past them (found by review)."""
    lib = settled(library)
    holder, reader = await new_users(lib, 2)
    book = await new_book(lib)
    held = await lib.reserve(book.book_id, holder.user_id)
    place = await lib.join(book.book_id, reader.user_id)
    mark = f"UPDATE {lib.ks}.users SET state = ? WHERE user_id = ?"
    await lib.db.execute(mark, ["closing", reader.user_id], write=True)  # a deletion at work...
    cancelling = asyncio.create_task(lib.cancel(held.reservation_id, holder.user_id))
    await asyncio.sleep(0.15)
    await lib.db.execute(mark, [None, reader.user_id], write=True)  # ...refused: the mark is cleared
    await cancelling
    assert (await lib.locks.read(book.book_id, serial=True)).holds(place.reservation_id)
    await lib.cancel(place.reservation_id, reader.user_id)
    await clean(lib)


# -- suspending a place (rows suspend, resume, leave suspended of docs/reservation-protocol.md) ----------------------
def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def test_a_suspended_place_is_passed_over_keeps_its_position_and_lets_the_book_go_free(
    library: Library,
) -> None:
    book_id, held = await held_by_someone(library)
    away, next_one, walk_in = await new_users(library, 3)
    mine = await library.join(book_id, away.user_id)
    theirs = await library.join(book_id, next_one.user_id)
    assert isinstance(mine, Place) and isinstance(theirs, Place)
    paused = await library.suspend(book_id, away.user_id, soon(3600))
    assert (paused.position, paused.waiting) == (1, 2) and paused.suspended_until is not None  # its place is kept
    with pytest.raises(Conflict) as twice:
        await library.suspend(book_id, away.user_id, soon(7200))
    assert twice.value.kind is ConflictKind.PLACE_SUSPENDED
    with pytest.raises(Conflict) as rejoin:
        await library.join(book_id, away.user_id)
    assert rejoin.value.kind is ConflictKind.PLACE_SUSPENDED

    await library.cancel(held.reservation_id, held.user_id)  # the book passes the suspended reader by
    lock = await library.locks.read(book_id, serial=True)
    assert lock.holds(theirs.reservation_id) and lock.suspension(away.user_id) is not None
    await library.cancel(theirs.reservation_id, next_one.user_id)  # nobody active waits: the book is free
    lock = await library.locks.read(book_id, serial=True)
    assert lock.state is LockState.FREE and [w.user_id for w in lock.suspended] == [away.user_id]
    await clean(library)
    with pytest.raises(Conflict) as own:  # the suspended reader resumes, rather than reserving past their place
        await library.reserve(book_id, away.user_id)
    assert own.value.kind is ConflictKind.PLACE_SUSPENDED
    taken = await library.reserve(book_id, walk_in.user_id)  # anyone else may take a free book
    resumed = await library.resume(book_id, away.user_id)
    assert isinstance(resumed, Place) and (resumed.position, resumed.suspended_until) == (1, None)
    assert [p.user_id for p in await library.places(away.user_id)] == [away.user_id]
    await library.cancel(taken.reservation_id, walk_in.user_id)
    lock = await library.locks.read(book_id, serial=True)
    assert lock.holds(mine.reservation_id) and not lock.suspended and lock.resume_at is None
    await library.cancel(mine.reservation_id, away.user_id)
    await clean(library)


async def test_a_suspension_that_ends_is_resumed_by_the_sweep_once_on_two_instances_and_a_free_book_goes_to_it(
    library: Library,
) -> None:
    one, two = settled(library), settled(library)
    readers = await new_users(one, 4)
    books = []
    for reader in readers:
        book_id, held = await held_by_someone(one)
        place = await one.join(book_id, reader.user_id)
        assert isinstance(place, Place)
        await one.suspend(book_id, reader.user_id, soon(1.5))
        await one.cancel(held.reservation_id, held.user_id)  # free, with only a suspended reader
        books.append((book_id, reader, place))
    assert (await one.locks.read(books[0][0])).resume_at is not None
    await asyncio.sleep(1.6)
    await asyncio.gather(one.sweep(), two.sweep(), one.sweep())
    for book_id, reader, place in books:
        lock = await one.locks.read(book_id, serial=True)
        assert lock.holds(place.reservation_id) and not lock.suspended and lock.resume_at is None, lock
        assert [r.reservation_id for r in await one.book_reservations(book_id)] == [place.reservation_id]
        await one.cancel(place.reservation_id, reader.user_id)
    await clean(one)


async def test_a_suspension_racing_the_hand_off_to_that_reader_either_suspends_or_gives_the_book_never_both(
    library: Library,
) -> None:
    suspended = handed = 0
    for _ in range(8):
        book_id, held = await held_by_someone(library)
        reader, after = await new_users(library, 2)
        place = await library.join(book_id, reader.user_id)
        other = await library.join(book_id, after.user_id)
        assert isinstance(place, Place) and isinstance(other, Place)
        paused, _ = await asyncio.gather(
            library.suspend(book_id, reader.user_id, soon(3600)),
            library.cancel(held.reservation_id, held.user_id),
            return_exceptions=True,
        )
        lock = await library.locks.read(book_id, serial=True)
        if isinstance(paused, Place):
            suspended += 1
            assert lock.holds(other.reservation_id) and lock.suspension(reader.user_id) is not None
            await library.leave(book_id, reader.user_id)
            await library.cancel(other.reservation_id, after.user_id)
        else:
            handed += 1
            assert isinstance(paused, NotFound), paused
            assert lock.holds(place.reservation_id) and lock.in_queue(reader.user_id) is None
            await library.cancel(place.reservation_id, reader.user_id)
            await library.leave(book_id, after.user_id)
        assert (await library.locks.read(book_id, serial=True)).state is LockState.FREE
    assert suspended + handed == 8
    await clean(library)


async def test_suspending_over_http_refuses_a_past_date_a_second_suspension_and_a_place_one_does_not_have(
    http: aiohttp.ClientSession, library: Library
) -> None:
    book_id, held = await held_by_someone(library)
    reader = await new_user(http, "Sam Suspend", "sam@example.org")
    path = f"/api/books/{book_id}/queue/suspension"
    soon_day = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    status, body, _ = await call(http, "PUT", path, {"until": soon_day, "user_id": reader["user_id"]})
    assert_error(status, body, 404)  # not in the queue
    await call(http, "POST", f"/api/books/{book_id}/queue", {"user_id": reader["user_id"]})
    for bad in ("tomorrow", "", None, "2026-13-45"):
        status, body, _ = await call(http, "PUT", path, {"until": bad, "user_id": reader["user_id"]})
        assert_error(status, body, 400, "until")
    for out_of_range in ("2020-01-01", (datetime.now(UTC) + timedelta(days=400)).date().isoformat()):
        status, body, _ = await call(http, "PUT", path, {"until": out_of_range, "user_id": reader["user_id"]})
        assert_error(status, body, 422, "until")
    until = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
    status, place, _ = await call(http, "PUT", path, {"until": until, "user_id": reader["user_id"]})
    assert status == 200 and place["status"] == "waiting" and place["suspended_until"].startswith(until), place
    status, body, _ = await call(http, "PUT", path, {"until": until, "user_id": reader["user_id"]})
    assert status == 200 and body == place  # the same suspension again: what it made (a retry of a lost answer)
    later = (datetime.now(UTC) + timedelta(days=12)).date().isoformat()
    status, body, _ = await call(http, "PUT", path, {"until": later, "user_id": reader["user_id"]})
    assert_error(status, body, 409)
    status, queue, _ = await call(http, "GET", f"/api/books/{book_id}/queue")
    assert queue["waiting"] == 1 and queue["places"][0]["suspended_until"] is not None
    status, resumed, _ = await call(http, "DELETE", path, params={"user_id": reader["user_id"]})
    assert status == 200 and resumed["status"] == "waiting" and resumed["suspended_until"] is None
    await library.leave(book_id, reader["user_id"])
    await library.cancel(held.reservation_id, held.user_id)
    await clean(library)


# -- the loan: collected at the desk, returned at the desk (rows lend, return, return and hand off) -----------------
async def test_a_collected_book_is_on_loan_until_returned_and_then_goes_to_the_next_reader(library: Library) -> None:
    lib = with_window(library, 0.5)
    book_id, held = await held_by_someone(lib)
    (next_one,) = await new_users(lib, 1)
    loan = await lib.lend(book_id)
    assert loan.lent_at is not None and loan.ready_until is None
    shown = await lib.get_reservation(held.reservation_id)
    assert shown.lent_at == loan.lent_at and shown.ready_until is None  # the views show the loan
    with pytest.raises(Conflict) as again:
        await lib.lend(book_id)
    assert again.value.kind is ConflictKind.ALREADY_LENT
    place = await lib.join(book_id, next_one.user_id)
    assert isinstance(place, Place)
    await asyncio.sleep(0.6)
    await lib.sweep()  # a loan has no pickup window: nothing ends it but the desk
    assert (await lib.locks.read(book_id, serial=True)).holds(held.reservation_id)
    for refused in (lib.cancel(held.reservation_id, held.user_id), lib.move(held.reservation_id, held.user_id)):
        with pytest.raises(Conflict) as own:
            await refused
        assert own.value.kind is ConflictKind.ON_LOAN
    await clean(lib)
    ended = await lib.take_back(book_id)
    assert ended.reservation_id == held.reservation_id
    lock = await lib.locks.read(book_id, serial=True)
    assert lock.holds(place.reservation_id) and lock.lent_at is None and lock.ready_until is not None
    with pytest.raises(NotFound):
        await lib.get_reservation(held.reservation_id)
    with pytest.raises(Conflict) as not_lent:
        await lib.take_back(book_id)
    assert not_lent.value.kind is ConflictKind.NOT_ON_LOAN
    past, _ = await lib.past_holds(held.user_id)
    assert [line.outcome for line in past][:2] == [HoldEnd.RETURNED, HoldEnd.COLLECTED]
    await lib.cancel(place.reservation_id, next_one.user_id)
    await clean(lib)


async def test_a_collection_racing_the_readers_cancel_either_lends_or_cancels_never_both(library: Library) -> None:
    lent = cancelled = 0
    for _ in range(8):
        book_id, held = await held_by_someone(library)
        loan, cancel = await asyncio.gather(
            library.lend(book_id), library.cancel(held.reservation_id, held.user_id), return_exceptions=True
        )
        lock = await library.locks.read(book_id, serial=True)
        if isinstance(loan, Reservation):
            lent += 1
            assert isinstance(cancel, Conflict) and cancel.kind is ConflictKind.ON_LOAN, cancel
            assert lock.holds(held.reservation_id) and lock.lent_at is not None
            await library.take_back(book_id)
        else:
            cancelled += 1
            assert cancel is None and isinstance(loan, Conflict), (loan, cancel)
        assert (await library.locks.read(book_id, serial=True)).state is LockState.FREE
    assert lent + cancelled == 8
    await clean(library)


async def test_the_desk_lends_and_takes_back_over_http(
    http: aiohttp.ClientSession, library: Library
) -> None:
    book_id, held = await held_by_someone(library)
    path = f"/api/books/{book_id}/loan"
    status, body, _ = await call(http, "DELETE", path)
    assert_error(status, body, 409)
    status, loan, _ = await call(http, "POST", path)
    assert status == 200 and loan["status"] == "on_loan" and loan["lent_at"], loan
    status, body, _ = await call(http, "POST", path)
    assert_error(status, body, 409)
    status, back, _ = await call(http, "DELETE", path)
    assert status == 200 and back["status"] == "returned" and back["reservation_id"] == str(held.reservation_id)
    status, body, _ = await call(http, "POST", "/api/books/not-a-uuid/loan")
    assert_error(status, body, 400, "book_id")
    await clean(library)


async def test_a_reader_whose_place_is_suspended_cannot_be_deleted(library: Library) -> None:
    """A deletion looks for the reader's places in both maps (three indexed reads: an entry moving between them is
    not missed); a suspended place is a place."""
    book_id, held = await held_by_someone(library)
    (away,) = await new_users(library, 1)
    await library.join(book_id, away.user_id)
    await library.suspend(book_id, away.user_id, soon(3600))
    with pytest.raises(Conflict) as refused:
        await library.delete_user(away.user_id)
    assert refused.value.kind is ConflictKind.READER_WAITING
    await library.leave(book_id, away.user_id)
    await library.delete_user(away.user_id)
    await library.cancel(held.reservation_id, held.user_id)
    await clean(library)
