"""The UI in real headless Chromium (Debian's package, driven by Playwright; no browser download), every flow on a
phone (390 px wide) and on a desktop (1280 px).

A reader signs in with card number and PIN, searches the catalogue, reserves a book from the results (and stays
on them), sees it under "My reservations", changes it to another book, renews and cancels it, and signs out; a
librarian signs in, adds a book (a failed add keeps what was typed), and cancels the reader's reservations at
the desk (from "All reservations" and from the reader's page), and both desk actions are in the log. Also: the
session cookie's flags, a refused reserve shown as a sentence on the very search it came from, Back after
reserving, numbered pages of a search, the keyboard (skip link, a sort that waits for its button), and a wrong
PIN answered in words with the card number kept (never the PIN).

On every page a flow visits: no horizontal scrolling, each button the flow presses visible inside the
viewport, and axe-core (from npm, `make setup`) finds no serious or critical accessibility violation. Each step
leaves a screenshot in artifacts/screenshots/, named with the width. CSRF on every form: test_forms_csrf.py."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from integration.ui_support import PIN, new_account
from playwright.async_api import Browser, Locator, Page, async_playwright, expect
from tool_support import PROJECT_DIR

from app.models import Role, User
from app.repository import Library
from app.web.pages import SESSION_COOKIE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = PROJECT_DIR / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
PHONE, DESKTOP = 390, 1280
# "23 November 2026, 14:05": how the pages say a date and time.
MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
DATE_IN_WORDS = re.compile(rf"\b\d{{1,2}} ({MONTHS}) \d{{4}}, \d{{2}}:\d{{2}}\b")
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
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


def test_axe_core_is_installed() -> None:
    """Not skipped quietly: `make setup` installs it, and without it no page would be checked."""
    assert AXE.exists(), f"{AXE} is missing: run `make setup`"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture(params=[PHONE, DESKTOP], ids=["phone", "desktop"])
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    # bypass_csp: axe-core is injected as a script of the test's, which the pages' CSP (script-src 'self') would
    # refuse; the pages' own scripts are unaffected.
    context = await browser.new_context(viewport={"width": request.param, "height": 800}, bypass_csp=True)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    page.on("dialog", lambda dialog: dialog.accept())  # the "Cancel this reservation?" confirmations
    yield page
    await context.close()


async def shot(page: Page, name: str) -> Path:
    """A screenshot of the whole page, after checking it (`check`)."""
    await check(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}-{page.viewport_size['width'] if page.viewport_size else 0}px.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def check(page: Page) -> None:
    """What every page must be at every width: no sideways scrolling, and no serious or critical violation that
    axe-core finds (WCAG 2 A and AA, and its best practices)."""
    await page.wait_for_load_state()
    width = await page.evaluate("document.documentElement.scrollWidth")
    inner = await page.evaluate("window.innerWidth")
    assert width <= inner, f"{page.url} scrolls sideways at {inner} px: it is {width} px wide"
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa', 'best-practice']}})"
    )
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{page.url} at {inner} px: " + "; ".join(bad)


async def press(page: Page, button: Locator) -> None:
    """Click `button` as a person would: it must be visible, and wholly inside the viewport's width."""
    await expect(button).to_be_visible()
    await button.scroll_into_view_if_needed()
    box = await button.bounding_box()
    inner = await page.evaluate("window.innerWidth")
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= inner, f"{button} is off-screen: {box}"
    await button.click()


async def sign_in(page: Page, web_url: str, user: User, pin: str = PIN) -> None:
    """Through the sign-in form, typing card and PIN as a person would (the form, not the header's link)."""
    if not page.url.startswith(f"{web_url}/sign-in"):
        await page.goto(f"{web_url}/sign-in")
    await page.locator("main input[name=card]").fill(str(user.user_id))
    await page.locator("main input[name=pin]").fill(pin)
    await press(page, page.locator("main form button[type=submit]"))
    await expect(page.locator(".flash-success")).to_contain_text(f"Welcome, {user.name}.")
    await expect(page.locator(".current-reader")).to_contain_text(f"card {user.user_id}")


async def sign_out(page: Page) -> None:
    await press(page, page.locator(".account button:has-text('Sign out')"))
    await expect(page.locator(".flash")).to_contain_text("You are signed out.")


async def session_cookie(page: Page, web_url: str) -> dict[str, Any] | None:
    found = [c for c in await page.context.cookies(web_url) if c.get("name") == SESSION_COOKIE]
    assert len(found) <= 1, found
    return dict(found[0]) if found else None


async def search(page: Page, web_url: str, words: str) -> None:
    """Type into the catalogue's search box and press Search."""
    if not page.url.startswith(f"{web_url}/?") and page.url != f"{web_url}/":
        await page.goto(f"{web_url}/")
    await page.locator("#q").fill(words)
    await press(page, page.locator("form.search button:has-text('Search')"))


