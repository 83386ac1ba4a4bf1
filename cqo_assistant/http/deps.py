"""What the routes depend on: the service's state (settings, assistant, bot caches), one per app,
reached through FastAPI dependencies so a router never holds a global."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from .. import wechat_bot
from ..api import Assistant
from ..errors import InputError
from ..settings import Settings
from .bots import ReplayGuard
from .guard import RateLimiter


@dataclass
class Service:
    settings: Settings
    assistant: Assistant
    wechat_deadline: float
    cache: wechat_bot.MessageCache = field(default_factory=wechat_bot.MessageCache)
    replays: ReplayGuard = field(default_factory=ReplayGuard)
    bot_users: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.bot_users = RateLimiter(self.settings.rate_limit_per_min)

    @property
    def wechat_on(self) -> bool:
        return bool(self.settings.wechat_token)

    @property
    def wecom_on(self) -> bool:
        s = self.settings
        return bool(s.wecom_token and s.wecom_aes_key and s.wecom_corp_id)

    def question(self, text: str) -> str:
        """``text`` if it is within the configured length as sent (the limit the OpenAPI
        document states); the library then refuses a blank one."""
        limit = self.settings.max_question_chars
        if len(text) > limit:
            raise InputError(
                f"问题太长（{len(text)} 字，上限 {limit} 字），请精简后再问 / "
                f"question too long ({len(text)} > {limit} characters)"
            )
        return text


def get_service(request: Request) -> Service:
    return request.app.state.service


def get_assistant(request: Request) -> Assistant:
    return get_service(request).assistant


def get_settings(request: Request) -> Settings:
    return get_service(request).settings


ServiceDep = Annotated[Service, Depends(get_service)]
AssistantDep = Annotated[Assistant, Depends(get_assistant)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

# The Bearer scheme, for the OpenAPI document: the key itself is checked by the guard
# middleware, before the body is read, so a refused request costs nothing and is not counted
# against the caller's rate limit.
bearer = HTTPBearer(auto_error=False, description="one of CQO_API_KEYS (when set)")
