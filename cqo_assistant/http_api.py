"""HTTP service for bots: JSON API, OpenAI-compatible chat, WeChat and WeCom callbacks.

``cqo serve [--host 127.0.0.1] [--port 8000] [--workers N]`` runs FastAPI under uvicorn. The
index is read-only, so N worker processes can serve it side by side (rate limits and the MsgId
cache are per process). ``CQO_CHROMA_URL`` points the dense side at a Chroma server instead.

Security: optional Bearer keys on /v1/* (``CQO_API_KEYS``), a body-size limit, a per-client rate
limit (429), WeChat signatures checked before anything is parsed (403), XML with DTDs or
entities refused (400), and an access log (JSON lines) that keeps at most
``CQO_LOG_MAX_CHARS`` characters of a question.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import wechat_bot
from .api import Assistant
from .cli import clause_json
from .errors import InputError, UnknownClauseError
from .settings import Settings

MODEL = "cqo-assistant"
WECHAT_DEADLINE = 4.5  # seconds; WeChat gives up (and retries) after 5
WECHAT_HOLD = 15.0  # how long a timed-out delivery keeps waiting (WeChat has hung up by then)
MAX_SKEW = 300  # seconds between WeChat's timestamp and ours before a request counts as expired
log = logging.getLogger("cqo.access")


# --- request bodies --------------------------------------------------------------------------
class AskBody(BaseModel):
    question: str = Field(..., description="用户问题 / the question")
    k: int | None = Field(
        None, ge=1, le=10, description="how many ids `ranked` lists (default 10, as the CLI)"
    )
    history: list[str] = Field(default_factory=list, description="earlier user questions")


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer", "function"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.get("text", "") for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatBody(BaseModel):
    model: str = MODEL
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: bool = False


# --- helpers -------------------------------------------------------------------------------
def _error(status: int, message: str, kind: str = "invalid_request_error", **extra: Any) -> Any:
    return JSONResponse({"error": {"message": message, "type": kind, **extra}}, status_code=status)


class RateLimiter:
    """Sliding one-minute window per client address."""

    def __init__(self, per_minute: int, max_clients: int = 10_000) -> None:
        self.per_minute, self.max_clients = per_minute, max_clients
        self.hits: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, client: str) -> bool:
        if self.per_minute <= 0:
            return True
        now = time.monotonic()
        if len(self.hits) > self.max_clients:  # forget clients idle for a minute
            for c in [c for c, q in self.hits.items() if not q or q[-1] < now - 60]:
                del self.hits[c]
        q = self.hits[client]
        while q and q[0] < now - 60:
            q.popleft()
        if len(q) >= self.per_minute:
            return False
        q.append(now)
        return True


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"请求体过大 / body over {limit} bytes")


class BodyLimit:
    """Counts the bytes actually received, so a chunked body without Content-Length cannot
    slip past the limit (the Content-Length fast path is in the guard middleware)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


