"""State shared in Redis (``CQO_REDIS_URL``, cqo_assistant/http/shared.py), against a real
``redis-server`` (conftest's fixture): two real ``cqo serve`` processes sharing one Redis (and,
once, one ``chroma run`` server for the vectors), and what the service does when Redis goes away
while it runs."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from cqo_assistant import Assistant, Settings
from cqo_assistant.http import create_app, shared
from cqo_assistant.index import build_index, current_dir
from tests.conftest import copy_home, start_chroma, start_redis
from tests.http_helpers import free_port, serve, wait_healthy
from tests.test_wechat import TOKEN, query, reply_content, text_xml

Q = "首席质量官需要什么学历？"
Q2 = "首席质量官有哪些职权？"
Q3 = "首席质量官有一票否决权吗？"


def health(url: str) -> dict:
    return httpx.get(f"{url}/healthz", timeout=30).json()


def ask(url: str, question: str, client: str) -> httpx.Response:
    """``/v1/ask`` as a client behind the local proxy (``X-Forwarded-For``: the limit's key)."""
    headers = {"X-Forwarded-For": client}
    return httpx.post(f"{url}/v1/ask", json={"question": question}, headers=headers, timeout=60)


def deliver(url: str, xml: str) -> httpx.Response:
    return httpx.post(f"{url}/wechat", params=query(), content=xml, timeout=30)


# ---- two real `cqo serve` instances, one Redis --------------------------------------------------


@contextmanager
def two_instances(d: Path, env: dict[str, str]) -> Iterator[list[str]]:
    """Two real ``cqo serve`` processes, A and B, with ``env`` on top of this one's: their URLs
    once both are healthy. A's bot replies take 1.5 s longer (``CQO_MSG_PAUSE``), so a retry can
    land on B while A computes."""
    procs, urls = [], []
    try:
        for name, extra in (("a", {"CQO_MSG_PAUSE": "1.5"}), ("b", {})):
            port = free_port()
            with (d / f"{name}.err").open("wb") as err:
                cmd = [sys.executable, "-m", "cqo_assistant.cli", "serve", "--port", str(port)]
                procs.append(subprocess.Popen(cmd, env={**os.environ, **env, **extra}, stderr=err))
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, procs, strict=True):
            wait_healthy(url, proc)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def pair(
    home: Path, tmp_path_factory: pytest.TempPathFactory, redis_server: str
) -> Iterator[tuple[list[str], Path, str]]:
    """Instances A and B ([url_a, url_b], ``two_instances``) on one project home (its index can
    be rebuilt), with WeChat on and 3 requests a minute per client."""
    import redis

    redis.Redis.from_url(redis_server).flushall()
    d = tmp_path_factory.mktemp("pair")
    h = copy_home(home, d / "h")
    env = {
        "CQO_HOME": str(h),
        "CQO_REDIS_URL": redis_server,
        "CQO_WECHAT_TOKEN": TOKEN,
        "CQO_RATE_LIMIT_PER_MIN": "3",
    }
    with two_instances(d, env) as urls:
        yield urls, h, redis_server


@pytest.mark.slow
def test_retry_on_the_other_instance_waits_for_the_first_answer(pair) -> None:
    """WeChat's retry of a message goes to B while A still computes it: B waits for A's answer
    (the lock is A's, the answer appears under the message's key) and sends the same reply;
    the question is computed once over both instances."""
    import redis

    (a, b), _, url = pair
    r = redis.Redis.from_url(url)
    xml = text_xml(Q, "770001")
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(deliver, a, xml)
        deadline = time.monotonic() + 30
        while not r.exists("cqo:msg:msg:770001:lock"):  # A has claimed it and computes
            assert time.monotonic() < deadline and not first.done(), "A never claimed it"
            time.sleep(0.02)
        assert not r.exists("cqo:msg:msg:770001:answer")  # not answered yet: B must wait
        retry = pool.submit(deliver, b, xml)
        ra, rb = first.result(), retry.result()
    assert ra.status_code == rb.status_code == 200
    assert "大学专科" in reply_content(ra.text)
    assert reply_content(rb.text) == reply_content(ra.text)
    assert r.get("cqo:msg:msg:770001:n") == b"2"  # two deliveries, counted over both
    computed = [health(u)["shared_state"]["messages_computed"] for u in (a, b)]
    assert computed == [1, 0]
    # a third delivery, on B again, is answered from Redis at once, still not recomputed
    assert reply_content(deliver(b, xml).text) == reply_content(ra.text)
    assert health(b)["shared_state"]["messages_computed"] == 0


