"""The service layer's rules (app/service.py), against an in-memory fake of the repository interfaces it uses: who
may act for whom, what goes into the staff log and a book's history, what ending a card ends, how one's own PIN is
changed. No Cassandra and no mock of the database: `MemoryLibrary` keeps its rows in dicts and answers as the
repository's parts do (the same errors, the same refusal to move or cancel another reader's reservation). What must
hold under concurrency (the locks) is tested on a real Cassandra only, in tests/integration/."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID, uuid4

import pytest

from app.access import Caller
from app.models import (
    Book,
    BookEvent,
    Conflict,
    DatabaseUnavailable,
    Forbidden,
    HoldEnd,
    InvalidInput,
    NotFound,
    PastHold,
    Place,
    Reservation,
    Role,
    TooManyAttempts,
    Unauthenticated,
    UnknownBook,
    UnknownReader,
    User,
)
from app.rules import MAX_FAILED_SIGN_INS, check_pin
from app.service import AccountChange, Accounts, Books, History, LibraryService, Readers, Reservations

WHEN = datetime(2026, 11, 23, 14, 5)
LOCKED_UNTIL = datetime(2026, 11, 23, 14, 20)  # what the fake says of a locked card


@dataclass(frozen=True)
class Logged:
    librarian_id: int
    action: str
    detail: str
    user_id: int | None
    book_id: UUID | None
    reservation_id: UUID | None


@dataclass(frozen=True)
class Line:
    """A line of a book's history, as the fake keeps it."""

    book_id: UUID
    event: BookEvent
    user_id: int
    by_id: int | None


