"""Metrics checked against values computed by hand on small made-up rankings."""

from __future__ import annotations

import pytest

from cqo_assistant.evaluate import citation_pr, first_rank, matches, ranking_metrics, verbatim

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
