"""The asynchronous reply (``http/async_reply.py``): with an app secret, a delivery whose answer
is not ready in time replies "success" and the answer goes once by the API. WeChat's and WeCom's
APIs are a stand-in on loopback (``tests/wechat_api_standin.py``) that checks what wechatpy
sends. Answers are the real assistant's; "late" is made by a tiny deadline (10 ms: any real
answer takes longer than that), not by a mock — each test asks a question no other test here
asks, on a fresh app, so no cache makes it fast."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import xmltodict
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto

from cqo_assistant import Assistant, Settings
from cqo_assistant.http import create_app
from cqo_assistant.wechat_bot import fit_reply
from tests.http_helpers import free_port, serve, wait_healthy
from tests.test_wechat import TOKEN, decrypted_reply, query, reply_content, text_xml
from tests.wechat_api_standin import APP_SECRET, APPID, CORP, CORP_SECRET, StandIn, standin

CS_SEND, WECOM_SEND = "/cgi-bin/message/custom/send", "/cgi-bin/message/send"
WECOM_AES = "K" * 43


@pytest.fixture(scope="module")
def api() -> Iterator[StandIn]:
    with standin() as a:
        yield a


@pytest.fixture()
def stand(api: StandIn) -> StandIn:
    api.reset()
    return api


def late_settings(settings: Settings, api: StandIn, deadline: float = 0.01, **kw: Any) -> Settings:
    """WeChat (plaintext) and WeCom on, both with their app secret, APIs on the stand-in."""
    return dataclasses.replace(
        settings,
        wechat_token=TOKEN, wechat_appid=APPID, wechat_app_secret=APP_SECRET,
        wechat_api_base=api.url,
        wecom_token=TOKEN, wecom_aes_key=WECOM_AES, wecom_corp_id=CORP, wecom_secret=CORP_SECRET,
        wecom_api_base=api.url,
        bot_async_deadline=deadline, **kw,
    )  # fmt: skip


@pytest.fixture()
def late(settings: Settings, assistant: Assistant, stand: StandIn) -> Iterator[tuple[str, Any]]:
    """A fresh app whose answers are all late: (url, app)."""
    app = create_app(late_settings(settings, stand), assistant)
    with serve(app) as url:
        yield url, app


def deliver(url: str, question: str, msg_id: str) -> httpx.Response:
    return httpx.post(f"{url}/wechat", params=query(), content=text_xml(question, msg_id))


def expected(assistant: Assistant, question: str) -> str:
    """The reply the bot gives (asked after the delivery, so no cache made that one fast)."""
    return fit_reply(assistant.ask(question).text)


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    rows = [json.loads(r.getMessage()) for r in caplog.records if r.name == "cqo.access"]
    return [r for r in rows if r.get("event") == name]


def test_late_answer_goes_by_the_customer_service_api(late, stand: StandIn, assistant) -> None:
    url, app = late
    q = "首席质量官应当具备哪些任职条件？"
    r = deliver(url, q, "880001")
    assert r.status_code == 200 and r.text == "success"
    assert app.state.late.wait_idle(30)
    (token,) = stand.seen("/cgi-bin/token")
    assert token.query == {"grant_type": "client_credential", "appid": APPID, "secret": APP_SECRET}
    (sent,) = stand.seen(CS_SEND)
    assert sent.query["access_token"] == "TOKEN-1" and sent.errcode == 0
    answer = expected(assistant, q)
    assert sent.body == {"touser": "oUser1", "msgtype": "text", "text": {"content": answer}}
    assert "依据：" in answer and "第5" in answer  # the real answer, citing its clause
    # WeChat's re-deliveries of the message (same MsgId) after the API took it: "success", at
    # once, and nothing sent or computed again
    for _ in range(2):
        again = deliver(url, q, "880001")
        assert again.status_code == 200 and again.text == "success"
    assert app.state.late.wait_idle(30)
    assert len(stand.seen(CS_SEND)) == 1 and app.state.wechat_cache.computed == 1
    assert (app.state.late.sent, app.state.late.failed) == (1, 0)


def test_5xx_twice_then_delivered_once(late, stand: StandIn, caplog) -> None:
    url, app = late
    caplog.set_level(logging.INFO, logger="cqo.access")
    stand.fail_5xx["/cgi-bin/token"] = 1  # the token too
    stand.fail_5xx[CS_SEND] = 2
    assert deliver(url, "首席质量官的聘任程序是怎样的？", "880002").text == "success"
    assert app.state.late.wait_idle(30)
    assert [s.status for s in stand.seen("/cgi-bin/token")] == [503, 200]
    assert [s.status for s in stand.seen(CS_SEND)] == [503, 503, 200]
    assert len(stand.delivered(CS_SEND)) == 1
    retries = events(caplog, "late_reply_retry")
    assert [r["attempt"] for r in retries] == [1, 2, 3]
    assert all("503" in r["error"] for r in retries)
    assert [r["wait"] for r in retries] == [0.5, 1.0, 2.0]  # doubling waits
    (done,) = events(caplog, "late_reply_sent")
    assert done["attempts"] == 4 and done["channel"] == "wechat"
    assert "oUser1" not in caplog.text  # no openid in the log


def test_expired_token_is_refreshed_once(late, stand: StandIn, caplog) -> None:
    url, app = late
    caplog.set_level(logging.INFO, logger="cqo.access")
    assert deliver(url, "首席质量官的考核评价包括哪些内容？", "880003").text == "success"
    assert app.state.late.wait_idle(30)
    stand.expire_tokens()  # the cached token expires between two sends
    assert deliver(url, "企业应如何为首席质量官提供工作保障？", "880004").text == "success"
    assert app.state.late.wait_idle(30)
    assert len(stand.seen("/cgi-bin/token")) == 2  # once at first, once on the 42001
    sends = stand.seen(CS_SEND)
    assert [(s.query["access_token"], s.errcode) for s in sends] == [
        ("TOKEN-1", 0), ("TOKEN-1", 42001), ("TOKEN-2", 0),
    ]  # fmt: skip
    assert len(events(caplog, "late_reply_token_refresh")) == 1
    # a token the API keeps refusing: refreshed once, then given up (no endless loop)
    stand.reset()
    stand.refuse_tokens = True
    assert deliver(url, "首席质量官可以由谁兼任？", "880005").text == "success"
    assert app.state.late.wait_idle(30)
    assert [s.errcode for s in stand.seen(CS_SEND)] == [40001, 40001]
    assert len(stand.seen("/cgi-bin/token")) == 1
    (failed,) = events(caplog, "late_reply_failed")
    assert failed["attempts"] == 1 and "40001" in failed["error"]


def test_give_up_after_the_attempts(late, stand: StandIn, caplog) -> None:
    url, app = late
    caplog.set_level(logging.INFO, logger="cqo.access")
    app.state.late.wechat.backoff = 0.01  # the waits are tested above
    stand.fail_5xx[CS_SEND] = 100
    assert deliver(url, "首席质量官的培训有什么要求？", "880006").text == "success"
    assert app.state.late.wait_idle(30)
    assert len(stand.seen(CS_SEND)) == 4  # ATTEMPTS, then no more
    (failed,) = events(caplog, "late_reply_failed")
    assert failed["attempts"] == 4 and "503" in failed["error"]
    assert (app.state.late.sent, app.state.late.failed) == (0, 1)
    assert deliver(url, "首席质量官的培训有什么要求？", "880006").text == "success"  # still taken


def test_fast_answer_is_still_the_passive_reply(settings, assistant, stand: StandIn) -> None:
    """With the secret and the usual 4 s, a real answer is ready in time: the passive reply
    carries it, the API is never called."""
    app = create_app(late_settings(settings, stand, deadline=4.0), assistant)
    with serve(app) as url:
        r = deliver(url, "首席质量官向谁报告工作？", "880007")
        assert "依据：" in reply_content(r.text)
        assert reply_content(r.text) == expected(assistant, "首席质量官向谁报告工作？")
    assert stand.requests == []


def test_without_a_secret_nothing_changes(settings, assistant, stand: StandIn) -> None:
    """No app secret: the async deadline and API base are ignored — today's flow (the answer
    waited for, in the passive reply), and the API never called."""
    s = dataclasses.replace(late_settings(settings, stand), wechat_app_secret="", wecom_secret="")
    app = create_app(s, assistant)
    assert app.state.late.wechat is None and app.state.late.wecom is None
    with serve(app) as url:
        r = deliver(url, "首席质量官的任期是多久？", "880008")
        assert reply_content(r.text) == expected(assistant, "首席质量官的任期是多久？")
    assert stand.requests == []


def wecom_deliver(url: str, question: str, msg_id: str) -> tuple[httpx.Response, WeComCrypto]:
    crypto = WeComCrypto(TOKEN, WECOM_AES, CORP)
    ts, nonce = str(int(time.time())), os.urandom(6).hex()
    msg = (
        f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName>"
        "<FromUserName><![CDATA[zhangsan]]></FromUserName>"
        f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{question}]]></Content><MsgId>{msg_id}</MsgId>"
        "<AgentID>1000002</AgentID></xml>"
    )
    enc = crypto.encrypt_message(msg, nonce, ts)
    q = {"msg_signature": xmltodict.parse(enc)["xml"]["MsgSignature"], "timestamp": ts}
    return httpx.post(f"{url}/wecom", params={**q, "nonce": nonce}, content=enc), crypto


def test_wecom_late_answer_by_message_send(late, stand: StandIn, assistant) -> None:
    url, app = late
    stand.fail_5xx[WECOM_SEND] = 2
    q = "首席质量官的职责包括哪些方面？"
    r, _ = wecom_deliver(url, q, "990001")
    assert r.status_code == 200 and r.text == ""  # WeCom: an empty 200 = no passive reply
    assert app.state.late.wait_idle(30)
    (token,) = stand.seen("/cgi-bin/gettoken")
    assert token.query == {"corpid": CORP, "corpsecret": CORP_SECRET}
    assert [s.status for s in stand.seen(WECOM_SEND)] == [503, 503, 200]
    (body,) = stand.delivered(WECOM_SEND)
    answer = expected(assistant, q)
    assert "依据：" in answer
    assert body["touser"] == "zhangsan" and body["agentid"] == 1000002  # the message's app
    assert body["msgtype"] == "text" and body["text"] == {"content": answer}
    again, _ = wecom_deliver(url, q, "990001")  # WeCom's retry: empty, nothing sent again
    assert again.status_code == 200 and again.text == ""
    assert app.state.late.wait_idle(30)
    assert len(stand.seen(WECOM_SEND)) == 3 and not stand.seen(CS_SEND)


def test_wecom_expired_token_and_fast_answer(settings, assistant, stand: StandIn) -> None:
    app = create_app(late_settings(settings, stand, wecom_agent_id=1000009), assistant)
    with serve(app) as url:
        assert wecom_deliver(url, "首席质量官的工作机制是什么？", "990002")[0].text == ""
        assert app.state.late.wait_idle(30)
        stand.expire_tokens()
        assert wecom_deliver(url, "首席质量官如何参与质量决策？", "990003")[0].text == ""
        assert app.state.late.wait_idle(30)
        sends = stand.seen(WECOM_SEND)
        assert [(s.query["access_token"], s.errcode) for s in sends] == [
            ("TOKEN-1", 0), ("TOKEN-1", 42001), ("TOKEN-2", 0),
        ]  # fmt: skip
        assert {s.body["agentid"] for s in sends} == {1000009}  # CQO_WECOM_AGENT_ID wins
    fast = create_app(late_settings(settings, stand, deadline=4.0), assistant)
    stand.reset()
    with serve(fast) as url:
        r, crypto = wecom_deliver(url, "首席质量官的岗位职权有哪些？", "990004")
        assert "依据：" in decrypted_reply(crypto, r.text)
    assert stand.requests == []


@pytest.mark.slow
def test_cqo_serve_from_the_environment(home, stand: StandIn, assistant) -> None:
    """A real `cqo serve`, configured by CQO_* variables only: late answer sent by the API."""
    port = free_port()
    env = os.environ | {
        "CQO_HOME": str(home), "CQO_WECHAT_TOKEN": TOKEN, "CQO_WECHAT_APPID": APPID,
        "CQO_WECHAT_APP_SECRET": APP_SECRET, "CQO_WECHAT_API_BASE": stand.url,
        "CQO_BOT_ASYNC_DEADLINE": "0.01",
    }  # fmt: skip
    cmd = [sys.executable, "-m", "cqo_assistant.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        q = "首席质量官的任命需要报备吗？"
        assert deliver(url, q, "880100").text == "success"
        deadline = time.monotonic() + 30
        while not stand.delivered(CS_SEND) and time.monotonic() < deadline:
            time.sleep(0.05)
        (body,) = stand.delivered(CS_SEND)
        assert body["touser"] == "oUser1" and body["text"]["content"] == expected(assistant, q)
        assert deliver(url, q, "880100").text == "success"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert len(stand.seen(CS_SEND)) == 1
    assert '"event": "late_reply_sent"' in err and "oUser1" not in err


def test_deliveries_while_the_answer_is_computing(settings, assistant, stand: StandIn) -> None:
    """Two deliveries of one message waiting at once (both past the deadline: one takes it),
    and a re-delivery after the take but before the answer exists: all "success", and the
    answer is sent once, when it is ready. (A gate holds the real answer back.)"""
    from concurrent.futures import ThreadPoolExecutor

    from tests.test_wechat import GatedAssistant

    gated = GatedAssistant(assistant)
    app = create_app(late_settings(settings, stand, deadline=0.3), gated)  # type: ignore[arg-type]
    q = "首席质量官离任时要做哪些交接？"
    with serve(app) as url, ThreadPoolExecutor(2) as pool:
        try:
            both = list(pool.map(lambda _: deliver(url, q, "880200").text, range(2)))
            assert both == ["success", "success"]
            assert deliver(url, q, "880200").text == "success"  # WeChat's next retry
            assert gated.calls == 1 and stand.seen(CS_SEND) == []
        finally:
            gated.gate.set()
        assert app.state.late.wait_idle(30)
    (body,) = stand.delivered(CS_SEND)
    assert body["text"]["content"] == expected(assistant, q)
    assert len(stand.seen(CS_SEND)) == 1 and app.state.late.sent == 1


# ---- several workers or instances: the "taken" marks in Redis (CQO_REDIS_URL) -------------------


@pytest.fixture()
def pair_on_redis(
    settings: Settings, assistant: Assistant, stand: StandIn, redis_url: str
) -> Iterator[tuple[str, str, Any, Any, Any]]:
    """Two instances A and B sharing one real redis-server (as two workers or machines would),
    both late after 0.3 s, their answers held back by one gate: (a, b, app_a, app_b, gated)."""
    from tests.test_wechat import GatedAssistant

    gated = GatedAssistant(assistant)
    s = late_settings(settings, stand, deadline=0.3, redis_url=redis_url)
    app_a, app_b = create_app(s, gated), create_app(s, gated)  # type: ignore[arg-type]
    with serve(app_a) as a, serve(app_b) as b:
        try:
            yield a, b, app_a, app_b, gated
        finally:
            gated.gate.set()


def test_taken_on_one_instance_is_success_on_the_other(pair_on_redis, stand, assistant) -> None:
    """A's delivery is late: A takes the message (the mark is in Redis) and replies "success".
    WeChat's re-deliveries land on B (and A): "success" at once from both, nothing computed or
    sent again; the answer goes once, by A, when it is ready."""
    import redis

    a, b, app_a, app_b, gated = pair_on_redis
    r = redis.Redis.from_url(app_a.state.service.settings.redis_url, decode_responses=True)
    q = "首席质量官在质量安全事故处理中承担什么责任？"
    assert deliver(a, q, "880300").text == "success"
    assert r.get("cqo:msg:msg:880300:late") == "api"
    for url in (b, b, a):
        t = time.monotonic()
        assert deliver(url, q, "880300").text == "success"
        assert time.monotonic() - t < 0.3  # at once: not waiting for the deadline
    assert gated.calls == 1 and stand.seen(CS_SEND) == []
    gated.gate.set()
    assert app_a.state.late.wait_idle(30) and app_b.state.late.wait_idle(30)
    (body,) = stand.delivered(CS_SEND)
    assert body["text"]["content"] == expected(assistant, q)
    assert len(stand.seen(CS_SEND)) == 1
    assert (app_a.state.late.sent, app_b.state.late.sent) == (1, 0)
    assert app_a.state.wechat_cache.computed + app_b.state.wechat_cache.computed == 1
    assert r.get("cqo:msg:msg:880300:computed") == "1" and gated.calls == 1


def test_deliveries_waiting_on_both_instances_send_once(pair_on_redis, stand, assistant) -> None:
    """The first delivery on A and WeChat's retry on B wait at once (B for A's computation),
    both past the deadline: one of them takes the message, both reply "success", and the
    answer is sent once over both instances."""
    from concurrent.futures import ThreadPoolExecutor

    a, b, app_a, app_b, gated = pair_on_redis
    q = "首席质量官的工作档案应当保存哪些材料？"
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(deliver, a, q, "880301")
        time.sleep(0.1)  # A has claimed the message and computes (held at the gate)
        retry = pool.submit(deliver, b, q, "880301")
        assert [first.result().text, retry.result().text] == ["success", "success"]
    assert deliver(b, q, "880301").text == "success"  # the third delivery
    gated.gate.set()
    assert app_a.state.late.wait_idle(30) and app_b.state.late.wait_idle(30)
    (body,) = stand.delivered(CS_SEND)
    assert body["text"]["content"] == expected(assistant, q)
    assert len(stand.seen(CS_SEND)) == 1
    assert app_a.state.late.sent + app_b.state.late.sent == 1
    assert app_a.state.wechat_cache.computed + app_b.state.wechat_cache.computed == 1


def test_a_passive_reply_marks_the_message_answered(settings, stand, redis_url) -> None:
    """An answer replied in time is marked ``passive`` in Redis: a worker elsewhere whose copy
    of the answer comes a moment late does not take the message and send it by the API too;
    a taken message is never replied passively elsewhere. Redis down: this process's marks."""
    from concurrent.futures import Future

    from cqo_assistant.http.async_reply import LateReplies
    from cqo_assistant.http.shared import RedisLink

    s = late_settings(settings, stand, redis_url=redis_url)
    a, b = (LateReplies(s, link=RedisLink(redis_url)) for _ in range(2))
    pending: Future[str] = Future()
    assert a.passive("msg:1") and b.passive("msg:1")  # both may reply it themselves
    assert not b._take("msg:1", pending) and not b.taken("msg:1")
    assert a._take("msg:2", pending) and not b._take("msg:2", pending)
    assert b.taken("msg:2") and not b.passive("msg:2")
    down = LateReplies(s, link=RedisLink("redis://127.0.0.1:1/0"))  # nothing listens there
    assert down._take("msg:3", pending) and down.taken("msg:3") and not down._take("msg:3", pending)
    assert not down.taken("msg:2") and down.passive("msg:4")
