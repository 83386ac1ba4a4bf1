"""Regenerate the README's sample outputs from today's code, so they cannot drift.

A sample is a line ``$ cqo ask|outline|quiz|handout …`` in a fenced ``text`` or ``markdown``
block of README.md, followed by what that command prints (up to the next ``$ cqo`` line or the
end of the block). This script runs every sample's command in-process against the index of
``CQO_HOME`` (``make index`` first) and writes what it prints now:

    .venv/bin/python tools/readme_samples.py           # rewrite README.md
    .venv/bin/python tools/readme_samples.py --check   # only report (exit 1, with a diff)

``tests/test_readme.py`` runs the same commands against the test index.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
VERBS = ("ask", "outline", "quiz", "handout")
BLOCK = re.compile(r"(```(?:text|markdown)\n)(.*?)(```)", re.S)
COMMAND = re.compile(rf"^\$ cqo (?:{'|'.join(VERBS)}) .*$", re.M)

Runner = Callable[[str], str]


def _split(body: str) -> list[tuple[str, str]]:
    """(command line, printed text) for each sample in one block's body."""
    found = list(COMMAND.finditer(body))
    if not found:
        return []
    ends = [m.start() for m in found[1:]] + [len(body)]
    return [
        (m.group(0), body[m.end() : end].strip("\n")) for m, end in zip(found, ends, strict=True)
    ]


def samples(readme: str) -> list[tuple[str, str]]:
    """Every sample in the README text, in order."""
    return [s for m in BLOCK.finditer(readme) for s in _split(m.group(2))]


def run(command: str) -> str:
    """What ``$ cqo …`` prints on stdout today (in-process; a failure raises — except the exit
    1 of ``quiz --check`` on a paper with problems, which is what that sample shows)."""
    from cqo_assistant import cli

    argv = shlex.split(command)[2:]  # drop "$" and "cqo"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    if code != (1 if "--check" in argv else 0):
        raise RuntimeError(f"{command!r} exited with {code}")
    return out.getvalue().rstrip("\n")


def regenerate(readme: str, runner: Runner = run) -> str:
    """The README text with every sample's printed text replaced by ``runner``'s."""

    def block(m: re.Match[str]) -> str:
        found = _split(m.group(2))
        if not found:
            return m.group(0)
        body = "\n\n".join(f"{cmd}\n{runner(cmd)}" for cmd, _ in found)
        return f"{m.group(1)}{body}\n{m.group(3)}"

    return BLOCK.sub(block, readme)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="report drift, do not write")
    args = p.parse_args(argv)
    old = README.read_text("utf-8")
    new = regenerate(old)
    if new == old:
        print("README samples are today's output", file=sys.stderr)
        return 0
    if args.check:
        diff = difflib.unified_diff(
            old.splitlines(True), new.splitlines(True), "README.md", "today's output"
        )
        sys.stderr.writelines(diff)
        return 1
    README.write_text(new, "utf-8")
    print("README.md samples regenerated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
