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
    page.wait_for_selector(  # the request is over: the chat's status tracker is hidden again
        "#cqo-chat > [data-testid=status-tracker].hide", state="attached", timeout=30_000
    )


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
    wait_text(page, "#cqo-chat", XSS)
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert page.locator("#cqo-chat img[src='x']").count() == 0 and not alerts
    page.locator("#cqo-chat .user-row", has_text=XSS).scroll_into_view_if_needed()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-375.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 380, f"page scrolls sideways at 375 px ({width})"


def scroll_chat_to_top(page) -> None:
    """Show the conversation from its start (the chat scrolls to the latest answer)."""
    page.evaluate(
        "[...document.querySelectorAll('#cqo-chat *')]"
        ".filter(e => e.scrollHeight > e.clientHeight + 5).forEach(e => { e.scrollTop = 0; })"
    )
    page.wait_for_function(
        "[...document.querySelectorAll('#cqo-chat *')].every(e => e.scrollTop === 0)"
    )


def keep_screenshot(page, name: str, height: int) -> None:
    """Write tests/artifacts/<name>.png; with CQO_REFRESH_DOCS=1 also docs/screenshot-<name>.png
    (the README's images: only on request)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    width = page.viewport_size["width"]
    page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": width, "height": height})
    if os.environ.get("CQO_REFRESH_DOCS") == "1":
        shutil.copy(shot, ROOT / "docs" / f"screenshot-{name}.png")


def test_readme_screenshot(page_at) -> None:
    page = page_at(1280, height=1000)
    ask(page, "首席质量官有一票否决权吗？")
    ask(page, "首席质量官的工资是多少？")  # covered, then not covered: both kinds of answer
    assert page.locator("#cqo-chat .cqo-card.related").count() >= 1
    assert page.locator("#cqo-chat mark", has_text="一票否决").count() >= 1
    assert page.locator("#cqo-chat mark", has_text="首席质量官").count() == 0  # not noise
    scroll_chat_to_top(page)
    keep_screenshot(page, "chat", 1000)


def test_readme_phone_screenshot(page_at) -> None:
    """The first screen on a phone after a long answer: the answer and the question box."""
    page = page_at(375, height=800)
    ask(page, "首席质量官有哪些职权？")  # 8 cards: far taller than the screen
    scroll_chat_to_top(page)
    box = page.locator("#cqo-question textarea").bounding_box()
    assert box and box["y"] + box["height"] <= 800, f"question box below the first screen: {box}"
    keep_screenshot(page, "phone", 800)


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


def like(page, n: int, label: str = "Like") -> None:
    """Press the ``n``-th visible 👍 (or 👎) in the chat (hints have none)."""
    buttons = page.locator(f"#cqo-chat button[aria-label='{label}'] >> visible=true")
    (buttons.last if n == -1 else buttons.nth(n)).click()


def test_like_buttons_rate_the_answer_they_belong_to(page_at) -> None:
    page = page_at(375)
    data: Path = page_at.data_dir
    before = len(feedback_rows(data, 0, timeout=0))
    first, second = "首席质量官需要什么学历？", "质量工作经费由谁统一调度？"
    ask(page, first)
    ask(page, "   ")  # rejected: a warning in the chat, no answer to rate
    ask(page, second)
    like(page, 1)
    rows = feedback_rows(data, before + 1)
    assert rows[before:] == [(second, 1, "")]
    assert "经费由谁统一调度？」的回答有帮助" in wait_status(page, "有帮助")
    # the comment form now targets that answer and completes its row instead of adding one
    page.locator("#cqo-feedback").get_by_role("button").first.click()
    page.fill("#cqo-comment textarea", "引用清楚 <b>好</b>")
    page.click("#cqo-feedback-send")
    wait_status(page, "评价，谢谢")
    assert feedback_rows(data, before + 1)[before:] == [(second, 1, "引用清楚 <b>好</b>")]
    like(page, 0, "Dislike")
    rows = feedback_rows(data, before + 2)
    assert rows[before + 1 :] == [(first, -1, "")]
    ask(page, XSS)
    like(page, -1)
    assert feedback_rows(data, before + 3)[-1] == (XSS, 1, "")
    assert "<img src=x" in wait_status(page, "<img src=x")
    assert page.locator("#cqo-feedback-status img").count() == 0


def test_clear_forgets_the_conversation_and_its_likes(page_at) -> None:
    """Issue 13, 1: after the trash button, a follow-up has no earlier question to lean on and
    👍 rates the answer it is under, not the cleared one at the same position."""
    page = page_at(1280)
    data: Path = page_at.data_dir
    before = len(feedback_rows(data, 0, timeout=0))
    ask(page, "首席质量官的任职能力有哪些要求？")
    page.locator("#cqo-chat button[aria-label='Clear']").click()
    page.wait_for_function("!document.querySelector('#cqo-chat .message-row')", timeout=15_000)
    ask(page, "具体有哪些？")  # on its own it names nothing the standard has
    answer = page.locator("#cqo-chat .cqo-answer").last.inner_text()
    assert "第5.2条" not in answer, answer  # 5.2 任职能力 came from the cleared question
    like(page, 0)
    assert feedback_rows(data, before + 1)[before:] == [("具体有哪些？", 1, "")]


def test_hint_is_its_own_message_without_feedback_buttons(page_at) -> None:
    """Issue 13, 2: "问题为空" is a bubble of its own, not appended to the answer above, and
    carries no 👍/👎; the answer keeps its own."""
    page = page_at(1280)
    ask(page, "质量工作经费由谁统一调度？")
    ask(page, "   ")
    rows = page.locator("#cqo-chat .message-row.bot-row")
    wait_text(page, "#cqo-chat", "问题为空")
    assert rows.count() == 2
    assert "问题为空" in rows.nth(1).inner_text() and "问题为空" not in rows.nth(0).inner_text()
    assert rows.nth(1).locator(".cqo-answer").count() == 0
    buttons = page.locator("#cqo-chat .message-row.bot-row + .message-buttons")
    visible = "button[aria-label='Like'] >> visible=true"
    assert buttons.nth(0).locator(visible).count() == 1
    assert buttons.nth(1).locator(visible).count() == 0
    assert buttons.nth(1).locator("button[aria-label='Dislike'] >> visible=true").count() == 0


def test_clicking_an_example_asks_it(page_at) -> None:
    """Issue 13, 3: an example question is asked on click, not only put into the box."""
    page = page_at(1280)
    page.get_by_text("质量工作经费由谁统一调度？", exact=True).click()
    wait_text(page, "#cqo-chat", "第8.2条")
    assert page.locator("#cqo-chat .user-row").inner_text().strip() == "质量工作经费由谁统一调度？"


def test_phone_first_screen_shows_the_question_box(page_at) -> None:
    """Issue 13, 4: at 375×800 the box and 提问 are on the first screen, the empty chat is a
    short welcome, and a very long question scrolls inside a box of a few lines."""
    page = page_at(375, height=800)
    page.wait_for_selector("#cqo-send", timeout=15_000)
    for sel in ("#cqo-question textarea", "#cqo-send"):
        box = page.locator(sel).bounding_box()
        assert box and box["y"] + box["height"] <= 800, f"{sel} below the first screen: {box}"
    chat = page.locator("#cqo-chat").bounding_box()
    assert chat and chat["height"] <= 240, f"empty chat is {chat} tall"
    assert "你好" in page.locator("#cqo-chat .cqo-welcome").inner_text()
    page.fill("#cqo-question textarea", "首席质量官需要什么学历？" * 300)
    area = page.locator("#cqo-question textarea")
    page.wait_for_function(  # the box has resized to its content (or its limit)
        "document.querySelector('#cqo-question textarea').scrollHeight > 400"
    )
    height = area.bounding_box()["height"]
    assert height <= 140, f"question box grew to {height} px"
    send = page.locator("#cqo-send").bounding_box()
    assert send and send["y"] + send["height"] <= 800


def platform_fonts(page, selector: str) -> dict[str, int]:
    """The fonts Chromium drew the first ``selector`` with: PostScript name → glyph count."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    cdp.detach()
    return {f["postScriptName"]: f["glyphCount"] for f in fonts}


