"""Which clause a follow-up question is about, learned from dialogs.

The rules in ``Assistant._context`` decide *how* a follow-up is retrieved (alone, or as a story
after the last question). Which of the few best clauses then comes first depends on how much the
follow-up leans on the last answer, and no single blend weight gets it right: "那人事任免呢？"
after 8.1 g) wants the sibling its own words name, "具体有哪些？" wants the last clause again,
"工作内容里对应的是？" wants the clause under the chapter it names. So the order of the best few
is learned: each candidate clause gets features from the rankings we already have (the rules'
final ranking, the follow-up's own, the story's, the last question's), from its place relative
to the last answer's clause (same, sibling, child, parent), and from the follow-up's own words;
and from the question bank: the bank questions nearest in meaning to the follow-up alone, and
to the last question and the follow-up together, vote for their clauses (a follow-up with no
words of its own, "在这上面他有什么权？" or "钱从哪来？", is still near the bank's questions about
powers or funds, so the votes say which chapter it turns to); and from the training dialogs'
follow-ups most like this one by words, told after their last question and alone
(``memory_votes``): they vote for the clauses they were about, so how staff turn from a duty to
its work item or its power is learned from dialogs, not written as rules. A conditional logit
(softmax over one turn's candidates) scores them. Its weights are fitted by
``cqo eval --split dev --fit-follow-ups`` on the training dialogs
(``corpus/<code>.dialogs.jsonl``, written blind from the standard) and the dev dialogs, and
saved in ``data/followup.json`` with the embedder they were fitted with (dense scores are on
each model's own scale: another embedder keeps the rules' order until it is fitted for it).

Pure: no I/O except ``load``/``save``; numpy only (no scikit-learn at run time)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bank import BankEntry, FollowUp
from .index import MemoryIndex
from .parse import Clause
from .retrieve import Hit
from .segment import DATA_DIR

PATH = DATA_DIR / "followup.json"
FEATURES = (
    "names_ancestor",  # the follow-up names the title of the clause or one of its ancestors
    "names_ancestor_x_ranked",
    "heading",  # a heading without text of its own
    "item",  # a list item
    "heading_x_own",
    "rr_final",  # 1/rank in the rules' final ranking (0 beyond 20)
    "rr_alone",  # … in the follow-up's own ranking
    "rr_story",  # … in the story's (last question, then this one)
    "rr_prev",  # … in the last question's
    "same",  # the last answer's clause
    "sibling",
    "child",
    "parent",
    "rr_alone_x_stands",  # the follow-up would be answered alone
    "rr_alone_x_own",  # it has words of its own (0, 0.5, 1 for 0, 1, 2+)
    "same_x_own",
    "same_x_leans",  # it leans on the last question (a pronoun, "…呢")
    "sibling_x_own",
    "child_x_leans",
    "rr_final_x_story",  # retrieved as a story
    "rr_alone_x_story",
    "top_final",
    "top_alone",
    "top_alone_x_stands",
    "top_final_x_story",
    "fused_alone",  # scores scaled to [median, best] → [0, 1] within the ranking
    "bm25_alone",
    "dense_alone",
    "fused_story",
    "fused_prev",
    "own_overlap",  # share of the follow-up's own words found in the clause (text and path)
    "prev_overlap",  # … of the last question's words
    "own_overlap_x_own",
    "fused_alone_x_own",
    "dense_alone_x_own",
    "fused_prev_x_leans",
    "same_x_own_overlap",
    "bank_own_chapter",  # share of the votes of the 20 bank questions nearest the follow-up
    "bank_own_clause",  # alone for the clause's chapter, the clause, its family (itself, its
    "bank_own_family",  # parent, its items)
    "bank_story_chapter",  # … nearest the last question and the follow-up together
    "bank_story_clause",
    "bank_story_family",
    "memory_own_chapter",  # … of the 3 training follow-ups most like this one alone (words)
    "memory_own_clause",
    "memory_own_family",
    "memory_story_chapter",  # … told after their last question, like this one after its own
    "memory_story_clause",
    "memory_story_family",
)
BANK_NEIGHBOURS = 20
MEMORY_NEIGHBOURS = 3  # 5-fold CV on the training and dev dialogs: 0.899 against 0.889 for 5
_DEPTH = 20  # ranks beyond this count as absent
_CANDIDATES = (5, 3, 3)  # from the final, own and story rankings


@dataclass(frozen=True)
class Turn:
    """What is known about one follow-up when its clauses are ordered."""

    question: str  # normalised
    story: bool  # retrieved as a story after the last question
    final: Sequence[Hit]  # the rules' ranking
    alone: Sequence[Hit]  # the follow-up's own ranking
    story_hits: Sequence[Hit]  # the story's ranking (last question, then this one)
    prev: Sequence[Hit]  # the last question's ranking (itself in context)
    own_words: Sequence[str]
    prev_words: Sequence[str]
    stands_alone: bool  # answered on its own words
    leans: bool  # leans on the last question
    bank_own: Mapping[str, float] = field(default_factory=dict)  # bank_votes, follow-up alone
    bank_story: Mapping[str, float] = field(default_factory=dict)  # … after the last question
    memory_own: Mapping[str, float] = field(default_factory=dict)  # memory_votes, alone
    memory_story: Mapping[str, float] = field(default_factory=dict)  # … after the last question

    def candidates(self) -> list[str]:
        n_final, n_alone, n_story = _CANDIDATES
        ids = [h.clause_id for h in self.final[:n_final]]
        ids += [h.clause_id for h in self.alone[:n_alone]]
        ids += [h.clause_id for h in self.story_hits[:n_story]]
        return list(dict.fromkeys(ids))


def _rr(ranks: dict[str, int], cid: str) -> float:
    r = ranks.get(cid)
    return 1.0 / (r + 1) if r is not None and r < _DEPTH else 0.0


def _scaled(hits: Sequence[Hit], attr: str) -> dict[str, float]:
    values = np.array([getattr(h, attr) for h in hits], dtype=float)
    if not len(values):
        return {}
    top, mid = float(values.max()), float(np.median(values))
    return {h.clause_id: (v - mid) / (top - mid + 1e-9) for h, v in zip(hits, values, strict=True)}


def _relation(cid: str, last: str, clauses: dict[str, Clause]) -> str:
    c, p = clauses[cid], clauses[last]
    if cid == last:
        return "same"
    if c.parent == last:
        return "child"
    if p.parent == cid:
        return "parent"
    if c.parent is not None and c.parent == p.parent:
        return "sibling"
    return "none"


def _overlap(words: Sequence[str], c: Clause) -> float:
    if not words:
        return 0.0
    text = c.quote_text + c.path_str
    return sum(w in text for w in words) / len(words)


def _names_ancestor(question: str, cid: str, clauses: dict[str, Clause]) -> bool:
    k: str | None = cid
    while k is not None:
        title = clauses[k].title
        if len(title) >= 2 and title in question:
            return True
        k = clauses[k].parent
    return False


def bank_votes(
    similarity: np.ndarray, entries: Sequence[BankEntry | FollowUp], k: int = BANK_NEIGHBOURS
) -> dict[str, float]:
    """Each clause's share of the votes of the ``k`` bank questions most similar to a text
    (``similarity``: cosine to every entry): a question votes its cosine (at least 0), split
    among its clauses; an unanswerable one votes for none, so its weight lowers every share."""
    top = np.argsort(-similarity, kind="stable")[:k]
    weights = np.maximum(similarity[top], 0.0)
    total = float(weights.sum()) + 1e-9
    votes: dict[str, float] = {}
    for i, w in zip(top, weights, strict=True):
        cs = entries[i].clauses
        for c in cs:
            votes[c] = votes.get(c, 0.0) + float(w) / len(cs) / total
    return votes


def memory_votes(
    memory: MemoryIndex, last: str, question: str, leave_out: str = ""
) -> tuple[dict[str, float], dict[str, float]]:
    """``bank_votes`` of the training follow-ups most like ``question`` asked after ``last``:
    (alone, as a story). ``leave_out``: a batch of dialogs that may not vote (fitting: a
    training follow-up must not meet its own dialog, nor its writer's other dialogs, which are
    more alike than a user's would be)."""
    story, own = memory.scores(last, question)
    if leave_out:
        out = np.array([x.batch == leave_out for x in memory.entries], dtype=bool)
        story, own = np.where(out, -1.0, story), np.where(out, -1.0, own)
    return (
        bank_votes(own, memory.entries, MEMORY_NEIGHBOURS),
        bank_votes(story, memory.entries, MEMORY_NEIGHBOURS),
    )


def _chapter(cid: str, clauses: dict[str, Clause]) -> str:
    while (parent := clauses[cid].parent) is not None:
        cid = parent
    return cid


def _vote_features(cid: str, votes: Mapping[str, float], clauses: dict[str, Clause]) -> list[float]:
    """(chapter, clause, family) shares of ``votes`` for candidate ``cid``."""
    chapter = _chapter(cid, clauses)
    c = clauses[cid]
    return [
        sum(v for k, v in votes.items() if k in clauses and _chapter(k, clauses) == chapter),
        votes.get(cid, 0.0),
        sum(
            v
            for k, v in votes.items()
            if k == cid or k == c.parent or (k in clauses and clauses[k].parent == cid)
        ),
    ]


def features(turn: Turn, clauses: dict[str, Clause]) -> tuple[list[str], np.ndarray]:
    """The candidates of ``turn`` and their feature rows (columns as ``FEATURES``)."""
    ids = turn.candidates()
    ranks = {
        name: {h.clause_id: i for i, h in enumerate(hits[:_DEPTH])}
        for name, hits in (
            ("final", turn.final),
            ("alone", turn.alone),
            ("story", turn.story_hits),
            ("prev", turn.prev),
        )
    }
    fused_alone, bm25_alone = _scaled(turn.alone, "score"), _scaled(turn.alone, "bm25")
    dense_alone = _scaled(turn.alone, "dense")
    fused_story, fused_prev = _scaled(turn.story_hits, "score"), _scaled(turn.prev, "score")
    last = turn.prev[0].clause_id if turn.prev else None
    own = min(len(turn.own_words), 2) / 2
    story, stands, leans = float(turn.story), float(turn.stands_alone), float(turn.leans)
    rows = []
    for cid in ids:
        c = clauses[cid]
        rel = _relation(cid, last, clauses) if last else "none"
        same, sib, child, par = (float(rel == k) for k in ("same", "sibling", "child", "parent"))
        rf, ra = _rr(ranks["final"], cid), _rr(ranks["alone"], cid)
        rs, rp = _rr(ranks["story"], cid), _rr(ranks["prev"], cid)
        heading = float(not c.text)
        named = float(_names_ancestor(turn.question, cid, clauses))
        fa, da = fused_alone.get(cid, 0.0), dense_alone.get(cid, 0.0)
        fp = fused_prev.get(cid, 0.0)
        ow, pw = _overlap(turn.own_words, c), _overlap(turn.prev_words, c)
        rows.append(
            [named, named * (rf > 0), heading, float(c.is_item), heading * own,
             rf, ra, rs, rp, same, sib, child, par,
             ra * stands, ra * own, same * own, same * leans, sib * own, child * leans,
             rf * story, ra * story, float(rf == 1.0), float(ra == 1.0),
             float(ra == 1.0) * stands, float(rf == 1.0) * story,
             fa, bm25_alone.get(cid, 0.0), da, fused_story.get(cid, 0.0), fp,
             ow, pw, ow * own, fa * own, da * own, fp * leans, same * ow,
             *_vote_features(cid, turn.bank_own, clauses),
             *_vote_features(cid, turn.bank_story, clauses),
             *_vote_features(cid, turn.memory_own, clauses),
             *_vote_features(cid, turn.memory_story, clauses)]
        )  # fmt: skip
    return ids, np.array(rows, dtype=float).reshape(len(ids), len(FEATURES))


@dataclass(frozen=True)
class FollowUpModel:
    weights: tuple[float, ...]
    embedder: str

    def order(self, turn: Turn, clauses: dict[str, Clause]) -> list[str]:
        """The candidates best first, then the rest of the final ranking in its order."""
        ids, x = features(turn, clauses)
        scores = x @ np.array(self.weights)
        best = [ids[i] for i in np.argsort(-scores, kind="stable")]
        chosen = set(best)
        return best + [h.clause_id for h in turn.final if h.clause_id not in chosen]

    @classmethod
    def load(cls, embedder: str, path: Path | None = None) -> FollowUpModel | None:
        """The fitted model, or None (the rules' order) when there is none, it was fitted for
        other features, or with another embedder."""
        path = path or Path(os.environ.get("CQO_FOLLOWUP") or PATH)
        try:
            data = json.loads(path.read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        if tuple(data.get("features", ())) != FEATURES or data.get("embedder") != embedder:
            return None
        return cls(tuple(float(w) for w in data["weights"]), embedder)


# --- fitting (``cqo eval --fit-follow-ups``) ------------------------------------------------
Group = tuple[np.ndarray, np.ndarray]  # a turn's candidate features, and which are right (0/1)


def fit(groups: Sequence[Group], lam: float, steps: int = 50) -> np.ndarray:
    """Conditional-logit weights: maximise the softmax probability of the right candidates of
    each turn, with an L2 penalty ``lam``; Newton's method (the loss is convex). Turns where
    every candidate or none is right carry no information and are skipped."""
    usable = [(x, y / y.sum()) for x, y in groups if 0 < y.sum() < len(y)]
    d = usable[0][0].shape[1] if usable else len(FEATURES)
    w = np.zeros(d)
    for _ in range(steps):
        grad, hess = lam * w, lam * np.eye(d)
        for x, y in usable:
            s = x @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            grad -= x.T @ (y - p)
            mu = x.T @ p
            hess += x.T @ (x * p[:, None]) - np.outer(mu, mu)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    return w


def top_right(groups: Sequence[Group], w: np.ndarray) -> float:
    """Share of turns whose best-scored candidate is right (turns with no right candidate
    count as misses)."""
    if not groups:
        return 0.0
    return sum(float(y[int(np.argmax(x @ w))] > 0) for x, y in groups) / len(groups)


def cross_validate(
    groups: Sequence[Group], keys: Sequence[str], lam: float, folds: int = 5
) -> float:
    """``top_right`` over ``folds`` folds that keep each dialog (``keys``) in one fold."""
    names = sorted(set(keys))
    order = np.random.RandomState(0).permutation(len(names))
    fold_of = {names[j]: i % folds for i, j in enumerate(order)}
    right = 0.0
    for f in range(folds):
        train = [g for g, k in zip(groups, keys, strict=True) if fold_of[k] != f]
        held = [g for g, k in zip(groups, keys, strict=True) if fold_of[k] == f]
        right += top_right(held, fit(train, lam)) * len(held)
    return right / max(1, len(groups))


def save(w: np.ndarray, embedder: str, info: dict, path: Path = PATH) -> None:
    data = {**info, "embedder": embedder, "features": list(FEATURES), "weights": w.tolist()}
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", "utf-8")