@pytest.mark.slow
def test_rate_limit_holds_across_instances(pair) -> None:
    """3 requests a minute per client: the 4th is refused whichever instance it reaches."""
    (a, b), _, _ = pair
    one = {"X-Forwarded-For": "10.16.0.1"}
    replies = [httpx.get(f"{u}/v1/models", headers=one) for u in (a, b, a, b)]
    assert [x.status_code for x in replies] == [200, 200, 200, 429]
    assert 1 <= int(replies[-1].headers["retry-after"]) <= 60
    assert httpx.get(f"{a}/v1/models", headers=one).status_code == 429
    other = {"X-Forwarded-For": "10.16.0.2"}  # another client has its own limit
    assert httpx.get(f"{b}/v1/models", headers=other).status_code == 200


@pytest.mark.slow
def test_answer_cache_hit_across_instances_not_across_index_builds(pair) -> None:
    """A computes an answer, B serves it from Redis (a hit in B's counters). Then a rebuilt
    index (another version) becomes current on both: the question misses on A — the old
    build's answer is never served — and hits on B from A's new answer."""
    import redis

    (a, b), h, url = pair
    clients = iter(f"10.16.1.{i}" for i in range(1, 50))  # each request its own limit

    def counts(u: str) -> tuple[int, int]:
        c = health(u)["answer_cache"]
        return c["hits"], c["misses"]

    before_a, before_b = counts(a), counts(b)
    ra = ask(a, Q2, next(clients))
    rb = ask(b, Q2, next(clients))
    assert ra.status_code == rb.status_code == 200 and "8.1" in ra.json()["answer"]
    assert rb.content == ra.content  # the same JSON
    assert counts(a) == (before_a[0], before_a[1] + 1)  # A computed it
    assert counts(b) == (before_b[0] + 1, before_b[1])  # B did not
    assert health(b)["shared_state"]["answer_cache"]["hits"] >= 1

    old = current_dir(h / "index")
    new = old.with_name(old.name + "-b")  # the same build under a new version name
    shutil.copytree(old, new)
    (h / "index" / "CURRENT").write_text(new.name, "utf-8")
    deadline = time.monotonic() + 120
    while {health(u)["index_version"] for u in (a, b)} != {new.name}:
        assert time.monotonic() < deadline, "the rebuilt index was not swapped in"
        time.sleep(0.2)
    before_a, before_b = counts(a), counts(b)
    again = ask(a, Q2, next(clients))
    assert again.json() == ra.json()  # the same data, computed again on the new build
    assert counts(a) == (before_a[0], before_a[1] + 1)  # a miss: not the old build's answer
    assert ask(b, Q2, next(clients)).content == again.content
    assert counts(b) == (before_b[0] + 1, before_b[1])  # a hit: A's answer on the new build
    keys = redis.Redis.from_url(url, decode_responses=True).keys("cqo:answer:*")
    assert {k.split(":")[2] for k in keys} >= {old.name, new.name}


