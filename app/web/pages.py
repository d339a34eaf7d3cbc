"""The developer UI: server-rendered pages over the same `Library` the API uses.

The chosen reader lives in a plain cookie (the API names its caller by user_id too, so there is
nothing more to protect). Form posts follow post/redirect/get, and what happened travels to the
next page in a one-shot "flash" cookie, so a reload never repeats a reservation.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote, unquote, urlencode
from uuid import UUID

import tornado.web
from markupsafe import Markup

from app.models import (
    Book,
    Conflict,
    ConflictKind,
    DatabaseUnavailable,
    InvalidInput,
    LibraryError,
    NotFound,
    Reservation,
    User,
)
from app.repository import Library
from app.rules import MAX_PAGE_SIZE
from app.web.api_books import availability
from app.web.base import RETRY_AFTER_SECONDS, BaseHandler, describe, status_for
from app.web.parsing import optional_text_param, parse_user_id_text, parse_uuid, same_site_path

READER_COOKIE = "reader"
FLASH_COOKIE = "flash"
CATALOGUE_PAGE_SIZE = 15
LIST_PAGE_SIZE = 25
READER_CHOICES = 50


class PageHandler(BaseHandler):
    async def prepare(self) -> None:
        self.reader: User | None = None
        raw = self.get_cookie(READER_COOKIE)
        if raw:
            try:
                self.reader = await self.library.get_user(parse_user_id_text(raw))
            except (InvalidInput, NotFound):
                self.clear_cookie(READER_COOKIE)  # the reader was deleted, or the cookie is junk
            except DatabaseUnavailable:
                pass  # the page itself will report the outage if it needs the database

    async def show(self, template: str, **context: Any) -> None:
        """Render a page, with the readers for the chooser in its header."""
        choices = await self.library.list_users(page_size=READER_CHOICES)
        readers = sorted(choices.items, key=lambda u: u.user_id)
        if self.reader is not None and self.reader not in readers:
            readers.insert(0, self.reader)
        self.render_page(template, reader_choices=readers, **context)

    def render_page(self, template: str, status: int = 200, **context: Any) -> None:
        env = self.application.settings["jinja_env"]
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        html = env.get_template(template).render(
            reader=self.reader,
            flash=self._take_flash(),
            path=self.request.path,
            xsrf_form_html=Markup(self.xsrf_form_html()),
            static_url=self.static_url,
            **context,
        )
        self.finish(html)

    # -- one-shot messages across a redirect --------------------------------------------------------------
    def flash(self, kind: str, text: str) -> None:
        self.set_cookie(FLASH_COOKIE, quote(json.dumps({"kind": kind, "text": text})), httponly=True)

    def _take_flash(self) -> dict[str, str] | None:
        raw = self.get_cookie(FLASH_COOKIE)
        if not raw:
            return None
        self.clear_cookie(FLASH_COOKIE)
        try:
            message = json.loads(unquote(raw))
            return {"kind": str(message["kind"]), "text": str(message["text"])}
        except (ValueError, KeyError, TypeError):
            return None

    def back(self, default: str | None = None) -> None:
        """Redirect to `default`, else to the form's `next` field (the page the form is on) when that is a path
        of this site: never to another site."""
        self.redirect(default or same_site_path(self.get_body_argument("next", "")))

    def require_reader(self) -> User:
        if self.reader is None:
            raise InvalidInput("choose a reader first (top right)", field="reader")
        return self.reader

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs["exc_info"][1] if "exc_info" in kwargs else None
        status, body = describe(error, status_code, self._reason)
        if status == 503:
            self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
        self.reader = getattr(self, "reader", None)
        self.render_page("error.html", status=status, status_code=status, message=body["error"], reader_choices=[])


class ActionHandler(PageHandler):
    """A form post: whatever the library refuses becomes a message on the page it came from."""

    async def post(self, *args: str) -> None:
        try:
            kind, text, target = await self.act(*args)
        except LibraryError as error:
            if status_for(error) is None:
                raise
            self.flash("error", str(error))
            self.back()
            return
        self.flash(kind, text)
        self.back(target)

    async def act(self, *args: Any, **kwargs: Any) -> tuple[str, str, str | None]:
        """Do the action; answer the message's kind and text, and where to go (None: back to the form's page). Each
        action takes the path's arguments it needs."""
        raise NotImplementedError


