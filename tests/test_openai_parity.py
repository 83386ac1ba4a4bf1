"""OpenAI parity (issue 13, D8) with the real ``openai`` client against a loopback server:
``GET /v1/models/{id}``, ``stream_options.include_usage``, ``n`` > 1 refused, ``max_tokens``
honoured, usage counted in characters as the README states."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from cqo_assistant import Assistant, Settings
from cqo_assistant.http import create_app
from tests.http_helpers import serve

LIST_Q = "首席质量官有哪些职权？"  # answered with 8.1's lead-in and its seven items


@pytest.fixture(scope="module")
def client(settings: Settings, assistant: Assistant) -> Iterator[openai.OpenAI]:
    with serve(create_app(settings, assistant)) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_retrieve_model(client: openai.OpenAI) -> None:
    m = client.models.retrieve("cqo-assistant")
    assert m.id == "cqo-assistant" and m.object == "model"
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("gpt-4o")
    assert e.value.response.json()["error"]["code"] == "model_not_found"


def test_stream_include_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="cqo-assistant",
        messages=[{"role": "user", "content": LIST_Q}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert last.usage.completion_tokens == len(text)
    assert last.usage.prompt_tokens == len(LIST_Q)
    assert all(c.usage is None for c in chunks[:-1])


def test_n_above_one_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="cqo-assistant", messages=[{"role": "user", "content": LIST_Q}], n=2
        )
    err = e.value.response.json()["error"]
    assert e.value.status_code == 400 and err["param"] == "n" and "n=1" in err["message"]


def test_max_tokens_cuts_at_a_clause(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(
        model="cqo-assistant", messages=[{"role": "user", "content": LIST_Q}]
    )
    text = full.choices[0].message.content or ""
    assert full.choices[0].finish_reason == "stop" and len(text) > 120
    cut = client.chat.completions.create(
        model="cqo-assistant", messages=[{"role": "user", "content": LIST_Q}], max_tokens=120
    )
    short = cut.choices[0].message.content or ""
    assert cut.choices[0].finish_reason == "length"
    assert 0 < len(short) <= 120 and text.startswith(short)
    assert set(short.split("\n")) <= set(text.split("\n"))  # whole lines (clauses) only
    assert cut.usage and cut.usage.completion_tokens == len(short)
    tiny = client.chat.completions.create(
        model="cqo-assistant",
        messages=[{"role": "user", "content": LIST_Q}],
        max_completion_tokens=3,
    )
    assert tiny.choices[0].message.content == text[:3]


def test_usage_counts_characters_of_every_message(client: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "你是助手"},
        {"role": "user", "content": "首席质量官是什么？"},
        {"role": "assistant", "content": "……"},
        {"role": "user", "content": "那它有哪些职权？"},
    ]
    r = client.chat.completions.create(model="cqo-assistant", messages=messages)  # type: ignore[arg-type]
    assert r.usage is not None
    assert r.usage.prompt_tokens == sum(len(m["content"]) for m in messages)
    assert r.usage.completion_tokens == len(r.choices[0].message.content or "")
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
