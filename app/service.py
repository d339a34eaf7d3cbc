"""The service layer: the rules that span the repository's parts, each written once, for every door (the JSON API,
the pages) to call with the caller it found.

The repository (app/repository/) reads and writes one part each: books, cards, reservations, sessions and the
staff log. The web layer (app/web/) parses requests and renders answers. Between them, this module decides:

- **who may act for whom**: a reader acts on their own card and their own reservations only, a librarian on
  anyone's. The decisions are app/access.py's pure functions (`acting_for`, `check_may_see_reader`); this is the
  one place that applies them to what was read. Work on the catalogue and on the cards (adding, deactivating,
  deleting one) is a librarian's.
- **the staff log**: a librarian's change of the catalogue, of another's card, or of another reader's reservation
  (at the desk) leaves a line in it with the librarian's card; what anyone does to their own card or reservations
  leaves none.
- **what ending a card ends**: deactivating a card or deleting it ends its sessions on every instance (and a
  session signs in only while its card exists with the generation it was issued for: app/repository/accounts.py);
  deleting it also forgets its sign-in locks, so a card number handed out again inherits nothing.
- **a new PIN lifts the card's sign-in locks**, whoever sets it (the holder with the current PIN, or a librarian).
- **another reader's reservation is a 404 to a reader**, the same as one that does not exist, so an id (derived from
  an idempotency key) reveals nothing.
- **the books' reservation history**: after every reserve, renew, move and cancel made through the service, a line
  in the book's history (app/repository/history.py) says what happened, for which reader and by whom. It is written
  after the change is made and outside the reservations' protocol: a line that cannot be written is logged, and the
  change stands.
- **one's own PIN**: it is changed only with the current one (a session left open somewhere is not enough to take
  the card over), and that check counts towards the card's lockout like a sign-in; a librarian sets another's
  PIN without it (a forgotten PIN).

Next here: the hold limits and their expiry.

The service reaches the repository only through the small interfaces below (`typing.Protocol`), which the parts of
`Library` satisfy; tests/unit/test_service.py runs every rule against an in-memory fake of them, in milliseconds.
What must hold under concurrency (a book held by one reservation at a time, a reader deleted while a reserve runs)
is the repository's, and is tested against a real Cassandra only (tests/integration/).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol
from uuid import UUID

from app.access import Caller, acting_for, check_may_see_reader, may_see_reader
from app.models import (
    Book,
    BookEvent,
    Forbidden,
    InvalidInput,
    LibraryError,
    NotFound,
    OutOfRange,
    PastHold,
    Place,
    Reservation,
    Role,
    Unauthenticated,
    User,
)
from app.rules import check_pin, check_pin_as_typed, check_suspension, parse_suspension

if TYPE_CHECKING:
    from app.repository import Library

log = logging.getLogger(__name__)


# -- what the service uses of the repository ----------------------------------------------------------------------
class Books(Protocol):
    """The catalogue part (app/repository/catalogue.py)."""

    async def get_book(self, book_id: UUID) -> Book: ...

    async def create_book(
        self, title: str, author: str, genre: str, published_year: int | None, book_id: UUID | None = None
    ) -> Book: ...

    async def update_book(
        self,
        book_id: UUID,
        *,
        title: str | None = None,
        author: str | None = None,
        genre: str | None = None,
        published_year: int | None = None,
    ) -> Book: ...

    async def delete_book(self, book_id: UUID) -> None: ...


class Readers(Protocol):
    """The cards (app/repository/readers.py)."""

    async def get_user(self, user_id: int) -> User: ...

    async def create_user(
        self,
        name: str,
        email: str,
        user_id: int | None = None,
        *,
        role: Role = Role.READER,
        pin: str | None = None,
    ) -> User: ...

    async def update_user(self, user_id: int, *, name: str | None = None, email: str | None = None) -> User: ...

    async def set_pin(self, user_id: int, pin: str) -> None: ...

    async def set_active(self, user_id: int, active: bool) -> User: ...

    async def delete_user(self, user_id: int) -> None: ...


class Reservations(Protocol):
    """The reservations and their locks (app/repository/reservations.py, and the read of one from listings.py): it
    refuses (Forbidden) to move or cancel a reservation for another reader than its own, whoever asks."""

    async def get_reservation(self, reservation_id: UUID) -> Reservation: ...

    async def reserve(self, book_id: UUID, user_id: int, idempotency_key: str | None = None) -> Reservation: ...

    async def move(self, reservation_id: UUID, user_id: int, new_book_id: UUID | None = None) -> Reservation: ...

    async def cancel(self, reservation_id: UUID, user_id: int) -> None: ...

    async def join(self, book_id: UUID, user_id: int) -> Place | Reservation: ...

    async def leave(self, book_id: UUID, user_id: int) -> UUID: ...

    async def queue(self, book_id: UUID) -> list[Place]: ...

    async def suspend(self, book_id: UUID, user_id: int, until: datetime) -> Place: ...

    async def resume(self, book_id: UUID, user_id: int) -> Place | Reservation: ...

    async def lend(self, book_id: UUID) -> Reservation: ...

    async def take_back(self, book_id: UUID) -> Reservation: ...

    async def places(self, user_id: int) -> list[Place]: ...

    async def past_holds(
        self, user_id: int, *, before: UUID | None = None, limit: int = ...
    ) -> tuple[list[PastHold], UUID | None]: ...


class Accounts(Protocol):
    """Sessions, the sign-in lockout and the staff log (app/repository/accounts.py)."""

    async def checked_pin(self, card: int, pin: str) -> User: ...

    async def revoke_sessions(self, user_id: int) -> int: ...

    async def lift_locks(self, card: int) -> None: ...

    async def sign_in_lock(self, card: int) -> datetime | None: ...

    async def record_staff_action(
        self,
        librarian: Caller,
        action: str,
        detail: str,
        *,
        user_id: int | None = None,
        book_id: UUID | None = None,
        reservation_id: UUID | None = None,
    ) -> None: ...


class History(Protocol):
    """The books' reservation history (app/repository/history.py): a record written after the fact."""

    async def record(
        self,
        book_id: UUID,
        event: BookEvent,
        *,
        reservation_id: UUID,
        user_id: int,
        by_id: int | None,
        at: datetime | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class AccountChange:
    """What a request asks to change of a card; None: leave it as it is."""

    name: str | None = None
    email: str | None = None
    pin: str | None = None
    current_pin: str | None = None  # the card's PIN now: needed to change one's own
    active: bool | None = None  # a librarian's: False deactivates the card and ends its sessions
    changes_role: bool = False  # a role is chosen when the card is added; asking to change it is refused

    @property
    def for_staff_only(self) -> bool:
        return self.active is not None or self.changes_role


class LibraryService:
    """The rules of the module docstring, over the repository's parts. Each operation takes the `Caller` the web
    layer found (None: nobody signed in) and raises the domain errors of app/models.py."""

    def __init__(
        self, *, books: Books, readers: Readers, reservations: Reservations, accounts: Accounts, history: History
    ) -> None:
        self.books = books
        self.readers = readers
        self.reservations = reservations
        self.accounts = accounts
        self.history = history

    @classmethod
    def over(cls, library: Library) -> LibraryService:
        """The service over the parts of one `Library` (one app instance)."""
        return cls(
            books=library.catalogue,
            readers=library.readers,
            reservations=library,  # the reservation use cases and the listing that reads one, as the facade has them
            accounts=library.accounts,
            history=library.history,
        )

    # -- queues -------------------------------------------------------------------------------------------------
    async def join(self, caller: Caller | None, book_id: UUID, named: int | None = None) -> Place | Reservation:
        """Puts the caller (or, at the desk, the reader named) in the queue of a book another reader holds; a book
        free with nobody waiting is reserved instead (app/repository/reservations.py, `join`)."""
        reader = acting_for(caller, named)
        if caller is not None and reader != caller.user_id:
            await self.readers.get_user(reader)  # a mistyped card is told as such
        joined = await self.reservations.join(book_id, reader)
        if isinstance(joined, Reservation):
            await _after_the_fact(
                self._desk_action(caller, "reserve", joined, "reserved {book} for {reader}"),
                self._remember(caller, BookEvent.RESERVED, joined, joined.reserved_at),
            )
        else:
            placed = Reservation(joined.reservation_id, book_id, reader, datetime.now(UTC))
            await _after_the_fact(self._desk_action(caller, "join", placed, "put {reader} in the queue for {book}"))
        return joined

    async def leave(self, caller: Caller | None, book_id: UUID, named: int | None = None) -> None:
        """Takes the caller (or, at the desk, the reader named) out of the book's queue."""
        reader = acting_for(caller, named)
        left = await self.reservations.leave(book_id, reader)
        placed = Reservation(left, book_id, reader, datetime.now(UTC))
        await _after_the_fact(self._desk_action(caller, "leave", placed, "took {reader} out of the queue for {book}"))

    async def suspend(
        self, caller: Caller | None, book_id: UUID, until: object, named: int | None = None, *, time_zone: str
    ) -> Place:
        """Suspends the caller's (or, at the desk, the reader named) place in the book's queue until a date to come
        (app/rules.py, `check_suspension`): it keeps its position, and the book passes it by until then."""
        reader = acting_for(caller, named)
        end = parse_suspension(until, time_zone)
        try:
            check_suspension(end, now=datetime.now(UTC))
        except OutOfRange:
            # "Not in the queue" comes first: there is nothing to suspend, whatever the date (the queue is read only
            # for a date refused, never on the way to a suspension).
            if not any(p.user_id == reader for p in await self.reservations.queue(book_id)):
                raise NotFound.not_waiting(book_id, reader) from None
            raise
        place = await self.reservations.suspend(book_id, reader, end)
        held = Reservation(place.reservation_id, book_id, reader, datetime.now(UTC))
        detail = f"suspended the place of {{reader}} in the queue for {{book}} until {end:%Y-%m-%d %H:%M} UTC"
        await _after_the_fact(self._desk_action(caller, "suspend", held, detail))
        return place

    async def resume(self, caller: Caller | None, book_id: UUID, named: int | None = None) -> Place | Reservation:
        """Makes the caller's (or the named reader's) suspended place active again; a free book is then theirs."""
        reader = acting_for(caller, named)
        resumed = await self.reservations.resume(book_id, reader)
        held = Reservation(resumed.reservation_id, book_id, reader, datetime.now(UTC))
        await _after_the_fact(self._desk_action(caller, "resume", held, "resumed the place of {reader} for {book}"))
        return resumed

    # -- the loan (the desk only) -----------------------------------------------------------------------------
    async def lend(self, caller: Caller | None, book_id: UUID) -> Reservation:
        """The reader holding the book collected it at the desk: on loan until returned. Librarians only."""
        librarian = _librarian(caller)
        loan = await self.reservations.lend(book_id)
        await _after_the_fact(self._desk_action(librarian, "collect", loan, "lent {book} to {reader}: collected"))
        return loan

    async def take_back(self, caller: Caller | None, book_id: UUID) -> Reservation:
        """The book on loan came back: the next reader in its queue gets it, or it is free. Librarians only."""
        librarian = _librarian(caller)
        loan = await self.reservations.take_back(book_id)
        await _after_the_fact(self._desk_action(librarian, "return", loan, "{reader} returned {book}"))
        return loan

    async def queue(self, caller: Caller | None, book_id: UUID) -> tuple[int, list[Place]]:
        """How many wait for the book, and the places the caller may see: a reader their own, staff every one."""
        if caller is None:
            raise Unauthenticated.sign_in_needed()
        places = await self.reservations.queue(book_id)
        return len(places), [p for p in places if may_see_reader(caller, p.user_id)]

    async def places(self, caller: Caller | None, named: int | None = None) -> list[Place]:
        """The queues a reader is in, with their place in each: the caller's own, or at the desk the reader named."""
        return await self.reservations.places(acting_for(caller, named))

    async def past_holds(
        self, caller: Caller | None, named: int | None = None, before: UUID | None = None
    ) -> tuple[list[PastHold], UUID | None]:
        """A reader's past holds, newest first, a page at a time (`before`: the page's cursor): the caller's own, or at
        the desk the reader named."""
        return await self.reservations.past_holds(acting_for(caller, named), before=before)

    # -- reservations ---------------------------------------------------------------------------------------------
    async def reservation(self, caller: Caller | None, reservation_id: UUID) -> Reservation:
        """A reservation, for its reader or a librarian."""
        reservation = await self.reservations.get_reservation(reservation_id)
        if caller is None:
            raise Unauthenticated.sign_in_needed()
        if not may_see_reader(caller, reservation.user_id):
            raise NotFound.reservation(reservation_id)  # as for one that does not exist: the id reveals nothing
        return reservation

    def whose_reservations(self, caller: Caller | None, named: int | None) -> int | None:
        """The reader whose reservations a listing shows: a reader's own (naming another is a 403); for a librarian
        the reader named, or everybody's (None)."""
        if caller is not None and caller.is_staff:
            return named
        return acting_for(caller, named)

    async def reserve(
        self, caller: Caller | None, book_id: UUID, named: int | None = None, idempotency_key: str | None = None
    ) -> Reservation:
        """Reserves the book for the caller, or for the reader a librarian names. The repository looks at the book
        before the reader (a held book is refused from one read of its lock), so a card the desk names is checked
        here first: a mistyped card number is told as such, not as "the book is taken". A caller's own card was
        checked by their session."""
        reader = acting_for(caller, named)
        if caller is not None and reader != caller.user_id:
            await self.readers.get_user(reader)
        reservation = await self.reservations.reserve(book_id, reader, idempotency_key)
        await _after_the_fact(
            self._desk_action(caller, "reserve", reservation, "reserved {book} for {reader}"),
            self._remember(caller, BookEvent.RESERVED, reservation, reservation.reserved_at),
        )
        return reservation

    async def move(
        self,
        caller: Caller | None,
        reservation_id: UUID,
        named: int | None = None,
        new_book_id: UUID | None = None,
        *,
        read: Reservation | None = None,
    ) -> Reservation:
        """Moves the reservation to `new_book_id`, or renews it when no book is given. `named`, `read`: as `cancel`.

        The reservation is read before the change (unless `read` is given) for the book it leaves, which only the
        history needs: one more read for every move and cancel. That read is not the lock's: another request may
        move the reservation between it and the change, and then the history's "moved away" (or a cancel's line)
        names the book it was read on, not the one it left; the reservation itself is still what the lock decided.
        Closing that gap would need the lock to answer the reservation it changed, which the lock core (its
        protocol, tested by tests/schedules) does not; a wrong line is a record's error, never a reservation's."""
        read = read or await self._read_quietly(reservation_id)  # the book it leaves, for that book's history
        owner = await self._owner(caller, reservation_id, named, read)
        with _hidden_from(caller, reservation_id):
            moved = await self.reservations.move(reservation_id, owner, new_book_id)
        if new_book_id is None or (read is not None and read.book_id == moved.book_id):
            await _after_the_fact(
                self._desk_action(caller, "renew", moved, "renewed {reader}'s reservation of {book}"),
                self._remember(caller, BookEvent.RENEWED, moved, moved.reserved_at),
            )
        else:
            await _after_the_fact(
                self._desk_action(caller, "move", moved, "moved {reader}'s reservation to {book}"),
                *([self._remember(caller, BookEvent.MOVED_AWAY, read, moved.reserved_at)] if read is not None else []),
                self._remember(caller, BookEvent.MOVED_HERE, moved, moved.reserved_at),
            )
        return moved

    async def cancel(
        self,
        caller: Caller | None,
        reservation_id: UUID,
        named: int | None = None,
        *,
        read: Reservation | None = None,
    ) -> None:
        """Cancels a reservation: the caller's own, or at the desk anyone's. `named`: the reader the caller says it
        is (a reader naming another is a 403; a reservation not theirs is the repository's 403). `read`: the
        reservation, when the caller has read it already. One read before the change, unless given: its reader (for
        the desk, which need not name one), and its book, for the log and the history; see `move` for what that read
        cannot promise."""
        if read is None and caller is not None and caller.is_staff:
            # The desk acts as the reservation's reader (`_owner`): a missing reservation is its 404 here already.
            read = await self.reservations.get_reservation(reservation_id)
        elif read is None:
            read = await self._read_quietly(reservation_id)
        owner = await self._owner(caller, reservation_id, named, read)
        with _hidden_from(caller, reservation_id):
            await self.reservations.cancel(reservation_id, owner)
        if read is not None:
            await _after_the_fact(
                self._desk_action(caller, "cancel", read, "cancelled {reader}'s reservation of {book}"),
                self._remember(caller, BookEvent.CANCELLED, read, None),
            )

    async def _read_quietly(self, reservation_id: UUID) -> Reservation | None:
        """The reservation as it is before a change, or None if there is none: the change itself then answers as it
        would have (a 404, or another reader's reservation told as one)."""
        try:
            return await self.reservations.get_reservation(reservation_id)
        except NotFound:
            return None

    async def _remember(
        self, caller: Caller | None, event: BookEvent, reservation: Reservation, at: datetime | None
    ) -> None:
        """A line in the book's history, after the change is made, `at` the time the lock gave the reservation (a
        reserve, renew or move: so a retried keyed reserve writes the same line again) or now (a cancel: None). The
        history is a record for the desk, outside the reservations' protocol: when Cassandra cannot take the line,
        the change stands and the log says which line is missing (a retry of the request would not make the change
        again, so nothing else could add it)."""
        try:
            await self.history.record(
                reservation.book_id,
                event,
                reservation_id=reservation.reservation_id,
                user_id=reservation.user_id,
                by_id=caller.user_id if caller is not None else None,
                at=at,
            )
        except LibraryError as error:
            log.warning(
                "book %s: its history misses '%s' of reservation %s (%s)",
                reservation.book_id,
                event.value,
                reservation.reservation_id,
                error,
            )

    async def _owner(
        self, caller: Caller | None, reservation_id: UUID, named: int | None, read: Reservation | None
    ) -> int:
        """The reader a move or cancel acts as: the caller's own card (a reader naming another is a 403), or for a
        librarian the card named, else the reservation's own reader."""
        if caller is not None and caller.is_staff and named is None:
            return (read or await self.reservations.get_reservation(reservation_id)).user_id
        return acting_for(caller, named)

    async def _desk_action(self, caller: Caller | None, action: str, reservation: Reservation, detail: str) -> None:
        """A librarian acting on another reader's reservation leaves a line in the staff log; anyone acting on their
        own reservation does not. `detail` names the reader as {reader} and the book as {book}."""
        if caller is None or not caller.is_staff or reservation.user_id == caller.user_id:
            return
        reader, book = await self.names(reservation)
        await self.accounts.record_staff_action(
            caller,
            action,
            detail.format(reader=reader, book=book),
            user_id=reservation.user_id,
            book_id=reservation.book_id,
            reservation_id=reservation.reservation_id,
        )

    async def names(self, reservation: Reservation) -> tuple[str, str]:
        """The reservation's reader and book as a person says them: "Ada Lovelace" and "“Emma”", or, for a card or
        book deleted since, "card 12" and "a deleted book"."""
        return await self._reader_name(reservation.user_id), await self._book_title(reservation.book_id)

    async def _reader_name(self, user_id: int) -> str:
        try:
            return (await self.readers.get_user(user_id)).name
        except NotFound:
            return f"card {user_id}"

    async def _book_title(self, book_id: UUID) -> str:
        try:
            return f"“{(await self.books.get_book(book_id)).title}”"
        except NotFound:
            return "a deleted book"

    # -- cards ----------------------------------------------------------------------------------------------------
    async def account(self, caller: Caller | None, user_id: int) -> User:
        """A card, for its holder or a librarian."""
        check_may_see_reader(caller, user_id)
        return await self.readers.get_user(user_id)

    async def add_reader(
        self,
        caller: Caller | None,
        name: str,
        email: str,
        user_id: int | None = None,
        *,
        role: Role = Role.READER,
        pin: str | None = None,
    ) -> User:
        librarian = _librarian(caller)
        user = await self.readers.create_user(name, email, user_id, role=role, pin=pin)
        # Guesses at a number nobody held were guesses at no PIN: a card handed out under a number chosen in advance
        # starts unlocked.
        await self.accounts.lift_locks(user.user_id)
        await self._staff_action(librarian, "add reader", f"added {user.name} (card {user.user_id})", user.user_id)
        return user

    async def update_account(self, caller: Caller | None, user_id: int, change: AccountChange) -> User:
        """Changes a card as `change` asks, everything checked before anything is written: the holder changes their
        name, e-mail and PIN (with the current one); a librarian any card's, another's PIN without the current one,
        and alone (de)activates one. Answers the card as it is now."""
        check_may_see_reader(caller, user_id)
        assert caller is not None  # check_may_see_reader refuses nobody
        if change.for_staff_only and not caller.is_staff:
            raise Forbidden.staff_only()
        if change.changes_role:
            raise InvalidInput("a card's role is chosen when it is added", field="role")
        own = caller.user_id == user_id
        # The PIN first: a wrong current PIN, or a new one the rules refuse, leaves the whole card unchanged.
        if change.pin is not None:
            if own:
                await self.change_own_pin(caller, change.current_pin, change.pin)
            else:
                await self._new_pin(user_id, change.pin)
        user = None
        if change.name is not None or change.email is not None:
            user = await self.readers.update_user(user_id, name=change.name, email=change.email)
        if not own and (user is not None or change.pin is not None):
            name = user.name if user is not None else await self._reader_name(user_id)
            edited = f"edited {name}" if user is not None else f"set a new PIN for {name}"
            if user is not None and change.pin is not None:
                edited += " and set a new PIN"
            await self._staff_action(caller, "edit reader", edited, user_id)
        if change.active is not None:
            return await self.set_active(caller, user_id, change.active)
        return await self.readers.get_user(user_id)

    async def set_active(self, caller: Caller | None, user_id: int, active: bool) -> User:
        """A librarian deactivates a card, which ends its sessions everywhere (it keeps its reservations), or makes
        it active again."""
        librarian = _librarian(caller)
        user = await self.readers.set_active(user_id, active)
        if not active:
            await self.accounts.revoke_sessions(user_id)
        what = "reactivated" if active else "deactivated"
        await self._staff_action(librarian, what, f"{what} {user.name}'s card", user_id)
        return user

    async def change_own_pin(self, caller: Caller | None, current_pin: str | None, new_pin: str) -> None:
        """The signed-in card holder changes their own PIN, only with the current one; the check counts towards the
        card's lockout like a sign-in (Unauthenticated for a wrong one, TooManyAttempts while locked). A new PIN
        that breaks the rules is refused first, and costs no attempt."""
        if caller is None:
            raise Unauthenticated.sign_in_needed()
        current_pin = _check_current_pin(current_pin)
        check_pin(new_pin, staff=caller.is_staff)
        await self.accounts.checked_pin(caller.user_id, current_pin)
        await self._new_pin(caller.user_id, new_pin)

    async def _new_pin(self, user_id: int, pin: str) -> None:
        """Sets the card's PIN and lifts every lock of it, whoever sets it: the guesses were at the old one."""
        await self.readers.set_pin(user_id, pin)
        await self.accounts.lift_locks(user_id)

    async def sign_out_everywhere(self, caller: Caller | None, user_id: int) -> int:
        """Ends every session of the card (a lost card, a shared computer): its holder, or a librarian. Answers
        how many there were."""
        check_may_see_reader(caller, user_id)
        ended = await self.accounts.revoke_sessions(user_id)
        if caller is not None and caller.user_id != user_id:
            name = await self._reader_name(user_id)
            await self._staff_action(caller, "sign out", f"signed {name} out everywhere", user_id)
        return ended

    async def sign_in_locks(self, caller: Caller | None, cards: list[int]) -> dict[int, datetime]:
        """For the staff screens: until when signing in is locked for each of these cards that is locked now (for
        the clients the card does not know: what strangers' guesses can do), in UTC."""
        _librarian(caller)
        ends = await asyncio.gather(*(self.accounts.sign_in_lock(card) for card in cards))
        return {card: end for card, end in zip(cards, ends, strict=True) if end is not None}

    async def delete_reader(self, caller: Caller | None, user_id: int) -> None:
        """A librarian deletes a card that holds no reservations (the repository refuses otherwise); its sessions
        end with it, on every instance, before this answers, and its sign-in locks are forgotten, so a card made again
        under the number inherits nothing (its sessions could not sign it in anyway: another generation)."""
        librarian = _librarian(caller)
        name = await self._reader_name(user_id)
        await self.readers.delete_user(user_id)
        await self.accounts.revoke_sessions(user_id)
        await self.accounts.lift_locks(user_id)
        await self._staff_action(librarian, "delete reader", f"deleted {name}'s card", user_id)

    # -- the catalogue --------------------------------------------------------------------------------------------
    async def add_book(
        self,
        caller: Caller | None,
        title: str,
        author: str,
        genre: str,
        published_year: int | None,
        book_id: UUID | None = None,
    ) -> Book:
        librarian = _librarian(caller)
        book = await self.books.create_book(title, author, genre, published_year, book_id)
        await self._staff_action(librarian, "add book", f"added “{book.title}”", book_id=book.book_id)
        return book

    async def edit_book(
        self,
        caller: Caller | None,
        book_id: UUID,
        *,
        title: str | None = None,
        author: str | None = None,
        genre: str | None = None,
        published_year: int | None = None,
    ) -> Book:
        librarian = _librarian(caller)
        book = await self.books.update_book(
            book_id, title=title, author=author, genre=genre, published_year=published_year
        )
        await self._staff_action(librarian, "edit book", f"edited “{book.title}”", book_id=book_id)
        return book

    async def delete_book(self, caller: Caller | None, book_id: UUID) -> Book:
        """Deletes a book nobody holds (the repository refuses a held one: Conflict BOOK_IN_USE). Answers the book
        as it was."""
        librarian = _librarian(caller)
        book = await self.books.get_book(book_id)
        await self.books.delete_book(book_id)
        await self._staff_action(librarian, "delete book", f"deleted “{book.title}”", book_id=book_id)
        return book

    async def _staff_action(
        self, librarian: Caller, action: str, detail: str, user_id: int | None = None, *, book_id: UUID | None = None
    ) -> None:
        """A librarian's change of the catalogue or of a card, for the staff log (not of their own card)."""
        if user_id is not None and user_id == librarian.user_id:
            return
        await self.accounts.record_staff_action(librarian, action, detail, user_id=user_id, book_id=book_id)


def _librarian(caller: Caller | None) -> Caller:
    """The caller, if a librarian (the web layer admits no one else to this work; every door is checked alike)."""
    if caller is None:
        raise Unauthenticated.sign_in_needed()
    if not caller.is_staff:
        raise Forbidden.staff_only()
    return caller


def _check_current_pin(current_pin: object) -> str:
    if current_pin is None:
        raise InvalidInput("current_pin is required to change your PIN", field="current_pin")
    return check_pin_as_typed(current_pin, "current_pin")


async def _after_the_fact(*writes: Awaitable[None]) -> None:
    """The records of a change made (the staff log's line, the books' history lines), written together once the
    change stands: the request waits for the slowest of them, not their sum, and a record that fails is logged,
    never answered as a failure of the change (a retry of the request would not make the change again, so it
    could not add the record either)."""
    for outcome in await asyncio.gather(*writes, return_exceptions=True):
        if isinstance(outcome, Exception):
            log.warning("a record of a change made was not written; the change stands", exc_info=outcome)
        elif isinstance(outcome, BaseException):
            raise outcome


@contextmanager
def _hidden_from(caller: Caller | None, reservation_id: UUID) -> Iterator[None]:
    """For a reader, another reader's reservation answers as one that does not exist (404), so a reader who guesses
    an id (one derived from another reader's idempotency key) learns nothing from the answer. The repository refuses
    the move or cancel (Forbidden) whoever asks; this only words that refusal for a reader (staff see every
    reservation anyway, and are told whose it is)."""
    try:
        yield
    except Forbidden as error:
        if error.reservation_id != reservation_id or (caller is not None and caller.is_staff):
            raise
        raise NotFound.reservation(reservation_id) from None


__all__ = ["AccountChange", "Accounts", "Books", "History", "LibraryService", "Readers", "Reservations"]
