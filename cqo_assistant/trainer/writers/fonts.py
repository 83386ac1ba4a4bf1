"""Font names the Office writers use (``CQO_TRAINER_FONT`` sets one font everywhere)."""

from __future__ import annotations

import os

BODY_FONT = "宋体"  # SimSun
HEAD_FONT = "黑体"  # SimHei
SLIDE_FONT = "微软雅黑"  # Microsoft YaHei
LATIN_BODY = "Times New Roman"
LATIN_HEAD = "Arial"
FALLBACK_FONT = "WenQuanYi Micro Hei"  # what this Linux box has; LibreOffice falls back to it


def fonts() -> tuple[str, str, str]:
    """(body, heading, slide) East-Asian font names."""
    one = os.environ.get("CQO_TRAINER_FONT", "").strip()
    return (one, one, one) if one else (BODY_FONT, HEAD_FONT, SLIDE_FONT)
