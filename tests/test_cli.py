"""The `cqo` command line contract: JSON shapes, exit codes, batch behaviour."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.http_helpers import free_port


def cqo(
    home: Path, *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CQO_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "cqo_assistant.cli", *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=timeout,
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


def home_copy(home: Path, tmp_path: Path) -> Path:
    """A private copy of the session home (corpus and built index) that a test may change."""
    h = tmp_path / "home"
    shutil.copytree(home / "corpus", h / "corpus")
    shutil.copytree(home / "index", h / "index")
    return h


def test_stale_index_exit_3(home: Path, tmp_path: Path) -> None:
    h = home_copy(home, tmp_path)
    assert cqo(h, "ask", "首席质量官需要什么学历？").returncode == 0  # the copy itself is fine
    std = h / "corpus" / "DB1302-T-589-2024.txt"
    std.write_text(std.read_text("utf-8").replace("中级以上", "高级以上", 1), "utf-8")
    r = cqo(h, "ask", "首席质量官需要什么学历？")
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "stale" in r.stderr and "DB1302-T-589-2024.txt" in r.stderr
    assert "cqo index" in r.stderr and "Traceback" not in r.stderr and not r.stdout


def test_corpus_problem_exit_4(home: Path, tmp_path: Path) -> None:
    h = tmp_path / "home"
    shutil.copytree(home / "corpus", h / "corpus")
    (h / "corpus" / "gbk.txt").write_bytes("首席质量官制度实施指南\n1 范围\n".encode("gbk"))
    for args in (["index"], ["clauses"]):
        r = cqo(h, *args)
        assert r.returncode == 4, (args, r.returncode, r.stderr)
        assert "gbk.txt" in r.stderr and "UTF-8" in r.stderr and "Traceback" not in r.stderr
    assert not (h / "index").exists()  # nothing was built from a corpus it could not read


def test_index_rebuild_when_current(home: Path, tmp_path: Path) -> None:
    h = home_copy(home, tmp_path)
    current = h / "index" / "CURRENT"  # names the index in use; a build switches it
    before = current.read_text()
    r = cqo(h, "index")
    assert r.returncode == 0 and "up to date" in r.stdout and current.read_text() == before
    r = cqo(h, "index", "--rebuild")
    assert r.returncode == 0, r.stderr
    assert "up to date" not in r.stdout and "[1/5]" in r.stderr and "index ready" in r.stderr
    assert current.read_text() != before and (h / "index" / before).is_dir()  # kept one build
    r = cqo(h, "index")  # and what it built is a current index
    assert r.returncode == 0 and "up to date" in r.stdout


def test_batch_from_stdin(home: Path) -> None:
    rows = [
        {"id": "a", "question": "首席质量官由谁任命？"},
        {"id": "b", "q": "首席质量官需要什么学历？"},  # no `question`: reported as line 2
        {"id": "c", "question": "首席质量官需要什么学历？"},
    ]
    stdin = "\n".join(json.dumps(x, ensure_ascii=False) for x in rows) + "\n"
    r = cqo(home, "batch", "-", stdin=stdin)
    assert r.returncode == 2, r.stderr
    out = [json.loads(x) for x in r.stdout.splitlines()]  # stdout holds the answers only
    assert [x["id"] for x in out] == ["a", "c"]
    assert out[1]["citations"][0]["clause"] == "5.1 e)"
    errors = re.findall(r"line (\d+): (.*)", r.stderr)
    assert errors == [("2", "每行需要 question 字段 / each line needs a 'question' field")]
    assert "[batch] 3/3" in r.stderr and "Traceback" not in r.stderr


def test_serve_refuses_missing_or_stale_index(home: Path, tmp_path: Path) -> None:
    """`cqo serve` exits 3 with the rebuild command before it binds its port."""
    missing = tmp_path / "missing"
    shutil.copytree(home / "corpus", missing / "corpus")
    stale = home_copy(home, tmp_path)
    std = stale / "corpus" / "DB1302-T-589-2024.txt"
    std.write_text(std.read_text("utf-8") + "\n附加一行。\n", "utf-8")
    for h, words, what in ((missing, "no index", "missing"), (stale, "stale", "stale")):
        port = free_port()
        try:
            r = cqo(h, "serve", "--port", str(port), timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`cqo serve` started although the index is {what}: it must refuse")
        assert r.returncode == 3, (r.returncode, r.stderr[-500:])
        assert words in r.stderr and "cqo index" in r.stderr and "Traceback" not in r.stderr
        assert f":{port}" not in r.stderr  # uvicorn never started
