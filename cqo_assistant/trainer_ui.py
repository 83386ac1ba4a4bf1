"""The "培训材料" tab of the Gradio app: choose chapters, question kinds, count and seed; preview
the quiz and outline as Markdown; download quiz (DOCX/Markdown/JSON/XLSX question bank),
outline (PPTX/DOCX) and handout (DOCX) for the chosen chapters.

``add_training_tab(settings)`` must be called inside a ``gr.Blocks()`` context.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import InputError
from .settings import Settings
from .trainer import (
    KIND_NAMES,
    KINDS,
    Corpus,
    build_handout,
    build_outline,
    build_paper,
    chapter_scope,
)
from .trainer.writers import render


def chapter_choices(corpus: Corpus) -> list[tuple[str, str]]:
    """(label, value) for every chapter that carries course content."""
    out = []
    for c in corpus.course_chapters():
        label = c.number if c.number == "引言" else f"第{c.number}章 {c.title}"
        out.append((label, c.number))
    return out


def make_materials(
    corpus: Corpus,
    chapters: Sequence[str],
    kinds: Sequence[str],
    n: int,
    seed: int,
    inline: bool = False,
    out_dir: Path | None = None,
) -> tuple[str, str, list[Path]]:
    """Quiz Markdown, outline Markdown and the files to download, for the chosen chapters."""
    if not chapters:
        raise InputError("请至少选择一章 / choose at least one chapter")
    if not kinds:
        raise InputError("请至少选择一种题型 / choose at least one question kind")
    scope = chapter_scope(corpus, list(chapters))
    paper = build_paper(corpus, int(n), list(kinds), int(seed), scope)
    outline = build_outline(corpus, list(chapters))
    handout = build_handout(corpus, list(chapters))
    out = Path(out_dir or tempfile.mkdtemp(prefix="cqo-training-"))
    out.mkdir(parents=True, exist_ok=True)
    quiz_md = str(render(paper, "md", inline=inline))
    outline_md = str(render(outline, "md"))
    files: dict[str, str | bytes] = {
        "题库.docx": render(paper, "docx", inline=inline),
        "题库.md": quiz_md,
        "题库.json": render(paper, "json"),
        "题库.xlsx": render(paper, "xlsx"),
        "课程提纲.pptx": render(outline, "pptx"),
        "课程提纲.docx": render(outline, "docx"),
        "讲义.docx": render(handout, "docx"),
    }
    paths = []
    for name, data in files.items():
        p = out / name
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data, encoding="utf-8")
        paths.append(p)
    return quiz_md, outline_md, paths


def chinese_message(error: InputError) -> str:
    """The Chinese half of a bilingual "中文 / English" error, kind codes named in Chinese."""
    text = error.chinese
    codes = re.compile(rf"\b({'|'.join(KINDS)})\b")
    return codes.sub(lambda m: KIND_NAMES[m.group(0)], text)


def add_training_tab(settings: Settings) -> Any:
    """Create the 培训材料 tab in the current Blocks; returns the tab."""
    import gradio as gr

    corpus = Corpus.load(settings)
    choices = chapter_choices(corpus)
    default_chapters = [v for _, v in choices if v not in ("引言", "1", "2", "3")]

    def run(
        chapters: list[str], kinds: list[str], n: float, seed: float, answers: str
    ) -> tuple[Any, Any, Any, str]:
        """Previews, files and a status line. A choice that cannot be met (too many questions
        for the chapters) is said in the status line only: no traceback in the server log, and
        the previews and downloads of the last run stay as they were."""
        try:
            quiz_md, outline_md, paths = make_materials(
                corpus, chapters, kinds, int(n), int(seed or 0), inline=answers == "inline"
            )
        except InputError as e:
            keep = gr.skip()
            return keep, keep, keep, f"无法生成：{chinese_message(e)}"
        return quiz_md, outline_md, [str(p) for p in paths], f"已生成 {len(paths)} 个文件。"

    with gr.Tab("培训材料") as tab:
        gr.Markdown(
            "按章节生成培训试卷与题库（DOCX/XLSX）、课程提纲（PPTX/DOCX）和讲义（DOCX）。每道题注明答案、依据条款和条款原文。"
        )
        with gr.Row():
            chapters = gr.CheckboxGroup(
                choices=choices, value=default_chapters, label="章节", scale=3
            )
            with gr.Column(scale=2):
                kinds = gr.CheckboxGroup(
                    choices=[(KIND_NAMES[k], k) for k in KINDS], value=list(KINDS), label="题型"
                )
                with gr.Row():
                    n = gr.Slider(1, 100, value=20, step=1, label="题目数量")
                    seed = gr.Number(value=1, precision=0, label="随机种子")
                answers = gr.Radio(
                    choices=[("答案集中在最后", "separate"), ("答案紧跟每题", "inline")],
                    value="separate",
                    label="答案位置",
                )
        go = gr.Button("生成培训材料", variant="primary", elem_id="cqo-training-go")
        status = gr.Markdown(elem_id="cqo-training-status")
        files = gr.File(
            label="下载", file_count="multiple", interactive=False, elem_id="cqo-training-files"
        )
        with gr.Tabs():
            with gr.Tab("题库预览"):
                quiz_md = gr.Markdown(elem_id="cqo-quiz-preview")
            with gr.Tab("提纲预览"):
                outline_md = gr.Markdown()
        go.click(
            run,
            [chapters, kinds, n, seed, answers],
            [quiz_md, outline_md, files, status],
            api_name="training",
        )
    return tab
