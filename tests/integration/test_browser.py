"""The UI in real headless Chromium (Debian's package, driven by Playwright; no browser download).

A reader signs in with card number and PIN, reserves a book, sees it under "My reservations", changes it to
another book, cancels it, reserves again and signs out; a librarian then signs in, adds a book to the catalogue
and cancels the reader's reservations at the desk (from "All reservations" and from the reader's page), and both
desk actions are in the log. Also: the session cookie's flags as the browser holds them, a refused reserve shown
as a sentence, and a wrong PIN answered in words with the card number kept (never the PIN).
Each step leaves a screenshot in artifacts/screenshots/. CSRF on every form: test_forms_csrf.py."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from integration.ui_support import PIN, new_account
from playwright.async_api import Browser, Page, async_playwright, expect
from tool_support import PROJECT_DIR

from app.models import Role, User
from app.repository import Library
from app.web.pages import SESSION_COOKIE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = PROJECT_DIR / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium package")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1200, "height": 800})
    page = await context.new_page()
    page.set_default_timeout(15_000)
    page.on("dialog", lambda dialog: dialog.accept())  # the "Cancel this reservation?" confirmations
    yield page
    await context.close()


async def shot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def sign_in(page: Page, web_url: str, user: User, pin: str = PIN) -> None:
    """Through the sign-in form, typing card and PIN as a person would (the form, not the header's link)."""
    if not page.url.startswith(f"{web_url}/sign-in"):
        await page.goto(f"{web_url}/sign-in")
    await page.locator("main input[name=card]").fill(str(user.user_id))
    await page.locator("main input[name=pin]").fill(pin)
    await page.locator("main form button[type=submit]").click()
    await expect(page.locator(".flash-success")).to_contain_text(f"Welcome, {user.name}.")
    await expect(page.locator(".current-reader")).to_contain_text(f"card {user.user_id}")


async def sign_out(page: Page) -> None:
    await page.locator(".account button:has-text('Sign out')").click()
    await expect(page.locator(".flash")).to_contain_text("You are signed out.")


async def session_cookie(page: Page, web_url: str) -> dict[str, Any] | None:
    found = [c for c in await page.context.cookies(web_url) if c.get("name") == SESSION_COOKIE]
    assert len(found) <= 1, found
    return dict(found[0]) if found else None


async def test_a_reader_reserves_and_a_librarian_cancels_at_the_desk(
    page: Page, web_url: str, library: Library
) -> None:
    word = "Lantern" + uuid.uuid4().hex[:6]
    first = await library.create_book(f"{word} Harbour", "Iris Vane", "Mystery", 1931)
    second = await library.create_book(f"{word} Orchard", "Iris Vane", "Fiction", 1948)
    reader = await new_account(library, Role.READER, f"Rosa Reader {word[-6:]}")
    librarian = await new_account(library, Role.LIBRARIAN, f"Lev Librarian {word[-6:]}")

    # 1. Sign in as the reader, typing card number and PIN; "My reservations" is the first page.
    await page.goto(f"{web_url}/")
    await page.locator(".account a:has-text('Sign in')").click()
    await expect(page).to_have_url(f"{web_url}/sign-in")
    await sign_in(page, web_url, reader)
    await expect(page).to_have_url(f"{web_url}/me")
    await expect(page.locator(".empty")).to_contain_text("You hold no reservations")

    # The session cookie as the browser holds it: HttpOnly, SameSite=Lax, and out of the page's scripts' reach.
    # Over plain HTTP it is not Secure. (The app sets Secure when request.protocol is "https"; its HTTP server is
    # not configured with xheaders, so an X-Forwarded-Proto header cannot make this HTTP request count as TLS,
    # and only the HTTP case is checked here.)
    cookie = await session_cookie(page, web_url)
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False
    visible_to_scripts = await page.evaluate("document.cookie")
    assert f"{SESSION_COOKIE}=" not in visible_to_scripts
    assert cookie["value"] not in visible_to_scripts

    # 2. Search the catalogue.
    await page.goto(f"{web_url}/")
    await page.fill("input[name=q]", word)
    await page.click("form.filters button[type=submit]")
    rows = page.locator("table.books tbody tr")
    await expect(rows).to_have_count(2)
    await shot(page, "01-signed-in-catalogue")

    # 3. Reserve the first book from its page.
    await page.click(f"text={first.title}")
    await expect(page.locator(".badge.free")).to_be_visible()
    await page.click("button:has-text('Reserve')")
    await expect(page).to_have_url(f"{web_url}/me")
    await expect(page.locator(".flash-success")).to_contain_text(f"Reserved “{first.title}”")
    await shot(page, "02-reserved")

    # 4. It is listed under "My reservations".
    mine = page.locator("table.reservations tbody tr")
    await expect(mine).to_have_count(1)
    await expect(mine.first).to_contain_text(first.title)
    held = await library.holder(first.book_id)
    assert held is not None and held.user_id == reader.user_id
    await shot(page, "03-my-reservations")

    # 5. Change it to the second book: the catalogue in "change book" mode offers "Move here".
    await mine.first.locator("text=Change book").click()
    await expect(page.locator(".banner")).to_contain_text(first.title)
    await page.fill("input[name=q]", word)
    await page.click("form.filters button[type=submit]")
    await expect(page.locator(f'tr[data-book-id="{first.book_id}"] .badge.mine')).to_be_visible()
    await shot(page, "04-change-book-choose-the-new-one")
    await page.locator(f'tr[data-book-id="{second.book_id}"] button:has-text("Move here")').click()
    await expect(page).to_have_url(f"{web_url}/me")
    await expect(page.locator(".flash-success")).to_contain_text(second.title)
    await expect(mine).to_have_count(1)
    await expect(mine.first).to_contain_text(second.title)
    assert await library.holder(first.book_id) is None
    await shot(page, "05-changed-to-another-book")

    # 6. Cancel it.
    await mine.first.locator("button:has-text('Cancel')").click()
    await expect(page.locator(".flash-success")).to_contain_text("Cancelled")
    await expect(page.locator(".empty")).to_contain_text("You hold no reservations")
    assert await library.holder(second.book_id) is None
    await shot(page, "06-cancelled")

    # 7. Reserve both books again (for the desk to cancel), from the catalogue's list this time.
    for book in (first, second):
        await page.goto(f"{web_url}/?q={quote(word)}")
        await page.locator(f'tr[data-book-id="{book.book_id}"] button:has-text("Reserve")').click()
        await expect(page.locator(".flash-success")).to_contain_text(f"Reserved “{book.title}”")
    await expect(mine).to_have_count(2)

    # 8. Sign out: the session cookie is gone, and "My reservations" now sends the browser to sign in.
    await sign_out(page)
    await expect(page).to_have_url(f"{web_url}/")
    assert await session_cookie(page, web_url) is None
    await expect(page.locator(".account a:has-text('Sign in')")).to_be_visible()
    await page.goto(f"{web_url}/me")
    await expect(page).to_have_url(f"{web_url}/sign-in?next=%2Fme")
    await expect(page.locator("main h1")).to_have_text("Sign in")
    await shot(page, "07-signed-out-me-asks-to-sign-in")

    # 9. A librarian signs in (on that same form, so back to /me afterwards) and gets the staff screens.
    await sign_in(page, web_url, librarian)
    await expect(page).to_have_url(f"{web_url}/me")
    await expect(page.locator(".current-reader")).to_contain_text("librarian")
    await expect(page.locator("nav a:has-text('All reservations')")).to_be_visible()

    # 10. Add a book with the catalogue's "Add a book" form: its page opens.
    new_title = f"{word} Lighthouse"
    await page.goto(f"{web_url}/")
    add = page.locator("aside:has(h2:has-text('Add a book')) form")
    await add.locator("input[name=title]").fill(new_title)
    await add.locator("input[name=author]").fill("Mara Quill")
    await add.locator("input[name=genre]").fill("Poetry")
    await add.locator("input[name=published_year]").fill("1962")
    await shot(page, "08-librarian-adds-a-book")
    await add.locator("button[type=submit]").click()
    await expect(page.locator(".flash-success")).to_contain_text(f"Added “{new_title}” to the catalogue.")
    await expect(page.locator("article h1")).to_have_text(new_title)
    added = (await library.list_books(q=new_title)).items
    assert [(b.title, b.author, b.genre, b.published_year) for b in added] == [
        (new_title, "Mara Quill", "Poetry", 1962)
    ]
    await expect(page).to_have_url(f"{web_url}/books/{added[0].book_id}")

    # 11. Cancel the reader's first reservation at the desk, from "All reservations" filtered by their card.
    await page.locator("nav a:has-text('All reservations')").click()
    await page.locator("form.filters input[name=card]").fill(str(reader.user_id))
    await page.click("form.filters button[type=submit]")
    desk = page.locator("table.reservations tbody tr")
    await expect(desk).to_have_count(2)
    await expect(desk.filter(has_text=first.title)).to_contain_text(f"{reader.name} (card {reader.user_id})")
    await shot(page, "09-all-reservations-of-a-reader")
    await desk.filter(has_text=first.title).locator("button:has-text('Cancel')").click()
    cancelled_first = f"Cancelled {reader.name}'s reservation of “{first.title}”."
    await expect(page.locator(".flash-success")).to_have_text(cancelled_first)
    assert await library.holder(first.book_id) is None

    # 12. ...and the second one from the reader's own page ("Cancel for <name>").
    await page.goto(f"{web_url}/readers")
    await page.locator("form.filters input[name=card]").fill(str(reader.user_id))
    await page.click("form.filters button[type=submit]")
    await expect(page).to_have_url(f"{web_url}/readers/{reader.user_id}")
    held_rows = page.locator("table.reservations tbody tr")
    await expect(held_rows).to_have_count(1)
    await held_rows.first.locator(f"button:has-text('Cancel for {reader.name}')").click()
    await expect(page).to_have_url(f"{web_url}/readers/{reader.user_id}")
    await expect(page.locator(".flash-success")).to_have_text(
        f"Cancelled {reader.name}'s reservation of “{second.title}”."
    )
    await expect(page.locator(".empty")).to_contain_text(f"{reader.name} holds no reservations")
    assert await library.holder(second.book_id) is None
    assert (await library.user_reservations(reader.user_id)).items == []

    # 13. Both desk actions, and the book added, are in the log on "All reservations", under the librarian's name.
    await page.locator("nav a:has-text('All reservations')").click()
    log = page.locator("table.actions-log tbody tr")
    by_librarian = f"{librarian.name} (card {librarian.user_id})"
    for detail in (
        f"cancelled {reader.name}'s reservation of “{first.title}”",
        f"cancelled {reader.name}'s reservation of “{second.title}”",
        f"added “{new_title}”",
    ):
        await expect(log.filter(has_text=detail)).to_have_count(1)
        await expect(log.filter(has_text=detail)).to_contain_text(by_librarian)
    await shot(page, "10-desk-actions-log")


async def test_a_conflict_is_a_message_on_the_page(page: Page, web_url: str, library: Library) -> None:
    book = await library.create_book("Contested Volume " + uuid.uuid4().hex[:6], "Ned Rival", "Fiction", 2001)
    me = await new_account(library, Role.READER, "Slow Reader")
    rival = await library.create_user("Fast Reader", "fast@example.org")

    # Signing in from the book's page ("Sign in to reserve this book") comes back to it.
    await page.goto(f"{web_url}/books/{book.book_id}")
    await page.locator("main a:has-text('Sign in')").click()
    await sign_in(page, web_url, me)
    await expect(page).to_have_url(f"{web_url}/books/{book.book_id}")
    await expect(page.locator(".badge.free")).to_be_visible()
    # Someone else takes the book between the page load and the click.
    taken = await library.reserve(book.book_id, rival.user_id)
    await page.click("button:has-text('Reserve')")
    await expect(page).to_have_url(f"{web_url}/books/{book.book_id}")
    await expect(page.locator(".flash-error")).to_have_text(f"“{book.title}” is already reserved by another reader")
    await expect(page.locator(".badge.taken")).to_be_visible()
    assert "{" not in await page.locator(".flash-error").inner_text()  # a sentence, not JSON
    assert "Fast Reader" not in await page.content()  # who holds it is the staff's business
    await shot(page, "11-conflict-message")
    await library.cancel(taken.reservation_id, rival.user_id)


async def test_a_wrong_pin_is_a_message_and_keeps_the_card_number(page: Page, web_url: str, library: Library) -> None:
    reader = await new_account(library, Role.READER, "Wren Mistyped")
    wrong_pin = "wrong-" + uuid.uuid4().hex[:8]

    await page.goto(f"{web_url}/sign-in?next=%2Fme")
    await page.locator("main input[name=card]").fill(str(reader.user_id))
    await page.locator("main input[name=pin]").fill(wrong_pin)
    await page.locator("main form button[type=submit]").click()

    error = page.locator("main .flash-error")
    await expect(error).to_be_visible()
    text = await error.inner_text()
    assert text.startswith("That did not work:") and "try again" in text, text  # words, not a code or JSON
    assert "{" not in text and "401" not in text
    await expect(page.locator("main input[name=card]")).to_have_value(str(reader.user_id))
    await expect(page.locator("main input[name=pin]")).to_have_value("")
    assert wrong_pin not in await page.content()
    assert await session_cookie(page, web_url) is None
    await shot(page, "12-wrong-pin")

    # The form still goes where it was going: the right PIN now opens "My reservations".
    await page.locator("main input[name=pin]").fill(PIN)
    await page.locator("main form button[type=submit]").click()
    await expect(page).to_have_url(f"{web_url}/me")
    await expect(page.locator(".current-reader")).to_contain_text(f"card {reader.user_id}")
