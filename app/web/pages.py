"""The UI: server-rendered pages over the same `Library` the API uses.

A reader signs in with card number and PIN; the session's token travels in a signed, HttpOnly, SameSite=Lax
cookie (Secure over TLS), and every form carries Tornado's XSRF token. Readers see their own reservations;
librarians get the staff screens (readers, all reservations, the catalogue's edit forms) and act for readers
at the desk, each such action recorded with their card. Form posts follow post/redirect/get, and what
happened travels to the next page in a one-shot "flash" cookie, so a reload never repeats a reservation.

Where the reader is afterwards: a form with fields that failed shows its error beside the field it is about (the
field focused, described by it with aria-describedby, the form scrolled into view); an action on an item of a list
(reserve, renew, move, cancel) brings the keyboard back to that item, or to the message when the item is gone
(static/app.js moves the focus the flash names). Lists are read whole up to a bound (app/search.py), so each is
sorted, counted and numbered, with "Previous" and "Next". A search box and its address take the same length; a
longer query in an address is cut and the page says so, as it says the two-letter minimum of a search.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode
from uuid import UUID

import tornado.web
from markupsafe import Markup

from app.access import Access, Caller
from app.models import (
    Book,
    Conflict,
    ConflictKind,
    DatabaseUnavailable,
    InvalidInput,
    LibraryError,
    NotFound,
    Place,
    Reservation,
    Role,
    Unauthenticated,
    User,
)
from app.repository import Library
from app.rules import BOOK_HISTORY_SHOWN, DEVICE_COOKIE_DAYS, MAX_PAGE_SIZE
from app.search import (
    RESULT_BOUND,
    ReservationOrder,
    Sort,
    TypedQuery,
    numbered,
    sort_readers,
    sort_reservations,
)
from app.service import AccountChange
from app.web.api_books import availability
from app.web.base import RETRY_AFTER_SECONDS, BaseHandler, describe, status_for
from app.web.encoding import encode_json
from app.web.parsing import parse_time_uuid, parse_user_id_text, parse_uuid, same_site_path
from app.web.wording import (
    BOOK_EXAMPLE,
    HOLD_END_WORDS,
    READER_EXAMPLE,
    card_words,
    count,
    error_words,
    history_words,
    no_card,
    place_words,
    query_notes,
    too_many_books,
    too_many_readers,
    unsearchable,
    when,
)

SESSION_COOKIE = "session"
FLASH_COOKIE = "flash"
CATALOGUE_PAGE_SIZE = 15
LIST_PAGE_SIZE = 25
# A desk's reader filter on "All reservations" lists the reservations of at most this many readers it finds.
READERS_FILTERED = 50
# The desk actions of the week the reservations page lists, the most recent first.
STAFF_ACTIONS_SHOWN = 50
# How many of an author's books a book page counts ("12 books", or "more than 20 books"): every visitor's view reads
# them, so a few, not a search's RESULT_BOUND.
BY_AUTHOR_COUNTED = 20
# What a failed form keeps of what was typed travels in the flash cookie; browsers keep cookies to 4 KB.
MAX_FLASH_BYTES = 3500
# Never sent back to a form, whatever happened: the fields every form carries, and secrets (any field whose name
# says PIN or password).
NOT_KEPT = frozenset({"_xsrf", "next", "after"})


def device_cookie(card: int) -> str:
    """The cookie that tells the card this browser has signed in to it before (app/repository/accounts.py)."""
    return f"device-{card}"


class PageHandler(BaseHandler):
    @property
    def reader(self) -> Caller | None:
        """Who is signed in (a reader or a librarian), as the templates call them."""
        return self.caller

    async def find_caller(self) -> Caller | None:
        """The caller of the signed session cookie; a cookie whose session has ended is dropped, and the page is
        then shown as to anybody (or asks to sign in)."""
        token = self.get_signed_cookie(SESSION_COOKIE)
        if not token:
            return None
        try:
            caller = await self.library.caller_for(token.decode("ascii", "replace"))
        except DatabaseUnavailable:
            if self.access_needed() is Access.PUBLIC:
                return None  # the page shows as to anybody, and reports the outage itself if it needs the database
            raise  # not "sign in": the database could not say who is signed in
        if caller is None:
            self.clear_cookie(SESSION_COOKIE)
        return caller

    def start_session(self, token: str) -> None:
        self.set_signed_cookie(
            SESSION_COOKIE,
            token,
            expires_days=None,  # a browser session; the server ends it after SESSION_SECONDS anyway
            httponly=True,
            samesite="Lax",
            secure=self.request.protocol == "https",
        )

    async def show(self, template: str, **context: Any) -> None:
        self.render_page(template, **context)

    def render_page(self, template: str, status: int = 200, **context: Any) -> None:
        env = self.application.settings["jinja_env"]
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        # Every page shows the state of books and reservations as it is now: the browser keeps no copy, so Back
        # after reserving asks again and shows the book reserved, not a stale "available" with a Reserve button.
        self.set_header("Cache-Control", "no-store")
        flash = self._take_flash()
        html = env.get_template(template).render(
            reader=self.reader,
            staff=self.caller is not None and self.caller.is_staff,
            flash=flash,
            # What the reader typed into the form that failed, to fill it in again (never a PIN).
            typed=flash.get("form", {}) if flash else {},
            # The form that failed, and the field its error is about: the error is shown there, not on top.
            failure=flash if flash and flash["action"] else None,
            path=self.request.path,
            # Where a form on this page sends the reader back to: the page with its query (filters, page).
            here=self.request.uri if self.request.method == "GET" else self.request.path,
            xsrf_form_html=Markup(self.xsrf_form_html()),
            static_url=self.static_url,
            **context,
        )
        self.finish(html)

    # -- one-shot messages across a redirect --------------------------------------------------------------
    def flash(
        self,
        kind: str,
        text: str,
        form: dict[str, str] | None = None,
        *,
        action: str | None = None,
        field: str | None = None,
        focus: str | None = None,
    ) -> None:
        """A message for the next page. `form`: what was typed into a form that failed, kept when it fits; `action`:
        that form's path, whose error the page shows beside `field` (or atop the form) instead of atop the page;
        `focus`: the id of the element the keyboard comes back to (the item acted on), else the message."""
        message = {"kind": kind, "text": text, "form": form or {}, "action": action, "field": field, "focus": focus}
        value = quote(json.dumps(message))
        if len(value) > MAX_FLASH_BYTES:
            value = quote(json.dumps({**message, "form": {}}))
        self.set_cookie(FLASH_COOKIE, value, httponly=True, samesite="Lax")

    def _take_flash(self) -> dict[str, Any] | None:
        raw = self.get_cookie(FLASH_COOKIE)
        if not raw:
            return None
        self.clear_cookie(FLASH_COOKIE)
        try:
            message = json.loads(unquote(raw))
            form = message.get("form") or {}
            return {
                "kind": str(message["kind"]),
                "text": str(message["text"]),
                "form": {str(k): str(v) for k, v in form.items()} if isinstance(form, dict) else {},
                **{key: _text_or_none(message.get(key)) for key in ("action", "field", "focus")},
            }
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def typed(self) -> dict[str, str]:
        """The fields of the posted form as typed, but for secrets and the fields every form carries."""
        return {
            name: self.get_body_argument(name, "")
            for name in self.request.body_arguments
            if name not in NOT_KEPT and "pin" not in name.lower() and "password" not in name.lower()
        }

    def back(self, default: str | None = None, field: str = "next") -> None:
        """Redirect to `default`, else to the form's `field` (`next`: the page the form is on, with its query)
        when that is a path of this site: never to another site."""
        self.redirect(default or same_site_path(self.get_body_argument(field, "")))

    def require_reader(self) -> Caller:
        if self.caller is None:
            raise Unauthenticated.sign_in_needed()
        return self.caller

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs["exc_info"][1] if "exc_info" in kwargs else None
        if isinstance(error, Unauthenticated):
            # Not signed in (or no longer): to the sign-in page, which brings the reader back here afterwards.
            self.clear_header("Set-Cookie")
            self.redirect(sign_in_url(self.request.uri if self.request.method == "GET" else self.request.path))
            return
        status, body = describe(error, status_code, self._reason)
        if status == 503:
            self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
        message = error_words(error) if isinstance(error, LibraryError) and status_for(error) else body["error"]
        self.render_page("error.html", status=status, status_code=status, message=message)


def sign_in_url(back_to: str | None) -> str:
    return f"/sign-in?{urlencode({'next': back_to})}" if back_to and back_to != "/" else "/sign-in"


@dataclass(frozen=True)
class Done:
    """What an action did: the message (`kind` "error" for a refusal the action words itself), where to go (None: back
    to the form's page) and the id of the element the keyboard comes back to there (None: the message)."""

    text: str
    kind: str = "success"
    to: str | None = None
    focus: str | None = None


class Refused(Exception):
    """A refusal a page words itself (two PINs that differ, a wrong current PIN), about `field` of its form."""

    def __init__(self, text: str, field: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.field = field


class ActionHandler(PageHandler):
    """A form post: the reader goes back to the page the form is on (its `next` field: the page with its query,
    filters and page number), with what happened. Whatever the library refuses becomes a message in the reader's
    words (app/web/wording.py), and the form is filled in again with what was typed. A form of fields (`FORM`:
    adding a book, editing a reader) shows its error beside the field it is about; an action on an item of a list
    brings the keyboard back to the item (`item`). A form may name another place for after a success (`after`), as
    the catalogue's "Move here" does to leave "change" mode."""

    ACCESS = {"post": Access.READER}
    FORM = False  # the error goes beside the form's field, not atop the page
    ITEM: str | None = None  # the id of the list item acted on, from the path's argument ("book-{}")

    async def post(self, *args: str) -> None:
        try:
            done = await self.act(*args)
        except Refused as refusal:
            self._failed(refusal.text, refusal.field, args)
            return
        except LibraryError as error:
            if status_for(error) is None or isinstance(error, Unauthenticated):
                raise
            self._failed(error_words(error), getattr(error, "field", None), args)
            return
        if done.kind == "error":
            self._failed(done.text, None, args, focus=done.focus)
            return
        self.flash(done.kind, done.text, focus=done.focus)
        self.back(done.to, field="after" if self.get_body_argument("after", "") else "next")

    def _failed(self, text: str, field: str | None, args: Sequence[str], focus: str | None = None) -> None:
        """Back to the form's page: the form filled in again, the error beside `field` of a form of fields, or atop
        the page with the keyboard on the item the action was about."""
        action = self.request.path if self.FORM else None
        self.flash("error", text, form=self.typed(), action=action, field=field, focus=focus or self.item(*args))
        self.back()

    def item(self, *args: str) -> str | None:
        """The id of the list item an action on these path arguments is about, for the keyboard to come back to."""
        return self.ITEM.format(*args) if self.ITEM else None

    async def act(self, *args: Any, **kwargs: Any) -> Done:
        """Do the action; answer what it did (`Done`). Each action takes the path's arguments it needs."""
        raise NotImplementedError


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def list_url(path: str, query: Mapping[str, str | None], page: int = 1) -> str:
    """A list's address (`path` with its filters and order, empty values left out) at numbered page `page`: the
    catalogue's ("/": q, genre, author, available, sort, move) as well as the staff's lists."""
    kept = {k: v for k, v in query.items() if v}
    if page > 1:
        kept["page"] = str(page)
    return f"{path}?{urlencode(kept)}" if kept else path


def _page_number(raw: str | None) -> int:
    """A list's `page`: a page number. Anything else (an old link's page token, a typo) is the first page, and a
    number beyond the last is the last page (app/search.py): a list's link never leads nowhere."""
    raw = (raw or "").strip()
    return int(raw) if raw.isdigit() and len(raw) <= 6 else 1


def back_to(raw: str | None, *prefixes: str) -> str | None:
    """The `back` of a page's address: the list or search a person came from (a path of this site that starts with
    one of `prefixes`), for a "Back to your search" link that keeps it; None for anything else."""
    path = same_site_path(raw or "", "")
    return path if path and path.startswith(prefixes) else None


async def _describe_reservations(library: Library, reservations: list[Reservation]) -> list[dict[str, Any]]:
    """Each reservation with its book and reader, fetched concurrently; either may have been deleted since."""

    async def one(r: Reservation) -> dict[str, Any]:
        book, user = await asyncio.gather(
            library.get_book(r.book_id), library.get_user(r.user_id), return_exceptions=True
        )
        for found in (book, user):
            if isinstance(found, BaseException) and not isinstance(found, NotFound):
                raise found
        return {
            "reservation": r,
            "book": book if isinstance(book, Book) else None,
            "user": user if isinstance(user, User) else None,
        }

    return list(await asyncio.gather(*(one(r) for r in reservations)))


async def _nothing() -> None:
    """Nothing to read: the place of a read a page skips (for this caller) among reads run together."""
    return None


async def _books_by_id(library: Library, book_ids: Sequence[UUID]) -> dict[UUID, Book]:
    """The books of these ids that still exist, in a few batched reads (up to RESULT_BOUND of them for a list sorted
    by title: never one read per book at once)."""
    return await library.get_books(book_ids)


class ReservationList:
    """A list of reservations as a page shows it: read whole up to RESULT_BOUND, in the order asked (newest first,
    or by title), counted, one numbered page of it described with its books and readers."""

    def __init__(
        self, handler: PageHandler, found: Sequence[Reservation], books: Mapping[UUID, Book] | None = None
    ) -> None:
        self.handler = handler
        self.found = found
        self.books = books  # the books already read, when the list came from a search of the catalogue
        self.order = ReservationOrder.parse(handler.query("order"))

    async def page(self) -> tuple[Any, list[dict[str, Any]]]:
        """The numbered page asked for (`page`), and its entries described."""
        library = self.handler.library
        kept = list(self.found[:RESULT_BOUND])
        titles: dict[UUID, str] = {}
        if self.order is ReservationOrder.TITLE:
            books = self.books if self.books is not None else await _books_by_id(library, [r.book_id for r in kept])
            titles = {book_id: book.title for book_id, book in books.items()}
        ordered = sort_reservations(kept, self.order, titles) + list(self.found[RESULT_BOUND:])
        page = _page_number(self.handler.query("page"))
        shown = numbered(ordered, bound=RESULT_BOUND, page=page, page_size=LIST_PAGE_SIZE)
        return shown, await _describe_reservations(library, shown.items)


# -- pages ------------------------------------------------------------------------------------------------
class CatalogueHandler(PageHandler):
    """The catalogue and its search box: one page of the matches in the chosen order, how many there are, the
    genre and author facets (every value reachable), "available now", numbered pages. Every link and form here keeps
    the query, so the reader never loses their place, and a query the page cannot take as it came (too long, too
    many words, one letter, an unknown order) is searched as well as it can be and said, never an error page."""

    ACCESS = {"get": Access.PUBLIC}

    async def get(self) -> None:
        typed = TypedQuery.of(self.query("q"))
        notes = query_notes(typed)
        # A facet's value comes from a link the page made; one edited beyond the box's length is cut like a query.
        facets = {name: TypedQuery.of(self.query(name)) for name in ("genre", "author")}
        filters = {"q": typed.text, "genre": facets["genre"].text, "author": facets["author"].text}
        available = self.query("available") == "1"
        try:
            order = Sort.parse(self.query("sort"))
        except InvalidInput as error:
            order, notes = Sort.TITLE, [*notes, error_words(error)]
        moving = await self._moving()
        if typed.unsearchable:
            result = None
        else:
            result = await self.library.search_books(
                typed.searched,
                genre=filters["genre"] or None,
                author=filters["author"] or None,
                sort=order,
                page=_page_number(self.query("page")),
                page_size=CATALOGUE_PAGE_SIZE,
                available_only=available,
            )
        shown = result.books if result else []
        free, mine = await asyncio.gather(availability(self.library, shown), self._my_books())
        keep = {k: v for k, v in filters.items() if v}
        if available:
            keep["available"] = "1"
        if order is not Sort.TITLE:
            keep["sort"] = order.value
        move = {"move": str(moving["reservation"].reservation_id)} if moving else {}

        def url(page: int = 1, **changes: str | None) -> str:
            """This search with `changes` (a facet chosen, one removed: None), at `page`, in "change" mode if on."""
            return list_url("/", {**keep, **move, **changes}, page)

        await self.show(
            "catalogue.html",
            books=list(zip(shown, free, strict=True)),
            result=result,
            too_short=unsearchable(typed),
            notes=notes,
            mine=mine,
            filters=filters,
            available=available,
            order=order,
            sorts=list(Sort),
            moving=moving,
            url=url,
            # After "Move here": this very page, out of "change" mode.
            place=list_url("/", keep, result.page if result else 1),
        )

    async def _moving(self) -> dict[str, Any] | None:
        """In "change book" mode the catalogue offers "Move here" for the reader's reservation `move`."""
        raw = self.query("move")
        if not raw or self.caller is None:
            return None
        try:
            reservation = await self.library.get_reservation(parse_uuid(raw, "move"))
        except (InvalidInput, NotFound):
            return None
        if reservation.user_id != self.caller.user_id:
            return None
        return (await _describe_reservations(self.library, [reservation]))[0]

    async def _my_books(self) -> set[UUID]:
        if self.caller is None:
            return set()
        held = await self.library.user_reservations(self.caller.user_id, page_size=MAX_PAGE_SIZE)
        return {r.book_id for r in held.items}


class BookPageHandler(PageHandler):
    """A book: everything the catalogue knows of it, its status in words, and for librarians who holds it and its
    reservation history. `back`: the search the reader came from, for "Back to your search"."""

    ACCESS = {"get": Access.PUBLIC}

    async def get(self, raw_id: str) -> None:
        book_id = parse_uuid(raw_id, "book_id")
        # Who holds a book is the holder's and the staff's business: others see only "reserved".
        staff = self.caller is not None and self.caller.is_staff
        book, holder, queue, history = await asyncio.gather(
            self.library.get_book(book_id),
            self.library.holder(book_id),
            self.library.queue(book_id),
            self._history(book_id) if staff else _nothing(),
        )
        mine = next((p for p in queue if self.caller is not None and p.user_id == self.caller.user_id), None)
        # The author's other books are counted up to a few (a page view reads no more), "more than" beyond.
        by_author, holder_card = await asyncio.gather(
            self.library.matching_books(author=book.author, bound=BY_AUTHOR_COUNTED),
            _user_or_none(self.library, holder.user_id) if staff and holder is not None else _nothing(),
        )
        await self.show(
            "book.html",
            book=book,
            holder=holder,
            holder_card=holder_card,
            waiting=len(queue),
            place=place_words(mine) if mine is not None else None,
            mine=mine,
            queue=await self._queue_lines(queue) if staff else [],
            history=history,
            by_author=min(len(by_author), BY_AUTHOR_COUNTED),
            by_author_more=len(by_author) > BY_AUTHOR_COUNTED,
            back=back_to(self.query("back"), "/?", "/reservations"),
            history_shown=BOOK_HISTORY_SHOWN,
        )

    async def _queue_lines(self, queue: list[Place]) -> list[dict[str, Any]]:
        """The book's queue for the desk, in order, each reader named as their card says now."""
        users = await asyncio.gather(*(_user_or_none(self.library, p.user_id) for p in queue))
        return [{"place": p, "user": user} for p, user in zip(queue, users, strict=True)]

    async def _history(self, book_id: UUID) -> list[dict[str, Any]]:
        """The book's latest history lines, each in the desk's words, with the cards named as they are now."""
        lines = await self.library.book_history(book_id)
        cards = {card for line in lines for card in (line.user_id, line.by_id) if card is not None}
        users = await asyncio.gather(*(_user_or_none(self.library, card) for card in cards))
        names = {user.user_id: user.name for user in users if user is not None}
        return [
            {
                "when": line.happened_at,
                "words": history_words(
                    line.event,
                    card_words(names, line.user_id),
                    card_words(names, line.by_id) if line.by_id not in (None, line.user_id) else None,
                ),
            }
            for line in lines
        ]


async def past_holds_shown(page: PageHandler, caller: Caller | None, user_id: int) -> dict[str, Any]:
    """A reader's past holds for their page or the desk's: the lines of the page `before` names (the newest without
    it), each with its book and words, and the address of the older ones."""
    raw = page.query("before")
    before = parse_time_uuid(raw, "before") if raw else None
    lines, older = await page.service.past_holds(caller, user_id, before)
    books = await _books_by_id(page.library, list({line.book_id for line in lines}))
    return {
        "past": [
            {"line": line, "book": books.get(line.book_id), "words": HOLD_END_WORDS[line.outcome]} for line in lines
        ],
        "older": f"{page.request.path}?before={older}#past-heading" if older else None,
        "newer": f"{page.request.path}#past-heading" if before else None,
    }


class MyReservationsHandler(PageHandler):
    ACCESS = {"get": Access.READER}

    async def get(self) -> None:
        reader = self.require_reader()
        held, places = await asyncio.gather(self.library.some_reservations(reader.user_id), self.service.places(reader))
        listing = ReservationList(self, held)
        (shown, entries), books = await asyncio.gather(
            listing.page(), _books_by_id(self.library, [p.book_id for p in places])
        )
        past = await past_holds_shown(self, reader, reader.user_id)
        await self.show(
            "my_reservations.html",
            **past,
            waiting=[{"place": p, "words": place_words(p), "book": books.get(p.book_id)} for p in places],
            entries=entries,
            shown=shown,
            order=listing.order,
            orders=list(ReservationOrder),
            url=lambda page=1: list_url("/me", {"order": _not_default(listing.order)}, page),
        )


def _not_default(order: ReservationOrder) -> str | None:
    return None if order is ReservationOrder.NEWEST else order.value


class AllReservationsHandler(PageHandler):
    """Staff: every reservation, or those of a reader (by card number, name or e-mail) or of a book (by its title's
    words, or its id): the desk types what it knows. Newest first or by title, counted, numbered pages; and the
    desk actions of the week. A filter the desk must change is said beside its field, and the list waits for it."""

    ACCESS = {"get": Access.STAFF}

    async def get(self) -> None:
        # `card`: the name of the reader filter before it took names and e-mails too, in bookmarks kept since.
        reader_typed = TypedQuery.of(self.query("reader") or self.query("card"))
        book_typed = TypedQuery.of(self.query("book"))
        notes = query_notes(reader_typed) + query_notes(book_typed)
        problems: dict[str, str] = {}
        found: list[Reservation] | None = None
        books: dict[UUID, Book] | None = None
        for name, typed in (("reader", reader_typed), ("book", book_typed)):
            problem = unsearchable(typed, READER_EXAMPLE if name == "reader" else BOOK_EXAMPLE)
            if problem:
                problems[name] = problem
        cards: set[int] | None = None
        if reader_typed.text and not problems:
            cards, more = await self._cards(reader_typed)
            if more:
                notes.append(too_many_readers(reader_typed.text, READERS_FILTERED))
        if book_typed.text and not problems:
            books, more = await self._books(book_typed)
            held = await self.library.holders(list(books))
            found = [r for r in held.values() if cards is None or r.user_id in cards]
            if more:
                notes.append(too_many_books(book_typed.text, RESULT_BOUND))
        elif cards is not None and not problems:
            per_card = await asyncio.gather(*(self.library.some_reservations(card) for card in sorted(cards)))
            found = [r for held in per_card for r in held]
        elif not problems:
            found = await self.library.some_reservations()
        listing = ReservationList(self, found or [], books)
        shown, entries = await listing.page() if found is not None else (None, [])
        keep = {"reader": reader_typed.text, "book": book_typed.text, "order": _not_default(listing.order)}
        await self.show(
            "reservations.html",
            entries=entries,
            shown=shown,
            actions=await self.library.staff_actions(limit=STAFF_ACTIONS_SHOWN),
            actions_shown=STAFF_ACTIONS_SHOWN,
            filters={"reader": reader_typed.text, "book": book_typed.text},
            problems=problems,
            notes=notes,
            order=listing.order,
            orders=list(ReservationOrder),
            url=lambda page=1: list_url("/reservations", keep, page),
        )

    async def _cards(self, typed: TypedQuery) -> tuple[set[int], bool]:
        """The cards a reader filter names: the readers a search of names and e-mails finds (at most
        READERS_FILTERED; True if there are more), and the card of that number when digits were typed (`_card_typed`:
        "2024" is card 2024 and jo.2024@…)."""
        readers = await self.library.matching_users(typed.searched, bound=READERS_FILTERED)
        cards = {u.user_id for u in readers[:READERS_FILTERED]}
        number = _card_typed(typed)
        return (cards | {number} if number is not None else cards), len(readers) > READERS_FILTERED

    async def _books(self, typed: TypedQuery) -> tuple[dict[UUID, Book], bool]:
        """The books a book filter names: one id, or the books whose title, author or genre the words begin (at most
        RESULT_BOUND; True if there are more)."""
        try:
            book_id = parse_uuid(typed.text, "book")
        except InvalidInput:
            matches = await self.library.matching_books(typed.searched)
            return {b.book_id: b for b in matches[:RESULT_BOUND]}, len(matches) > RESULT_BOUND
        return await _books_by_id(self.library, [book_id]), False


class ReadersHandler(PageHandler):
    """Staff: the readers, or those a search finds by the beginning of a name or e-mail (a card number opens that
    card), filed by surname, counted, in numbered pages."""

    ACCESS = {"get": Access.STAFF}

    async def get(self) -> None:
        # `card`: the name of this search before it took names and e-mails too, in bookmarks kept since.
        typed = TypedQuery.of(self.query("q") or self.query("card"))
        notes = query_notes(typed)
        problem = unsearchable(typed, READER_EXAMPLE)
        number = _card_typed(typed)
        card = await _user_or_none(self.library, number) if number is not None else None
        if card is not None:
            self.redirect(f"/readers/{card.user_id}")  # a card number: straight to that card
            return
        found = [] if problem else await self.library.matching_users(typed.searched or None)
        if typed.text.isdigit() and not problem:
            # Digits that are no card's number, searched in names and e-mails instead: said, beside the box if in vain.
            if found:
                notes.append(no_card(typed.text, found=True))
            else:
                problem = no_card(typed.text, found=False)
        ordered = sort_readers(found[:RESULT_BOUND]) + found[RESULT_BOUND:]
        shown = numbered(ordered, bound=RESULT_BOUND, page=_page_number(self.query("page")), page_size=LIST_PAGE_SIZE)
        await self.show(
            "readers.html",
            shown=shown,
            readers=shown.items,
            query=typed.text,
            problem=problem,
            notes=notes,
            locks=await self.service.sign_in_locks(self.caller, [u.user_id for u in shown.items]),
            url=lambda page=1: list_url("/readers", {"q": typed.text}, page),
        )


class ReaderPageHandler(PageHandler):
    """Staff: one reader's card, its reservations (to cancel at the desk), and the edit form."""

    ACCESS = {"get": Access.STAFF}

    async def get(self, raw_id: str) -> None:
        user = await self.library.get_user(parse_user_id_text(raw_id))
        back = back_to(self.query("back"), "/readers?")
        listing = ReservationList(self, await self.library.some_reservations(user.user_id))
        (shown, entries), locks = await asyncio.gather(
            listing.page(), self.service.sign_in_locks(self.caller, [user.user_id])
        )
        past = await past_holds_shown(self, self.caller, user.user_id)
        await self.show(
            "reader.html",
            **past,
            card=user,
            entries=entries,
            shown=shown,
            order=listing.order,
            orders=list(ReservationOrder),
            locked_until=locks.get(user.user_id),
            back=back,
            # Sorting and paging keep the search the reader was found by, for "Back to your search".
            url=lambda page=1: list_url(self.request.path, {"order": _not_default(listing.order), "back": back}, page),
        )


class StatusPageHandler(PageHandler):
    """Is the service working, in words: the page the footer links to (`/health` answers monitoring tools)."""

    ACCESS = {"get": Access.PUBLIC}

    async def get(self) -> None:
        try:
            await self.library.ping()
        except DatabaseUnavailable:
            self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
            self.render_page("status.html", status=503, working=False)
            return
        self.render_page("status.html", working=True)


class SignInHandler(PageHandler):
    ACCESS = {"get": Access.PUBLIC, "post": Access.PUBLIC}

    def get(self) -> None:
        self.render_page("sign_in.html", next=same_site_path(self.get_query_argument("next", ""), ""), card="")

    async def post(self) -> None:
        raw_card = self.get_body_argument("card", "").strip()
        target = same_site_path(self.get_body_argument("next", ""), "")
        try:
            card = parse_user_id_text(raw_card, "card")
        except InvalidInput:
            self._again("A card number is the digits printed on your library card.", raw_card, target, 400, "card")
            return
        try:
            pin, device = self.get_body_argument("pin", ""), self.get_cookie(device_cookie(card))
            signed_in = await self.library.sign_in(card, pin, device)
        except InvalidInput:
            self._again("That PIN cannot be right: check it and try again.", raw_card, target, 400)
            return
        except Unauthenticated as error:
            self._again(error_words(error), raw_card, target, 401)
            return
        except LibraryError as error:
            if status_for(error) is None or isinstance(error, DatabaseUnavailable):
                raise
            self._again(error_words(error), raw_card, target, status_for(error) or 400)
            return
        self.start_session(signed_in.token)
        # This browser is now one the card knows: its sign-ins count apart from strangers' guesses at the card.
        self.set_cookie(
            device_cookie(card),
            signed_in.device,
            expires_days=DEVICE_COOKIE_DAYS,
            httponly=True,
            samesite="Lax",
            secure=self.request.protocol == "https",
        )
        caller = signed_in.caller
        self.flash("success", f"Welcome, {caller.name}.")
        self.redirect(target or ("/reservations" if caller.is_staff else "/me"))

    def _again(self, message: str, card: str, target: str, status: int, field: str = "pin") -> None:
        """The form again, with what went wrong beside the field to change (the PIN, unless the card number cannot be
        one) and the card number typed (never the PIN)."""
        self.render_page("sign_in.html", status=status, error=message, field=field, next=target, card=card)


class SignOutHandler(PageHandler):
    ACCESS = {"post": Access.PUBLIC}  # signing out when already signed out is no error

    async def post(self) -> None:
        token = self.get_signed_cookie(SESSION_COOKIE)
        if token:
            await self.library.sign_out(token.decode("ascii", "replace"))
        self.clear_cookie(SESSION_COOKIE)
        self.flash("info", "You are signed out.")
        self.redirect("/")


# -- actions ----------------------------------------------------------------------------------------------
class AddReaderHandler(ActionHandler):
    ACCESS = {"post": Access.STAFF}
    FORM = True

    async def act(self) -> Done:
        pin = self.get_body_argument("pin", "")
        role = Role.LIBRARIAN if self.get_body_argument("role", "") == Role.LIBRARIAN.value else Role.READER
        user = await self.service.add_reader(
            self.caller,
            self.get_body_argument("name", ""),
            self.get_body_argument("email", ""),
            role=role,
            pin=pin or None,
        )
        how = "They can sign in with the PIN you gave." if pin else "Set a PIN so they can sign in."
        return Done(f"Added {user.name} with card {user.user_id}. {how}", to=f"/readers/{user.user_id}")


class EditReaderHandler(ActionHandler):
    ACCESS = {"post": Access.STAFF}
    FORM = True

    async def act(self, raw_id: str) -> Done:
        user_id = parse_user_id_text(raw_id)
        pin = self.get_body_argument("pin", "")
        change = AccountChange(
            name=self.get_body_argument("name", ""), email=self.get_body_argument("email", ""), pin=pin or None
        )
        user = await self.service.update_account(self.caller, user_id, change)
        return Done(f"Saved {user.name}{' and the new PIN' if pin else ''}.", to=f"/readers/{user_id}")


class ReaderActiveHandler(ActionHandler):
    ACCESS = {"post": Access.STAFF}

    async def act(self, raw_id: str) -> Done:
        user_id = parse_user_id_text(raw_id)
        active = self.get_body_argument("active", "") == "yes"
        user = await self.service.set_active(self.caller, user_id, active)
        if active:
            return Done(f"{user.name} can sign in again.", to=f"/readers/{user_id}")
        return Done(f"{user.name}'s card is deactivated and signed out everywhere.", to=f"/readers/{user_id}")


class ReaderSignOutHandler(ActionHandler):
    ACCESS = {"post": Access.STAFF}

    async def act(self, raw_id: str) -> Done:
        user = await self.library.get_user(parse_user_id_text(raw_id))
        ended = await self.service.sign_out_everywhere(self.caller, user.user_id)
        return Done(f"Signed {user.name} out of {count(ended, 'session')}.")


class ChangeOwnPinHandler(ActionHandler):
    """A signed-in reader (or librarian) changes their own PIN on "My reservations", with the current one."""

    FORM = True

    async def act(self) -> Done:
        caller = self.require_reader()
        new_pin = self.get_body_argument("pin", "")
        if new_pin != self.get_body_argument("pin_again", ""):
            raise Refused("The new PIN and its repeat differ: type the same new PIN twice.", "pin_again")
        try:
            await self.service.change_own_pin(caller, self.get_body_argument("current_pin", ""), new_pin)
        except Unauthenticated as error:
            # Not "sign in again": the reader is signed in; they typed another PIN than their current one.
            warning = " Careful: one more wrong PIN locks it for a while." if error.last_try_next else ""
            raise Refused(f"That is not your current PIN, so nothing was changed.{warning}", "current_pin") from None
        return Done("Your PIN is changed: use the new one next time you sign in.")


class AddBookHandler(ActionHandler):
    ACCESS = {"post": Access.STAFF}
    FORM = True

    async def act(self) -> Done:
        book = await self.service.add_book(self.caller, *self._book_fields())
        return Done(f"Added “{book.title}” to the catalogue.", to=f"/books/{book.book_id}")

    def _book_fields(self) -> tuple[str, str, str, int | None]:
        raw_year = self.get_body_argument("published_year", "").strip()
        year = None
        if raw_year:
            if not raw_year.lstrip("-").isdigit() or len(raw_year) > 5:
                raise InvalidInput("the year is a whole number such as 1999", field="published_year")
            year = int(raw_year)
        return (
            self.get_body_argument("title", ""),
            self.get_body_argument("author", ""),
            self.get_body_argument("genre", ""),
            year,
        )


class EditBookHandler(AddBookHandler):
    async def act(self, raw_id: str) -> Done:  # type: ignore[override]
        book_id = parse_uuid(raw_id, "book_id")
        title, author, genre, year = self._book_fields()
        book = await self.service.edit_book(
            self.caller, book_id, title=title, author=author, genre=genre, published_year=year
        )
        return Done(f"Saved “{book.title}”.", to=f"/books/{book_id}")


class DeleteBookHandler(ActionHandler):
    ACCESS = {"post": Access.STAFF}
    FORM = True  # its refusal is said beside its button

    async def act(self, raw_id: str) -> Done:
        book = await self.library.get_book(parse_uuid(raw_id, "book_id"))
        try:
            await self.service.delete_book(self.caller, book.book_id)
        except Conflict as error:
            if error.kind is not ConflictKind.BOOK_IN_USE:
                raise
            holder = await self.library.holder(book.book_id)
            who = await _user_or_none(self.library, holder.user_id) if holder else None
            name = f"{who.name} (card {who.user_id})" if who else "a reader"
            # A reservation has no end of its own: only cancelling it frees the book.
            raise Refused(
                f"“{book.title}” is reserved by {name}, so it cannot be deleted. Cancel that reservation first"
                " (“Cancel the reservation at the desk”, above), then delete the book."
            ) from None
        return Done(f"Deleted “{book.title}” from the catalogue.", to="/")


class ReserveHandler(ActionHandler):
    ITEM = "book-{}"

    async def act(self, raw_id: str) -> Done:
        reader = self.require_reader()
        book = await self.library.get_book(parse_uuid(raw_id, "book_id"))
        try:
            await self.service.reserve(reader, book.book_id)
        except Conflict as error:
            return Done(error_words(error, book=book), kind="error")
        return Done(f"You reserved “{book.title}”. It is listed under My reservations.", focus=self.item(raw_id))


class JoinQueueHandler(ActionHandler):
    """A reader joins the queue of a book another reader holds (a book free meanwhile is simply reserved)."""

    ITEM = "book-{}"

    async def act(self, raw_id: str) -> Done:
        reader = self.require_reader()
        book = await self.library.get_book(parse_uuid(raw_id, "book_id"))
        try:
            joined = await self.service.join(reader, book.book_id)
        except Conflict as error:
            return Done(error_words(error, book=book), kind="error")
        if isinstance(joined, Place):
            return Done(
                f"You joined the queue for “{book.title}”: you are {place_words(joined)}. It is listed under My "
                "reservations, and it is yours when your turn comes.",
                focus=self.item(raw_id),
            )
        return Done(f"“{book.title}” was free, so you reserved it. It is listed under My reservations.")


class DeskHoldHandler(ActionHandler):
    """At the desk, a librarian places a hold for a reader, named by their card: the book reserved for them if it is
    free, else a place in its queue. Recorded in the desk log."""

    ACCESS = {"post": Access.STAFF}
    FORM = True

    async def act(self, raw_id: str) -> Done:
        book = await self.library.get_book(parse_uuid(raw_id, "book_id"))
        card = parse_user_id_text(self.get_body_argument("card", "").strip(), "card")
        joined = await self.service.join(self.caller, book.book_id, named=card)
        reader = await self.library.get_user(card)
        if isinstance(joined, Place):
            return Done(f"{reader.name} (card {card}) is now {place_words(joined)} for “{book.title}”.")
        return Done(f"“{book.title}” was free: it is reserved for {reader.name} (card {card}).")


class SuspendPlaceHandler(ActionHandler):
    """A reader suspends their place in a book's queue until a date: kept, and passed over until then."""

    FORM = True

    async def act(self, raw_id: str) -> Done:
        reader = self.require_reader()
        book = await self.library.get_book(parse_uuid(raw_id, "book_id"))
        until = self.get_body_argument("until", "")
        time_zone = self.app_settings.time_zone
        place = await self.service.suspend(reader, book.book_id, until, time_zone=time_zone)
        return Done(
            f"Your place in the queue for “{book.title}” is suspended until {when(place.suspended_until, time_zone)}: "
            f"you keep it ({place_words(place)}), and the book passes you by until then."
        )


class ResumePlaceHandler(ActionHandler):
    """A reader resumes their suspended place; a book free by then is theirs at once."""

    async def act(self, raw_id: str) -> Done:
        reader = self.require_reader()
        book = await self.library.get_book(parse_uuid(raw_id, "book_id"))
        resumed = await self.service.resume(reader, book.book_id)
        if isinstance(resumed, Place):
            return Done(f"Your place in the queue for “{book.title}” is active again: you are {place_words(resumed)}.")
        return Done(f"“{book.title}” was free, so it is yours now: collect it at the desk. It is listed below.")


class CollectHandler(ActionHandler):
    """At the desk: the reader holding the book collected it; it is on loan until returned. In the desk log."""

    ACCESS = {"post": Access.STAFF}

    async def act(self, raw_id: str) -> Done:
        book = await self.library.get_book(parse_uuid(raw_id, "book_id"))
        try:
            loan = await self.service.lend(self.caller, book.book_id)
        except Conflict as error:
            return Done(error_words(error, book=book), kind="error")
        reader = await _user_or_none(self.library, loan.user_id)
        who = f"{reader.name} (card {loan.user_id})" if reader else f"card {loan.user_id}"
        return Done(f"“{book.title}” is on loan to {who} until it is returned here.")


class ReturnHandler(ActionHandler):
    """At the desk: the book on loan came back; it goes to the next reader in its queue. In the desk log."""

    ACCESS = {"post": Access.STAFF}

    async def act(self, raw_id: str) -> Done:
        book = await self.library.get_book(parse_uuid(raw_id, "book_id"))
        try:
            await self.service.take_back(self.caller, book.book_id)
        except Conflict as error:
            return Done(error_words(error, book=book), kind="error")
        holder = await self.library.holder(book.book_id)
        after = "it is ready for the next reader in its queue" if holder else "nobody waits for it: it is available"
        return Done(f"“{book.title}” is back: {after}.")


class LeaveQueueHandler(ActionHandler):
    """A reader leaves the queue of a book."""

    ITEM = "book-{}"

    async def act(self, raw_id: str) -> Done:
        reader = self.require_reader()
        book = await self.library.get_book(parse_uuid(raw_id, "book_id"))
        await self.service.leave(reader, book.book_id)
        return Done(f"You left the queue for “{book.title}”.")


class CancelHandler(ActionHandler):
    """A reader cancels their own reservation; a librarian anyone's, at the desk (recorded). The item is gone from
    the list afterwards, so the keyboard comes back to the message."""

    ITEM = "reservation-{}"

    async def act(self, raw_id: str) -> Done:
        caller = self.require_reader()
        reservation = await self.library.get_reservation(parse_uuid(raw_id, "reservation_id"))
        await self.service.cancel(caller, reservation.reservation_id, read=reservation)
        reader, book = await self.service.names(reservation)
        if reservation.user_id != caller.user_id:
            return Done(f"Cancelled {reader}'s reservation of {book}.")
        return Done(f"Cancelled your reservation of {book}.")


class MoveHandler(ActionHandler):
    """A reader renews or moves their own reservation; a librarian anyone's, at the desk (recorded)."""

    ITEM = "reservation-{}"

    async def act(self, raw_id: str) -> Done:
        caller = self.require_reader()
        reservation_id = parse_uuid(raw_id, "reservation_id")
        raw_book = self.get_body_argument("book_id", "").strip()
        if not raw_book:
            renewed = await self.service.move(caller, reservation_id)
            if renewed.user_id != caller.user_id:
                return Done(f"Renewed card {renewed.user_id}'s reservation.", focus=self.item(raw_id))
            return Done("Renewed your reservation.", focus=self.item(raw_id))
        book = await self.library.get_book(parse_uuid(raw_book, "book_id"))
        try:
            moved = await self.service.move(caller, reservation_id, new_book_id=book.book_id)
        except Conflict as error:
            return Done(error_words(error, book=book, moving=True), kind="error", focus=f"book-{book.book_id}")
        if moved.user_id != caller.user_id:
            return Done(f"Card {moved.user_id}'s reservation now holds “{book.title}”.", focus=f"book-{book.book_id}")
        return Done(f"Your reservation now holds “{book.title}”.", focus=f"book-{book.book_id}")


def _card_typed(typed: TypedQuery) -> int | None:
    """The one rule of the desk's reader boxes for digits: typed alone, they are a card number (None: not digits, or
    no card can have that number). They are searched in names and e-mails as well, so a number that is no card's
    still finds jo.2024@…."""
    if not typed.text.isdigit():
        return None
    try:
        return parse_user_id_text(typed.text, "card")
    except InvalidInput:
        return None


async def _user_or_none(library: Library, user_id: int) -> User | None:
    try:
        return await library.get_user(user_id)
    except NotFound:
        return None


class PageNotFoundHandler(PageHandler):
    """Unknown paths: an HTML page for a browser, the API's JSON 404 for everything else."""

    ACCESS = {m: Access.PUBLIC for m in ("get", "post", "put", "patch", "delete", "head", "options")}

    async def prepare(self) -> None:
        if not _wants_html(self.request):
            self.set_status(404)
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish(encode_json({"error": f"no such endpoint: {self.request.method} {self.request.path}"}))
            return
        self.caller = await self.find_caller()
        raise tornado.web.HTTPError(404, "There is no page at %s.", self.request.path)

    def check_xsrf_cookie(self) -> None:
        return  # the answer is a 404 whatever the method; no state changes


def _wants_html(request: tornado.httputil.HTTPServerRequest) -> bool:
    return not request.path.startswith("/api/") and "text/html" in request.headers.get("Accept", "")
