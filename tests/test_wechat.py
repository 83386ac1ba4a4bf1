"""WeChat Official Account and WeCom callbacks, with messages built the way WeChat builds them
(wechatpy's own crypto), against a real loopback server."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import xmltodict
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from wechatpy.crypto import WeChatCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto

from cqo_assistant import Assistant, Settings
from cqo_assistant.http import bots, create_app
from cqo_assistant.wechat_bot import SLOW, TOO_FAST, WECHAT_TEXT_LIMIT, fit_reply
from tests.http_helpers import serve

TOKEN, APPID, CORP = "cqotoken", "wx1234567890abcdef", "ww1234567890abcdef"
AES = base64.b64encode(os.urandom(32)).decode().rstrip("=")
WECOM_AES = base64.b64encode(os.urandom(32)).decode().rstrip("=")


@pytest.fixture(scope="module")
def app(settings: Settings, assistant: Assistant):
    """WeChat in plaintext mode (no AES key), WeCom on."""
    s = dataclasses.replace(
        settings,
        wechat_token=TOKEN,
        wecom_token=TOKEN, wecom_aes_key=WECOM_AES, wecom_corp_id=CORP,
    )  # fmt: skip
    return create_app(s, assistant)


@pytest.fixture(scope="module")
def base(app) -> Iterator[str]:
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def safe(settings: Settings, assistant: Assistant) -> Iterator[tuple[str, Any]]:
    """WeChat in safe mode (安全模式: CQO_WECHAT_AES_KEY set): (url, app)."""
    s = dataclasses.replace(settings, wechat_token=TOKEN, wechat_aes_key=AES, wechat_appid=APPID)
    app = create_app(s, assistant)
    with serve(app) as url:
        yield url, app


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def query(timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
    """A signed query as WeChat sends it: its timestamp, a fresh random nonce, the signature."""
    ts, nonce = timestamp or str(int(time.time())), nonce or os.urandom(6).hex()
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


def decrypted_reply(crypto: Any, xml: str) -> str:
    """The text of an encrypted (安全模式) reply, decrypted with WeChatCrypto / WeComCrypto."""
    outer = xmltodict.parse(xml)["xml"]
    return reply_content(
        crypto.decrypt_message(xml, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"])
    )


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


def test_safe_mode_message(safe: tuple[str, Any]) -> None:
    base = safe[0]
    crypto = WeChatCrypto(TOKEN, AES, APPID)
    ts, nonce = str(int(time.time())), "abc123"
    enc = crypto.encrypt_message(text_xml("CQO有一票否决权吗？", "1002"), nonce, ts)
    sig = re.search(r"<MsgSignature><!\[CDATA\[(\w+)\]\]>", enc).group(1)  # type: ignore[union-attr]
    params = {**query(ts, nonce), "encrypt_type": "aes", "msg_signature": sig}
    r = httpx.post(f"{base}/wechat", params=params, content=enc)
    assert r.status_code == 200
    assert "一票否决" in decrypted_reply(crypto, r.text)
    # a tampered msg_signature is refused
    bad = {**params, "msg_signature": "f" * 40}
    assert httpx.post(f"{base}/wechat", params=bad, content=enc).status_code == 403


# One safe-mode message encrypted once (wechatpy 1.8.18, timestamp 2024-12-02) and kept as sent: the
# product's decryption is checked against bytes it did not produce. The key is the example key
# of WeChat's documentation; token and appid are the ones above.
VECTOR_AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
VECTOR_TS, VECTOR_NONCE = "1733100000", "vec0nce1"
VECTOR_MSG_SIGNATURE = "ee0e465f791401eb4afd08a2d83127cec19bb638"
VECTOR_ENCRYPT = (
    "FAc76paBSoyWCBR6kDxYa/Uif6s4c+eFz+I0zfUdu6T2i79bpmzv1SnJkqWutQsZvA9V8N1UUGk0f/YytPfUeYYbDaiL"
    "1KelSlbqwZl+RZt+1CUxfAeZfsSlE/8sIjMLz5116Tm50S4nH3CljJUNo8xOBR3A8fghBMqoQy1lP3fRhWUq3aZi7qYp"
    "1WS16sOS1yTeZB8s6MXtrpYSjpGuWNhiSXVrv3i8lR+zjpuugont4peyf10a4APRjFRSEy5EsklHyocLvAcj8WZnAgcy"
    "w5k+kBfCCX2t5hnBVlueWvs7xM1rpu4nGqdrqZ5sa3vlPVOF8xwZFldgRVbCCWkq8N49lfnvOSDduFgn+IWCAcqW+LzX"
    "KI2GKubSyrzLPv1A3lnUeZ7AXuJD/GvEdiWWKkUYwaeq//1m/4YKjjr3RVE="
)
VECTOR_PLAIN = (  # what the ciphertext holds, written by hand
    "<xml><ToUserName><![CDATA[gh_cqo]]></ToUserName>"
    "<FromUserName><![CDATA[oVector1]]></FromUserName>"
    "<CreateTime>1733100000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[CQO有一票否决权吗？]]></Content><MsgId>24000000000000001</MsgId></xml>"
)


def aes_open(key: str, encrypt: str) -> tuple[str, str]:
    """WeChat's message encryption undone by hand, without wechatpy: AES-256-CBC with the first
    16 key bytes as IV, PKCS#7 padding to 32 bytes; inside, 16 random bytes, the XML's length
    (4 bytes, big-endian), the XML, the appid. Returns (xml, appid)."""
    k = base64.b64decode(key + "=")
    dec = Cipher(algorithms.AES(k), modes.CBC(k[:16])).decryptor()
    raw = dec.update(base64.b64decode(encrypt)) + dec.finalize()
    assert 1 <= raw[-1] <= 32 and raw.endswith(bytes([raw[-1]]) * raw[-1]), "bad padding"
    raw = raw[: -raw[-1]]
    n = int.from_bytes(raw[16:20], "big")
    return raw[20 : 20 + n].decode("utf-8"), raw[20 + n :].decode("utf-8")


def test_safe_mode_fixed_vector(
    settings: Settings, assistant: Assistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The product decrypts a ciphertext made once, outside this run, and its encrypted reply
    opens by hand (no wechatpy on the test's side) to an answer for that message's sender."""
    assert aes_open(VECTOR_AES, VECTOR_ENCRYPT) == (VECTOR_PLAIN, APPID)  # the vector is sound
    monkeypatch.setattr(bots, "MAX_SKEW", 10**10)  # the vector's timestamp is long past
    s = dataclasses.replace(
        settings, wechat_token=TOKEN, wechat_aes_key=VECTOR_AES, wechat_appid=APPID
    )
    body = (
        "<xml><ToUserName><![CDATA[gh_cqo]]></ToUserName>"
        f"<Encrypt><![CDATA[{VECTOR_ENCRYPT}]]></Encrypt></xml>"
    )
    params = {
        **query(VECTOR_TS, VECTOR_NONCE),
        "encrypt_type": "aes",
        "msg_signature": VECTOR_MSG_SIGNATURE,
    }
    with serve(create_app(s, assistant)) as url:
        r = httpx.post(f"{url}/wechat", params=params, content=body)
    assert r.status_code == 200, r.text
    outer = xmltodict.parse(r.text)["xml"]
    assert (outer["TimeStamp"], outer["Nonce"]) == (VECTOR_TS, VECTOR_NONCE)
    assert outer["MsgSignature"] == sign(TOKEN, VECTOR_TS, VECTOR_NONCE, outer["Encrypt"])
    xml, appid = aes_open(VECTOR_AES, outer["Encrypt"])
    assert appid == APPID
    reply = xmltodict.parse(xml)["xml"]
    assert (reply["ToUserName"], reply["FromUserName"]) == ("oVector1", "gh_cqo")
    assert "企业产品（服务）质量安全“一票否决”权" in reply["Content"]  # 8.1 d), from the standard
    assert reply["Content"].rstrip().endswith("依据：DB1302/T 589—2024 第8.1条 d)")


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


