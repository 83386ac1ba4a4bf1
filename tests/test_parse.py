"""The clause tree of the real standard, pinned whole; plus a second GB/T 1.1 standard."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from cqo_assistant.errors import CorpusError
from cqo_assistant.parse import clean_spaces, load_corpus, parse_standard, read_text

ROOT = Path(__file__).resolve().parent.parent
RAW = (ROOT / "corpus" / "DB1302-T-589-2024.txt").read_text("utf-8")
SECOND = Path(__file__).parent / "data" / "second-standard.txt"

ITEMS = {
    "5.1": "abcdef", "5.2": "abcd", "5.3": "abcde", "7.1.1": "ab", "7.1.2": "abc",
    "7.2": "abcde", "7.3": "abcdefg", "7.4": "abcdefg", "7.5": "ab", "8.1": "abcdefg",
    "9.5": "abc",
}  # fmt: skip
CLAUSES = ["3.1", "4.1", "4.2", "4.3", "4.4", "5.1", "5.2", "5.3"]
CLAUSES += [f"6.{i}" for i in range(1, 8)] + ["7.1", "7.1.1", "7.1.2", "7.2", "7.3", "7.4", "7.5"]
CLAUSES += ["8.1", "8.2"] + [f"9.{i}" for i in range(1, 6)]


@pytest.fixture(scope="module")
def std():
    return parse_standard(RAW, "DB1302-T-589-2024.txt")


def test_whole_tree(std) -> None:
    ids = [c.id for c in std.clauses]
    expected = ["前言", "引言"] + [str(i) for i in range(1, 10)] + CLAUSES
    expected += [f"{p} {x})" for p, xs in ITEMS.items() for x in xs]
    assert sorted(ids) == sorted(expected)
    assert len(ids) == len(set(ids)) == 91
    assert std.code == "DB1302/T 589—2024"
    assert std.title == "企业首席质量官制度实施指南"


def test_no_page_marks_or_stray_spaces(std) -> None:
    for c in std.clauses:
        assert "DB1302/T" not in c.text, c.id
        assert not re.search(r"[ⅠⅡⅢⅣ]", c.text), c.id
        assert not re.search(r"[\u4e00-\u9fff]\s+[\u4e00-\u9fff]", c.text), c.id
        assert "）" not in c.text[:2]


def test_clause_content(std) -> None:
    by = std.by_id()
    assert by["3.1"].title == "首席质量官"
    assert by["3.1"].text.endswith("注：首席质量官是企业“第一质量人”。")
    assert by["5.1 e)"].text == (
        "取得中级以上相关专业职称，或者具有大学专科以上学历和5年以上质量工作经历；"
    )
    assert by["5.2 d)"].text.endswith("制定出科学合理的解决方案。")  # joined across a break
    assert by["7.3"].path_str == "7 工作内容 > 7.3 企业质量竞争力提升"
    assert by["7.1.2 b)"].path == (
        "7 工作内容",
        "7.1 质量战略制定和部署",
        "7.1.2 质量战略部署",
        "b)",
    )
    assert by["7.1.2 b)"].parent == "7.1.2"
    assert by["8.1"].children == tuple(f"8.1 {x})" for x in "abcdefg")
    assert by["4.1"].text == "通常设置在企业决策层，属于企业高层领导。"
    assert by["2"].text.endswith("GB/T 19580 卓越绩效评价准则")  # code keeps its space
    assert "唐山市丰润区市场监督管理局" in by["前言"].text
    assert by["9.5 c)"].label == "第9.5条 c)"


def test_clean_spaces() -> None:
    assert clean_spaces("和 5 年以上") == "和5年以上"
    assert clean_spaces("“创新型” 员工") == "“创新型”员工"
    assert clean_spaces("GB/T 19580 卓越") == "GB/T 19580 卓越"


def test_second_standard_alone() -> None:
    s = parse_standard(SECOND.read_text("utf-8"), "second.txt")
    assert s.code == "DB13/T 9999—2025"
    assert s.title == "企业质量安全员工作规范"
    by = s.by_id()
    assert set(by) == {"前言", "1", "2", "2.1", "3", "3.1", "3.2", "3.2 a)", "3.2 b)", "4"}
    assert by["2.1"].title == "质量安全员"
    assert by["2.1"].text == "在企业中协助首席质量官开展质量安全日常管控的人员。"
    assert by["3.2 b)"].text == "记录并报告质量安全隐患。"
    assert by["4"].text == "质量安全员每年参加培训不少于8学时。"


def test_two_standards_get_prefixed_ids(tmp_path: Path) -> None:
    shutil.copy(ROOT / "corpus" / "DB1302-T-589-2024.txt", tmp_path / "a.txt")
    shutil.copy(SECOND, tmp_path / "b.txt")
    stds = load_corpus(tmp_path)
    ids = {c.id for s in stds for c in s.clauses}
    assert "DB1302/T 589—2024 5.1 e)" in ids
    assert "DB13/T 9999—2025 3.2 b)" in ids
    c = next(c for s in stds for c in s.clauses if c.id == "DB13/T 9999—2025 3.2 b)")
    assert c.parent == "DB13/T 9999—2025 3.2" and c.number == "3.2 b)"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"", "empty"),
        ("随便写点什么。".encode(), "chapter 1"),
    ],
)
def test_corrupt_corpus_file(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(CorpusError, match=message):
        parse_standard(read_text(p), p.name)


def test_missing_corpus(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"no \.txt"):
        load_corpus(tmp_path)