def result(page: Page, book_id: object) -> Locator:
    return page.locator(f'li[data-book-id="{book_id}"]')


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
    await shot(page, "00-catalogue-signed-out")
    await press(page, page.locator(".account a:has-text('Sign in')"))
    await expect(page).to_have_url(f"{web_url}/sign-in")
    await shot(page, "00-sign-in")
    await sign_in(page, web_url, reader)
    await expect(page).to_have_url(f"{web_url}/me")
    await expect(page.locator(".empty")).to_contain_text("You hold no reservations")

    # The session cookie as the browser holds it: HttpOnly, SameSite=Lax, and out of the page's scripts' reach.
    # Over plain HTTP it is not Secure (test_sign_in.py checks it is behind a TLS proxy).
    cookie = await session_cookie(page, web_url)
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False
    visible_to_scripts = await page.evaluate("document.cookie")
    assert f"{SESSION_COOKIE}=" not in visible_to_scripts
    assert cookie["value"] not in visible_to_scripts

    # 2. Search the catalogue, in lower case: both books, counted.
    await search(page, web_url, word.lower())
    await expect(page.locator("li.item")).to_have_count(2)
    await expect(page.locator("#result-count")).to_have_text(f"2 books match “{word.lower()}”")
    searched = page.url
    await shot(page, "01-signed-in-search")

    # 3. Reserve the first book from the results: back on the same search, the book now "Reserved by you", and the
    # keyboard on that very book (described by the message), not at the top of the page.
    await press(page, result(page, first.book_id).locator("button:has-text('Reserve')"))
    await expect(page.locator(".flash-success")).to_contain_text(f"You reserved “{first.title}”")
    assert page.url == searched
    await expect(result(page, first.book_id)).to_be_focused()
    await expect(result(page, first.book_id)).to_have_attribute("aria-describedby", "message")
    await expect(result(page, first.book_id).locator(".badge.mine")).to_have_text("Reserved by you")
    await expect(result(page, first.book_id).locator("button")).to_have_count(0)
    # Back shows the book as it is now, not the page as it was before reserving.
    await page.go_back()
    await expect(result(page, first.book_id).locator(".badge.mine")).to_have_text("Reserved by you")
    await shot(page, "02-reserved-from-the-search")

    # 4. It is listed under "My reservations", with the date in words.
    await press(page, page.locator("nav a:has-text('My reservations')"))
    mine = page.locator("ul.reservations li.item")
    await expect(mine).to_have_count(1)
    await expect(mine.first).to_contain_text(first.title)
    assert DATE_IN_WORDS.search(await mine.first.inner_text()), await mine.first.inner_text()
    held = await library.holder(first.book_id)
    assert held is not None and held.user_id == reader.user_id
    await shot(page, "03-my-reservations")

    # 5. Change it to the second book: the catalogue in "change book" mode offers "Move here".
    await press(page, mine.first.locator("a:has-text('Change book')"))
    await expect(page.locator(".banner")).to_contain_text(first.title)
    await search(page, web_url, word)
    await expect(result(page, first.book_id).locator(".badge.mine")).to_be_visible()
    await shot(page, "04-change-book-choose-the-new-one")
    await press(page, result(page, second.book_id).locator("button:has-text('Move here')"))
    await expect(page.locator(".flash-success")).to_contain_text(second.title)
    await expect(page.locator(".banner")).to_have_count(0)  # out of "change" mode, on the same search
    await expect(result(page, second.book_id).locator(".badge.mine")).to_be_visible()
    assert await library.holder(first.book_id) is None

    # 6. Renew it, then cancel it, from "My reservations": each time back there.
    await press(page, page.locator("nav a:has-text('My reservations')"))
    await expect(mine).to_have_count(1)
    await expect(mine.first).to_contain_text(second.title)
    await press(page, mine.first.locator("button:has-text('Renew')"))
    await expect(page.locator(".flash-success")).to_have_text("Renewed your reservation.")
    await expect(page).to_have_url(f"{web_url}/me")
    await press(page, mine.first.locator("button:has-text('Cancel')"))
    await expect(page.locator(".flash-success")).to_contain_text("Cancelled")
    await expect(page.locator(".empty")).to_contain_text("You hold no reservations")
    assert await library.holder(second.book_id) is None
    await shot(page, "05-cancelled")

    # 7. Reserve both books again (for the desk to cancel), from the book's own page this time.
    for book in (first, second):
        await page.goto(f"{web_url}/books/{book.book_id}")
        await press(page, page.locator("article button:has-text('Reserve')"))
        await expect(page.locator(".flash-success")).to_contain_text(f"You reserved “{book.title}”")
        await expect(page).to_have_url(f"{web_url}/books/{book.book_id}")
    await shot(page, "06-book-page-reserved")

    # 8. Sign out: the session cookie is gone, and "My reservations" now sends the browser to sign in.
    await sign_out(page)
    await expect(page).to_have_url(f"{web_url}/")
    assert await session_cookie(page, web_url) is None
    await page.goto(f"{web_url}/me")
    await expect(page).to_have_url(f"{web_url}/sign-in?next=%2Fme")
    await expect(page.locator("main h1")).to_have_text("Sign in")

    # 9. A librarian signs in (on that same form, so back to /me afterwards) and gets the staff screens.
    await sign_in(page, web_url, librarian)
    await expect(page).to_have_url(f"{web_url}/me")
    await expect(page.locator(".current-reader")).to_contain_text("librarian")

    # 10. Add a book with the catalogue's "Add a book" form, below 15 results. A wrong year first: the error is said
    # right under the year, which has the keyboard and is described by it, in view; the form keeps what was typed.
    new_title = f"{word} Lighthouse"
    await page.goto(f"{web_url}/")
    add = page.locator("section.add-book form")
    await add.locator("input[name=title]").fill(new_title)
    await add.locator("input[name=author]").fill("Mara Quill")
    await add.locator("input[name=genre]").fill("Poetry")
    await add.locator("input[name=published_year]").fill("1x")
    await press(page, add.locator("button[type=submit]"))
    year = add.locator("input[name=published_year]")
    await expect(year).to_be_focused()
    await expect(year).to_have_attribute("aria-invalid", "true")
    error_id = await year.get_attribute("aria-describedby")
    assert error_id
    beside = add.locator(f"[id='{error_id}']")
    await expect(beside).to_have_text("The year is a whole number such as 1999.")
    await expect(beside).to_be_in_viewport()
    await expect(year).to_be_in_viewport()
    await expect(page.locator("main > .flash")).to_have_count(0)  # not on top of the page, far from the field
    await expect(add.locator("input[name=title]")).to_have_value(new_title)
    await expect(add.locator("input[name=author]")).to_have_value("Mara Quill")
    await expect(year).to_have_value("1x")
    await shot(page, "07-a-failed-add-keeps-the-form")
    await add.locator("input[name=published_year]").fill("1962")
    await press(page, add.locator("button[type=submit]"))
    await expect(page.locator(".flash-success")).to_contain_text(f"Added “{new_title}” to the catalogue.")
    await expect(page.locator("article h1")).to_have_text(new_title)
    added = (await library.list_books(q=new_title)).items
    assert [(b.title, b.author, b.genre, b.published_year) for b in added] == [
        (new_title, "Mara Quill", "Poetry", 1962)
    ]
    await expect(page).to_have_url(f"{web_url}/books/{added[0].book_id}")
    await shot(page, "08-librarian-book-page")

    # 11. Cancel the reader's first reservation at the desk, from "All reservations" filtered by their card.
    await press(page, page.locator("nav a:has-text('All reservations')"))
    await page.locator("form.filters input[name=reader]").fill(str(reader.user_id))
    await press(page, page.locator("form.filters button[type=submit]"))
    desk = page.locator("ul.reservations li.item")
    await expect(desk).to_have_count(2)
    await expect(desk.filter(has_text=first.title)).to_contain_text(f"{reader.name} (card {reader.user_id})")
    await shot(page, "09-all-reservations-of-a-reader")
    await press(page, desk.filter(has_text=first.title).locator("button:has-text('Cancel')"))
    cancelled_first = f"Cancelled {reader.name}'s reservation of “{first.title}”."
    await expect(page.locator(".flash-success")).to_have_text(cancelled_first)
    await expect(page.locator("#message")).to_be_focused()  # the item is gone: the keyboard is on the message
    await expect(desk).to_have_count(1)  # back on the filtered list
    assert await library.holder(first.book_id) is None

    # 12. ...and the second one from the reader's own page ("Cancel for <name>").
    await press(page, page.locator("nav a:has-text('Readers')"))
    await shot(page, "10-readers")
    await page.locator("form.search input[name=q]").fill(str(reader.user_id))
    await press(page, page.locator("form.search button[type=submit]"))
    await expect(page).to_have_url(f"{web_url}/readers/{reader.user_id}")
    held_rows = page.locator("ul.reservations li.item")
    await expect(held_rows).to_have_count(1)
    await shot(page, "11-a-readers-card")
    await press(page, held_rows.first.locator(f"button:has-text('Cancel for {reader.name}')"))
    await expect(page).to_have_url(f"{web_url}/readers/{reader.user_id}")
    await expect(page.locator(".flash-success")).to_have_text(
        f"Cancelled {reader.name}'s reservation of “{second.title}”."
    )
    await expect(page.locator(".empty")).to_contain_text(f"{reader.name} holds no reservations")
    assert (await library.user_reservations(reader.user_id)).items == []

    # 13. Both desk actions, and the book added, are in the log on "All reservations", under the librarian's name.
    await press(page, page.locator("nav a:has-text('All reservations')"))
    log = page.locator("ul.log li")
    by_librarian = f"{librarian.name} (card {librarian.user_id})"
    for detail in (
        f"cancelled {reader.name}'s reservation of “{first.title}”",
        f"cancelled {reader.name}'s reservation of “{second.title}”",
        f"added “{new_title}”",
    ):
        await expect(log.filter(has_text=detail)).to_have_count(1)
        await expect(log.filter(has_text=detail)).to_contain_text(by_librarian)
        assert DATE_IN_WORDS.search(await log.filter(has_text=detail).inner_text())
    await shot(page, "12-desk-actions-log")

    # 14. A failed "Add a reader" keeps the name and e-mail typed (never the PIN).
    await page.goto(f"{web_url}/readers")
    form = page.locator("form[action='/readers/add']")
    await form.locator("input[name=name]").fill("Nova Newreader")
    await form.locator("input[name=email]").fill(f"nova.{word}@example.org")
    await form.locator("input[name=pin]").fill("12")  # too short
    await press(page, form.locator("button[type=submit]"))
    pin = form.locator("input[name=pin]")
    await expect(pin).to_be_focused()
    await expect(form.locator(".field-error")).to_contain_text("PIN")
    await expect(form.locator("input[name=name]")).to_have_value("Nova Newreader")
    await expect(form.locator("input[name=email]")).to_have_value(f"nova.{word}@example.org")
    await expect(pin).to_have_value("")
    assert "pin" not in (await form.locator(".field-error").inner_text()).split()  # no field names