CJK_FONT = "WenQuanYiMicroHei"


def test_bold_card_title_is_drawn_in_one_latin_font(page_at) -> None:
    """Issue 13, 5: "DB1302/T 589—2024" in a bold card title: every Latin glyph from one whole
    bold face (Gradio's SemiBold subset gave "B" as a small capital, the rest from DejaVu)."""
    page = page_at(1280)
    ask(page, "首席质量官有一票否决权吗？")
    title = "#cqo-chat .cqo-card .cqo-id"
    assert page.locator(title).first.inner_text().startswith("DB1302/T 589—2024")
    assert page.locator(title).first.evaluate("e => getComputedStyle(e).fontWeight") == "600"
    fonts = platform_fonts(page, title)
    latin = {name: n for name, n in fonts.items() if name != CJK_FONT}
    # Gradio's SourceSansPro-Bold.woff2 holds Source Sans 3 Bold: one whole face for all 24
    assert latin == {"SourceSans3-Bold": 24}, fonts
    assert fonts[CJK_FONT] == 2  # 第, 条


def download_names(page) -> list[str]:
    """The file names offered for download in the 培训材料 tab, sorted."""
    return sorted(
        page.evaluate(
            "[...document.querySelectorAll('#cqo-training-files a[download]')]"
            ".map(a => a.getAttribute('download'))"
        )
    )


def test_training_error_keeps_the_downloads(page_at) -> None:
    """Issue 13, 6 (and 5 for the quiz title): too many questions for the chosen kinds is said
    in Chinese in the status line; the files of the previous run stay downloadable."""
    page = page_at(1280)
    page.get_by_role("tab", name="培训材料").click()
    page.click("#cqo-training-go")
    wait_text(page, "#cqo-training-status", "已生成 7 个文件")
    files = page.locator("#cqo-training-files a[download]")
    names = download_names(page)
    assert names == [
        "讲义.docx", "课程提纲.docx", "课程提纲.pptx", "题库.docx", "题库.json", "题库.md",
        "题库.xlsx",
    ]  # fmt: skip
    title = page.locator("#cqo-quiz-preview h1")
    assert title.inner_text().startswith("题库：DB1302/T 589—2024")
    latin = {k: v for k, v in platform_fonts(page, "#cqo-quiz-preview h1").items() if k != CJK_FONT}
    assert len(latin) == 1 and "SemiBold" not in next(iter(latin)), latin
    for kind in ("单选题", "判断题", "填空题"):
        page.get_by_label(kind, exact=True).uncheck()
    page.get_by_label("number input for 题目数量").fill("100")
    page.click("#cqo-training-go")
    status = wait_text(page, "#cqo-training-status", "无法生成")
    assert "上限" in status and "多选题" in status and "multi" not in status, status
    assert download_names(page) == names
    link = files.first.bounding_box()
    assert link, "the earlier downloads are gone"
    on_top = page.evaluate(  # nothing (an error overlay) covers the first download link
        "([x, y]) => document.elementFromPoint(x, y)?.closest('#cqo-training-files a') !== null",
        [link["x"] + link["width"] / 2, link["y"] + link["height"] / 2],
    )
    assert on_top
