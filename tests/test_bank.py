"""The question bank: the committed data is valid and big enough, bad files are refused, and
the pure helpers (near duplicates, the answerability judge's fit and cut-offs) are hand-checked."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cqo_assistant.bank import (
    bank_path,
    batch_of,
    dialogs_path,
    jaccard,
    load_bank,
    load_follow_ups,
    near_duplicates,
    pair_set,
)
from cqo_assistant.errors import CorpusError
from cqo_assistant.evaluate import coverage_rates, cut_offs, dialog_metrics, fit_logistic
from cqo_assistant.parse import load_corpus

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"


@pytest.fixture(scope="module")
def bank() -> list:
    return load_bank(CORPUS, load_corpus(CORPUS))


def test_committed_bank_covers_every_clause(bank: list) -> None:
    ids = {c.id for s in load_corpus(CORPUS) for c in s.clauses}
    written = [e for e in bank if e.style not in ("expansion", "expansion-en")]
    per_clause = Counter(e.clauses[0] for e in written if e.answerable)
    assert set(per_clause) == ids
    assert min(per_clause.values()) >= 25, per_clause.most_common()[-3:]
    assert sum(per_clause.values()) >= 2700
    assert sum(not e.answerable for e in bank) >= 400
    assert all(e.near in ids for e in bank if not e.answerable)
    styles = Counter(e.style for e in written)
    for style in ("scenario", "jargon", "colloquial", "yesno", "dispute", "chapter", "ref"):
        assert styles[style] >= 50, style
    for style in ("typo", "english", "traditional", "meta"):
        assert styles[style] >= 50, style
    assert Counter(e.split for e in bank)["dev"] >= 400


def test_bank_has_no_near_copies_across_splits_or_of_eval_questions(bank: list) -> None:
    """The bank was assembled with near-copies of the gold set and of the batches written by
    then (blind1, the first 100 dialogs) dropped. Batches written later were not filtered (their
    few chance collisions, such as "9.3" or "8.1d讲的啥", are counted in eval/BLIND.md)."""
    train = [e.question for e in bank if e.split == "train"]
    dev = [e.question for e in bank if e.split == "dev"]
    assert near_duplicates(dev, train) == []
    held = []
    for name in ("gold.jsonl", "blind/blind1.jsonl"):
        lines = (ROOT / "eval" / name).read_text("utf-8").splitlines()
        held += [json.loads(x)["question"] for x in lines]
    dialogs = (ROOT / "eval" / "dialogs.jsonl").read_text("utf-8").splitlines()
    held += [t["q"] for x in dialogs if json.loads(x)["id"].startswith("dlg-")
             for t in json.loads(x)["turns"]]  # fmt: skip
    assert near_duplicates(train + dev, held) == []


def test_near_duplicates_by_character_pairs() -> None:
    assert pair_set("一票否决") == frozenset({"一票", "票否", "否决"})
    assert jaccard(pair_set("一票否决权"), pair_set("一票否决")) == 3 / 4
    pairs = near_duplicates(["首席质量官有一票否决权吗", "工资多少"], ["首席质量官有一票否决权么"])
    assert pairs == [(0, 0)]


def _corpus_with_bank(tmp_path: Path, lines: list[str]) -> Path:
    d = tmp_path / "corpus"
    d.mkdir()
    shutil.copy(CORPUS / "DB1302-T-589-2024.txt", d)
    bank_path(d / "DB1302-T-589-2024.txt").write_text("\n".join(lines) + "\n", "utf-8")
    return d


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "a", "question": "x", "clauses": ["8.9"], "kind": "answerable"}', "8.9"),
        ('{"id": "a", "question": "x", "clauses": [], "kind": "answerable"}', "list their"),
        ('{"id": "a", "question": "x", "clauses": ["8.1"], "kind": "maybe"}', "kind"),
        ('{"id": "a", "question": "", "clauses": ["8.1"], "kind": "answerable"}', "empty"),
        ('{"id": "a", "question": "x", "clauses": ["8.1"]', "bad bank line"),
    ],
)
def test_a_bad_bank_line_is_refused_with_file_and_line(
    tmp_path: Path, line: str, message: str
) -> None:
    good = '{"id": "g", "question": "职权有哪些", "clauses": ["8.1"], "kind": "answerable"}'
    d = _corpus_with_bank(tmp_path, [good, line])
    with pytest.raises(CorpusError) as e:
        load_bank(d, load_corpus(d))
    assert ".bank.jsonl:2" in str(e.value) and message in str(e.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "a", "turns": [{"q": "x", "gold": ["8.9"]}, {"q": "y", "gold": []}]}', "8.9"),
        ('{"id": "a", "turns": [{"q": "x"}, {"q": "y", "gold": []}]}', "gold"),
        ('{"id": "a", "turns": [{"q": 3, "gold": []}]}', "bad dialog line"),
        ('{"id": "a", "turns": [', "bad dialog line"),
    ],
)
def test_a_bad_dialog_line_is_refused_with_file_and_line(
    tmp_path: Path, line: str, message: str
) -> None:
    turns = '[{"q": "职权有哪些", "gold": ["8.1"]}, {"q": "第二项", "gold": ["8.1 b)"]}]'
    good = f'{{"id": "t-1", "turns": {turns}}}'
    d = _corpus_with_bank(tmp_path, [])
    dialogs_path(d / "DB1302-T-589-2024.txt").write_text(f"{good}\n{line}\n", "utf-8")
    with pytest.raises(CorpusError) as e:
        load_follow_ups(d, load_corpus(d))
    assert ".dialogs.jsonl:2" in str(e.value) and message in str(e.value)


def test_follow_ups_of_the_training_dialogs() -> None:
    ups = load_follow_ups(CORPUS, load_corpus(CORPUS))
    first = ups[0]  # tA-001's second turn, after its first
    assert (first.last, first.batch) == ("首席质量官这个岗位到底是干嘛的？一句话说说", "tA")
    assert first.question == "为啥还叫它“第一质量人”" and first.clauses == ("3.1",)
    lines = (CORPUS / "DB1302-T-589-2024.dialogs.jsonl").read_text("utf-8").splitlines()
    assert len(ups) == sum(len(json.loads(x)["turns"]) - 1 for x in lines)
    assert {x.batch for x in ups} >= {"tA", "tB", "tC", "tD", "tE", "tF"}
    assert batch_of("d14-007") == "d14" and batch_of("dlg-100") == "dlg"


def test_duplicate_bank_ids_are_refused(tmp_path: Path) -> None:
    good = '{"id": "g", "question": "职权有哪些", "clauses": ["8.1"], "kind": "answerable"}'
    d = _corpus_with_bank(tmp_path, [good, good])
    with pytest.raises(CorpusError, match="duplicate id"):
        load_bank(d, load_corpus(d))


def test_logistic_fit_by_hand() -> None:
    # symmetric data around 0: no bias, a positive weight
    x = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    y = np.array([0.0, 0.0, 1.0, 1.0])
    w = fit_logistic(x, y, l2=1.0)
    assert abs(w[0]) < 1e-9 and w[1] > 0
    # an uninformative feature: the bias is the log-odds of the labels, the weight 0
    w = fit_logistic(np.zeros((4, 1)), np.array([1.0, 1.0, 1.0, 0.0]), l2=1.0)
    assert w[0] == pytest.approx(np.log(3), abs=1e-6) and abs(w[1]) < 1e-9


def test_cut_offs_by_hand() -> None:
    prob = np.array([0.1, 0.5, 0.6, 0.7, 0.8, 0.9, 0.2, 0.3, 0.65])
    ok = np.array([True, True, True, True, True, True, False, False, False])
    # 1 of 6 answerable may fall below: closest_at is the 2nd lowest answerable (0.5);
    # 1 of 3 unanswerable may be answered: answer_at is just above the 2nd highest (0.3)
    answer_at, closest_at = cut_offs(prob, ok, max_not_covered=1 / 6, max_neg_answered=1 / 3)
    assert closest_at == 0.5
    assert answer_at == pytest.approx(0.5)  # never below closest_at
    answer_at, closest_at = cut_offs(prob, ok, max_not_covered=0.0, max_neg_answered=0.0)
    assert closest_at == 0.1 and 0.65 < answer_at < 0.651


def test_coverage_rates_by_hand() -> None:
    rows = [
        (True, "answered"),
        (True, "closest"),
        (True, "not_covered"),
        (True, "answered"),
        (False, "answered"),
        (False, "not_covered"),
    ]
    assert coverage_rates(rows) == {
        "answerable_not_covered": 0.25,
        "answerable_closest": 0.25,
        "unanswerable_answered": 0.5,
    }


def test_dialog_metrics_by_hand() -> None:
    parents = {"8.1": "8", "8.1 d)": "8.1", "8": None, "9.5": "9", "9": None}
    turns = [
        (0, ("8.1",), ["8.1"], "answered"),  # first turn: not a follow-up
        (1, ("8.1 d)",), ["8.1 d)", "8.1"], "answered"),  # hit
        (1, ("9.5",), ["8.1", "9.5"], "closest"),  # rank 2
        (2, (), ["9.5"], "answered"),  # unanswerable, answered
        (2, (), ["9.5"], "closest"),  # unanswerable, not answered
    ]
    m = dialog_metrics(turns, parents)
    assert m["follow_ups"] == 4
    assert m["follow_up_hit@1"] == 0.5
    assert m["follow_up_mrr@10"] == 0.75
    assert m["unanswerable_not_answered"] == 0.5
    assert m["first_turn_hit@1"] == 1.0