def test_entities_inside_an_encrypted_message(safe: tuple[str, Any]) -> None:
    """The decrypted payload is checked too: an entity bomb wrapped in valid AES is refused."""
    base, app = safe
    crypto = WeChatCrypto(TOKEN, AES, APPID)
    ts, nonce = str(int(time.time())), "bomb1"
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
        "<xml><ToUserName>gh</ToUserName><FromUserName>oU</FromUserName><CreateTime>1"
        "</CreateTime><MsgType>text</MsgType><Content>&b;</Content><MsgId>1007</MsgId></xml>"
    )
    enc = crypto.encrypt_message(bomb, nonce, ts)
    sig = xmltodict.parse(enc)["xml"]["MsgSignature"]
    params = {**query(ts, nonce), "encrypt_type": "aes", "msg_signature": sig}
    before = app.state.wechat_cache.computed
    assert httpx.post(f"{base}/wechat", params=params, content=enc).status_code == 400
    assert app.state.wechat_cache.computed == before


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
    assert "大学专科" in decrypted_reply(crypto, r.text)
    assert (
        httpx.post(
            f"{base}/wecom", params={**q, "msg_signature": "0" * 40}, content=enc
        ).status_code
        == 403
    )


def test_stale_but_well_signed_requests_refused(base: str, app) -> None:
    """A replayed delivery (signed right, timestamp an hour old) is refused on every callback."""
    before = app.state.wechat_cache.computed
    old, nonce = str(int(time.time()) - 3600), "oldnonce"
    msg = text_xml("首席质量官是什么", "1009")
    assert httpx.post(f"{base}/wechat", params=query(old, nonce), content=msg).status_code == 403
    crypto = WeComCrypto(TOKEN, WECOM_AES, CORP)
    echo = xmltodict.parse(crypto.encrypt_message("<xml>echo</xml>", nonce, old))["xml"]
    q = {"msg_signature": echo["MsgSignature"], "timestamp": old, "nonce": nonce}
    assert httpx.get(f"{base}/wecom", params={**q, "echostr": echo["Encrypt"]}).status_code == 403
    enc = crypto.encrypt_message(msg, nonce, old)
    q["msg_signature"] = xmltodict.parse(enc)["xml"]["MsgSignature"]
    assert httpx.post(f"{base}/wecom", params=q, content=enc).status_code == 403
    assert app.state.wechat_cache.computed == before


