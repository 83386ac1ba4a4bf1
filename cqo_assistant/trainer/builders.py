"""Item builders: one small class per item form, all behind :class:`ItemBuilder`.

A builder proposes every item its form supports in the (scoped) standard, with the right
options first (``correct`` = their indices); the paper (:mod:`.paper`) picks among them, places
the right options and checks the whole paper. Distractors come from the standard itself: list
items of other lists, drawn by similar length and form, or domain terms of the same kind that
would not fit the gap anywhere in the standard. To add a kind of item, write one more subclass
and list it in :data:`BUILDERS`.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

from ..parse import Clause
from .corpus import NOT_QUIZ_CLAUSES, Corpus, Group, strip_end
from .model import BLANK, FALSE, TRUE, QuizItem
from .text import PUNCT, common_prefix, replace_token, sentence_span


@dataclass(frozen=True)
class Candidate:
    """A proposed item (right options first) and its family: a paper holds one per family."""

    item: QuizItem
    family: str


class Context:
    """What every builder reads: the corpus, the scope and a seeded random source."""

    def __init__(self, corpus: Corpus, seed: int = 1, scope: Collection[str] | None = None):
        self.corpus = corpus
        self.rng = random.Random(seed)
        self.scope = set(scope) if scope is not None else None

    def in_scope(self, c: Clause) -> bool:
        if c.number.split(" ")[0] in NOT_QUIZ_CLAUSES:
            return False
        return self.scope is None or c.id in self.scope

    def foreign_members(self, g: Group, k: int, like: Sequence[str]) -> list[str]:
        """``k`` list items of other lists, none of them in ``g``'s text, most like ``like`` in
        length and form (same first or last character), same chapter before others."""
        own = {strip_end(m.text) for m in g.members}
        inside = self.corpus.subtree_text(g.clause)  # 9.5's items are content of chapter 9 too
        chap = self.corpus.chapter_of(g.clause)
        mean = sum(len(x) for x in like) / max(1, len(like))
        firsts, lasts = {x[:1] for x in like}, {x[-1:] for x in like}
        pool: list[tuple[float, str]] = []
        seen: set[str] = set()
        for other in self.corpus.groups:
            if other.clause.id == g.clause.id:
                continue
            near = self.corpus.chapter_of(other.clause) == chap
            for m in other.members:
                t = strip_end(m.text)
                if t in own or t in seen or t in inside or inside in t:
                    continue
                seen.add(t)
                score = (
                    3 * abs(len(t) - mean) / max(mean, 1)
                    - 0.6 * (t[:1] in firsts)
                    - 0.6 * (t[-1:] in lasts)
                    - 0.3 * near
                    + 0.6 * self.rng.random()
                )
                pool.append((score, t))
        pool.sort()
        return [t for _, t in pool[:k]]

    def item(
        self,
        kind: str,
        form: str,
        c: Clause,
        stem: str,
        right: Sequence[str] = (),
        wrong: Sequence[str] = (),
        answer: str = "",
        note: str = "",
    ) -> QuizItem:
        options = (*right, *wrong)
        return QuizItem(
            kind=kind,
            stem=stem,
            options=tuple(options),
            correct=tuple(range(len(right))),
            answer=answer,
            clause_id=c.id,
            clause_label=self.corpus.heading(c),
            explanation=self.corpus.explanation(c),
            note=note,
            form=form,
        )


class ItemBuilder(ABC):
    """One form of item. ``kind`` is the section it is printed in."""

    kind: ClassVar[str]
    form: ClassVar[str]

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.corpus = ctx.corpus

    @abstractmethod
    def candidates(self) -> Iterator[Candidate]: ...

    def term_slots(self, lead_ins: bool = True) -> Iterator[tuple[Clause, list[str], int, str]]:
        """(clause, its tokens, position, term) for every domain term of every clause in scope
        that has text (``lead_ins=False``: not a list's lead-in ending in "：")."""
        for c in self.corpus.clauses:
            if not self.ctx.in_scope(c) or not c.text:
                continue
            if not lead_ins and c.text.endswith(("：", ":")):
                continue
            toks = self.corpus.tokens(c)
            for i, term in self.corpus.term_slots(c):
                yield c, toks, i, term


def _lead(g: Group) -> str:
    return f"{g.heading}“{g.lead}”" if g.clause.text else g.heading


def _that(g: Group) -> str:
    return "该章" if g.clause.parent is None else "该条"


class MemberBuilder(ItemBuilder):
    """Which of these does the list give? One right list item, three from other lists."""

    kind, form = "single", "member"

    def candidates(self) -> Iterator[Candidate]:
        for g in self.corpus.groups:
            for m in g.members:
                if not self.ctx.in_scope(m):
                    continue
                right = strip_end(m.text)
                wrong = self.ctx.foreign_members(g, 3, [right])
                if len(wrong) == 3:
                    stem = f"{_lead(g)}，下列哪一项是{_that(g)}列出的内容？"
                    it = self.ctx.item(self.kind, self.form, m, stem, [right], wrong)
                    yield Candidate(it, f"list:{g.clause.id}")


class SourceBuilder(ItemBuilder):
    """Where does this text come from? The list's heading and three other titled lists."""

    kind, form = "single", "source"

    def candidates(self) -> Iterator[Candidate]:
        corpus = self.corpus
        for g in corpus.groups:
            if not g.clause.title:
                continue
            for m in g.members:
                if not self.ctx.in_scope(m):
                    continue
                anc = set(corpus.ancestors(m))
                others = [
                    o
                    for o in corpus.groups
                    if o.clause.id != g.clause.id and o.clause.title and o.clause.id not in anc
                ]
                chap = corpus.chapter_of(g.clause)
                others.sort(
                    key=lambda o: (corpus.chapter_of(o.clause) != chap, self.ctx.rng.random())
                )
                if len(others) < 3:
                    continue
                stem = f"“{strip_end(m.text)}”出自本标准哪一条？"
                wrong = [o.heading for o in others[:3]]
                it = self.ctx.item(self.kind, self.form, m, stem, [g.heading], wrong)
                yield Candidate(it, f"source:{m.id}")


def _context_ok(corpus: Corpus, toks: list[str], i: int, cand: str) -> bool:
    """Would ``cand`` in place of ``toks[i]`` read like a phrase the standard really uses?"""
    left = toks[i - 1] if i > 0 and toks[i - 1] not in PUNCT else ""
    right = toks[i + 1] if i + 1 < len(toks) and toks[i + 1] not in PUNCT else ""
    return not ((left and left + cand in corpus.full) or (right and cand + right in corpus.full))


def _stutters(toks: list[str], i: int, cand: str) -> bool:
    """Would the swap read "质量控制控制" (the candidate repeating its neighbour)?"""
    left = toks[i - 1] if i > 0 else ""
    right = toks[i + 1] if i + 1 < len(toks) else ""
    return bool(
        (right and cand.endswith(right[:2]) and len(right) >= 2)
        or (left and cand.startswith(left[-2:]) and len(left) >= 2)
    )


def term_candidates(ctx: Context, c: Clause, i: int, term: str) -> list[str]:
    """Same-kind terms from the standard that may replace ``term`` and are not in the clause,
    best first (terms of sibling clauses, same suffix/prefix, similar length)."""
    corpus = ctx.corpus
    toks = corpus.tokens(c)
    sib_text = "\n".join(corpus.full_text(s) for s in corpus.siblings(c))
    scored: list[tuple[float, float, str]] = []
    for t in corpus.terms:
        if t == term or t in term or term in t or t in c.text:
            continue
        same_tail = t[-2:] == term[-2:] or (t[-1] == term[-1] and max(len(t), len(term)) <= 3)
        same_head = len(t) >= 4 and len(term) >= 4 and t[:2] == term[:2]
        if not (same_tail or same_head) or common_prefix(t, term) >= 4:
            continue  # another kind of term, or a near-synonym (市场监督管理部门/…局)
        if not _context_ok(corpus, toks, i, t) or _stutters(toks, i, t):
            continue
        score = 4 * (t in sib_text) + 3 * same_tail + 2 * same_head + (len(t) == len(term))
        score -= abs(len(t) - len(term))
        scored.append((score, ctx.rng.random(), t))
    scored.sort(key=lambda x: (-x[0], x[1]))
    return [t for _, _, t in scored]


class TermBuilder(ItemBuilder):
    """Which term belongs in the gap? The clause's term and three same-kind terms."""

    kind, form = "single", "term"

    def candidates(self) -> Iterator[Candidate]:
        for c, toks, i, term in self.term_slots():
            wrong = term_candidates(self.ctx, c, i, term)[:3]
            if len(wrong) < 3:
                continue
            stem = f"{self.corpus.ref(c)}：“{replace_token(toks, i, BLANK)}”横线处应为："
            it = self.ctx.item(self.kind, self.form, c, stem, [term], wrong)
            yield Candidate(it, f"gap:{c.id}|{term}")


class MultiBuilder(ItemBuilder):
    """Which of these does the list give? Two to four of its items among items of other lists."""

    kind, form = "multi", "multi"

    def candidates(self) -> Iterator[Candidate]:
        rng = self.ctx.rng
        for g in self.corpus.groups:
            members = [m for m in g.members if self.ctx.in_scope(m)]
            if len(members) < 2:
                continue
            order = members[:]
            rng.shuffle(order)
            n_items = (len(members) + 1) // 2
            for j in range(n_items):
                k = rng.randint(2, min(4, len(members)))
                start = (j * len(members)) // n_items  # rotate: items cover different members
                chosen = [order[(start + x) % len(order)] for x in range(k)]
                chosen.sort(key=lambda m: g.members.index(m))
                right = [strip_end(m.text) for m in chosen]
                wrong = self.ctx.foreign_members(g, 5 - k if k <= 3 else 2, right)
                if not wrong:
                    continue
                stem = f"{_lead(g)}，下列哪些是{_that(g)}列出的内容？（多选）"
                it = self.ctx.item(self.kind, self.form, g.clause, stem, right, wrong)
                yield Candidate(it, f"list:{g.clause.id}")


def _statement_head(corpus: Corpus, c: Clause) -> str:
    return f"{corpus.ref(c)}规定："


class TrueBuilder(ItemBuilder):
    """A clause quoted verbatim (its first sentence when long): 正确."""

    kind, form = "judge", "true"

    def candidates(self) -> Iterator[Candidate]:
        corpus = self.corpus
        for c in corpus.clauses:
            if not self.ctx.in_scope(c) or not c.text or c.text.endswith(("：", ":")):
                continue
            toks = corpus.tokens(c)
            first = "".join(toks[slice(*sentence_span(toks, 0))]).strip()
            stmt = c.text if len(c.text) <= 80 else first
            if len(stmt) < 8:
                continue
            stem = f"{_statement_head(corpus, c)}“{stmt}”"
            yield Candidate(self.ctx.item(self.kind, self.form, c, stem, answer=TRUE), c.id)


class SwapBuilder(ItemBuilder):
    """A clause sentence with one term swapped for a same-kind term: 错误."""

    kind, form = "judge", "swap"

    def candidates(self) -> Iterator[Candidate]:
        for c, toks, i, term in self.term_slots(lead_ins=False):
            cands = term_candidates(self.ctx, c, i, term)
            if not cands:
                continue
            new = cands[0]
            stmt = replace_token(toks, i, new)
            if stmt == c.text or stmt in self.corpus.full or len(stmt) < 8:
                continue
            stem = f"{_statement_head(self.corpus, c)}“{stmt}”"
            note = f"原文为“{term}”，不是“{new}”。"
            it = self.ctx.item(self.kind, self.form, c, stem, answer=FALSE, note=note)
            yield Candidate(it, f"gap:{c.id}|{term}")


class NotMemberBuilder(ItemBuilder):
    """An item of another list said to be in this one: 错误 (one per list)."""

    kind, form = "judge", "not-member"

    def candidates(self) -> Iterator[Candidate]:
        for g in self.corpus.groups:
            if not g.clause.title or not any(self.ctx.in_scope(m) for m in g.members):
                continue
            wrong = self.ctx.foreign_members(g, 1, [strip_end(m.text) for m in g.members])
            if not wrong:
                continue
            stem = f"“{wrong[0]}”是{g.heading}列出的内容。"
            note = "该内容不在本条所列各项中。"
            it = self.ctx.item(self.kind, self.form, g.clause, stem, answer=FALSE, note=note)
            yield Candidate(it, f"not:{g.clause.id}")


class BlankBuilder(ItemBuilder):
    """A clause sentence with one domain term blanked; the term is the answer."""

    kind, form = "blank", "blank"

    def candidates(self) -> Iterator[Candidate]:
        for c, toks, i, term in self.term_slots():
            stem = f"{self.corpus.ref(c)}：“{replace_token(toks, i, BLANK)}”"
            it = self.ctx.item(self.kind, self.form, c, stem, answer=term)
            yield Candidate(it, f"gap:{c.id}|{term}")


BUILDERS: tuple[type[ItemBuilder], ...] = (
    MemberBuilder,
    SourceBuilder,
    TermBuilder,
    MultiBuilder,
    TrueBuilder,
    SwapBuilder,
    NotMemberBuilder,
    BlankBuilder,
)


def candidates(ctx: Context, kinds: Collection[str]) -> dict[str, list[Candidate]]:
    """Every candidate of the chosen kinds, per kind, distinct stems and options."""
    out: dict[str, list[Candidate]] = {k: [] for k in kinds}
    seen: set[str] = set()
    for b in BUILDERS:
        if b.kind not in out:
            continue
        for cand in b(ctx).candidates():
            key = cand.item.stem + "|" + "|".join(sorted(cand.item.options))
            if key not in seen:
                seen.add(key)
                out[b.kind].append(cand)
    return out
