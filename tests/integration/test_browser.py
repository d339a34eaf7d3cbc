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

    # 3. Reserve the first book from the results: back on the same search, the book now "Reserved by you".
    await press(page, result(page, first.book_id).locator("button:has-text('Reserve')"))
    await expect(page.locator(".flash-success")).to_contain_text(f"You reserved “{first.title}”")
    assert page.url == searched
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

    # 10. Add a book with the catalogue's "Add a book" form. A wrong year first: the form keeps what was typed.
    new_title = f"{word} Lighthouse"
    await page.goto(f"{web_url}/")
    add = page.locator("section.add-book form")
    await add.locator("input[name=title]").fill(new_title)
    await add.locator("input[name=author]").fill("Mara Quill")
    await add.locator("input[name=genre]").fill("Poetry")
    await add.locator("input[name=published_year]").fill("nineteen")
    await press(page, add.locator("button[type=submit]"))
    await expect(page.locator(".flash-error")).to_have_text("The year is a whole number such as 1999.")
    await expect(add.locator("input[name=title]")).to_have_value(new_title)
    await expect(add.locator("input[name=author]")).to_have_value("Mara Quill")
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
    await page.locator("form.filters input[name=card]").fill(str(reader.user_id))
    await press(page, page.locator("form.filters button[type=submit]"))
    desk = page.locator("ul.reservations li.item")
    await expect(desk).to_have_count(2)
    await expect(desk.filter(has_text=first.title)).to_contain_text(f"{reader.name} (card {reader.user_id})")
    await shot(page, "09-all-reservations-of-a-reader")
    await press(page, desk.filter(has_text=first.title).locator("button:has-text('Cancel')"))
    cancelled_first = f"Cancelled {reader.name}'s reservation of “{first.title}”."
    await expect(page.locator(".flash-success")).to_have_text(cancelled_first)
    await expect(desk).to_have_count(1)  # back on the filtered list
    assert await library.holder(first.book_id) is None

    # 12. ...and the second one from the reader's own page ("Cancel for <name>").
    await press(page, page.locator("nav a:has-text('Readers')"))
    await shot(page, "10-readers")
    await page.locator("form.filters input[name=card]").fill(str(reader.user_id))
    await press(page, page.locator("form.filters button[type=submit]"))
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
    await expect(page.locator(".flash-error")).to_contain_text("PIN")
    await expect(form.locator("input[name=name]")).to_have_value("Nova Newreader")
    await expect(form.locator("input[name=email]")).to_have_value(f"nova.{word}@example.org")
    await expect(form.locator("input[name=pin]")).to_have_value("")
    assert "pin" not in (await page.locator(".flash-error").inner_text()).split()  # no field names


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
    await expect(page.locator(".flash-error")).to_have_text("That is not your current PIN, so nothing was changed.")
    await expect(page).to_have_url(f"{web_url}/me")
    await shot(page, "20-wrong-current-pin")
    # The new PIN twice, differently: refused before anything is checked.
    await form.locator("input[name=current_pin]").fill(PIN)
    await form.locator("input[name=pin]").fill("8642")
    await form.locator("input[name=pin_again]").fill("8643")
    await press(page, form.locator("button[type=submit]"))
    await expect(page.locator(".flash-error")).to_contain_text("differ")
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
    await page.goto(f"{web_url}/?q={'x' * 301}")
    await expect(page.locator(".flash-error")).to_have_text("Your search can be at most 300 characters long.")
    await shot(page, "16-bad-search")
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
