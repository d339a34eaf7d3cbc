"""The repository layer: everything the service reads and writes in Cassandra.

`Library` is the one object the service layer (app/service.py, which is given its parts), the web layer's reads,
the seeder and the tools talk to. It holds no rule that spans parts or depends on who asks: those are the service
layer's. It is a facade over parts, each in its own module and each given, when `Library` makes it, everything it
uses: the locks (`LockRunner` over `CassandraLockTable`, app/repository/locks.py: the state machine), the
reservation use cases (`Reservations`, composed of the locks' transitions, the views' store and the idempotency
keys), the listings of the views (`ReservationListings`), the catalogue of books (`CatalogueRepository`, which opens
and withdraws a book's lock through the use cases), the readers' cards (`ReaderRepository`, which asks the listings
whether a reader it deletes holds any reservation), the sessions, sign-in lockout and desk log (`AccountRepository`,
which reads a card's PIN hash through the readers part), the books' reservation history (`BookHistory`, a record
the service writes after each change, outside the reservations' protocol), and the audit with its repair
(`AuditRepository`, which mends through the use cases' public operations) with its background loop (`RepairLoop`
under the lease of `CassandraLease`, app/repository/repair_loop.py, made by `repair_loop()`). They share one
database handle, and the parts that need them one version clock and one set of page tokens per `Library`, that is
per app instance.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

from app.access import Caller
from app.db import Database
from app.models import Book, Reservation, Role, User
from app.notices import Notices
from app.repository.accounts import AccountRepository
from app.repository.audit import AuditRepository
from app.repository.base import PageTokens, Seal
from app.repository.catalogue import CatalogueRepository
from app.repository.clock import VersionClock
from app.repository.history import BookHistory, ReaderHistory
from app.repository.idempotency import CassandraKeys
from app.repository.listings import ReservationListings
from app.repository.locks import CassandraLockTable, LockRunner
from app.repository.readers import ReaderRepository
from app.repository.repair_loop import REPAIR_TIME_SHARE, CassandraLease, RepairLoop
from app.repository.reservations import Reservations, Step
from app.repository.seats import READY, WAITING, CassandraSeats
from app.repository.shared_secrets import SharedSecrets
from app.repository.store import CassandraReservationStore
from app.repository.sweeper import Sweeper
from app.rules import TOOL_LIBRARIAN_CARD
from app.schema import SCHEMA_VERSION


class Library:
    """The repository's one entry point: it makes the parts and hands each public operation to the part it
    belongs to. A test that reaches inside an operation (a lock operation, a pause at a named step) names the
    part: `library.locks.read(book, serial=True)`, `library.steps` (the use cases')."""

    def __init__(self, db: Database, *, wall_ns: Callable[[], int] | None = None) -> None:
        """`wall_ns` replaces the wall clock the lock versions start from (tests give instances skewed clocks)."""
        self.db = db
        self.ks = db.settings.keyspace
        # Until `load_secrets` finds the deployment's shared ones, secrets the environment does not give are random to
        # this process: never derived from anything public.
        self.seal = Seal(db.settings.page_token_secret or secrets.token_hex(32))
        self.cookie_secret = db.settings.cookie_secret or secrets.token_hex(32)
        self.pages = PageTokens(self.seal)
        self.clock = VersionClock(wall_ns) if wall_ns else VersionClock()
        self.locks = LockRunner(CassandraLockTable(db), self.clock)
        self.reservations = Reservations(
            self.locks,
            CassandraReservationStore(db),
            CassandraKeys(db),
            self.clock,
            settle_after_seconds=db.settings.settle_after_seconds,
            pickup_seconds=db.settings.hold_pickup_seconds,
            max_renewals=db.settings.hold_renewals,
            sweep_seconds=db.settings.hold_sweep_seconds,
            seats=CassandraSeats(db),
            limits={READY: db.settings.hold_limit_ready, WAITING: db.settings.hold_limit_waiting},
        )
        self.listings = ReservationListings(db, self.pages, self.locks)
        self.catalogue = CatalogueRepository(db, self.clock, self.pages, self.reservations, self.listings)
        self.readers = ReaderRepository(db, self.pages, self.listings)
        self.auditor = AuditRepository(db, self.clock, self.locks, self.reservations)
        self.accounts = AccountRepository(db, self.readers, self.seal)
        self.shared_secrets = SharedSecrets(db)
        self.history = BookHistory(db)
        self.reader_history = ReaderHistory(db)
        self.repair_lease = CassandraLease(db)
        self.notices = Notices(
            self._reader_and_book,
            smtp_url=db.settings.smtp_url,
            sender=db.settings.mail_from,
            time_zone=db.settings.time_zone,
        )
        self.reservations.ready_listeners.append(self.notices.book_ready)
        self.reservations.ended_listeners.append(self.reader_history.remember)
        # Named points inside operations where a test may pause one (see Reservations._step).
        self.steps: dict[str, Step] = self.reservations.steps

        # -- books
        self.get_book = self.catalogue.get_book
        self.list_books = self.catalogue.list_books
        self.search_books = self.catalogue.search_books
        self.matching_books = self.catalogue.matching_books
        self.get_books = self.catalogue.get_books
        self.create_book = self.catalogue.create_book
        self.update_book = self.catalogue.update_book
        self.delete_book = self.catalogue.delete_book
        # -- readers
        self.get_user = self.readers.get_user
        self.list_users = self.readers.list_users
        self.matching_users = self.readers.matching_users
        self.create_user = self.readers.create_user
        self.import_user = self.readers.import_user
        self.register_card = self.readers.register_card
        self.set_pin = self.readers.set_pin
        self.update_user = self.readers.update_user
        self.delete_user = self.readers.delete_user
        # -- reservations
        self.get_reservation = self.listings.get_reservation
        self.holder = self.listings.holder
        self.holders = self.listings.holders
        self.list_reservations = self.listings.list_reservations
        self.some_reservations = self.listings.some_reservations
        self.each_reservation = self.listings.each_reservation
        self.user_reservations = self.listings.user_reservations
        self.book_reservations = self.listings.book_reservations
        self.reserve = self.reservations.reserve
        self.move = self.reservations.move
        self.renew_on = self.reservations.renew_on
        self.cancel = self.reservations.cancel
        self.join = self.reservations.join
        self.sweep = self.reservations.sweep
        self.leave = self.reservations.leave
        self.suspend = self.reservations.suspend
        self.resume = self.reservations.resume
        self.lend = self.reservations.lend
        self.take_back = self.reservations.take_back
        self.queue = self.listings.queue
        self.places = self.listings.places
        # -- accounts
        self.sign_in = self.accounts.sign_in
        self.checked_pin = self.accounts.checked_pin
        self.issue_session = self.accounts.issue_session
        self.caller_for = self.accounts.caller_for
        self.sign_out = self.accounts.sign_out
        self.revoke_sessions = self.accounts.revoke_sessions
        self.sign_in_lock = self.accounts.sign_in_lock
        self.lift_locks = self.accounts.lift_locks
        self.record_staff_action = self.accounts.record_staff_action
        self.staff_actions = self.accounts.staff_actions
        # -- the books' reservation history (written by the service after each change)
        self.book_history = self.history.book_history
        self.past_holds = self.reader_history.past_holds
        # -- audit, repair, upgrade
        self.audit = self.auditor.audit
        self.upgrade_locks = self.auditor.upgrade_locks

    async def _reader_and_book(self, reservation: Reservation) -> tuple[User, Book]:
        """The reader and the book a notice names."""
        return await asyncio.gather(
            self.readers.get_user(reservation.user_id), self.catalogue.get_book(reservation.book_id)
        )

    def sweeper(self, every: float | None = None) -> Sweeper:
        """This instance's sweep of holds past their pickup window, every HOLD_SWEEP_SECONDS unless told otherwise
        (app/repository/sweeper.py); not started (`start()` it)."""
        return Sweeper(self.reservations.sweep, self.db.settings.hold_sweep_seconds if every is None else every)

    def repair_loop(
        self,
        *,
        every: float | None = None,
        lease_seconds: int | None = None,
        holder: str | None = None,
        share: float = REPAIR_TIME_SHARE,
    ) -> RepairLoop:
        """The background audit-and-repair of this instance, under the repair lease, paced by REPAIR_EVERY_SECONDS
        and REPAIR_LEASE_SECONDS unless told otherwise, and never running more than `share` of the time
        (app/repository/repair_loop.py); not started (`start()` it)."""
        settings = self.db.settings
        return RepairLoop(
            self.audit,
            self.repair_lease,
            every=settings.repair_every_seconds if every is None else every,
            lease_seconds=settings.repair_lease_seconds if lease_seconds is None else lease_seconds,
            holder=holder,
            share=share,
        )

    async def load_secrets(self) -> None:
        """Takes the deployment's shared development secrets from the keyspace (made there by the first instance
        that needs them) for every secret the environment does not give: an app instance calls this before serving,
        so that all instances seal page tokens and sign cookies alike (app/repository/shared_secrets.py)."""
        if not self.db.settings.page_token_secret:
            self.seal.rekey(await self.shared_secrets.secret("page_tokens"))
        if not self.db.settings.cookie_secret:
            self.cookie_secret = await self.shared_secrets.secret("cookies")

    async def session_for_tool(self, name: str) -> str:
        """A librarian's bearer token for a tool that holds the database already (the stress test, the bench, the
        tests): card TOOL_LIBRARIAN_CARD, made a librarian with no PIN if it is not one, so nobody can sign in as
        it. Anyone with the database can do anything anyway; this only lets a tool act through the API."""
        caller = Caller(TOOL_LIBRARIAN_CARD, Role.LIBRARIAN, name)
        await self.readers.ensure_librarian(caller)
        return await self.accounts.issue_session(caller)

    async def sessions_for_readers(self, user_ids: list[int], *, concurrency: int = 32) -> dict[int, str]:
        """A bearer token for each of these readers, without their PINs: for tools that hold the database already
        and act as many readers at once (the stress test, the bench), each reader then acting as themselves."""
        tokens: dict[int, str] = {}
        gate = asyncio.Semaphore(concurrency)

        async def one(user_id: int) -> None:
            async with gate:
                tokens[user_id] = await self.accounts.issue_session(Caller(user_id, Role.READER))

        await asyncio.gather(*(one(u) for u in user_ids))
        return tokens

    async def ping(self) -> None:
        """A single-partition read of the service's keyspace at the configured consistency: it fails exactly
        when the reservations' reads would (too few replicas up), unlike a ping of one node's system tables."""
        await self.db.execute(f"SELECT version FROM {self.ks}.schema_version WHERE version = ?", [SCHEMA_VERSION])


__all__ = ["Library"]
