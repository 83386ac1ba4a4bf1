"""Trainer verbs on the command line: files written, and every bad input exits 2 with a clear
bilingual message (no traceback)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from docx import Document
from openpyxl import load_workbook
from pptx import Presentation

from cqo_assistant import cli

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "cqo_assistant" / "trainer"
CHAPTERS = "引言, 1, 2, 3, 4, 5, 6, 7, 8, 9"


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(argv) == 2, argv
    err = capsys.readouterr().err
    assert err.startswith("错误 / error: ") and "Traceback" not in err
    return err


def test_cli_writes_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.pptx"
    assert cli.main(["outline", "--format", "pptx", "-o", str(out)]) == 0
    assert len(Presentation(str(out)).slides) > 10
    assert cli.main(["quiz", "--n", "12", "-o", str(tmp_path / "q.xlsx")]) == 0  # format from -o
    assert load_workbook(tmp_path / "q.xlsx")["题库"].max_row == 13
    assert cli.main(["quiz", "--n", "5", "--format", "docx", "-o", str(tmp_path / "q")]) == 0
    assert (tmp_path / "q.docx").exists()  # no extension: the format's is added
    out = tmp_path / "h.docx"
    argv = ["handout", "--clauses", "8.1", "--quiz", "3", "--format", "docx", "-o", str(out)]
    assert cli.main(argv) == 0
    assert "一票否决" in "\n".join(p.text for p in Document(str(out)).paragraphs)
    capsys.readouterr()
    assert cli.main(["outline"]) == 0
    assert capsys.readouterr().out.startswith("# 培训课程提纲")


def test_output_to_missing_folder_directory_or_unwritable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _fails(["quiz", "--format", "docx", "-o", str(tmp_path / "nope" / "q.docx")], capsys)
    assert "不存在" in err and "does not exist" in err
    err = _fails(["outline", "--format", "md", "-o", str(tmp_path)], capsys)
    assert "是文件夹" in err and "is a folder" in err
    (tmp_path / "d.docx").mkdir()
    err = _fails(["quiz", "-o", str(tmp_path / "d.docx")], capsys)
    assert "is a folder" in err
    err = _fails(["quiz", "-o", "/sys/cqo-quiz.docx"], capsys)  # sysfs: not writable, even by root
    assert "无法写入" in err and "cannot write" in err and "Permission denied" in err


def test_format_and_extension_must_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _fails(["quiz", "--format", "docx", "-o", str(tmp_path / "q.txt")], capsys)
    assert "does not match --format docx" in err and ".docx" in err
    assert not (tmp_path / "q.txt").exists()
    err = _fails(["quiz", "-o", str(tmp_path / "q.txt")], capsys)
    assert "cannot tell the format from .txt" in err and "xlsx" in err
    err = _fails(["outline", "-o", str(tmp_path / "o.xlsx")], capsys)
    assert "md, docx, pptx" in err


@pytest.mark.parametrize("chapter", ["前言", "5.1", "10"])
def test_outline_and_quiz_refuse_what_is_not_a_chapter(
    chapter: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for verb in ("outline", "quiz"):
        err = _fails([verb, "--chapters", chapter], capsys)
        assert f"is not a chapter; 可选章 / chapters: {CHAPTERS}" in err


def test_negative_and_zero_counts_say_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    errs = {_fails(["quiz", "--n", n], capsys).split("(got")[0] for n in ("-3", "0")}
    assert errs == {"错误 / error: 题目数量须至少为 1 / the number of items must be at least 1 "}
    assert "(got -3)" in _fails(["quiz", "--n", "-3"], capsys)
    assert "至少为 1" in _fails(["handout", "--quiz", "-3"], capsys)
    assert cli.main(["handout", "--clauses", "9.5", "--quiz", "0"]) == 0  # 0: no quiz
    with pytest.raises(SystemExit) as e:
        cli.main(["quiz", "--n", "abc"])
    assert e.value.code == 2 and "not a whole number" in capsys.readouterr().err


def test_too_many_items_and_unknown_clause(capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails(["quiz", "--n", "100000"], capsys)
    assert "超过可生成的上限" in err and "n=100000" in err and "single" in err
    assert "5.9" in _fails(["handout", "--clauses", "5.9"], capsys)
    assert "unknown kind" in _fails(["quiz", "--kinds", "essay"], capsys)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
    return out


def test_data_flows_one_way() -> None:
    """Writers read plain data only: they never import the corpus, builders, paper or check;
    the trainer's logic never imports a writer (so there is no import cycle)."""
    for f in (PKG / "writers").glob("*.py"):
        bad = {
            m for m in _imports(f) if m.split(".")[-1] in {"corpus", "builders", "paper", "check"}
        }
        assert not bad, (f.name, bad)
    for name in ("corpus", "builders", "paper", "check", "outline", "model", "text"):
        assert not any("writers" in m for m in _imports(PKG / f"{name}.py")), name
    assert not (ROOT / "cqo_assistant" / "export.py").exists()
