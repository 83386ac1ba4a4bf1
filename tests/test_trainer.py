"""Trainer toolkit: quiz items checked against their clauses, outline, handout, DOCX/PPTX files."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from docx import Document
from pptx import Presentation

from cqo_assistant import cli, export
from cqo_assistant.errors import InputError
from cqo_assistant.parse import load_corpus
from cqo_assistant.trainer import (
    BLANK,
    FALSE,
    KINDS,
    LETTERS,
    PAREN,
    TRUE,
    Corpus,
    QuizBuilder,
    QuizItem,
    build_outline,
    chapter_scope,
    generate_quiz,
    select_clauses,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus(load_corpus(ROOT / "corpus")[0])


@pytest.fixture(scope="module")
def bank(corpus: Corpus) -> list[QuizItem]:
    """Every item the standard supports, all kinds."""
    pools = QuizBuilder(corpus, seed=7).all(KINDS)
    return [it for k in KINDS for it in pools[k]]


def _quoted(stem: str) -> str:
    """The statement between the first “ and the last ” of a stem."""
    return stem[stem.index("“") + 1 : stem.rindex("”")]


def _group_text(corpus: Corpus, cid: str) -> str:
    return corpus.subtree_text(corpus.by_id[cid])


def check_item(corpus: Corpus, it: QuizItem) -> None:
    """The item's answer can be verified from its clause; distractors are not in it."""
    assert it.clause_id in corpus.by_id, it
    c = corpus.by_id[it.clause_id]
    assert it.explanation == (c.display_text() if c.is_item else corpus.full_text(c))
    assert c.text in it.explanation
    assert it.clause_label == corpus.heading(c)
    if it.kind in ("single", "multi"):
        assert it.answer == ",".join(LETTERS[k] for k in it.correct)
        assert len(set(it.options)) == len(it.options) >= 4
        assert (len(it.correct) == 1) == (it.kind == "single")
        right = [o for k, o in enumerate(it.options) if k in it.correct]
        wrong = [o for k, o in enumerate(it.options) if k not in it.correct]
        assert wrong
    if it.form == "member":  # one list item of the clause's parent, distractors from elsewhere
        group = _group_text(corpus, c.parent or "")
        assert right[0] in c.text
        assert all(w not in group and w in corpus.full for w in wrong), it
    elif it.form == "source":
        parent = corpus.by_id[c.parent or ""]
        assert right == [f"{parent.label}（{parent.title}）"]
        assert all(w != right[0] for w in wrong)
    elif it.form == "term":
        sentence = it.stem.split("：“", 1)[1].rsplit("”括号处", 1)[0]
        assert sentence.count(PAREN) == 1
        assert sentence.replace(PAREN, right[0]) in c.text
        for w in wrong:  # a distractor in the gap gives text the standard does not contain
            assert w in corpus.full and w not in c.text
            assert sentence.replace(PAREN, w) not in corpus.full
    elif it.form == "multi":
        group = _group_text(corpus, it.clause_id)
        assert 2 <= len(right) <= 4
        assert all(r in group for r in right)
        assert all(w not in group and w in corpus.full for w in wrong), it
    elif it.form == "true":
        assert it.answer == TRUE and _quoted(it.stem) in c.text
    elif it.form == "swap":
        stmt = _quoted(it.stem)
        assert it.answer == FALSE
        assert stmt not in c.text and stmt not in corpus.full
        old, new = re.findall(r"“(.+?)”", it.note)
        assert old in c.text and new not in c.text and new in corpus.full
        assert stmt.replace(new, old, 1) in c.text  # exactly one term was swapped
    elif it.form == "not-member":
        assert it.answer == FALSE and _quoted(it.stem) not in _group_text(corpus, it.clause_id)
    elif it.form == "blank":
        sentence = it.stem.split("：“", 1)[1][:-1]
        assert sentence.count(BLANK) == 1 and it.answer in c.text
        assert sentence.replace(BLANK, it.answer) in c.text
    else:
        raise AssertionError(f"unknown form {it.form!r}")


def test_every_item_is_verifiable_from_its_clause(corpus: Corpus, bank: list[QuizItem]) -> None:
    assert {it.kind for it in bank} == set(KINDS)
    assert {it.form for it in bank} >= {"member", "source", "term", "multi", "true", "swap"}
    for it in bank:
        check_item(corpus, it)


