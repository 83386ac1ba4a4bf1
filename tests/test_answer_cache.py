"""The answer cache (cqo_assistant/answer_cache.py) and cqo serve's engine threads per worker:
through a real loopback server where the behaviour is the service's."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cqo_assistant import Assistant, Settings
from cqo_assistant.answer_cache import AnswerCache
from cqo_assistant.http import create_app
from cqo_assistant.http.serve import engine_threads
from cqo_assistant.index import current_dir
from tests.http_helpers import child_pids, free_port, serve, wait_healthy

Q = "首席质量官需要什么学历？"
FOLLOW = ("具体有哪些？", ["首席质量官的任职能力有哪些要求？"])


def stats(url: str) -> dict:
    return httpx.get(f"{url}/healthz").json()["answer_cache"]


@pytest.fixture(scope="module")
def cached(settings: Settings, assistant: Assistant) -> Iterator[str]:
    s = dataclasses.replace(settings, answer_cache=3, rate_limit_per_min=0)
    with serve(create_app(s, assistant)) as url:
        yield url


def test_hit_returns_identical_json_and_is_counted(cached: str) -> None:
    before = stats(cached)
    assert before["size"] == 3
    first = httpx.post(f"{cached}/v1/ask", json={"question": Q})
    again = httpx.post(f"{cached}/v1/ask", json={"question": Q})
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and first.json()["citations"][0]["clause"] == "5.1 e)"
    after = stats(cached)
    assert after["misses"] - before["misses"] == 1 and after["hits"] - before["hits"] == 1
    # the same question with other white space is the same key (the question ask reads)
    spaced = httpx.post(f"{cached}/v1/ask", json={"question": f"  {Q}\n"})
    assert spaced.content == first.content and stats(cached)["hits"] - before["hits"] == 2
    # the OpenAI route shares the cache
    chat = {"messages": [{"role": "user", "content": Q}]}
    r = httpx.post(f"{cached}/v1/chat/completions", json=chat)
    assert r.status_code == 200 and stats(cached)["hits"] - before["hits"] == 3


def test_history_is_part_of_the_key(cached: str) -> None:
    question, history = FOLLOW
    before = stats(cached)
    alone = httpx.post(f"{cached}/v1/ask", json={"question": question}).json()
    follow = httpx.post(f"{cached}/v1/ask", json={"question": question, "history": history})
    other = httpx.post(f"{cached}/v1/ask", json={"question": question, "history": ["你好"]})
    assert other.status_code == 200
    after = stats(cached)
    assert after["misses"] - before["misses"] == 3 and after["hits"] == before["hits"]
    assert follow.json()["citations"][0]["clause"] == "5.2" != alone["ranked"][0]
    again = httpx.post(f"{cached}/v1/ask", json={"question": question, "history": history})
    assert again.content == follow.content and stats(cached)["hits"] == before["hits"] + 1


def test_bounded_least_recently_used_out(settings: Settings, assistant: Assistant) -> None:
    cache = AnswerCache(2)
    a = cache.ask(assistant, "首席质量官由谁任命？")
    cache.ask(assistant, Q)
    assert cache.ask(assistant, "首席质量官由谁任命？") is a  # a hit: now the most recent
    cache.ask(assistant, "首席质量官有一票否决权吗？")  # a third: Q, least recent, goes
    assert cache.stats() == {"size": 2, "entries": 2, "hits": 1, "misses": 3}
    assert cache.ask(assistant, "首席质量官由谁任命？") is a
    cache.ask(assistant, Q)
    assert cache.stats() == {"size": 2, "entries": 2, "hits": 2, "misses": 4}


def test_size_0_turns_it_off(settings: Settings, assistant: Assistant) -> None:
    s = dataclasses.replace(settings, answer_cache=0, rate_limit_per_min=0)
    with serve(create_app(s, assistant)) as url:
        bodies = {httpx.post(f"{url}/v1/ask", json={"question": Q}).content for _ in range(3)}
        assert len(bodies) == 1
        assert stats(url) == {"size": 0, "entries": 0, "hits": 0, "misses": 0}
    cache = AnswerCache(0)
    assert cache.ask(assistant, Q) is not cache.ask(assistant, Q)  # computed each time


@pytest.mark.slow
def test_a_swapped_in_index_never_serves_a_cached_answer(home: Path, tmp_path: Path) -> None:
    """Another build becomes current (as `cqo index` leaves it): the server swaps it in, and a
    question answered before is computed again on it; the old build's entries are dropped."""
    h = tmp_path / "h"
    shutil.copytree(home, h)
    old = current_dir(h / "index")
    s = Settings.load(home=h, rate_limit_per_min=0)
    with serve(create_app(s)) as url, httpx.Client(base_url=url, timeout=60) as c:
        first = c.post("/v1/ask", json={"question": Q})
        assert c.post("/v1/ask", json={"question": Q}).content == first.content
        assert stats(url) | {"size": 0} == {"size": 0, "entries": 1, "hits": 1, "misses": 1}
        new = old.with_name(old.name + "-b")  # the same build under a new version name
        shutil.copytree(old, new)
        (h / "index" / "CURRENT").write_text(new.name, "utf-8")
        deadline = time.monotonic() + 120
        while c.get("/healthz").json()["index_version"] != new.name:
            assert time.monotonic() < deadline, "the rebuilt index was not swapped in"
            time.sleep(0.2)
        before = stats(url)
        assert before["entries"] == 1  # not yet dropped: nothing asked on the new build
        again = c.post("/v1/ask", json={"question": Q})
        assert again.status_code == 200 and again.json() == first.json()  # same build's data
        after = stats(url)
        assert after["misses"] == before["misses"] + 1 and after["hits"] == before["hits"]
        assert after["entries"] == 1  # the old build's answer is gone, the new one's is kept
        c.post("/v1/ask", json={"question": Q})
        assert stats(url)["hits"] == before["hits"] + 1


def test_engine_threads_share_the_cores() -> None:
    assert [engine_threads(w, cores=2) for w in (1, 2, 3, 8)] == [2, 1, 1, 1]
    assert [engine_threads(w, cores=8) for w in (1, 2, 3, 4, 8, 16)] == [8, 4, 2, 2, 1, 1]


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(x.decode().split("=", 1) for x in raw if b"=" in x)


def _workers_env(home: Path, extra: dict[str, str]) -> list[dict[str, str]]:
    """The environment of each worker of a `cqo serve --workers 2` started with ``extra``."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env |= {"CQO_HOME": str(home), **extra}
    cmd = [sys.executable, "-m", "cqo_assistant.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--workers", "2"], env=env, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        workers = [p for p in child_pids(proc.pid) if b"spawn_main" in _cmdline(p)]
        assert len(workers) == 2, [_cmdline(p) for p in child_pids(proc.pid)]
        return [_environ(p) for p in workers]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_workers_get_their_share_of_engine_threads(home: Path) -> None:
    expected = str(engine_threads(2))  # "1" on a 2-core machine
    envs = _workers_env(home, {})
    assert [e.get("OMP_NUM_THREADS") for e in envs] == [expected, expected]
    # a value the user set wins
    envs = _workers_env(home, {"OMP_NUM_THREADS": "3"})
    assert [e.get("OMP_NUM_THREADS") for e in envs] == ["3", "3"]