class GatedAssistant:
    """The real assistant whose answers wait for a gate: a slow machine, made deterministic."""

    def __init__(self, inner: Assistant) -> None:
        self.inner, self.gate, self.calls = inner, threading.Event(), 0

    def ask(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        assert self.gate.wait(30), "gate never opened"
        return self.inner.ask(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture()
def slow(settings: Settings, assistant: Assistant) -> Iterator[tuple[str, GatedAssistant, Any]]:
    """A server whose WeChat deadline is 0.3 s (WeChat's 4.5 s, scaled) and whose answers wait
    for ``gate``: while the gate is shut, no reply can carry an answer."""
    gated = GatedAssistant(assistant)
    s = dataclasses.replace(settings, wechat_token=TOKEN)
    app = create_app(s, gated, wechat_deadline=0.3)  # type: ignore[arg-type]
    with serve(app) as url:
        yield url, gated, app
        gated.gate.set()


def deliver(url: str, xml: str, timeout: float) -> httpx.Response:
    """One delivery; WeChat hangs up after ``timeout`` seconds without a reply (a ReadTimeout).
    Connecting gets 30 s: on a loaded machine that is not what is measured."""
    t = httpx.Timeout(30, read=timeout)
    return httpx.post(f"{url}/wechat", params=query(), content=xml, timeout=t)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` s (a hung server, not load)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.02)


def deliveries(app: Any) -> int:
    """How many deliveries the server has taken in (every MsgId's attempts, summed)."""
    return sum(attempts[0] for _, _, attempts in app.state.wechat_cache._items.values())


# No bound below is a race against the machine's speed: while the gate is shut an answer cannot
# arrive, so a delivery that times out is one the server held, and a reply that comes is one
# the deadline gave. The 10 s bounds are under WECHAT_HOLD (15 s), how long a held delivery
# waits: a delivery wrongly held fails them, a loaded 2-core box does not.


def test_slow_answer_retry_picks_up_the_first_computation(slow) -> None:
    url, gated, _app = slow
    xml = text_xml("首席质量官需要什么学历？", "555001")
    with pytest.raises(httpx.ReadTimeout):  # held past the deadline: WeChat hangs up
        deliver(url, xml, timeout=1)
    wait_until(lambda: gated.calls == 1, "the first delivery starts the computation")
    gated.gate.set()  # the answer is ready by the time WeChat retries
    r = deliver(url, xml, timeout=10)  # the retry takes the first computation's answer
    assert "大学专科" in reply_content(r.text) and gated.calls == 1


def test_last_delivery_answers_within_the_deadline(slow) -> None:
    url, gated, app = slow
    xml = text_xml("首席质量官有哪些职权？", "555002")
    for n in (1, 2):  # first delivery and first retry: no reply in time, WeChat retries
        with pytest.raises(httpx.ReadTimeout):
            deliver(url, xml, timeout=1)
        wait_until(lambda n=n: deliveries(app) == n, f"delivery {n} reached the server")
    third = deliver(url, xml, timeout=10)
    assert not gated.gate.is_set()  # so the reply came from the deadline, not the answer
    assert reply_content(third.text) == SLOW
    assert gated.calls == 1  # three deliveries, one computation
    gated.gate.set()
    later = deliver(url, xml, timeout=10)  # the computation finished in the background
    assert "质量文化的建立与推行权" in reply_content(later.text) and gated.calls == 1  # 8.1 a)


def test_rate_limit_is_per_user_not_per_address(settings: Settings, assistant: Assistant) -> None:
    s = dataclasses.replace(settings, wechat_token=TOKEN, rate_limit_per_min=3)
    with serve(create_app(s, assistant)) as url:

        def send(user: str, msg_id: str) -> httpx.Response:
            xml = text_xml("首席质量官需要什么学历？", msg_id).replace("oUser1", user)
            return httpx.post(f"{url}/wechat", params=query(), content=xml)

        replies = [send("oUserA", f"66600{i}") for i in range(4)]
        assert all(r.status_code == 200 for r in replies)  # never a 429 to WeChat's servers
        assert all("大学专科" in reply_content(r.text) for r in replies[:3])
        assert reply_content(replies[3].text) == TOO_FAST
        assert "大学专科" in reply_content(send("oUserA", "666000").text)  # a retry still served
        assert "大学专科" in reply_content(send("oUserB", "666100").text)  # other users unaffected
        # the JSON API from the same address is limited by address
        codes = [httpx.get(f"{url}/v1/models").status_code for _ in range(4)]
        assert codes[-1] == 429


def test_cut_reply_points_to_a_clause_the_bot_serves(base: str, assistant: Assistant) -> None:
    """A long answer made of real clauses is cut at a clause, and the id it names for the rest
    is one the bot answers with that clause's text."""
    rows = [c for c in assistant.clauses() if c.number.split(".")[0] in ("6", "7") and c.text]
    lines = ["根据标准：", *(f"{c.label}：“{c.text}”" for c in rows), "依据：第6章、第7章"]
    long = "\n".join(lines)
    assert len(long.encode()) > WECHAT_TEXT_LIMIT
    out = fit_reply(long)
    assert len(out.encode()) <= WECHAT_TEXT_LIMIT
    kept = out.split("\n")[1:-2]
    assert kept and all(line in long.split("\n") for line in kept)  # whole clauses only
    pointed = re.search(r"如 “([^”]+)”", out).group(1)  # type: ignore[union-attr]
    first_left_out = rows[len(kept)]
    assert assistant.clause(pointed).id == first_left_out.id
    r = httpx.post(f"{base}/wechat", params=query(), content=text_xml(pointed, "1006"))
    assert first_left_out.text in reply_content(r.text)
