"""The developer UI in real headless Chromium (Debian's package, driven by Playwright; no browser download):
choose a reader, reserve a book, see it under "My reservations", change it to another book, cancel it.
Each step leaves a screenshot in artifacts/screenshots/."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from tool_support import PROJECT_DIR

from app.repository import Library

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
    page.on("dialog", lambda dialog: dialog.accept())  # the "Cancel this reservation?" confirmation
    yield page
    await context.close()


async def shot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def test_reserve_change_and_cancel_in_the_browser(page: Page, web_url: str, library: Library) -> None:
    word = "Lantern" + uuid.uuid4().hex[:6]
    first = await library.create_book(f"{word} Harbour", "Iris Vane", "Mystery", 1931)
    second = await library.create_book(f"{word} Orchard", "Iris Vane", "Fiction", 1948)
    reader = await library.create_user(
        "Browser Reader", "browser@example.org", user_id=1_900_000 + uuid.uuid4().int % 99_999
    )

    # 1. Choose the reader (the chooser posts itself on change) and search the catalogue.
    await page.goto(f"{web_url}/readers")
    await page.locator(f'tr[data-user-id="{reader.user_id}"] button').click()
    await expect(page.locator(".flash")).to_contain_text("You are now Browser Reader")
    await page.goto(f"{web_url}/")
    await page.fill("input[name=q]", word)
    await page.click("form.filters button[type=submit]")
    rows = page.locator("table.books tbody tr")
    await expect(rows).to_have_count(2)
    await expect(page.locator("#reader-select")).to_have_value(str(reader.user_id))
    await shot(page, "01-reader-chosen-catalogue")

    # 2. Reserve the first book from its page.
    await page.click(f"text={first.title}")
    await expect(page.locator(".badge.free")).to_be_visible()
    await page.click("button:has-text('Reserve')")
    await expect(page).to_have_url(f"{web_url}/me")
    await expect(page.locator(".flash-success")).to_contain_text(f"Reserved “{first.title}”")
    await shot(page, "02-reserved")

    # 3. It is listed under "My reservations".
    mine = page.locator("table.reservations tbody tr")
    await expect(mine).to_have_count(1)
    await expect(mine.first).to_contain_text(first.title)
    held = await library.holder(first.book_id)
    assert held is not None and held.user_id == reader.user_id
    await shot(page, "03-my-reservations")

    # 4. Change it to the second book: the catalogue in "change book" mode offers "Move here".
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

    # 5. Cancel it.
    await mine.first.locator("button:has-text('Cancel')").click()
    await expect(page.locator(".flash-success")).to_contain_text("Cancelled")
    await expect(page.locator(".empty")).to_contain_text("holds no reservations")
    assert await library.holder(second.book_id) is None
    await shot(page, "06-cancelled")


async def test_a_conflict_is_a_message_on_the_page(page: Page, web_url: str, library: Library) -> None:
    book = await library.create_book("Contested Volume " + uuid.uuid4().hex[:6], "Ned Rival", "Fiction", 2001)
    me = await library.create_user("Slow Reader", "slow@example.org", user_id=1_800_000 + uuid.uuid4().int % 99_999)
    rival = await library.create_user("Fast Reader", "fast@example.org")

    await page.goto(f"{web_url}/readers")
    await page.locator(f'tr[data-user-id="{me.user_id}"] button').click()
    await page.goto(f"{web_url}/books/{book.book_id}")
    await expect(page.locator(".badge.free")).to_be_visible()
    # Someone else takes the book between the page load and the click.
    taken = await library.reserve(book.book_id, rival.user_id)
    await page.click("button:has-text('Reserve')")
    await expect(page).to_have_url(f"{web_url}/books/{book.book_id}")
    await expect(page.locator(".flash-error")).to_be_visible()
    await expect(page.locator(".badge.taken")).to_be_visible()
    assert "{" not in await page.locator(".flash-error").inner_text()  # a sentence, not JSON
    await shot(page, "07-conflict-message")
    await library.cancel(taken.reservation_id, rival.user_id)


async def test_forms_need_the_xsrf_token(page: Page, web_url: str) -> None:
    response = await page.request.post(f"{web_url}/reader", form={"user_id": "1"})
    assert response.status == 403