class MemoryLibrary:
    """The five parts the service uses, in memory: Books, Readers, Reservations, Accounts and History."""

    def __init__(self) -> None:
        self.books: dict[UUID, Book] = {}
        self.users: dict[int, User] = {}
        self.pins: dict[int, str] = {}
        self.reservations: dict[UUID, Reservation] = {}
        self.queues: dict[UUID, list[int]] = {}  # the readers waiting for each book, in order
        self.past: dict[int, list[PastHold]] = {}  # each reader's past holds, newest first
        self.sessions: dict[int, int] = {}  # card -> sessions open
        self.attempts: dict[int, int] = {}  # card -> PIN checks since the last success
        self.log: list[Logged] = []
        self.history: list[Line] = []
        self.history_down = False  # True: Cassandra cannot take a history line

    # -- Books
    async def get_book(self, book_id: UUID) -> Book:
        if book_id not in self.books:
            raise UnknownBook(book_id)
        return self.books[book_id]

    async def create_book(
        self, title: str, author: str, genre: str, published_year: int | None, book_id: UUID | None = None
    ) -> Book:
        book = Book(book_id or uuid4(), title, author, genre, published_year)
        self.books[book.book_id] = book
        return book

    async def update_book(
        self,
        book_id: UUID,
        *,
        title: str | None = None,
        author: str | None = None,
        genre: str | None = None,
        published_year: int | None = None,
    ) -> Book:
        book = await self.get_book(book_id)
        self.books[book_id] = replace(book, title=title or book.title, author=author or book.author)
        return self.books[book_id]

    async def delete_book(self, book_id: UUID) -> None:
        await self.get_book(book_id)
        held = self._holder(book_id)
        if held is not None:
            raise Conflict.book_in_use(book_id, held.reservation_id)
        del self.books[book_id]

    # -- Readers
    async def get_user(self, user_id: int) -> User:
        if user_id not in self.users:
            raise UnknownReader(user_id)
        return self.users[user_id]

    async def create_user(
        self, name: str, email: str, user_id: int | None = None, *, role: Role = Role.READER, pin: str | None = None
    ) -> User:
        card = user_id or max(self.users, default=1000) + 1
        if card in self.users:
            raise Conflict.card_taken(card)
        self.users[card] = User(card, name, email, WHEN, role, True, pin is not None)
        if pin is not None:
            self.pins[card] = check_pin(pin, staff=role is Role.LIBRARIAN)
        return self.users[card]

    async def update_user(self, user_id: int, *, name: str | None = None, email: str | None = None) -> User:
        user = await self.get_user(user_id)
        self.users[user_id] = replace(user, name=name or user.name, email=email or user.email)
        return self.users[user_id]

    async def set_pin(self, user_id: int, pin: str) -> None:
        user = await self.get_user(user_id)
        self.pins[user_id] = check_pin(pin, staff=user.role is Role.LIBRARIAN)
        self.users[user_id] = replace(user, has_pin=True)

    async def set_active(self, user_id: int, active: bool) -> User:
        self.users[user_id] = replace(await self.get_user(user_id), active=active)
        return self.users[user_id]

    async def delete_user(self, user_id: int) -> None:
        await self.get_user(user_id)
        if any(r.user_id == user_id for r in self.reservations.values()):
            raise Conflict.reader_in_use(user_id)
        del self.users[user_id]

    # -- Reservations
    def _holder(self, book_id: UUID) -> Reservation | None:
        return next((r for r in self.reservations.values() if r.book_id == book_id), None)

    async def get_reservation(self, reservation_id: UUID) -> Reservation:
        if reservation_id not in self.reservations:
            raise NotFound.reservation(reservation_id)
        return self.reservations[reservation_id]

    async def reserve(self, book_id: UUID, user_id: int, idempotency_key: str | None = None) -> Reservation:
        # As the repository: the book first (a held book is refused from its lock alone), then the reader.
        await self.get_book(book_id)
        if self._holder(book_id) is not None:
            raise Conflict.book_held(book_id)
        await self.get_user(user_id)
        reservation = Reservation(uuid4(), book_id, user_id, WHEN)
        self.reservations[reservation.reservation_id] = reservation
        return reservation

    async def _owned(self, reservation_id: UUID, user_id: int) -> Reservation:
        reservation = await self.get_reservation(reservation_id)
        if reservation.user_id != user_id:
            raise Forbidden.not_owner(reservation_id)
        return reservation

    async def move(self, reservation_id: UUID, user_id: int, new_book_id: UUID | None = None) -> Reservation:
        reservation = await self._owned(reservation_id, user_id)
        if new_book_id is not None and new_book_id != reservation.book_id:
            await self.get_book(new_book_id)
            if self._holder(new_book_id) is not None:
                raise Conflict.book_held(new_book_id)
            reservation = replace(reservation, book_id=new_book_id)
        self.reservations[reservation_id] = reservation
        return reservation

    async def cancel(self, reservation_id: UUID, user_id: int) -> None:
        await self._owned(reservation_id, user_id)
        del self.reservations[reservation_id]

    async def join(self, book_id: UUID, user_id: int) -> Place | Reservation:
        # As the repository: a free book is reserved; a held one is joined, once, never by its holder.
        holder = self._holder(book_id)
        if holder is None:
            return await self.reserve(book_id, user_id)
        if holder.user_id == user_id:
            raise Conflict.book_held_by_caller(book_id, holder.reservation_id)
        queue = self.queues.setdefault(book_id, [])
        if user_id in queue:
            raise Conflict.already_waiting(book_id, queue.index(user_id) + 1)
        queue.append(user_id)
        return Place(uuid4(), book_id, user_id, len(queue), len(queue))

    async def leave(self, book_id: UUID, user_id: int) -> UUID:
        if user_id not in self.queues.get(book_id, []):
            raise NotFound.not_waiting(book_id, user_id)
        self.queues[book_id].remove(user_id)
        return uuid4()

    async def queue(self, book_id: UUID) -> list[Place]:
        queue = self.queues.get(book_id, [])
        return [Place(uuid4(), book_id, u, n, len(queue)) for n, u in enumerate(queue, 1)]

    async def past_holds(
        self, user_id: int, *, before: UUID | None = None, limit: int = 20
    ) -> tuple[list[PastHold], UUID | None]:
        return self.past.get(user_id, []), None

    async def places(self, user_id: int) -> list[Place]:
        return [p for book_id in self.queues for p in await self.queue(book_id) if p.user_id == user_id]

    # -- Accounts
    async def checked_pin(self, card: int, pin: str) -> User:
        self.attempts[card] = self.attempts.get(card, 0) + 1
        if self.attempts[card] > MAX_FAILED_SIGN_INS:
            raise TooManyAttempts(900)
        user = self.users.get(card)
        if user is None or self.pins.get(card) != pin or not user.active:
            raise Unauthenticated.wrong_card_or_pin()
        self.attempts[card] = 0
        return user

    async def revoke_sessions(self, user_id: int) -> int:
        return self.sessions.pop(user_id, 0)

    async def lift_locks(self, card: int) -> None:
        self.attempts.pop(card, None)

    async def sign_in_lock(self, card: int) -> datetime | None:
        return LOCKED_UNTIL if self.attempts.get(card, 0) >= MAX_FAILED_SIGN_INS else None

    async def record_staff_action(
        self,
        librarian: Caller,
        action: str,
        detail: str,
        *,
        user_id: int | None = None,
        book_id: UUID | None = None,
        reservation_id: UUID | None = None,
    ) -> None:
        self.log.append(Logged(librarian.user_id, action, detail, user_id, book_id, reservation_id))

    # -- History
    async def record(
        self,
        book_id: UUID,
        event: BookEvent,
        *,
        reservation_id: UUID,
        user_id: int,
        by_id: int | None,
        at: datetime | None = None,
    ) -> None:
        if self.history_down:
            raise DatabaseUnavailable("not enough replicas for the history line")
        self.history.append(Line(book_id, event, user_id, by_id))


