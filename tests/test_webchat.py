"""The web chat: rendering rules, feedback store, and the real app through gradio_client."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cqo_assistant import Assistant, Settings
from cqo_assistant.chat_feedback import FeedbackStore
from cqo_assistant.webchat import (
    clause_section,
    highlight,
    md_text,
    permalink,
    render_answer,
    standard_citation,
    tree_choices,
    unknown_clause_note,
)
from tests.web_helpers import running_app

XSS = "<img src=x onerror=alert(1)>"


def test_highlight_escapes_then_marks() -> None:
    out = highlight("首席质量官<b>经费</b>", ["经费", "<b>"])
    assert "<b>" not in out and "&lt;<mark>" not in out
    assert "<mark>经费</mark>" in out and "&lt;b&gt;" in out


def test_md_text_is_literal() -> None:
    out = md_text(XSS + " *粗体* [链接](http://x) 5.1 e)")
    assert "<" not in out and "&lt;img" in out
    assert "\\*粗体\\*" in out and "\\[链接\\]\\(http" in out and "5\\.1 e\\)" in out


def test_answer_card(assistant: Assistant) -> None:
    ans = assistant.ask("首席质量官需要什么学历？")
    page = render_answer(ans, assistant.clause_map, ["学历", "大学专科"])
    assert 'class="cqo-card"' in page and "DB1302/T 589—2024 第5.1条 e)" in page
    assert "<mark>大学专科</mark>" in page and "5 任职要求 &gt; 5.1 任职资格 &gt; e)" in page


def test_list_answer_has_a_card_per_item(assistant: Assistant) -> None:
    page = render_answer(assistant.ask("首席质量官有哪些职权？"), assistant.clause_map)
    assert page.count('class="cqo-card"') == 8  # 8.1 and its items a)–g)


def test_not_covered_card(assistant: Assistant) -> None:
    page = render_answer(assistant.ask("首席质量官的工资是多少"), assistant.clause_map)
    assert "本标准未涉及" in page and "cqo-card related" in page


def test_closest_card(assistant: Assistant) -> None:
    """ "closest": said plainly, the nearest clause as a card, other related ones greyed."""
    from cqo_assistant.answer import compose

    q = "<b>首席质量官</b>的一票否决权能被董事长推翻吗？"
    hits, signals = assistant.retriever.rank(q)
    ans = compose(q, hits, signals, assistant.clause_map, assistant.config, "closest")
    page = render_answer(ans, assistant.clause_map, ["一票否决"])
    assert "标准没有直接回答这个问题" in page and "本标准未涉及" not in page
    assert page.count("cqo-card") >= 2 and 'cqo-card related"' in page
    assert "<mark>一票否决</mark>" in page and "<b>" not in page


def test_tree_and_filter(assistant: Assistant) -> None:
    all_ = tree_choices(assistant.clauses())
    assert len(all_) == 91 and all_[0][1] == "前言"
    label = dict((v, k) for k, v in all_)["5.1 e)"]
    assert label.startswith("　　") and "5.1 e)" in label  # indented under 5 > 5.1
    hits = [v for _, v in tree_choices(assistant.clauses(), "一票否决")]
    assert hits == ["8.1 d)"]
    c = assistant.clause("8.1 d)")
    assert standard_citation(c) == "DB1302/T 589—2024 第8.1条 d)"
    assert permalink("8.1 d)") == "?clause=8.1%20d%29"


def test_clause_section_shows_everything_under_a_clause(assistant: Assistant) -> None:
    by_id = assistant.clause_map
    page = clause_section(by_id["8"], by_id)
    for cid in ("8.1", "8.1 a)", "8.1 g)", "8.2"):
        assert standard_citation(by_id[cid]) in page
    assert '<div class="cqo-head">DB1302/T 589—2024 第8章 工作保障</div>' in page
    leaf = clause_section(by_id["8.1 d)"], by_id)
    assert leaf.count("cqo-card") == 1 and "一票否决" in leaf


def test_unknown_clause_note_escapes_and_links() -> None:
    note = unknown_clause_note(XSS, ["8.1 d)"])
    assert XSS not in note and "&lt;img" in note
    assert '<a href="?clause=8.1%20d%29">8.1 d)</a>' in note


def test_feedback_store_and_export(tmp_path: Path, home: Path) -> None:
    store = FeedbackStore(tmp_path)
    store.add("问题一", "回答一", ["5.1 e)"], True, 1, "很好")
    store.add("问题二", "回答二", [], False, -1)
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    buf = io.StringIO()
    assert store.export_csv(buf) == 2
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert rows[0]["question"] == "问题一" and json.loads(rows[0]["cited"]) == ["5.1 e)"]
    assert rows[1]["rating"] == "-1"
    out = tmp_path / "fb.csv"
    env = {**os.environ, "CQO_HOME": str(home), "CQO_DATA_DIR": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-m", "cqo_assistant.cli", "feedback", "export", "--csv", "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0 and "2 rows" in r.stderr
    raw = out.read_bytes()
    assert raw[:3] == b"\xef\xbb\xbf", raw[:8]  # UTF-8 BOM, so Excel reads the Chinese right
    text = raw[3:].decode("utf-8")  # one BOM, then plain UTF-8 (not GBK, not a second BOM)
    assert text.startswith("id,created_at,question,answer,cited,found,rating,comment\r\n")
    assert "问题二".encode() in raw


@pytest.fixture(scope="module")
def app_url(
    assistant: Assistant, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("webdata")
    with running_app(assistant, settings, data) as url:
        yield url, data


@pytest.mark.slow
def test_gradio_client_ask_negative_feedback(app_url: tuple[str, Path]) -> None:
    from gradio_client import Client

    url, data = app_url
    client = Client(url, verbose=False)
    _box, chat, plain = client.predict("首席质量官需要什么学历？", [], api_name="/ask")
    html = chat[-1]["content"][0]["text"]
    assert "第5.1条 e)" in html and "cqo-card" in html
    assert plain.rstrip().endswith("第5.1条 e)")
    _box, chat, _plain = client.predict("首席质量官的工资是多少", chat, api_name="/ask")
    assert "本标准未涉及" in chat[-1]["content"][0]["text"]
    _box, chat, _plain = client.predict(XSS, chat, api_name="/ask")
    assert XSS not in json.dumps(chat, ensure_ascii=False)  # only escaped forms travel
    status = client.predict("有帮助", "引用很清楚", api_name="/feedback")
    assert status.startswith("已记录对「&lt;img") and "<" not in status
    with sqlite3.connect(data / "feedback.sqlite3") as db:
        row = db.execute("SELECT question, cited, rating, comment FROM feedback").fetchall()[-1]
    assert row[0] == XSS and row[2] == 1 and row[3] == "引用很清楚"


@pytest.mark.slow
def test_gradio_client_bad_input(app_url: tuple[str, Path]) -> None:
    from gradio_client import Client

    client = Client(app_url[0], verbose=False)
    _box, chat, _ = client.predict("   ", [], api_name="/ask")
    hint = chat[-1]["content"][0]["text"]  # marked as a hint: the page shows it without 👍/👎
    assert hint == '<div class="cqo-hint">提示：问题为空，请输入一个问题</div>'
    _box, chat, _ = client.predict("问" * 5000, [], api_name="/ask")
    assert "问题太长" in chat[-1]["content"][0]["text"]
    assert client.predict("有帮助", "", api_name="/feedback") == "请先提问，再评价回答。"


def test_feedback_update_keeps_one_row(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    row = store.add("问题", "回答", ["8.1"], True, 1)
    store.update(row, -1)
    store.update(row, -1, "  引用不全  ")
    (only,) = store.rows()
    assert only["rating"] == -1 and only["comment"] == "引用不全"
    with pytest.raises(ValueError):
        store.update(row, 0)


@pytest.mark.slow
def test_gradio_client_follow_up_uses_the_conversation(
    app_url: tuple[str, Path], assistant: Assistant
) -> None:
    from gradio_client import Client

    first, follow = "首席质量官的任职能力有哪些要求？", "具体有哪些？"
    alone = assistant.ask(follow)
    assert not alone.found, "pick a follow-up whose answer depends on the history"
    client = Client(app_url[0], verbose=False)
    _box, chat, _ = client.predict(first, [], api_name="/ask")
    _box, chat, plain = client.predict(follow, chat, api_name="/ask")
    # 5.2 任职能力 and its items a)–d), read from the standard
    assert "第5.2条" in chat[-1]["content"][0]["text"]
    assert plain.rstrip().splitlines()[-1] == "依据：DB1302/T 589—2024 第5.2条", plain
    assert "能运用质量管理的基本原理和方法开展工作" in plain and "文字和口头表达能力" in plain


def _app_env(home: Path) -> dict[str, str]:
    return {**os.environ, "CQO_HOME": str(home), "CQO_DATA_DIR": str(home / "data")}


def _run_app(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(
        [sys.executable, str(root / "app.py"), "--port", "0"],
        capture_output=True, text=True, env=env, timeout=120, cwd=root,
    )  # fmt: skip


@pytest.mark.slow
def test_app_refuses_missing_and_stale_index(tmp_path: Path, home: Path) -> None:
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(home / "corpus", bare / "corpus")
    r = _run_app(_app_env(bare))
    assert r.returncode == 3 and "cqo index" in r.stderr, r.stderr
    stale = tmp_path / "stale"
    shutil.copytree(home, stale)
    corpus = next((stale / "corpus").glob("*.txt"))
    corpus.write_text(corpus.read_text("utf-8") + "\n", "utf-8")
    r = _run_app(_app_env(stale))
    assert r.returncode == 3 and "cqo index" in r.stderr, r.stderr
