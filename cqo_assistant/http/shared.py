"""State shared by every ``cqo serve`` worker and instance when ``CQO_REDIS_URL`` is set.

Three things, each with the same interface as its in-process version, so the routes do not know
which one they use:

- ``SharedRateLimiter`` (``guard.RateLimiter``): the sliding one-minute window of each client
  (address, or WeChat user), a sorted set per key changed by one Lua script — atomic, on Redis's
  clock, so N workers on M machines give a client its limit once, not N×M times;
- ``shared_messages.SharedMessageCache`` (``wechat_bot.MessageCache``): a WeChat/WeCom MsgId
  (or event) computed once over all workers; a retry on another worker waits for the answer;
- ``RedisAnswers`` (the store behind ``answer_cache.AnswerCache``): answers as JSON under the
  in-process cache's key (index version, question as read, history), so a rebuilt index never
  serves a stale answer; hits and misses of all instances are counted in Redis.

**When Redis stops answering at run time, the service falls back; it does not fail.** A call
that fails (connection refused, 1 s timeout) marks Redis down — one ``redis_unreachable`` log
line per outage — and sends the calls of the next ``RETRY_SECONDS`` straight to the in-process
versions (per-process limits, per-process MsgId dedupe, answers computed or cached locally);
``/healthz`` says ``"state": "unreachable"`` with the error. The next call after that tries
Redis again; when it answers, ``redis_back`` is logged. Answers keep flowing either way (a
question answering service should not go dark because its cache did); what is lost meanwhile
is only the sharing. At start, ``cqo serve`` refuses an unreachable or malformed URL
(``SharedStateError``): that is a mistake in the setup, better seen at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..answer import Answer
from ..answer_cache import Key
from ..errors import SharedStateError
from .guard import RateLimiter

if TYPE_CHECKING:
    import redis

    from ..settings import Settings

log = logging.getLogger("cqo.access")
T = TypeVar("T")
PREFIX = "cqo:"
RETRY_SECONDS = 2.0  # after a failed call, Redis is not tried again for this long
TIMEOUT = 1.0  # seconds to connect or to wait for a reply
ANSWER_TTL = 86_400  # seconds an answer stays in Redis (older builds' answers just expire)


class RedisDown(Exception):
    """A Redis call failed or Redis is marked down: use the in-process version."""


def shown(url: str) -> str:
    """The URL without its password, for logs and /healthz."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class RedisLink:
    """One Redis client (a thread-safe connection pool) and whether Redis answers."""

    def __init__(self, url: str) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url, self.shown = url, shown(url)
        try:
            self.client: redis.Redis = redis.Redis.from_url(
                url,
                socket_timeout=TIMEOUT,
                socket_connect_timeout=TIMEOUT,
                decode_responses=True,
                # one immediate retry (a pooled connection Redis closed), not redis-py's 10
                # with backoff: a Redis that is down must cost a request milliseconds
                retry=Retry(NoBackoff(), 1),
            )
        except ValueError as e:
            raise SharedStateError(self.shown, str(e)) from None
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self.error = ""  # why the last call failed; "" while Redis answers
        self._retry_at = 0.0
        self._lock = threading.Lock()

    def check(self) -> None:
        """At start: raise ``SharedStateError`` when Redis does not answer a PING."""
        try:
            self.client.ping()
        except self._errors as e:
            raise SharedStateError(self.shown, f"{type(e).__name__}: {e}") from None

    def run(self, op: Callable[[redis.Redis], T]) -> T:
        """``op(client)``, or ``RedisDown`` (logged once per outage) when Redis fails."""
        if self.error and time.monotonic() < self._retry_at:
            raise RedisDown(self.error)
        try:
            out = op(self.client)
        except self._errors as e:
            self._down(f"{type(e).__name__}: {e}")
            raise RedisDown(self.error) from e
        if self.error:
            with self._lock:
                was, self.error = self.error, ""
            if was:
                log.warning(json.dumps({"event": "redis_back", "url": self.shown}))
        return out

    def _down(self, error: str) -> None:
        with self._lock:
            first = not self.error
            self.error, self._retry_at = error, time.monotonic() + RETRY_SECONDS
        if first:
            row = {
                "event": "redis_unreachable",
                "url": self.shown,
                "error": error,
                "fallback": "in-process rate limits, MsgId dedupe and answer cache",
                "pid": os.getpid(),
            }
            log.error(json.dumps(row, ensure_ascii=False))

    def status(self) -> dict[str, Any]:
        """For /healthz: a PING now (unless within the pause after a failure)."""
        with contextlib.suppress(RedisDown):
            self.run(lambda r: r.ping())
        out: dict[str, Any] = {"backend": "redis", "url": self.shown}
        if self.error:
            out |= {
                "state": "unreachable",
                "error": self.error,
                "fallback": "in-process (per worker) until Redis answers again",
            }
        else:
            out["state"] = "ok"
        return out


