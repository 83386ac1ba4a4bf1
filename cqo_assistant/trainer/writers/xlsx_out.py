"""XLSX (openpyxl): the quiz as a question bank e-learning platforms import.

One row per item under the header 题型, 题干, 选项A…选项F, 答案, 解析, 条款 — the columns the
common Chinese platforms' import templates use. 答案 is the letters without separators for
choice items ("B", "ACD"), 正确/错误 for judge items and the term for blanks; 解析 is the
verbatim clause text (and what a false statement changed); 条款 is the citation.
"""

from __future__ import annotations

import io

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill

from ..model import KIND_NAMES, Paper, QuizItem
from .common import explain_lines

OPTION_COLUMNS = tuple(f"选项{ch}" for ch in "ABCDEF")
COLUMNS = ("题型", "题干", *OPTION_COLUMNS, "答案", "解析", "条款")
WIDTHS = {"题型": 8, "题干": 48, "答案": 8, "解析": 48, "条款": 14}


def row(it: QuizItem) -> list[str]:
    options = list(it.options) + [""] * (len(OPTION_COLUMNS) - len(it.options))
    answer = it.answer.replace(",", "") if it.kind in ("single", "multi") else it.answer
    return [
        KIND_NAMES[it.kind],
        it.stem,
        *options[: len(OPTION_COLUMNS)],
        answer,
        "\n".join(explain_lines(it)),
        it.clause_label,
    ]


def quiz_xlsx(paper: Paper) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "题库"
    ws.append(list(COLUMNS))
    for it in paper.items:
        ws.append(row(it))
    head_font = Font(bold=True, name="微软雅黑")
    fill = PatternFill("solid", fgColor="DDEBF7")
    wrap = Alignment(wrap_text=True, vertical="top")
    for cell in ws[1]:
        cell.font, cell.fill, cell.alignment = head_font, fill, wrap
    for r in ws.iter_rows(min_row=2):
        for cell in r:
            cell.alignment = wrap
            cell.font = Font(name="微软雅黑", size=10)
    for k, name in enumerate(COLUMNS, 1):
        ws.column_dimensions[ws.cell(1, k).column_letter].width = WIDTHS.get(name, 22)
    ws.freeze_panes = "A2"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = "1:1"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
