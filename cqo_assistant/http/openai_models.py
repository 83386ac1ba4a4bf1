"""Bodies of the OpenAI-compatible surface (``/v1/chat/completions``, ``/v1/models``).

The question is the last user message that has text (a message's text: its string content, or
its text parts joined); earlier user messages are the history. A request needs at least one
such message, which the schema states with ``contains``. Token counts are characters (Unicode
code points): there is no model tokenizer here.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .models import NOT_BLANK, CitationOut, Coverage, json_int

MODEL = "cqo-assistant"
_has_text = re.compile(NOT_BLANK).search


STRICT = ConfigDict(strict=True)  # no coercion: 0 is not false, 5 is not "5" (as the schema says)


class TextPart(BaseModel):
    model_config = STRICT

    type: Literal["text"]
    text: str


class OtherPart(BaseModel):
    """An image, audio or file part: accepted and skipped (the answer comes from text only)."""

    model_config = ConfigDict(extra="allow", strict=True)

    type: Literal["image_url", "input_audio", "file", "refusal"]


Part = Annotated[TextPart | OtherPart, Field(discriminator="type")]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # name, tool_calls, tool_call_id, …

    role: Literal["system", "user", "assistant", "tool", "developer", "function"]
    content: str | list[Part] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content if isinstance(p, TextPart))
        return self.content or ""


# the schema of "a user message with text", for `contains`
_USER_WITH_TEXT: dict[str, Any] = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"const": "user"},
        "content": {
            "anyOf": [
                {"type": "string", "pattern": NOT_BLANK},
                {
                    "type": "array",
                    "contains": {
                        "type": "object",
                        "required": ["type", "text"],
                        "properties": {
                            "type": {"const": "text"},
                            "text": {"type": "string", "pattern": NOT_BLANK},
                        },
                    },
                },
            ]
        },
    },
}


class StreamOptions(BaseModel):
    model_config = STRICT

    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = STRICT

    model: str = Field(MODEL, description="any name is answered by cqo-assistant")
    messages: list[ChatMessage] = Field(
        ...,
        min_length=1,
        description=(
            "needs a user message with text; the last one is the question (at most "
            "CQO_MAX_QUESTION_CHARS characters), earlier user messages are its context"
        ),
        json_schema_extra={"contains": _USER_WITH_TEXT},
    )
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: json_int(ge=1, json_schema_extra={"maximum": 1}) | None = Field(
        None, description="only 1: one answer per question"
    )
    max_tokens: json_int(ge=1) | None = Field(
        None, description="cut the answer at a clause to this many characters"
    )
    max_completion_tokens: json_int(ge=1) | None = Field(None, description="same as max_tokens")

    @model_validator(mode="after")
    def _has_question(self) -> ChatRequest:
        if not any(m.role == "user" and _has_text(m.text()) for m in self.messages):
            raise ValueError("没有带文字的用户消息 / no user message with text in messages")
        return self

    def question(self) -> tuple[str, list[str]]:
        """(the question, the earlier user questions)."""
        users = [t for m in self.messages if m.role == "user" and _has_text(t := m.text())]
        return users[-1], users[:-1]

    def limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


# --- responses -------------------------------------------------------------------------------
class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]


class Usage(BaseModel):
    """Characters, not model tokens: prompt = every message's text, completion = the reply."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "chatcmpl-b1598c4bbd654835af46c74d",
                    "object": "chat.completion",
                    "created": 1796195565,
                    "model": MODEL,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": "根据标准：\n第5.1条（任职资格） e)：“取得中级以上相"
                                "关专业职称，或者具有大学专科以上学历和5年以上质量工作经历；”\n"
                                "依据：DB1302/T 589—2024 第5.1条 e)",
                            },
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 12, "completion_tokens": 80, "total_tokens": 92},
                    "citations": [
                        {
                            "clause": "5.1 e)",
                            "path": "5 任职要求 > 5.1 任职资格 > e)",
                            "text": "取得中级以上相关专业职称，或者具有大学专科以上学历和5年以上"
                            "质量工作经历；",
                            "score": 0.625,
                        }
                    ],
                    "found": True,
                    "coverage": "answered",
                }
            ]
        }
    )

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    citations: list[CitationOut]
    found: bool
    coverage: Coverage


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop", "length"] | None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed answer (``data: {…}``); the stream ends with
    ``data: [DONE]``. The chunk with ``finish_reason`` carries ``citations``, ``found`` and
    ``coverage``; with ``stream_options.include_usage`` a last chunk with no choices carries
    ``usage``."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    citations: list[CitationOut] | None = None
    found: bool | None = None
    coverage: Coverage | None = None


def event_stream_schema() -> dict[str, Any]:
    """The OpenAPI schema of one event of the stream: its ``data`` is a chunk as JSON, or
    ``[DONE]``."""
    return {
        "type": "object",
        "required": ["data"],
        "properties": {
            "event": {"type": "string"},
            "data": {
                "anyOf": [
                    {"const": "[DONE]"},
                    {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": {"$ref": "#/components/schemas/ChatCompletionChunk"},
                    },
                ]
            },
        },
    }


class ModelCard(BaseModel):
    id: str = Field(..., examples=[MODEL])
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "cqo-assistant"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
