"""Markdown: quiz paper, outline, handout."""

from __future__ import annotations

from ..model import LETTERS, Handout, Outline, Paper
from .common import answer_line, explain_lines, printed_stem, section_title


def _quote(lines: list[str]) -> list[str]:
    return ["   " + (f"> {line}" if line else ">") for t in lines for line in t.splitlines()]


def quiz_markdown(paper: Paper, inline: bool = False, heading: bool = True) -> str:
    out: list[str] = []
    if heading:
        out += [f"# 题库：{paper.doc_title}", ""]
        seed = f"，随机种子 {paper.seed}" if paper.seed is not None else ""
        out += [
            f"共 {len(paper.items)} 题，满分 {paper.total_points} 分{seed}。"
            "每题均注明所依据的条款。",
            "",
        ]
    for i, (kind, group) in enumerate(paper.sections()):
        out += [f"## {section_title(i, kind, len(group))}", ""]
        for it in group:
            out.append(printed_stem(it))
            out += [f"   - {LETTERS[k]}. {opt}" for k, opt in enumerate(it.options)]
            if inline:
                out += ["", f"   **{answer_line(it)}**", "", *_quote(explain_lines(it))]
            out.append("")
    if not inline:
        out += ["## 答案与解析", ""]
        for it in paper.items:
            out.append(f"{it.number}. **{answer_line(it)}**")
            out += _quote(explain_lines(it))
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def outline_markdown(outline: Outline) -> str:
    total = sum(m.minutes for m in outline.modules)
    out = [f"# 培训课程提纲：{outline.doc_title}", ""]
    out += [
        f"共 {len(outline.modules)} 个模块，建议总学时 {total} 分钟，按标准章节编排；"
        "学习目标引自条款原文。",
        "",
    ]
    for m in outline.modules:
        out += [f"## 模块{m.number}　{m.title}（建议 {m.minutes} 分钟）", "", "**学习目标**", ""]
        out += [f"{k}. {ob.text}" for k, ob in enumerate(m.objectives, 1)]
        out.append("")
        if m.key_terms:
            out += ["**关键术语**：" + "、".join(m.key_terms), ""]
        out += ["**条款**：" + "；".join(m.references), ""]
        if m.notes:
            out += ["**讲师提示**：", ""] + [f"- {n}" for n in m.notes] + [""]
    return "\n".join(out).rstrip() + "\n"


def handout_markdown(h: Handout) -> str:
    out = [f"# 培训讲义：{h.doc_title}", "", f"内容：{h.scope}（条款原文）", ""]
    prev_item = False
    for b in h.blocks:
        if b.level == 0:
            out.append(f"- {b.paragraphs[0]}")
            prev_item = True
            continue
        if prev_item:
            out.append("")
        out += [f"{'#' * min(b.level + 1, 4)} {b.heading}", ""]
        out += [line for p in b.paragraphs for line in (p, "")]
        prev_item = False
    out.append("")
    if h.quiz is not None and h.quiz.items:
        quiz = quiz_markdown(h.quiz, heading=False).splitlines()
        out += ["---", "", "## 随堂练习", ""]
        out += [("#" + line if line.startswith("## ") else line) for line in quiz]
    return "\n".join(out).rstrip() + "\n"
