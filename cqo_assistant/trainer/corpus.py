"""Read-only view of one parsed standard for the trainer: clauses, lists, domain terms, scopes."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from ..errors import InputError
from ..parse import Clause, Standard, load_corpus
from ..segment import DATA_DIR, _cut
from ..settings import Settings

# The standard's subject appears in almost every clause: blanking it teaches nothing.
NOT_QUIZ_TERMS = frozenset({"首席质量官"})
# Front matter and the reference list are not course content.
NOT_QUIZ_CLAUSES = frozenset({"前言", "2"})
TRAIL = "；;。，,：:"


def strip_end(s: str) -> str:
    return s.rstrip(TRAIL)


def dictionary_terms() -> tuple[str, ...]:
    terms: list[str] = []
    for line in (DATA_DIR / "userdict.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            terms.append(line.split()[0])
    return tuple(terms)


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
        return strip_end(self.clause.text)


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

    def course_chapters(self) -> list[Clause]:
        """Chapters that carry course content (all but 前言)."""
        return [c for c in self.chapters() if c.number != "前言"]

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

    def ref(self, c: Clause) -> str:
        """How a question names a clause: "第5.1条（任职资格）", "第5.1条 e)"."""
        return f"{c.label}（{c.title}）" if c.title and not c.is_item else c.label

    def explanation(self, c: Clause) -> str:
        return c.display_text() if c.is_item else self.full_text(c)

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
    def all_terms(self) -> tuple[str, ...]:
        """Every dictionary term that occurs in the standard's text."""
        return tuple(t for t in dictionary_terms() if t in self.full)

    @cached_property
    def terms(self) -> tuple[str, ...]:
        """Domain terms worth asking about, dictionary order."""
        return tuple(t for t in self.all_terms if t not in NOT_QUIZ_TERMS)

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

    def subtree_text(self, c: Clause) -> str:
        return "\n".join(x.text for x in [c, *self.descendants(c)])

    def siblings(self, c: Clause) -> list[Clause]:
        if c.parent is None:
            return []
        return [self.by_id[x] for x in self.by_id[c.parent].children if x != c.id]

    def ancestors(self, c: Clause) -> list[str]:
        out: list[str] = []
        p = c.parent
        while p is not None:
            out.append(p)
            p = self.by_id[p].parent
        return out

    @cached_property
    def bigram_df(self) -> dict[str, float]:
        """Share of clauses whose text holds each character and character pair (how common)."""
        counts: dict[str, int] = {}
        texts = [f"{c.title}{c.text}" for c in self.clauses]
        for t in texts:
            for bg in {t[i : i + 2] for i in range(len(t) - 1)} | set(t):
                counts[bg] = counts.get(bg, 0) + 1
        return {k: v / len(texts) for k, v in counts.items()}


def _split(spec: Sequence[str] | str) -> list[str]:
    raw = spec.split(",") if isinstance(spec, str) else list(spec)
    return [x.strip() for x in raw if x and x.strip()]


def chapter_scope(corpus: Corpus, chapters: Sequence[str] | str | None) -> set[str] | None:
    """Clause ids under the given chapters ("5,8", ["5", "8"], "第5章", "引言"); None means
    everything. Anything that is not a course chapter (前言, 5.1) is refused, naming them."""
    if chapters is None:
        return None
    wanted = _split(chapters)
    if not wanted:
        return None
    valid = {c.number: c for c in corpus.course_chapters()}
    scope: set[str] = set()
    for w in wanted:
        key = w.replace("第", "").replace("章", "").strip()
        c = valid.get(key)
        if c is None:
            names = ", ".join(valid)
            raise InputError(
                f"“{w}” 不是可选的章 / {w!r} is not a chapter; 可选章 / chapters: {names}"
            )
        scope.add(c.id)
        scope.update(d.id for d in corpus.descendants(c))
    return scope


def select_clauses(corpus: Corpus, spec: str | Sequence[str] | None) -> list[Clause]:
    """Clauses named in ``spec`` ("5,8.1") with everything below them, in document order."""
    if spec is None or not _split(spec):
        return [c for c in corpus.clauses if c.number != "前言"]
    wanted: set[str] = set()
    for key in _split(spec):
        c = corpus.clause(key)
        wanted.add(c.id)
        wanted.update(d.id for d in corpus.descendants(c))
    return [c for c in corpus.clauses if c.id in wanted]
