"""Cited answers over the real standard: verbatim quotes, existing ids, abstention, bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from cqo_assistant import Assistant
from cqo_assistant.answer import AnswerConfig, asked_unit, gives_quantity, is_covered
from cqo_assistant.errors import InputError, UnknownClauseError
from cqo_assistant.evaluate import load_gold, verbatim
from cqo_assistant.parse import read_text
from cqo_assistant.retrieve import QuerySignals

ROOT = Path(__file__).resolve().parent.parent


def test_every_citation_exists_and_is_verbatim(assistant: Assistant) -> None:
    raw = read_text(ROOT / "corpus" / "DB1302-T-589-2024.txt")
    ids = {c.id for c in assistant.clauses()}
    for item in load_gold(ROOT / "eval" / "gold.jsonl"):
        ans = assistant.ask(item.question)
        for c in (*ans.citations, *ans.related):
            assert c.clause in ids, (item.id, c.clause)
            assert verbatim(c.text, raw), (item.id, c.clause, c.text)
            assert c.text in ans.text or not ans.found or c.text == "", (item.id, c.clause)
        assert set(ans.ranked) <= ids


def test_cited_answer(assistant: Assistant) -> None:
    ans = assistant.ask("首席质量官需要什么学历？")
    assert ans.found
    assert ans.citations[0].clause == "5.1 e)"
    assert "大学专科以上学历" in ans.text
    assert ans.text.rstrip().splitlines()[-1].startswith("依据：DB1302/T 589—2024 第5.1条 e)")


@pytest.mark.parametrize("q", ["首席质量官的工资是多少", "如何注册一家有限责任公司？"])
def test_not_covered(assistant: Assistant, q: str) -> None:
    ans = assistant.ask(q)
    assert not ans.found
    assert "未涉及" in ans.text and not ans.citations
    assert ans.related and "相关条款" in ans.text


@pytest.mark.parametrize(
    "q, gold",
    [
        ("首席質量官有哪些職權", "8.1"),
        ("What is a chief quality officer?", "3.1"),
        ("CQO有一票否决权吗", "8.1 d)"),
        ("<script>alert(1)</script>首席质量官的任职资格", "5.1"),
        ("首席质量官😀的行为规范\x00\x07有哪些", "5.3"),
    ],
)
def test_odd_but_answerable(assistant: Assistant, q: str, gold: str) -> None:
    ans = assistant.ask(q)
    top = ans.ranked[0]
    assert top == gold or top.startswith(gold + " ") or gold.startswith(top), (q, ans.ranked)


@pytest.mark.parametrize("q", ["", "   \n\t", "\x00\x01", "问" * 10_000, None])
def test_bad_questions(assistant: Assistant, q: object) -> None:
    with pytest.raises(InputError) as e:
        assistant.ask(q)  # type: ignore[arg-type]
    assert "/" in str(e.value)  # bilingual message


def test_follow_up_uses_history(assistant: Assistant) -> None:
    alone = assistant.ask("那它有哪些职权？")
    follow = assistant.ask("那它有哪些职权？", history=["首席质量官是什么？"])
    assert follow.found and follow.ranked[0].startswith("8.1")
    assert alone.question == follow.question
    # a follow-up with no content of its own is answered from the previous question …
    vague = assistant.ask("具体有哪些？", history=["首席质量官的任职能力有哪些要求？"])
    assert vague.found and vague.citations[0].clause == "5.2"
    assert not assistant.ask("具体有哪些？").found
    # … one the standard answers on its own keeps its own words
    own = assistant.ask("那什么情况下会被解聘？", history=["首席质量官有哪些工作职责？"])
    assert own.citations[0].clause == "9.5"


def test_clause_lookup(assistant: Assistant) -> None:
    assert assistant.clause("5.1 e)").id == "5.1 e)"
    assert assistant.clause("第5.1条 e）").id == "5.1 e)"
    assert assistant.clause("5.1E").id == "5.1 e)"
    with pytest.raises(UnknownClauseError) as e:
        assistant.clause("5.1 z)")
    assert "5.1 a)" in e.value.nearest


def test_answer_json_contract(assistant: Assistant) -> None:
    d = assistant.ask("首席质量官由谁任命？").to_json("x1")
    assert list(d) == ["id", "question", "found", "answer", "citations", "related", "ranked"]
    assert d["id"] == "x1" and len(d["ranked"]) <= 10
    assert set(d["citations"][0]) == {"clause", "path", "text", "score"}
    json.dumps(d, ensure_ascii=False)


@pytest.mark.parametrize(
    ("question", "unit", "text", "answers"),
    [
        ("干几年质量才能当质量官？", "年", "从事质量工作5年以上", True),
        ("继续教育要修满多少学时？", "(?:小时|学时)", "从事质量工作5年以上", False),
        ("任期一般是几年？", "年", "任期届满，企业可根据考核结果续聘", False),
        ("最多可以设几名首席质量官？", "[次名位人]", "设置1名首席质量官", True),
        ("有哪些工作职责？", None, "", False),
        ("检定周期是一年还是半年？", "年", "计量器具定期检定", False),  # a choice of figures
        ("是厂长还是总经理？", None, "", False),
    ],
)
def test_quantity_questions_need_a_figure_in_the_unit_asked(
    question: str, unit: str | None, text: str, answers: bool
) -> None:
    assert asked_unit(question) == unit
    if unit is not None:
        assert gives_quantity(text, unit) is answers


def test_quantity_question_abstains_when_the_best_clause_has_no_such_figure(
    assistant: Assistant,
) -> None:
    assert not assistant.ask("首席质量官一届任期是几年？").found  # 9.2 gives no term length
    assert assistant.ask("没评上职称的话，得干几年质量才能当质量官？").found  # 5.1 e): 5年


@pytest.mark.parametrize(
    "q",
    [
        "北京市对设立首席质量官的企业有什么补贴政策？",  # 补贴: never in the standard
        "IATF 16949审核时质量官需要准备哪些资料？",  # names another standard
    ],
)
def test_asking_about_what_the_standard_never_names_abstains(assistant: Assistant, q: str) -> None:
    signals = assistant.retriever.rank(q)[1]
    assert signals.unknown and not signals.agree
    ans = assistant.ask(q)
    assert not ans.found and f"本标准中没有“{signals.unknown[0]}”" in ans.text


def test_an_unknown_word_is_no_reason_to_abstain_when_it_is_not_asked_about(
    assistant: Assistant,
) -> None:
    # 光杆司令 / 说法 are not the standard's words, but the question asks what it says about a
    # one-person quality department (4.3)
    q = "我们厂质量部门就我一个人，首席质量官成了光杆司令，标准对这种情况有什么说法？"
    assert not assistant.retriever.rank(q)[1].unknown
    assert assistant.ask(q).found


def test_an_unknown_asked_about_word_abstains_only_when_the_retrievers_disagree() -> None:
    cfg = AnswerConfig()
    sure = QuerySignals(1.0, 5.0, 0.95, True)
    assert is_covered(sure, cfg)
    assert is_covered(replace(sure, unknown=("本领",)), cfg)  # both point to one clause
    assert not is_covered(replace(sure, unknown=("补贴",), agree=False), cfg)


def test_dense_floor_marks_off_topic_questions_that_share_a_word() -> None:
    cfg = AnswerConfig(min_coverage=0.4, min_bm25=0.0, dense_floor=0.84)
    shares_a_name = QuerySignals(0.5, 2.5, 0.83, False)  # "唐山这周末会下雨吗"
    assert not is_covered(shares_a_name, cfg)
    assert is_covered(replace(shares_a_name, dense_top=0.86), cfg)
    # only the standard's words ("王超是谁？", a drafter named in the foreword): not off-topic
    assert is_covered(replace(shares_a_name, content_coverage=1.0), cfg)
    # an English question's cosines to the Chinese text run lower: the floor does not judge it
    assert is_covered(replace(shares_a_name, foreign=True), cfg)


def test_dense_thresholds_apply_only_to_the_calibrated_embedder() -> None:
    from cqo_assistant.retrieve import load_calibration

    calibrated = load_calibration()["embedder"]
    cfg = AnswerConfig.load(calibrated)
    assert cfg == AnswerConfig.load() and cfg.dense_floor > 0
    other = AnswerConfig.load("sentence-transformers:bge-small-zh:abc")
    assert other == cfg.words_only()
    assert other.dense_floor == 0.0 and other.min_dense == float("inf")
    assert other.min_coverage == cfg.min_coverage  # the word thresholds still hold
    # a cosine on another model's scale neither answers nor abstains on its own
    assert not is_covered(QuerySignals(0.0, 0.0, 0.99, True), other)
    assert is_covered(QuerySignals(1.0, 3.0, 0.10, False), other)


@pytest.mark.parametrize("q", ["唐山明天会刮大风吗？", "唐山有什么好玩的景点？"])
def test_off_topic_question_naming_the_standards_city(assistant: Assistant, q: str) -> None:
    assert not assistant.ask(q).found


def test_a_drafter_named_in_the_foreword(assistant: Assistant) -> None:
    ans = assistant.ask("王超是谁？")
    assert ans.found and ans.citations[0].clause == "前言"


def test_bm25_alone_is_judged_on_words(assistant: Assistant) -> None:
    """BM25 has no dense scores (0.0): the dense floor must not make it abstain on everything."""
    q = "首席质量官直接领导哪些部门，比如车间？"  # 车间 is not the standard's word
    assert assistant.retriever.rank(q, "bm25")[1].content_coverage < 1.0
    ans = assistant.ask(q, method="bm25")
    assert ans.found and ans.citations[0].clause == "4.4"
    assert not assistant.ask("首席质量官的工资是多少", method="bm25").found


def test_states_figure(assistant: Assistant) -> None:
    from cqo_assistant.answer import states_figure

    def top(q: str) -> list:
        return assistant.retriever.rank(q)[0]

    clauses = assistant.clause_map
    q = "首席质量官一届任期是几年？"  # 9.2 speaks of the term but gives no length
    assert top(q)[0].clause_id == "9.2" and not states_figure(q, top(q), clauses)
    q = "首席质量官要有几年质量工作经历？"  # 5.1 e): 5年以上
    assert states_figure(q, top(q), clauses)
    q = "首席质量官有哪些职权？"  # not a quantity question
    assert states_figure(q, top(q), clauses)