# The fake is each of the interfaces the service is given (checked by mypy where the service is made below).
def _parts(fake: MemoryLibrary) -> tuple[Books, Readers, Reservations, Accounts, History]:
    return fake, fake, fake, fake, fake


@dataclass
class World:
    repo: MemoryLibrary
    service: LibraryService
    ada: Caller  # a reader
    bob: Caller  # another reader
    desk: Caller  # a librarian
    emma: Book
    persuasion: Book


@pytest.fixture
async def world() -> World:
    repo = MemoryLibrary()
    books, readers, reservations, accounts, history = _parts(repo)
    service = LibraryService(
        books=books, readers=readers, reservations=reservations, accounts=accounts, history=history
    )
    ada = await repo.create_user("Ada Reader", "ada@example.org", 1, pin="2468")
    bob = await repo.create_user("Bob Reader", "bob@example.org", 2, pin="1357")
    desk = await repo.create_user("Dee Desk", "dee@library.example", 90, role=Role.LIBRARIAN, pin="a-long-password")
    emma = await repo.create_book("Emma", "Jane Austen", "novel", 1815)
    persuasion = await repo.create_book("Persuasion", "Jane Austen", "novel", 1817)
    return World(
        repo,
        service,
        Caller(ada.user_id, Role.READER, ada.name),
        Caller(bob.user_id, Role.READER, bob.name),
        Caller(desk.user_id, Role.LIBRARIAN, desk.name),
        emma,
        persuasion,
    )


# -- who may act for whom -------------------------------------------------------------------------------------------
async def test_a_reader_reserves_moves_and_cancels_their_own_and_nothing_is_logged(world: World) -> None:
    s, ada = world.service, world.ada
    held = await s.reserve(ada, world.emma.book_id)
    assert held.user_id == ada.user_id
    assert await s.reservation(ada, held.reservation_id) == held
    moved = await s.move(ada, held.reservation_id, new_book_id=world.persuasion.book_id)
    assert moved.book_id == world.persuasion.book_id
    await s.move(ada, held.reservation_id)  # renew
    await s.cancel(ada, held.reservation_id)
    assert world.repo.reservations == {}
    assert world.repo.log == []


async def test_each_change_of_a_reservation_is_a_line_in_its_books_history(world: World) -> None:
    s, ada, desk = world.service, world.ada, world.desk
    emma, persuasion = world.emma.book_id, world.persuasion.book_id
    held = await s.reserve(ada, emma)
    await s.move(ada, held.reservation_id)  # renew
    await s.move(ada, held.reservation_id, new_book_id=persuasion)
    await s.cancel(desk, held.reservation_id)  # at the desk
    assert world.repo.history == [
        Line(emma, BookEvent.RESERVED, ada.user_id, ada.user_id),
        Line(emma, BookEvent.RENEWED, ada.user_id, ada.user_id),
        Line(emma, BookEvent.MOVED_AWAY, ada.user_id, ada.user_id),
        Line(persuasion, BookEvent.MOVED_HERE, ada.user_id, ada.user_id),
        Line(persuasion, BookEvent.CANCELLED, ada.user_id, desk.user_id),
    ]


