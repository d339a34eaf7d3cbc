"""The UI: server-rendered pages over the same `Library` the API uses.

A reader signs in with card number and PIN; the session's token travels in a signed, HttpOnly, SameSite=Lax
cookie (Secure over TLS), and every form carries Tornado's XSRF token. Readers see their own reservations;
librarians get the staff screens (readers, all reservations, the catalogue's edit forms) and act for readers
at the desk, each such action recorded with their card. Form posts follow post/redirect/get, and what
happened travels to the next page in a one-shot "flash" cookie, so a reload never repeats a reservation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
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
    Reservation,
    Role,
    Unauthenticated,
    User,
)
from app.repository import Library
from app.rules import DEVICE_COOKIE_DAYS, MAX_PAGE_SIZE
from app.search import Sort
from app.service import AccountChange
from app.web.api_books import availability
from app.web.base import RETRY_AFTER_SECONDS, BaseHandler, describe, status_for
from app.web.parsing import optional_text_param, parse_user_id_text, parse_uuid, same_site_path
from app.web.wording import error_words

SESSION_COOKIE = "session"
FLASH_COOKIE = "flash"
CATALOGUE_PAGE_SIZE = 15
LIST_PAGE_SIZE = 25
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
            path=self.request.path,
            # Where a form on this page sends the reader back to: the page with its query (filters, page).
            here=self.request.uri if self.request.method == "GET" else self.request.path,
            xsrf_form_html=Markup(self.xsrf_form_html()),
            static_url=self.static_url,
            **context,
        )
        self.finish(html)

    # -- one-shot messages across a redirect --------------------------------------------------------------
    def flash(self, kind: str, text: str, form: dict[str, str] | None = None) -> None:
        """A message for the next page; `form`: what was typed into a form that failed, kept when it fits."""
        value = quote(json.dumps({"kind": kind, "text": text, "form": form or {}}))
        if len(value) > MAX_FLASH_BYTES:
            value = quote(json.dumps({"kind": kind, "text": text, "form": {}}))
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


class ActionHandler(PageHandler):
    """A form post: the reader goes back to the page the form is on (its `next` field: the page with its query,
    filters and page number), with what happened on top. Whatever the library refuses becomes a message in the
    reader's words (app/web/wording.py), and the form is filled in again with what was typed. A form may name
    another place for after a success (`after`), as the catalogue's "Move here" does to leave "change" mode."""

    ACCESS = {"post": Access.READER}

    async def post(self, *args: str) -> None:
        try:
            kind, text, target = await self.act(*args)
        except LibraryError as error:
            if status_for(error) is None or isinstance(error, Unauthenticated):
                raise
            self.flash("error", error_words(error), form=self.typed())
            self.back()
            return
        failed = kind == "error"
        self.flash(kind, text, form=self.typed() if failed else None)
        self.back(target, field="after" if self.get_body_argument("after", "") and not failed else "next")

    async def act(self, *args: Any, **kwargs: Any) -> tuple[str, str, str | None]:
        """Do the action; answer the message's kind and text, and where to go (None: back to the form's page). Each
        action takes the path's arguments it needs."""
        raise NotImplementedError


def catalogue_url(query: Mapping[str, str | None], page: int = 1) -> str:
    """The catalogue's address for a search (`query`: q, genre, author, sort, move; empty values left out)."""
    kept = {k: v for k, v in query.items() if v}
    if page > 1:
        kept["page"] = str(page)
    return f"/?{urlencode(kept)}" if kept else "/"


def _page_number(raw: str | None) -> int:
    """The catalogue's `page`: a page number. Anything else (an old link's page token, a typo) is the first page,
    and a number beyond the last is the last page (app/search.py): a search link never leads nowhere."""
    raw = (raw or "").strip()
    return int(raw) if raw.isdigit() and len(raw) <= 6 else 1


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


