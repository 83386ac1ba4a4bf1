"""What every writer prints the same way: section titles, answer lines, answer brackets."""

from __future__ import annotations

from ..model import KIND_NAMES, PAREN, POINTS, QuizItem

CN_NUM = "一二三四五六七八九十"


def section_title(index: int, kind: str, count: int) -> str:
    """ "一、单选题（共8题，每题2分，共16分）"."""
    p = POINTS[kind]
    return f"{CN_NUM[index]}、{KIND_NAMES[kind]}（共{count}题，每题{p}分，共{count * p}分）"


def printed_stem(it: QuizItem) -> str:
    """The stem as printed: choice and judge items end in an answer bracket （    ）."""
    return f"{it.number}. {it.stem}" + (PAREN if it.kind != "blank" else "")


def answer_line(it: QuizItem) -> str:
    return f"答案：{it.answer}　依据：{it.clause_label}"


def explain_lines(it: QuizItem) -> list[str]:
    lines = [f"原文：{it.explanation}"]
    if it.note:
        lines.append(f"说明：{it.note}")
    return lines