async def test_a_refused_change_leaves_no_line_and_a_lost_line_leaves_the_change_made(world: World) -> None:
    s, ada, bob = world.service, world.ada, world.bob
    held = await s.reserve(ada, world.emma.book_id)
    with pytest.raises(Conflict):
        await s.reserve(bob, world.emma.book_id)
    with pytest.raises(NotFound):
        await s.cancel(bob, held.reservation_id)
    assert [line.event for line in world.repo.history] == [BookEvent.RESERVED]
    # The history is a record written after the fact: Cassandra refusing its line does not undo the reservation.
    world.repo.history_down = True
    other = await s.reserve(bob, world.persuasion.book_id)
    assert world.repo.reservations[other.reservation_id] == other
    await s.cancel(bob, other.reservation_id)
    assert other.reservation_id not in world.repo.reservations


async def test_a_failing_history_write_does_not_fail_the_change(world: World) -> None:
    s, ada, desk, repo = world.service, world.ada, world.desk, world.repo
    repo.history_down = True
    held = await s.reserve(desk, world.emma.book_id, named=ada.user_id)
    moved = await s.move(desk, held.reservation_id, new_book_id=world.persuasion.book_id)
    assert repo.reservations[held.reservation_id] == moved and moved.book_id == world.persuasion.book_id
    assert repo.history == [] and [e.action for e in repo.log] == ["reserve", "move"]  # the log still written


