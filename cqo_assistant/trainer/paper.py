"""A quiz paper: items drawn from the builders so that the paper passes :mod:`.check`.

The paper holds ``n`` items spread over the chosen kinds (evenly, leftovers to kinds that still
have items) and over clauses; no item leaks another's answer, no two share a stem or a family
(one question per list, one per gap), no choice item carries a wording cue, no blank is
ambiguous; single-choice keys are spread evenly over A–D and judge items alternate 正确/错误,
all fixed by the seed. When the (scoped) standard cannot give ``n`` such items the error says
how many it can: the paper is never padded with repeats.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import replace

from ..errors import InputError
from .builders import Candidate, Context, candidates
from .check import ambiguous, choice_cues, key_phrases, shown
from .corpus import Corpus
from .model import DEFAULT_COURSE, FALSE, KINDS, LETTERS, TRUE, Paper, QuizItem


def parse_kinds(kinds: str | Sequence[str] | None) -> list[str]:
    if kinds is None:
        return list(KINDS)
    raw = kinds.split(",") if isinstance(kinds, str) else list(kinds)
    out = [k.strip().lower() for k in raw if k.strip()]
    bad = [k for k in out if k not in KINDS]
    if bad or not out:
        raise InputError(
            f"未知题型 / unknown kind(s): {', '.join(bad) or '(none)'}; "
            f"可选 / choose from: {', '.join(KINDS)}"
        )
    return list(dict.fromkeys(out))


def check_count(n: int) -> int:
    """The one message for a count below 1 (CLI and library alike)."""
    if n < 1:
        raise InputError(f"题目数量须至少为 1 / the number of items must be at least 1 (got {n})")
    return n


class _Picker:
    """Greedy choice of compatible candidates, spreading over clauses."""

    def __init__(self, corpus: Corpus, pools: dict[str, list[Candidate]]):
        self.corpus = corpus
        self.pools = pools
        self.keys = {id(c.item): key_phrases(c.item, corpus) for p in pools.values() for c in p}
        self.text = {id(c.item): shown(c.item) for p in pools.values() for c in p}
        self.picked: list[Candidate] = []
        self.families: set[str] = set()
        self.clauses: set[str] = set()

    def _shows(self, a: QuizItem, b: QuizItem) -> bool:
        text = self.text[id(b)]
        return any(all(part in text for part in key) for key in self.keys[id(a)])

    def compatible(self, c: Candidate) -> bool:
        if c.family in self.families:
            return False
        return not any(
            p.item.stem == c.item.stem or self._shows(c.item, p.item) or self._shows(p.item, c.item)
            for p in self.picked
        )

    def take(self, kind: str, answer: str | None = None) -> bool:
        pool = self.pools[kind]
        for fresh_only in (True, False):
            for c in pool:
                if answer is not None and c.item.answer != answer:
                    continue
                if fresh_only and c.item.clause_id in self.clauses:
                    continue
                if self.compatible(c):
                    pool.remove(c)
                    self.picked.append(c)
                    self.families.add(c.family)
                    self.clauses.add(c.item.clause_id)
                    return True
        return False

    def take_judge(self, rng: random.Random) -> bool:
        answers = [it.item.answer for it in self.picked if it.item.kind == "judge"]
        t, f = answers.count(TRUE), answers.count(FALSE)
        if t != f:
            return self.take("judge", TRUE if t < f else FALSE)
        first = rng.choice((TRUE, FALSE))
        return self.take("judge", first) or self.take("judge", FALSE if first == TRUE else TRUE)


def _place(items: list[QuizItem], rng: random.Random) -> list[QuizItem]:
    """Right options moved to their places: single-choice keys in shuffled blocks of A–D (as
    even as the count allows), multi-choice options shuffled; items numbered from 1."""
    out: list[QuizItem] = []
    slots: list[int] = []
    for number, it in enumerate(items, 1):
        if it.kind in ("single", "multi"):
            right = [o for k, o in enumerate(it.options) if k in it.correct]
            wrong = [o for k, o in enumerate(it.options) if k not in it.correct]
            rng.shuffle(wrong)
            if it.kind == "single":
                if not slots:
                    slots = list(range(len(it.options)))
                    rng.shuffle(slots)
                pos = slots.pop()
                opts = wrong[:pos] + right + wrong[pos:]
            else:
                opts = right + wrong
                rng.shuffle(opts)
            correct = tuple(k for k, o in enumerate(opts) if o in right)
            answer = ",".join(LETTERS[k] for k in correct)
            it = replace(it, options=tuple(opts), correct=correct, answer=answer)
        out.append(replace(it, number=number))
    return out


def build_paper(
    corpus: Corpus,
    n: int = 30,
    kinds: str | Sequence[str] | None = None,
    seed: int = 1,
    scope: Collection[str] | None = None,
    course: str = DEFAULT_COURSE,
) -> Paper:
    """A paper of ``n`` items that passes :func:`.check.check_paper`; same seed, same paper.

    Raises :class:`InputError` when the (scoped) standard cannot give ``n`` such items."""
    ks = parse_kinds(kinds)
    check_count(n)
    pools = candidates(Context(corpus, seed=seed, scope=scope), ks)
    for k in ks:
        pools[k] = [
            c for c in pools[k] if not choice_cues(c.item, corpus) and not ambiguous(c.item, corpus)
        ]
    rng = random.Random(f"pick-{seed}")
    for k in ks:
        rng.shuffle(pools[k])
    picker = _Picker(corpus, pools)
    count = dict.fromkeys(ks, 0)
    open_kinds = list(ks)
    while sum(count.values()) < n and open_kinds:
        k = min(open_kinds, key=lambda x: (count[x], ks.index(x)))
        ok = picker.take_judge(rng) if k == "judge" else picker.take(k)
        if ok:
            count[k] += 1
        else:
            open_kinds.remove(k)
    total = sum(count.values())
    if total < n:
        detail = ", ".join(f"{k} {count[k]}" for k in ks)
        raise InputError(
            f"题目数量 {n} 超过可生成的上限 {total}（{detail}）；请减小数量或增加题型/章节 / "
            f"n={n} is more than the {total} items these clauses and kinds allow ({detail})"
        )
    order = {k: i for i, k in enumerate(KINDS)}
    items = sorted((c.item for c in picker.picked), key=lambda it: order[it.kind])
    return Paper(
        code=corpus.standard.code,
        standard_title=corpus.standard.title,
        items=tuple(_place(items, rng)),
        seed=seed,
        course=course,
    )


def generate_quiz(
    corpus: Corpus,
    n: int = 30,
    kinds: str | Sequence[str] | None = None,
    seed: int = 1,
    scope: Collection[str] | None = None,
) -> list[QuizItem]:
    """The items of :func:`build_paper`."""
    return list(build_paper(corpus, n, kinds, seed, scope).items)
