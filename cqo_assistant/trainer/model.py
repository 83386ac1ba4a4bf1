"""Plain data the trainer builds and the writers read: quiz items and papers, outlines, handouts.

Nothing here knows the corpus or a file format: a writer gets everything it prints from these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("single", "multi", "judge", "blank")
KIND_NAMES = {"single": "单选题", "multi": "多选题", "judge": "判断题", "blank": "填空题"}
# Points per item of each kind on a printed paper.
POINTS = {"single": 2, "multi": 4, "judge": 2, "blank": 3}
LETTERS = "ABCDEF"
BLANK = "______"
PAREN = "（    ）"  # the answer bracket a trainee writes the letter or 正确/错误 into
TRUE, FALSE = "正确", "错误"
DEFAULT_COURSE = "企业首席质量官制度培训"


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
    number: int = 0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["options"] = list(self.options)
        d["correct"] = list(self.correct)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> QuizItem:
        return cls(
            kind=str(d["kind"]),
            stem=str(d["stem"]),
            options=tuple(str(o) for o in d.get("options", ())),
            correct=tuple(int(k) for k in d.get("correct", ())),
            answer=str(d.get("answer", "")),
            clause_id=str(d.get("clause_id", "")),
            clause_label=str(d.get("clause_label", "")),
            explanation=str(d.get("explanation", "")),
            note=str(d.get("note", "")),
            form=str(d.get("form", "")),
            number=int(d.get("number", 0)),
        )


@dataclass(frozen=True)
class Paper:
    """A quiz paper: items in print order, numbered from 1, grouped by kind."""

    code: str  # the standard's code
    standard_title: str
    items: tuple[QuizItem, ...]
    seed: int | None = None
    course: str = DEFAULT_COURSE

    @property
    def doc_title(self) -> str:
        return f"{self.code}《{self.standard_title}》" if self.standard_title else self.code

    def sections(self) -> list[tuple[str, list[QuizItem]]]:
        return [
            (k, [it for it in self.items if it.kind == k])
            for k in KINDS
            if any(it.kind == k for it in self.items)
        ]

    @property
    def total_points(self) -> int:
        return sum(POINTS.get(it.kind, 0) for it in self.items)


@dataclass(frozen=True)
class Objective:
    text: str
    clause_id: str


@dataclass(frozen=True)
class Section:
    """One key clause as slides and handouts show it: heading, verbatim lines and list items."""

    clause_id: str
    heading: str  # "第5.1条 任职资格"
    lines: tuple[str, ...]  # the clause's own paragraphs
    items: tuple[str, ...]  # its list items with their labels ("a) …"), or "4.1 …" sub-clauses
    citation: str  # "DB1302/T 589—2024 第5.1条"

    @property
    def text(self) -> str:
        return "\n".join((*self.lines, *self.items))


@dataclass(frozen=True)
class Module:
    number: int
    chapter_id: str
    title: str  # "第5章 任职要求"
    objectives: tuple[Objective, ...]
    key_terms: tuple[str, ...]
    clause_ids: tuple[str, ...]  # every clause the module covers
    key_clauses: tuple[str, ...]  # sections that get their own slide / handout heading
    minutes: int = 0  # suggested teaching time
    goals: tuple[str, ...] = ()  # one line per key clause, for the module slide
    sections: tuple[Section, ...] = ()
    notes: tuple[str, ...] = ()  # trainer notes: the source's typos, flagged
    references: tuple[str, ...] = field(default=())  # key clause headings


@dataclass(frozen=True)
class Outline:
    code: str
    title: str
    modules: tuple[Module, ...]
    course: str = DEFAULT_COURSE

    @property
    def doc_title(self) -> str:
        return f"{self.code}《{self.title}》" if self.title else self.code


@dataclass(frozen=True)
class HandoutBlock:
    """A heading (level 1–3) with paragraphs, or a list item (level 0)."""

    level: int
    heading: str
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class Handout:
    code: str
    title: str
    scope: str  # "第5章、第8.1条"
    blocks: tuple[HandoutBlock, ...]
    quiz: Paper | None = None

    @property
    def doc_title(self) -> str:
        return f"{self.code}《{self.title}》" if self.title else self.code