# -- pages ------------------------------------------------------------------------------------------------
class CatalogueHandler(PageHandler):
    """The catalogue and its search box: one page of the matches in the chosen order, how many there are, the
    genre and author facets, numbered pages. Every link and form here keeps the query, so the reader never loses
    their place."""

    ACCESS = {"get": Access.PUBLIC}

    async def get(self) -> None:
        filters = {
            "q": optional_text_param(self.query("q"), "q") or "",
            "genre": optional_text_param(self.query("genre"), "genre") or "",
            "author": optional_text_param(self.query("author"), "author") or "",
        }
        order = Sort.parse(self.query("sort"))
        moving = await self._moving()
        result = await self.library.search_books(
            filters["q"],
            genre=filters["genre"] or None,
            author=filters["author"] or None,
            sort=order,
            page=_page_number(self.query("page")),
            page_size=CATALOGUE_PAGE_SIZE,
        )
        free, mine = await asyncio.gather(availability(self.library, result.books), self._my_books())
        keep = {k: v for k, v in filters.items() if v}
        if order is not Sort.TITLE:
            keep["sort"] = order.value
        move = {"move": str(moving["reservation"].reservation_id)} if moving else {}

        def url(page: int = 1, **changes: str | None) -> str:
            """This search with `changes` (a facet chosen, one removed: None), at `page`, in "change" mode if on."""
            return catalogue_url({**keep, **move, **changes}, page)

        await self.show(
            "catalogue.html",
            books=list(zip(result.books, free, strict=True)),
            result=result,
            mine=mine,
            filters=filters,
            order=order,
            sorts=list(Sort),
            moving=moving,
            url=url,
            # After "Move here": this very page, out of "change" mode.
            place=catalogue_url(keep, result.page),
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
    ACCESS = {"get": Access.PUBLIC}

    async def get(self, raw_id: str) -> None:
        book_id = parse_uuid(raw_id, "book_id")
        book, holder = await asyncio.gather(self.library.get_book(book_id), self.library.holder(book_id))
        # Who holds a book is the holder's and the staff's business: others see only "reserved".
        holder_card = None
        if holder is not None and self.caller is not None and self.caller.is_staff:
            holder_card = await _user_or_none(self.library, holder.user_id)
        await self.show("book.html", book=book, holder=holder, holder_card=holder_card)


class MyReservationsHandler(PageHandler):
    ACCESS = {"get": Access.READER}

    async def get(self) -> None:
        reader = self.require_reader()
        page_token = self.page_param()
        page = await self.library.user_reservations(reader.user_id, page_size=LIST_PAGE_SIZE, page=page_token)
        entries = await _describe_reservations(self.library, page.items)
        next_url = f"/me?{urlencode({'page': page.next_page})}" if page.next_page else None
        await self.show(
            "my_reservations.html", entries=entries, next_url=next_url, first_url="/me" if page_token else None
        )


class AllReservationsHandler(PageHandler):
    """Staff: every reservation, or those of one reader (card) or one book, and the desk actions of the week."""

    ACCESS = {"get": Access.STAFF}

    async def get(self) -> None:
        raw_card = (self.query("card") or "").strip()
        raw_book = (self.query("book") or "").strip()
        page_token = self.page_param()
        next_url = None
        if raw_book:
            found = await self.library.book_reservations(parse_uuid(raw_book, "book"))
        elif raw_card:
            card_page = await self.library.user_reservations(
                parse_user_id_text(raw_card, "card"), page_size=LIST_PAGE_SIZE, page=page_token
            )
            found = card_page.items
            if card_page.next_page:
                next_url = f"/reservations?{urlencode({'card': raw_card, 'page': card_page.next_page})}"
        else:
            all_page = await self.library.list_reservations(page_size=LIST_PAGE_SIZE, page=page_token)
            found = all_page.items
            if all_page.next_page:
                next_url = f"/reservations?{urlencode({'page': all_page.next_page})}"
        entries, actions = await asyncio.gather(
            _describe_reservations(self.library, found), self.library.staff_actions(limit=50)
        )
        keep = {k: v for k, v in (("card", raw_card), ("book", raw_book)) if v}
        await self.show(
            "reservations.html",
            entries=entries,
            actions=actions,
            filters={"card": raw_card, "book": raw_book},
            next_url=next_url,
            first_url=f"/reservations?{urlencode(keep)}" if page_token else None,
        )


class ReadersHandler(PageHandler):
    ACCESS = {"get": Access.STAFF}

    async def get(self) -> None:
        raw_card = (self.query("card") or "").strip()
        if raw_card:
            # "Find a reader": straight to their card.
            self.redirect(f"/readers/{parse_user_id_text(raw_card, 'card')}")
            return
        page_token = self.page_param()
        page = await self.library.list_users(page_size=LIST_PAGE_SIZE, page=page_token)
        await self.show(
            "readers.html",
            readers=sorted(page.items, key=lambda u: u.user_id),
            locks=await self.service.sign_in_locks(self.caller, [u.user_id for u in page.items]),
            next_url=f"/readers?{urlencode({'page': page.next_page})}" if page.next_page else None,
            first_url="/readers" if page_token else None,
        )


class ReaderPageHandler(PageHandler):
    """Staff: one reader's card, its reservations (to cancel at the desk), and the edit form."""

    ACCESS = {"get": Access.STAFF}

    async def get(self, raw_id: str) -> None:
        user = await self.library.get_user(parse_user_id_text(raw_id))
        held = await self.library.user_reservations(user.user_id, page_size=MAX_PAGE_SIZE)
        entries = await _describe_reservations(self.library, held.items)
        locks = await self.service.sign_in_locks(self.caller, [user.user_id])
        await self.show("reader.html", card=user, entries=entries, locked_until=locks.get(user.user_id))


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
            self._again("A card number is the digits printed on your library card.", raw_card, target, 400)
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

    def _again(self, message: str, card: str, target: str, status: int) -> None:
        """The form again, with what went wrong and the card number typed (never the PIN)."""
        self.render_page("sign_in.html", status=status, error=message, next=target, card=card)


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

    async def act(self) -> tuple[str, str, str | None]:
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
        return "success", f"Added {user.name} with card {user.user_id}. {how}", f"/readers/{user.user_id}"


class EditReaderHandler(ActionHandler):
    ACCESS = {"post": Access.STAFF}

    async def act(self, raw_id: str) -> tuple[str, str, str | None]:
        user_id = parse_user_id_text(raw_id)
        pin = self.get_body_argument("pin", "")
        change = AccountChange(
            name=self.get_body_argument("name", ""), email=self.get_body_argument("email", ""), pin=pin or None
        )
        user = await self.service.update_account(self.caller, user_id, change)
        return "success", f"Saved {user.name}{' and the new PIN' if pin else ''}.", f"/readers/{user_id}"


class ReaderActiveHandler(ActionHandler):
    ACCESS = {"post": Access.STAFF}

    async def act(self, raw_id: str) -> tuple[str, str, str | None]:
        user_id = parse_user_id_text(raw_id)
        active = self.get_body_argument("active", "") == "yes"
        user = await self.service.set_active(self.caller, user_id, active)
        if active:
            return "success", f"{user.name} can sign in again.", f"/readers/{user_id}"
        return "success", f"{user.name}'s card is deactivated and signed out everywhere.", f"/readers/{user_id}"


class ReaderSignOutHandler(ActionHandler):
    ACCESS = {"post": Access.STAFF}

    async def act(self, raw_id: str) -> tuple[str, str, str | None]:
        user = await self.library.get_user(parse_user_id_text(raw_id))
        ended = await self.service.sign_out_everywhere(self.caller, user.user_id)
        return "success", f"Signed {user.name} out of {ended} session{'s' if ended != 1 else ''}.", None


class ChangeOwnPinHandler(ActionHandler):
    """A signed-in reader (or librarian) changes their own PIN on "My reservations", with the current one."""

    async def act(self) -> tuple[str, str, str | None]:
        caller = self.require_reader()
        new_pin = self.get_body_argument("pin", "")
        if new_pin != self.get_body_argument("pin_again", ""):
            return "error", "The new PIN and its repeat differ: type the same new PIN twice.", None
        try:
            await self.service.change_own_pin(caller, self.get_body_argument("current_pin", ""), new_pin)
        except Unauthenticated as error:
            # Not "sign in again": the reader is signed in; they typed another PIN than their current one.
            warning = " Careful: one more wrong PIN locks it for a while." if error.last_try_next else ""
            return "error", f"That is not your current PIN, so nothing was changed.{warning}", None
        return "success", "Your PIN is changed: use the new one next time you sign in.", None


class AddBookHandler(ActionHandler):
    ACCESS = {"post": Access.STAFF}

    async def act(self) -> tuple[str, str, str | None]:
        book = await self.service.add_book(self.caller, *self._book_fields())
        return "success", f"Added “{book.title}” to the catalogue.", f"/books/{book.book_id}"

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
    async def act(self, raw_id: str) -> tuple[str, str, str | None]:  # type: ignore[override]
        book_id = parse_uuid(raw_id, "book_id")
        title, author, genre, year = self._book_fields()
        book = await self.service.edit_book(
            self.caller, book_id, title=title, author=author, genre=genre, published_year=year
        )
        return "success", f"Saved “{book.title}”.", f"/books/{book_id}"


class DeleteBookHandler(ActionHandler):
    ACCESS = {"post": Access.STAFF}

    async def act(self, raw_id: str) -> tuple[str, str, str | None]:
        book = await self.library.get_book(parse_uuid(raw_id, "book_id"))
        try:
            await self.service.delete_book(self.caller, book.book_id)
        except Conflict as error:
            if error.kind is not ConflictKind.BOOK_IN_USE:
                raise
            holder = await self.library.holder(book.book_id)
            who = await _user_or_none(self.library, holder.user_id) if holder else None
            name = f"{who.name} (card {who.user_id})" if who else "a reader"
            return (
                "error",
                f"“{book.title}” is reserved by {name}, so it cannot be deleted yet. Cancel that reservation first "
                "(below, or on the reader's page), or wait until it ends; then delete the book.",
                None,
            )
        return "success", f"Deleted “{book.title}” from the catalogue.", "/"


class ReserveHandler(ActionHandler):
    async def act(self, raw_id: str) -> tuple[str, str, str | None]:
        reader = self.require_reader()
        book = await self.library.get_book(parse_uuid(raw_id, "book_id"))
        try:
            await self.service.reserve(reader, book.book_id)
        except Conflict as error:
            return "error", error_words(error, book=book), None
        return "success", f"You reserved “{book.title}”. It is listed under My reservations.", None


class CancelHandler(ActionHandler):
    """A reader cancels their own reservation; a librarian anyone's, at the desk (recorded)."""

    async def act(self, raw_id: str) -> tuple[str, str, str | None]:
        caller = self.require_reader()
        reservation = await self.library.get_reservation(parse_uuid(raw_id, "reservation_id"))
        await self.service.cancel(caller, reservation.reservation_id, read=reservation)
        reader, book = await self.service.names(reservation)
        if reservation.user_id != caller.user_id:
            return "success", f"Cancelled {reader}'s reservation of {book}.", None
        return "success", f"Cancelled your reservation of {book}.", None


class MoveHandler(ActionHandler):
    """A reader renews or moves their own reservation; a librarian anyone's, at the desk (recorded)."""

    async def act(self, raw_id: str) -> tuple[str, str, str | None]:
        caller = self.require_reader()
        reservation_id = parse_uuid(raw_id, "reservation_id")
        raw_book = self.get_body_argument("book_id", "").strip()
        if not raw_book:
            renewed = await self.service.move(caller, reservation_id)
            if renewed.user_id != caller.user_id:
                return "success", f"Renewed card {renewed.user_id}'s reservation.", None
            return "success", "Renewed your reservation.", None
        book = await self.library.get_book(parse_uuid(raw_book, "book_id"))
        try:
            moved = await self.service.move(caller, reservation_id, new_book_id=book.book_id)
        except Conflict as error:
            return "error", error_words(error, book=book, moving=True), None
        if moved.user_id != caller.user_id:
            return "success", f"Card {moved.user_id}'s reservation now holds “{book.title}”.", None
        return "success", f"Your reservation now holds “{book.title}”.", None


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
            self.finish(json.dumps({"error": f"no such endpoint: {self.request.method} {self.request.path}"}))
            return
        self.caller = await self.find_caller()
        raise tornado.web.HTTPError(404, "There is no page at %s.", self.request.path)

    def check_xsrf_cookie(self) -> None:
        return  # the answer is a 404 whatever the method; no state changes


def _wants_html(request: tornado.httputil.HTTPServerRequest) -> bool:
    return not request.path.startswith("/api/") and "text/html" in request.headers.get("Accept", "")