async def test_a_conflict_is_a_message_on_the_search_it_came_from(page: Page, web_url: str, library: Library) -> None:
    word = "Contested" + uuid.uuid4().hex[:6]
    book = await library.create_book(f"{word} Orchard", "Ned Rival", "Fiction", 2001)
    me = await new_account(library, Role.READER, "Slow Reader")
    rival = await library.create_user("Fast Reader", f"fast.{word}@example.org")

    # Signing in from the book's page ("Sign in to reserve this book") comes back to it.
    await page.goto(f"{web_url}/books/{book.book_id}")
    await press(page, page.locator("main a:has-text('Sign in')"))
    await sign_in(page, web_url, me)
    await expect(page).to_have_url(f"{web_url}/books/{book.book_id}")

    # On a search, sorted and filtered; someone else takes the book between the page load and the click.
    searched = f"{web_url}/?q={quote(word.lower())}&genre=Fiction&sort=newest"
    await page.goto(searched)
    await expect(result(page, book.book_id).locator(".badge.free")).to_have_text("Available")
    taken = await library.reserve(book.book_id, rival.user_id)
    await press(page, result(page, book.book_id).locator("button:has-text('Reserve')"))
    await expect(page).to_have_url(searched)  # the same search, filters and order
    error = page.locator(".flash-error")
    await expect(error).to_have_text(f"“{book.title}” is already reserved by another reader.")
    await expect(result(page, book.book_id).locator(".badge.taken")).to_have_text("Reserved by another reader")
    text = await error.inner_text()
    assert "{" not in text and not UUID_TEXT.search(text)  # a sentence, not JSON or an id
    assert "Fast Reader" not in await page.content()  # who holds it is the staff's business
    await shot(page, "13-conflict-message")
    await library.cancel(taken.reservation_id, rival.user_id)


