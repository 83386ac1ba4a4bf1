"""PPTX (python-pptx): the course outline as slides.

A cover, then per module a module slide (goals, key terms, suggested time — no clause text,
so it never repeats the slides after it) and one slide per section with the verbatim clause
text and, in the speaker notes, the text with its citation. Each layout has one body font size;
a section too long for its slide continues on a "（续）" slide. Bullets are paragraph bullets;
every slide but the cover carries its number; a section too short for a slide of its own
(the reference list of chapter 2) is shown on its module slide. Runs carry both ``a:latin``
and ``a:ea`` (微软雅黑) so LibreOffice and PowerPoint pick a CJK font.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree
from pptx import Presentation
from pptx.dml.color import RGBColor
from pptx.oxml.ns import qn
from pptx.util import Emu, Pt

from ..model import Module, Outline, Section
from .fonts import fonts

SLIDE_W, SLIDE_H = Emu(12192000), Emu(6858000)  # 16:9, 13.333 × 7.5 in
INCH = 914400
MARGIN = Emu(INCH // 2)
BODY_TOP = Emu(int(1.35 * INCH))
BODY_H = Emu(int(5.35 * INCH))
TITLE_SIZE = 28
# One body size per layout.
BODY_SIZE = {"cover": 18, "module": 18, "clause": 20}
NEAR_EMPTY = 30  # a section with fewer characters joins its module slide
PLAIN, BOLD, BULLET, ITEM = 0, 1, 2, 3  # body line styles
NAVY = RGBColor(0x1F, 0x3A, 0x5F)

Line = tuple[str, int]


@dataclass(frozen=True)
class SlideSpec:
    title: str
    layout: str
    lines: tuple[Line, ...]
    notes: str


def _font(run: object, size: float, bold: bool = False, color: RGBColor | None = None) -> None:
    _, _, font = fonts()
    f = run.font  # type: ignore[attr-defined]
    f.size = Pt(size)
    f.bold = bold
    f.name = font  # a:latin
    if color is not None:
        f.color.rgb = color
    rpr = run._r.get_or_add_rPr()  # type: ignore[attr-defined]
    for tag in ("a:ea", "a:cs"):
        el = rpr.find(qn(tag))
        if el is None:
            el = rpr.makeelement(qn(tag), {})
            anchor = rpr.find(qn("a:latin")) if tag == "a:ea" else rpr.find(qn("a:ea"))
            anchor.addnext(el)
        el.set("typeface", font)


def _width(text: str) -> float:
    """Rendered width in ems: a CJK character about 1 em, other characters about half."""
    return sum(1.0 if ord(ch) > 0x2E80 else 0.55 for ch in text)


_INDENT = {PLAIN: 0.0, BOLD: 0.0, BULLET: 1.2, ITEM: 2.4}


def _height(lines: Sequence[Line], size: float) -> float:
    """Estimated height in points of the body at ``size`` (LibreOffice applies no autofit)."""
    box_w = (SLIDE_W - 2 * MARGIN) / 12700
    per_line = box_w / size
    rows = 0
    for text, style in lines:
        avail = max(4.0, per_line - _INDENT[style] - 0.5)
        rows += max(1, -(-_width(text) // avail))
    return rows * size * 1.2 + len(lines) * size * 0.35


def _pages(lines: Sequence[Line], size: float) -> list[list[Line]]:
    """Lines split into slides that each fit the body box."""
    cap = BODY_H / 12700 * 0.92
    pages: list[list[Line]] = [[]]
    for line in lines:
        if pages[-1] and _height([*pages[-1], line], size) > cap:
            pages.append([])
        pages[-1].append(line)
    if len(pages) > 1:  # as many slides, lines shared evenly: no near-empty last slide
        per = -(-len(lines) // len(pages))
        even = [list(lines[i : i + per]) for i in range(0, len(lines), per)]
        if len(even) == len(pages) and all(_height(p, size) <= cap for p in even):
            return even
    return pages


def _bullet(p: object, size: float, style: int) -> None:
    ppr = p._p.get_or_add_pPr()  # type: ignore[attr-defined]
    if style in (BULLET, ITEM):
        ppr.set("marL", str(int(size * 12700 * _INDENT[style])))
        ppr.set("indent", str(int(-size * 12700 * (1.2 if style == BULLET else 1.6))))
    for old in ppr.findall(qn("a:buNone")) + ppr.findall(qn("a:buChar")):
        ppr.remove(old)
    if style == BULLET:
        etree.SubElement(ppr, qn("a:buFont"), typeface="Arial")
        etree.SubElement(ppr, qn("a:buChar"), char="•")
    else:
        etree.SubElement(ppr, qn("a:buNone"))


def _slide_number(slide: object, number: int) -> None:
    box = slide.shapes.add_textbox(  # type: ignore[attr-defined]
        SLIDE_W - MARGIN - Emu(INCH), SLIDE_H - Emu(int(0.55 * INCH)), Emu(INCH), Emu(INCH // 3)
    )
    p = box.text_frame.paragraphs[0]
    p.alignment = 3  # right
    fld = etree.SubElement(p._p, qn("a:fld"), id="{" + str(uuid.UUID(int=number)).upper() + "}")
    fld.set("type", "slidenum")
    rpr = etree.SubElement(fld, qn("a:rPr"), lang="zh-CN", sz="1200")
    etree.SubElement(rpr, qn("a:solidFill")).append(etree.Element(qn("a:srgbClr"), val="666666"))
    etree.SubElement(fld, qn("a:t")).text = str(number)


def _add(prs: Presentation, spec: SlideSpec, number: int) -> None:
    s = prs.slides.add_slide(prs.slide_layouts[5])  # Title Only
    title = s.shapes.title
    title.left, title.top = MARGIN, Emu(int(0.3 * INCH))
    title.width, title.height = SLIDE_W - 2 * MARGIN, Emu(int(0.9 * INCH))
    title.text_frame.text = spec.title
    for para in title.text_frame.paragraphs:
        for r in para.runs:
            _font(r, TITLE_SIZE, bold=True, color=NAVY)
    box = s.shapes.add_textbox(MARGIN, BODY_TOP, SLIDE_W - 2 * MARGIN, BODY_H)
    tf = box.text_frame
    tf.word_wrap = True
    size = BODY_SIZE[spec.layout]
    for k, (text, style) in enumerate(spec.lines):
        p = tf.paragraphs[0] if k == 0 else tf.add_paragraph()
        p.space_after = Pt(size * 0.35)
        _bullet(p, size, style)
        run = p.add_run()
        run.text = text
        _font(run, size, bold=style == BOLD)
    if number > 1:
        _slide_number(s, number)
    s.notes_slide.notes_text_frame.text = spec.notes
    for para in s.notes_slide.notes_text_frame.paragraphs:
        for r in para.runs:
            _font(r, 12)


def _section_lines(sec: Section) -> list[Line]:
    style = BOLD if sec.items and sec.lines else PLAIN
    return [(t, style) for t in sec.lines] + [(t, ITEM) for t in sec.items]


def _module_specs(m: Module) -> list[SlideSpec]:
    short = [s for s in m.sections if len(s.text) < NEAR_EMPTY]
    lines: list[Line] = [(f"建议学时：{m.minutes} 分钟", PLAIN), ("学习目标", BOLD)]
    lines += [(g, BULLET) for g in m.goals]
    if m.key_terms:
        lines += [("关键术语", BOLD), ("、".join(m.key_terms), PLAIN)]
    for s in short:
        lines += [(f"{s.heading}（条款原文）", BOLD), *_section_lines(s)]
    notes = [m.title, "条款：" + "；".join(m.references)]
    notes += [f"{s.heading}：\n{s.text}\n依据：{s.citation}" for s in short]
    if m.notes:
        notes += ["讲师提示：", *m.notes]
    specs = [SlideSpec(f"模块{m.number}　{m.title}", "module", tuple(lines), "\n".join(notes))]
    for s in m.sections:
        if s in short:
            continue
        pages = _pages(_section_lines(s), BODY_SIZE["clause"])
        flagged = [n for n in m.notes if _flagged(n) in s.text]
        notes_text = "\n".join([f"{s.heading}：", s.text, f"依据：{s.citation}", *flagged])
        for k, page in enumerate(pages):
            title = s.heading + ("（续）" if k else "")
            specs.append(SlideSpec(title, "clause", tuple(page), notes_text))
    return specs


def _flagged(note: str) -> str:
    """The source text a trainer note flags ("…原文作“信益”…" → 信益)."""
    m = re.search(r"原文作“(.+?)”", note)
    return m.group(1) if m else "\0"


def outline_specs(outline: Outline) -> list[SlideSpec]:
    total = sum(m.minutes for m in outline.modules)
    cover = [(outline.doc_title, BOLD), (f"课程模块（建议总学时 {total} 分钟）：", PLAIN)]
    cover += [(f"模块{m.number}　{m.title}（{m.minutes} 分钟）", BULLET) for m in outline.modules]
    notes = f"本课程依据 {outline.doc_title} 编排，每个模块对应标准的一章，条款原文见各页备注。"
    specs = []
    for k, page in enumerate(_pages(cover, BODY_SIZE["cover"])):
        specs.append(
            SlideSpec(outline.course + ("（续）" if k else ""), "cover", tuple(page), notes)
        )
    for m in outline.modules:
        specs += _module_specs(m)
    return specs


def outline_pptx(outline: Outline) -> bytes:
    prs = Presentation()
    prs.slide_width, prs.slide_height = SLIDE_W, SLIDE_H
    for number, spec in enumerate(outline_specs(outline), 1):
        _add(prs, spec, number)
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()
