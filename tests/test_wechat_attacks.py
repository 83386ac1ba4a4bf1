"""The WeChat/WeCom callbacks under attack and at their edges (issue 13: D3–D7, voice), with
messages signed the way WeChat signs them, against a real loopback server."""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from cqo_assistant import Assistant, Settings
from cqo_assistant.http import create_app
from cqo_assistant.wechat_bot import NON_TEXT, WELCOME
from tests.http_helpers import serve
from tests.test_wechat import AES, APPID, TOKEN, query, reply_content, text_xml


@pytest.fixture(scope="module")
def plain(settings: Settings, assistant: Assistant) -> Iterator[tuple[str, Any]]:
    app = create_app(dataclasses.replace(settings, wechat_token=TOKEN), assistant)
    with serve(app) as url:
        yield url, app


def event_xml(event: str, created: int, key: str = "") -> str:
    return (
        "<xml><ToUserName><![CDATA[gh_cqo]]></ToUserName><FromUserName><![CDATA[oUserE]]>"
        f"</FromUserName><CreateTime>{created}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{key}]]></EventKey></xml>"
    )


def test_events_at_the_same_second_are_told_apart(plain: tuple[str, Any]) -> None:
    """D3: the dedupe key had no event name: CLICK and unsubscribe got subscribe's welcome."""
    url, _ = plain
    created = int(time.time())
    replies = [
        httpx.post(f"{url}/wechat", params=query(), content=event_xml(e, created, k))
        for e, k in [("subscribe", ""), ("CLICK", "MENU_1"), ("unsubscribe", "")]
    ]
    assert reply_content(replies[0].text) == WELCOME
    assert [r.text for r in replies[1:]] == ["success", "success"]


def test_safe_mode_refuses_plaintext(settings: Settings, assistant: Assistant) -> None:
    """D4: with CQO_WECHAT_AES_KEY set, a signed plaintext message is refused unread."""
    s = dataclasses.replace(settings, wechat_token=TOKEN, wechat_aes_key=AES, wechat_appid=APPID)
    app = create_app(s, assistant)
    with serve(app) as url:
        r = httpx.post(f"{url}/wechat", params=query(), content=text_xml("首席质量官是什么", "41"))
        assert r.status_code == 403 and "safe mode" in r.json()["error"]["message"]
        assert app.state.wechat_cache.computed == 0


def test_signed_query_is_bound_to_its_body(plain: tuple[str, Any]) -> None:
    """D5: a captured signed URL replayed with another body is refused; WeChat's own retry
    (same URL, same body) still gets its reply."""
    url, app = plain
    q, xml = query(), text_xml("首席质量官需要什么学历？", "51")
    first = httpx.post(f"{url}/wechat", params=q, content=xml)
    assert "大学专科" in reply_content(first.text)
    retry = httpx.post(f"{url}/wechat", params=q, content=xml)
    assert reply_content(retry.text) == reply_content(first.text)
    computed = app.state.wechat_cache.computed
    forged = httpx.post(f"{url}/wechat", params=q, content=text_xml("首席质量官的工资", "52"))
    assert forged.status_code == 403 and "replay" in forged.json()["error"]["message"]
    assert app.state.wechat_cache.computed == computed


def test_per_address_limit_and_allow_list(settings: Settings, assistant: Assistant) -> None:
    s = dataclasses.replace(settings, wechat_token=TOKEN, bot_rate_limit_per_min=2)
    with serve(create_app(s, assistant)) as url:
        codes = [httpx.get(f"{url}/wechat", params={**query(), "echostr": "e"}) for _ in range(3)]
        assert [r.status_code for r in codes] == [200, 200, 429]
        assert int(codes[-1].headers["retry-after"]) >= 1
    for allowed, status in [("10.0.0.0/8, 192.168.1.7", 403), ("10.0.0.0/8,127.0.0.1", 200)]:
        s = dataclasses.replace(settings, wechat_token=TOKEN, bot_allow_ips=allowed)
        with serve(create_app(s, assistant)) as url:
            r = httpx.get(f"{url}/wechat", params={**query(), "echostr": "e"})
            assert r.status_code == status


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_caller_hanging_up_mid_body_is_no_server_error(
    plain: tuple[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """D6: WeChat hanging up mid-request (ClientDisconnect) logged a 500 with a traceback."""
    url, _ = plain
    errors = Records()
    logging.getLogger("uvicorn.error").addHandler(errors)
    host, port = urlsplit(url).hostname, urlsplit(url).port
    path = f"/wechat?{urlencode(query())}"
    try:
        with caplog.at_level(logging.INFO, logger="cqo.access"):
            with socket.create_connection((host, port)) as sock:
                head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
                sock.sendall(head.encode() + b"<xml><Content>")
                time.sleep(0.3)  # not a race: read before or after the close, it is mid-body
            deadline = time.time() + 30  # the access-log row, however loaded the machine
            while time.time() < deadline and not any(
                '"/wechat"' in r.getMessage() for r in caplog.records if r.name == "cqo.access"
            ):
                time.sleep(0.05)
    finally:
        logging.getLogger("uvicorn.error").removeHandler(errors)
    rows = [r.getMessage() for r in caplog.records if r.name == "cqo.access"]
    assert any('"status": 499' in row for row in rows), rows
    assert not [r for r in errors.records if r.levelno >= logging.ERROR]


def voice_xml(recognition: str | None, msg_id: str) -> str:
    rec = f"<Recognition><![CDATA[{recognition}]]></Recognition>" if recognition else ""
    return (
        "<xml><ToUserName><![CDATA[gh_cqo]]></ToUserName><FromUserName><![CDATA[oUserV]]>"
        f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[voice]]>"
        "</MsgType><MediaId><![CDATA[media1]]></MediaId><Format><![CDATA[amr]]></Format>"
        f"{rec}<MsgId>{msg_id}</MsgId></xml>"
    )


def test_voice_answered_from_its_recognition(plain: tuple[str, Any]) -> None:
    url, _ = plain
    voice = voice_xml("首席质量官需要什么学历", "71")
    r = httpx.post(f"{url}/wechat", params=query(), content=voice)
    assert "大学专科" in reply_content(r.text) and "依据：" in reply_content(r.text)
    r = httpx.post(f"{url}/wechat", params=query(), content=voice_xml(None, "72"))
    assert reply_content(r.text) == NON_TEXT


@pytest.mark.parametrize(
    "number, shown",
    [
        # 7.1 is a heading over two titled sections: their text and items, not only their names
        ("7.1", ["第7.1.1条（质量战略制定）：“在质量战略制定方面", "参与策划企业中长期市场规划"]),
        ("第9章", ["第9.1条：“由企业实行聘任授权管理。”", "违反国家法律法规的其他行为"]),
        ("9.5", ["有下列情形之一的，企业宜解除聘任", "重大风险隐患知情不报"]),
    ],
)
def test_bare_clause_number_shows_what_is_under_it(
    plain: tuple[str, Any], number: str, shown: list[str]
) -> None:
    """D7: a bare clause number sent to the bot shows the clause with its children."""
    url, _ = plain
    msg_id = str(abs(hash(number)) % 10**9)
    r = httpx.post(f"{url}/wechat", params=query(), content=text_xml(number, msg_id))
    text = reply_content(r.text)
    assert all(s in text for s in shown), text
