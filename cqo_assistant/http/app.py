"""The service: one FastAPI app from the routers, with its state, guard and error handlers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ..api import Assistant
from ..settings import Settings
from . import json_api, openai_api, wechat, wecom
from .async_reply import LateReplies
from .bots import WECHAT_DEADLINE
from .deps import Service
from .errors import install_error_handlers
from .guard import Guard
from .models import question_schema
from .openai_models import ChatCompletionChunk
from .shared import link_for

TAGS = [
    {"name": "JSON API", "description": "cited answers and clauses, as `cqo ask --json`"},
    {"name": "OpenAI-compatible", "description": "for bot platforms and the `openai` client"},
    {"name": "health", "description": "liveness and what the service runs on"},
]


def create_app(
    settings: Settings | None = None,
    assistant: Assistant | None = None,
    wechat_deadline: float = WECHAT_DEADLINE,
) -> FastAPI:
    """The service. ``wechat_deadline``: seconds a WeChat/WeCom delivery waits for its answer."""
    settings = settings or Settings.load()
    if assistant is None:
        assistant = Assistant.load(settings)
        warm_up(assistant)
    app = FastAPI(
        title="cqo-assistant",
        description="DB1302/T 589—2024《企业首席质量官制度实施指南》问答 API，回答注明依据条款。"
        '\n\nEvery error is `{"error": {"message", "type", …}}`.',
        version="0.1.0",
        openapi_tags=TAGS,
    )
    service = Service(settings, assistant, wechat_deadline)
    app.state.service = service
    app.state.wechat_cache = service.cache  # for tests and metrics
    # answers sent by the API when late (with a secret); taken marks in Redis when it is set
    app.state.late = LateReplies(settings, link=link_for(settings))
    for r in (json_api.router, json_api.health, openai_api.router, wechat.router, wecom.router):
        app.include_router(r)
    install_error_handlers(app)
    app.add_middleware(Guard, settings=settings)
    _document(app, settings)
    return app


def _document(app: FastAPI, settings: Settings) -> None:
    """What FastAPI cannot derive from the routes: the configured question length (not the
    default), the streamed chunk's schema, and the Bearer scheme only when keys are required."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema["components"]["schemas"]
        props = components["AskRequest"]["properties"]
        props["question"].update(question_schema(settings.max_question_chars))
        chunk = ChatCompletionChunk.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(chunk.pop("$defs", {}), ChatCompletionChunk=chunk)
        if not settings.api_keys.strip(" ,"):  # open service: no scheme to advertise
            schema["components"].pop("securitySchemes", None)
            for operations in schema["paths"].values():
                for op in operations.values():
                    op.pop("security", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def warm_up(assistant: Assistant) -> None:
    """The first question pays for lazy loading (tokenizer dictionaries, embedder session):
    about a second here. Pay it before the port opens, not inside a bot's 5 s."""
    assistant.ask("首席质量官的职责是什么？")
