"""HTTP service for bots: JSON API, OpenAI-compatible chat, WeChat and WeCom callbacks.

``cqo serve [--host 127.0.0.1] [--port 8000] [--workers N]`` runs FastAPI under uvicorn. The
index is read-only, so N worker processes can serve it side by side, each on its own socket
(``workers``); rate limits, the MsgId cache and the answer cache are per process unless
``CQO_REDIS_URL`` is set (``shared``). ``CQO_CHROMA_URL`` points the dense side at a Chroma
server instead.

Layout (FastAPI's "bigger applications"): ``app`` builds the service from one router per
surface — ``json_api`` (/v1/ask, /v1/clauses, /healthz), ``openai_api`` (/v1/chat/completions,
/v1/models), ``wechat`` and ``wecom`` (callbacks, on top of ``bots``) — with the assistant and
settings as dependencies (``deps``), every refusal in one ``{"error": …}`` shape (``errors``),
and the limits that run before any route (header and body size, allow-list, API keys, rate
limits, access log) in one middleware (``guard``). ``serve`` is the ``cqo serve`` verb, and
``workers`` its supervisor of worker processes.

Importing this package is cheap (the CLI registers ``serve`` on every run); ``create_app``
loads FastAPI on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
