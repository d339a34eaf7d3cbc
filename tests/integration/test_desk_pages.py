"""The desk's search boxes as a librarian's browser gets them (plain HTTP, no browser): a box holding no word searches
nothing, old bookmarks naming `card` still filter, digits that are no card's number are searched in names and
e-mails, and a reader's page keeps the search it was opened from."""

from __future__ import annotations

import html
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest
from integration.ui_support import new_account, sign_in, xsrf

from app.models import Role, User
from app.repository import Library


@pytest.fixture
async def desk(web_url: str, library: Library) -> AsyncIterator[aiohttp.ClientSession]:
    librarian = await new_account(library, Role.LIBRARIAN, "Dora Desk")
    async with aiohttp.ClientSession(base_url=web_url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await sign_in(http, librarian)
        yield http


@pytest.fixture
async def reader(library: Library) -> User:
    """A reader holding one book, with an e-mail address whose second word is a number no card has."""
    word = "Pg" + uuid.uuid4().hex[:6]
    reader = await new_account(library, Role.READER, f"Jo {word}")
    reader = await library.update_user(reader.user_id, email=f"jo.{_number(reader)}@example.org")
    book = await library.create_book(f"{word} Atlas", "Pia Page", "Travel", 2001)
    await library.reserve(book.book_id, reader.user_id)
    return reader


def _number(reader: User) -> str:
    """Digits no card has (far above the tests' card numbers), unique to this reader."""
    return f"9{reader.user_id:09d}"[-10:]


async def text_of(http: aiohttp.ClientSession, path: str) -> str:
    async with http.get(path, allow_redirects=False) as response:
        assert response.status == 200, (path, response.status)
        return html.unescape(await response.text())


@pytest.mark.parametrize("typed", ["!!!", "—", "@"])
async def test_a_box_with_no_word_searches_nothing_and_says_so(
    desk: aiohttp.ClientSession, reader: User, typed: str
) -> None:
    for path in (
        f"/reservations?reader={quote(typed)}",
        f"/reservations?book={quote(typed)}",
        f"/readers?q={quote(typed)}",
    ):
        page = await text_of(desk, path)
        assert f"“{typed}” has no letters or digits to search for" in page, path
        assert reader.name not in page and "More than" not in page, path


async def test_an_old_bookmark_naming_card_still_filters(desk: aiohttp.ClientSession, reader: User) -> None:
    page = await text_of(desk, f"/reservations?card={reader.user_id}")
    assert reader.name in page and f'value="{reader.user_id}"' in page
    async with desk.get(f"/readers?card={reader.user_id}", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"] == f"/readers/{reader.user_id}"


async def test_digits_that_are_no_card_are_searched_in_names_and_e_mails(
    desk: aiohttp.ClientSession, reader: User
) -> None:
    number = _number(reader)
    readers = await text_of(desk, f"/readers?q={number}")
    assert f"No reader has card number {number}: these are the readers" in readers and reader.name in readers
    reservations = await text_of(desk, f"/reservations?reader={number}")
    assert reader.name in reservations
    nobody = await text_of(desk, "/readers?q=8" + number)
    assert "and no name or e-mail has a word beginning" in nobody


async def test_a_readers_page_keeps_the_search_it_was_opened_from_when_sorted(
    desk: aiohttp.ClientSession, reader: User
) -> None:
    back = "/readers?q=jo"
    page = await text_of(desk, f"/readers/{reader.user_id}?back={quote(back)}")
    assert f'<input type="hidden" name="back" value="{back}">' in page
    sorted_page = await text_of(desk, f"/readers/{reader.user_id}?order=title&back={quote(back)}")
    assert f'href="{back}">« Back to your search' in sorted_page


async def test_the_desk_places_a_hold_for_a_reader_from_the_books_page(
    desk: aiohttp.ClientSession, library: Library, reader: User
) -> None:
    """Issue 22: a librarian places a hold for a reader by card number: a place in the queue of a book someone holds
    (the queue shown in order on the page, the action in the desk log), and a mistyped card said as such."""
    word = "Hd" + uuid.uuid4().hex[:6]
    book = await library.create_book(f"{word} Hold", "Hal Holder", "Drama", 2002)
    holder = await new_account(library, Role.READER, "Hank Holding", pin=None)
    held = await library.reserve(book.book_id, holder.user_id)
    token = await xsrf(desk)
    form = {"_xsrf": token, "next": f"/books/{book.book_id}", "card": str(reader.user_id)}
    async with desk.post(f"/books/{book.book_id}/hold", data=form, allow_redirects=True) as response:
        page = html.unescape(await response.text())
    assert f"{reader.name} (card {reader.user_id}) is now next in line for “{book.title}”." in page
    assert "Queue" in page and f"{reader.name} (card {reader.user_id})" in page
    assert [p.user_id for p in await library.queue(book.book_id)] == [reader.user_id]
    logged = [a for a in await library.staff_actions() if a.book_id == book.book_id]
    assert [a.action for a in logged] == ["join"]
    form["card"] = "999999999"
    async with desk.post(f"/books/{book.book_id}/hold", data=form, allow_redirects=True) as response:
        page = html.unescape(await response.text())
    assert "There is no reader with that card number." in page
    await library.leave(book.book_id, reader.user_id)
    await library.cancel(held.reservation_id, holder.user_id)


async def test_the_desk_marks_a_ready_hold_collected_then_returned_and_the_book_goes_to_the_queue(
    desk: aiohttp.ClientSession, library: Library, reader: User
) -> None:
    """Issue 22: "Mark collected" makes the hold a loan (shown on the book's page and the reader's, and no longer the
    reader's to cancel); "Mark returned" hands the book to the next in line. Both steps are in the desk log."""
    word = "Ln" + uuid.uuid4().hex[:6]
    book = await library.create_book(f"{word} Loan", "Lena Lend", "Drama", 2003)
    holder = await new_account(library, Role.READER, "Lou Loaned", pin=None)
    held = await library.reserve(book.book_id, holder.user_id)
    await library.join(book.book_id, reader.user_id)
    token = await xsrf(desk)
    form = {"_xsrf": token, "next": f"/books/{book.book_id}"}
    async with desk.post(f"/books/{book.book_id}/collect", data=form, allow_redirects=True) as response:
        page = html.unescape(await response.text())
    assert f"“{book.title}” is on loan to {holder.name} (card {holder.user_id}) until it is returned here." in page
    assert "On loan" in page and "Mark returned" in page and "Mark collected" not in page
    assert (await library.get_reservation(held.reservation_id)).lent_at is not None
    async with desk.post(f"/books/{book.book_id}/collect", data=form, allow_redirects=True) as response:
        page = html.unescape(await response.text())
    assert f"“{book.title}” is on loan already." in page  # a second click says so, and changes nothing
    async with desk.post(f"/books/{book.book_id}/return", data=form, allow_redirects=True) as response:
        page = html.unescape(await response.text())
    assert f"“{book.title}” is back: it is ready for the next reader in its queue." in page
    holder_now = await library.holder(book.book_id)
    assert holder_now is not None and holder_now.user_id == reader.user_id
    logged = [a.action for a in await library.staff_actions() if a.book_id == book.book_id]
    assert sorted(logged) == ["collect", "return"]
    await library.cancel(holder_now.reservation_id, reader.user_id)
