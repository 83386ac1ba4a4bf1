"""Late answers by the API: a WeChat/WeCom delivery whose answer is not ready in time.

WeChat (and WeCom) hang up after 5 s and deliver the message again, three times in all. With
an app secret set (``CQO_WECHAT_APP_SECRET`` with ``CQO_WECHAT_APPID``; ``CQO_WECOM_SECRET`` for
WeCom), a delivery waits ``CQO_BOT_ASYNC_DEADLINE`` seconds (default 3) for its answer; when it
is not ready by then the delivery replies "success" (WeCom: an empty 200), the message is
*taken* by this module, and once the computation finishes its answer is sent exactly once by
the customer-service message API (``message/custom/send``) or WeCom's ``message/send``, through
wechatpy's client. Every later delivery of a taken message (same MsgId) replies "success" at
once and sends nothing. Without a secret none of this runs: the callbacks behave as before
(``bots.answer_message``: wait, let WeChat retry, and answer the third delivery).

Which messages were taken is kept in this process, and with ``CQO_REDIS_URL`` also in Redis, so
that it holds across workers and instances: taking a message is ``SET cqo:msg:<key>:late api NX
PX`` (five minutes, as the MsgId entries), so one worker in all sends it, and a re-delivery that
lands anywhere else sees the mark and replies "success". A delivery that replies the answer
itself marks the message ``passive`` the same way; a worker whose own copy of the answer (a
retry waiting on another worker's computation) arrives a moment later then finds that mark and
does not send it by the API as well. While Redis is down, the marks are this process's only.

Sending runs on a small thread pool, never on the event loop. Each send is tried up to
``ATTEMPTS`` times with doubling waits when the API answers 5xx or 429, WeChat's "system busy"
(errcode -1), or cannot be reached; an access-token error (40001, 40014, 42001: expired or
revoked) fetches a new token and retries once. wechatpy caches the token between sends; its own
token retry (unbounded) is off. Every retry, refresh, send and give-up is logged as one JSON
line on ``cqo.access`` — without the user's openid or the text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..settings import Settings
from .shared import PREFIX, RedisDown, RedisLink

ATTEMPTS = 4  # tries per send (with waits of BACKOFF, 2×, 4× seconds between them)
BACKOFF = 0.5
TIMEOUT = 10.0  # seconds per HTTP request to the API (token or send)
TOKEN_ERRORS = frozenset({40001, 40014, 42001})  # invalid / invalid / expired access token
BUSY = -1  # WeChat's "系统繁忙，请稍候再试"
log = logging.getLogger("cqo.access")


def _event(level: int = logging.WARNING, **fields: Any) -> None:
    log.log(level, json.dumps({"ts": round(time.time(), 3), **fields}, ensure_ascii=False))


def _session(timeout: float) -> Any:
    """A requests session with a default timeout: wechatpy's token fetch passes none."""
    import requests

    class Session(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            return super().request(*args, **kwargs)

    return Session()


def _client(
    base_client: type,
    base: str,
    token_path: str,
    params: Callable[[Any], dict],
    *args: Any,
    timeout: float,
) -> Any:
    """wechatpy's ``base_client`` with its API and its token request on ``base`` (wechatpy's
    token fetch names the real host), its own token retry off (unbounded; ``Sender`` refreshes
    once) and a default timeout on every request."""
    base = base.rstrip("/")

    class Client(base_client):  # type: ignore[misc,valid-type]
        API_BASE_URL = f"{base}/cgi-bin/"

        def fetch_access_token(self) -> Any:
            url = f"{base}/cgi-bin/{token_path}"
            return self._fetch_access_token(url=url, params=params(self))

    client = Client(*args, timeout=timeout)
    client.auto_retry = False
    client._http = _session(timeout)
    return client


def wechat_client(settings: Settings, timeout: float = TIMEOUT) -> Any:
    """wechatpy's Official Account client, on ``settings.wechat_api_base``."""
    from wechatpy import WeChatClient

    def params(c: Any) -> dict:
        return {"grant_type": "client_credential", "appid": c.appid, "secret": c.secret}

    return _client(
        WeChatClient, settings.wechat_api_base, "token", params,
        settings.wechat_appid, settings.wechat_app_secret, timeout=timeout,
    )  # fmt: skip


def wecom_client(settings: Settings, timeout: float = TIMEOUT) -> Any:
    """wechatpy's WeCom client, on ``settings.wecom_api_base``."""
    from wechatpy.enterprise import WeChatClient

    def params(c: Any) -> dict:
        return {"corpid": c.corp_id, "corpsecret": c.secret}

    return _client(
        WeChatClient, settings.wecom_api_base, "gettoken", params,
        settings.wecom_corp_id, settings.wecom_secret, timeout=timeout,
    )  # fmt: skip


def _retryable(e: Exception) -> bool:
    """Worth another try: the API unreachable, 5xx or 429, or WeChat busy."""
    import requests
    from wechatpy.exceptions import WeChatClientException

    if isinstance(e, requests.RequestException):  # refused, reset, timed out
        return True
    if isinstance(e, WeChatClientException):
        if e.errcode is None:  # an HTTP error status (wechatpy's raise_for_status)
            status = getattr(e.response, "status_code", None)
            return status is None or status >= 500 or status == 429
        return e.errcode == BUSY
    return False


def _why(e: Exception) -> str:
    code = getattr(e, "errcode", None)
    status = getattr(getattr(e, "response", None), "status_code", None)
    return " ".join(str(x) for x in (type(e).__name__, code, status) if x is not None)


class Sender:
    """Sends one text to one user by one API: retries, backoff, one token refresh."""

    def __init__(
        self,
        channel: str,
        client: Any,
        send: Callable[[Any, Any, str], Any],
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
    ) -> None:
        self.channel, self.client, self._send = channel, client, send
        self.attempts, self.backoff = attempts, backoff

    @classmethod
    def wechat(cls, settings: Settings) -> Sender:
        return cls(
            "wechat",
            wechat_client(settings),
            lambda client, message, text: client.message.send_text(message.source, text),
        )

    @classmethod
    def wecom(cls, settings: Settings) -> Sender:
        def send(client: Any, message: Any, text: str) -> Any:
            agent = settings.wecom_agent_id or getattr(message, "agent", 0)
            return client.message.send_text(agent, message.source, text)

        return cls("wecom", wecom_client(settings), send)

    def _once(self, message: Any, text: str) -> None:
        """One send; an access-token error fetches a new token and sends again, once."""
        from wechatpy.exceptions import WeChatClientException

        try:
            self._send(self.client, message, text)
        except WeChatClientException as e:
            if e.errcode not in TOKEN_ERRORS:
                raise
            why = _why(e)
            _event(logging.INFO, event="late_reply_token_refresh", channel=self.channel, error=why)
            self.client.fetch_access_token()
            self._send(self.client, message, text)

    def deliver(self, message: Any, text: str) -> bool:
        """Send ``text`` to the sender of ``message``; True once the API accepted it."""
        t0 = time.monotonic()
        for attempt in range(1, self.attempts + 1):
            try:
                self._once(message, text)
            except Exception as e:
                if attempt < self.attempts and _retryable(e):
                    wait = self.backoff * 2 ** (attempt - 1)
                    _event(
                        event="late_reply_retry", channel=self.channel, attempt=attempt,
                        error=_why(e), wait=wait,
                    )  # fmt: skip
                    time.sleep(wait)
                    continue
                _event(
                    event="late_reply_failed", channel=self.channel, attempts=attempt,
                    error=_why(e),
                )  # fmt: skip
                return False
            ms = round((time.monotonic() - t0) * 1000, 1)
            _event(
                logging.INFO, event="late_reply_sent", channel=self.channel, attempts=attempt, ms=ms
            )
            return True
        return False  # attempts < 1


class LateReplies:
    """Per service: the senders (None without a secret), which messages were taken (here and,
    with ``link``, in Redis for every worker and instance), the pool."""

    def __init__(
        self,
        settings: Settings,
        ttl: float = 300.0,
        size: int = 100_000,
        link: RedisLink | None = None,
    ) -> None:
        self.deadline = settings.bot_async_deadline
        self.wechat = Sender.wechat(settings) if _wechat_on(settings) else None
        self.wecom = Sender.wecom(settings) if _wecom_on(settings) else None
        self._taken: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy = 0  # taken messages not yet sent (or given up)
        self._pool: ThreadPoolExecutor | None = None
        self.ttl, self.size, self.link = ttl, size, link
        self.sent = self.failed = 0

    def channel(self, name: str) -> LateReply | None:
        """``"wechat"`` or ``"wecom"``: None when that callback has no secret (today's flow)."""
        sender: Sender | None = getattr(self, name)
        return LateReply(self, sender) if sender is not None else None

    @staticmethod
    def _mark(key: str) -> str:
        return f"{PREFIX}msg:{key}:late"

    def _shared(self, key: str, how: str | None) -> str | None:
        """Redis's mark of ``key`` (``api`` or ``passive``; None: none). With ``how``, first
        set it to ``how`` unless it is set (``SET NX``): None then means it is ours now.
        Raises ``RedisDown`` (no link, or Redis down): only this process's marks count."""
        if self.link is None:
            raise RedisDown("no shared state")
        mark, px = self._mark(key), int(self.ttl * 1000)
        if how is None:
            return self.link.run(lambda r: r.get(mark))

        def claim(r: Any) -> str | None:
            pipe = r.pipeline(transaction=True)
            ok, value = pipe.set(mark, how, nx=True, px=px).get(mark).execute()
            return None if ok else value

        return self.link.run(claim)

    def taken(self, key: str) -> bool:
        """Whether any delivery of ``key`` (on any worker, with Redis) took it for the API."""
        with self._lock:
            if key in self._taken:
                return True
        try:
            return self._shared(key, None) == "api"
        except RedisDown:
            return False

    def passive(self, key: str) -> bool:
        """May this delivery reply the answer itself? Not when the message was taken for the
        API; otherwise (with Redis) the message is marked answered, so no worker takes it."""
        with self._lock:
            if key in self._taken:
                return False
        try:
            return self._shared(key, "passive") != "api"
        except RedisDown:
            return True

    def _take(self, key: str, fut: Future[str]) -> bool:
        """Take ``key`` for the API: False when another delivery (on any worker, with Redis)
        already did or replied it, or the answer is ready after all (then the delivery replies
        with it)."""
        with self._lock:
            now = time.monotonic()
            while self._taken and next(iter(self._taken.values())) < now - self.ttl:
                self._taken.popitem(last=False)
            if key in self._taken or fut.done():
                return False
        try:
            if self._shared(key, "api") is not None:
                return False  # another worker took it, or answered it
        except RedisDown:
            pass  # this process's marks only, as without Redis
        with self._lock:
            if key in self._taken:
                return False
            self._taken[key] = now
            if len(self._taken) > self.size:
                self._taken.popitem(last=False)
            self._busy += 1
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cqo-late")
            return True

    def _send(self, sender: Sender, fut: Future[str], message: Any) -> None:
        ok = False
        try:
            text = fut.result()
            ok = bool(text) and sender.deliver(message, text)
        except Exception as e:  # the computation failed: nothing to send
            _event(event="bot_reply_failed", channel=sender.channel, error=type(e).__name__)
        finally:
            with self._lock:
                self._busy -= 1
                self.sent += ok
                self.failed += not ok
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Until every taken message is sent or given up (tests; a graceful stop)."""
        with self._lock:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)


class LateReply:
    """One callback's view: the API it sends by and the shared bookkeeping."""

    def __init__(self, replies: LateReplies, sender: Sender) -> None:
        self.replies, self.sender = replies, sender

    def taken(self, key: str) -> bool:
        return self.replies.taken(key)

    async def reply(self, key: str, fut: Future[str], message: Any) -> str | None:
        """The answer, if it is ready within the deadline and no other delivery took the
        message; else None (reply "success"), the answer going by the API once ready."""
        r = self.replies
        try:
            waiting = asyncio.wrap_future(fut)
            text = await asyncio.wait_for(asyncio.shield(waiting), r.deadline)
        except TimeoutError:
            if not r._take(key, fut):
                if not fut.done():
                    return None  # taken by another delivery meanwhile
                return self._ready(key, fut)
            assert r._pool is not None
            pool = r._pool
            fut.add_done_callback(lambda f: pool.submit(r._send, self.sender, f, message))
            return None
        except Exception as e:  # a bug, not bad input (that gets a text): no reply
            _event(event="bot_reply_failed", error=type(e).__name__)
            return ""
        return text if r.passive(key) else None

    def _ready(self, key: str, fut: Future[str]) -> str | None:
        if not self.replies.passive(key):
            return None
        try:
            return fut.result()
        except Exception as e:
            _event(event="bot_reply_failed", error=type(e).__name__)
            return ""


def _wechat_on(s: Settings) -> bool:
    return bool(s.wechat_token and s.wechat_appid and s.wechat_app_secret)


def _wecom_on(s: Settings) -> bool:
    return bool(s.wecom_token and s.wecom_aes_key and s.wecom_corp_id and s.wecom_secret)
