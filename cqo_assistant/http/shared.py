"""State shared by every ``cqo serve`` worker and instance when ``CQO_REDIS_URL`` is set.

Three things, each with the same interface as its in-process version, so the routes do not know
which one they use:

- ``SharedRateLimiter`` (``guard.RateLimiter``): the sliding one-minute window of each client
  (address, or WeChat user), a sorted set per key changed by one Lua script — atomic, on Redis's
  clock, so N workers on M machines give a client its limit once, not N×M times;
- ``SharedMessageCache`` (``wechat_bot.MessageCache``): a WeChat/WeCom MsgId (or event) is
  computed once. The first delivery takes a lock (``SET NX PX``) and computes; a retry that
  lands on another worker or instance waits for the answer the first one stores under the
  message's key (one poller thread per process reads all awaited keys with one ``MGET`` every
  50 ms) instead of computing it again. The delivery count is shared too, so the third
  delivery still answers ``SLOW`` whichever worker gets it. When the lock holder dies before
  answering (its lock expires with no answer), a waiter takes the lock and computes;
- ``RedisAnswers`` (the store behind ``answer_cache.AnswerCache``): answers as JSON under the
  in-process cache's key (index version, question as read, history), so a rebuilt index never
  serves a stale answer; hits and misses of all instances are counted in Redis.

**When Redis stops answering at run time, the service falls back; it does not fail.** Every
call that fails (connection refused, 1 s timeout) logs one ``redis_unreachable`` line, marks
Redis down and sends the calls of the next ``RETRY_SECONDS`` straight to the in-process
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
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..answer import Answer
from ..answer_cache import Key
from ..errors import SharedStateError
from ..wechat_bot import MessageCache
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
MESSAGE_TTL_MS = 300_000  # a message's answer and delivery count (as MessageCache's ttl)
LOCK_MS = 30_000  # a computing worker's claim; a waiter takes over when it expires unanswered
POLL_SECONDS = 0.05
WAIT_SECONDS = 60.0  # a waiter gives up after this (the delivery waiting for it already has)


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


# ---- WeChat / WeCom message dedupe --------------------------------------------------------------


class RemoteFailure(RuntimeError):
    """The worker that computed a reply failed (the error's type name is the message)."""


def _chain(src: Future[str], dst: Future[str]) -> None:
    def done(f: Future[str]) -> None:
        if dst.done():
            return
        if (e := f.exception()) is not None:
            dst.set_exception(e)
        else:
            dst.set_result(f.result())

    src.add_done_callback(done)


class SharedMessageCache:
    """``MessageCache`` across processes (see the module's docstring)."""

    def __init__(self, link: RedisLink, threads: int = 4, size: int = 2048) -> None:
        self.link, self.size = link, size
        self.fallback = MessageCache(threads=threads)  # while Redis is down
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cqo-wechat")
        self._futures: OrderedDict[str, Future[str]] = OrderedDict()  # this process's
        self._waiting: dict[str, tuple[Future[str], Callable[[], str], float]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._poller: threading.Thread | None = None
        self._computed = 0

    @property
    def computed(self) -> int:
        """Replies computed by this process (shared or, while Redis was down, local)."""
        return self._computed + self.fallback.computed

    @staticmethod
    def _keys(key: str) -> tuple[str, str, str]:
        base = f"{PREFIX}msg:{key}"
        return f"{base}:n", f"{base}:lock", f"{base}:answer"

    def seen(self, key: str) -> bool:
        with self._lock:
            if key in self._futures:
                return True
        try:
            return bool(self.link.run(lambda r: r.exists(self._keys(key)[0])))
        except RedisDown:
            return self.fallback.seen(key)

    def start(self, key: str, compute: Callable[[], str]) -> tuple[Future[str], int]:
        """The reply's future and which delivery of ``key`` this is (1 = first), counted over
        every worker and instance."""
        n, lock, _ = self._keys(key)
        token = uuid.uuid4().hex

        def claim(r: redis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=True)
            pipe.incr(n).pexpire(n, MESSAGE_TTL_MS).set(lock, token, nx=True, px=LOCK_MS)
            return pipe.execute()

        try:
            attempt, _, mine = self.link.run(claim)
        except RedisDown:
            return self.fallback.start(key, compute)
        with self._lock:
            fut = self._futures.get(key)  # a retry on this process: the same future
            new = fut is None
            if fut is None:
                fut = self._futures[key] = Future()
                while len(self._futures) > self.size:
                    self._futures.popitem(last=False)
                if not mine:
                    self._waiting[key] = (fut, compute, time.monotonic() + WAIT_SECONDS)
        if new and mine:
            self._compute(key, compute, fut)
        elif new:
            self._ensure_poller()
        return fut, int(attempt)

    def _compute(self, key: str, compute: Callable[[], str], fut: Future[str]) -> None:
        with self._lock:
            self._computed += 1
        _chain(self._pool.submit(self._compute_and_store, key, compute), fut)

    def _compute_and_store(self, key: str, compute: Callable[[], str]) -> str:
        _, lock, answer = self._keys(key)
        if pause := float(os.environ.get("CQO_MSG_PAUSE") or 0):
            time.sleep(pause)  # fault-injection hook: a slow machine, for the tests
        try:
            text = compute()
        except Exception as e:  # kept, as MessageCache keeps it: a retry gets it, not a rerun
            self._store(lock, answer, json.dumps({"error": type(e).__name__}))
            raise
        self._store(lock, answer, json.dumps({"text": text}, ensure_ascii=False))
        return text

    def _store(self, lock: str, answer: str, value: str) -> None:
        def store(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=True)
            pipe.set(answer, value, px=MESSAGE_TTL_MS).pexpire(lock, MESSAGE_TTL_MS)
            pipe.execute()

        # the lock now lives as long as the answer: no one computes this message again. If
        # Redis is down, waiters elsewhere see the lock expire unanswered and compute themselves
        with contextlib.suppress(RedisDown):
            self.link.run(store)

    def _ensure_poller(self) -> None:
        with self._lock:
            if self._poller is None:
                self._poller = threading.Thread(target=self._poll, name="cqo-msg-poll", daemon=True)
                self._poller.start()
        self._wake.set()

    def _poll(self) -> None:
        while True:
            with self._lock:
                waiting = dict(self._waiting)
            if not waiting:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                self._poll_once(waiting)
            except Exception as e:  # never let the poller die: log and go on
                log.warning(json.dumps({"event": "msg_poll_failed", "error": type(e).__name__}))
            time.sleep(POLL_SECONDS)

    def _poll_once(self, waiting: dict[str, tuple[Future[str], Callable[[], str], float]]) -> None:
        keys = list(waiting)
        names = [k for key in keys for k in self._keys(key)[1:]]  # lock, answer per key
        try:
            values = self.link.run(lambda r: r.mget(names))
        except RedisDown:  # fall back: compute here (WeChat is still waiting for an answer)
            for key, (fut, compute, _) in waiting.items():
                self._settle(key)
                _chain(self.fallback.start(key, compute)[0], fut)
            return
        now = time.monotonic()
        for i, key in enumerate(keys):
            fut, compute, deadline = waiting[key]
            lock, answer = values[2 * i], values[2 * i + 1]
            if answer is not None:
                self._settle(key)
                data = json.loads(answer)
                if "error" in data:
                    fut.set_exception(RemoteFailure(data["error"]))
                else:
                    fut.set_result(data["text"])
            elif lock is None and self._take_over(key):
                self._settle(key)
                self._compute(key, compute, fut)
            elif now > deadline:
                self._settle(key)
                fut.set_exception(TimeoutError(f"no answer for {key} in {WAIT_SECONDS} s"))

    def _take_over(self, key: str) -> bool:
        """The computing worker died (its lock expired, no answer): claim the message."""
        _, lock, _ = self._keys(key)
        try:
            return bool(self.link.run(lambda r: r.set(lock, "takeover", nx=True, px=LOCK_MS)))
        except RedisDown:
            return False

    def _settle(self, key: str) -> None:
        with self._lock:
            self._waiting.pop(key, None)


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