async def test_numbered_pages_sort_and_the_keyboard(page: Page, web_url: str, library: Library) -> None:
    word = "Paged" + uuid.uuid4().hex[:6]
    for i in range(32):  # the catalogue shows 15 a page: 3 pages, the last one with 2 books
        await library.create_book(f"{word} Volume {i:02}", "Pia Pager", "Reference", 1950 + i)

    await page.goto(f"{web_url}/?q={word}")
    await expect(page.locator("#result-count")).to_have_text(f"32 books match “{word}”")
    pager = page.locator("nav.pager")
    await expect(pager.locator(".position")).to_have_text("Page 1 of 3")
    await expect(pager.locator("a[rel=prev]")).to_have_count(0)
    await press(page, pager.locator("a[rel=next]"))
    await expect(pager.locator(".position")).to_have_text("Page 2 of 3")
    await press(page, pager.locator("a[rel=next]"))
    await expect(pager.locator(".position")).to_have_text("Page 3 of 3")
    await expect(page.locator("li.item")).to_have_count(2)  # the last page is never empty
    await expect(pager.locator("a[rel=next]")).to_have_count(0)
    await expect(page.locator("li.item").last).to_contain_text(f"{word} Volume 31")
    await shot(page, "14-last-page")
    await press(page, pager.locator("a[rel=prev]"))
    await expect(pager.locator(".position")).to_have_text("Page 2 of 3")

    # The facet of the search, counted; choosing it keeps the words.
    await expect(page.locator(".facets a:has-text('Reference')")).to_have_count(1)
    await expect(page.locator(".facets li:has-text('Reference') .facet-count")).to_contain_text("32")

    # The sort changes nothing until its button is pressed, arrow keys included.
    before = page.url
    await page.locator("#sort").focus()
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("ArrowDown")
    await page.wait_for_timeout(300)
    assert page.url == before
    await page.locator("#sort").select_option("newest")
    await press(page, page.locator("form.search button:has-text('Sort')"))
    await expect(page.locator("li.item").first).to_contain_text(f"{word} Volume 31")  # 1981, the newest

    # The first Tab reaches the skip link, which takes the keyboard past the header to the content.
    await page.goto(f"{web_url}/?q={word}")
    await page.keyboard.press("Tab")
    await expect(page.locator(".skip-link")).to_be_focused()
    await expect(page.locator(".skip-link")).to_be_visible()
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()

    # Each Reserve button is named with its book's title, for a screen reader's list of buttons.
    reader = await new_account(library, Role.READER, "Kay Keyboard")
    await sign_in(page, web_url, reader)
    await page.goto(f"{web_url}/?q={word}")
    names = [
        await b.get_attribute("aria-label") or await b.inner_text() for b in await page.locator("li.item button").all()
    ]
    assert len(names) == 15 and len(set(names)) == 15, names
    assert all(n.startswith("Reserve") and word in n for n in names), names


async def test_a_reader_changes_their_pin_on_my_reservations(page: Page, web_url: str, library: Library) -> None:
    reader = await new_account(library, Role.READER, "Pim Changer")
    await sign_in(page, web_url, reader)
    await page.goto(f"{web_url}/me")
    form = page.locator("form[action='/me/pin']")
    # The wrong current PIN: refused in words, still signed in, nothing changed.
    await form.locator("input[name=current_pin]").fill("not-my-pin")
    await form.locator("input[name=pin]").fill("8642")
    await form.locator("input[name=pin_again]").fill("8642")
    await press(page, form.locator("button[type=submit]"))
    await expect(form.locator(".field-error")).to_have_text("That is not your current PIN, so nothing was changed.")
    await expect(form.locator("input[name=current_pin]")).to_be_focused()
    await expect(page).to_have_url(f"{web_url}/me")
    await shot(page, "20-wrong-current-pin")
    # The new PIN twice, differently: refused before anything is checked.
    await form.locator("input[name=current_pin]").fill(PIN)
    await form.locator("input[name=pin]").fill("8642")
    await form.locator("input[name=pin_again]").fill("8643")
    await press(page, form.locator("button[type=submit]"))
    await expect(form.locator(".field-error")).to_contain_text("differ")
    await expect(form.locator("input[name=pin_again]")).to_be_focused()
    # Right: the new PIN opens the card from now on, the old one no longer does.
    await form.locator("input[name=current_pin]").fill(PIN)
    await form.locator("input[name=pin]").fill("8642")
    await form.locator("input[name=pin_again]").fill("8642")
    await press(page, form.locator("button[type=submit]"))
    await expect(page.locator(".flash-success")).to_contain_text("Your PIN is changed")
    assert (await library.checked_pin(reader.user_id, "8642")).user_id == reader.user_id
    await sign_out(page)
    await sign_in(page, web_url, reader, pin="8642")


