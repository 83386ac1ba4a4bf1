"""bench/RESULTS.md: each benchmark script owns one "## ..." section and rewrites only that."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(heading: str, body: list[str], path: Path = RESULTS) -> str:
    """Replace the section under ``heading`` (e.g. "## Core") with ``body``, or append it.

    The old section runs from its heading to the next "## " heading or the end of the file, so
    notes written below its table by hand go with it; other sections are kept as they are. The
    rewritten section goes last. Returns the section's text (for printing)."""
    text = path.read_text("utf-8") if path.exists() else "# Benchmarks\n\n"
    pattern = re.escape(heading) + r"\n.*?(?=\n## |\Z)"
    text = re.sub(pattern, "", text, flags=re.S).rstrip() + "\n\n"
    section = "\n".join([heading, *body])
    path.write_text(text + section, "utf-8")
    return section
