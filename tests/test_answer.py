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
from cqo_assistant.parse import Clause, read_text
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
        assert bool(ans.citations) == ans.found, item.id
        for c in ans.citations:  # an answer quotes every clause it cites, in full
            assert c.text and c.text in ans.text, (item.id, c.clause)
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
    """The top clause is the gold one or an item of it ("8.1 e)" for "8.1"), never its parent
    heading ("3" for "3.1", "8" for "8.1"): that would cite a whole chapter."""
    top = assistant.ask(q).ranked[0]
    assert top == gold or top.startswith(gold + " "), (q, top)


@pytest.mark.parametrize(
    ("q", "chinese", "english"),
    [
        ("", "问题为空，请输入一个问题", "the question is empty"),
        ("   \n\t", "问题为空，请输入一个问题", "the question is empty"),
        ("\x00\x01", "问题为空，请输入一个问题", "the question is empty"),
        ("问" * 10_000, "问题太长（10000 字，上限 1000 字）", "question too long (10000 > 1000"),
        (None, "问题必须是文字", "the question must be a string"),
    ],
)
def test_bad_questions(assistant: Assistant, q: object, chinese: str, english: str) -> None:
    """Each message says what is wrong in Chinese and in English."""
    with pytest.raises(InputError) as e:
        assistant.ask(q)  # type: ignore[arg-type]
    zh, _, en = str(e.value).partition(" / ")
    assert chinese in zh and english in en, str(e.value)


@pytest.mark.parametrize(
    ("history", "question", "clause", "quote"),
    [
        # 5.1 f): 经过市场监督管理部门组织的首席质量官任职培训 (它 = the training)
        pytest.param(
            ["首席质量官要参加什么培训？"],
            "那它由谁组织？",
            "5.1 f)",
            "市场监督管理部门组织",
            marks=pytest.mark.xfail(
                strict=True,
                reason="known miss since the bank votes (5d316de): the learned order puts 6.7 "
                "(the CQO organises staff training) first, 9.3 and 5.1 f) next; the rules' "
                "order has 5.1 f) first. The bank questions nearest '那它由谁组织？' alone are "
                "about what the CQO organises",
            ),
        ),
        # 8.2: 质量工作专项经费 … 列入资金使用计划 (它 = the funds)
        (["质量工作经费由谁统一调度？"], "那它要列入什么计划？", "8.2", "由企业首席质量官统一调度"),
    ],
)
def test_a_pronoun_follow_up_is_answered_from_the_history(
    assistant: Assistant, history: list[str], question: str, clause: str, quote: str
) -> None:
    """它 stands for what the last question asked about: with the history the follow-up is
    answered with that clause; on its own the same words rank another clause first."""
    follow = assistant.ask(question, history=history)
    assert follow.found and follow.citations[0].clause == clause, follow.ranked[:3]
    assert quote in follow.text and follow.question == question
    alone = assistant.ask(question)
    assert alone.ranked[0] != clause, alone.ranked[:3]


def test_follow_up_uses_history(assistant: Assistant) -> None:
    # a follow-up with no content of its own is answered from the previous question …
    vague = assistant.ask("具体有哪些？", history=["首席质量官的任职能力有哪些要求？"])
    assert vague.found and vague.citations[0].clause == "5.2"
    lone = assistant.ask("具体有哪些？")  # … and on its own names nothing to answer
    assert not lone.found and lone.ranked[0] != vague.ranked[0]
    # … one the standard answers on its own keeps its own words
    own = assistant.ask("那什么情况下会被解聘？", history=["首席质量官有哪些工作职责？"])
    assert own.citations[0].clause == "9.5"


@pytest.mark.parametrize(
    ("history", "question", "clause"),
    [
        (["首席质量官有哪些职权？"], "第四项是什么意思？", "8.1 d)"),
        (["首席质量官有哪些职权？"], "最后一项呢？", "8.1 g)"),
        (["哪些情形企业宜解除首席质量官的聘任？"], "第二种呢？", "9.5 b)"),
        (["What powers does the CQO have?"], "And the second one?", "8.1 b)"),
        (["首席质量官的工作职责有哪些？"], "第三条讲的啥", "6.3"),
    ],
)
def test_ordinal_follow_up_refers_to_the_last_answers_list(
    assistant: Assistant, history: list[str], question: str, clause: str
) -> None:
    ans = assistant.ask(question, history=history)
    assert ans.found and ans.citations[0].clause == clause, ans.ranked[:3]
    assert assistant.ask(question).ranked[0] != clause  # the history made the difference