def conflict_text(error: Conflict, book: Book, *, moving: bool = False) -> str:
    """What a page says when reserving `book`, or moving a reservation to it (`moving`), is refused: worded from
    the error's fields, with the book named by its title rather than its id. A conflict of a kind these actions
    do not meet keeps the API's sentence."""
    if error.kind is ConflictKind.BOOK_HELD and error.book_id == book.book_id:
        if error.held_by_caller:
            text = f"you already hold “{book.title}” (reservation {error.reservation_id})"
        else:
            text = f"“{book.title}” is already reserved by another reader"
        return f"{text}; your reservation is unchanged" if moving else text
    if error.kind is ConflictKind.RESERVATION_CHANGED:
        return "your reservation was changed by another request meanwhile; it was not moved"
    return str(error)


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
    async def get(self) -> None:
        filters = {
            "q": optional_text_param(self.query("q"), "q") or "",
            "genre": optional_text_param(self.query("genre"), "genre") or "",
            "author": optional_text_param(self.query("author"), "author") or "",
        }
        page_token = self.page_param()
        moving = await self._moving()
        page = await self.library.list_books(
            genre=filters["genre"] or None,
            author=filters["author"] or None,
            title=filters["q"] or None,
            page_size=CATALOGUE_PAGE_SIZE,
            page=page_token,
        )
        free = await availability(self.library, page.items)
        mine = await self._my_books()
        keep = {k: v for k, v in filters.items() if v}
        if moving:
            keep["move"] = str(moving["reservation"].reservation_id)
        await self.show(
            "catalogue.html",
            books=list(zip(page.items, free, strict=True)),
            mine=mine,
            filters=filters,
            moving=moving,
            next_url=f"/?{urlencode({**keep, 'page': page.next_page})}" if page.next_page else None,
            first_url=f"/?{urlencode(keep)}" if page_token else None,
        )

    async def _moving(self) -> dict[str, Any] | None:
        """In "change book" mode the catalogue offers "Move here" for the reader's reservation `move`."""
        raw = self.query("move")
        if not raw or self.reader is None:
            return None
        try:
            reservation = await self.library.get_reservation(parse_uuid(raw, "move"))
        except (InvalidInput, NotFound):
            return None
        if reservation.user_id != self.reader.user_id:
            return None
        return (await _describe_reservations(self.library, [reservation]))[0]

    async def _my_books(self) -> set[UUID]:
        if self.reader is None:
            return set()
        held = await self.library.user_reservations(self.reader.user_id, page_size=MAX_PAGE_SIZE)
        return {r.book_id for r in held.items}


class BookPageHandler(PageHandler):
    async def get(self, raw_id: str) -> None:
        book_id = parse_uuid(raw_id, "book_id")
        book, holder = await asyncio.gather(self.library.get_book(book_id), self.library.holder(book_id))
        await self.show("book.html", book=book, holder=holder)


class MyReservationsHandler(PageHandler):
    async def get(self) -> None:
        entries: list[dict[str, Any]] = []
        next_url = None
        if self.reader is not None:
            page = await self.library.user_reservations(
                self.reader.user_id,
                page_size=LIST_PAGE_SIZE,
                page=self.page_param(),
            )
            entries = await _describe_reservations(self.library, page.items)
            next_url = f"/me?{urlencode({'page': page.next_page})}" if page.next_page else None
        await self.show("my_reservations.html", entries=entries, next_url=next_url)


class AllReservationsHandler(PageHandler):
    async def get(self) -> None:
        page_token = self.page_param()
        page = await self.library.list_reservations(page_size=LIST_PAGE_SIZE, page=page_token)
        entries = await _describe_reservations(self.library, page.items)
        await self.show(
            "reservations.html",
            entries=entries,
            next_url=f"/reservations?{urlencode({'page': page.next_page})}" if page.next_page else None,
            first_url="/reservations" if page_token else None,
        )


