"""The OpenAI-compatible surface: ``/v1/chat/completions`` (``stream`` as server-sent events),
``/v1/models`` and ``/v1/models/{id}``, for bot platforms (Dify, FastGPT, MaxKB) and the
``openai`` client. ``citations``, ``found`` and ``coverage`` ride along with the answer."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request, Security
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from .deps import ServiceDep, bearer
from .errors import BODY_ERRORS, COMMON_ERRORS, ApiError, ErrorBody, JSONBodyRoute
from .openai_models import (
    MODEL,
    ChatCompletion,
    ChatRequest,
    ModelCard,
    ModelList,
    event_stream_schema,
)

router = APIRouter(
    prefix="/v1",
    tags=["OpenAI-compatible"],
    dependencies=[Security(bearer)],
    route_class=JSONBodyRoute,
)
CARD = ModelCard(id=MODEL)


def cut(text: str, limit: int | None) -> tuple[str, str]:
    """(text, finish_reason): at most ``limit`` characters, cut after the last whole line
    (clause) that fits, or inside the first line when none does."""
    if limit is None or len(text) <= limit:
        return text, "stop"
    kept = ""
    for line in text.splitlines(keepends=True):
        if len(kept) + len(line.rstrip("\n")) > limit:
            break
        kept += line
    return (kept.rstrip("\n") or text[:limit]), "length"


@router.post(
    "/chat/completions",
    summary="OpenAI-compatible chat (stream or not)",
    response_model=ChatCompletion,
    responses={
        **BODY_ERRORS,
        200: {
            "description": "the answer; with `stream: true` server-sent events of "
            "`chat.completion.chunk` objects, then `data: [DONE]`",
            "content": {"text/event-stream": {"schema": event_stream_schema()}},
        },
        400: {"model": ErrorBody, "description": "`n` other than 1"},
    },
)
async def chat(body: ChatRequest, request: Request, service: ServiceDep) -> Any:
    if body.n is not None and body.n > 1:
        raise ApiError(400, "n 只能为 1 / only n=1 is supported: one answer a question", param="n")
    question, history = body.question()
    request.state.question = question
    question = service.question(question)
    ans = await run_in_threadpool(service.ask, question, history or None)
    content, finish = cut(ans.text, body.limit())
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    citations = [asdict(c) for c in ans.citations]
    prompt = sum(len(m.text()) for m in body.messages)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": len(content),
        "total_tokens": prompt + len(content),
    }
    if not body.stream:
        return {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish,
                }
            ],
            "usage": usage,
            "citations": citations,
            "found": ans.found,
            "coverage": ans.coverage,
        }
    with_usage = bool(body.stream_options and body.stream_options.include_usage)

    async def events() -> AsyncIterator[str]:
        def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
            data = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": MODEL,
                "choices": choices,
                **({"usage": None} if with_usage else {}),
                **extra,
            }
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

        def delta(d: dict[str, Any], reason: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": d, "finish_reason": reason}]

        yield chunk(delta({"role": "assistant", "content": ""}))
        for line in content.splitlines(keepends=True):  # one clause per chunk
            yield chunk(delta({"content": line}))
            await asyncio.sleep(0)
        yield chunk(delta({}, finish), citations=citations, found=ans.found, coverage=ans.coverage)
        if with_usage:
            yield chunk([], usage=usage)
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


@router.get(
    "/models",
    summary="OpenAI-compatible model list",
    response_model=ModelList,
    responses=COMMON_ERRORS,
)
async def models() -> Any:
    return ModelList(data=[CARD])


@router.get(
    "/models/{model_id}",
    summary="One model (only cqo-assistant)",
    response_model=ModelCard,
    responses={**COMMON_ERRORS, 404: {"model": ErrorBody, "description": "no such model"}},
)
async def model(model_id: str) -> Any:
    if model_id != MODEL:
        raise ApiError(
            404,
            f"没有模型 “{model_id}” / the model '{model_id}' does not exist; use '{MODEL}'",
            "invalid_request_error",
            param="model",
            code="model_not_found",
        )
    return CARD