@pytest.mark.parametrize(
    ("history", "question", "clause"),
    [
        (["第8.1条d项讲的啥"], "那e项呢", "8.1 e)"),  # a sibling item by its letter
        (["任职资格有哪些要求？"], "c项是什么意思", "5.1 c)"),
        # the list named just before the ordinal, not the last answer's
        (["首席质量官需要什么学历？"], "职权方面第二项是什么", "8.1 b)"),
        # words after the ordinal are about the item of the last answer's list
        (["任职能力有哪些？"], "第三项说的是哪些能力", "5.2 c)"),
    ],
)
def test_follow_up_by_item_letter_or_named_list(
    assistant: Assistant, history: list[str], question: str, clause: str
) -> None:
    ans = assistant.ask(question, history=history)
    assert ans.citations[0].clause == clause, ans.ranked[:3]


@pytest.mark.parametrize("marker", ["另外，", "对了，", "另问：", "说个别的，", "By the way, "])
def test_topic_switch_markers(assistant: Assistant, marker: str) -> None:
    history = ["首席质量官有哪些职权？", "第二项呢"]
    q = f"{marker}首席质量官需要什么学历？"
    assert assistant.contextualize(q, history) == "首席质量官需要什么学历？"


def test_topic_switch_is_answered_on_its_own(assistant: Assistant) -> None:
    history = ["首席质量官有哪些职权？"]
    q = "另外，首席质量官需要什么学历？"
    assert assistant.contextualize(q, history) == "首席质量官需要什么学历？"
    assert assistant.ask(q, history=history).citations[0].clause == "5.1 e)"


def test_an_unanswerable_follow_up_is_not_answered(assistant: Assistant) -> None:
    """The last question's words must not lend it a confident citation."""
    ans = assistant.ask("那他一个月工资多少？", history=["首席质量官有哪些职权？"])
    assert ans.coverage != "answered" and not ans.found


def test_clause_lookup(assistant: Assistant) -> None:
    assert assistant.clause("5.1 e)").id == "5.1 e)"
    assert assistant.clause("第5.1条 e）").id == "5.1 e)"
    assert assistant.clause("5.1E").id == "5.1 e)"
    with pytest.raises(UnknownClauseError) as e:
        assistant.clause("5.1 z)")
    assert "5.1 a)" in e.value.nearest


def test_answer_json_contract(assistant: Assistant) -> None:
    d = assistant.ask("首席质量官由谁任命？").to_json("x1")
    assert list(d) == [
        "id",
        "question",
        "found",
        "answer",
        "citations",
        "related",
        "ranked",
        "coverage",
    ]
    assert d["coverage"] == "answered" and d["found"] is True
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
    term = assistant.ask("首席质量官一届任期是几年？")  # 9.2 speaks of the term, gives no length
    assert not term.found and term.coverage in ("closest", "not_covered")
    assert assistant.ask("没评上职称的话，得干几年质量才能当质量官？").found  # 5.1 e): 5年


@pytest.mark.parametrize(
    ("q", "word"),
    [
        ("北京市对设立首席质量官的企业有什么补贴政策？", "补贴"),  # never in the standard
        ("IATF 16949审核时质量官需要准备哪些资料？", "iatf"),  # another standard (lower-cased)
    ],
)
def test_asking_about_what_the_standard_never_names_abstains(
    assistant: Assistant, q: str, word: str
) -> None:
    signals = assistant.retriever.rank(q)[1]
    assert signals.unknown[0] == word and not signals.agree
    ans = assistant.ask(q)
    assert not ans.found and f"本标准中没有“{word}”" in ans.text, ans.text


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
    assert cfg == AnswerConfig.load() and cfg.dense_floor > 0 and cfg.judge is not None
    other = AnswerConfig.load("sentence-transformers:bge-small-zh:abc")
    assert other == cfg.words_only()
    assert other.dense_floor == 0.0 and other.min_dense == float("inf")
    assert other.min_coverage == cfg.min_coverage  # the word thresholds still hold
    assert other.judge == cfg.judge_words and "dense" not in other.judge.names  # no cosines
    # a cosine on another model's scale neither answers nor abstains on its own
    words = AnswerConfig(min_coverage=0.5, min_bm25=1.0, min_dense=0.9).words_only()
    assert not is_covered(QuerySignals(0.0, 0.0, 0.99, True), words)
    assert is_covered(QuerySignals(1.0, 3.0, 0.10, False), words)