class ReadersHandler(PageHandler):
    async def get(self) -> None:
        page_token = self.page_param()
        page = await self.library.list_users(page_size=LIST_PAGE_SIZE, page=page_token)
        await self.show(
            "readers.html",
            readers=sorted(page.items, key=lambda u: u.user_id),
            next_url=f"/readers?{urlencode({'page': page.next_page})}" if page.next_page else None,
            first_url="/readers" if page_token else None,
        )


# -- actions ----------------------------------------------------------------------------------------------
class ChooseReaderHandler(ActionHandler):
    async def act(self) -> tuple[str, str, str | None]:
        raw = self.get_body_argument("user_id", "").strip()
        if not raw:
            self.clear_cookie(READER_COOKIE)
            return "info", "No reader chosen.", None
        user = await self.library.get_user(parse_user_id_text(raw))
        self.set_cookie(READER_COOKIE, str(user.user_id), httponly=True, samesite="Lax")
        return "success", f"You are now {user.name} (card {user.user_id}).", None


class AddReaderHandler(ActionHandler):
    async def act(self) -> tuple[str, str, str | None]:
        user = await self.library.create_user(self.get_body_argument("name", ""), self.get_body_argument("email", ""))
        self.set_cookie(READER_COOKIE, str(user.user_id), httponly=True, samesite="Lax")
        return "success", f"Added {user.name} with card {user.user_id}, and chose them as the reader.", "/readers"


class ReserveHandler(ActionHandler):
    async def act(self, raw_id: str) -> tuple[str, str, str | None]:
        reader = self.require_reader()
        book = await self.library.get_book(parse_uuid(raw_id, "book_id"))
        try:
            await self.library.reserve(book.book_id, reader.user_id)
        except Conflict as error:
            return "error", conflict_text(error, book), None
        return "success", f"Reserved “{book.title}”.", "/me"


class CancelHandler(ActionHandler):
    async def act(self, raw_id: str) -> tuple[str, str, str | None]:
        reader = self.require_reader()
        reservation_id = parse_uuid(raw_id, "reservation_id")
        reservation = await self.library.get_reservation(reservation_id)
        await self.library.cancel(reservation_id, reader.user_id)
        title = await self._title(reservation.book_id)
        return "success", f"Cancelled your reservation of “{title}”.", "/me"

    async def _title(self, book_id: UUID) -> str:
        try:
            return (await self.library.get_book(book_id)).title
        except NotFound:
            return str(book_id)


class MoveHandler(ActionHandler):
    async def act(self, raw_id: str) -> tuple[str, str, str | None]:
        reader = self.require_reader()
        reservation_id = parse_uuid(raw_id, "reservation_id")
        raw_book = self.get_body_argument("book_id", "").strip()
        if not raw_book:
            await self.library.move(reservation_id, reader.user_id)
            return "success", "Renewed your reservation.", "/me"
        book = await self.library.get_book(parse_uuid(raw_book, "book_id"))
        try:
            await self.library.move(reservation_id, reader.user_id, book.book_id)
        except Conflict as error:
            return "error", conflict_text(error, book, moving=True), None
        return "success", f"Your reservation now holds “{book.title}”.", "/me"


class PageNotFoundHandler(PageHandler):
    """Unknown paths: an HTML page for a browser, the API's JSON 404 for everything else."""

    async def prepare(self) -> None:
        if not _wants_html(self.request):
            self.set_status(404)
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish(json.dumps({"error": f"no such endpoint: {self.request.method} {self.request.path}"}))
            return
        await super().prepare()
        raise tornado.web.HTTPError(404, "There is no page at %s.", self.request.path)

    def check_xsrf_cookie(self) -> None:
        return  # the answer is a 404 whatever the method; no state changes


def _wants_html(request: tornado.httputil.HTTPServerRequest) -> bool:
    return not request.path.startswith("/api/") and "text/html" in request.headers.get("Accept", "")