async def test_every_page_reads_well_at_both_widths(page: Page, web_url: str, library: Library) -> None:
    """The pages the flows above do not reach, and the error pages, checked the same way."""
    librarian = await new_account(library, Role.LIBRARIAN, "Tia Tour")
    await page.goto(f"{web_url}/no-such-page")
    await expect(page.locator("main h1")).to_have_text("Not found")
    await shot(page, "15-not-found")
    # A query longer than the box takes, typed into the address: cut to the box's length and said, not an error.
    await page.goto(f"{web_url}/?q={'x' * 401}")
    await expect(page.locator("main .flash-info")).to_contain_text("longer than the 300 characters the box takes")
    await expect(page.locator("#q")).to_have_value("x" * 300)
    assert await page.locator("#q").get_attribute("maxlength") == "300"
    await expect(page.locator("#result-count")).to_have_text(f"No books match “{'x' * 300}”")
    await shot(page, "16-a-long-search-is-cut")
    await page.goto(f"{web_url}/?q=zzzqqqnothing")
    await expect(page.locator("#result-count")).to_have_text("No books match “zzzqqqnothing”")
    await shot(page, "17-nothing-found")
    await sign_in(page, web_url, librarian)
    await page.goto(f"{web_url}/reservations")
    await shot(page, "18-all-reservations")
    await page.goto(f"{web_url}/readers/{librarian.user_id}")
    await shot(page, "19-a-librarians-card")


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
    await press(page, page.locator("main form button[type=submit]"))
    await expect(page).to_have_url(f"{web_url}/me")
    await expect(page.locator(".current-reader")).to_contain_text(f"card {reader.user_id}")


# -- the circulation desk and the catalogue as they are used every day (issue 23) ----------------------------------
async def test_the_desk_finds_a_reader_by_name_or_e_mail_and_reservations_by_title(
    page: Page, web_url: str, library: Library
) -> None:
    surname = "Quenby" + uuid.uuid4().hex[:6]
    rosa = await library.create_user(f"Rosa {surname}", f"rosa.{surname.lower()}@example.org")
    rosalind = await library.create_user(f"Rosalind {surname}", f"lind.{surname.lower()}@example.org")
    word = "Harb" + uuid.uuid4().hex[:6]
    harbor = await library.create_book(f"The {word} Lights", "Ida Isle", "Travel", 1990)
    other = await library.create_book(f"Orchard {word[4:]}", "Ida Isle", "Travel", 1991)
    await library.reserve(harbor.book_id, rosa.user_id)
    await library.reserve(other.book_id, rosalind.user_id)
    librarian = await new_account(library, Role.LIBRARIAN, "Desk Dora")
    await sign_in(page, web_url, librarian)

    # Readers: by the beginning of the name, then by e-mail, counted, filed by surname.
    await press(page, page.locator("nav a:has-text('Readers')"))
    box = page.locator("form.search input[name=q]")
    rows = page.locator("table.readers tbody tr")
    # The whole random surname: the phone and desktop runs share a keyspace, and a cut of it could be the other's.
    await box.fill(f"ros {surname.lower()}")
    await press(page, page.locator("form.search button:has-text('Find')"))
    await expect(rows).to_have_count(2)
    await expect(page.locator("#readers-count")).to_have_text(f"2 readers match “ros {surname.lower()}”")
    await expect(rows.first).to_contain_text(rosa.name)
    await shot(page, "30-readers-by-name")
    await box.fill(f"lind.{surname.lower()}@example.org")
    await press(page, page.locator("form.search button:has-text('Find')"))
    await expect(rows).to_have_count(1)
    await expect(page.locator("#readers-count")).to_have_text(f"1 reader matches “lind.{surname.lower()}@example.org”")
    await expect(rows.first).to_contain_text(rosalind.name)
    # Her page says "Back to your search", which keeps it.
    searched = page.url
    await press(page, rows.first.locator("a"))
    await expect(page.locator("main h1")).to_contain_text(rosalind.name)
    await press(page, page.locator("main a:has-text('Back to your search')"))
    assert page.url == searched
    # One letter: said beside the box, which keeps the keyboard; nothing searched, no error page.
    await box.fill("r")
    await press(page, page.locator("form.search button:has-text('Find')"))
    await expect(page.locator("#rq-error")).to_contain_text("at least two letters")
    await expect(box).to_be_focused()
    await expect(box).to_have_attribute("aria-describedby", "rq-error rq-hint")
    await shot(page, "31-readers-one-letter")

    # All reservations by a word of the title, as the desk knows it (not the book's id).
    await press(page, page.locator("nav a:has-text('All reservations')"))
    filters = page.locator("form.filters")
    desk = page.locator("ul.reservations li.item")
    await filters.locator("input[name=book]").fill(word.lower())  # whole: word[:7] could be the other run's
    await press(page, filters.locator("button:has-text('Filter')"))
    await expect(desk).to_have_count(1)
    await expect(page.locator("#reservations-count")).to_have_text("1 reservation matches")
    await expect(desk.first).to_contain_text(harbor.title)
    await expect(desk.first).to_contain_text(f"{rosa.name} (card {rosa.user_id})")
    await shot(page, "32-reservations-by-title")
    # By the reader's name, then both filters at once.
    await filters.locator("input[name=book]").fill("")
    await filters.locator("input[name=reader]").fill(f"rosa {surname.lower()}")
    await press(page, filters.locator("button:has-text('Filter')"))
    await expect(desk).to_have_count(2)  # Rosa's and Rosalind's
    await filters.locator("input[name=book]").fill(word.lower())
    await press(page, filters.locator("button:has-text('Filter')"))
    await expect(desk).to_have_count(1)
    # A reader filter of letters is a name: "abc" finds nobody, on the same page (no "That did not work").
    await filters.locator("input[name=book]").fill("")
    await filters.locator("input[name=reader]").fill("abcxyzq")
    await press(page, filters.locator("button:has-text('Filter')"))
    await expect(page.locator("#reservations-count")).to_have_text("No reservation matches")
    await expect(page.locator("main h1")).to_have_text("All reservations")
    await filters.locator("input[name=reader]").fill("a")
    await press(page, filters.locator("button:has-text('Filter')"))
    await expect(page.locator("#filter-reader-error")).to_contain_text("at least two letters")
    await expect(filters.locator("input[name=reader]")).to_be_focused()
    await shot(page, "33-reservations-one-letter")


