"""Everything checked before a route runs, in one ASGI middleware, in this order:

1. request line + headers over ``max_header_bytes`` → 431;
2. ``Content-Length`` over ``max_body_bytes`` → 413 (bodies without one are counted as they
   arrive: ``BodyTooLarge`` from the route's first read);
3. ``/wechat``, ``/wecom``: an address outside ``bot_allow_ips`` → 403, over
   ``bot_rate_limit_per_min`` → 429 (per user limits come later, in ``bots``);
4. ``/v1/*``: API keys → 401 with ``WWW-Authenticate: Bearer`` (a refused request does not count
   against the caller's rate limit), then the per-address rate limit → 429 with ``Retry-After``;
5. the JSON access log line (``ts``, ``pid``, ``client``, ``method``, ``path``, ``status``,
   ``ms``, ``q``), which keeps at most ``log_max_chars`` of a question.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import threading
import time
from collections import OrderedDict, deque
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings import Settings
from .errors import ApiError, error_response

log = logging.getLogger("cqo.access")
BOT_PATHS = ("/wechat", "/wecom")


class RateLimiter:
    """Sliding one-minute window per key (a client address, or a WeChat user)."""

    def __init__(self, per_minute: int, max_keys: int = 100_000) -> None:
        self.per_minute, self.max_keys = per_minute, max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int:
        """0 if ``key`` may go ahead now (and counts it), else whole seconds to wait."""
        if self.per_minute <= 0:
            return 0
        now = time.monotonic()
        with self._lock:
            q = self._hits.pop(key, None) or deque()
            self._hits[key] = q  # most recently active last; the idle are forgotten first
            while q and q[0] <= now - 60:
                q.popleft()
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
            if len(q) >= self.per_minute:
                return max(1, math.ceil(q[0] + 60 - now))
            q.append(now)
            return 0

    def allow(self, key: str) -> bool:
        return self.retry_after(key) == 0


class Limiter(Protocol):
    """``RateLimiter``, or ``shared.SharedRateLimiter`` (in Redis) when CQO_REDIS_URL is set."""

    def retry_after(self, key: str) -> int: ...

    def allow(self, key: str) -> bool: ...


def rate_limiter(settings: Settings, name: str, per_minute: int) -> Limiter:
    """A limiter named ``name`` ("api", "bot", "bot_user"): shared by every worker and instance
    when ``settings.redis_url`` is set, else this process's own."""
    if settings.redis_url:
        from .shared import SharedRateLimiter, link_for

        link = link_for(settings)
        assert link is not None
        return SharedRateLimiter(link, name, per_minute)
    return RateLimiter(per_minute)


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"请求体过大 / body over {limit} bytes")


def _networks(spec: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(x.strip(), strict=False) for x in spec.split(",") if x.strip()]


def _allowed(host: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(addr in n for n in networks)


def clip(text: str, n: int) -> str:
    """At most ``n`` characters of a question for the log (never a lone surrogate)."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:n] + ("…" if len(text) > n else "")


class Guard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.s = app, settings
        self.keys = {k.strip() for k in settings.api_keys.split(",") if k.strip()}
        self.limiter = rate_limiter(settings, "api", settings.rate_limit_per_min)
        self.bot_limiter = rate_limiter(settings, "bot", settings.bot_rate_limit_per_min)
        self.bot_networks = _networks(settings.bot_allow_ips)

    def refuse(self, scope: Scope) -> ApiError | None:
        """Why this request is refused before it reaches a route, or None."""
        headers = scope["headers"]
        size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        size += sum(len(k) + len(v) + 4 for k, v in headers)
        if size > self.s.max_header_bytes:
            limit = self.s.max_header_bytes
            return ApiError(431, f"请求头过大 / request headers over {limit} bytes")
        length = next((v for k, v in headers if k == b"content-length"), b"0")
        if length.isdigit() and int(length) > self.s.max_body_bytes:
            return BodyTooLarge(self.s.max_body_bytes)
        client = scope["client"][0] if scope.get("client") else "?"
        path = scope["path"]
        if path in BOT_PATHS:
            if self.bot_networks and not _allowed(client, self.bot_networks):
                return ApiError(403, "该地址不在回调白名单中 / address not allowed (bot_allow_ips)")
            return self._limited(self.bot_limiter, client)
        if not path.startswith("/v1/"):
            return None
        if self.keys:
            auth = next((v for k, v in headers if k == b"authorization"), b"").decode("latin-1")
            scheme, _, key = auth.partition(" ")
            if scheme.lower() != "bearer" or key.strip() not in self.keys:
                return ApiError(
                    401,
                    "缺少或错误的 API key / missing or invalid API key",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return self._limited(self.limiter, client)

    @staticmethod
    def _limited(limiter: Limiter, client: str) -> ApiError | None:
        if wait := limiter.retry_after(client):
            return ApiError(
                429,
                f"请求过于频繁，请 {wait} 秒后再试 / rate limit exceeded, retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0, status, seen, limit = time.perf_counter(), 500, 0, self.s.max_body_bytes

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if (refused := self.refuse(scope)) is not None:
                extra = {"headers": refused.headers} if refused.headers else {}
                response = error_response(refused.status_code, str(refused.detail), **extra)
                await response(scope, receive, sending)
            else:
                await self.app(scope, counted, sending)
        finally:
            self._log(scope, status, t0)

    def _log(self, scope: Scope, status: int, t0: float) -> None:
        question = scope.get("state", {}).get("question", "")
        row = {
            "ts": round(time.time(), 3),
            "pid": os.getpid(),
            "client": scope["client"][0] if scope.get("client") else "?",
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "ms": round(1000 * (time.perf_counter() - t0), 1),
            "q": clip(question, self.s.log_max_chars),
        }
        log.info(json.dumps(row, ensure_ascii=False))


def configure_access_log() -> None:
    """JSON access lines on stderr, in the serving process (also in each --workers child)."""
    logger = logging.getLogger("cqo.access")
    logger.setLevel(logging.INFO)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