@pytest.mark.parametrize("q", ["唐山明天会刮大风吗？", "唐山有什么好玩的景点？"])
def test_off_topic_question_naming_the_standards_city(assistant: Assistant, q: str) -> None:
    assert not assistant.ask(q).found


def test_a_drafter_named_in_the_foreword(assistant: Assistant) -> None:
    ans = assistant.ask("王超是谁？")
    assert ans.ranked[0] == "前言"
    assert all(c.clause == "前言" for c in ans.citations)  # if cited, rightly


def test_bm25_alone_is_judged_on_words(assistant: Assistant) -> None:
    """BM25 has no dense scores (0.0): the dense floor must not make it abstain on everything."""
    q = "首席质量官直接领导哪些部门，比如车间？"  # 车间 is not the standard's word
    assert assistant.retriever.rank(q, "bm25")[1].content_coverage < 1.0
    ans = assistant.ask(q, method="bm25")
    assert ans.coverage != "not_covered" and ans.ranked[0] == "4.4"
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


# --- structure-aware answers --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("question", "clause", "must_quote"),
    [
        ("9.5", "9.5", ["虚假报告", "违反国家法律法规"]),  # a list with its items
        ("第9章", "9", ["任期届满", "离职、调离", "知情不报"]),  # a chapter with its clauses
        ("7.1", "7.1", ["7.1.1", "7.1.2"]),  # a section naming its sub-sections
        ("第八章第一条第六项是啥", "8.1 f)", ["建议权"]),
        ("8.1d", "8.1 d)", ["一票否决"]),
        ("第8.1条d项", "8.1 d)", ["一票否决"]),
        ("8.1条第四项讲什么", "8.1 d)", ["一票否决"]),
        ("第九章第五条", "9.5", ["虚假报告"]),
        ("7.3里第三条", "7.3 c)", ["六西格玛"]),
        ("标准第六章主要讲了什么", "6", ["6.1", "6.7"]),
    ],
)
def test_a_clause_number_in_any_form_answers_with_that_clause(
    assistant: Assistant, question: str, clause: str, must_quote: list[str]
) -> None:
    ans = assistant.ask(question)
    assert ans.coverage == "answered" and [c.clause for c in ans.citations] == [clause]
    for text in must_quote:
        assert text in ans.text, (question, text)


@pytest.mark.parametrize(
    ("question", "clause"),
    [
        ("工作保障包括哪些方面？", "8"),
        ("第7章主要讲什么？", "7"),
        ("任职资格有哪些？", "5.1"),
        ("岗位职权保证包括哪些内容", "8.1"),
    ],
)
def test_chapter_and_list_questions_answer_with_the_heading(
    assistant: Assistant, question: str, clause: str
) -> None:
    ans = assistant.ask(question)
    assert ans.found and ans.citations[0].clause == clause, ans.ranked[:3]
    c = assistant.clause_map[clause]
    for kid in c.children:  # every child is named or quoted
        k = assistant.clause_map[kid]
        assert k.text in ans.text or k.label in ans.text, (question, kid)


def test_no_clause_is_cited_twice(assistant: Assistant) -> None:
    """A cited list quotes its items: an item of it (or its parent) is never cited beside it."""
    from cqo_assistant.evaluate import ancestors

    parents = {c.id: c.parent for c in assistant.clauses()}
    for item in load_gold(ROOT / "eval" / "gold.jsonl", "dev")[:200]:
        cited = [c.clause for c in assistant.ask(item.question).citations]
        for a in cited:
            for b in cited:
                assert a == b or a not in ancestors(b, parents), (item.question, cited)


@pytest.mark.parametrize(
    ("question", "clause"),
    [
        ("按标准，首席质量官有没有一票否决权？", "8.1 d)"),
        ("本标准里，首席质量官直接领导哪些部门？", "4.4"),
        (
            "上周车间发现一批外协件尺寸超差，质量部长兼首席质量官知道了却一直压着没往上报，"
            "拖到客户投诉才说。按标准，企业能解除他的首席质量官聘任吗？",
            "9.5",  # the list of dismissal cases, b) among them
        ),
    ],
)
def test_meta_phrases_and_stories_do_not_drown_the_question(
    assistant: Assistant, question: str, clause: str
) -> None:
    ans = assistant.ask(question)
    assert ans.found and ans.ranked[0] == clause, ans.ranked[:3]