async def test_every_facet_value_is_reachable_and_available_now_composes(
    page: Page, web_url: str, library: Library
) -> None:
    word = "Facet" + uuid.uuid4().hex[:6]
    books = [
        await library.create_book(f"{word} {i:02}", f"A{i:02} {word}", "Mystery" if i % 2 else "Poetry", 1950 + i)
        for i in range(18)
    ]
    someone = await library.create_user("Taker Tess", f"tess.{word}@example.org")
    for book in books[:5]:
        await library.reserve(book.book_id, someone.user_id)

    await page.goto(f"{web_url}/?q={word}")
    facets = page.locator("aside.facets")
    await expect(page.locator("#result-count")).to_have_text(f"18 books match “{word}”")
    await expect(facets.locator("details summary")).to_have_text("Show all 18 authors")
    last = facets.locator(f"a:has-text('A17 {word}')")
    await expect(last).to_be_hidden()  # beyond the first 8, behind "Show all"
    await press(page, facets.locator("details summary"))
    await expect(last).to_be_visible()
    await shot(page, "34-all-18-authors")
    await press(page, last)  # the 18th author
    await expect(page.locator("#result-count")).to_have_text(f"1 book matches “{word}”")
    await expect(page.locator("li.item")).to_have_count(1)
    await expect(page.locator("li.item").first).to_contain_text(f"{word} 17")

    # "Available now" composes with the search: the words, then a genre, kept.
    await page.goto(f"{web_url}/?q={word}")
    await page.locator("form.search input[name=available]").check()
    await press(page, page.locator("form.search button:has-text('Search')"))
    await expect(page.locator("#result-count")).to_have_text(f"13 books available now match “{word}”")
    await expect(page.locator("li.item .badge.taken")).to_have_count(0)
    await expect(page.locator(".chosen a:has-text('available now')")).to_be_visible()
    await shot(page, "35-available-now")
    await press(page, facets.locator("a:has-text('Poetry')"))
    free_poetry = [b for b in books[5:] if b.genre == "Poetry"]
    await expect(page.locator("#result-count")).to_have_text(f"{len(free_poetry)} books available now match “{word}”")
    await expect(page.locator("form.search input[name=available]")).to_be_checked()
    await press(page, page.locator(".chosen a:has-text('available now')"))  # off again: reserved books come back
    await expect(page.locator("#result-count")).to_have_text(f"9 books match “{word}”")


async def test_lists_are_sorted_counted_and_page_back(page: Page, web_url: str, library: Library) -> None:
    word = "Listed" + uuid.uuid4().hex[:6]
    reader = await new_account(library, Role.READER, "Lise Lister")
    books = [
        await library.create_book(f"{word} {chr(65 + (i * 7) % 26)}{i:02}", "L. Ister", "Travel", 2000)
        for i in range(27)
    ]
    for book in books:  # one after another: the last reserved is the newest
        await library.reserve(book.book_id, reader.user_id)
    newest, oldest = books[-1], books[0]
    by_title = sorted(books, key=lambda b: b.title.lower())

    await sign_in(page, web_url, reader)
    await page.goto(f"{web_url}/me")
    items = page.locator("ul.reservations li.item")
    pager = page.locator("nav.pager")
    await expect(page.locator(".list-count")).to_contain_text("27 books reserved by Lise Lister")
    await expect(page.locator(".list-count")).to_contain_text("Sorted: Newest first")
    await expect(items).to_have_count(25)
    await expect(items.first).to_contain_text(newest.title)
    await expect(pager.locator(".position")).to_have_text("Page 1 of 2")
    await press(page, pager.locator("a[rel=next]"))
    await expect(items).to_have_count(2)
    await expect(items.last).to_contain_text(oldest.title)
    await press(page, pager.locator("a[rel=prev]"))
    await expect(pager.locator(".position")).to_have_text("Page 1 of 2")
    await page.locator("#order").select_option("title")
    await press(page, page.locator("form.list-order button:has-text('Sort')"))
    await expect(items.first).to_contain_text(by_title[0].title)
    await shot(page, "36-my-reservations-sorted")
    # Renew from the list: the keyboard stays on that reservation.
    renewed = await items.nth(3).get_attribute("data-reservation-id")
    renewed_title = by_title[3].title
    await press(page, items.nth(3).locator("button:has-text('Renew')"))
    await expect(page.locator(".flash-success")).to_have_text("Renewed your reservation.")
    await expect(page.locator(f"[id='reservation-{renewed}']")).to_be_focused()
    await sign_out(page)

    # The desk's lists: a reader's page and All reservations, counted, with Previous.
    librarian = await new_account(library, Role.LIBRARIAN, "Paging Pia")
    await sign_in(page, web_url, librarian)
    await page.goto(f"{web_url}/readers/{reader.user_id}")
    await expect(page.locator(".list-count")).to_contain_text("27 reservations")
    await expect(items).to_have_count(25)
    await press(page, pager.locator("a[rel=next]"))
    await expect(pager.locator("a[rel=prev]")).to_be_visible()
    await shot(page, "37-a-readers-page-2")
    await page.goto(f"{web_url}/reservations?reader={reader.user_id}")
    await expect(page.locator("#reservations-count")).to_have_text("27 reservations match")
    await expect(items.first).to_contain_text(renewed_title)  # renewed last, so the newest
    await press(page, pager.locator("a[rel=next]"))
    await expect(pager.locator(".position")).to_have_text("Page 2 of 2")
    await press(page, pager.locator("a[rel=prev]"))
    await expect(pager.locator(".position")).to_have_text("Page 1 of 2")
    # The readers: counted, filed by surname, with Previous too.
    surname = "Pager" + uuid.uuid4().hex[:6]
    for i in range(27):
        await library.create_user(f"{chr(65 + i % 26)}nne {surname}", f"p{i}.{surname}@example.org")
    await page.goto(f"{web_url}/readers?q={surname}")
    await expect(page.locator("#readers-count")).to_have_text(f"27 readers match “{surname}”")
    await press(page, pager.locator("a[rel=next]"))
    await expect(page.locator("table.readers tbody tr")).to_have_count(2)
    await press(page, pager.locator("a[rel=prev]"))
    await expect(page.locator("table.readers tbody tr")).to_have_count(25)
    await shot(page, "38-readers-paged")


