"""The README's sample answers are today's output: every ``$ cqo ask "…"`` block in a text
sample must print exactly what the assistant answers now (so the samples cannot drift)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cqo_assistant import Assistant

README = Path(__file__).resolve().parent.parent / "README.md"


def samples() -> list[tuple[str, str]]:
    out = []
    for block in re.findall(r"```text\n(.*?)```", README.read_text("utf-8"), re.S):
        parts = re.split(r'^\$ cqo ask "([^"]+)"\n', block, flags=re.M)
        for q, body in zip(parts[1::2], parts[2::2], strict=True):
            out.append((q, body.strip("\n")))
    return out


def test_readme_has_samples() -> None:
    assert len(samples()) >= 3


@pytest.mark.parametrize(("question", "printed"), samples())
def test_readme_sample_is_todays_output(assistant: Assistant, question: str, printed: str) -> None:
    assert assistant.ask(question).text == printed