def test_judge_items_include_true_and_false(bank: list[QuizItem]) -> None:
    answers = [it.answer for it in bank if it.kind == "judge"]
    assert answers.count(TRUE) >= 20 and answers.count(FALSE) >= 20


def test_quiz_has_no_duplicates_and_covers_kinds(corpus: Corpus) -> None:
    items = generate_quiz(corpus, 60, seed=3)
    keys = [(it.stem, tuple(sorted(it.options))) for it in items]
    assert len(set(keys)) == len(keys) == 60
    assert [it.number for it in items] == list(range(1, 61))
    assert {it.kind for it in items} == set(KINDS)
    assert len({it.clause_id for it in items}) > 30  # spread over the standard
    for it in items:
        check_item(corpus, it)


def test_same_seed_same_bank(corpus: Corpus) -> None:
    a = generate_quiz(corpus, 30, seed=5)
    b = generate_quiz(Corpus(load_corpus(ROOT / "corpus")[0]), 30, seed=5)
    assert [x.to_json() for x in a] == [x.to_json() for x in b]
    c = generate_quiz(corpus, 30, seed=6)
    assert [x.to_json() for x in a] != [x.to_json() for x in c]


def test_n_larger_than_possible_is_a_clear_message(corpus: Corpus) -> None:
    pools = QuizBuilder(corpus, seed=1).all(["multi"])
    most = len(pools["multi"])
    assert len(generate_quiz(corpus, most, kinds="multi")) == most
    with pytest.raises(InputError, match=rf"上限 {most}.*more than the {most}"):
        generate_quiz(corpus, most + 1, kinds="multi")
    with pytest.raises(InputError, match="unknown kind"):
        generate_quiz(corpus, 5, kinds="essay")


def test_cli_quiz_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["quiz", "--n", "100000"]) == 2
    err = capsys.readouterr().err
    assert "超过可生成的上限" in err and "n=100000" in err and "single" in err
    assert cli.main(["handout", "--clauses", "5.9"]) == 2
    assert "5.9" in capsys.readouterr().err


def test_chapter_scope_limits_items(corpus: Corpus) -> None:
    scope = chapter_scope(corpus, "8")
    items = generate_quiz(corpus, 12, seed=2, scope=scope)
    assert all(it.clause_id.startswith("8") for it in items)
    with pytest.raises(InputError):
        generate_quiz(corpus, 500, scope=scope)


