"""The web chat in a real headless browser (Debian chromium driven by playwright)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cqo_assistant import Assistant, Settings
from tests.web_helpers import running_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
XSS = "<img src=x onerror=alert(1)>"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium: apt-get install chromium"),
]


@pytest.fixture(scope="module")
def page_at(
    assistant: Assistant, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator:
    from playwright.sync_api import sync_playwright

    with (
        running_app(assistant, settings, tmp_path_factory.mktemp("webdata")) as url,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)

        def open_page(width: int = 1280, query: str = ""):
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(url + query, wait_until="load")
            page.wait_for_selector("#cqo-question textarea", timeout=30_000)
            return page

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
    assert page.locator("#cqo-chat mark").count() >= 1
    ask(page, XSS)
    page.wait_for_timeout(800)
    assert XSS in page.locator("#cqo-chat").inner_text()
    assert page.locator("#cqo-chat img[src='x']").count() == 0 and not alerts
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-375.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 380, f"page scrolls sideways at 375 px ({width})"


def test_readme_screenshot(page_at) -> None:
    page = page_at(900)
    ask(page, "首席质量官有一票否决权吗？")
    page.locator("#cqo-chat .cqo-card").first.wait_for(timeout=30_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "chat.png"
    page.screenshot(path=str(shot))
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    shutil.copy(shot, docs / "screenshot-chat.png")


def test_permalink_opens_clause(page_at) -> None:
    page = page_at(1280, "?clause=8.1%20d)")
    page.get_by_role("tab", name="浏览标准").click()
    page.wait_for_timeout(1000)
    body = page.inner_text("body")
    assert "DB1302/T 589—2024 第8.1条 d)" in body and "一票否决" in body
