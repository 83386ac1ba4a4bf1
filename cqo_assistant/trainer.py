"""Trainer toolkit: course outline, quiz bank and handouts built from the parsed clause tree.

Pure logic here (no file formats; those live in :mod:`cqo_assistant.export`):

- :func:`build_outline` — one module per chapter; learning objectives are a verb ("掌握", "理解",
  "了解") plus the clause's own words, never invented content; key terms are the domain terms
  (``data/userdict.txt``) found in the chapter; every objective carries its clause id.
- :func:`generate_quiz` — single choice, multiple choice, true/false (judge) and fill-in-the-blank
  items generated from the clause text. Every item has its answer, the clause id and the verbatim
  clause text as explanation. Distractors come from the standard itself: list items of sibling
  lists, or domain terms of the same kind (same last character or same two-character prefix,
  preferring terms of sibling clauses); a distractor that occurs in the clause, or that would fit
  the blank's context somewhere else in the standard, is refused, so it is never also correct.
  Judge items that are false swap one term with a same-kind term (sibling clauses first).
- :func:`select_clauses` — the clauses a handout covers (``"5,8.1"`` → chapter 5 and 8.1 with
  everything below them).

Also registers ``cqo outline``, ``cqo quiz`` and ``cqo handout`` (see :func:`register_cli`).
"""

from __future__ import annotations

import argparse
import difflib
import random
import re
import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import InputError
from .parse import Clause, Standard, cite_label, load_corpus
from .segment import DATA_DIR, _cut
from .settings import Settings

KINDS = ("single", "multi", "judge", "blank")
KIND_NAMES = {"single": "单选题", "multi": "多选题", "judge": "判断题", "blank": "填空题"}
LETTERS = "ABCDEFGH"
BLANK = "______"
PAREN = "（    ）"
TRUE, FALSE = "正确", "错误"
# The standard's subject appears in almost every clause: blanking it teaches nothing.
_NOT_QUIZ_TERMS = frozenset({"首席质量官"})
# Front matter and the reference list are not course content.
_NOT_QUIZ_CLAUSES = frozenset({"前言", "2"})
_TRAIL = "；;。，,：:"
_SENT_END = "。；！？\n"
_PUNCT = set("，。；：、！？（）()“”‘’《》,.;:!? /\n")


def _strip_end(s: str) -> str:
    return s.rstrip(_TRAIL)


