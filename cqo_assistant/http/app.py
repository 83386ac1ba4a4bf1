"""The service: one FastAPI app from the routers, with its state, guard and error handlers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ..api import Assistant
from ..settings import Settings
from . import json_api, openai_api, wechat, wecom
from .bots import WECHAT_DEADLINE
from .deps import Service
from .errors import install_error_handlers
from .guard import Guard, configure_access_log
from .models import question_schema

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
    for r in (json_api.router, json_api.health, openai_api.router, wechat.router, wecom.router):
        app.include_router(r)
    install_error_handlers(app)
    app.add_middleware(Guard, settings=settings)
    _state_the_question_limit(app, settings.max_question_chars)
    return app


def _state_the_question_limit(app: FastAPI, max_chars: int) -> None:
    """The OpenAPI document states the configured question length, not the default."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            props = schema["components"]["schemas"]["AskRequest"]["properties"]
            props["question"].update(question_schema(max_chars))
        return app.openapi_schema or schema

    app.openapi = openapi  # type: ignore[method-assign]


def app_factory() -> FastAPI:
    """For ``uvicorn --factory`` and multi-worker runs: settings from CQO_* env vars."""
    configure_access_log()
    return create_app()


def warm_up(assistant: Assistant) -> None:
    """The first question pays for lazy loading (tokenizer dictionaries, embedder session):
    about a second here. Pay it before the port opens, not inside a bot's 5 s."""
    assistant.ask("首席质量官的职责是什么？")
