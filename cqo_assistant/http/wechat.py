"""``/wechat``: the WeChat Official Account callback, plaintext or safe (AES) mode.

Refused before the body is parsed: the endpoint off (404), a stale timestamp or a signature not
made with our token (403), a plaintext message while an AES key is set (403: safe mode accepts
only encrypted messages), and a signed query replayed with another body (403). Then XML with a
DTD or entities, or that does not parse, is a 400.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from .. import wechat_bot
from .bots import (
    answer_message,
    bad_request,
    check_replay,
    forbidden,
    message_key,
    question_of,
    require,
    wechat_signature,
)
from .deps import ServiceDep

router = APIRouter(include_in_schema=False)
OFF = "WeChat endpoint off: set CQO_WECHAT_TOKEN"


def _check(service: ServiceDep, signature: str, timestamp: str, nonce: str) -> None:
    require(service.wechat_on, OFF, timestamp)
    if signature != wechat_signature(service.settings.wechat_token, timestamp, nonce):
        raise forbidden("bad signature")


@router.get("/wechat")
async def wechat_verify(
    service: ServiceDep,
    signature: str = "",
    timestamp: str = "",
    nonce: str = "",
    echostr: str = "",
) -> Response:
    _check(service, signature, timestamp, nonce)
    return PlainTextResponse(echostr)


@router.post("/wechat")
async def wechat_message(
    request: Request,
    service: ServiceDep,
    signature: str = "",
    timestamp: str = "",
    nonce: str = "",
    encrypt_type: str = "",
    msg_signature: str = "",
) -> Response:
    from wechatpy import parse_message
    from wechatpy.crypto import WeChatCrypto
    from wechatpy.exceptions import InvalidSignatureException
    from wechatpy.replies import TextReply

    s = service.settings
    _check(service, signature, timestamp, nonce)
    if s.wechat_aes_key and encrypt_type != "aes":
        raise forbidden("safe mode (CQO_WECHAT_AES_KEY set) accepts encrypted messages only")
    body = await request.body()
    check_replay(service, (timestamp, nonce, signature, msg_signature), body)
    try:
        xml = wechat_bot.safe_xml(body)
    except wechat_bot.BadXML as e:
        raise bad_request(str(e)) from None
    crypto = None
    if encrypt_type == "aes":
        if not s.wechat_aes_key:
            raise bad_request("safe mode needs CQO_WECHAT_AES_KEY")
        crypto = WeChatCrypto(s.wechat_token, s.wechat_aes_key, s.wechat_appid)
        try:
            plain = crypto.decrypt_message(xml, msg_signature, timestamp, nonce)
            xml = wechat_bot.safe_xml(plain.encode("utf-8") if isinstance(plain, str) else plain)
        except InvalidSignatureException:
            raise forbidden("bad msg_signature") from None
        except Exception:
            raise bad_request("cannot decrypt message") from None
    try:
        message = parse_message(xml)
    except Exception:
        raise bad_request("malformed message") from None
    request.state.question = question_of(message)
    late = request.app.state.late.channel("wechat")
    text = await answer_message(service, message, message_key(message), late)
    if not text:
        return PlainTextResponse("success")
    reply = TextReply(content=text, message=message).render()
    if crypto is not None:
        reply = crypto.encrypt_message(reply, nonce, timestamp)
    return Response(reply, media_type="application/xml")
