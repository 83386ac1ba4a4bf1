"""The Gradio web chat: rendering (pure, testable without a browser) and ``build_ui``.

Safety rule: every piece of text that reaches the page — the user's question, clause text,
answer text — goes through ``html.escape`` first; only our own tags (cards, ``<mark>``) are
added afterwards. A question like ``<img src=x onerror=alert(1)>`` is therefore shown as text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

import gradio as gr

from .answer import CLOSEST, Answer
from .api import Assistant, check_question
from .chat_feedback import FeedbackStore
from .errors import FeedbackError, InputError
from .parse import Clause
from .settings import Settings
from .trainer_ui import add_training_tab

EXAMPLES = [
    "首席质量官需要什么学历？",
    "首席质量官有哪些职权？",
    "老板让我当质量官，要啥条件？",
    "我们公司出了重大质量事故，质量官会被撤吗？",
    "质量工作经费由谁统一调度？",
    "这个标准是谁起草的？",
]

CSS = """
.cqo-answer { line-height: 1.6; }
.cqo-card { border: 1px solid #d0d7de; border-left: 4px solid #2f6fde; border-radius: 8px;
  padding: 8px 10px; margin: 8px 0; background: #fafcff; overflow-wrap: anywhere; }
.cqo-card.related { border-left-color: #9aa4b2; background: #f7f7f8; }
.cqo-closest { font-weight: 600; color: #8a5a00; }
.cqo-card .cqo-id { font-weight: 600; color: #1f4fa8; }
.cqo-card .cqo-path { font-size: 0.85em; color: #57606a; margin: 2px 0 4px; }
.cqo-card .cqo-text { white-space: pre-wrap; }
.cqo-card mark { background: #fff3b0; padding: 0 1px; }
.cqo-none { display: inline-block; font-weight: 600; color: #8a4500; background: #fff1e0;
  border: 1px solid #f0c48a; border-radius: 6px; padding: 1px 8px; margin-bottom: 4px; }
.cqo-basis { font-size: 0.9em; color: #57606a; margin-top: 4px; }
.cqo-sub { margin-left: 12px; }
.cqo-head { font-weight: 600; color: #1f4fa8; margin: 10px 0 4px; }
.cqo-hint { color: #57606a; padding: 8px 0; }
.cqo-welcome { color: #57606a; text-align: center; line-height: 1.6; }
/* a hint ("问题为空…") is not an answer: no 👍/👎 under it */
#cqo-chat .message-row:has(.cqo-hint) + .message-buttons button[aria-label="Like"],
#cqo-chat .message-row:has(.cqo-hint) + .message-buttons button[aria-label="Dislike"] {
  display: none; }
#cqo-tree .wrap { flex-direction: column; flex-wrap: nowrap; gap: 2px; max-height: 70vh;
  overflow-y: auto; }
#cqo-tree .wrap label { width: 100%; margin: 0; }
@media (max-width: 640px) {  /* phones: give the clause text the width */
  #cqo-chat .message-row.bot-row { margin-left: 2px; margin-right: 2px; max-width: 100%; }
  #cqo-chat .message-row.user-row { margin-right: 2px; }
  #cqo-chat .message-row .bot.message { padding: 6px; }
  .cqo-card { padding: 6px 8px; margin: 6px 0; }
  .cqo-card .cqo-id { font-size: 0.95em; }
  #cqo-detail { order: -1; }  /* on a phone the clause text comes before the long tree */
  #cqo-tree .wrap { max-height: 50vh; }
  #cqo-header h2 { font-size: 1.25em; margin-bottom: 4px; }
  #cqo-chat { max-height: 55vh !important; }  /* the question box stays on the first screen */
}
"""


def standard_citation(clause: Clause) -> str:
    """The copyable citation: "DB1302/T 589—2024 第8.1条 d)"."""
    return f"{clause.standard} {clause.label}"


def highlight(text: str, terms: Iterable[str]) -> str:
    """Escape ``text`` and wrap occurrences of ``terms`` in <mark> (longest first)."""
    safe = html.escape(text)
    words = sorted({html.escape(t) for t in terms if len(t) >= 2}, key=len, reverse=True)
    if not words:
        return safe
    pattern = re.compile("|".join(re.escape(w) for w in words))
    return pattern.sub(lambda m: f"<mark>{m.group(0)}</mark>", safe)


def clause_card(clause: Clause, terms: Iterable[str] = (), related: bool = False) -> str:
    body = clause.display_text() if clause.text else clause.quote_text
    return (
        f'<div class="cqo-card{" related" if related else ""}">'
        f'<div class="cqo-id">{html.escape(standard_citation(clause))}</div>'
        f'<div class="cqo-path">{html.escape(clause.path_str)}</div>'
        f'<div class="cqo-text">{highlight(body, terms)}</div></div>'
    )


def render_answer(ans: Answer, clauses: dict[str, Clause], terms: Sequence[str] = ()) -> str:
    """The assistant's chat message: short answer, then one card per cited clause."""
    if ans.coverage == CLOSEST:
        near = [clauses[c.clause] for c in ans.related]
        best = clause_card(near[0], terms) if near else ""
        more = "".join(clause_card(c, terms, related=True) for c in near[1:])
        return (
            '<div class="cqo-answer"><div class="cqo-closest">标准没有直接回答这个问题</div>'
            f"<div>最接近的规定是（请结合实际情况判断）：</div>{best}"
            + (f"<div>其他相关条款：</div>{more}" if more else "")
            + "</div>"
        )
    if not ans.found:
        near = [clauses[c.clause] for c in ans.related]
        cards = "".join(clause_card(c, terms, related=True) for c in near)
        std = html.escape(near[0].standard) if near else "本标准"
        return (
            '<div class="cqo-answer"><div class="cqo-none">本标准未涉及</div>'
            f"<div>{std} 中没有回答这个问题的条款，无法依据本标准回答。</div>"
            + (f"<div>最接近的条款（仅供参考）：</div>{cards}" if cards else "")
            + "</div>"
        )
    lead = [clauses[x.clause] for x in ans.citations]
    summary = "、".join(c.label for c in lead)
    cards = "".join(clause_card(c, terms) for c in lead)
    items = "".join(
        clause_card(clauses[k], terms)
        for c in lead
        for k in c.children
        if clauses[k].is_item or not c.text
    )
    basis = ans.text.splitlines()[-1]
    return (
        f'<div class="cqo-answer"><div>根据标准，答案见{html.escape(summary)}：</div>'
        f"{cards}{items}"
        f'<div class="cqo-basis">{html.escape(basis)}</div></div>'
    )


def clause_section(clause: Clause, clauses: dict[str, Clause]) -> str:
    """A clause and everything under it (a chapter with its clauses, a list with its items)."""
    subs = "".join(clause_section(clauses[k], clauses) for k in clause.children)
    if clause.text or not subs:
        head = clause_card(clause)
    else:  # a bare heading: its title once, then what is under it
        title = html.escape(f"{standard_citation(clause)} {clause.title}".strip())
        head = f'<div class="cqo-head">{title}</div>'
    return head + (f'<div class="cqo-sub">{subs}</div>' if subs else "")


def unknown_clause_note(asked: str, nearest: Sequence[str]) -> str:
    """For a permalink to a clause that does not exist: say so, link the nearest ids."""
    links = "、".join(
        f'<a href="{html.escape(permalink(c))}">{html.escape(c)}</a>' for c in nearest
    )
    return (
        f'<div class="cqo-hint">没有条款“{html.escape(asked)}”。'
        + (f"相近条款：{links}" if links else "")
        + "</div>"
    )


def tree_choices(clauses: Sequence[Clause], keyword: str = "") -> list[tuple[str, str]]:
    """(label, id) for the clause tree, indented by depth, filtered by a keyword."""
    kw = keyword.strip().lower()
    out = []
    for c in clauses:
        if kw and kw not in f"{c.id} {c.title} {c.text}".lower():
            continue
        depth = len(c.path) - 1
        name = c.title or (c.text[:24] + ("…" if len(c.text) > 24 else ""))
        out.append((f"{'　' * depth}{c.number} {name}".rstrip(), c.id))
    return out


WELCOME = (
    '<div class="cqo-welcome">你好！请提问关于《企业首席质量官制度实施指南》的问题，'
    "回答会注明依据的条款。</div>"
)


def hint_message(note: str) -> dict[str, str]:
    """A chat message for a rejected question: its own bubble, marked so it gets no 👍/👎."""
    return {"role": "assistant", "content": f'<div class="cqo-hint">{html.escape(note)}</div>'}


def theme() -> Any:
    """Gradio's default theme with whole fonts for bold text.

    The default theme declares Source Sans Pro and IBM Plex Mono at weight 600 from the
    ``*-SemiBold.woff2`` files Gradio ships, and those are subsets of a few glyphs (5 KB against
    103 KB for Regular): bold text took "B" from the subset, where it is a small capital, and
    every other letter from the system's fallback font, so "DB1302" showed as "Dʙ1302". Declaring
    400 and 700 only makes weight 600 use the complete Bold files."""
    sans = gr.themes.LocalFont("Source Sans Pro", weights=(400, 700))
    mono = gr.themes.LocalFont("IBM Plex Mono", weights=(400, 700))
    return gr.themes.Default(
        font=(sans, "ui-sans-serif", "system-ui", "sans-serif"),
        font_mono=(mono, "ui-monospace", "Consolas", "monospace"),
    )


# Plain words, no emoji: the page must read right on machines without an emoji font.
RATINGS = {"有帮助": 1, "没帮助": -1}
BROWSE_HINT = '<div class="cqo-hint">点击条款目录中的条款，查看原文、引用和链接。</div>'


MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def md_text(text: str) -> str:
    """``text`` for a gr.Markdown, shown literally: no HTML, no Markdown syntax."""
    return MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def _short(text: str, n: int = 20) -> str:
    """The start of a user's question, safe to put in a Markdown status line."""
    text = " ".join(text.split())
    return md_text(text if len(text) <= n else text[:n] + "…")


def permalink(clause_id: str) -> str:
    return f"?clause={quote(clause_id)}"


# --- the app ---------------------------------------------------------------------------------
def build_ui(assistant: Assistant, settings: Settings, store: FeedbackStore | None = None) -> Any:
    store = store or FeedbackStore(settings.data_dir)
    clauses = assistant.clauses()
    by_id = assistant.clause_map

    def terms_for(question: str) -> list[str]:
        """Words to highlight: the question's own, minus those every clause shares."""
        generic = assistant.retriever.generic
        tokens = assistant.retriever.query_tokens(question)
        return [t for t in tokens if len(t) >= 2 and t not in generic]

    def respond(message: str, chat: list, records: list) -> tuple[str, list, list, str, None]:
        chat, records = list(chat or []), list(records or [])
        try:
            q = check_question(message, settings.max_question_chars)
        except InputError as e:
            note = e.chinese
            if (message or "").strip():
                chat.append({"role": "user", "content": html.escape(message[:200]) + "…"})
            chat.append(hint_message(f"提示：{note}"))
            return message if len(message or "") <= 20_000 else "", chat, records, "", None
        ans = assistant.ask(q, history=[r["question"] for r in records])
        chat.append({"role": "user", "content": html.escape(q)})
        chat.append({"role": "assistant", "content": render_answer(ans, by_id, terms_for(q))})
        records.append(
            {
                "question": q,
                "answer": ans.text,
                "cited": [c.clause for c in ans.citations],
                "found": ans.found,
                "msg": len(chat) - 1,  # the answer's position in the chat (for 👍/👎)
                "row": None,  # its feedback row, once rated
            }
        )
        return "", chat, records, ans.text, None  # the feedback form follows the new answer

    def rate(records: list, pos: int, rating: int, comment: str | None = None) -> None:
        """One feedback row per answer: the first rating inserts it, later ones update it."""
        r = records[pos]
        if r.get("row"):
            store.update(r["row"], rating, comment)
        else:
            r["row"] = store.add(
                r["question"], r["answer"], r["cited"], r["found"], rating, comment or ""
            )

    def save_feedback(records: list, target: int | None, rating: str, comment: str) -> tuple:
        records = list(records or [])
        if not records:
            return "请先提问，再评价回答。", records
        if rating not in RATINGS:
            return "请选择“有帮助”或“没帮助”。", records
        pos = target if target is not None and target < len(records) else len(records) - 1
        try:
            rate(records, pos, RATINGS[rating], comment)
        except FeedbackError as e:  # disk full, read-only data folder: say so, keep the chat
            return e.chinese, records
        return f"已记录对「{_short(records[pos]['question'])}」的评价，谢谢反馈！", records

    def on_like(records: list, data: gr.LikeData) -> tuple:
        records = list(records or [])
        idx = data.index[0] if isinstance(data.index, list | tuple) else data.index
        pos = next((i for i, r in enumerate(records) if r["msg"] == int(idx)), None)
        if pos is None or not isinstance(data.liked, bool):
            return "这条消息无需评价。", records, gr.update(), gr.update()
        rating = 1 if data.liked else -1
        try:
            rate(records, pos, rating)
        except FeedbackError as e:
            return e.chinese, records, gr.update(), gr.update()
        label = next(k for k, v in RATINGS.items() if v == rating)
        note = (
            f"已记录：「{_short(records[pos]['question'])}」的回答{label}，谢谢！"
            "可在“对回答的评价”中补充意见。"
        )
        return note, records, pos, gr.update(value=label)

    def clear_chat() -> tuple[list, None, str, str, Any]:
        """The chat's trash button: forget the questions (follow-up context) and the
        like→answer mapping along with the messages."""
        return [], None, "", "", gr.update(value=None)

    def show_clause(clause_id: str | None) -> tuple[str, str, str]:
        if not clause_id or clause_id not in by_id:
            return BROWSE_HINT, "", ""
        c = by_id[clause_id]
        link = f"[本条链接]({permalink(c.id)})"
        return clause_section(c, by_id), standard_citation(c), link

    def filter_tree(keyword: str) -> Any:
        found = tree_choices(clauses, keyword)
        label = f"条款目录（{len(found)} 条）" if keyword.strip() else "条款目录"
        if keyword.strip() and not found:
            label = "条款目录：没有包含该关键词的条款"
        return gr.update(choices=found, value=None, label=label)

    def on_load(request: gr.Request) -> tuple[Any, Any, str, str, str]:
        """A permalink (``?clause=8.1%20d)``) opens 浏览标准 on that clause."""
        asked = request.query_params.get("clause", "")
        if not asked:
            return gr.update(), gr.update(), BROWSE_HINT, "", ""
        try:
            cid = assistant.clause(asked).id
        except InputError as e:
            note = unknown_clause_note(asked, getattr(e, "nearest", []))
            return gr.update(selected="browse"), gr.update(), note, "", ""
        card, cite, link = show_clause(cid)
        return gr.update(selected="browse"), gr.update(value=cid), card, cite, link

    with gr.Blocks(title="首席质量官制度实施指南 问答") as demo:
        gr.Markdown(
            "## 企业首席质量官制度实施指南 问答助手\n"
            "依据 DB1302/T 589—2024《企业首席质量官制度实施指南》作答，每个回答注明条款出处；"
            "标准未涉及的问题会如实说明。",
            elem_id="cqo-header",
        )
        records = gr.State([])
        target = gr.State(None)  # the answer the feedback form is about (None: the latest)
        with gr.Tabs(elem_id="cqo-tabs") as tabs:
            with gr.Tab("问答", id="chat"):
                chat = gr.Chatbot(
                    label="对话",
                    show_label=False,  # the floating label covered the first message
                    height=None,  # as tall as the messages, up to max_height, then it scrolls
                    min_height=120,
                    max_height="65vh",
                    placeholder=WELCOME,
                    group_consecutive_messages=False,  # a hint is not part of the answer above
                    buttons=["copy"],
                    sanitize_html=True,
                    render_markdown=False,
                    elem_id="cqo-chat",
                )
                with gr.Row():
                    box = gr.Textbox(
                        placeholder="输入问题，例如：首席质量官需要什么学历？",
                        show_label=False,
                        max_lines=4,  # a long question scrolls inside the box
                        scale=5,
                        elem_id="cqo-question",
                    )
                    send = gr.Button("提问", variant="primary", scale=1, elem_id="cqo-send")
                examples = gr.Examples(EXAMPLES, inputs=box, label="试试这些问题")
                plain = gr.Textbox(
                    label="最近一次回答（纯文本，可复制）",
                    lines=3,
                    interactive=False,
                    buttons=["copy"],
                )
                fb_status = gr.Markdown(elem_id="cqo-feedback-status")
                with gr.Accordion(
                    "对回答的评价（最近一次回答，或刚点过赞/踩的回答）",
                    open=False,
                    elem_id="cqo-feedback",
                ):
                    rating = gr.Radio(
                        list(RATINGS), label="这个回答有帮助吗？", elem_id="cqo-rating"
                    )
                    comment = gr.Textbox(
                        label="意见（可选）", max_length=2000, elem_id="cqo-comment"
                    )
                    fb_btn = gr.Button("提交评价", elem_id="cqo-feedback-send")
                outs = [box, chat, records, plain, target]
                send.click(respond, [box, chat, records], outs, api_name="ask")
                box.submit(respond, [box, chat, records], outs, api_name=False)
                examples.load_input_event.then(
                    respond, [box, chat, records], outs, api_name=False
                )  # clicking an example asks it
                chat.clear(
                    clear_chat, None, [records, target, plain, fb_status, rating], api_name=False
                )
                fb_btn.click(
                    save_feedback,
                    [records, target, rating, comment],
                    [fb_status, records],
                    api_name="feedback",
                )
                chat.like(on_like, [records], [fb_status, records, target, rating], api_name=False)
            with gr.Tab("浏览标准", id="browse"):
                kw = gr.Textbox(label="按关键词筛选条款", placeholder="如：经费、一票否决、5.1")
                with gr.Row():
                    tree = gr.Radio(
                        tree_choices(clauses), label="条款目录", scale=2, elem_id="cqo-tree"
                    )
                    with gr.Column(scale=3, elem_id="cqo-detail"):
                        cite = gr.Textbox(
                            label="引用（可复制）",
                            interactive=False,
                            buttons=["copy"],
                            elem_id="cqo-citation",
                        )
                        link = gr.Markdown(elem_id="cqo-permalink")
                        card = gr.HTML(BROWSE_HINT, elem_id="cqo-clause")
                kw.change(filter_tree, kw, tree, api_name=False)
                tree.change(show_clause, tree, [card, cite, link], api_name="clause")
            add_training_tab(settings)
        demo.load(on_load, None, [tabs, tree, card, cite, link], api_name=False)
    return demo


def launch(
    demo: Any, host: str = "127.0.0.1", port: int = 7860, share: bool = False, block: bool = True
) -> None:
    """Start the app; ``app.py`` and the tests use the same options."""
    demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        css=CSS,
        theme=theme(),
        footer_links=[],
        prevent_thread_lock=not block,
        quiet=not block,
    )
