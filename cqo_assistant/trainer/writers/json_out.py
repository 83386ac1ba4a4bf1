"""JSON: a quiz paper out (``cqo quiz --format json``) and back in (``cqo quiz --check``)."""

from __future__ import annotations

import json
from typing import Any

from ...errors import InputError
from ..model import DEFAULT_COURSE, Paper, QuizItem


def quiz_json(paper: Paper) -> str:
    obj = {
        "standard": paper.code,
        "title": paper.standard_title,
        "course": paper.course,
        "seed": paper.seed,
        "count": len(paper.items),
        "items": [it.to_json() for it in paper.items],
    }
    return json.dumps(obj, ensure_ascii=False, indent=2) + "\n"


def read_paper(text: str) -> Paper:
    """A paper from ``quiz_json`` output (or a hand-made file of the same shape)."""
    try:
        obj: Any = json.loads(text)
    except ValueError as e:
        raise InputError(f"不是有效的 JSON / not valid JSON: {e}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("items"), list):
        raise InputError("JSON 中没有题目列表 items / the JSON has no 'items' list")
    items = []
    for k, row in enumerate(obj["items"], 1):
        try:
            it = QuizItem.from_json(row)
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"第 {k} 题格式不对 / item {k} is malformed: {e!r}") from None
        items.append(it if it.number else QuizItem.from_json({**row, "number": k}))
    return Paper(
        code=str(obj.get("standard", "")),
        standard_title=str(obj.get("title", "")),
        items=tuple(items),
        seed=obj.get("seed"),
        course=str(obj.get("course") or DEFAULT_COURSE),
    )