@pytest.mark.slow
def test_two_instances_on_one_chroma_server_and_one_redis(home: Path, tmp_path: Path) -> None:
    """The whole shared setup: one ``chroma run`` server holds the vectors, one redis-server
    the shared state, two ``cqo serve`` processes use both. Each answers through the Chroma
    server; a WeChat retry on B gets A's reply, computed once; 3 requests a minute per client
    hold over both."""
    import redis

    chroma, chroma_url = start_chroma(tmp_path / "chroma")
    redis_proc, redis_url = start_redis(tmp_path / "redis")
    try:
        h = copy_home(home, tmp_path / "h")  # a rebuild reuses its embeddings: no re-embedding
        built = build_index(Settings.load(home=h, chroma_url=chroma_url), progress=lambda _: None)
        assert built["chroma_url"] == chroma_url
        assert not (current_dir(h / "index") / "chroma").exists()  # vectors live on the server
        env = {
            "CQO_HOME": str(h),
            "CQO_CHROMA_URL": chroma_url,
            "CQO_REDIS_URL": redis_url,
            "CQO_WECHAT_TOKEN": TOKEN,
            "CQO_RATE_LIMIT_PER_MIN": "3",
        }
        with two_instances(tmp_path, env) as (a, b):
            for u in (a, b):
                state = health(u)
                assert state["vector_store"] == f"chroma server {chroma_url}"
                assert state["shared_state"]["state"] == "ok"
            # (1) each computes its own question (a miss: not from Redis) through the server
            for u, question, clause in ((a, Q3, "8.1 d)"), (b, Q, "5.1 e)")):
                misses = health(u)["answer_cache"]["misses"]
                r = ask(u, question, "10.18.1.1" if u == a else "10.18.1.2")
                assert r.status_code == 200 and r.json()["citations"][0]["clause"] == clause
                assert health(u)["answer_cache"]["misses"] == misses + 1

            # (2) a WeChat message on A (1.5 s slower), its retry on B while A computes
            r = redis.Redis.from_url(redis_url)
            xml = text_xml(Q2, "770201")
            with ThreadPoolExecutor(2) as pool:
                first = pool.submit(deliver, a, xml)
                deadline = time.monotonic() + 30
                while not r.exists("cqo:msg:msg:770201:lock"):
                    assert time.monotonic() < deadline and not first.done(), "A never claimed it"
                    time.sleep(0.02)
                assert not r.exists("cqo:msg:msg:770201:answer")  # not answered yet
                retry = pool.submit(deliver, b, xml)
                ra, rb = first.result(), retry.result()
            assert ra.status_code == rb.status_code == 200
            assert "8.1" in reply_content(ra.text)
            assert reply_content(rb.text) == reply_content(ra.text)
            assert r.get("cqo:msg:msg:770201:n") == b"2"
            computed = [health(u)["shared_state"]["messages_computed"] for u in (a, b)]
            assert computed == [1, 0]

            # (3) 3 requests a minute per client, over both instances
            one = {"X-Forwarded-For": "10.18.0.1"}
            codes = [httpx.get(f"{u}/v1/models", headers=one).status_code for u in (a, b, a, b)]
            assert codes == [200, 200, 200, 429]
    finally:
        for proc in (chroma, redis_proc):
            proc.terminate()
        for proc in (chroma, redis_proc):
            proc.wait(timeout=20)


# ---- Redis going away while the service runs ----------------------------------------------------


def test_redis_down_falls_back_and_says_so(
    settings: Settings,
    assistant: Assistant,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis stops: answers, WeChat replies and rate limits go on in-process, one log line says
    so, /healthz says ``unreachable`` with the error; Redis back: ``ok`` again, logged."""
    monkeypatch.setattr(shared, "RETRY_SECONDS", 0.2)
    monkeypatch.setattr(logging.getLogger("cqo.access"), "propagate", True)
    caplog.set_level(logging.INFO, "cqo.access")
    proc, url = start_redis(tmp_path / "r1")
    s = dataclasses.replace(settings, redis_url=url, wechat_token=TOKEN, rate_limit_per_min=2)
    try:
        with serve(create_app(s, assistant)) as base:
            assert health(base)["shared_state"]["state"] == "ok"
            assert ask(base, Q, "10.17.0.1").status_code == 200
            proc.terminate()
            proc.wait(timeout=10)
            r = ask(base, Q2, "10.17.0.2")  # computed here: the answer cache falls back
            assert r.status_code == 200 and "8.1" in r.json()["answer"]
            state = health(base)["shared_state"]
            assert state["state"] == "unreachable" and "Connection" in state["error"]
            assert state["fallback"].startswith("in-process")
            reply = deliver(base, text_xml(Q, "770101"))  # WeChat: deduped in-process
            assert "大学专科" in reply_content(reply.text)
            codes = [ask(base, Q, "10.17.0.3").status_code for _ in range(3)]
            assert codes == [200, 200, 429]  # the limit holds, per process
            down = [x for x in caplog.messages if '"redis_unreachable"' in x]
            assert len(down) == 1 and url in down[0]  # once per outage, not per request
            port = int(url.split(":")[-1].split("/")[0])
            proc, _ = start_redis(tmp_path / "r2", port=port)
            deadline = time.monotonic() + 30  # Redis is tried again 2 s after a failure
            while health(base)["shared_state"]["state"] != "ok":
                assert time.monotonic() < deadline, "Redis back, but /healthz still says down"
                time.sleep(0.1)
            assert any('"redis_back"' in x for x in caplog.messages)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_logs_and_healthz_never_show_the_password() -> None:
    assert shared.shown("redis://:s3cret@cache.local:6380/2") == "redis://:***@cache.local:6380/2"
    assert shared.shown("redis://app:s3cret@10.0.0.5/0") == "redis://app:***@10.0.0.5/0"
    assert shared.shown("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
