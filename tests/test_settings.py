"""Settings precedence: keyword argument (and so a CLI flag) > CQO_* env var > default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cqo_assistant import Settings


def test_keyword_beats_env_beats_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("CQO_HOME", "CQO_INDEX_DIR", "CQO_TOP_K", "CQO_MAX_QUESTION_CHARS"):
        monkeypatch.delenv(name, raising=False)
    d = Settings.load(home=tmp_path)
    assert (d.index_dir, d.top_k, d.max_question_chars) == (tmp_path / "index", 5, 1000)

    monkeypatch.setenv("CQO_INDEX_DIR", str(tmp_path / "env-index"))
    monkeypatch.setenv("CQO_TOP_K", "7")
    monkeypatch.setenv("CQO_MAX_QUESTION_CHARS", "")  # empty counts as not set
    e = Settings.load(home=tmp_path)
    assert (e.index_dir, e.top_k, e.max_question_chars) == (tmp_path / "env-index", 7, 1000)

    k = Settings.load(home=tmp_path, index_dir=str(tmp_path / "kw-index"), top_k=3)
    assert (k.index_dir, k.top_k) == (tmp_path / "kw-index", 3)
    n = Settings.load(home=tmp_path, index_dir=None, top_k=None)  # None = not given
    assert (n.index_dir, n.top_k) == (tmp_path / "env-index", 7)

    monkeypatch.setenv("CQO_HOME", str(tmp_path / "env-home"))
    assert Settings.load().corpus_dir == tmp_path / "env-home" / "corpus"
    assert Settings.load(home=tmp_path).corpus_dir == tmp_path / "corpus"


def test_cli_flag_beats_env(home: Path, tmp_path: Path) -> None:
    """`--index` wins over CQO_INDEX_DIR; without the flag the env var is used."""
    env = {**os.environ, "CQO_HOME": str(home), "CQO_INDEX_DIR": str(tmp_path / "nowhere")}
    cmd = [sys.executable, "-m", "cqo_assistant.cli"]
    ask = ["ask", "首席质量官需要什么学历？"]
    r = subprocess.run([*cmd, *ask], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 3 and "nowhere" in r.stderr
    flag = ["--index", str(home / "index")]
    r = subprocess.run([*cmd, *flag, *ask], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "5.1" in r.stdout, r.stderr


def test_redis_url_keyword_beats_env_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CQO_REDIS_URL", raising=False)
    assert Settings.load().redis_url is None  # default: state per process
    monkeypatch.setenv("CQO_REDIS_URL", "")
    assert Settings.load().redis_url is None  # empty counts as not set
    monkeypatch.setenv("CQO_REDIS_URL", "redis://env:6379/0")
    assert Settings.load().redis_url == "redis://env:6379/0"
    assert Settings.load(redis_url="redis://kw:6379/1").redis_url == "redis://kw:6379/1"
    assert Settings.load(redis_url=None).redis_url == "redis://env:6379/0"


def test_serve_redis_url_flag_beats_env_and_is_checked_at_start(home: Path) -> None:
    """`cqo serve --redis-url` wins over CQO_REDIS_URL; a Redis that does not answer stops the
    start (exit 2) with the URL and the fix, before the index loads or the port opens."""
    from tests.http_helpers import free_port

    dead = [f"redis://127.0.0.1:{free_port()}/{db}" for db in (1, 2)]
    env = {**os.environ, "CQO_HOME": str(home), "CQO_REDIS_URL": dead[0]}
    cmd = [sys.executable, "-m", "cqo_assistant.cli", "serve", "--port", str(free_port())]
    for extra, named in (([], dead[0]), (["--redis-url", dead[1]], dead[1])):
        r = subprocess.run([*cmd, *extra], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 2, r.stderr
        assert named in r.stderr and "start redis-server" in r.stderr and "Error" in r.stderr
    r = subprocess.run([*cmd, "--redis-url", "http://nope"], capture_output=True, text=True,
                       env=env, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "redis://" in r.stderr, r.stderr
