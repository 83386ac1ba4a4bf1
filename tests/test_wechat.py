"""WeChat Official Account and WeCom callbacks, with messages built the way WeChat builds them
(wechatpy's own crypto), against a real loopback server."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import re
import time
from collections.abc import Iterator

import httpx
import pytest
import xmltodict
from wechatpy.crypto import WeChatCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto

from cqo_assistant import Assistant, Settings
from cqo_assistant.http_api import create_app
from cqo_assistant.wechat_bot import WECHAT_TEXT_LIMIT, fit_reply
from tests.http_helpers import serve

TOKEN, APPID, CORP = "cqotoken", "wx1234567890abcdef", "ww1234567890abcdef"
AES = base64.b64encode(os.urandom(32)).decode().rstrip("=")
WECOM_AES = base64.b64encode(os.urandom(32)).decode().rstrip("=")


@pytest.fixture(scope="module")
def app(settings: Settings, assistant: Assistant):
    s = dataclasses.replace(
        settings,
        wechat_token=TOKEN, wechat_aes_key=AES, wechat_appid=APPID,
        wecom_token=TOKEN, wecom_aes_key=WECOM_AES, wecom_corp_id=CORP,
    )  # fmt: skip
    return create_app(s, assistant)


@pytest.fixture(scope="module")
def base(app) -> Iterator[str]:
    with serve(app) as url:
        yield url


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def query(timestamp: str | None = None, nonce: str = "n0nce") -> dict[str, str]:
    ts = timestamp or str(int(time.time()))
    return {"signature": sign(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce}


def text_xml(content: str, msg_id: str, msg_type: str = "text") -> str:
    body = f"<Content><![CDATA[{content}]]></Content>" if msg_type == "text" else ""
    return (
        "<xml><ToUserName><![CDATA[gh_cqo]]></ToUserName>"
        "<FromUserName><![CDATA[oUser1]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>"
        f"{body}<MsgId>{msg_id}</MsgId></xml>"
    )


def reply_content(xml: str) -> str:
    return xmltodict.parse(xml)["xml"]["Content"]


def test_verification_handshake(base: str) -> None:
    r = httpx.get(f"{base}/wechat", params={**query(), "echostr": "hello123"})
    assert r.status_code == 200 and r.text == "hello123"
    forged = {**query(), "signature": "0" * 40, "echostr": "x"}
    assert httpx.get(f"{base}/wechat", params=forged).status_code == 403
    old = query(timestamp=str(int(time.time()) - 3600))
    assert httpx.get(f"{base}/wechat", params={**old, "echostr": "x"}).status_code == 403


def test_plaintext_message(base: str) -> None:
    r = httpx.post(
        f"{base}/wechat", params=query(), content=text_xml("首席质量官需要什么学历？", "1001")
    )
    assert r.status_code == 200
    d = xmltodict.parse(r.text)["xml"]
    assert d["ToUserName"] == "oUser1" and d["MsgType"] == "text"
    assert "大学专科" in d["Content"] and "依据：" in d["Content"]


def test_safe_mode_message(base: str) -> None:
    crypto = WeChatCrypto(TOKEN, AES, APPID)
    ts, nonce = str(int(time.time())), "abc123"
    enc = crypto.encrypt_message(text_xml("CQO有一票否决权吗？", "1002"), nonce, ts)
    sig = re.search(r"<MsgSignature><!\[CDATA\[(\w+)\]\]>", enc).group(1)  # type: ignore[union-attr]
    params = {**query(ts, nonce), "encrypt_type": "aes", "msg_signature": sig}
    r = httpx.post(f"{base}/wechat", params=params, content=enc)
    assert r.status_code == 200
    outer = xmltodict.parse(r.text)["xml"]
    plain = crypto.decrypt_message(
        r.text, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"]
    )
    assert "一票否决" in reply_content(plain)
    # a tampered msg_signature is refused
    bad = {**params, "msg_signature": "f" * 40}
    assert httpx.post(f"{base}/wechat", params=bad, content=enc).status_code == 403


def test_forged_signature_processes_nothing(base: str, app) -> None:
    before = app.state.wechat_cache.computed
    params = {**query(), "signature": "deadbeef" * 5}
    r = httpx.post(f"{base}/wechat", params=params, content=text_xml("首席质量官是什么", "1003"))
    assert r.status_code == 403 and app.state.wechat_cache.computed == before


def test_malformed_and_entity_xml(base: str) -> None:
    assert httpx.post(f"{base}/wechat", params=query(), content=b"<xml><oops").status_code == 400
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        "<xml><ToUserName>x</ToUserName><Content>&b;</Content></xml>"
    )
    assert httpx.post(f"{base}/wechat", params=query(), content=bomb).status_code == 400


def test_retry_with_same_msgid_answered_from_cache(base: str, app) -> None:
    xml = text_xml("首席质量官由谁任命？", "777001")
    first = httpx.post(f"{base}/wechat", params=query(), content=xml)
    computed = app.state.wechat_cache.computed
    for _ in range(2):  # WeChat retries up to 3 times in all
        again = httpx.post(f"{base}/wechat", params=query(), content=xml)
        assert reply_content(again.text) == reply_content(first.text)
    assert app.state.wechat_cache.computed == computed


def test_subscribe_and_non_text(base: str) -> None:
    sub = (
        "<xml><ToUserName><![CDATA[gh_cqo]]></ToUserName><FromUserName><![CDATA[oUser2]]>"
        f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]>"
        "</MsgType><Event><![CDATA[subscribe]]></Event></xml>"
    )
    r = httpx.post(f"{base}/wechat", params=query(), content=sub)
    assert "欢迎" in reply_content(r.text) and "首席质量官" in reply_content(r.text)
    img = text_xml("", "1004", msg_type="image")
    r = httpx.post(f"{base}/wechat", params=query(), content=img)
    assert reply_content(r.text).startswith("请发送文字问题")


def test_clause_id_message(base: str) -> None:
    r = httpx.post(f"{base}/wechat", params=query(), content=text_xml("8.1 d)", "1005"))
    assert "一票否决" in reply_content(r.text) and "第8.1条 d)" in reply_content(r.text)


def test_reply_length_limit() -> None:
    long = "\n".join(
        ["根据标准："] + [f"第6.{i}条：“" + "质量" * 150 + "”" for i in range(1, 8)]
        + ["依据：DB1302/T 589—2024 第6章"]
    )  # fmt: skip
    out = fit_reply(long)
    assert len(out.encode()) <= WECHAT_TEXT_LIMIT
    assert out.endswith("依据：DB1302/T 589—2024 第6章")
    assert "回复条款号" in out and "“6." in out
    assert fit_reply("短回答") == "短回答"


def test_wecom_roundtrip(base: str) -> None:
    crypto = WeComCrypto(TOKEN, WECOM_AES, CORP)
    ts, nonce = str(int(time.time())), "wecomnonce"
    # URL verification: echostr is encrypted by WeCom
    enc_echo = crypto.encrypt_message("<xml>echo-42</xml>", nonce, ts)
    echo = xmltodict.parse(enc_echo)["xml"]
    params = {"msg_signature": echo["MsgSignature"], "timestamp": ts, "nonce": nonce}
    r = httpx.get(f"{base}/wecom", params={**params, "echostr": echo["Encrypt"]})
    assert r.status_code == 200 and r.text == "<xml>echo-42</xml>"
    # a message
    msg = (
        "<xml><ToUserName><![CDATA[ww1234567890abcdef]]></ToUserName>"
        "<FromUserName><![CDATA[zhangsan]]></FromUserName>"
        f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[首席质量官需要什么学历？]]></Content><MsgId>9001</MsgId>"
        "<AgentID>1000002</AgentID></xml>"
    )
    enc = crypto.encrypt_message(msg, nonce, ts)
    sig = xmltodict.parse(enc)["xml"]["MsgSignature"]
    q = {"msg_signature": sig, "timestamp": ts, "nonce": nonce}
    r = httpx.post(f"{base}/wecom", params=q, content=enc)
    assert r.status_code == 200
    outer = xmltodict.parse(r.text)["xml"]
    plain = crypto.decrypt_message(
        r.text, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"]
    )
    assert "大学专科" in reply_content(plain)
    assert (
        httpx.post(
            f"{base}/wecom", params={**q, "msg_signature": "0" * 40}, content=enc
        ).status_code
        == 403
    )
