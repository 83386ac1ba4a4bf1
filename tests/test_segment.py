"""Query normalisation: stemming, homophone typos (hand-checked examples)."""

from __future__ import annotations

import pytest

from cqo_assistant import Assistant, segment


@pytest.mark.parametrize(
    ("word", "stem"),
    [("appoints", "appoint"), ("appointed", "appoint"), ("duties", "duty"), ("process", "process")],
)
def test_stem(word: str, stem: str) -> None:
    assert segment.stem(word) == stem
    assert segment.stem("聘任") == "聘任"


def test_homophones_pure() -> None:
    words = {key: ["规划"] for key in segment.pinyin_keys("规划")}
    known = frozenset({"战略"})
    assert segment.homophones("战略规化", words, known) == ["规划"]
    assert segment.homophones("战略规划", words, frozenset({"规划"})) == []  # spelt right
    assert segment.homophones("鬼话", words, known) == []  # no character in common


@pytest.mark.parametrize(
    ("typo", "fixed"),
    [
        ("首席质量官在哪些情况下会被解除聘认？", "解除聘任"),
        ("质量官每年要参加继续叫育吗？", "教育"),
        ("首席质量官的岗位设制在哪一层？", "设置"),
    ],
)
def test_typos_meet_the_standards_words(assistant: Assistant, typo: str, fixed: str) -> None:
    assert fixed in assistant.retriever.query_text(typo)


def test_common_words_are_not_typos(assistant: Assistant) -> None:
    q = "公司的质量公式怎么算"  # 公式 is a word, not a typo of 公示
    assert assistant.retriever.query_text(q) == "公司的质量公式怎么算"  # unchanged: no 公示


def test_channels_that_match_only_shared_words_do_not_vote(assistant: Assistant) -> None:
    """An English question meets the Chinese text only through CQO → 首席质量官, a word most
    clauses share: the word-BM25 ranking is then clause length and is left out of the fusion."""
    r = assistant.retriever
    english = r.query_tokens("What competencies does the guideline expect a CQO to have?")
    assert "首席质量官" in english and "首席质量官" in r.generic
    assert not r._informs(english, r.index.bm25.vocab, r.generic)
    assert r._informs(english, r.index.bm25_expansion.vocab, r.generic)  # English renderings
    chinese = r.query_tokens("首席质量官需要什么学历？")
    assert r._informs(chinese, r.index.bm25.vocab, r.generic)


@pytest.mark.parametrize(
    ("question", "asked"),
    [
        ("首席质量官备案需要向哪个部门提交哪些材料？", ["部门", "材料"]),
        ("GB/T 19580卓越绩效评价准则的评分总分是多少？", ["总分", "评分"]),
        ("政府对设立首席质量官的企业有什么财政补贴？", ["财政补贴"]),  # not 企业
        ("首席質量官是什麼？", ["首席质量官"]),
        ("明天天气怎么样？", ["天气", "明天"]),
        ("首席质量官需要具备什么样的能力？", ["能力"]),
        ("首席质量官要不要保密？", []),
        ("What salary range is typical for a CQO?", []),
    ],
)
def test_asked_about(question: str, asked: list[str]) -> None:
    assert segment.asked_about(question) == asked


def test_the_standards_own_names_are_words() -> None:
    """唐山 and the drafters' names were cut into single characters (唐/山, 王/超), which every
    question containing 超 or 山 then "shared" with the foreword."""
    assert segment.tokenize("唐山这周末会下雨吗？") == ["唐山", "周末", "下雨"]
    assert "王超" in segment.tokenize("本文件主要起草人：王超、任双武、郭锐")
    assert "超" not in segment.tokenize("本文件主要起草人：王超、任双武、郭锐")
