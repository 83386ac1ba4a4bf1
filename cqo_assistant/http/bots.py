"""What the WeChat and WeCom callbacks share: signature freshness, replay memory, the dedupe
key of a message or event, and answering within WeChat's 5 s."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from .. import wechat_bot
from .errors import ApiError

if TYPE_CHECKING:
    from .async_reply import LateReply
    from .deps import Service

WECHAT_DEADLINE = 4.5  # seconds; WeChat gives up (and retries) after 5
WECHAT_HOLD = 15.0  # how long a timed-out delivery keeps waiting (WeChat has hung up by then)
MAX_SKEW = 300  # seconds between WeChat's timestamp and ours before a request counts as expired
log = logging.getLogger("cqo.access")


def wechat_signature(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def fresh(timestamp: str) -> bool:
    try:
        return abs(time.time() - int(timestamp)) <= MAX_SKEW
    except ValueError:
        return False


def forbidden(why: str) -> ApiError:
    return ApiError(403, f"拒绝 / forbidden: {why}")


def bad_request(why: str) -> ApiError:
    return ApiError(400, why)


class ReplayGuard:
    """Remembers each signed ``(timestamp, nonce, signature)`` with the body it came with, for
    as long as its timestamp is accepted. WeChat's own retries repeat the body and pass; the
    same signature on another body (a captured URL replayed with a forged message) does not."""

    def __init__(self, ttl: float = 2 * MAX_SKEW, size: int = 100_000) -> None:
        self._seen: OrderedDict[tuple[str, ...], tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self.ttl, self.size = ttl, size

    def same_body(self, triple: tuple[str, ...], body: bytes) -> bool:
        digest = hashlib.sha256(body).hexdigest()
        now = time.monotonic()
        with self._lock:
            while self._seen and next(iter(self._seen.values()))[0] < now - self.ttl:
                self._seen.popitem(last=False)
            if triple in self._seen:
                return self._seen[triple][1] == digest
            self._seen[triple] = (now, digest)
            if len(self._seen) > self.size:
                self._seen.popitem(last=False)
            return True


def check_replay(service: Service, triple: tuple[str, ...], body: bytes) -> None:
    if not service.replays.same_body(triple, body):
        raise forbidden("signature already used with another body (replay)")


def require(on: bool, off: str, timestamp: str) -> None:
    """Before anything is read: 404 while the endpoint is off, 403 for a stale timestamp."""
    if not on:
        raise ApiError(404, off, "not_configured")
    if not fresh(timestamp):
        raise forbidden("stale or missing timestamp")


def message_key(message: Any) -> str:
    """One key per message (its MsgId) or per event: an event has no MsgId, so its key is its
    sender, time, event name and event key — subscribe and CLICK at the same second differ."""
    mid = getattr(message, "id", None)
    if mid:
        return f"msg:{mid}"
    parts = [
        message.source,
        getattr(message, "create_time", ""),
        message.type,
        getattr(message, "event", ""),
        getattr(message, "key", "") or "",
    ]
    return "evt:" + ":".join(str(p) for p in parts)


async def answer_message(
    service: Service, message: Any, key: str, late: LateReply | None = None
) -> str | None:
    """Reply text for a message, computed once per key, within WeChat's deadline.

    With ``late`` (an app secret is set: ``async_reply``), a delivery whose answer is not ready
    by the async deadline returns None — reply "success" — and the answer goes by the API once
    ready; so does every later delivery of that message.

    A new message from a user over the rate limit gets ``TOO_FAST`` (a 429 would make WeChat
    tell the user the account is broken). A delivery that runs out of time keeps waiting
    silently, so WeChat retries and the retry picks up the same computation; the third
    delivery answers ``SLOW`` instead of timing out again."""
    if late is not None and late.taken(key):
        return None
    cache, user = service.cache, str(getattr(message, "source", "") or "")
    if not cache.seen(key) and not service.bot_users.allow(user):
        return wechat_bot.TOO_FAST
    fut, attempt = cache.start(key, lambda: wechat_bot.reply_text(service.answering(), message))
    if late is not None:
        return await late.reply(key, fut, message)
    waiting = asyncio.wrap_future(fut)  # shielded: a timeout here must not cancel the work
    try:
        try:
            return await asyncio.wait_for(asyncio.shield(waiting), service.wechat_deadline)
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


def question_of(message: Any) -> str:
    """What the user asked, for the access log: a text, or a voice message's recognised text."""
    return str(getattr(message, "content", "") or getattr(message, "recognition", "") or "")
