"""Metrics checked against values computed by hand on small made-up rankings."""

from __future__ import annotations

import numpy as np
import pytest

from cqo_assistant.evaluate import (
    choose_thresholds,
    citation_pr,
    first_rank,
    matches,
    ranking_metrics,
    verbatim,
)

PARENTS = {"5": None, "5.1": "5", "5.1 a)": "5.1", "5.1 e)": "5.1", "7": None, "7.3": "7",
           "7.3 c)": "7.3", "8.1": None, "8.1 d)": "8.1"}  # fmt: skip


def test_matching_rules() -> None:
    assert matches("5.1 e)", "5.1 e)", PARENTS, hier=False)
    assert not matches("5.1", "5.1 e)", PARENTS, hier=False)
    assert matches("7.3 c)", "7.3", PARENTS, hier=True)  # descendant of gold
    assert matches("7.3 c)", "7", PARENTS, hier=True)  # deeper descendant
    assert matches("5.1", "5.1 e)", PARENTS, hier=True)  # parent of a gold list item
    assert not matches("5", "5.1 e)", PARENTS, hier=True)  # grandparent is too broad
    assert not matches("5.1 a)", "5.1 e)", PARENTS, hier=True)  # sibling
    assert not matches("7.3", "7.3 c)", {**PARENTS}, hier=False)


def test_first_rank() -> None:
    assert first_rank(["8.1 d)", "5.1 e)"], ["5.1 e)"], PARENTS, False) == 2
    assert first_rank(["5.1", "5.1 e)"], ["5.1 e)"], PARENTS, True) == 1
    assert first_rank(["7.3"], ["5.1 e)"], PARENTS, True) is None


def test_ranking_metrics_by_hand() -> None:
    # ranks 1, 3, miss, 2 → hit@1 = 1/4, hit@3 = 3/4, hit@5 = 3/4, MRR = (1 + 1/3 + 0 + 1/2)/4
    m = ranking_metrics([1, 3, None, 2])
    assert m["hit@1"] == pytest.approx(0.25)
    assert m["hit@3"] == pytest.approx(0.75)
    assert m["hit@5"] == pytest.approx(0.75)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 3 + 0.5) / 4)
    assert ranking_metrics([11])["mrr@10"] == 0.0  # beyond @10 does not count
    assert ranking_metrics([])["hit@1"] == 0.0


def test_citation_precision_recall_by_hand() -> None:
    # cited 5.1 e) (hits gold 5.1 e)), 8.1 d) (wrong), 7.3 c) (descendant of gold 7.3)
    p, r = citation_pr(["5.1 e)", "8.1 d)", "7.3 c)"], ["5.1 e)", "7.3", "5.1 a)"], PARENTS)
    assert p == pytest.approx(2 / 3)
    assert r == pytest.approx(2 / 3)
    assert citation_pr([], ["5.1"], PARENTS) == (None, 0.0)


def test_verbatim() -> None:
    raw = "企业首席质量官宜具备以下任职资格：\n\na） 具有良好的思想政治\n\n素质；"
    assert verbatim("具有良好的思想政治素质；", raw)
    assert not verbatim("具有良好的政治素质；", raw)
    assert not verbatim("", raw)


def test_choose_thresholds_by_cross_validation() -> None:
    """Hand-checked: q0, q1 answerable, q2, q3 negative; folds {q0, q2} and {q1, q3}.
    c0 answers all; c1 abstains on q0, q2, q3; c2 abstains on q2 only."""

    abstains = np.array(
        [[False, False, False, False], [True, False, True, True], [False, False, True, False]]
    )
    answerable = np.array([True, True, False, False])
    fold = np.array([0, 1, 0, 1])
    # budget 0.5: trained on {q1, q3} c1 wins (catches q3, loses nothing) and loses q0 held out;
    # trained on {q0, q2} c1 loses q0 (1.0 > 0.5), c2 wins and loses nothing held out → 0.5 ≤ 0.5
    chosen, tried = choose_thresholds(abstains, answerable, fold, max_wrong=0.5)
    assert chosen == 1  # all questions, budget 0.5: c1 (loses 1 of 2, catches 2 of 2)
    assert tried == [{"budget": 0.5, "cv_wrongly_abstained": 0.5, "cv_negatives_abstained": 0.5}]
    # max_wrong 0.25: every budget still picks c1 on {q1, q3} (held-out loss 0.5 > 0.25), so all
    # five are tried and the last, 0, picks c2 on all questions (c1 loses q0)
    chosen, tried = choose_thresholds(abstains, answerable, fold, max_wrong=0.25)
    assert chosen == 2
    assert [t["budget"] for t in tried] == [0.25, 0.015, 0.01, 0.005, 0.0]
    assert all(t["cv_wrongly_abstained"] == 0.5 for t in tried)
