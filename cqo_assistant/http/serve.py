"""``cqo serve``: the HTTP service under uvicorn (imports nothing heavy until it runs)."""

from __future__ import annotations

import os
from typing import Any

from ..settings import Settings


def cmd_serve(args: Any) -> int:
    import uvicorn

    from ..api import Assistant
    from .app import create_app, warm_up
    from .guard import configure_access_log

    configure_access_log()
    settings = Settings.from_args(args)
    assistant = Assistant.load(settings)  # refuse a missing/stale index before binding the port
    if args.workers > 1:  # workers rebuild settings from the environment: pass the flags on
        os.environ.update(
            CQO_CORPUS_DIR=str(settings.corpus_dir),
            CQO_INDEX_DIR=str(settings.index_dir),
            CQO_EMBED_MODEL=settings.embed_model,
        )
        uvicorn.run(
            "cqo_assistant.http.app:app_factory",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            access_log=False,
        )
    else:
        warm_up(assistant)
        app = create_app(settings, assistant)
        uvicorn.run(app, host=args.host, port=args.port, access_log=False)
    return 0


def register_cli(sub: Any) -> None:
    s = sub.add_parser("serve", help="HTTP API for bots (JSON, OpenAI-compatible, WeChat, WeCom)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1, help="worker processes (index is read-only)")
    s.set_defaults(func=cmd_serve)
