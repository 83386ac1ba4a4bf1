"""Writers for the trainer toolkit: Markdown, JSON, DOCX (python-docx) and PPTX (python-pptx).

Office files set their Chinese fonts explicitly: DOCX runs and styles carry ``w:rFonts`` with
``w:eastAsia`` (宋体 for body text, 黑体 for headings; the theme font attributes that would
override them are removed), PPTX runs carry both ``a:latin`` and ``a:ea`` (微软雅黑). Word, WPS
and PowerPoint have these fonts; LibreOffice substitutes an installed CJK font (here WenQuanYi
Micro Hei) because the East-Asian slot names a CJK font. Set ``CQO_TRAINER_FONT`` to use one
font everywhere (e.g. "WenQuanYi Micro Hei" on a Linux box without Windows fonts).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence

from docx import Document
from docx.enum.text import WD_BREAK
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt, RGBColor
from docx.text.paragraph import Paragraph
from lxml import etree
from pptx import Presentation
from pptx.dml.color import RGBColor as PRGB
from pptx.oxml.ns import qn as pqn
from pptx.util import Emu
from pptx.util import Pt as PPt

from .parse import Clause
from .trainer import KIND_NAMES, KINDS, Corpus, Outline, QuizItem

BODY_FONT = "宋体"  # SimSun
HEAD_FONT = "黑体"  # SimHei
SLIDE_FONT = "微软雅黑"  # Microsoft YaHei
LATIN_BODY = "Times New Roman"
LATIN_HEAD = "Arial"
FALLBACK_FONT = "WenQuanYi Micro Hei"  # what this Linux box has; LibreOffice falls back to it
GREY = RGBColor(0x55, 0x55, 0x55)
CN_NUM = "一二三四五六七八九十"


def _fonts() -> tuple[str, str, str]:
    one = os.environ.get("CQO_TRAINER_FONT", "").strip()
    return (one, one, one) if one else (BODY_FONT, HEAD_FONT, SLIDE_FONT)


def _doc_title(corpus: Corpus) -> str:
    s = corpus.standard
    return f"{s.code}《{s.title}》" if s.title else s.code


def _answer_line(it: QuizItem) -> str:
    return f"答案：{it.answer}　依据：{it.clause_label}"


def _explain_lines(it: QuizItem) -> list[str]:
    lines = [f"原文：{it.explanation}"]
    if it.note:
        lines.append(f"说明：{it.note}")
    return lines


def _by_kind(items: Sequence[QuizItem]) -> list[tuple[str, list[QuizItem]]]:
    return [
        (k, [it for it in items if it.kind == k]) for k in KINDS if any(i.kind == k for i in items)
    ]


def _judge_suffix(it: QuizItem) -> str:
    return "（    ）" if it.kind == "judge" else ""


# ---------------------------------------------------------------------------- Markdown


def _md_quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def quiz_markdown(
    corpus: Corpus, items: Sequence[QuizItem], inline: bool = False, seed: int | None = None
) -> str:
    out = [f"# 题库：{_doc_title(corpus)}", ""]
    meta = f"共 {len(items)} 题" + (f"，随机种子 {seed}" if seed is not None else "")
    out += [meta + "。每题均注明所依据的条款。", ""]
    for i, (kind, group) in enumerate(_by_kind(items)):
        out += [f"## {CN_NUM[i]}、{KIND_NAMES[kind]}", ""]
        for it in group:
            out.append(f"{it.number}. {it.stem}{_judge_suffix(it)}")
            for k, opt in enumerate(it.options):
                out.append(f"   - {'ABCDEFGH'[k]}. {opt}")
            if inline:
                out += ["", f"   **{_answer_line(it)}**", ""]
                out += [
                    "   " + line for line in _md_quote("\n".join(_explain_lines(it))).split("\n")
                ]
            out.append("")
    if not inline:
        out += ["## 答案与解析", ""]
        for it in items:
            out.append(f"{it.number}. **{_answer_line(it)}**")
            out += ["   " + line for line in _md_quote("\n".join(_explain_lines(it))).split("\n")]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def quiz_json(corpus: Corpus, items: Sequence[QuizItem], seed: int | None = None) -> str:
    obj = {
        "standard": corpus.standard.code,
        "title": corpus.standard.title,
        "seed": seed,
        "count": len(items),
        "items": [it.to_json() for it in items],
    }
    return json.dumps(obj, ensure_ascii=False, indent=2) + "\n"


def outline_markdown(corpus: Corpus, outline: Outline) -> str:
    out = [f"# 培训课程提纲：{_doc_title(corpus)}", ""]
    out += [f"共 {len(outline.modules)} 个模块，按标准章节编排；学习目标引自条款原文。", ""]
    for m in outline.modules:
        out += [f"## 模块{m.number}　{m.title}", "", "**学习目标**", ""]
        for k, ob in enumerate(m.objectives, 1):
            out.append(f"{k}. {ob.text}")
        out.append("")
        if m.key_terms:
            out += ["**关键术语**：" + "、".join(m.key_terms), ""]
        refs = [corpus.heading(corpus.by_id[c]) for c in m.key_clauses]
        out += ["**条款**：" + "；".join(refs), ""]
    return "\n".join(out).rstrip() + "\n"


def _md_clause(corpus: Corpus, c: Clause) -> list[str]:
    if c.is_item:
        return [f"- {c.display_text()}"]
    depth = 1 if c.parent is None else c.number.count(".") + 1
    head = c.number if c.number in ("前言", "引言") else f"{c.number} {c.title}".strip()
    out = [f"{'#' * min(depth + 1, 4)} {head}", ""]
    if c.text:
        out += [p for para in c.text.splitlines() for p in (para, "")]
    return out


def handout_markdown(
    corpus: Corpus, clauses: Sequence[Clause], items: Sequence[QuizItem] = ()
) -> str:
    out = [f"# 培训讲义：{_doc_title(corpus)}", ""]
    refs = "、".join(
        c.label for c in clauses if c.parent is None or c.parent not in {x.id for x in clauses}
    )
    out += [f"内容：{refs}（条款原文）", ""]
    prev_item = False
    for c in clauses:
        if prev_item and not c.is_item:
            out.append("")
        out += _md_clause(corpus, c)
        prev_item = c.is_item
    out.append("")
    if items:
        out.append("---")
        out.append("")
        quiz = quiz_markdown(corpus, items, inline=False).splitlines()
        out += ["## 随堂练习", ""] + [
            ("#" + line if line.startswith("## ") else line) for line in quiz[3:]
        ]
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------- DOCX


def _rfonts(rpr: OxmlElement, east_asia: str, latin: str) -> None:
    rfonts = rpr.find(qn("w:rFonts"))
    if rfonts is None:
        rfonts = OxmlElement("w:rFonts")
        rpr.insert(0, rfonts)
    for attr in ("w:asciiTheme", "w:hAnsiTheme", "w:eastAsiaTheme", "w:cstheme"):
        rfonts.attrib.pop(qn(attr), None)
    rfonts.set(qn("w:ascii"), latin)
    rfonts.set(qn("w:hAnsi"), latin)
    rfonts.set(qn("w:eastAsia"), east_asia)
    rfonts.set(qn("w:cs"), latin)
    rfonts.set(qn("w:hint"), "eastAsia")


def _font_table(doc: Document, names: Sequence[str]) -> None:
    """Declare the CJK fonts with charset GB2312 and the installed fallback as altName."""
    parts = [r.target_part for r in doc.part.rels.values() if r.reltype.endswith("/fontTable")]
    if not parts:
        return
    part = parts[0]
    root = etree.fromstring(part.blob)
    have = {f.get(qn("w:name")) for f in root.findall(qn("w:font"))}
    for name in names:
        if name in have:
            continue
        f = OxmlElement("w:font")
        f.set(qn("w:name"), name)
        alt = OxmlElement("w:altName")
        alt.set(qn("w:val"), FALLBACK_FONT)
        cs = OxmlElement("w:charset")
        cs.set(qn("w:val"), "86")
        f.append(alt)
        f.append(cs)
        root.append(f)
    part._blob = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _new_docx() -> Document:
    body, head, _ = _fonts()
    doc = Document()
    sec = doc.sections[0]
    sec.page_height, sec.page_width = Cm(29.7), Cm(21.0)
    sec.left_margin = sec.right_margin = Cm(2.5)
    sec.top_margin = sec.bottom_margin = Cm(2.2)
    styles = doc.styles
    normal = styles["Normal"]
    normal.font.size = Pt(11)
    _rfonts(normal.element.get_or_add_rPr(), body, LATIN_BODY)
    normal.paragraph_format.space_after = Pt(4)
    normal.paragraph_format.line_spacing = 1.3
    for name, size in (("Title", 20), ("Heading 1", 16), ("Heading 2", 13.5), ("Heading 3", 12)):
        st = styles[name]
        st.font.size = Pt(size)
        st.font.bold = True
        st.font.color.rgb = RGBColor(0, 0, 0)
        _rfonts(st.element.get_or_add_rPr(), head, LATIN_HEAD)
    for name in ("List Number", "List Bullet"):
        _rfonts(styles[name].element.get_or_add_rPr(), body, LATIN_BODY)
    # the document defaults (docDefaults) too, so table cells and new styles inherit CJK fonts
    defaults = doc.styles.element.find(qn("w:docDefaults"))
    if defaults is not None:
        rpr = defaults.find(qn("w:rPrDefault") + "/" + qn("w:rPr"))
        if rpr is not None:
            _rfonts(rpr, body, LATIN_BODY)
    _font_table(doc, sorted({body, head}))
    return doc


def _para(doc: Document, text: str, style: str | None = None, **fmt: object) -> Paragraph:
    body, head, _ = _fonts()
    p = doc.add_paragraph(style=style)
    run = p.add_run(text)
    is_head = bool(style) and (style.startswith("Heading") or style == "Title")
    _rfonts(
        run._r.get_or_add_rPr(), head if is_head else body, LATIN_HEAD if is_head else LATIN_BODY
    )
    if fmt.get("bold"):
        run.bold = True
    if fmt.get("grey"):
        run.font.color.rgb = GREY
        run.font.size = Pt(10)
    if "indent" in fmt:
        p.paragraph_format.left_indent = Cm(float(fmt["indent"]))  # type: ignore[arg-type]
    if "hanging" in fmt:
        p.paragraph_format.left_indent = Cm(float(fmt["hanging"]))  # type: ignore[arg-type]
        p.paragraph_format.first_line_indent = -Cm(float(fmt["hanging"]))  # type: ignore[arg-type]
    return p


def _heading(doc: Document, text: str, level: int) -> Paragraph:
    return _para(doc, text, "Title" if level == 0 else f"Heading {level}")


def _save(doc: Document) -> bytes:
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def _docx_quiz_body(doc: Document, items: Sequence[QuizItem], inline: bool, level: int) -> None:
    for i, (kind, group) in enumerate(_by_kind(items)):
        _heading(doc, f"{CN_NUM[i]}、{KIND_NAMES[kind]}", level)
        for it in group:
            _para(doc, f"{it.number}. {it.stem}{_judge_suffix(it)}", hanging=0.7)
            for k, opt in enumerate(it.options):
                p = _para(doc, f"{'ABCDEFGH'[k]}. {opt}", hanging=0.6)
                p.paragraph_format.left_indent = Cm(1.3)
            if inline:
                _para(doc, _answer_line(it), bold=True, indent=0.8)
                for line in _explain_lines(it):
                    _para(doc, line, grey=True, indent=0.8)
    if not inline:
        doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
        _heading(doc, "答案与解析", level)
        for it in items:
            _para(doc, f"{it.number}. {_answer_line(it)}", bold=True)
            for line in _explain_lines(it):
                _para(doc, line, grey=True, indent=0.8)


def quiz_docx(
    corpus: Corpus, items: Sequence[QuizItem], inline: bool = False, seed: int | None = None
) -> bytes:
    doc = _new_docx()
    _heading(doc, "首席质量官培训题库", 0)
    meta = f"依据 {_doc_title(corpus)}；共 {len(items)} 题"
    _para(doc, meta + (f"，随机种子 {seed}" if seed is not None else ""))
    _docx_quiz_body(doc, items, inline, 1)
    return _save(doc)


def outline_docx(corpus: Corpus, outline: Outline) -> bytes:
    doc = _new_docx()
    _heading(doc, "首席质量官培训课程提纲", 0)
    _para(
        doc, f"依据 {_doc_title(corpus)}；共 {len(outline.modules)} 个模块，学习目标引自条款原文。"
    )
    for m in outline.modules:
        _heading(doc, f"模块{m.number}　{m.title}", 1)
        _heading(doc, "学习目标", 2)
        for k, ob in enumerate(m.objectives, 1):
            _para(doc, f"{k}. {ob.text}", hanging=0.6)
        if m.key_terms:
            _heading(doc, "关键术语", 2)
            _para(doc, "、".join(m.key_terms))
        _heading(doc, "条款", 2)
        _para(doc, "；".join(corpus.heading(corpus.by_id[c]) for c in m.key_clauses))
    return _save(doc)


def handout_docx(
    corpus: Corpus, clauses: Sequence[Clause], items: Sequence[QuizItem] = ()
) -> bytes:
    doc = _new_docx()
    _heading(doc, "首席质量官培训讲义", 0)
    _para(doc, f"依据 {_doc_title(corpus)}（条款原文）", grey=True)
    for c in clauses:
        if c.is_item:
            _para(doc, c.display_text(), hanging=0.8)
            continue
        level = 1 if c.parent is None else min(3, c.number.count(".") + 1)
        head = c.number if c.number in ("前言", "引言") else f"{c.number} {c.title}".strip()
        _heading(doc, head, level)
        for para in c.text.splitlines():
            _para(doc, para)
    if items:
        doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
        _heading(doc, "随堂练习", 1)
        _docx_quiz_body(doc, items, inline=False, level=2)
    return _save(doc)


# ---------------------------------------------------------------------------- PPTX

SLIDE_W, SLIDE_H = Emu(12192000), Emu(6858000)  # 16:9


def _ea_run(run: object, size: float, bold: bool = False, color: PRGB | None = None) -> None:
    _, _, font = _fonts()
    f = run.font  # type: ignore[attr-defined]
    f.size = PPt(size)
    f.bold = bold
    f.name = font  # a:latin
    if color is not None:
        f.color.rgb = color
    rpr = run._r.get_or_add_rPr()  # type: ignore[attr-defined]
    for tag in ("a:ea", "a:cs"):
        el = rpr.find(pqn(tag))
        if el is None:
            el = rpr.makeelement(pqn(tag), {})
            latin = rpr.find(pqn("a:latin"))
            latin.addnext(el) if tag == "a:ea" else rpr.find(pqn("a:ea")).addnext(el)
        el.set("typeface", font)


BODY_W_PT = (SLIDE_W - Emu(914400)) / 12700  # text box width in points
BODY_H_PT = (SLIDE_H - Emu(1600200)) / 12700 - 20
PLAIN, BOLD, BULLET, ITEM = 0, 1, 2, 3  # body line styles


def _fit(lines: Sequence[tuple[str, int]]) -> float:
    """The largest font size at which the body stays inside the slide: LibreOffice does not
    apply PowerPoint's autofit, so the wrap is estimated (a CJK character is about 1 em wide)."""
    for size in (28, 26, 24, 22, 20, 18, 16, 15, 14, 13, 12, 11):
        per_line = max(1.0, BODY_W_PT / size - 3)
        rows = sum(-(-(len(t) + 2) // int(per_line)) for t, _ in lines)
        if rows * size * 1.25 + len(lines) * size * 0.35 <= BODY_H_PT:
            return size
    return 10


def _slide(prs: Presentation, title: str, lines: Sequence[tuple[str, int]], notes: str) -> None:
    """A slide with a title, body lines (text, style) and speaker notes."""
    s = prs.slides.add_slide(prs.slide_layouts[5])  # Title Only
    s.shapes.title.text_frame.text = title
    for para in s.shapes.title.text_frame.paragraphs:
        for r in para.runs:
            _ea_run(r, 28 if len(title) < 24 else 22, bold=True, color=PRGB(0x1F, 0x3A, 0x5F))
    s.shapes.title.left, s.shapes.title.top = Emu(457200), Emu(228600)
    s.shapes.title.width, s.shapes.title.height = SLIDE_W - Emu(914400), Emu(914400)
    box = s.shapes.add_textbox(
        Emu(457200), Emu(1257300), SLIDE_W - Emu(914400), SLIDE_H - Emu(1600200)
    )
    tf = box.text_frame
    tf.word_wrap = True
    size = _fit(lines)
    for k, (text, style) in enumerate(lines):
        p = tf.paragraphs[0] if k == 0 else tf.add_paragraph()
        p.space_after = PPt(size * 0.35)
        if style in (BULLET, ITEM):  # hanging indent: wrapped lines align with the text
            ppr = p._p.get_or_add_pPr()
            ppr.set("marL", str(int(size * 12700 * (1.2 if style == BULLET else 2.6))))
            ppr.set("indent", str(int(-size * 12700 * (1.2 if style == BULLET else 1.6))))
        run = p.add_run()
        run.text = ("• " + text) if style == BULLET else text
        _ea_run(run, size, bold=style == BOLD)
    s.notes_slide.notes_text_frame.text = notes
    for para in s.notes_slide.notes_text_frame.paragraphs:
        for r in para.runs:
            _ea_run(r, 12)


def _slide_groups(corpus: Corpus, ids: Sequence[str]) -> list[list[Clause]]:
    """Key clauses per slide: a clause with a list alone; short siblings (4.1–4.4) together."""
    groups: list[list[Clause]] = []
    for cid in ids:
        c = corpus.by_id[cid]
        short = not c.children and len(c.text) <= 70 and c.parent is not None
        last = groups[-1] if groups else None
        if (
            short
            and last
            and len(last) < 7
            and all(not x.children and len(x.text) <= 70 for x in last)
            and last[0].parent == c.parent
        ):
            last.append(c)
        else:
            groups.append([c])
    return groups


def outline_pptx(corpus: Corpus, outline: Outline) -> bytes:
    prs = Presentation()
    prs.slide_width, prs.slide_height = SLIDE_W, SLIDE_H
    std = corpus.standard
    _slide(
        prs,
        "企业首席质量官制度培训",
        [(_doc_title(corpus), BOLD), ("课程模块：", PLAIN)]
        + [(f"模块{m.number}　{m.title}", BULLET) for m in outline.modules],
        f"本课程依据 {std.code}《{std.title}》编排，每个模块对应标准的一章，条款原文见各页备注。",
    )
    for m in outline.modules:
        lines: list[tuple[str, int]] = [("学习目标", BOLD)]
        lines += [(ob.text, BULLET) for ob in m.objectives]
        if m.key_terms:
            lines += [("关键术语", BOLD), ("、".join(m.key_terms), PLAIN)]
        refs = "；".join(corpus.heading(corpus.by_id[c]) for c in m.key_clauses)
        notes = f"{m.title}\n条款：{refs}\n" + "\n".join(
            f"{corpus.heading(corpus.by_id[c])}：{corpus.full_text(corpus.by_id[c])}"
            for c in m.key_clauses
            if corpus.full_text(corpus.by_id[c])
        )
        _slide(prs, f"模块{m.number}　{m.title}", lines, notes)
        for group in _slide_groups(corpus, m.key_clauses):
            if len(group) == 1:
                c = group[0]
                title = corpus.heading(c)
                has_items = any(corpus.by_id[x].is_item for x in c.children)
                lines = [(para, BOLD if has_items else PLAIN) for para in c.text.splitlines()]
                for cid in c.children:
                    ch = corpus.by_id[cid]
                    if ch.is_item:
                        lines.append((ch.display_text(), ITEM))
            else:
                first, last = group[0], group[-1]
                parent = corpus.by_id[first.parent] if first.parent else first
                title = f"{corpus.heading(parent)}（{first.number}–{last.number}）"
                lines = [(f"{c.number}　{c.text}", ITEM) for c in group]
            notes = "\n".join(
                f"{corpus.heading(c)}：\n{corpus.full_text(c)}\n依据：{std.code} {c.label}"
                for c in group
            )
            if not any(t for t, _ in lines):
                lines = [(corpus.heading(group[0]), PLAIN)]
            _slide(prs, title, lines, notes)
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()
