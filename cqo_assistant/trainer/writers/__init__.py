"""Writers: each reads a plain :class:`~..model.Paper`, :class:`~..model.Outline` or
:class:`~..model.Handout` and returns text (Markdown, JSON) or bytes (DOCX, PPTX, XLSX).

:data:`FORMATS` lists what each document can be written as; :func:`render` picks the writer.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ...errors import InputError
from ..model import Handout, Outline, Paper
from . import json_out, md_out

FORMATS: dict[str, tuple[str, ...]] = {
    "quiz": ("md", "docx", "json", "xlsx"),
    "outline": ("md", "docx", "pptx"),
    "handout": ("md", "docx"),
}


def _office(name: str) -> Any:
    """An Office writer, imported when first used: python-docx, python-pptx and openpyxl take
    about 0.2 s to import, which every ``cqo`` command would pay (the CLI registers these verbs)."""
    return import_module(f"{__name__}.{name}")


def render(doc: Paper | Outline | Handout, fmt: str, inline: bool = False) -> str | bytes:
    """``doc`` written as ``fmt`` (one of :data:`FORMATS` for its kind)."""
    if isinstance(doc, Paper):
        writers = {
            "md": lambda: md_out.quiz_markdown(doc, inline=inline),
            "docx": lambda: _office("docx_out").quiz_docx(doc, inline=inline),
            "json": lambda: json_out.quiz_json(doc),
            "xlsx": lambda: _office("xlsx_out").quiz_xlsx(doc),
        }
    elif isinstance(doc, Outline):
        writers = {
            "md": lambda: md_out.outline_markdown(doc),
            "docx": lambda: _office("docx_out").outline_docx(doc),
            "pptx": lambda: _office("pptx_out").outline_pptx(doc),
        }
    else:
        writers = {
            "md": lambda: md_out.handout_markdown(doc),
            "docx": lambda: _office("docx_out").handout_docx(doc),
        }
    if fmt not in writers:
        raise InputError(
            f"不支持的格式 {fmt} / unsupported format {fmt!r}; 可选 / choose from: "
            + ", ".join(writers)
        )
    return writers[fmt]()


__all__ = ["FORMATS", "render"]