def test_cli_quiz_json_and_markdown(capsys: pytest.CaptureFixture[str], corpus: Corpus) -> None:
    assert cli.main(["quiz", "--n", "8", "--seed", "4", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["standard"] == corpus.standard.code and data["count"] == 8
    assert all(row["clause_id"] in corpus.by_id and row["explanation"] for row in data["items"])
    assert cli.main(["quiz", "--n", "8", "--seed", "4"]) == 0
    md = capsys.readouterr().out
    assert md.index("## 答案与解析") > md.index("1. ")
    first = data["items"][0]
    assert f"答案：{first['answer']}" in md and first["stem"] in md
    assert cli.main(["quiz", "--n", "8", "--seed", "4", "--answers", "inline"]) == 0
    assert "## 答案与解析" not in capsys.readouterr().out


def test_outline_follows_the_standard(corpus: Corpus) -> None:
    outline = build_outline(corpus)
    chapters = [m.chapter_id for m in outline.modules]
    assert chapters == ["引言", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    for m in outline.modules:
        text = "\n".join(corpus.by_id[c].title + corpus.by_id[c].text for c in m.clause_ids)
        assert m.objectives and all(t in text for t in m.key_terms)
        for ob in m.objectives:
            assert ob.clause_id in m.clause_ids
            c = corpus.by_id[ob.clause_id]
            body = ob.text.split("：", 1)[1]
            body = re.sub(r"（[a-z]\)–[a-z]\)，共\d+项）$", "", body)
            assert body in c.text, ob  # drawn from the clause, not invented
    m5 = next(m for m in outline.modules if m.chapter_id == "5")
    assert m5.key_clauses == ("5.1", "5.2", "5.3")
    assert "专业职称" in m5.key_terms


def test_handout_selection_and_markdown(corpus: Corpus) -> None:
    clauses = select_clauses(corpus, "5,8.1")
    ids = [c.id for c in clauses]
    assert ids[0] == "5" and "5.1 e)" in ids and "8.1 d)" in ids and "8.2" not in ids
    md = export.handout_markdown(corpus, clauses)
    assert "## 5 任职要求" in md and "### 5.1 任职资格" in md
    assert corpus.by_id["8.1 d)"].display_text() in md
    with pytest.raises(InputError, match="nearest"):
        select_clauses(corpus, "8.7")


def _docx_text(data: bytes) -> tuple[list[tuple[str, str]], str]:
    doc = Document(io.BytesIO(data))
    paras = [(p.style.name, p.text) for p in doc.paragraphs]
    return paras, "\n".join(t for _, t in paras)


def _east_asia(data: bytes) -> set[str]:
    doc = Document(io.BytesIO(data))
    xml = doc.element.xml + doc.styles.element.xml
    return set(re.findall(r'w:eastAsia="([^"]+)"', xml))


def test_outline_docx_reopens(corpus: Corpus) -> None:
    data = export.outline_docx(corpus, build_outline(corpus))
    paras, text = _docx_text(data)
    heads = [t for s, t in paras if s == "Heading 1"]
    assert heads[0] == "模块1　引言" and "模块6　第5章 任职要求" in heads
    assert "第5.1条 任职资格" in text and "第8.1条 岗位职权保证" in text
    assert corpus.by_id["4.1"].text in text
    assert {"宋体", "黑体"} <= _east_asia(data)


def test_quiz_and_handout_docx_reopen(corpus: Corpus) -> None:
    items = generate_quiz(corpus, 12, seed=9)
    paras, text = _docx_text(export.quiz_docx(corpus, items, inline=False, seed=9))
    assert [t for s, t in paras if s == "Heading 1"][-1] == "答案与解析"
    for it in items:
        assert it.clause_label in text and it.explanation.splitlines()[0] in text
    clauses = select_clauses(corpus, "5,8.1")
    data = export.handout_docx(corpus, clauses, items[:3])
    paras, text = _docx_text(data)
    assert ("Heading 1", "5 任职要求") in paras and ("Heading 2", "8.1 岗位职权保证") in paras
    assert corpus.by_id["5.1 e)"].display_text() in text and "随堂练习" in text
    assert "宋体" in _east_asia(data)


def test_outline_pptx_has_slides_with_clause_notes(corpus: Corpus) -> None:
    outline = build_outline(corpus)
    prs = Presentation(io.BytesIO(export.outline_pptx(corpus, outline)))
    slides = list(prs.slides)
    titles = [s.shapes.title.text_frame.text for s in slides]
    assert sum(t.startswith("模块") for t in titles) == len(outline.modules)
    assert "第5.1条 任职资格" in titles and "第8.1条 岗位职权保证" in titles
    s51 = slides[titles.index("第5.1条 任职资格")]
    notes = s51.notes_slide.notes_text_frame.text
    assert corpus.full_text(corpus.by_id["5.1"]) in notes and "第5.1条" in notes
    body = "\n".join(sh.text_frame.text for sh in s51.shapes if sh.has_text_frame)
    assert corpus.by_id["5.1 e)"].text in body
    # every key clause is on a slide with its text in the notes
    all_notes = "\n".join(s.notes_slide.notes_text_frame.text for s in slides)
    for m in outline.modules:
        for cid in m.key_clauses:
            assert corpus.by_id[cid].text in all_notes
    # East-Asian typeface on every run
    for s in slides:
        for sh in s.shapes:
            if sh.has_text_frame:
                for p in sh.text_frame.paragraphs:
                    for r in p.runs:
                        ea = r._r.find(
                            ".//{http://schemas.openxmlformats.org/drawingml/2006/main}ea"
                        )
                        assert ea is not None and ea.get("typeface") == export.SLIDE_FONT


def test_cli_writes_office_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.pptx"
    assert cli.main(["outline", "--format", "pptx", "-o", str(out)]) == 0
    assert len(Presentation(str(out)).slides) > 10
    out = tmp_path / "h.docx"
    assert (
        cli.main(["handout", "--clauses", "8.1", "--quiz", "3", "--format", "docx", "-o", str(out)])
        == 0
    )
    assert "一票否决" in "\n".join(p.text for p in Document(str(out)).paragraphs)
    assert cli.main(["outline"]) == 0
    assert capsys.readouterr().out.startswith("# 培训课程提纲")
