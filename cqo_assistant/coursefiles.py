"""Markdown, DOCX (python-docx) and PPTX (python-pptx) writers for the trainer toolkit.

Chinese fonts are set explicitly so Word/WPS/PowerPoint/LibreOffice do not fall back to a
Latin font (boxes): DOCX runs get ``w:eastAsia`` on ``w:rFonts``; PPTX runs get an ``a:ea``
typeface. 宋体 / 微软雅黑 are named for Office; machines without them fall back to their own
CJK font (e.g. WenQuanYi on Linux).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from docx import Document
from docx.oxml.ns import qn
from docx.shared import Pt
from pptx import Presentation
from pptx.oxml.ns import qn as pqn
from pptx.util import Pt as PPt

from .courseware import KIND_NAMES, LETTERS, Module, QuizItem
from .parse import Clause

BODY_FONT = "宋体"
HEAD_FONT = "黑体"
SLIDE_FONT = "微软雅黑"
STD = "DB1302/T 589—2024《企业首席质量官制度实施指南》"


# --- Markdown ------------------------------------------------------------------------------
def outline_md(modules: Sequence[Module]) -> str:
    lines = [f"# 培训大纲：{STD}", ""]
    for i, m in enumerate(modules, 1):
        ch = m.chapter
        lines += [f"## 模块{i}：{ch.number} {ch.title}", "", "**学习目标**", ""]
        lines += [f"- {o}" for o in m.objectives]
        if m.key_terms:
            lines += ["", "**关键词**：" + "、".join(m.key_terms)]
        lines += ["", "**条款**：" + "、".join(c.label for c in m.clauses if not c.is_item), ""]
    return "\n".join(lines)


def _quiz_lines(item: QuizItem, n: int, inline: bool) -> list[str]:
    lines = [f"{n}. 【{KIND_NAMES[item.kind]}】{item.stem}"]
    lines += [f"   {LETTERS[i]}. {o}" for i, o in enumerate(item.options)]
    if inline:
        lines += [f"   **答案**：{item.answer}（依据 {item.clause}）"]
        lines += [f"   > {x}" for x in item.explanation.splitlines()]
    return lines


def quiz_md(bank: Sequence[QuizItem], inline: bool = False) -> str:
    lines = [f"# 题库：{STD}", ""]
    for n, item in enumerate(bank, 1):
        lines += [*_quiz_lines(item, n, inline), ""]
    if not inline:
        lines += ["## 参考答案", ""]
        for n, item in enumerate(bank, 1):
            lines.append(
                f"{n}. {item.answer}（第{item.clause}条：{item.explanation.splitlines()[0]}）"
            )
    return "\n".join(lines) + "\n"


def handout_md(clauses: Sequence[Clause], bank: Sequence[QuizItem] = ()) -> str:
    lines = [f"# 学习讲义：{STD}", ""]
    for c in clauses:
        if c.is_item:
            lines.append(f"- {c.number.split(' ')[-1]} {c.text}")
            continue
        depth = min(4, 2 + c.number.count("."))
        lines += ["", f"{'#' * depth} {c.number} {c.title}".rstrip(), ""]
        if c.text:
            lines.append(c.text)
    if bank:
        lines += ["", quiz_md(bank)]
    return "\n".join(lines).strip() + "\n"


# --- DOCX ----------------------------------------------------------------------------------
def _docx_font(run_or_style_font_element: object, font: str) -> None:
    rpr = run_or_style_font_element.get_or_add_rPr()  # type: ignore[attr-defined]
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = rpr.makeelement(qn("w:rFonts"), {})
        rpr.append(fonts)
    for attr in ("w:ascii", "w:hAnsi", "w:eastAsia"):
        fonts.set(qn(attr), font)


def _new_docx() -> Document:
    doc = Document()
    normal = doc.styles["Normal"]
    normal.font.size = Pt(11)
    _docx_font(normal.element, BODY_FONT)
    for name in ("Title", "Heading 1", "Heading 2", "Heading 3", "Heading 4"):
        _docx_font(doc.styles[name].element, HEAD_FONT)
    return doc


def _para(doc: Document, text: str, style: str | None = None, bold: bool = False) -> None:
    p = doc.add_paragraph(style=style)
    run = p.add_run(text)
    run.bold = bold
    _docx_font(run._r, HEAD_FONT if bold else BODY_FONT)


def _heading(doc: Document, text: str, level: int) -> None:
    h = doc.add_heading(level=level)
    _docx_font(h.add_run(text)._r, HEAD_FONT)


def _save_docx(doc: Document) -> bytes:
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def outline_docx(modules: Sequence[Module]) -> bytes:
    doc = _new_docx()
    _heading(doc, f"培训大纲：{STD}", 0)
    for i, m in enumerate(modules, 1):
        _heading(doc, f"模块{i}：{m.chapter.number} {m.chapter.title}", 1)
        _para(doc, "学习目标", bold=True)
        for o in m.objectives:
            _para(doc, o, style="List Bullet")
        if m.key_terms:
            _para(doc, "关键词：" + "、".join(m.key_terms))
        _para(doc, "条款：" + "、".join(c.label for c in m.clauses if not c.is_item))
    return _save_docx(doc)


def _quiz_docx_into(doc: Document, bank: Sequence[QuizItem], inline: bool) -> None:
    for n, item in enumerate(bank, 1):
        _para(doc, f"{n}. 【{KIND_NAMES[item.kind]}】{item.stem}")
        for i, o in enumerate(item.options):
            _para(doc, f"    {LETTERS[i]}. {o}")
        if inline:
            _para(doc, f"答案：{item.answer}（依据第{item.clause}条）", bold=True)
            _para(doc, f"原文：{item.explanation}")
    if not inline:
        _heading(doc, "参考答案", 1)
        for n, item in enumerate(bank, 1):
            _para(
                doc, f"{n}. {item.answer}（第{item.clause}条：{item.explanation.splitlines()[0]}）"
            )


def quiz_docx(bank: Sequence[QuizItem], inline: bool = False) -> bytes:
    doc = _new_docx()
    _heading(doc, f"题库：{STD}", 0)
    _quiz_docx_into(doc, bank, inline)
    return _save_docx(doc)


def handout_docx(clauses: Sequence[Clause], bank: Sequence[QuizItem] = ()) -> bytes:
    doc = _new_docx()
    _heading(doc, f"学习讲义：{STD}", 0)
    for c in clauses:
        if c.is_item:
            _para(doc, f"{c.number.split(' ')[-1]} {c.text}", style="List Bullet")
            continue
        _heading(doc, f"{c.number} {c.title}".rstrip(), min(3, 1 + c.number.count(".")))
        if c.text:
            _para(doc, c.text)
    if bank:
        _heading(doc, "随堂测验", 1)
        _quiz_docx_into(doc, bank, inline=False)
    return _save_docx(doc)


# --- PPTX ----------------------------------------------------------------------------------
def _pptx_font(run: object, size: int | None = None) -> None:
    font = run.font  # type: ignore[attr-defined]
    font.name = SLIDE_FONT
    if size:
        font.size = PPt(size)
    rpr = run._r.get_or_add_rPr()  # type: ignore[attr-defined]
    ea = rpr.find(pqn("a:ea"))
    if ea is None:
        ea = rpr.makeelement(pqn("a:ea"), {})
        rpr.append(ea)
    ea.set("typeface", SLIDE_FONT)


def _slide(prs: Presentation, title: str, bullets: Sequence[str], notes: str) -> None:
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = title
    for p in slide.shapes.title.text_frame.paragraphs:
        for r in p.runs:
            _pptx_font(r, 28)
    body = slide.placeholders[1].text_frame
    body.clear()
    for i, b in enumerate(bullets):
        para = body.paragraphs[0] if i == 0 else body.add_paragraph()
        _pptx_font(_run(para, b), 16)
    slide.notes_slide.notes_text_frame.text = notes


def _run(para: object, text: str) -> object:
    run = para.add_run()  # type: ignore[attr-defined]
    run.text = text
    return run


def outline_pptx(modules: Sequence[Module]) -> bytes:
    prs = Presentation()
    first = prs.slides.add_slide(prs.slide_layouts[0])
    first.shapes.title.text = "企业首席质量官制度实施指南"
    first.placeholders[1].text = "培训课程 · 依据 DB1302/T 589—2024"
    for shape in (first.shapes.title, first.placeholders[1]):
        for p in shape.text_frame.paragraphs:
            for r in p.runs:
                _pptx_font(r)
    for i, m in enumerate(modules, 1):
        ch = m.chapter
        bullets = [*m.objectives]
        if m.key_terms:
            bullets.append("关键词：" + "、".join(m.key_terms))
        notes = "\n".join(f"{c.label}：{c.text}" for c in m.clauses if c.text)
        _slide(prs, f"模块{i}：{ch.number} {ch.title}", bullets, notes or ch.title)
        by_id = {c.id: c for c in m.clauses}
        for c in m.clauses:  # one slide per key clause: a titled clause under the chapter
            if c.parent and c.title:
                items = [by_id[k] for k in c.children if by_id[k].is_item]
                body = [f"{k.number.split(' ')[-1]} {k.text}" for k in items] or [c.text or c.title]
                notes = "\n".join([c.text, *(k.display_text() for k in items)]).strip()
                _slide(prs, f"{c.label} {c.title}", body, notes or c.title)
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()
