"""XLSX (openpyxl): the quiz as a question bank e-learning platforms import.

One row per item under the header 题型, 题干, 选项A…选项F, 答案, 解析, 条款 — the columns the
common Chinese platforms' import templates use. 答案 is the letters without separators for
choice items ("B", "ACD"), 正确/错误 for judge items and the term for blanks; 解析 is the
verbatim clause text (and what a false statement changed); 条款 is the citation.
"""

from __future__ import annotations

import io
import math

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill

from ..model import KIND_NAMES, Paper, QuizItem
from .common import explain_lines

OPTION_COLUMNS = tuple(f"选项{ch}" for ch in "ABCDEF")
COLUMNS = ("题型", "题干", *OPTION_COLUMNS, "答案", "解析", "条款")
WIDTHS = {"题型": 8, "题干": 40, "答案": 10, "解析": 40, "条款": 13}
OPTION_WIDTH = 18
FONT_SIZE = 10
LINE_PT = 14  # row height per wrapped line at FONT_SIZE


def _units(text: str) -> float:
    """Width in column units (one '0'): a CJK character takes about two."""
    return sum(1.9 if ord(ch) > 0x2E80 else 1.0 for ch in text)


def _row_height(values: list[str], widths: list[float]) -> float:
    """Spreadsheet programs do not grow wrapped rows on their own: the height is set from
    the number of wrapped lines of the fullest cell."""
    lines = 1
    for v, w in zip(values, widths, strict=True):
        n = sum(max(1, math.ceil(_units(p) / max(1.0, w - 1.5))) for p in str(v).split("\n"))
        lines = max(lines, n)
    return lines * LINE_PT + 4


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
            cell.font = Font(name="微软雅黑", size=FONT_SIZE)
    widths = [float(WIDTHS.get(name, OPTION_WIDTH)) for name in COLUMNS]
    for k, w in enumerate(widths, 1):
        ws.column_dimensions[ws.cell(1, k).column_letter].width = w
    for k, it in enumerate(paper.items, 2):
        ws.row_dimensions[k].height = _row_height(row(it), widths)
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