async def test_the_keyboard_comes_back_where_the_reader_was(page: Page, web_url: str, library: Library) -> None:
    word = "Keys" + uuid.uuid4().hex[:6]
    books = [await library.create_book(f"{word} {i:02}", "Kim Key", "Poetry", 2000 + i) for i in range(6)]
    reader = await new_account(library, Role.READER, "Kit Keyboard")

    # The sign-in page opens with the keyboard in the card field.
    await page.goto(f"{web_url}/sign-in")
    card = page.locator("main input[name=card]")
    await expect(card).to_be_focused()
    await page.keyboard.type(str(reader.user_id))
    await page.keyboard.press("Tab")
    await page.keyboard.type(PIN)
    await page.keyboard.press("Enter")
    await expect(page.locator(".current-reader")).to_contain_text(f"card {reader.user_id}")

    # Reserve the fourth book with the keyboard only: afterwards the keyboard is on that book, and the next Tab
    # goes on from there, not from the top of the page.
    await page.goto(f"{web_url}/?q={word}")
    target = result(page, books[3].book_id)
    await target.locator("button:has-text('Reserve')").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator(".flash-success")).to_contain_text(f"You reserved “{books[3].title}”")
    await expect(target).to_be_focused()
    await expect(target).to_be_in_viewport()
    await page.keyboard.press("Tab")
    inside = await page.evaluate("document.activeElement.closest('li') && document.activeElement.closest('li').id")
    assert inside == f"book-{books[3].book_id}", inside
    await shot(page, "39-focus-after-reserve")


async def test_the_words_a_reader_reads(page: Page, web_url: str, library: Library) -> None:
    word = "Words" + uuid.uuid4().hex[:6]
    book = await library.create_book(f"An Orchard of {word}", f"Olive {word}", "Poetry", 1931)
    await library.create_book(f"Second {word}", f"Olive {word}", "Poetry", 1932)
    reader = await new_account(library, Role.READER, "Wes Words")

    # One book matches: "1 book matches", not "1 book match".
    await page.goto(f"{web_url}/?q={quote(word.lower())}+of")
    await expect(page.locator("#result-count")).to_have_text(f"1 book matches “{word.lower()} of”")
    # "Back to your search" on the book's page keeps the search.
    searched = page.url
    await press(page, result(page, book.book_id).locator(f"a:has-text('{book.title}')"))
    await expect(page.locator("main h1")).to_have_text(book.title)
    await expect(page.locator("article dl")).to_contain_text(f"Olive {word}")
    await expect(page.locator("article dl")).to_contain_text("2 books in the catalogue")
    await expect(page.locator("article dl")).to_contain_text("1931")
    await expect(page.locator("#book-status")).to_contain_text("Nobody holds it: it can be reserved now.")
    await press(page, page.locator("main a:has-text('Back to your search')"))
    assert page.url == searched

    # One letter: the two-letter minimum is said, beside the box, not "No books match".
    await page.goto(f"{web_url}/?q=j")
    await expect(page.locator("#result-count")).to_have_text("Type at least two letters")
    await expect(page.locator("#q-error")).to_contain_text("at least two letters")
    await expect(page.locator("#q")).to_be_focused()
    await expect(page.locator("#q-hint")).to_contain_text("from two letters")
    await shot(page, "40-one-letter")

    # The footer in readers' words, and a status page a person reads.
    footer = page.locator("footer")
    await expect(footer).not_to_contain_text("Cassandra")
    await expect(footer).not_to_contain_text("lightweight")
    await press(page, footer.locator("a:has-text('service working')"))
    await expect(page).to_have_url(f"{web_url}/status")
    await expect(page.locator("main h1")).to_have_text("Is the library's service working?")
    await expect(page.locator("main .flash-success")).to_contain_text("Yes")
    await shot(page, "41-status")

    # A librarian's view of a reserved book: who holds it, its history, and a delete refused in true words.
    await sign_in(page, web_url, reader)
    await page.goto(f"{web_url}/books/{book.book_id}")
    await press(page, page.locator("article button:has-text('Reserve')"))
    await expect(page.locator("article")).to_be_focused()
    await expect(page.locator("#book-status")).to_contain_text("Reserved by you")
    await sign_out(page)
    librarian = await new_account(library, Role.LIBRARIAN, "Hattie History")
    await sign_in(page, web_url, librarian)
    await page.goto(f"{web_url}/books/{book.book_id}")
    await expect(page.locator("#book-status")).to_contain_text(f"{reader.name} (card {reader.user_id})")
    await expect(page.locator("article dl")).to_contain_text(str(book.book_id))
    history = page.locator("ol.history-lines li")
    await expect(history).to_have_count(1)
    await expect(history.first).to_contain_text(f"{reader.name} (card {reader.user_id}) reserved it.")
    assert DATE_IN_WORDS.search(await history.first.inner_text())
    delete = page.locator(f"form[action='/books/{book.book_id}/delete']")
    await press(page, delete.locator("button"))
    refusal = delete.locator(".form-error")
    await expect(refusal).to_contain_text("cannot be deleted. Cancel that reservation first")
    await expect(refusal).not_to_contain_text("wait until it ends")
    await expect(refusal).to_be_focused()
    await shot(page, "42-delete-refused-beside-its-button")
    await press(page, page.locator("article button:has-text('Cancel the reservation at the desk')"))
    await expect(history).to_have_count(2)
    await expect(history.first).to_contain_text(
        f"{librarian.name} (card {librarian.user_id}) cancelled the reservation of {reader.name}"
    )
    await shot(page, "43-book-history")


