"""DOCX (python-docx): quiz paper, outline, handout.

Chinese fonts are set explicitly: runs and styles carry ``w:rFonts`` with ``w:eastAsia`` (宋体
for body text, 黑体 for headings; the theme font attributes that would override them are
removed). Word and WPS have these fonts; LibreOffice substitutes an installed CJK font because
the East-Asian slot names a CJK font. ``CQO_TRAINER_FONT`` sets one font everywhere.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt, RGBColor
from docx.text.paragraph import Paragraph
from lxml import etree

from ..model import LETTERS, Handout, Outline, Paper
from .common import answer_line, explain_lines, printed_stem, section_title
from .fonts import FALLBACK_FONT, LATIN_BODY, LATIN_HEAD, fonts

GREY = RGBColor(0x55, 0x55, 0x55)


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
    body, head, _ = fonts()
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
    for name in ("List Number", "List Bullet", "Header", "Footer"):
        _rfonts(styles[name].element.get_or_add_rPr(), body, LATIN_BODY)
    defaults = doc.styles.element.find(qn("w:docDefaults"))
    if defaults is not None:
        rpr = defaults.find(qn("w:rPrDefault") + "/" + qn("w:rPr"))
        if rpr is not None:
            _rfonts(rpr, body, LATIN_BODY)
    _font_table(doc, sorted({body, head}))
    _page_numbers(doc)
    return doc


def _field(p: Paragraph, instr: str) -> None:
    fld = OxmlElement("w:fldSimple")
    fld.set(qn("w:instr"), instr)
    r = OxmlElement("w:r")
    t = OxmlElement("w:t")
    t.text = "1"
    r.append(t)
    fld.append(r)
    p._p.append(fld)


def _page_numbers(doc: Document) -> None:
    """Footer: "第 N 页 / 共 M 页", centred."""
    p = doc.sections[0].footer.paragraphs[0]
    p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    p.add_run("第 ")
    _field(p, "PAGE")
    p.add_run(" 页 / 共 ")
    _field(p, "NUMPAGES")
    p.add_run(" 页")


def _para(doc: Document, text: str, style: str | None = None, **fmt: object) -> Paragraph:
    body, head, _ = fonts()
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
    if fmt.get("center"):
        p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    if "indent" in fmt:
        p.paragraph_format.left_indent = Cm(float(fmt["indent"]))  # type: ignore[arg-type]
    if "hanging" in fmt:
        p.paragraph_format.left_indent = Cm(float(fmt["hanging"]))  # type: ignore[arg-type]
        p.paragraph_format.first_line_indent = -Cm(float(fmt["hanging"]))  # type: ignore[arg-type]
    return p


def _keep(paras: list[Paragraph]) -> None:
    """One item on one page: its paragraphs are kept whole and together."""
    for k, p in enumerate(paras):
        p.paragraph_format.keep_together = True
        p.paragraph_format.keep_with_next = k < len(paras) - 1


def _heading(doc: Document, text: str, level: int) -> Paragraph:
    return _para(doc, text, "Title" if level == 0 else f"Heading {level}")


def _save(doc: Document) -> bytes:
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def _quiz_body(doc: Document, paper: Paper, inline: bool, level: int) -> None:
    for i, (kind, group) in enumerate(paper.sections()):
        _heading(doc, section_title(i, kind, len(group)), level)
        for it in group:
            item = [_para(doc, printed_stem(it), hanging=0.7)]
            for k, opt in enumerate(it.options):
                p = _para(doc, f"{LETTERS[k]}. {opt}", hanging=0.6)
                p.paragraph_format.left_indent = Cm(1.3)
                item.append(p)
            _keep(item)
            if inline:
                _para(doc, answer_line(it), bold=True, indent=0.8)
                for line in explain_lines(it):
                    _para(doc, line, grey=True, indent=0.8)
    if not inline:
        _heading(doc, "答案与解析", level).paragraph_format.page_break_before = True
        for it in paper.items:
            item = [_para(doc, f"{it.number}. {answer_line(it)}", bold=True)]
            item += [_para(doc, line, grey=True, indent=0.8) for line in explain_lines(it)]
            _keep(item)


def quiz_docx(paper: Paper, inline: bool = False) -> bytes:
    """A paper to print: course title (also in the page header), name/department/score lines,
    sections with their points, answer brackets, page numbers, the answer key after a page
    break (or under each item with ``inline``)."""
    doc = _new_docx()
    header = doc.sections[0].header.paragraphs[0]
    header.text = f"{paper.course}　测验"
    header.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _heading(doc, f"{paper.course}测验", 0).alignment = WD_ALIGN_PARAGRAPH.CENTER
    _para(doc, "姓名：____________　部门：____________　得分：________", center=True)
    seed = f"；随机种子 {paper.seed}" if paper.seed is not None else ""
    _para(
        doc,
        f"依据 {paper.doc_title}；共 {len(paper.items)} 题，满分 {paper.total_points} 分{seed}。"
        "选择题和判断题在括号内填写答案，填空题在横线上填写。",
        grey=True,
    )
    _quiz_body(doc, paper, inline, 1)
    return _save(doc)


def outline_docx(outline: Outline) -> bytes:
    doc = _new_docx()
    total = sum(m.minutes for m in outline.modules)
    _heading(doc, f"{outline.course}课程提纲", 0)
    _para(
        doc,
        f"依据 {outline.doc_title}；共 {len(outline.modules)} 个模块，建议总学时 {total} 分钟，"
        "学习目标引自条款原文。",
    )
    for m in outline.modules:
        _heading(doc, f"模块{m.number}　{m.title}", 1)
        _para(doc, f"建议学时：{m.minutes} 分钟", grey=True)
        _heading(doc, "学习目标", 2)
        for k, ob in enumerate(m.objectives, 1):
            _para(doc, f"{k}. {ob.text}", hanging=0.6)
        if m.key_terms:
            _heading(doc, "关键术语", 2)
            _para(doc, "、".join(m.key_terms))
        _heading(doc, "条款", 2)
        _para(doc, "；".join(m.references))
        if m.notes:
            _heading(doc, "讲师提示", 2)
            for n in m.notes:
                _para(doc, n, grey=True)
    return _save(doc)


def handout_docx(h: Handout) -> bytes:
    doc = _new_docx()
    _heading(doc, "首席质量官培训讲义", 0)
    _para(doc, f"依据 {h.doc_title}（条款原文）：{h.scope}", grey=True)
    for b in h.blocks:
        if b.level == 0:
            _para(doc, b.paragraphs[0], hanging=0.8)
            continue
        _heading(doc, b.heading, b.level)
        for p in b.paragraphs:
            _para(doc, p)
    if h.quiz is not None and h.quiz.items:
        _heading(doc, "随堂练习", 1).paragraph_format.page_break_before = True
        _quiz_body(doc, h.quiz, inline=False, level=2)
    return _save(doc)
