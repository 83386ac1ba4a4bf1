"""Promises the README makes that had no test (issue 15, item 6): the WeChat MsgId cache's
time-to-live and size, the feedback export to stdout with UTC times and the comment cap, and
share links off by default."""

from __future__ import annotations

import csv
import inspect
import io
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cqo_assistant import wechat_bot
from cqo_assistant.chat_feedback import MAX_COMMENT, FeedbackStore
from cqo_assistant.webchat import launch
from cqo_assistant.wechat_bot import MessageCache

ROOT = Path(__file__).resolve().parent.parent


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_msgid_cache_shares_retries_and_forgets_after_its_ttl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(wechat_bot.time, "monotonic", clock)
    cache = MessageCache(size=10, ttl=300.0, threads=1)
    first, n1 = cache.start("msg-1", lambda: "答案一")
    clock.now += 299  # WeChat's retries come within seconds: the same computation
    again, n2 = cache.start("msg-1", lambda: "不应计算")
    assert again is first and (n1, n2) == (1, 2) and again.result() == "答案一"
    clock.now += 2  # 301 s after the first delivery: forgotten, so computed anew
    fresh, n3 = cache.start("msg-1", lambda: "答案二")
    assert fresh is not first and n3 == 1 and fresh.result() == "答案二"
    assert cache.computed == 2


def test_msgid_cache_evicts_the_oldest_beyond_its_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wechat_bot.time, "monotonic", Clock())
    cache = MessageCache(size=2, ttl=300.0, threads=1)
    for key in ("a", "b", "c"):
        cache.start(key, lambda k=key: k)
    assert not cache.seen("a") and cache.seen("b") and cache.seen("c")
    _fut, attempt = cache.start("a", lambda: "a again")
    assert attempt == 1 and cache.computed == 4


def test_feedback_export_to_stdout_with_utc_times_and_capped_comments(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    store.add("首席质量官需要什么学历？", "5.1 e) …", ["5.1 e)"], True, 1, "很清楚")
    store.add("工资多少", "本标准未涉及", [], False, -1, "长" * (MAX_COMMENT + 500))
    r = subprocess.run(
        [sys.executable, "-m", "cqo_assistant.cli", "feedback", "export"],
        capture_output=True, env={**os.environ, "CQO_DATA_DIR": str(tmp_path)}, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert not r.stdout.startswith(b"\xef\xbb\xbf")  # the BOM is for files Excel opens only
    rows = list(csv.DictReader(io.StringIO(r.stdout.decode("utf-8"))))
    assert [x["question"] for x in rows] == ["首席质量官需要什么学历？", "工资多少"]
    assert [x["comment"] for x in rows] == ["很清楚", "长" * MAX_COMMENT]
    for x in rows:  # "2026-12-02T09:30:00Z": UTC, within a minute of now
        when = datetime.strptime(x["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert abs((datetime.now(UTC) - when).total_seconds()) < 60


def test_share_links_are_off_unless_asked() -> None:
    r = subprocess.run(
        [sys.executable, "app.py", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert r.returncode == 0 and "--share" in r.stdout and "off by default" in r.stdout
    assert inspect.signature(launch).parameters["share"].default is False


def test_rate_limit_window_slides_and_resets(monkeypatch: pytest.MonkeyPatch) -> None:
    from cqo_assistant.http import guard

    clock = Clock()
    monkeypatch.setattr(guard.time, "monotonic", clock)
    limiter = guard.RateLimiter(per_minute=2)
    assert limiter.allow("10.0.0.1")
    clock.now += 10
    assert limiter.allow("10.0.0.1")
    clock.now += 20
    assert limiter.retry_after("10.0.0.1") == 30  # the first hit leaves the window in 30 s
    assert limiter.allow("10.0.0.2")  # another client has its own window
    clock.now += 30
    assert limiter.allow("10.0.0.1")  # 60 s after the first hit: room for one again
    assert not limiter.allow("10.0.0.1")  # the second hit is still in the window


def test_the_limit_counts_the_client_a_local_proxy_names(home: Path) -> None:
    """Behind a reverse proxy on the same host, `X-Forwarded-For` is the client: each address
    has its own limit (uvicorn trusts the header from 127.0.0.1 only)."""
    import httpx

    from cqo_assistant import Assistant, Settings
    from cqo_assistant.http import create_app
    from tests.http_helpers import serve

    settings = Settings.load(home=home, rate_limit_per_min=2)
    app = create_app(settings, Assistant.load(settings))
    body = {"question": "首席质量官由谁任命？"}
    with serve(app) as url, httpx.Client(base_url=url, timeout=60) as c:

        def ask(client: str) -> int:
            return c.post("/v1/ask", json=body, headers={"X-Forwarded-For": client}).status_code

        assert [ask("203.0.113.7") for _ in range(3)] == [200, 200, 429]
        assert ask("203.0.113.8") == 200  # another client behind the same proxy