_links: dict[str, RedisLink] = {}
_links_lock = threading.Lock()


def link_for(settings: Settings) -> RedisLink | None:
    """This process's link to ``settings.redis_url`` (one per URL), or None when it is unset."""
    url = settings.redis_url
    if not url:
        return None
    with _links_lock:
        if url not in _links:
            _links[url] = RedisLink(url)
        return _links[url]


# ---- rate limits --------------------------------------------------------------------------------

# KEYS[1] the client's sorted set of request times (ms, Redis's clock); ARGV window ms, limit,
# a unique member. Returns 0 (counted) or whole seconds until the oldest request leaves.
SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
  return math.max(1, math.ceil((oldest + window - now) / 1000))
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""


class SharedRateLimiter:
    """``RateLimiter`` across processes: the same sliding one-minute window, kept in Redis."""

    def __init__(self, link: RedisLink, name: str, per_minute: int) -> None:
        self.link, self.name, self.per_minute = link, name, per_minute
        self.fallback = RateLimiter(per_minute)
        self._script = link.client.register_script(SLIDING_WINDOW)

    def retry_after(self, key: str) -> int:
        """0 if ``key`` may go ahead now (and counts it), else whole seconds to wait."""
        if self.per_minute <= 0:
            return 0
        rkey = f"{PREFIX}rate:{self.name}:{key}"
        args = [60_000, self.per_minute, uuid.uuid4().hex]
        try:
            return int(self.link.run(lambda r: self._script(keys=[rkey], args=args, client=r)))
        except RedisDown:
            return self.fallback.retry_after(key)

    def allow(self, key: str) -> bool:
        return self.retry_after(key) == 0


# ---- answers ------------------------------------------------------------------------------------

# KEYS answer, hits counter, misses counter: the answer (or nil), counting the hit or miss.
GET_COUNTED = """
local v = redis.call('GET', KEYS[1])
if v then redis.call('INCR', KEYS[2]) else redis.call('INCR', KEYS[3]) end
return v
"""


class RedisAnswers:
    """The answer cache's shared store (``answer_cache.SharedAnswers``). A Redis failure is a
    miss (get) or nothing (put): the answer is then computed and kept in this process."""

    HITS, MISSES = f"{PREFIX}answers:hits", f"{PREFIX}answers:misses"

    def __init__(self, link: RedisLink, ttl: int = ANSWER_TTL) -> None:
        self.link, self.ttl = link, ttl
        self._get = link.client.register_script(GET_COUNTED)

    @staticmethod
    def name(key: Key) -> str:
        """``cqo:answer:<index version>:<sha256 of question and history>``."""
        version, question, history = key
        text = json.dumps([question, list(history)], ensure_ascii=False)
        return f"{PREFIX}answer:{version}:{hashlib.sha256(text.encode()).hexdigest()}"

    def get(self, key: Key) -> Answer | None:
        keys = [self.name(key), self.HITS, self.MISSES]
        try:
            raw = self.link.run(lambda r: self._get(keys=keys, client=r))
        except RedisDown:
            return None
        return Answer.from_json(json.loads(raw)) if raw else None

    def put(self, key: Key, answer: Answer) -> None:
        value = json.dumps(answer.to_json(), ensure_ascii=False)
        with contextlib.suppress(RedisDown):
            self.link.run(lambda r: r.set(self.name(key), value, ex=self.ttl))

    def stats(self) -> dict[str, int]:
        """Hits and misses in Redis, over every worker and instance (empty while down)."""
        try:
            hits, misses = self.link.run(lambda r: r.mget([self.HITS, self.MISSES]))
        except RedisDown:
            return {}
        return {"hits": int(hits or 0), "misses": int(misses or 0)}


def answer_store(settings: Settings) -> RedisAnswers | None:
    link = link_for(settings)
    return RedisAnswers(link) if link and settings.answer_cache > 0 else None


def health(settings: Settings, answers: Any, computed: int) -> dict[str, Any]:
    """The ``shared_state`` part of /healthz (``answers``: the answer cache's shared store)."""
    link = link_for(settings)
    if link is None:
        return {"backend": "in-process", "messages_computed": computed}
    out = link.status() | {"messages_computed": computed}
    if isinstance(answers, RedisAnswers):
        out["answer_cache"] = answers.stats()
    return out
