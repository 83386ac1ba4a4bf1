"""The JSON API: ``/v1/ask`` (the same JSON as ``cqo ask --json``), ``/v1/clauses[/{id}]`` and
``/healthz``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Security
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..api import clause_json
from ..errors import UnknownClauseError
from .deps import AssistantDep, ServiceDep, bearer
from .errors import BODY_ERRORS, COMMON_ERRORS, ApiError, ErrorBody, JSONBodyRoute
from .models import AskRequest, AskResponse, ClauseOut, Health
from .shared import health as shared_health

router = APIRouter(
    prefix="/v1",
    tags=["JSON API"],
    dependencies=[Security(bearer)],
    route_class=JSONBodyRoute,
)
health = APIRouter(tags=["health"])


@router.post(
    "/ask",
    summary="Cited answer (same JSON as `cqo ask --json`)",
    response_model=AskResponse,
    responses=BODY_ERRORS,
)
async def ask(body: AskRequest, request: Request, service: ServiceDep) -> Any:
    request.state.question = body.question
    question = service.question(body.question)
    ans = await run_in_threadpool(service.ask, question, body.history or None)
    out = ans.to_json()
    if body.k:
        out["ranked"] = out["ranked"][: body.k]
    return out


@router.get(
    "/clauses", summary="All clauses", response_model=list[ClauseOut], responses=COMMON_ERRORS
)
async def clauses(assistant: AssistantDep) -> Any:
    return [clause_json(c) for c in assistant.clauses()]


@router.get(
    "/clauses/{clause_id:path}",
    summary="One clause, e.g. /v1/clauses/5.1%20e)",
    response_model=ClauseOut,
    responses={
        **COMMON_ERRORS,
        404: {"model": ErrorBody, "description": "no such clause; `nearest` lists close ids"},
    },
)
async def clause(clause_id: str, assistant: AssistantDep) -> Any:
    try:
        return clause_json(assistant.clause(clause_id))
    except UnknownClauseError as e:
        raise ApiError(404, str(e), "not_found", nearest=e.nearest) from None


@health.get(
    "/healthz",
    summary="Index state, clause count, embedder, bots",
    response_model=Health,
    responses={503: {"model": Health, "description": "the index on disk is damaged or missing"}},
)
async def healthz(service: ServiceDep) -> Any:
    s, m = service.settings, service.assistant.index.manifest
    state, problem = await run_in_threadpool(service.index_state)
    body = {
        "status": "ok" if state in ("ok", "stale") else state,
        "index_loaded": True,
        "index_state": state,
        "index_problem": problem or service.reload_error,
        "index_version": service.assistant.index.root.name,
        "clause_count": m["clause_count"],
        "standards": m.get("standards", []),
        "embedder": m["embedder"],
        "index_built_at": m.get("built_at"),
        "vector_store": f"chroma server {s.chroma_url}" if s.chroma_url else "embedded",
        "wechat": "on" if service.wechat_on else "off (set CQO_WECHAT_TOKEN)",
        "wecom": "on"
        if service.wecom_on
        else "off (set CQO_WECOM_TOKEN, CQO_WECOM_AES_KEY, CQO_WECOM_CORP_ID)",
        "api_keys": "required" if s.api_keys.strip(" ,") else "off",
        "answer_cache": service.answers.stats(),
        "shared_state": await run_in_threadpool(
            shared_health, s, service.answers.shared, service.cache.computed
        ),
    }
    if state in ("damaged", "missing"):
        return JSONResponse(body, status_code=503)
    return body