async def test_a_failing_staff_log_write_does_not_fail_the_change_nor_skip_its_history(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    s, ada, desk, repo = world.service, world.ada, world.desk, world.repo
    held = await s.reserve(desk, world.emma.book_id, named=ada.user_id)

    async def down(*args: object, **kwargs: object) -> None:
        raise DatabaseUnavailable("not enough replicas for the staff log")

    monkeypatch.setattr(repo, "record_staff_action", down)
    await s.cancel(desk, held.reservation_id)  # no 503 for a cancel that stands
    assert held.reservation_id not in repo.reservations
    assert [line.event for line in repo.history] == [BookEvent.RESERVED, BookEvent.CANCELLED]
    assert [e.action for e in repo.log] == ["reserve"]  # the cancel's line was the one lost


async def test_a_reader_cannot_act_for_another_reader(world: World) -> None:
    s, ada, bob = world.service, world.ada, world.bob
    with pytest.raises(Forbidden):
        await s.reserve(ada, world.emma.book_id, named=bob.user_id)
    bobs = await s.reserve(bob, world.emma.book_id)
    with pytest.raises(NotFound):
        await s.reservation(ada, bobs.reservation_id)
    with pytest.raises(NotFound):
        await s.cancel(ada, bobs.reservation_id)  # the repository's refusal (not ada's), told as a 404
    with pytest.raises(Forbidden):
        await s.cancel(ada, bobs.reservation_id, named=bob.user_id)  # naming its reader does not help
    with pytest.raises(NotFound):
        await s.move(ada, bobs.reservation_id)
    with pytest.raises(Forbidden):
        s.whose_reservations(ada, bob.user_id)
    assert s.whose_reservations(ada, None) == ada.user_id
    assert list(world.repo.reservations) == [bobs.reservation_id]


async def test_another_readers_reservation_answers_as_one_that_does_not_exist(world: World) -> None:
    """A reader who guesses an id (derived from another reader's idempotency key) learns nothing: the same error,
    the same words, for another reader's reservation and for none at all."""
    s, ada, bob = world.service, world.ada, world.bob
    bobs = await s.reserve(bob, world.emma.book_id)
    nobodys = uuid4()
    for act in (
        lambda rid: s.reservation(ada, rid),
        lambda rid: s.cancel(ada, rid),
        lambda rid: s.move(ada, rid),
        lambda rid: s.move(ada, rid, new_book_id=world.persuasion.book_id),
    ):
        answers = []
        for rid in (bobs.reservation_id, nobodys):
            with pytest.raises(NotFound) as refused:
                await act(rid)
            answers.append(str(refused.value).replace(str(rid), "<id>"))
        assert answers[0] == answers[1]
    assert world.repo.reservations == {bobs.reservation_id: bobs}
    # The desk is told whose it is, as before.
    with pytest.raises(Forbidden):
        await s.cancel(world.desk, bobs.reservation_id, named=ada.user_id)


async def test_nobody_signed_in_may_act(world: World) -> None:
    s = world.service
    with pytest.raises(Unauthenticated):
        await s.reserve(None, world.emma.book_id, named=world.ada.user_id)
    with pytest.raises(Unauthenticated):
        s.whose_reservations(None, None)
    with pytest.raises(Unauthenticated):
        await s.add_book(None, "A", "B", "C", None)
    with pytest.raises(Unauthenticated):
        await s.change_own_pin(None, "2468", "8642")


async def test_the_desk_acts_for_any_reader_and_every_such_action_is_logged(world: World) -> None:
    s, ada, desk, repo = world.service, world.ada, world.desk, world.repo
    held = await s.reserve(desk, world.emma.book_id, named=ada.user_id)
    assert held.user_id == ada.user_id
    assert s.whose_reservations(desk, None) is None and s.whose_reservations(desk, ada.user_id) == ada.user_id
    assert await s.reservation(desk, held.reservation_id) == held
    await s.move(desk, held.reservation_id)  # the reservation's own reader, unnamed
    await s.move(desk, held.reservation_id, named=ada.user_id, new_book_id=world.persuasion.book_id)
    await s.cancel(desk, held.reservation_id)
    assert [(e.action, e.detail) for e in repo.log] == [
        ("reserve", "reserved “Emma” for Ada Reader"),
        ("renew", "renewed Ada Reader's reservation of “Emma”"),
        ("move", "moved Ada Reader's reservation to “Persuasion”"),
        ("cancel", "cancelled Ada Reader's reservation of “Persuasion”"),
    ]
    assert all(e.librarian_id == desk.user_id and e.user_id == ada.user_id for e in repo.log)
    assert all(e.reservation_id == held.reservation_id for e in repo.log)
    assert [e.book_id for e in repo.log] == [world.emma.book_id] * 2 + [world.persuasion.book_id] * 2


async def test_the_desk_naming_a_card_that_does_not_exist_is_told_so_even_for_a_held_book(world: World) -> None:
    s = world.service
    await s.reserve(world.ada, world.emma.book_id)
    with pytest.raises(UnknownReader):
        await s.reserve(world.desk, world.emma.book_id, named=987_654)
    with pytest.raises(Conflict):  # a reader's own card: the session checked it, the book is what is refused
        await s.reserve(world.bob, world.emma.book_id)
    assert world.repo.log == []


async def test_a_librarian_naming_the_wrong_reader_is_refused_by_the_repository(world: World) -> None:
    s = world.service
    held = await s.reserve(world.ada, world.emma.book_id)
    with pytest.raises(Forbidden):
        await s.cancel(world.desk, held.reservation_id, named=world.bob.user_id)
    assert held.reservation_id in world.repo.reservations and world.repo.log == []


async def test_a_librarians_own_reservations_are_not_desk_actions(world: World) -> None:
    s, desk = world.service, world.desk
    held = await s.reserve(desk, world.emma.book_id)
    await s.move(desk, held.reservation_id)
    await s.cancel(desk, held.reservation_id)
    assert world.repo.log == []


async def test_the_log_names_a_reader_or_book_deleted_since_by_number(world: World) -> None:
    s, repo = world.service, world.repo
    held = await s.reserve(world.ada, world.emma.book_id)
    del repo.users[world.ada.user_id], repo.books[world.emma.book_id]
    await s.cancel(world.desk, held.reservation_id)
    assert repo.log[-1].detail == f"cancelled card {world.ada.user_id}'s reservation of a deleted book"


# -- cards ----------------------------------------------------------------------------------------------------------
async def test_a_reader_sees_and_edits_only_their_own_card(world: World) -> None:
    s, ada, bob = world.service, world.ada, world.bob
    assert (await s.account(ada, ada.user_id)).name == "Ada Reader"
    with pytest.raises(Forbidden):
        await s.account(ada, bob.user_id)
    with pytest.raises(Forbidden):
        await s.update_account(ada, bob.user_id, AccountChange(name="Not Bob"))
    assert (await s.update_account(ada, ada.user_id, AccountChange(name="Ada Lovelace"))).name == "Ada Lovelace"
    assert world.repo.users[bob.user_id].name == "Bob Reader" and world.repo.log == []


async def test_only_the_staff_deactivate_and_nothing_is_written_when_refused(world: World) -> None:
    s, ada, repo = world.service, world.ada, world.repo
    with pytest.raises(Forbidden):
        await s.update_account(ada, ada.user_id, AccountChange(name="Changed", active=False))
    with pytest.raises(Forbidden):
        await s.update_account(ada, ada.user_id, AccountChange(name="Changed", changes_role=True))
    with pytest.raises(InvalidInput):
        await s.update_account(world.desk, ada.user_id, AccountChange(name="Changed", changes_role=True))
    assert repo.users[ada.user_id].name == "Ada Reader" and repo.users[ada.user_id].active


async def test_deactivating_a_card_ends_its_sessions_and_is_logged(world: World) -> None:
    s, ada, desk, repo = world.service, world.ada, world.desk, world.repo
    repo.sessions[ada.user_id] = 3
    with pytest.raises(Forbidden):
        await s.set_active(ada, ada.user_id, False)
    assert repo.sessions[ada.user_id] == 3
    user = await s.update_account(desk, ada.user_id, AccountChange(active=False))
    assert not user.active and ada.user_id not in repo.sessions
    repo.sessions[ada.user_id] = 1  # reactivating ends nothing
    assert (await s.set_active(desk, ada.user_id, True)).active and repo.sessions[ada.user_id] == 1
    assert [(e.action, e.detail) for e in repo.log] == [
        ("deactivated", "deactivated Ada Reader's card"),
        ("reactivated", "reactivated Ada Reader's card"),
    ]


async def test_deleting_a_card_ends_its_sessions_and_a_reader_who_holds_a_book_is_kept(world: World) -> None:
    s, ada, bob, desk, repo = world.service, world.ada, world.bob, world.desk, world.repo
    repo.sessions[bob.user_id] = 2
    with pytest.raises(Forbidden):
        await s.delete_reader(ada, bob.user_id)
    await s.reserve(ada, world.emma.book_id)
    with pytest.raises(Conflict):
        await s.delete_reader(desk, ada.user_id)
    await s.delete_reader(desk, bob.user_id)
    assert bob.user_id not in repo.users and bob.user_id not in repo.sessions
    assert ada.user_id in repo.users
    assert [(e.action, e.detail, e.user_id) for e in repo.log] == [
        ("delete reader", "deleted Bob Reader's card", bob.user_id)
    ]


async def test_signing_out_everywhere_is_the_holders_or_the_staffs(world: World) -> None:
    s, ada, bob, desk, repo = world.service, world.ada, world.bob, world.desk, world.repo
    repo.sessions.update({ada.user_id: 2, bob.user_id: 1})
    with pytest.raises(Forbidden):
        await s.sign_out_everywhere(ada, bob.user_id)
    assert await s.sign_out_everywhere(ada, ada.user_id) == 2
    assert await s.sign_out_everywhere(desk, bob.user_id) == 1
    assert [(e.action, e.detail) for e in repo.log] == [("sign out", "signed Bob Reader out everywhere")]


async def test_changing_ones_own_pin_needs_the_current_one(world: World) -> None:
    s, ada, repo = world.service, world.ada, world.repo
    with pytest.raises(InvalidInput) as missing:
        await s.update_account(ada, ada.user_id, AccountChange(pin="8642"))
    assert missing.value.field == "current_pin"
    with pytest.raises(Unauthenticated):
        await s.update_account(ada, ada.user_id, AccountChange(name="Changed", pin="8642", current_pin="0000"))
    assert repo.pins[ada.user_id] == "2468" and repo.users[ada.user_id].name == "Ada Reader"
    await s.update_account(ada, ada.user_id, AccountChange(pin="8642", current_pin="2468"))
    assert repo.pins[ada.user_id] == "8642" and repo.attempts.get(ada.user_id, 0) == 0
    await s.change_own_pin(ada, "8642", "1111")
    assert repo.pins[ada.user_id] == "1111" and repo.log == []


async def test_a_librarian_changes_their_own_pin_with_the_current_one_too(world: World) -> None:
    s, desk, repo = world.service, world.desk, world.repo
    with pytest.raises(InvalidInput):
        await s.update_account(desk, desk.user_id, AccountChange(pin="another-long-password"))
    await s.update_account(
        desk, desk.user_id, AccountChange(pin="another-long-password", current_pin="a-long-password")
    )
    assert repo.pins[desk.user_id] == "another-long-password"


async def test_guessing_the_current_pin_counts_towards_the_lockout(world: World) -> None:
    s, ada, repo = world.service, world.ada, world.repo
    for _ in range(MAX_FAILED_SIGN_INS):
        with pytest.raises(Unauthenticated):
            await s.change_own_pin(ada, "0000", "8642")
    with pytest.raises(TooManyAttempts):
        await s.change_own_pin(ada, "2468", "8642")  # even the right one, while the card is locked
    assert repo.pins[ada.user_id] == "2468"


async def test_a_librarians_new_pin_lifts_the_lock(world: World) -> None:
    s, ada, desk, repo = world.service, world.ada, world.desk, world.repo
    for _ in range(MAX_FAILED_SIGN_INS):
        with pytest.raises(Unauthenticated):
            await repo.checked_pin(ada.user_id, "0000")
    assert await s.sign_in_locks(desk, [ada.user_id, world.bob.user_id]) == {ada.user_id: LOCKED_UNTIL}
    with pytest.raises(Forbidden):
        await s.sign_in_locks(ada, [ada.user_id])  # the lock state is for the staff screens
    await s.update_account(desk, ada.user_id, AccountChange(pin="9753"))
    assert await s.sign_in_locks(desk, [ada.user_id]) == {}
    assert await repo.checked_pin(ada.user_id, "9753") == repo.users[ada.user_id]


async def test_a_deleted_card_number_made_again_inherits_no_lock(world: World) -> None:
    s, bob, desk, repo = world.service, world.bob, world.desk, world.repo
    for _ in range(MAX_FAILED_SIGN_INS):
        with pytest.raises(Unauthenticated):
            await repo.checked_pin(bob.user_id, "0000")
    repo.sessions[bob.user_id] = 2
    await s.delete_reader(desk, bob.user_id)
    assert bob.user_id not in repo.sessions and bob.user_id not in repo.attempts
    await s.add_reader(desk, "New Bob", "nb@example.org", bob.user_id, pin="4321")
    assert await repo.checked_pin(bob.user_id, "4321") == repo.users[bob.user_id]


async def test_a_card_made_under_a_number_strangers_guessed_at_starts_unlocked(world: World) -> None:
    s, desk, repo = world.service, world.desk, world.repo
    for _ in range(MAX_FAILED_SIGN_INS):
        with pytest.raises(Unauthenticated):
            await repo.checked_pin(9001, "0000")  # nobody holds card 9001 yet
    await s.add_reader(desk, "Cleo", "cleo@example.org", 9001, pin="4321")
    assert await s.sign_in_locks(desk, [9001]) == {}
    assert await repo.checked_pin(9001, "4321") == repo.users[9001]


async def test_a_surrogate_current_pin_is_a_400_and_costs_no_attempt(world: World) -> None:
    s, ada, repo = world.service, world.ada, world.repo
    with pytest.raises(InvalidInput) as refused:
        await s.change_own_pin(ada, "\ud800", "8642")
    assert refused.value.field == "current_pin"
    assert ada.user_id not in repo.attempts


async def test_a_new_pin_the_rules_refuse_costs_no_attempt(world: World) -> None:
    s, ada, repo = world.service, world.ada, world.repo
    with pytest.raises(InvalidInput):
        await s.change_own_pin(ada, "0000", "1")
    assert ada.user_id not in repo.attempts


async def test_the_desk_sets_another_readers_pin_without_the_current_one(world: World) -> None:
    s, ada, desk, repo = world.service, world.ada, world.desk, world.repo
    user = await s.update_account(desk, ada.user_id, AccountChange(name="Ada Lovelace", email="a@b.org", pin="9999"))
    assert user.name == "Ada Lovelace" and repo.pins[ada.user_id] == "9999"
    await s.update_account(desk, ada.user_id, AccountChange(pin="7777"))
    assert [(e.action, e.detail) for e in repo.log] == [
        ("edit reader", "edited Ada Lovelace and set a new PIN"),
        ("edit reader", "set a new PIN for Ada Lovelace"),
    ]
    assert ada.user_id not in repo.attempts  # the desk's change is no guess at the PIN


async def test_a_librarians_changes_to_their_own_card_are_not_logged(world: World) -> None:
    s, desk = world.service, world.desk
    await s.update_account(desk, desk.user_id, AccountChange(name="Dee Desk-Jones"))
    await s.sign_out_everywhere(desk, desk.user_id)
    assert world.repo.log == []


async def test_only_the_staff_add_readers_and_each_is_logged(world: World) -> None:
    s, ada, desk = world.service, world.ada, world.desk
    with pytest.raises(Forbidden):
        await s.add_reader(ada, "New Reader", "new@example.org")
    user = await s.add_reader(desk, "New Reader", "new@example.org", pin="4321")
    assert world.repo.log == [
        Logged(desk.user_id, "add reader", f"added New Reader (card {user.user_id})", user.user_id, None, None)
    ]


# -- the catalogue --------------------------------------------------------------------------------------------------
async def test_only_the_staff_change_the_catalogue_and_each_change_is_logged(world: World) -> None:
    s, ada, desk, repo = world.service, world.ada, world.desk, world.repo
    with pytest.raises(Forbidden):
        await s.add_book(ada, "Sanditon", "Jane Austen", "novel", 1817)
    with pytest.raises(Forbidden):
        await s.edit_book(ada, world.emma.book_id, title="Emma!")
    with pytest.raises(Forbidden):
        await s.delete_book(ada, world.emma.book_id)
    book = await s.add_book(desk, "Sanditon", "Jane Austen", "novel", 1817)
    await s.edit_book(desk, book.book_id, title="Sanditon (unfinished)")
    held = await s.reserve(ada, world.emma.book_id)
    with pytest.raises(Conflict):
        await s.delete_book(desk, world.emma.book_id)
    await s.cancel(ada, held.reservation_id)
    assert (await s.delete_book(desk, world.emma.book_id)).title == "Emma"
    assert [(e.action, e.detail, e.book_id) for e in repo.log] == [
        ("add book", "added “Sanditon”", book.book_id),
        ("edit book", "edited “Sanditon (unfinished)”", book.book_id),
        ("delete book", "deleted “Emma”", world.emma.book_id),
    ]


async def test_a_reader_queues_and_leaves_for_themselves_only_and_sees_only_their_own_place(world: World) -> None:
    s, ada, bob, desk = world.service, world.ada, world.bob, world.desk
    await s.reserve(bob, world.emma.book_id)
    with pytest.raises(Forbidden):
        await s.join(ada, world.emma.book_id, named=bob.user_id)
    place = await s.join(ada, world.emma.book_id)
    assert isinstance(place, Place) and place.position == 1
    waiting, seen = await s.queue(ada, world.emma.book_id)
    assert [p.user_id for p in seen] == [ada.user_id] and waiting >= 1
    assert [p.user_id for p in (await s.queue(desk, world.emma.book_id))[1]][0] == ada.user_id
    with pytest.raises(Forbidden):
        await s.leave(bob, world.emma.book_id, named=ada.user_id)
    with pytest.raises(Forbidden):
        await s.places(bob, ada.user_id)
    assert [p.book_id for p in await s.places(ada)] == [world.emma.book_id]
    await s.leave(ada, world.emma.book_id)
    assert await s.places(ada) == []
    with pytest.raises(Unauthenticated):
        await s.queue(None, world.emma.book_id)


async def test_the_desk_naming_a_card_that_does_not_exist_is_told_so_when_joining(world: World) -> None:
    await world.service.reserve(world.bob, world.emma.book_id)
    with pytest.raises(UnknownReader):
        await world.service.join(world.desk, world.emma.book_id, named=999_999)


async def test_a_reader_reads_their_own_past_holds_and_the_desk_anyones(world: World) -> None:
    s, ada, bob, desk = world.service, world.ada, world.bob, world.desk
    line = PastHold(WHEN, HoldEnd.EXPIRED, uuid4(), world.emma.book_id, WHEN)
    world.repo.past[ada.user_id] = [line]
    assert await s.past_holds(ada) == ([line], None)
    assert await s.past_holds(desk, ada.user_id) == ([line], None)
    with pytest.raises(Forbidden):
        await s.past_holds(bob, ada.user_id)
