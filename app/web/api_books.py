"""/api/books: the catalogue, with each book's availability read from its reservation lock. Anyone reads it from
the repository; a librarian's changes go through the service (app/service.py), which logs them."""

from __future__ import annotations

import asyncio
from uuid import UUID

from app.access import Access
from app.models import Book
from app.repository import Library
from app.rules import UNPAGED_BOOKS
from app.web.base import JsonHandler
from app.web.parsing import (
    optional_text,
    optional_text_param,
    optional_year,
    parse_page_size,
    parse_uuid,
    required_text,
)
from app.web.representations import book_json


async def availability(library: Library, books: list[Book], *, a_whole_span: bool = False) -> list[bool]:
    """Whether each book is free, from one read of the page's locks (`Library.holders`; `a_whole_span`: the books
    are an unfiltered page in token order)."""
    held = await library.holders([book.book_id for book in books], a_whole_span=a_whole_span)
    return [book.book_id not in held for book in books]


class BooksHandler(JsonHandler):
    ACCESS = {"get": Access.PUBLIC, "post": Access.STAFF}

    async def get(self) -> None:
        raw_size, page_token = self.query("page_size"), self.page_param()
        page_size = UNPAGED_BOOKS if raw_size is None and page_token is None else parse_page_size(raw_size)
        genre = optional_text_param(self.query("genre"), "genre")
        author = optional_text_param(self.query("author"), "author")
        q = optional_text_param(self.query("q"), "q")
        page = await self.library.list_books(genre=genre, author=author, q=q, page_size=page_size, page=page_token)
        free = await availability(self.library, page.items, a_whole_span=not (genre or author or q))
        self.write_page([book_json(b, a) for b, a in zip(page.items, free, strict=True)], page.next_page)

    async def post(self) -> None:
        data = self.json_body()
        book_id = parse_uuid(data["book_id"], "book_id") if data.get("book_id") is not None else None
        book = await self.service.add_book(
            self.caller,
            required_text(data, "title"),
            required_text(data, "author"),
            required_text(data, "genre"),
            optional_year(data),
            book_id=book_id,
        )
        # An import may rewrite a book that is reserved, so its availability is read, not assumed.
        available = await self.library.holder(book.book_id) is None
        self.created(f"/api/books/{book.book_id}", book_json(book, available))


class BookHandler(JsonHandler):
    ACCESS = {"get": Access.PUBLIC, "put": Access.STAFF, "patch": Access.STAFF, "delete": Access.STAFF}

    async def get(self, raw_id: str) -> None:
        book_id = parse_uuid(raw_id, "book_id")
        book, holder = await asyncio.gather(self.library.get_book(book_id), self.library.holder(book_id))
        self.write_json(book_json(book, holder is None))

    async def put(self, raw_id: str) -> None:
        # PUT replaces the description, so every required field must be there.
        data = self.json_body()
        await self._update(
            parse_uuid(raw_id, "book_id"),
            title=required_text(data, "title"),
            author=required_text(data, "author"),
            genre=required_text(data, "genre"),
            published_year=optional_year(data),
        )

    async def patch(self, raw_id: str) -> None:
        data = self.json_body()
        await self._update(
            parse_uuid(raw_id, "book_id"),
            title=optional_text(data, "title"),
            author=optional_text(data, "author"),
            genre=optional_text(data, "genre"),
            published_year=optional_year(data),
        )

    async def _update(self, book_id: UUID, **changes: str | int | None) -> None:
        book = await self.service.edit_book(self.caller, book_id, **changes)  # type: ignore[arg-type]
        available = await self.library.holder(book_id) is None
        self.write_json(book_json(book, available))

    async def delete(self, raw_id: str) -> None:
        await self.service.delete_book(self.caller, parse_uuid(raw_id, "book_id"))
        self.no_content()
