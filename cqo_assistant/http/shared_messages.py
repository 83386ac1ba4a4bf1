"""WeChat/WeCom MsgId (and event) dedupe shared by every worker and instance
(``CQO_REDIS_URL``; the Redis link and the fall-back rule are in ``shared``).

The first delivery of a message takes a lock (``SET NX PX``) and computes; a retry that lands on
another worker or instance waits for the answer the first one stores under the message's key
(one poller thread per process reads all awaited keys with one ``MGET`` every 50 ms) instead of
computing it again. The delivery count is shared too, so the third delivery still answers
``SLOW`` whichever worker gets it. When the lock holder dies before answering (its lock expires
with no answer), a waiter takes the lock and computes. While Redis is down, messages are
deduped in this process (``wechat_bot.MessageCache``), as without Redis. Each stored answer
counts one computation of its message (``cqo:msg:<key>:computed``; 1 unless a lock expired
while its holder still computed): what bench/wechat_burst.py reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..wechat_bot import MessageCache
from .shared import PREFIX, RedisDown, RedisLink, log

if TYPE_CHECKING:
    import redis

MESSAGE_TTL_MS = 300_000  # a message's answer and delivery count (as MessageCache's ttl)
LOCK_MS = 30_000  # a computing worker's claim; a waiter takes over when it expires unanswered
POLL_SECONDS = 0.05
WAIT_SECONDS = 60.0  # a waiter gives up after this (the delivery waiting for it already has)


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
    """``MessageCache`` across processes (see the module's docstring): same interface."""

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

    @staticmethod
    def _computed_key(key: str) -> str:
        return f"{PREFIX}msg:{key}:computed"  # how many times the message was computed

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
        if pause := float(os.environ.get("CQO_MSG_PAUSE") or 0):
            time.sleep(pause)  # fault-injection hook: a slow machine, for the tests
        try:
            text = compute()
        except Exception as e:  # kept, as MessageCache keeps it: a retry gets it, not a rerun
            self._store(key, json.dumps({"error": type(e).__name__}))
            raise
        self._store(key, json.dumps({"text": text}, ensure_ascii=False))
        return text

    def _store(self, key: str, value: str) -> None:
        _, lock, answer = self._keys(key)
        computed = self._computed_key(key)

        def store(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=True)
            pipe.set(answer, value, px=MESSAGE_TTL_MS).pexpire(lock, MESSAGE_TTL_MS)
            pipe.incr(computed).pexpire(computed, MESSAGE_TTL_MS)
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