def _domain_terms() -> tuple[str, ...]:
    terms: list[str] = []
    for line in (DATA_DIR / "userdict.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            terms.append(line.split()[0])
    return tuple(terms)


# ---------------------------------------------------------------------------- corpus view


@dataclass(frozen=True)
class Group:
    """A clause whose members are listed: list items (5.1 a–f) or plain numbered sub-clauses
    of a chapter (6.1–6.7)."""

    clause: Clause
    members: tuple[Clause, ...]

    @property
    def heading(self) -> str:
        c = self.clause
        return f"{c.label}（{c.title}）" if c.title else c.label

    @property
    def lead(self) -> str:
        return _strip_end(self.clause.text)


class Corpus:
    """Read-only helpers over one parsed standard."""

    def __init__(self, standard: Standard):
        self.standard = standard
        self.clauses = standard.clauses
        self.by_id = standard.by_id()
        self.by_number = {c.number: c for c in standard.clauses}
        self.full = "\n".join(c.text for c in standard.clauses)

    @classmethod
    def load(cls, settings: Settings | None = None, standard: str | None = None) -> Corpus:
        settings = settings or Settings.load()
        stds = load_corpus(settings.corpus_dir)
        if standard:
            for s in stds:
                if s.code.replace(" ", "") == standard.replace(" ", ""):
                    return cls(s)
            codes = ", ".join(s.code for s in stds)
            raise InputError(
                f"没有标准 “{standard}” / no standard {standard!r}; 可选 / have: {codes}"
            )
        return cls(stds[0])

    def clause(self, key: str) -> Clause:
        """A clause by id or local number ("5.1 e)", "5.1e)", "5.1 e）", "第5.1条")."""
        k = key.strip().replace("）", ")").replace("第", "").replace("条", "").replace("章", "")
        k = re.sub(r"^([\d.]+)\s*([a-z]\))$", r"\1 \2", k)
        c = self.by_id.get(k) or self.by_number.get(k)
        if c is None:
            near = difflib.get_close_matches(k, list(self.by_number), n=3, cutoff=0.5)
            hint = f"；相近条款 / nearest: {', '.join(near)}" if near else ""
            raise InputError(f"没有条款 “{key}” / no clause {key!r}{hint}")
        return c

    def descendants(self, c: Clause) -> list[Clause]:
        out: list[Clause] = []
        for cid in c.children:
            ch = self.by_id[cid]
            out.append(ch)
            out.extend(self.descendants(ch))
        return out

    def chapter_of(self, c: Clause) -> str:
        return c.number.split(" ")[0].split(".")[0]

    def chapters(self) -> list[Clause]:
        return [c for c in self.clauses if c.parent is None]

    def full_text(self, c: Clause) -> str:
        """Verbatim text of a clause with its list items (labelled), as a trainee reads it."""
        lines = [c.text] if c.text else []
        for cid in c.children:
            ch = self.by_id[cid]
            if ch.is_item:
                lines.append(ch.display_text())
            elif not c.text and not ch.title and ch.text:  # chapter 4: "4.1 通常设置在…"
                lines.append(f"{ch.number} {ch.text}")
        return "\n".join(lines)

    def heading(self, c: Clause) -> str:
        if c.is_item:
            return c.label
        return f"{c.label} {c.title}".strip() if c.title else c.label

    @cached_property
    def groups(self) -> list[Group]:
        out: list[Group] = []
        for c in self.clauses:
            kids = [self.by_id[x] for x in c.children]
            if (len(kids) >= 2 and all(k.is_item for k in kids)) or (
                len(kids) >= 2
                and c.parent is None
                and all(not k.is_item and not k.title and k.text for k in kids)
            ):
                out.append(Group(c, tuple(kids)))
        return out

    @cached_property
    def terms(self) -> tuple[str, ...]:
        """Domain terms that occur in the standard's text, dictionary order."""
        return tuple(t for t in _domain_terms() if t in self.full and t not in _NOT_QUIZ_TERMS)

    def tokens(self, c: Clause) -> list[str]:
        return list(_cut(c.text))

    def term_slots(self, c: Clause) -> list[tuple[int, str]]:
        """(token index, term) for each domain term that is a whole token, occurs once in the
        clause and is not given away by the clause's headings."""
        toks = self.tokens(c)
        terms = set(self.terms)
        heads = " ".join(c.path)
        return [
            (i, t)
            for i, t in enumerate(toks)
            if t in terms and c.text.count(t) == 1 and toks.count(t) == 1 and t not in heads
        ]

    def ref(self, c: Clause) -> str:
        """How a question names a clause: "第5.1条（任职资格）", "第5.1条 e)"."""
        return f"{c.label}（{c.title}）" if c.title and not c.is_item else c.label

    def subtree_text(self, c: Clause) -> str:
        return "\n".join(x.text for x in [c, *self.descendants(c)])

    def siblings(self, c: Clause) -> list[Clause]:
        if c.parent is None:
            return []
        return [self.by_id[x] for x in self.by_id[c.parent].children if x != c.id]


# ---------------------------------------------------------------------------- quiz model


@dataclass(frozen=True)
class QuizItem:
    kind: str  # single | multi | judge | blank
    stem: str
    options: tuple[str, ...]  # empty for judge and blank
    correct: tuple[int, ...]  # indices into options (single, multi)
    answer: str  # "B", "A,C,D", "正确"/"错误", or the blanked term
    clause_id: str
    clause_label: str  # "第5.1条 e)"
    explanation: str  # verbatim clause text
    note: str = ""  # e.g. what a false statement changed
    form: str = ""  # member | source | term | multi | true | swap | not-member | blank
    topic: str = field(default="", compare=False)  # (clause, answer) key, for spreading a bank
    number: int = 0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("topic")
        d["options"] = list(self.options)
        d["correct"] = list(self.correct)
        return d


def _context_ok(corpus: Corpus, toks: list[str], i: int, cand: str) -> bool:
    """Would ``cand`` in place of ``toks[i]`` read like a phrase the standard really uses?"""
    left = toks[i - 1] if i > 0 and toks[i - 1] not in _PUNCT else ""
    right = toks[i + 1] if i + 1 < len(toks) and toks[i + 1] not in _PUNCT else ""
    return not ((left and left + cand in corpus.full) or (right and cand + right in corpus.full))


def _term_candidates(corpus: Corpus, c: Clause, i: int, term: str, rng: random.Random) -> list[str]:
    """Same-kind terms from the standard that may replace ``term`` and are not in the clause,
    best first (terms of sibling clauses, then same suffix/prefix, then similar length)."""
    toks = corpus.tokens(c)
    sib_text = "\n".join(corpus.full_text(s) for s in corpus.siblings(c))
    scored: list[tuple[int, float, str]] = []
    for t in corpus.terms:
        if t == term or t in term or term in t or t in c.text:
            continue
        same_tail = t[-2:] == term[-2:] or (t[-1] == term[-1] and max(len(t), len(term)) <= 3)
        same_head = len(t) >= 4 and len(term) >= 4 and t[:2] == term[:2]
        if not (same_tail or same_head) or _common_prefix(t, term) >= 4:
            continue  # another kind of term, or a near-synonym (市场监督管理部门/…局)
        if not _context_ok(corpus, toks, i, t) or _stutters(toks, i, t):
            continue
        score = 4 * (t in sib_text) + 3 * same_tail + 2 * same_head + (len(t) == len(term))
        scored.append((score, rng.random(), t))
    scored.sort(key=lambda x: (-x[0], x[1]))
    return [t for _, _, t in scored]


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _stutters(toks: list[str], i: int, cand: str) -> bool:
    """Would the swap read "质量控制控制" (the candidate repeating its neighbour)?"""
    left = toks[i - 1] if i > 0 else ""
    right = toks[i + 1] if i + 1 < len(toks) else ""
    return bool(
        (right and cand.endswith(right[:2]) and len(right) >= 2)
        or (left and cand.startswith(left[-2:]) and len(left) >= 2)
    )


def _sentence(toks: list[str], i: int) -> tuple[int, int]:
    """Token range [start, end) of the sentence holding token i (split at 。；！？ and lines)."""
    start = i
    while start > 0 and not any(ch in toks[start - 1] for ch in _SENT_END):
        start -= 1
    end = i + 1
    while end < len(toks) and not any(ch in toks[end - 1] for ch in _SENT_END):
        end += 1
    return start, end


def _ancestors(corpus: Corpus, c: Clause) -> list[str]:
    out: list[str] = []
    p = c.parent
    while p is not None:
        out.append(p)
        p = corpus.by_id[p].parent
    return out


def _replace_token(toks: list[str], i: int, new: str) -> str:
    """The sentence holding token ``i`` with that token replaced (verbatim otherwise)."""
    start, end = _sentence(toks, i)
    return ("".join(toks[start:i]) + new + "".join(toks[i + 1 : end])).strip()


def _options(
    correct: list[str], wrong: list[str], rng: random.Random
) -> tuple[list[str], list[int]]:
    opts = [(o, True) for o in correct] + [(o, False) for o in wrong]
    rng.shuffle(opts)
    return [o for o, _ in opts], [k for k, (_, ok) in enumerate(opts) if ok]


def _letters(idx: Iterable[int]) -> str:
    return ",".join(LETTERS[k] for k in sorted(idx))


class QuizBuilder:
    """Enumerates every item the standard supports (deterministic for a seed)."""

    def __init__(self, corpus: Corpus, seed: int = 1, scope: Collection[str] | None = None):
        self.corpus = corpus
        self.rng = random.Random(seed)
        self.scope = set(scope) if scope is not None else None

    def _in_scope(self, c: Clause) -> bool:
        if c.number.split(" ")[0] in _NOT_QUIZ_CLAUSES:
            return False
        return self.scope is None or c.id in self.scope

    def _item(self, kind: str, c: Clause, **kw: Any) -> QuizItem:
        expl = self.corpus.full_text(c) if not c.is_item else c.display_text()
        return QuizItem(
            kind=kind, clause_id=c.id, clause_label=self.corpus.heading(c), explanation=expl, **kw
        )

    def _choice(
        self, kind: str, c: Clause, right: list[str], wrong: list[str], **kw: Any
    ) -> QuizItem:
        """A single- or multiple-choice item: ``right`` and ``wrong`` shuffled into options."""
        opts, ok = _options(right, wrong, self.rng)
        return self._item(
            kind, c, options=tuple(opts), correct=tuple(ok), answer=_letters(ok), **kw
        )

    # distractor list items for a group: members of other groups, same chapter first
    def _foreign_members(self, g: Group, k: int) -> list[str]:
        own = {_strip_end(m.text) for m in g.members}
        inside = self.corpus.subtree_text(g.clause)  # 9.5's items are content of chapter 9 too
        chap = self.corpus.chapter_of(g.clause)
        pool: list[tuple[int, float, str]] = []
        seen: set[str] = set()
        for other in self.corpus.groups:
            if other.clause.id == g.clause.id:
                continue
            near = self.corpus.chapter_of(other.clause) == chap
            for m in other.members:
                t = _strip_end(m.text)
                if t in own or t in seen or t in inside or inside in t:
                    continue
                seen.add(t)
                pool.append((0 if near else 1, self.rng.random(), t))
        pool.sort()
        return [t for _, _, t in pool[:k]]

    def _lead(self, g: Group) -> str:
        return f"{g.heading}“{g.lead}”" if g.clause.text else g.heading

    def _that(self, g: Group) -> str:
        return "该章" if g.clause.parent is None else "该条"

    def single(self) -> list[QuizItem]:
        out: list[QuizItem] = []
        corpus = self.corpus
        for g in corpus.groups:
            for m in g.members:
                if not self._in_scope(m):
                    continue
                # 1) which of these does the clause list?
                wrong = self._foreign_members(g, 3)
                if len(wrong) == 3:
                    out.append(
                        self._choice(
                            "single",
                            m,
                            [_strip_end(m.text)],
                            wrong,
                            stem=f"{self._lead(g)}，下列哪一项是{self._that(g)}列出的内容？",
                            form="member",
                            topic=f"{m.id}|member",
                        )
                    )
                # 2) where does this text come from?
                anc = set(_ancestors(corpus, m))
                others = [
                    o
                    for o in corpus.groups
                    if o.clause.id != g.clause.id and o.clause.title and o.clause.id not in anc
                ]
                chap = corpus.chapter_of(g.clause)
                others.sort(key=lambda o: (corpus.chapter_of(o.clause) != chap, self.rng.random()))
                if g.clause.title and len(others) >= 3:
                    out.append(
                        self._choice(
                            "single",
                            m,
                            [g.heading],
                            [o.heading for o in others[:3]],
                            stem=f"“{_strip_end(m.text)}”出自本标准哪一条？",
                            form="source",
                            topic=f"{m.id}|source",
                        )
                    )
        # 3) which term belongs in the gap?
        for c in corpus.clauses:
            if not self._in_scope(c) or not c.text:
                continue
            toks = corpus.tokens(c)
            for i, term in corpus.term_slots(c):
                wrong = _term_candidates(corpus, c, i, term, self.rng)[:3]
                if len(wrong) < 3:
                    continue
                out.append(
                    self._choice(
                        "single",
                        c,
                        [term],
                        wrong,
                        stem=f"{corpus.ref(c)}：“{_replace_token(toks, i, PAREN)}”括号处应为：",
                        form="term",
                        topic=f"{c.id}|{term}",
                    )
                )
        return out

    def multi(self) -> list[QuizItem]:
        out: list[QuizItem] = []
        for g in self.corpus.groups:
            members = [m for m in g.members if self._in_scope(m)]
            if len(members) < 2:
                continue
            order = members[:]
            self.rng.shuffle(order)
            n_items = (len(members) + 1) // 2
            for j in range(n_items):
                k = self.rng.randint(2, min(4, len(members)))
                # rotate through the shuffled members so items cover different ones
                start = (j * len(members)) // n_items
                chosen = [order[(start + x) % len(order)] for x in range(k)]
                chosen.sort(key=lambda m: g.members.index(m))
                wrong = self._foreign_members(g, 5 - k if k <= 3 else 2)
                if len(wrong) < 1:
                    continue
                out.append(
                    self._choice(
                        "multi",
                        g.clause,
                        [_strip_end(m.text) for m in chosen],
                        wrong,
                        stem=f"{self._lead(g)}，下列哪些是{self._that(g)}列出的内容？（多选）",
                        form="multi",
                        topic=f"{g.clause.id}|multi|{','.join(m.id for m in chosen)}",
                    )
                )
        return out

    def judge(self) -> list[QuizItem]:
        out: list[QuizItem] = []
        corpus = self.corpus
        for c in corpus.clauses:
            if not self._in_scope(c) or not c.text or c.text.endswith(("：", ":")):
                continue
            head = corpus.ref(c)
            toks = corpus.tokens(c)
            first = "".join(toks[slice(*_sentence(toks, 0))]).strip()
            out.append(
                self._item(
                    "judge",
                    c,
                    stem=f"{head}规定：“{c.text if len(c.text) <= 80 else first}”",
                    options=(),
                    correct=(),
                    answer=TRUE,
                    form="true",
                    topic=f"{c.id}|true",
                )
            )
            for i, term in corpus.term_slots(c):
                cands = _term_candidates(corpus, c, i, term, self.rng)
                if not cands:
                    continue
                new = cands[0]
                stmt = _replace_token(toks, i, new)
                if stmt == c.text or stmt in corpus.full:
                    continue
                out.append(
                    self._item(
                        "judge",
                        c,
                        stem=f"{head}规定：“{stmt}”",
                        options=(),
                        correct=(),
                        answer=FALSE,
                        form="swap",
                        note=f"原文为“{term}”，不是“{new}”。",
                        topic=f"{c.id}|{term}",
                    )
                )
        # membership: is this text listed in that clause?
        for g in corpus.groups:
            if not g.clause.title:
                continue
            members = [m for m in g.members if self._in_scope(m)]
            for m in members:
                wrong = self._foreign_members(g, 1)
                if not wrong:
                    continue
                out.append(
                    self._item(
                        "judge",
                        g.clause,
                        stem=f"“{wrong[0]}”是{g.heading}列出的内容。",
                        options=(),
                        correct=(),
                        answer=FALSE,
                        form="not-member",
                        note="该内容不在本条所列各项中。",
                        topic=f"{g.clause.id}|not|{m.id}",
                    )
                )
                break  # one per list is enough
        return out

    def blank(self) -> list[QuizItem]:
        out: list[QuizItem] = []
        corpus = self.corpus
        for c in corpus.clauses:
            if not self._in_scope(c) or not c.text:
                continue
            toks = corpus.tokens(c)
            for i, term in corpus.term_slots(c):
                out.append(
                    self._item(
                        "blank",
                        c,
                        stem=f"{corpus.ref(c)}：“{_replace_token(toks, i, BLANK)}”",
                        form="blank",
                        options=(),
                        correct=(),
                        answer=term,
                        topic=f"{c.id}|{term}",
                    )
                )
        return out

    def all(self, kinds: Sequence[str]) -> dict[str, list[QuizItem]]:
        out: dict[str, list[QuizItem]] = {}
        for k in kinds:
            seen: set[str] = set()
            items = []
            for it in getattr(self, k)():
                key = it.stem + "|" + "|".join(sorted(it.options))
                if key not in seen and it.topic not in seen:
                    seen.update((key, it.topic))
                    items.append(it)
            out[k] = items
        return out


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


def chapter_scope(corpus: Corpus, chapters: Sequence[str] | str | None) -> set[str] | None:
    """Clause ids under the given chapters ("5,8" or ["5", "8"]); None means everything."""
    if chapters is None:
        return None
    raw = chapters.split(",") if isinstance(chapters, str) else list(chapters)
    wanted = [x.strip() for x in raw if x.strip()]
    if not wanted:
        return None
    scope: set[str] = set()
    for w in wanted:
        c = corpus.clause(w.split(" ")[0])
        scope.add(c.id)
        scope.update(d.id for d in corpus.descendants(c))
    return scope


def generate_quiz(
    corpus: Corpus,
    n: int = 30,
    kinds: str | Sequence[str] | None = None,
    seed: int = 1,
    scope: Collection[str] | None = None,
) -> list[QuizItem]:
    """A bank of ``n`` distinct items spread over ``kinds`` and over clauses; same seed, same bank.

    Raises :class:`InputError` when ``n`` exceeds what the (scoped) standard supports."""
    ks = parse_kinds(kinds)
    if n < 1:
        raise InputError(f"题目数量须至少为 1 / n must be at least 1 (got {n})")
    pools = QuizBuilder(corpus, seed=seed, scope=scope).all(ks)
    rng = random.Random(f"pick-{seed}")
    total = sum(len(p) for p in pools.values())
    if n > total:
        detail = ", ".join(f"{k} {len(p)}" for k, p in pools.items())
        raise InputError(
            f"题目数量 {n} 超过可生成的上限 {total}（{detail}）；请减小数量或增加题型/章节 / "
            f"n={n} is more than the {total} items these clauses and kinds allow ({detail})"
        )
    # how many of each kind: even split, leftovers to kinds that still have items
    want = dict.fromkeys(ks, 0)
    left = n
    while left:
        progressed = False
        for k in ks:
            if left and want[k] < len(pools[k]):
                want[k] += 1
                left -= 1
                progressed = True
        if not progressed:  # pragma: no cover - guarded by the total check
            break
    for p in pools.values():
        rng.shuffle(p)
    used_topics: set[str] = set()
    used_clauses: set[str] = set()
    picked: list[QuizItem] = []
    for k in ks:
        pool = pools[k]
        if k == "judge":  # alternate true and false statements
            trues = [it for it in pool if it.answer == TRUE]
            falses = [it for it in pool if it.answer == FALSE]
            pool = [x for pair in zip(falses, trues, strict=False) for x in pair]
            pool += falses[len(trues) :] + trues[len(falses) :]
        chosen: list[QuizItem] = []
        for strict in (2, 1, 0):
            for it in pool:
                if len(chosen) == want[k]:
                    break
                if it in chosen:
                    continue
                base_topic = it.topic.split("|")[0] + "|" + it.topic.split("|")[1]
                if strict >= 1 and base_topic in used_topics:
                    continue
                if strict == 2 and it.clause_id in used_clauses:
                    continue
                chosen.append(it)
                used_topics.add(base_topic)
                used_clauses.add(it.clause_id)
        picked.extend(chosen)
    order = {k: i for i, k in enumerate(ks)}
    picked.sort(key=lambda it: order[it.kind])
    return [_renumber(it, i) for i, it in enumerate(picked, 1)]


def _renumber(it: QuizItem, number: int) -> QuizItem:
    d = {f: getattr(it, f) for f in it.__dataclass_fields__}
    d["number"] = number
    return QuizItem(**d)


# ---------------------------------------------------------------------------- outline


@dataclass(frozen=True)
class Objective:
    text: str
    clause_id: str


@dataclass(frozen=True)
class Module:
    number: int
    chapter_id: str
    title: str  # "第5章 任职要求"
    objectives: tuple[Objective, ...]
    key_terms: tuple[str, ...]
    clause_ids: tuple[str, ...]  # every clause the module covers
    key_clauses: tuple[str, ...]  # sections that get their own slide / handout heading


@dataclass(frozen=True)
class Outline:
    code: str
    title: str
    modules: tuple[Module, ...]


def _verb(c: Clause, chapter: Clause) -> str:
    if chapter.number in ("1", "3", "引言") or c.number.startswith("3."):
        return "理解"
    if chapter.number in ("2", "前言"):
        return "了解"
    return "掌握"


_BOILERPLATE = re.compile(r"^下列.*适用于本文件")  # GB/T 1.1 set phrases of chapters 2 and 3


def _paragraphs(c: Clause) -> list[str]:
    return [p for p in c.text.splitlines() if p and not _BOILERPLATE.match(p)]


def _objectives(corpus: Corpus, c: Clause, chapter: Clause) -> list[Objective]:
    """A verb plus the clause's own words: its lead-in and item span, its definition, or
    its paragraphs (at most two); GB/T 1.1 boilerplate gives none."""
    verb = _verb(c, chapter)
    items = [corpus.by_id[x] for x in c.children if corpus.by_id[x].is_item]
    head = corpus.heading(c)
    paras = _paragraphs(c)
    if c.number.startswith("3.") and c.title and paras:
        return [Objective(f"{verb}{c.label} 术语“{c.title}”：{paras[0]}", c.id)]
    if items:
        span = f"{items[0].number.split(' ')[-1]}–{items[-1].number.split(' ')[-1]}"
        return [Objective(f"{verb}{head}：{_strip_end(c.text)}（{span}，共{len(items)}项）", c.id)]
    return [Objective(f"{verb}{head}：{p}", c.id) for p in paras[:2]]


def _sections(corpus: Corpus, chapter: Clause) -> list[Clause]:
    """Leaf sections of a chapter: non-item clauses without non-item children (or the chapter)."""
    out: list[Clause] = []

    def walk(c: Clause) -> None:
        sub = [corpus.by_id[x] for x in c.children if not corpus.by_id[x].is_item]
        if not sub:
            out.append(c)
        for s in sub:
            walk(s)

    walk(chapter)
    return out


def key_terms(corpus: Corpus, clauses: Iterable[Clause], limit: int = 10) -> list[str]:
    text = "\n".join(f"{c.title}\n{c.text}" for c in clauses)
    found = [t for t in corpus.terms if t in text]
    # longest first wins over its own parts (质量管理体系 over 质量管理), then by position
    found = [t for t in found if not any(t != o and t in o and o in found for o in found)]
    found.sort(key=lambda t: text.index(t))
    return found[:limit]


def build_outline(corpus: Corpus, chapters: Sequence[str] | str | None = None) -> Outline:
    scope = chapter_scope(corpus, chapters)
    modules: list[Module] = []
    for chap in corpus.chapters():
        if chap.number == "前言" or (scope is not None and chap.id not in scope):
            continue
        sections = _sections(corpus, chap)
        if chap.text and sections != [chap]:
            sections = [chap, *sections]
        covered = [chap, *corpus.descendants(chap)]
        objectives = [o for s in sections for o in _objectives(corpus, s, chap)]
        title = chap.number if chap.number == "引言" else f"第{chap.number}章 {chap.title}"
        modules.append(
            Module(
                number=len(modules) + 1,
                chapter_id=chap.id,
                title=title,
                objectives=tuple(objectives),
                key_terms=tuple(t for t in key_terms(corpus, covered, 11) if t != chap.title)[:10],
                clause_ids=tuple(c.id for c in covered),
                key_clauses=tuple(s.id for s in sections),
            )
        )
    return Outline(corpus.standard.code, corpus.standard.title, tuple(modules))


# ---------------------------------------------------------------------------- handout


def select_clauses(corpus: Corpus, spec: str | Sequence[str] | None) -> list[Clause]:
    """Clauses named in ``spec`` ("5,8.1") with everything below them, in document order."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return [c for c in corpus.clauses if c.number != "前言"]
    raw = spec.split(",") if isinstance(spec, str) else list(spec)
    wanted: set[str] = set()
    for key in (x.strip() for x in raw):
        if not key:
            continue
        c = corpus.clause(key)
        wanted.add(c.id)
        wanted.update(d.id for d in corpus.descendants(c))
    return [c for c in corpus.clauses if c.id in wanted]


# ---------------------------------------------------------------------------- CLI


def _corpus(args: argparse.Namespace) -> Corpus:
    settings = Settings.load(corpus_dir=getattr(args, "corpus", None))
    return Corpus.load(settings, getattr(args, "standard", None))


def _write(
    args: argparse.Namespace, fmt: str, default_name: str, text_or_bytes: str | bytes
) -> int:
    out = getattr(args, "output", None)
    if isinstance(text_or_bytes, str) and not out:
        sys.stdout.write(text_or_bytes)
        return 0
    path = Path(out or f"{default_name}.{fmt}")
    if isinstance(text_or_bytes, str):
        path.write_text(text_or_bytes, encoding="utf-8")
    else:
        path.write_bytes(text_or_bytes)
    print(f"已写入 / wrote {path}", file=sys.stderr)
    return 0


def cmd_outline(args: argparse.Namespace) -> int:
    from . import export

    corpus = _corpus(args)
    outline = build_outline(corpus, args.chapters)
    data = {
        "md": lambda: export.outline_markdown(corpus, outline),
        "docx": lambda: export.outline_docx(corpus, outline),
        "pptx": lambda: export.outline_pptx(corpus, outline),
    }[args.format]()
    return _write(args, args.format, "cqo-outline", data)


def cmd_quiz(args: argparse.Namespace) -> int:
    from . import export

    corpus = _corpus(args)
    items = generate_quiz(
        corpus, args.n, args.kinds, args.seed, chapter_scope(corpus, args.chapters)
    )
    inline = args.answers == "inline"
    data = {
        "md": lambda: export.quiz_markdown(corpus, items, inline=inline, seed=args.seed),
        "docx": lambda: export.quiz_docx(corpus, items, inline=inline, seed=args.seed),
        "json": lambda: export.quiz_json(corpus, items, seed=args.seed),
    }[args.format]()
    return _write(args, args.format, "cqo-quiz", data)


def cmd_handout(args: argparse.Namespace) -> int:
    from . import export

    corpus = _corpus(args)
    clauses = select_clauses(corpus, args.clauses)
    items: list[QuizItem] = []
    if args.quiz:
        items = generate_quiz(corpus, args.quiz, args.kinds, args.seed, {c.id for c in clauses})
    data = {
        "md": lambda: export.handout_markdown(corpus, clauses, items),
        "docx": lambda: export.handout_docx(corpus, clauses, items),
    }[args.format]()
    return _write(args, args.format, "cqo-handout", data)


def _positive(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0: {v}")
    return v


def register_cli(sub: Any) -> None:
    s = sub.add_parser("outline", help="course outline (modules, objectives, key terms, clauses)")
    s.add_argument("--format", choices=("md", "docx", "pptx"), default="md")
    s.add_argument("-o", "--output", help="output file (md: default stdout)")
    s.add_argument("--chapters", help="only these chapters, e.g. 5,8")
    s.add_argument("--standard", help="standard code when the corpus holds several")
    s.set_defaults(func=cmd_outline)

    s = sub.add_parser("quiz", help="question bank with answers, clause ids and clause text")
    s.add_argument("--n", type=_positive, default=30, help="number of items (default 30)")
    s.add_argument("--kinds", default=",".join(KINDS), help="single,multi,judge,blank")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--format", choices=("md", "docx", "json"), default="md")
    s.add_argument("--answers", choices=("separate", "inline"), default="separate")
    s.add_argument("--chapters", help="only clauses of these chapters, e.g. 5,8")
    s.add_argument("-o", "--output", help="output file (md/json: default stdout)")
    s.add_argument("--standard", help="standard code when the corpus holds several")
    s.set_defaults(func=cmd_quiz)

    s = sub.add_parser("handout", help="printable handout of selected clauses")
    s.add_argument("--clauses", help="clause ids, e.g. 5,8.1 (default: whole standard)")
    s.add_argument("--format", choices=("md", "docx"), default="md")
    s.add_argument("--quiz", type=_positive, default=0, help="append a quiz of N items")
    s.add_argument("--kinds", default=",".join(KINDS))
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("-o", "--output", help="output file (md: default stdout)")
    s.add_argument("--standard", help="standard code when the corpus holds several")
    s.set_defaults(func=cmd_handout)


__all__ = [
    "KINDS",
    "Corpus",
    "Module",
    "Objective",
    "Outline",
    "QuizItem",
    "build_outline",
    "chapter_scope",
    "cite_label",
    "generate_quiz",
    "parse_kinds",
    "select_clauses",
]
