"""The question analysed once: clause references, narratives, talk about the standard itself."""

from __future__ import annotations

import pytest

from cqo_assistant import Assistant, segment
from cqo_assistant.query import cn_number, find_refs, is_bare, split_focus, strip_meta

IDS = {"前言", "5", "5.1", "5.1 e)", "6", "7.1", "7.3", "7.3 b)", "7.3 c)", "8.1", "8.1 d)"}
IDS |= {"8.1 f)", "9", "9.5", "9.5 c)", "7.1.2", "7.1.2 b)"}


@pytest.mark.parametrize(
    ("question", "refs", "bare"),
    [
        ("8.1 d)", ["8.1 d)"], True),
        ("8.1d", ["8.1 d)"], True),
        ("8.1（d）讲的啥", ["8.1 d)"], True),
        ("第8.1条d项", ["8.1 d)"], True),
        ("8.1条第四项", ["8.1 d)"], True),
        ("第八章第一条第六项是啥", ["8.1 f)"], True),
        ("第九章第五条", ["9.5"], True),
        ("7.3里第三条", ["7.3 c)"], True),
        ("9.5", ["9.5"], True),
        ("第9章", ["9"], True),
        ("标准第六章主要讲了什么", ["6"], True),
        ("9.5条c款说的什么", ["9.5 c)"], True),
        ("5.1的e", ["5.1 e)"], True),
        ("7.1.2 b)里的详列是什么意思", ["7.1.2 b)"], False),
        ("8.1 d)的一票否决权董事长能推翻吗", ["8.1 d)"], False),
        # not references
        ("要5年以上质量工作经历吗", [], False),
        ("gb/t 1.1是什么", [], False),  # a standard's designation, not a clause here
        ("任期4.5年可以吗", [], False),
        ("5.1 g)", [], False),  # 5.1 has no item g: not a reference at all
    ],
)
def test_clause_references_in_every_form(question: str, refs: list[str], bare: bool) -> None:
    found, rest = find_refs(segment.normalize(question), IDS)
    assert found == refs
    assert is_bare(rest) is bare or not refs


def test_chinese_numerals() -> None:
    assert [cn_number(x) for x in ("3", "三", "十", "十二", "二十", "两", "x")] == [
        3,
        3,
        10,
        12,
        20,
        2,
        None,
    ]


def test_story_then_question() -> None:
    q = "我们公司去年出了批次质量事故，老板把质量经理撤了。按标准，首席质量官出了这种事会被解聘吗？"
    focus, story = split_focus(q)
    assert focus.startswith("按标准") and "解聘" in focus
    assert story.startswith("我们公司") and "解聘" not in story
    # one sentence: no story
    assert split_focus("首席质量官需要什么学历？") == ("首席质量官需要什么学历？", "")
    # a short judging tail ("谁说得对？") judges the whole story: no split
    dispute = "老王说首席质量官要大专学历。小李说要本科。谁说得对？"
    assert split_focus(dispute) == (dispute, "")


@pytest.mark.parametrize(
    ("question", "kept"),
    [
        ("按标准，首席质量官要什么学历", "首席质量官要什么学历"),
        ("本标准里首席质量官有哪些职权", "首席质量官有哪些职权"),
        ("车间的事归谁管，标准怎么说？", "车间的事归谁管"),
        ("DB1302/T 589—2024对首席质量官有什么要求", "对首席质量官有什么要求"),
    ],
)
def test_talk_about_the_standard_is_removed(question: str, kept: str) -> None:
    out = strip_meta(question.lower())
    assert kept.lower() in out.replace(" ", "") or kept.lower() in out
    assert "标准" not in out.replace("首席质量官", "")


def test_meta_alone_is_kept() -> None:
    assert strip_meta("本标准") == "本标准"  # nothing else to ask about: keep it


def test_query_is_built_once_and_read_by_every_channel(assistant: Assistant) -> None:
    r = assistant.retriever
    q = r.analyse("我们厂上个月出了质量事故。按标准，质量官会被解除聘任吗？")
    assert q is r.analyse("我们厂上个月出了质量事故。按标准，质量官会被解除聘任吗？")  # cached
    assert "事故" in q.story and "解除" in q.focus
    # the focus's words count twice in the word channels, the story's once
    assert q.words.count("解除") == 2 and q.words.count("事故") >= 1
    # search mode: the compound and its parts
    assert {"解除", "聘任", "解除聘任"} <= set(q.words)
    assert "事故" not in q.plain  # abstention reads the question sentence only


def test_compound_parts_meet_the_clause(assistant: Assistant) -> None:
    """解除聘任 is one user-dictionary word; a question writing 解除 … 聘任 apart must still
    share words with 9.5 in the word channel."""
    r = assistant.retriever
    bm = r.index.bm25.scores(list(r.analyse("企业什么时候可以解除他的聘任").words))
    assert r.ids[int(bm.argmax())] in ("9.5", "9.5 a)", "9.5 b)", "9.5 c)", "9")
