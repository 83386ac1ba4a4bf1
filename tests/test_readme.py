"""The README's sample outputs are today's output: every ``$ cqo ask|outline|quiz|handout …``
sample must print exactly what the command prints now (``tools/readme_samples.py`` rewrites
them), and the README documents what ``make run`` accepts."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tools.readme_samples import README, regenerate, run, samples

TEXT = README.read_text("utf-8")


def test_readme_has_samples() -> None:
    verbs = Counter(shlex.split(cmd)[2] for cmd, _ in samples(TEXT))
    assert verbs == {"ask": 5, "outline": 1, "quiz": 2, "handout": 1}


@pytest.mark.parametrize(("command", "printed"), samples(TEXT))
def test_readme_sample_is_todays_output(
    home: Path, monkeypatch: pytest.MonkeyPatch, command: str, printed: str
) -> None:
    monkeypatch.setenv("CQO_HOME", str(home))
    assert run(command) == printed, "run `.venv/bin/python tools/readme_samples.py`"


def test_regenerate_rewrites_only_the_samples() -> None:
    readme = (
        'Intro\n\n```text\n$ cqo ask "问一"\n旧回答\n\n$ cqo ask "问二"\n旧\n回答\n```\n\n'
        "```text\n$ curl -s http://x/healthz\n{}\n```\n\n"
        "```markdown\n$ cqo outline --chapters 8\n# 旧提纲\n```\n"
    )
    printed = {'$ cqo ask "问一"': "新回答一", '$ cqo ask "问二"': "新回答\n二"}
    printed["$ cqo outline --chapters 8"] = "# 新提纲\n\n正文"
    assert regenerate(readme, printed.__getitem__) == (
        'Intro\n\n```text\n$ cqo ask "问一"\n新回答一\n\n$ cqo ask "问二"\n新回答\n二\n```\n\n'
        "```text\n$ curl -s http://x/healthz\n{}\n```\n\n"
        "```markdown\n$ cqo outline --chapters 8\n# 新提纲\n\n正文\n```\n"
    )


def test_readme_documents_host_and_port() -> None:
    """What the README says `make run` accepts is what the Makefile passes to app.py."""
    assert "make run PORT=8080 HOST=0.0.0.0" in TEXT
    root = README.parent
    r = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", "PORT=8080", "HOST=0.0.0.0"],
        capture_output=True, text=True, cwd=root, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == ".venv/bin/python app.py --host 0.0.0.0 --port 8080"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        ([], ".venv/bin/cqo serve --host 127.0.0.1 --port 8000"),
        (["PORT=9000", "HOST=0.0.0.0"], ".venv/bin/cqo serve --host 0.0.0.0 --port 9000"),
    ],
)
def test_make_serve_takes_port_and_host(args: list[str], line: str) -> None:
    assert "make serve PORT=9000 HOST=0.0.0.0" in TEXT
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST")}
    r = subprocess.run(
        ["make", "--no-print-directory", "-n", "serve", *args],
        capture_output=True, text=True, cwd=README.parent, timeout=60, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == line
