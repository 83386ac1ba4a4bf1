"""Course outline and handout, as plain data (:class:`.model.Outline`, :class:`.model.Handout`).

- one module per chapter (and 引言); learning objectives are a verb ("掌握", "理解", "了解") plus
  the clause's own words — one per list item, never the list's lead-in — and never invented;
- key terms are dictionary terms that stand as whole words in the module's text (首席质量官's
  质量官 is not one);
- a suggested time per module; the source's own slips (``data/source_typos.tsv``, e.g. 信益) are
  kept verbatim in the text and flagged in the trainer notes;
- sections: what a slide or handout shows per key clause (a clause with its list, or a run of
  short untitled sibling clauses such as 4.1–4.4); GB/T 1.1 boilerplate gives none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from ..parse import Clause
from ..segment import DATA_DIR, _cut
from .corpus import Corpus, chapter_scope, select_clauses, strip_end
from .model import (
    DEFAULT_COURSE,
    Handout,
    HandoutBlock,
    Module,
    Objective,
    Outline,
    Paper,
    Section,
)

_BOILERPLATE = re.compile(r"^下列.*适用于本文件")  # GB/T 1.1 set phrases of chapters 2 and 3


@lru_cache(maxsize=1)
def source_typos() -> tuple[tuple[str, str], ...]:
    """(text as printed, likely meant) for the source's known slips."""
    out: list[tuple[str, str]] = []
    for line in (DATA_DIR / "source_typos.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            text, meant = line.split("\t")[:2]
            out.append((text.strip(), meant.strip()))
    return tuple(out)


def _verb(c: Clause, chapter: Clause) -> str:
    if chapter.number in ("1", "3", "引言") or c.number.startswith("3."):
        return "理解"
    if chapter.number in ("2", "前言"):
        return "了解"
    return "掌握"


def _paragraphs(c: Clause) -> list[str]:
    return [p for p in c.text.splitlines() if p and not _BOILERPLATE.match(p)]


def _items(corpus: Corpus, c: Clause) -> list[Clause]:
    return [corpus.by_id[x] for x in c.children if corpus.by_id[x].is_item]


def _objectives(corpus: Corpus, c: Clause, chapter: Clause) -> list[Objective]:
    """A verb plus the clause's own words: one per list item, its definition, or its
    paragraphs (at most two); GB/T 1.1 boilerplate gives none."""
    verb = _verb(c, chapter)
    paras = _paragraphs(c)
    if c.number.startswith("3.") and c.title and paras:
        return [Objective(f"{verb}{c.label} 术语“{c.title}”：{paras[0]}", c.id)]
    if items := _items(corpus, c):
        return [Objective(f"{verb}{it.label}：{strip_end(it.text)}", it.id) for it in items]
    return [Objective(f"{verb}{corpus.heading(c)}：{p}", c.id) for p in paras[:2]]


def _leaf_sections(corpus: Corpus, chapter: Clause) -> list[Clause]:
    """Non-item clauses without non-item children (or the chapter itself)."""
    out: list[Clause] = []

    def walk(c: Clause) -> None:
        sub = [corpus.by_id[x] for x in c.children if not corpus.by_id[x].is_item]
        if not sub:
            out.append(c)
        for s in sub:
            walk(s)

    walk(chapter)
    return out


def _short(c: Clause) -> bool:
    return not c.children and not c.title and len(c.text) <= 70 and c.parent is not None


def _sections(corpus: Corpus, clauses: Sequence[Clause]) -> list[Section]:
    """One section per key clause; short untitled siblings (4.1–4.4) share one."""
    runs: list[list[Clause]] = []
    for c in clauses:
        last = runs[-1] if runs else None
        if _short(c) and last and len(last) < 7 and _short(last[0]) and last[0].parent == c.parent:
            last.append(c)
        else:
            runs.append([c])
    out: list[Section] = []
    for run in runs:
        first = run[0]
        cite = f"{first.standard} "
        if len(run) > 1:
            parent = corpus.by_id[first.parent or ""]
            head = f"{corpus.heading(parent)}（{first.number}–{run[-1].number}）"
            items = tuple(f"{c.number}　{c.text}" for c in run)
            out.append(Section(first.id, head, (), items, cite + f"{first.label}–{run[-1].label}"))
            continue
        lines = tuple(_paragraphs(first))
        items = tuple(it.display_text() for it in _items(corpus, first))
        if lines or items:
            out.append(Section(first.id, corpus.heading(first), lines, items, cite + first.label))
    return out


def _goal(verb: str, s: Section) -> str:
    return f"{verb}{s.heading}" + (f"（共{len(s.items)}项）" if s.items else "")


def key_terms(corpus: Corpus, clauses: Iterable[Clause], limit: int = 10) -> list[str]:
    """Dictionary terms that are whole words of the clauses' text, in order of appearance;
    a term inside a longer one found too (质量管理 in 质量管理体系) gives way."""
    text = "\n".join(f"{c.title}\n{c.text}" for c in clauses)
    words = set(_cut(text))
    for c in clauses:
        words.update(_cut(c.text))
        words.update(_cut(c.title))
    found = [t for t in corpus.terms if t in words]
    found = [t for t in found if not any(t != o and t in o for o in found)]
    found.sort(key=lambda t: text.index(t))
    return found[:limit]


def _notes(corpus: Corpus, clauses: Iterable[Clause]) -> list[str]:
    out: list[str] = []
    for c in clauses:
        for typo, meant in source_typos():
            if typo in c.text:
                out.append(
                    f"{c.label}原文作“{typo}”，疑为“{meant}”之误；材料照录原文，讲解时请说明。"
                )
    return out


def build_outline(
    corpus: Corpus, chapters: Sequence[str] | str | None = None, course: str = DEFAULT_COURSE
) -> Outline:
    scope = chapter_scope(corpus, chapters)
    modules: list[Module] = []
    for chap in corpus.course_chapters():
        if scope is not None and chap.id not in scope:
            continue
        leaves = _leaf_sections(corpus, chap)
        if chap.text and leaves != [chap]:
            leaves = [chap, *leaves]
        covered = [chap, *corpus.descendants(chap)]
        objectives = [o for s in leaves for o in _objectives(corpus, s, chap)]
        sections = _sections(corpus, leaves)
        n_items = sum(len(s.items) for s in sections)
        minutes = 5 * math.ceil((5 + 5 * len(sections) + 2 * n_items) / 5)
        title = chap.number if chap.number == "引言" else f"第{chap.number}章 {chap.title}"
        verb = _verb(chap, chap)
        modules.append(
            Module(
                number=len(modules) + 1,
                chapter_id=chap.id,
                title=title,
                objectives=tuple(objectives),
                key_terms=tuple(t for t in key_terms(corpus, covered, 11) if t != chap.title)[:10],
                clause_ids=tuple(c.id for c in covered),
                key_clauses=tuple(s.id for s in leaves),
                minutes=minutes,
                goals=tuple(_goal(verb, s) for s in sections),
                sections=tuple(sections),
                notes=tuple(_notes(corpus, covered)),
                references=tuple(corpus.heading(s) for s in leaves),
            )
        )
    return Outline(corpus.standard.code, corpus.standard.title, tuple(modules), course)


def build_handout(
    corpus: Corpus, spec: str | Sequence[str] | None = None, quiz: Paper | None = None
) -> Handout:
    """The clauses named in ``spec`` with everything under them, laid out for print."""
    clauses = select_clauses(corpus, spec)
    ids = {c.id for c in clauses}
    scope = "、".join(c.label for c in clauses if c.parent is None or c.parent not in ids)
    blocks: list[HandoutBlock] = []
    for c in clauses:
        if c.is_item:
            blocks.append(HandoutBlock(0, "", (c.display_text(),)))
            continue
        level = 1 if c.parent is None else min(3, c.number.count(".") + 1)
        head = c.number if c.number in ("前言", "引言") else f"{c.number} {c.title}".strip()
        blocks.append(HandoutBlock(level, head, tuple(p for p in c.text.splitlines() if p)))
    return Handout(corpus.standard.code, corpus.standard.title, scope, tuple(blocks), quiz)
