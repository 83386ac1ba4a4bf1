"""The 培训材料 tab: materials for chosen chapters, and the tab driven through gradio_client."""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr
import gradio_client
import pytest
from docx import Document
from openpyxl import load_workbook
from pptx import Presentation

from cqo_assistant import Settings
from cqo_assistant.errors import InputError
from cqo_assistant.parse import load_corpus
from cqo_assistant.trainer import Corpus
from cqo_assistant.trainer_ui import (
    add_training_tab,
    chapter_choices,
    chinese_message,
    make_materials,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus(load_corpus(ROOT / "corpus")[0])


def test_make_materials_for_chapters(corpus: Corpus, tmp_path: Path) -> None:
    assert ("第8章 工作保障", "8") in chapter_choices(corpus)
    quiz_md, outline_md, paths = make_materials(
        corpus, ["5", "8"], ["single", "judge"], 10, 3, out_dir=tmp_path
    )
    names = {p.name for p in paths}
    assert names == {
        "题库.docx",
        "题库.md",
        "题库.json",
        "题库.xlsx",
        "课程提纲.pptx",
        "课程提纲.docx",
        "讲义.docx",
    }
    assert "单选题" in quiz_md and "判断题" in quiz_md and "多选题" not in quiz_md
    assert "第5.1条" in outline_md and "第6.1条" not in outline_md
    handout = "\n".join(p.text for p in Document(str(tmp_path / "讲义.docx")).paragraphs)
    assert "8.1 岗位职权保证" in handout and "6 工作职责" not in handout
    assert len(Presentation(str(tmp_path / "课程提纲.pptx")).slides) >= 6
    with pytest.raises(InputError, match="chapter"):
        make_materials(corpus, [], ["single"], 5, 1, out_dir=tmp_path)
    with pytest.raises(InputError, match="上限"):
        make_materials(corpus, ["8"], ["judge"], 50, 1, out_dir=tmp_path)
    assert load_workbook(tmp_path / "题库.xlsx")["题库"]["A1"].value == "题型"


def test_tab_through_gradio_client(capfd: pytest.CaptureFixture[str]) -> None:
    settings = Settings.load(corpus_dir=str(ROOT / "corpus"))
    with gr.Blocks() as demo:
        add_training_tab(settings)
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None)
    try:
        client = gradio_client.Client(demo.local_url, verbose=False)
        quiz_md, outline_md, files, status = client.predict(
            ["8"], ["blank", "judge"], 6, 2, "inline", api_name="/training"
        )
        assert "填空题" in quiz_md and "答案：" in quiz_md and "依据：第8" in quiz_md
        assert "模块1　第8章 工作保障" in outline_md
        assert len(files) == 7 and status == "已生成 7 个文件。"
        capfd.readouterr()
        # issue 13, 6: too many questions is the user's choice, not a server fault
        *_kept, status = client.predict(["8"], ["judge"], 90, 1, "separate", api_name="/training")
        assert status.startswith("无法生成：题目数量 90 超过可生成的上限"), status
        assert "判断题" in status and not re.search("[A-Za-z]", status), status  # Chinese only
        assert "Traceback" not in capfd.readouterr().err
    finally:
        demo.close()


def test_chinese_message_names_kinds_in_chinese() -> None:
    err = InputError("题目数量 9 超过可生成的上限 3（multi 2, judge 1）；请减小数量 / n=9 is more")
    assert chinese_message(err) == "题目数量 9 超过可生成的上限 3（多选题 2, 判断题 1）；请减小数量"
