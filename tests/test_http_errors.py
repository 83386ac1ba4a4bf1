"""Refusals of the HTTP service, each in the one ``{"error": {...}}`` shape, against a real
loopback server with httpx and raw bytes (issue 13: D1, D2, D9, D10, D11, bad bodies)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import httpx
import pytest

from cqo_assistant import Assistant, Settings
from cqo_assistant.http import create_app
from tests.http_helpers import serve

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def base(settings: Settings, assistant: Assistant) -> Iterator[str]:
    with serve(create_app(settings, assistant)) as url:
        yield url


def error_of(r: httpx.Response, status: int) -> dict:
    """The response's error object, after checking its status and shape."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    assert list(body) == ["error"], body  # never FastAPI's {"detail": …}
    assert body["error"]["message"] and body["error"]["type"]
    return body["error"]


def test_lone_surrogate_in_a_question_is_422(base: str) -> None:
    """D1: "\\ud800" is legal JSON but not text; it crashed the embedder (500)."""
    raw = b'{"question": "\\ud800abc"}'
    e = error_of(httpx.post(f"{base}/v1/ask", content=raw, headers=JSON), 422)
    assert "lone surrogate" in e["message"]
    chat = b'{"messages": [{"role": "user", "content": "\\udfff\xe5\xad\xa6\xe5\x8e\x86"}]}'
    error_of(httpx.post(f"{base}/v1/chat/completions", content=chat, headers=JSON), 422)
    # in the history it is only an unusable earlier turn: skipped, the question is answered
    hist = '{"question": "首席质量官需要什么学历？", "history": ["\\ud800"]}'.encode()
    r = httpx.post(f"{base}/v1/ask", content=hist, headers=JSON)
    assert r.status_code == 200 and r.json()["citations"][0]["clause"] == "5.1 e)"


@pytest.mark.parametrize("text", [5, None, ["x"]])
def test_content_part_text_not_a_string_is_422(base: str, text: object) -> None:
    """D2: a text part whose text is a number or null was a 500 (TypeError in join)."""
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}
    e = error_of(httpx.post(f"{base}/v1/chat/completions", json=body), 422)
    assert "messages.0.content" in e["message"]


def test_body_not_utf8_is_422_naming_the_byte(base: str) -> None:
    body = '{"question": "学历'.encode() + b"\xff\xfe" + b'"}'
    e = error_of(httpx.post(f"{base}/v1/ask", content=body, headers=JSON), 422)
    at = body.index(b"\xff")
    assert "not UTF-8" in e["message"] and f"byte {at}" in e["message"]


@pytest.mark.parametrize(
    "body, words",
    [
        (b'{"question": "abc', "Unterminated string starting at character 13"),
        (
            b'{"question": "abc",}',
            "Expecting property name enclosed in double quotes at character 19",
        ),
        (b"", "the body is empty"),
        (b'{"k": 3}', "question: Field required"),
    ],
)
def test_bad_json_says_what_is_wrong(base: str, body: bytes, words: str) -> None:
    e = error_of(httpx.post(f"{base}/v1/ask", content=body, headers=JSON), 422)
    assert words in e["message"], e["message"]


@pytest.mark.parametrize(
    "method, path, status",
    [("GET", "/nope", 404), ("DELETE", "/v1/ask", 405), ("GET", "/v1/ask", 405)],
)
def test_router_errors_share_the_shape(base: str, method: str, path: str, status: int) -> None:
    error_of(httpx.request(method, f"{base}{path}"), status)


def test_body_too_large_shape(base: str) -> None:
    e = error_of(httpx.post(f"{base}/v1/ask", content=b"{" + b" " * 70_000 + b"}"), 413)
    assert "65536" in e["message"]


def test_headers_over_the_limit_are_431(base: str) -> None:
    """D10: uvicorn took 8 MB of headers; the guard refuses more than 16 KB."""
    assert httpx.get(f"{base}/healthz", headers={"x-pad": "a" * 8_000}).status_code == 200
    e = error_of(httpx.get(f"{base}/healthz", headers={"x-pad": "a" * 20_000}), 431)
    assert "16384" in e["message"]
    long_url = f"{base}/v1/clauses/{'9' * 20_000}"
    error_of(httpx.get(long_url), 431)


def test_401_429_headers_and_refused_keys_not_counted(
    settings: Settings, assistant: Assistant
) -> None:
    """D9: WWW-Authenticate on 401, Retry-After on 429; D11: 401s do not use up the limit."""
    s = dataclasses.replace(settings, api_keys="k1", rate_limit_per_min=3)
    with serve(create_app(s, assistant)) as url:
        for _ in range(5):  # refused callers: none of these counts
            r = httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer wrong"})
            error_of(r, 401)
            assert r.headers["www-authenticate"] == "Bearer"
        ok = {"Authorization": "Bearer k1"}
        assert [httpx.get(f"{url}/v1/models", headers=ok).status_code for _ in range(3)] == [
            200,
            200,
            200,
        ]
        r = httpx.get(f"{url}/v1/models", headers=ok)
        e = error_of(r, 429)
        assert 1 <= int(r.headers["retry-after"]) <= 60 and r.headers["retry-after"] in e["message"]
