"""Trainer files ready to use: outline content, quiz DOCX layout, PPTX slides, XLSX bank."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from docx import Document
from openpyxl import load_workbook
from pptx import Presentation

from cqo_assistant.parse import load_corpus
from cqo_assistant.trainer import (
    Corpus,
    Outline,
    Paper,
    build_handout,
    build_outline,
    build_paper,
)
from cqo_assistant.trainer.writers import render
from cqo_assistant.trainer.writers.fonts import SLIDE_FONT

ROOT = Path(__file__).resolve().parent.parent
A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus(load_corpus(ROOT / "corpus")[0])


@pytest.fixture(scope="module")
def outline(corpus: Corpus) -> Outline:
    return build_outline(corpus)


@pytest.fixture(scope="module")
def paper(corpus: Corpus) -> Paper:
    return build_paper(corpus, 30, seed=2)


def test_outline_objectives_terms_time_and_typos(corpus: Corpus, outline: Outline) -> None:
    assert [m.chapter_id for m in outline.modules] == ["引言", *"123456789"]
    objectives = [ob.text for m in outline.modules for ob in m.objectives]
    assert not any("包括但不限于以下内容" in t for t in objectives)
    assert "掌握第7.2条 a)：建立健全产品质量安全管理制度，落实产品质量安全责任" in objectives
    assert "掌握第8.1条 d)：企业产品（服务）质量安全“一票否决”权" in objectives
    for m in outline.modules:
        for ob in m.objectives:  # drawn from the clause, not invented
            assert ob.clause_id in m.clause_ids
            assert ob.text.split("：", 1)[1] in corpus.by_id[ob.clause_id].text, ob
        assert m.minutes >= 10 and m.minutes % 5 == 0
    terms = {t for m in outline.modules for t in m.key_terms}
    assert "质量官" not in terms and "专业职称" in terms and "质量管理体系" in terms
    m7 = next(m for m in outline.modules if m.chapter_id == "7")
    assert any("信益" in n and "效益" in n and "第7.3条 e)" in n for n in m7.notes)
    assert not next(m for m in outline.modules if m.chapter_id == "5").notes
    md = str(render(outline, "md"))
    assert "构建质量和信益为核心" in md  # verbatim, and flagged in the notes
    assert "**讲师提示**" in md and "（建议 " in md


def test_quiz_docx_is_a_paper(paper: Paper) -> None:
    doc = Document(io.BytesIO(render(paper, "docx")))  # type: ignore[arg-type]
    texts = [p.text for p in doc.paragraphs]
    assert texts[0] == "企业首席质量官制度培训测验"
    assert doc.sections[0].header.paragraphs[0].text == "企业首席质量官制度培训　测验"
    assert "姓名：" in texts[1] and "部门：" in texts[1] and "得分：" in texts[1]
    heads = [p.text for p in doc.paragraphs if p.style.name == "Heading 1"]
    assert heads[0].startswith("一、单选题（共") and "每题2分" in heads[0]
    assert heads[-1] == "答案与解析"
    for it in paper.items:
        line = next(t for t in texts if t.startswith(f"{it.number}. {it.stem}"))
        assert line.endswith("（    ）") == (it.kind != "blank")
        assert f"{it.number}. 答案：{it.answer}　依据：{it.clause_label}" in texts
    footer = doc.sections[0].footer.paragraphs[0]._p.xml
    assert 'w:instr="PAGE"' in footer and 'w:instr="NUMPAGES"' in footer
    key = doc.paragraphs[texts.index("答案与解析")]
    assert key.paragraph_format.page_break_before  # the key starts on a new page


def test_xlsx_bank_has_the_import_columns(paper: Paper) -> None:
    wb = load_workbook(io.BytesIO(render(paper, "xlsx")))  # type: ignore[arg-type]
    ws = wb["题库"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == (
        "题型", "题干", "选项A", "选项B", "选项C", "选项D", "选项E", "选项F", "答案", "解析", "条款"
    )  # fmt: skip
    assert len(rows) == 31
    for it, row in zip(paper.items, rows[1:], strict=True):
        assert row[1] == it.stem and row[10] == it.clause_label
        assert (
            row[0]
            == {"single": "单选题", "multi": "多选题", "judge": "判断题", "blank": "填空题"}[
                it.kind
            ]
        )
        if it.kind == "multi":
            assert re.fullmatch(r"[A-F]{2,4}", row[8]) and row[8] == it.answer.replace(",", "")
        else:
            assert row[8] == it.answer
        assert list(row[2 : 2 + len(it.options)]) == list(it.options)
        assert str(row[9]).startswith("原文：")


def _slides(outline: Outline) -> list:
    return list(Presentation(io.BytesIO(render(outline, "pptx"))).slides)  # type: ignore[arg-type]


def _body(slide) -> list:  # the body text box: the shape under the title
    return [s for s in slide.shapes if s.has_text_frame and s.top > 900000 and s.height > 900000]


def test_pptx_slides(outline: Outline) -> None:
    slides = _slides(outline)
    titles = [s.shapes.title.text_frame.text for s in slides]
    assert "第5.1条 任职资格" in titles and "第8.1条 岗位职权保证" in titles
    sizes: dict[str, set[float]] = {}
    for k, s in enumerate(slides, 1):
        body = _body(s)
        assert len(body) == 1, titles[k - 1]
        paras = body[0].text_frame.paragraphs
        text = "".join(p.text for p in paras)
        assert len(text) >= 30, f"near-empty slide {titles[k - 1]!r}: {text!r}"
        assert not any(p.text.startswith("•") for p in paras)  # no typed bullets
        layout = "cover" if k == 1 else "module" if titles[k - 1].startswith("模块") else "clause"
        sizes.setdefault(layout, set()).update(r.font.size.pt for p in paras for r in p.runs)
        nums = s._element.findall(f".//{A}fld")
        assert (k == 1 and not nums) or [f.get("type") for f in nums] == ["slidenum"], k
        for p in paras:
            for r in p.runs:
                assert r._r.find(f".//{A}ea").get("typeface") == SLIDE_FONT
    assert all(len(v) == 1 for v in sizes.values()), sizes  # one body size per layout
    bullets = [s for s in slides if _body(s)[0]._element.findall(f".//{A}buChar")]
    assert len(bullets) >= len(outline.modules)
    assert "下列术语和定义适用于本文件。" not in "".join(
        sh.text_frame.text for s in slides for sh in _body(s)
    )


def test_module_slide_does_not_repeat_the_next_slide(outline: Outline) -> None:
    slides = _slides(outline)
    for k, s in enumerate(slides[:-1]):
        nxt_title = slides[k + 1].shapes.title.text_frame.text
        if not s.shapes.title.text_frame.text.startswith("模块") or nxt_title.startswith("模块"):
            continue
        here = {p.text for p in _body(s)[0].text_frame.paragraphs}
        nxt = {p.text for p in _body(slides[k + 1])[0].text_frame.paragraphs}
        assert not here & nxt, s.shapes.title.text_frame.text
    m4 = slides[[x.shapes.title.text_frame.text for x in slides].index("模块5　第4章 岗位设置")]
    assert "通常设置在企业决策层" not in _body(m4)[0].text_frame.text


def test_pptx_keeps_typos_verbatim_and_flags_them(outline: Outline) -> None:
    slides = _slides(outline)
    s73 = next(s for s in slides if s.shapes.title.text_frame.text.startswith("第7.3条"))
    assert "构建质量和信益为核心" in "".join(sh.text_frame.text for sh in _body(s73))
    assert "疑为“效益”之误" in s73.notes_slide.notes_text_frame.text


def test_handout_docx(corpus: Corpus) -> None:
    quiz = build_paper(corpus, 3, seed=1, scope={c.id for c in corpus.clauses if c.id[0] in "58"})
    doc = Document(io.BytesIO(render(build_handout(corpus, "5,8.1", quiz), "docx")))  # type: ignore[arg-type]
    paras = [(p.style.name, p.text) for p in doc.paragraphs]
    assert ("Heading 1", "5 任职要求") in paras and ("Heading 2", "8.1 岗位职权保证") in paras
    text = "\n".join(t for _, t in paras)
    assert corpus.by_id["5.1 e)"].display_text() in text and "随堂练习" in text
