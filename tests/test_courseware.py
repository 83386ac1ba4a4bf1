"""Trainer toolkit: every quiz answer checked against its clause, Office files reopened and
rendered (LibreOffice → PDF → PNG)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from docx import Document
from docx.oxml.ns import qn
from pptx import Presentation

from cqo_assistant import coursefiles
from cqo_assistant.courseware import KINDS, LETTERS, load_clauses, outline, quiz, select
from cqo_assistant.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
CLAUSES = load_clauses(ROOT / "corpus")
BY_ID = {c.id: c for c in CLAUSES}
ARTIFACTS = ROOT / "tests" / "artifacts"


def _items_of(cid: str) -> set[str]:
    return {BY_ID[k].text.rstrip("；。") for k in BY_ID[cid].children if BY_ID[k].is_item}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_answer_is_verifiable(seed: int) -> None:
    bank = quiz(CLAUSES, 120, KINDS, seed)
    assert {q.kind for q in bank} == set(KINDS)
    assert len({(q.stem, q.options) for q in bank}) == len(bank)  # no duplicates
    for q in bank:
        c = BY_ID[q.clause]  # the clause exists
        if q.kind == "single":
            right = q.options[LETTERS.index(q.answer)]
            assert right == c.text.rstrip("；。") and c.is_item
            siblings = _items_of(c.parent)
            assert sum(o in siblings for o in q.options) == 1, q  # distractors never correct
        elif q.kind == "multi":
            items = _items_of(q.clause)
            chosen = {q.options[LETTERS.index(x)] for x in q.answer}
            assert chosen <= items and len(chosen) >= 2
            assert all(o not in items for o in q.options if o not in chosen), q
            assert c.text in q.explanation
        elif q.kind == "judge":
            assert q.explanation == c.text
            body = q.stem.removeprefix("判断：").rsplit("（", 1)[0]
            if q.answer == "正确":
                assert body.endswith(c.text)
            else:
                assert q.answer == "错误" and c.text not in body
        else:
            assert q.answer in c.text and "______" in q.stem
            assert q.stem.replace("______", q.answer, 1).startswith("填空：" + c.text[:5])


def test_deterministic_for_a_seed() -> None:
    assert quiz(CLAUSES, 30, seed=7) == quiz(CLAUSES, 30, seed=7)
    assert quiz(CLAUSES, 30, seed=7) != quiz(CLAUSES, 30, seed=8)


def test_too_many_and_bad_kinds() -> None:
    with pytest.raises(InputError, match="最多可生成"):
        quiz(select(CLAUSES, ["9"]), 500, ["blank"])
    with pytest.raises(InputError, match="kinds"):
        quiz(CLAUSES, 5, ["essay"])
    with pytest.raises(InputError, match="no clause"):
        select(CLAUSES, ["12.3"])


def test_outline_from_clause_text() -> None:
    mods = outline(CLAUSES)
    assert [m.chapter.id for m in mods] == [str(i) for i in range(1, 10)]
    m5 = mods[4]
    assert "掌握任职资格的6项内容（第5.1条）" in m5.objectives
    assert "首席质量官" in mods[2].key_terms
    for m in mods:
        for o in m.objectives:  # every objective names a clause that exists
            label = o.rsplit("（", 1)[1].rstrip("）")
            assert any(c.label == label for c in m.clauses), o


def test_docx_and_pptx_reopen() -> None:
    mods = outline(CLAUSES)
    doc = Document(io.BytesIO(coursefiles.outline_docx(mods)))
    text = "\n".join(p.text for p in doc.paragraphs)
    assert "模块5：5 任职要求" in text and "第5.1条" in text
    fonts = doc.styles["Normal"].element.rPr.find(qn("w:rFonts"))
    assert fonts.get(qn("w:eastAsia")) == coursefiles.BODY_FONT
    run = doc.paragraphs[1].runs[0]._r
    assert run.rPr.find(qn("w:rFonts")).get(qn("w:eastAsia"))

    prs = Presentation(io.BytesIO(coursefiles.outline_pptx(mods)))
    titles = [s.shapes.title.text for s in prs.slides]
    assert "模块8：8 工作保障" in titles and "第8.1条 岗位职权保证" in titles
    s81 = prs.slides[titles.index("第8.1条 岗位职权保证")]
    assert "一票否决" in s81.notes_slide.notes_text_frame.text
    xml = s81.shapes.placeholders[1].text_frame._txBody.xml
    assert 'a:ea typeface="微软雅黑"' in xml

    bank = quiz(CLAUSES, 12, seed=1)
    qd = Document(io.BytesIO(coursefiles.quiz_docx(bank)))
    qtext = "\n".join(p.text for p in qd.paragraphs)
    assert "参考答案" in qtext and bank[0].stem in qtext
    hd = Document(io.BytesIO(coursefiles.handout_docx(select(CLAUSES, ["8.1"]))))
    assert any("一票否决" in p.text for p in hd.paragraphs)


def _cqo(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CQO_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "cqo_assistant.cli", *args],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip


def test_cli(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    shutil.copy(ROOT / "corpus" / "DB1302-T-589-2024.txt", tmp_path / "corpus")
    r = _cqo(tmp_path, "quiz", "--n", "6", "--seed", "1", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)) == 6
    r = _cqo(tmp_path, "quiz", "--n", "999", "--chapters", "9")
    assert r.returncode == 2 and "最多可生成" in r.stderr
    r = _cqo(tmp_path, "handout", "--clauses", "5,8.1", "--quiz", "3")
    assert r.returncode == 0 and "### 5.1 任职资格" in r.stdout and "题库" in r.stdout
    r = _cqo(tmp_path, "outline", "--format", "pptx")
    assert r.returncode == 2 and "-o" in r.stderr
    out = tmp_path / "o.pptx"
    assert _cqo(tmp_path, "outline", "--format", "pptx", "-o", str(out)).returncode == 0
    assert len(Presentation(str(out)).slides) > 10


def test_training_tab_builds_and_generates(settings) -> None:
    import gradio as gr

    from cqo_assistant.courseware import add_training_tab

    with gr.Blocks() as demo:
        add_training_tab(settings)
    fn = next(d.fn for d in demo.fns.values() if d.api_name == "training")
    preview, files = fn(["5"], ["single", "blank"], 4, 1)
    assert "依据" in preview and len(files) == 5 and all(Path(f).stat().st_size for f in files)
    msg, files = fn(["9"], ["blank"], 60, 1)
    assert msg.startswith("⚠️") and files == []


@pytest.mark.slow
@pytest.mark.skipif(
    not shutil.which("soffice"), reason="no LibreOffice: apt-get install libreoffice"
)
def test_render_office_files(tmp_path: Path) -> None:
    mods = outline(CLAUSES)
    files = {
        "outline.pptx": coursefiles.outline_pptx(mods),
        "quiz.docx": coursefiles.quiz_docx(quiz(CLAUSES, 10, seed=1)),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        src = tmp_path / name
        src.write_bytes(data)
        subprocess.run(
            ["soffice", "--headless", f"-env:UserInstallation=file://{tmp_path}/lo",
             "--convert-to", "pdf", "--outdir", str(tmp_path), str(src)],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
        pdf = src.with_suffix(".pdf")
        assert pdf.stat().st_size > 5000
        stem = ARTIFACTS / src.stem
        subprocess.run(["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "3", str(pdf), str(stem)],
                       check=True, timeout=120)  # fmt: skip
        assert list(ARTIFACTS.glob(f"{src.stem}-*.png"))
