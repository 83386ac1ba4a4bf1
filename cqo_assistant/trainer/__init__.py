"""Trainer toolkit: quiz papers, course outlines and handouts built from the parsed clause tree.

Data flows one way: :mod:`.corpus` reads the standard, the builders (:mod:`.builders`, one
class per item form) propose items, :mod:`.paper` assembles a paper that :mod:`.check` passes,
:mod:`.outline` builds outlines and handouts — all plain data (:mod:`.model`). The writers
(:mod:`.writers`: Markdown, JSON, DOCX, PPTX, XLSX) only read that data; the CLI verbs
(:mod:`.cli`) and the web tab pick a writer by format.
"""

from __future__ import annotations

from .check import Problem, check_paper
from .cli import register_cli
from .corpus import Corpus, chapter_scope, select_clauses
from .model import (
    BLANK,
    FALSE,
    KIND_NAMES,
    KINDS,
    LETTERS,
    PAREN,
    POINTS,
    TRUE,
    Handout,
    Module,
    Objective,
    Outline,
    Paper,
    QuizItem,
    Section,
)
from .outline import build_handout, build_outline
from .paper import build_paper, generate_quiz, parse_kinds

__all__ = [
    "BLANK",
    "FALSE",
    "KINDS",
    "KIND_NAMES",
    "LETTERS",
    "PAREN",
    "POINTS",
    "TRUE",
    "Corpus",
    "Handout",
    "Module",
    "Objective",
    "Outline",
    "Paper",
    "Problem",
    "QuizItem",
    "Section",
    "build_handout",
    "build_outline",
    "build_paper",
    "chapter_scope",
    "check_paper",
    "generate_quiz",
    "parse_kinds",
    "register_cli",
    "select_clauses",
]
