"""The `cqo` command line contract: JSON shapes, exit codes, batch behaviour."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def cqo(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CQO_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "cqo_assistant.cli", *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_ask_json(home: Path) -> None:
    r = cqo(home, "ask", "首席质量官需要什么学历？", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["id"] is None and d["found"] is True
    assert d["citations"][0]["clause"] == "5.1 e)"
    assert set(d) >= {"id", "question", "found", "answer", "citations", "ranked"}


def test_show_and_clauses(home: Path) -> None:
    r = cqo(home, "show", "5.1 e)", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["id"] == "5.1 e)"
    r = cqo(home, "show", "5.1 z)")
    assert r.returncode == 2 and "5.1 a)" in r.stderr
    r = cqo(home, "clauses", "--json")
    rows = json.loads(r.stdout)
    assert len(rows) == 91 and set(rows[0]) == {"id", "title", "path", "text"}


def test_search(home: Path) -> None:
    r = cqo(home, "search", "一票否决", "-k", "3", "--json")
    hits = json.loads(r.stdout)
    assert len(hits) == 3 and hits[0]["clause_id"] == "8.1 d)"


@pytest.mark.parametrize("q", ["", "问" * 10_000])
def test_bad_question_exit_2(home: Path, q: str) -> None:
    r = cqo(home, "ask", q)
    assert r.returncode == 2 and "error" in r.stderr and "Traceback" not in r.stderr


def test_missing_index_exit_3(tmp_path: Path, home: Path) -> None:
    (tmp_path / "corpus").symlink_to(home / "corpus")
    r = cqo(tmp_path, "ask", "首席质量官是什么")
    assert r.returncode == 3 and "cqo index" in r.stderr


def test_batch(home: Path, tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a", "question": "首席质量官由谁任命？", "extra": 1}, ensure_ascii=False),
        "{not json",
        json.dumps({"id": "b", "question": ""}),
        json.dumps({"id": "c", "question": "首席质量官的工资是多少"}, ensure_ascii=False),
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines), "utf-8")
    out = tmp_path / "out.jsonl"
    r = cqo(home, "batch", str(src), "-o", str(out))
    assert r.returncode == 2
    assert "line 2" in r.stderr and "line 3" in r.stderr
    rows = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
    assert [x["id"] for x in rows] == ["a", "c"]
    assert rows[0]["found"] is True and rows[1]["found"] is False


def test_index_up_to_date(home: Path) -> None:
    r = cqo(home, "index")
    assert r.returncode == 0 and "up to date" in r.stdout
