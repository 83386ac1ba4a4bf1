"""The web chat in a real headless browser (Debian chromium driven by playwright)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cqo_assistant import Assistant, Settings
from tests.conftest import require_tool
from tests.web_helpers import running_app

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
XSS = "<img src=x onerror=alert(1)>"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="session", autouse=True)  # checked before the index is built
def chromium() -> str:
    return require_tool("chromium", hint="run `make system-deps` (apt-get install chromium)")


@pytest.fixture(scope="module")
def page_at(
    chromium: str,
    assistant: Assistant,
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator:
    from playwright.sync_api import sync_playwright

    data = tmp_path_factory.mktemp("webdata")
    with running_app(assistant, settings, data) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=ARGS)

        def open_page(width: int = 1280, query: str = "", height: int = 900):
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url + query, wait_until="load")
            # a permalink switches to 浏览标准 as the page loads, hiding the question box: wait
            # for the app to be there, not for the box to be visible (that raced)
            page.wait_for_selector("#cqo-question textarea", state="attached", timeout=30_000)
            return page

        open_page.data_dir = data  # type: ignore[attr-defined]
        yield open_page
        browser.close()


def ask(page, question: str) -> None:
    n = page.locator("#cqo-chat .cqo-answer, #cqo-chat .message").count()
    page.fill("#cqo-question textarea", question)
    page.click("#cqo-send")
    page.wait_for_function(
        f"document.querySelectorAll('#cqo-chat .cqo-answer, #cqo-chat .message').length > {n}",
        timeout=30_000,
    )
    page.wait_for_timeout(500)


def test_question_gets_clause_card_and_xss_is_text(page_at) -> None:
    page = page_at(375)
    alerts: list[str] = []
    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    ask(page, "首席质量官需要什么学历？")
    card = page.locator("#cqo-chat .cqo-card").first
    card.wait_for(timeout=30_000)
    assert "第5.1条 e)" in card.inner_text()
    box = card.bounding_box()
    assert box and box["width"] >= 280, f"clause card only {box} wide at 375 px"
    assert page.locator("#cqo-chat mark").count() >= 1
    ask(page, XSS)
    page.wait_for_timeout(800)
    assert XSS in page.locator("#cqo-chat").inner_text()
    assert page.locator("#cqo-chat img[src='x']").count() == 0 and not alerts
    page.locator("#cqo-chat .user-row", has_text=XSS).scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-375.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 380, f"page scrolls sideways at 375 px ({width})"


def test_readme_screenshot(page_at) -> None:
    page = page_at(900, height=1150)
    ask(page, "首席质量官有一票否决权吗？")
    ask(page, "首席质量官的工资是多少？")  # covered, then not covered: both kinds of answer
    assert page.locator("#cqo-chat .cqo-card.related").count() >= 1
    assert page.locator("#cqo-chat mark", has_text="一票否决").count() >= 1
    assert page.locator("#cqo-chat mark", has_text="首席质量官").count() == 0  # not noise
    page.evaluate(  # show the conversation from its start
        "[...document.querySelectorAll('#cqo-chat *')]"
        ".filter(e => e.scrollHeight > e.clientHeight + 5).forEach(e => { e.scrollTop = 0; })"
    )
    page.wait_for_timeout(300)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "chat.png"
    page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": 900, "height": 1020})
    if os.environ.get("CQO_REFRESH_DOCS") == "1":  # the tracked README image: only on request
        shutil.copy(shot, ROOT / "docs" / "screenshot-chat.png")


def test_permalink_opens_the_clause_in_the_browse_tab(page_at) -> None:
    page = page_at(375, "?clause=8.1")
    wait_text(page, "#cqo-clause", "第8.1条 g)")
    assert page.locator("[role=tab][aria-selected=true]").inner_text() == "浏览标准"
    assert page.input_value("#cqo-citation textarea, #cqo-citation input") == (
        "DB1302/T 589—2024 第8.1条"
    )
    assert "一票否决" in page.inner_text("#cqo-clause")  # the items come with their lead-in
    box = page.locator("#cqo-clause").bounding_box()
    assert box and box["y"] < page.locator("#cqo-tree").bounding_box()["y"]  # text first on a phone
    assert page.locator("#cqo-permalink a").get_attribute("href") == "?clause=8.1"
    page = page_at(1280, "?clause=99.9")
    wait_text(page, "#cqo-clause", "99.9")
    assert "相近条款" in page.inner_text("#cqo-clause")


def test_browse_filter_and_click(page_at) -> None:
    page = page_at(1280)
    page.get_by_role("tab", name="浏览标准").click()
    page.get_by_placeholder("如：经费、一票否决、5.1").fill("一票否决")
    page.wait_for_function(
        "document.querySelectorAll('#cqo-tree label').length === 1", timeout=15_000
    )
    page.locator("#cqo-tree label").first.click()
    wait_text(page, "#cqo-clause", "第8.1条 d)")
    assert page.input_value("#cqo-citation textarea, #cqo-citation input") == (
        "DB1302/T 589—2024 第8.1条 d)"
    )


def feedback_rows(data: Path, n: int, timeout: float = 15) -> list[tuple]:
    """The feedback table once it has ``n`` rows (the like event is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        db = data / "feedback.sqlite3"
        rows = []
        if db.exists():
            with sqlite3.connect(db) as con:
                rows = con.execute("SELECT question, rating, comment FROM feedback ORDER BY id")
                rows = rows.fetchall()
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def wait_text(page, selector: str, text: str) -> str:
    """Wait until the element exists and shows ``text``; return its text."""
    page.wait_for_function(
        "([s, t]) => (document.querySelector(s)?.innerText ?? '').includes(t)",
        arg=[selector, text],
        timeout=15_000,
    )
    return page.inner_text(selector)


def wait_status(page, text: str) -> str:
    return wait_text(page, "#cqo-feedback-status", text)


def test_like_buttons_rate_the_answer_they_belong_to(page_at) -> None:
    page = page_at(375)
    data: Path = page_at.data_dir
    before = len(feedback_rows(data, 0, timeout=0))
    first, second = "首席质量官需要什么学历？", "质量工作经费由谁统一调度？"
    ask(page, first)
    ask(page, "   ")  # rejected: a warning in the chat, no answer to rate
    ask(page, second)
    page.locator("#cqo-chat button[aria-label='Like']").nth(1).click()
    rows = feedback_rows(data, before + 1)
    assert rows[before:] == [(second, 1, "")]
    assert "经费由谁统一调度？」的回答有帮助" in wait_status(page, "有帮助")
    # the comment form now targets that answer and completes its row instead of adding one
    page.locator("#cqo-feedback").get_by_role("button").first.click()
    page.fill("#cqo-comment textarea", "引用清楚 <b>好</b>")
    page.click("#cqo-feedback-send")
    wait_status(page, "评价，谢谢")
    assert feedback_rows(data, before + 1)[before:] == [(second, 1, "引用清楚 <b>好</b>")]
    page.locator("#cqo-chat button[aria-label='Dislike']").nth(0).click()
    rows = feedback_rows(data, before + 2)
    assert rows[before + 1 :] == [(first, -1, "")]
    ask(page, XSS)
    page.locator("#cqo-chat button[aria-label='Like']").last.click()
    assert feedback_rows(data, before + 3)[-1] == (XSS, 1, "")
    assert "<img src=x" in wait_status(page, "<img src=x")
    assert page.locator("#cqo-feedback-status img").count() == 0
