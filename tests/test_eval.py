"""Regression guard: `cqo eval` on the test split must not drop below the committed report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _committed_hit3() -> float:
    report = (ROOT / "eval" / "REPORT.md").read_text("utf-8")
    row = next(x for x in report.splitlines() if x.startswith("| hybrid |"))
    return float(re.split(r"\s*\|\s*", row)[3])


@pytest.mark.slow
def test_eval_test_split_regression(home: Path) -> None:
    env = {**os.environ, "CQO_HOME": str(home)}
    gold = str(ROOT / "eval" / "gold.jsonl")
    args = ["eval", "--gold", gold, "--split", "test", "--methods", "hybrid,bm25", "--json"]
    r = subprocess.run(
        [sys.executable, "-m", "cqo_assistant.cli", *args],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    hybrid = next(s for s in out["summaries"] if s["method"] == "hybrid")
    assert hybrid["hier"]["hit@3"] >= _committed_hit3() - 0.02
    assert hybrid["verbatim"] == 1.0
    assert "[eval hybrid]" in r.stderr  # progress shown


def test_gold_set_is_valid() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "eval" / "check_gold.py")], capture_output=True)
    assert r.returncode == 0, r.stdout