def configure_access_log() -> None:
    """JSON access lines on stderr, in the serving process (also in each --workers child)."""
    logger = logging.getLogger("cqo.access")
    logger.setLevel(logging.INFO)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def _wechat_signature(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def _fresh(timestamp: str) -> bool:
    try:
        return abs(time.time() - int(timestamp)) <= MAX_SKEW
    except ValueError:
        return False


# --- the app -------------------------------------------------------------------------------
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
    keys = {k.strip() for k in settings.api_keys.split(",") if k.strip()}
    limiter = RateLimiter(settings.rate_limit_per_min)
    bot_users = wechat_bot.UserLimiter(settings.rate_limit_per_min)
    cache = wechat_bot.MessageCache()
    wechat_on = bool(settings.wechat_token)
    wecom_on = bool(settings.wecom_token and settings.wecom_aes_key and settings.wecom_corp_id)

    app = FastAPI(
        title="cqo-assistant",
        description="DB1302/T 589—2024《企业首席质量官制度实施指南》问答 API，回答注明依据条款。",
        version="0.1.0",
    )
    app.state.assistant = assistant
    app.state.wechat_cache = cache
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    def clip(text: str) -> str:
        n = settings.log_max_chars
        return text[:n] + ("…" if len(text) > n else "")

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        t0 = time.perf_counter()
        client = request.client.host if request.client else "?"
        path = request.url.path
        status = 500
        try:
            size = int(request.headers.get("content-length") or 0)
            if size > settings.max_body_bytes:
                status = 413
                return _error(413, f"请求体过大 / body over {settings.max_body_bytes} bytes")
            # bot callbacks come from WeChat's few servers: limited per user after parsing
            bot = path in ("/wechat", "/wecom")
            if path != "/healthz" and not bot and not limiter.allow(client):
                status = 429
                return _error(429, "请求过于频繁，请稍后再试 / rate limit exceeded", "rate_limit")
            if path.startswith("/v1/") and keys:
                auth = request.headers.get("authorization", "")
                if not (auth.startswith("Bearer ") and auth[7:].strip() in keys):
                    status = 401
                    return _error(401, "缺少或错误的 API key / missing or invalid API key", "auth")
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            log.info(
                json.dumps(
                    {
                        "ts": round(time.time(), 3),
                        "pid": os.getpid(),
                        "client": client,
                        "method": request.method,
                        "path": path,
                        "status": status,
                        "ms": round(1000 * (time.perf_counter() - t0), 1),
                        "q": clip(getattr(request.state, "question", "")),
                    },
                    ensure_ascii=False,
                )
            )

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> Any:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'] if x != 'body')}: {e['msg']}" for e in exc.errors()
        )
        return _error(422, f"请求格式错误 / invalid request: {problems}")

    @app.exception_handler(BodyTooLarge)
    async def too_large(_request: Request, exc: BodyTooLarge) -> Any:
        return _error(413, str(exc.detail))

    @app.exception_handler(InputError)
    async def bad_input(_request: Request, exc: InputError) -> Any:
        return _error(422, str(exc))

    # --- JSON API ----------------------------------------------------------------------
    @app.post("/v1/ask", summary="Cited answer (same JSON as `cqo ask --json`)")
    async def ask(body: AskBody, request: Request) -> dict[str, Any]:
        request.state.question = body.question
        ans = await run_in_threadpool(assistant.ask, body.question, body.history or None)
        out = ans.to_json()
        if body.k:
            out["ranked"] = out["ranked"][: body.k]
        return out

    @app.get("/v1/clauses", summary="All clauses")
    async def clauses() -> list[dict[str, str]]:
        return [clause_json(c) for c in assistant.clauses()]

    @app.get("/v1/clauses/{clause_id:path}", summary="One clause, e.g. /v1/clauses/5.1%20e)")
    async def clause(clause_id: str) -> Any:
        try:
            return clause_json(assistant.clause(clause_id))
        except UnknownClauseError as e:
            return _error(404, str(e), "not_found", nearest=e.nearest)

    @app.get("/v1/models", summary="OpenAI-compatible model list")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "cqo-assistant"}],
        }

    @app.get("/healthz", summary="Index, clause count, embedder, bot endpoints")
    async def healthz() -> dict[str, Any]:
        m = assistant.index.manifest
        return {
            "status": "ok",
            "index_loaded": True,
            "clause_count": m["clause_count"],
            "standards": m.get("standards", []),
            "embedder": m["embedder"],
            "index_built_at": m.get("built_at"),
            "vector_store": f"chroma server {settings.chroma_url}"
            if settings.chroma_url
            else "embedded",
            "wechat": "on" if wechat_on else "off (set CQO_WECHAT_TOKEN)",
            "wecom": "on"
            if wecom_on
            else "off (set CQO_WECOM_TOKEN, CQO_WECOM_AES_KEY, CQO_WECOM_CORP_ID)",
            "api_keys": "required" if keys else "off",
        }

    # --- OpenAI-compatible chat --------------------------------------------------------
    @app.post("/v1/chat/completions", summary="OpenAI-compatible chat (stream or not)")
    async def chat(body: ChatBody, request: Request) -> Any:
        users = [m.text() for m in body.messages if m.role == "user"]
        if not users:
            return _error(422, "没有用户消息 / no user message in messages")
        request.state.question = users[-1]
        ans = await run_in_threadpool(assistant.ask, users[-1], users[:-1] or None)
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        citations = [asdict(c) for c in ans.citations]
        if not body.stream:
            return {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": ans.text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": len(users[-1]),
                    "completion_tokens": len(ans.text),
                    "total_tokens": len(users[-1]) + len(ans.text),
                },
                "citations": citations,
                "found": ans.found,
                "coverage": ans.coverage,
            }

        async def events() -> AsyncIterator[str]:
            def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> str:
                data = {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": MODEL,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    **extra,
                }
                return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

            yield chunk({"role": "assistant", "content": ""}, None)
            for line in ans.text.splitlines(keepends=True):  # one clause per chunk
                yield chunk({"content": line}, None)
                await asyncio.sleep(0)
            yield chunk({}, "stop", citations=citations, found=ans.found, coverage=ans.coverage)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    # --- WeChat Official Account --------------------------------------------------------
    async def answer_message(message: Any, key: str) -> str:
        """Reply text for a message, computed once per MsgId, within WeChat's deadline.

        A new message from a user over the rate limit gets ``TOO_FAST`` (a 429 would make
        WeChat tell the user the account is broken). A delivery that runs out of time keeps
        waiting silently, so WeChat retries and the retry picks up the same computation; the
        third delivery answers ``SLOW`` instead of timing out again."""
        user = str(getattr(message, "source", "") or "")
        if not cache.seen(key) and not bot_users.allow(user):
            return wechat_bot.TOO_FAST
        fut, attempt = cache.start(key, lambda: wechat_bot.reply_text(assistant, message))
        waiting = asyncio.wrap_future(fut)  # shielded: a timeout here must not cancel the work
        try:
            try:
                return await asyncio.wait_for(asyncio.shield(waiting), wechat_deadline)
            except TimeoutError:
                if attempt >= 3:
                    return wechat_bot.SLOW
            # WeChat has hung up and will retry; the answer is for a caller still listening
            return await asyncio.wait_for(asyncio.shield(waiting), WECHAT_HOLD)
        except TimeoutError:
            return ""
        except Exception as e:  # a bug, not bad input (that gets a text): no reply, no trace
            log.warning(json.dumps({"event": "bot_reply_failed", "error": type(e).__name__}))
            return ""

    def _message_key(message: Any) -> str:
        mid = getattr(message, "id", None)
        if mid:
            return f"msg:{mid}"
        return f"evt:{message.source}:{getattr(message, 'create_time', '')}:{message.type}"

    def _bot_guard(on: bool, off: str, timestamp: str) -> Response | None:
        """Checked before anything is read: 404 ``off`` while the endpoint is off, 403 for a
        stale timestamp (a replay); None lets the request through."""
        if not on:
            return _error(404, off, "not_configured")
        if not _fresh(timestamp):
            return PlainTextResponse("forbidden", status_code=403)
        return None

    def _wechat_guard(signature: str, timestamp: str, nonce: str) -> Response | None:
        """``_bot_guard``, then 403 for a signature not made with our token."""
        off = "WeChat endpoint off: set CQO_WECHAT_TOKEN"
        if (refused := _bot_guard(wechat_on, off, timestamp)) is not None:
            return refused
        if signature != _wechat_signature(settings.wechat_token, timestamp, nonce):
            return PlainTextResponse("forbidden", status_code=403)
        return None

    @app.get("/wechat", include_in_schema=False)
    async def wechat_verify(
        signature: str = "", timestamp: str = "", nonce: str = "", echostr: str = ""
    ) -> Any:
        if (refused := _wechat_guard(signature, timestamp, nonce)) is not None:
            return refused
        return PlainTextResponse(echostr)

    @app.post("/wechat", include_in_schema=False)
    async def wechat_message(
        request: Request,
        signature: str = "",
        timestamp: str = "",
        nonce: str = "",
        encrypt_type: str = "",
        msg_signature: str = "",
    ) -> Any:
        from wechatpy import parse_message
        from wechatpy.crypto import WeChatCrypto
        from wechatpy.exceptions import InvalidSignatureException
        from wechatpy.replies import TextReply

        if (refused := _wechat_guard(signature, timestamp, nonce)) is not None:
            return refused
        try:
            xml = wechat_bot.safe_xml(await request.body())
        except wechat_bot.BadXML as e:
            return PlainTextResponse(str(e), status_code=400)
        crypto = None
        if encrypt_type == "aes":
            if not settings.wechat_aes_key:
                return PlainTextResponse("safe mode needs CQO_WECHAT_AES_KEY", status_code=400)
            crypto = WeChatCrypto(
                settings.wechat_token, settings.wechat_aes_key, settings.wechat_appid
            )
            try:
                xml = crypto.decrypt_message(xml, msg_signature, timestamp, nonce)
                xml = wechat_bot.safe_xml(xml.encode("utf-8") if isinstance(xml, str) else xml)
            except InvalidSignatureException:
                return PlainTextResponse("forbidden", status_code=403)
            except Exception:
                return PlainTextResponse("cannot decrypt message", status_code=400)
        try:
            message = parse_message(xml)
        except Exception:
            return PlainTextResponse("malformed message", status_code=400)
        request.state.question = getattr(message, "content", "") or ""
        text = await answer_message(message, _message_key(message))
        if not text:
            return PlainTextResponse("success")
        reply = TextReply(content=text, message=message).render()
        if crypto is not None:
            reply = crypto.encrypt_message(reply, nonce, timestamp)
        return Response(reply, media_type="application/xml")

    # --- WeCom (always encrypted) --------------------------------------------------------
    def _wecom() -> Any:
        from wechatpy.enterprise.crypto import WeChatCrypto

        return WeChatCrypto(settings.wecom_token, settings.wecom_aes_key, settings.wecom_corp_id)

    def _wecom_guard(timestamp: str) -> Response | None:
        """``_bot_guard``; WeCom's signature is checked when its message is decrypted."""
        return _bot_guard(wecom_on, "WeCom endpoint off: set CQO_WECOM_*", timestamp)

    @app.get("/wecom", include_in_schema=False)
    async def wecom_verify(
        msg_signature: str = "", timestamp: str = "", nonce: str = "", echostr: str = ""
    ) -> Any:
        from wechatpy.exceptions import InvalidSignatureException

        if (refused := _wecom_guard(timestamp)) is not None:
            return refused
        try:
            return PlainTextResponse(
                _wecom().check_signature(msg_signature, timestamp, nonce, echostr)
            )
        except InvalidSignatureException:
            return PlainTextResponse("forbidden", status_code=403)
        except Exception:
            return PlainTextResponse("bad echostr", status_code=400)

    @app.post("/wecom", include_in_schema=False)
    async def wecom_message(
        request: Request, msg_signature: str = "", timestamp: str = "", nonce: str = ""
    ) -> Any:
        from wechatpy.enterprise import parse_message
        from wechatpy.enterprise.replies import TextReply
        from wechatpy.exceptions import InvalidSignatureException

        if (refused := _wecom_guard(timestamp)) is not None:
            return refused
        crypto = _wecom()
        try:
            xml = wechat_bot.safe_xml(await request.body())
            plain = crypto.decrypt_message(xml, msg_signature, timestamp, nonce)
            message = parse_message(wechat_bot.safe_xml(plain.encode("utf-8")))
        except InvalidSignatureException:
            return PlainTextResponse("forbidden", status_code=403)
        except Exception:
            return PlainTextResponse("malformed message", status_code=400)
        request.state.question = getattr(message, "content", "") or ""
        text = await answer_message(message, "wecom:" + _message_key(message))
        if not text:
            return PlainTextResponse("success")
        reply = TextReply(content=text, message=message).render()
        return Response(
            crypto.encrypt_message(reply, nonce, timestamp), media_type="application/xml"
        )

    return app


def app_factory() -> FastAPI:
    """For ``uvicorn --factory`` and multi-worker runs: settings from CQO_* env vars."""
    configure_access_log()
    return create_app()


def warm_up(assistant: Assistant) -> None:
    """The first question pays for lazy loading (tokenizer dictionaries, embedder session):
    about a second here. Pay it before the port opens, not inside a bot's 5 s."""
    assistant.ask("首席质量官的职责是什么？")


# --- CLI -----------------------------------------------------------------------------------
def cmd_serve(args: Any) -> int:
    import uvicorn

    from .cli import _settings

    configure_access_log()
    settings = _settings(args)
    assistant = Assistant.load(settings)  # refuse a missing/stale index before binding the port
    if args.workers > 1:  # workers rebuild settings from the environment: pass the flags on
        os.environ.update(
            CQO_CORPUS_DIR=str(settings.corpus_dir),
            CQO_INDEX_DIR=str(settings.index_dir),
            CQO_EMBED_MODEL=settings.embed_model,
        )
        uvicorn.run(
            "cqo_assistant.http_api:app_factory",
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
