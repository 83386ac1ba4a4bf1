"""The Python API: ``Assistant.load().ask("…")``."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from . import segment
from .answer import Answer, AnswerConfig, compose, is_covered
from .errors import InputError, UnknownClauseError
from .index import LoadedIndex, load_index
from .parse import Clause
from .retrieve import Hit, Retriever
from .settings import Settings

_PRONOUN = re.compile(r"^(那|那么|它|他|她|其|这个|那个|该|此|这|还有|另外|那它|那他)")


def check_question(question: Any, max_chars: int) -> str:
    """Clean a question or raise InputError with a bilingual message."""
    if not isinstance(question, str):
        raise InputError("问题必须是文字 / the question must be a string")
    q = re.sub(r"\s+", " ", segment.strip_control(question)).strip()
    if not q:
        raise InputError("问题为空，请输入一个问题 / the question is empty")
    if len(q) > max_chars:
        raise InputError(
            f"问题太长（{len(q)} 字，上限 {max_chars} 字），请精简后再问 / "
            f"question too long ({len(q)} > {max_chars} characters)"
        )
    return q


@dataclass
class Assistant:
    settings: Settings
    index: LoadedIndex
    retriever: Retriever
    config: AnswerConfig = field(default_factory=AnswerConfig.load)

    @classmethod
    def load(cls, settings: Settings | None = None, **overrides: Any) -> Assistant:
        settings = settings or Settings.load(**overrides)
        index = load_index(settings)
        return cls(settings, index, Retriever(index), AnswerConfig.load(index.embedder.name))

    @property
    def clause_map(self) -> dict[str, Clause]:
        return self.retriever.clauses

    def clauses(self) -> list[Clause]:
        return [c for s in self.index.standards for c in s.clauses]

    def clause(self, clause_id: str) -> Clause:
        cid = normalize_id(clause_id)
        found = self.clause_map.get(cid)
        if found is None:  # a local id when several standards are loaded
            matches = [c for c in self.clauses() if c.number == cid]
            if len(matches) == 1:
                return matches[0]
            raise UnknownClauseError(clause_id, self.nearest_ids(cid))
        return found

    def nearest_ids(self, clause_id: str, n: int = 5) -> list[str]:
        ids = list(self.clause_map)
        near = [i for i in ids if i.startswith(clause_id.split(" ")[0] + " ")]
        near += difflib.get_close_matches(clause_id, ids, n=n, cutoff=0.4)
        return list(dict.fromkeys(near))[:n]

    def contextualize(self, question: str, history: list[str] | None) -> str:
        """A follow-up ("那它有哪些职权？") is retrieved together with the previous question."""
        if not history:
            return question
        tokens = segment.tokenize(question)
        subjectless = not any(t in self.retriever.generic for t in tokens)
        if _PRONOUN.match(question) or (subjectless and len(tokens) <= 2):
            subject = " ".join(segment.tokenize(history[-1]))  # its content words only
            return f"{subject} {question}"
        return question

    def search(self, question: str, k: int | None = None, method: str = "hybrid") -> list[Hit]:
        q = check_question(question, self.settings.max_question_chars)
        return self.retriever.search(q, k or self.settings.top_k, method)

    def ask(
        self, question: str, history: list[str] | None = None, method: str = "hybrid"
    ) -> Answer:
        q = check_question(question, self.settings.max_question_chars)
        cfg = self.answer_config(method)
        hits, signals = self.retriever.rank(q, method)
        context = self.contextualize(q, history)
        # A follow-up that the standard answers on its own ("那什么情况下会被解聘？") keeps its
        # own words; one that does not ("具体有哪些？") is retrieved with the previous question.
        if context != q and not is_covered(signals, cfg):
            hits, signals = self.retriever.rank(context, method)
        return compose(q, hits, signals, self.clause_map, cfg)

    def answer_config(self, method: str = "hybrid") -> AnswerConfig:
        """BM25 alone has no dense scores: its answers are judged on words only."""
        return self.config.words_only() if method == "bm25" else self.config


def normalize_id(clause_id: str) -> str:
    """'5.1e）', '5.1 E)', '5.1 e' → '5.1 e)'; '前 言' → '前言'."""
    s = segment.strip_control(clause_id).strip().replace("（", "(").replace("）", ")")
    s = s.replace("第", "").replace("条", " ").replace("章", "")
    m = re.fullmatch(r"(.*?\d+(?:\.\d+)*)\s*([A-Za-z])\)?\s*", s)
    if m:
        return f"{m.group(1).strip()} {m.group(2).lower()})"
    s = re.sub(r"\s+", " ", s).strip()
    return s.replace(" ", "") if s.replace(" ", "") in ("前言", "引言") else s
