"""bench/results.py: a benchmark rewrites its own section of RESULTS.md and keeps the others."""

from __future__ import annotations

from pathlib import Path

from bench.results import write_section


def test_write_section_replaces_only_its_own(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text(
        "# Benchmarks\n\n## Core\n\nold table\n\nold note\n\n## HTTP load\n\n| load |\n", "utf-8"
    )
    out = write_section("## Core", ["", "| new |", ""], path)
    assert out == "## Core\n\n| new |\n"
    text = path.read_text("utf-8")
    assert text.startswith("# Benchmarks\n") and "old" not in text  # its notes go with it
    assert text.endswith("## HTTP load\n\n| load |\n\n## Core\n\n| new |\n")  # rewritten: last
    write_section("## Core", ["", "| newer |", ""], path)  # rewriting again keeps one section
    assert path.read_text("utf-8") == text.replace("| new |", "| newer |")


def test_write_section_starts_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    write_section("## HTTP load", ["", "| x |", ""], path)
    assert path.read_text("utf-8") == "# Benchmarks\n\n## HTTP load\n\n| x |\n"