async def test_a_reader_joins_a_queue_leaves_it_and_finds_the_book_ready_when_their_turn_comes(
    page: Page, web_url: str, library: Library
) -> None:
    """Issue 22: "Reserved by another reader" is no longer a dead end. A reader joins the queue of a book another
    reader holds and reads their place; leaves and joins again; and when the holder cancels, the book is theirs,
    shown ready with the date to collect it by."""
    word = "q" + uuid.uuid4().hex[:8]
    book = await library.create_book(f"The {word} Queue", "Wanda Waiting", "Drama", 2001)
    holder = await new_account(library, name="Hal Holder", pin=None)
    reader = await new_account(library, name="Quinn Queue")
    held = await library.reserve(book.book_id, holder.user_id)
    await sign_in(page, web_url, reader)
    await search(page, web_url, word)  # the catalogue offers the queue where it offered nothing
    await expect(result(page, book.book_id).locator("button:has-text('Join the queue')")).to_have_count(1)
    await page.goto(f"{web_url}/books/{book.book_id}")
    await expect(page.locator("#book-status")).to_contain_text("Reserved by another reader")
    await expect(page.locator("#book-status")).to_contain_text("Nobody is waiting for it.")
    await press(page, page.locator("article button:has-text('Join the queue (0 waiting)')"))
    await expect(page.locator(".flash-success")).to_contain_text(f"You joined the queue for “{book.title}”")
    await expect(page.locator(".flash-success")).to_contain_text("you are next in line")
    await expect(page.locator("#book-status")).to_contain_text("You are next in line.")
    await shot(page, "20-in-the-queue")

    await page.goto(f"{web_url}/me")
    await expect(page.locator("#waiting-heading")).to_have_text("Waiting for")
    await expect(page.locator(f"#place-{book.book_id}")).to_contain_text("You are next in line.")
    await shot(page, "21-my-places")
    await press(page, page.locator(f"#place-{book.book_id} button:has-text('Leave the queue')"))
    await expect(page.locator(".flash-success")).to_contain_text(f"You left the queue for “{book.title}”.")
    await expect(page.locator("#waiting-heading")).to_have_count(0)
    await expect(page.locator("ol.past-holds")).to_contain_text(f"{book.title}: left the queue")

    await page.goto(f"{web_url}/books/{book.book_id}")
    await press(page, page.locator("article button:has-text('Join the queue')"))
    # Away for a while: the place is suspended until a date, kept, and resumed.
    await page.goto(f"{web_url}/me")
    away = (datetime.now(UTC) + timedelta(days=10)).date()
    place = page.locator(f"#place-{book.book_id}")
    await place.get_by_label("Away until").fill(away.isoformat())
    await press(page, place.locator("button:has-text('Suspend my place')"))
    await expect(page.locator(".flash-success")).to_contain_text(f"Your place in the queue for “{book.title}” is")
    await expect(page.locator(".flash-success")).to_contain_text(f"suspended until {away.day} {away:%B %Y}")
    await expect(place).to_contain_text(f"Suspended until {away.day} {away:%B %Y}")
    await shot(page, "23-place-suspended")
    await press(page, place.locator("button:has-text('Resume my place')"))
    await expect(page.locator(".flash-success")).to_contain_text("is active again: you are next in line")
    await expect(place.locator("button:has-text('Suspend my place')")).to_have_count(1)
    await library.cancel(held.reservation_id, holder.user_id)  # the holder lets go: the book is handed on
    await page.goto(f"{web_url}/me")
    mine = page.locator("ul.reservations li.item")
    await expect(mine).to_have_count(1)
    await expect(mine).to_contain_text(book.title)
    await expect(mine).to_contain_text("ready — collect by")
    await shot(page, "22-ready-to-collect")
    await page.goto(f"{web_url}/books/{book.book_id}")
    await expect(page.locator("#book-status")).to_contain_text("Reserved by you")
    await expect(page.locator("#book-status")).to_contain_text("Collect it by")
    (now_held,) = (await library.user_reservations(reader.user_id)).items
    await library.cancel(now_held.reservation_id, reader.user_id)