def test_three_way_coverage_by_hand() -> None:
    """decide(): the judge's probability against its two cut-offs; a bare clause number is
    answered; a missing figure or a question with no content word is at most "closest"."""
    from cqo_assistant.answer import FEATURES, Judge, decide
    from cqo_assistant.retrieve import Hit

    n = len(FEATURES)
    # a judge that reads coverage only: p = sigmoid(4 * (coverage - 0.5))
    w = tuple(4.0 if f == "coverage" else 0.0 for f in FEATURES)
    judge = Judge(FEATURES, (0.0,) * n, (1.0,) * n, w, -2.0, answer_at=0.8, closest_at=0.3)
    cfg = AnswerConfig(judge=judge)
    clause = Clause("8.1 d)", "8.1 d)", "", "一票否决权；", ("8",), "8.1", (), "DB")
    clauses = {"8.1 d)": clause}
    hits = [Hit("8.1 d)", 1.0, clause.text, "")]

    def sig(coverage: float, **kw: object) -> QuerySignals:
        s = QuerySignals(coverage, 3.0, 0.9, True, bank=True)
        return replace(s, **kw)  # type: ignore[arg-type]

    assert decide("有一票否决权吗", hits, sig(1.0), clauses, cfg) == "answered"  # p = 0.88
    assert decide("有一票否决权吗", hits, sig(0.5), clauses, cfg) == "closest"  # p = 0.5
    assert decide("有一票否决权吗", hits, sig(0.0), clauses, cfg) == "not_covered"  # p = 0.12
    assert decide("有一票否决权吗", hits, sig(0.0, bare_ref=True), clauses, cfg) == "answered"
    assert decide("要几年？", hits, sig(1.0), clauses, cfg) == "closest"  # no figure in 8.1 d)
    assert decide("有哪些？", hits, sig(1.0, content=False), clauses, cfg) == "closest"
    assert decide("x", [], sig(1.0), clauses, cfg) == "not_covered"
    # a standard without a question bank is judged by the judge that never saw bank votes
    never = replace(judge, bias=-30.0)
    cfg = AnswerConfig(judge=judge, judge_nobank=never)
    assert decide("有一票否决权吗", hits, sig(1.0, bank=False), clauses, cfg) == "not_covered"


def test_closest_and_not_covered_texts(assistant: Assistant) -> None:
    from cqo_assistant.answer import compose

    q = "首席质量官的一票否决权能被董事长推翻吗？"
    hits, signals = assistant.retriever.rank(q)
    near = compose(q, hits, signals, assistant.clause_map, assistant.config, "closest")
    assert near.text.startswith("标准没有直接回答这个问题，最接近的规定是")
    assert hits[0].text in near.text and not near.found and not near.citations
    assert near.related[0].clause == hits[0].clause_id and near.to_json()["coverage"] == "closest"
    out = compose(q, hits, signals, assistant.clause_map, assistant.config, "not_covered")
    assert "未涉及" in out.text and not out.found and out.to_json()["coverage"] == "not_covered"


def test_history_turns_are_cleaned_not_trusted(assistant: Assistant) -> None:
    """A bot platform may send empty, over-long or non-text turns: they are dropped."""
    history = ["", "问" * 5000, None, 42, "首席质量官有哪些职权？"]
    ans = assistant.ask("第四项是什么意思？", history=history)  # type: ignore[arg-type]
    assert ans.citations[0].clause == "8.1 d)"
    assert assistant.ask("首席质量官需要什么学历？", history=[None]).found  # type: ignore[list-item]


def test_follow_up_edge_cases(assistant: Assistant) -> None:
    history = ["首席质量官有哪些职权？"]
    # "第0项" names no item: not the last one by wrap-around
    assert not assistant.contextualize("第0项是什么？", history).startswith("8.1 g)")
    # 其他 is not a pronoun: a self-contained question is not glued to the last one
    q = "其他部门的绩效考核要不要纳入质量工作？"
    assert not assistant._leans_on_last(q)
    # a bare topic switch with no history is answered as the question it is
    ans = assistant.ask("另外，首席质量官需要什么学历？")
    assert ans.found and ans.citations[0].clause == "5.1 e)"


@pytest.mark.parametrize("method", ["hybrid", "bm25", "dense"])
def test_a_bare_clause_number_is_cited_by_every_method(assistant: Assistant, method: str) -> None:
    assert assistant.ask("9.5", method=method).citations[0].clause == "9.5"
    assert assistant.ask("前言", method=method).ranked[0] == "前言"


def test_a_clause_the_standard_lacks_is_named(assistant: Assistant) -> None:
    ans = assistant.ask("5.4条说了什么？")
    assert ans.coverage == "not_covered" and "本标准没有第5.4条" in ans.text
    assert assistant.ask("第十章讲的啥").coverage == "not_covered"
