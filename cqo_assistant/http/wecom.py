"""``/wecom``: the WeCom (企业微信) app callback, always encrypted; its signature
(``msg_signature``) is checked when the message is decrypted."""

from __future__ import annotations

from typing import Any

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
)
from .deps import Service, ServiceDep

router = APIRouter(include_in_schema=False)
OFF = "WeCom endpoint off: set CQO_WECOM_*"


def _crypto(service: Service) -> Any:
    from wechatpy.enterprise.crypto import WeChatCrypto

    s = service.settings
    return WeChatCrypto(s.wecom_token, s.wecom_aes_key, s.wecom_corp_id)


@router.get("/wecom")
async def wecom_verify(
    service: ServiceDep,
    msg_signature: str = "",
    timestamp: str = "",
    nonce: str = "",
    echostr: str = "",
) -> Response:
    from wechatpy.exceptions import InvalidSignatureException

    require(service.wecom_on, OFF, timestamp)
    try:
        return PlainTextResponse(
            _crypto(service).check_signature(msg_signature, timestamp, nonce, echostr)
        )
    except InvalidSignatureException:
        raise forbidden("bad msg_signature") from None
    except Exception:
        raise bad_request("bad echostr") from None


@router.post("/wecom")
async def wecom_message(
    request: Request,
    service: ServiceDep,
    msg_signature: str = "",
    timestamp: str = "",
    nonce: str = "",
) -> Response:
    from wechatpy.enterprise import parse_message
    from wechatpy.enterprise.replies import TextReply
    from wechatpy.exceptions import InvalidSignatureException

    require(service.wecom_on, OFF, timestamp)
    crypto = _crypto(service)
    body = await request.body()
    try:
        xml = wechat_bot.safe_xml(body)
        plain = crypto.decrypt_message(xml, msg_signature, timestamp, nonce)
        message = parse_message(wechat_bot.safe_xml(plain.encode("utf-8")))
    except InvalidSignatureException:
        raise forbidden("bad msg_signature") from None
    except Exception:
        raise bad_request("malformed message") from None
    check_replay(service, (timestamp, nonce, msg_signature), body)
    request.state.question = question_of(message)
    late = request.app.state.late.channel("wecom")
    text = await answer_message(service, message, "wecom:" + message_key(message), late)
    if text is None:  # the answer goes (or went) by WeCom's message API
        return Response(b"", media_type="text/plain")
    if not text:
        return PlainTextResponse("success")
    reply = TextReply(content=text, message=message).render()
    return Response(crypto.encrypt_message(reply, nonce, timestamp), media_type="application/xml")
