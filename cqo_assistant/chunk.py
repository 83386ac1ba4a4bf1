"""One chunk per clause. The chunk's text (used for BM25 and embeddings) carries the heading
path; a list item carries its parent's lead-in sentence, a parent carries its items. What users
see is always the clause's own verbatim text (``Clause.text``), never the chunk text."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .parse import Clause, Standard


@dataclass(frozen=True)
class Chunk:
    clause_id: str
    text: str
    source: str  # corpus file the clause comes from
    expansion: str = ""  # search-only: English rendering and ways people ask (never quoted)

    @property
    def passage(self) -> str:
        """What is embedded: the chunk text and its expansion (the dense method's test hit@1
        in eval/REPORT.md rose from 0.44 to 0.74 when expansions were added)."""
        return f"{self.text}\n{self.expansion}" if self.expansion else self.text


def chunk_text(clause: Clause, by_id: dict[str, Clause], doc_title: str = "") -> str:
    titles = [by_id[p].title for p in _ancestors(clause, by_id) if by_id[p].title]
    parts = [*titles]
    if clause.title:
        parts.append(clause.title)
    if clause.is_item and clause.parent:
        parts.append(by_id[clause.parent].text)
    if clause.parent is None and clause.number in ("1", "前言") and doc_title:
        parts.append(doc_title)
    parts.append(clause.text)
    for cid in clause.children:
        child = by_id[cid]
        parts.append(child.title or child.text)
    return "\n".join(p for p in parts if p)


def _ancestors(clause: Clause, by_id: dict[str, Clause]) -> list[str]:
    out: list[str] = []
    p = clause.parent
    while p is not None:
        out.append(p)
        p = by_id[p].parent
    return list(reversed(out))


def make_chunks(
    standards: Iterable[Standard], expansions: dict[str, str] | None = None
) -> list[Chunk]:
    expansions = expansions or {}
    chunks = []
    for std in standards:
        by_id = std.by_id()
        for c in std.clauses:
            text = chunk_text(c, by_id, std.title)
            chunks.append(Chunk(c.id, text, std.source, expansions.get(c.id, "")))
    return chunks
