"""What the routes depend on: the service's state (settings, assistant, bot caches), one per app,
reached through FastAPI dependencies so a router never holds a global."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from .. import wechat_bot
from ..answer import Answer
from ..answer_cache import AnswerCache
from ..api import Assistant
from ..errors import CQOError, IndexDamagedError, IndexMissingError, InputError
from ..index import check_index, current_dir
from ..settings import Settings
from .bots import ReplayGuard
from .guard import Limiter, rate_limiter
from .shared import answer_store, link_for
from .shared_messages import SharedMessageCache


@dataclass
class Service:
    settings: Settings
    assistant: Assistant
    wechat_deadline: float
    cache: wechat_bot.MessageCache | SharedMessageCache = field(
        default_factory=wechat_bot.MessageCache
    )
    replays: ReplayGuard = field(default_factory=ReplayGuard)
    bot_users: Limiter = field(init=False)
    answers: AnswerCache = field(init=False)
    reload_error: str = ""  # why the last attempt to load a rebuilt index failed
    _checked: float = 0.0
    _loading: threading.Lock = field(default_factory=threading.Lock)
    _state: tuple[float, str, str] = (-1e9, "ok", "")  # (when, state, problem) of the disk

    def __post_init__(self) -> None:
        s = self.settings
        self.bot_users = rate_limiter(s, "bot_user", s.rate_limit_per_min)
        self.answers = AnswerCache(s.answer_cache, answer_store(s))
        if (link := link_for(s)) is not None:  # CQO_REDIS_URL: MsgIds shared by all workers
            self.cache = SharedMessageCache(link)

    def ask(self, question: str, history: list[str] | None = None) -> Answer:
        """The answer from the assistant loaded now, through the answer cache (keyed by the
        question, the history and the build that answers: see ``answer_cache``)."""
        return self.answers.ask(self.assistant, question, history)

    def answering(self) -> CachedAssistant:
        """The assistant loaded now, its ``ask`` through the answer cache (for the bots, whose
        replies call ``ask`` among other things)."""
        return CachedAssistant(self.assistant, self.answers)

    def refresh(self) -> None:
        """Between requests (at most once a second, one small file read): when ``index/CURRENT``
        names another build than the one loaded (``cqo index`` ran), load that build in the
        background and swap it in once it is loaded whole. A request holds the assistant it
        started with, so none is ever answered half from one index and half from another;
        until the new one is ready, requests are answered from the old one."""
        now = time.monotonic()
        if now - self._checked < RECHECK_SECONDS:
            return
        self._checked = now
        try:
            name = current_dir(self.settings.index_dir).name
        except CQOError:
            return
        if name != self.assistant.index.root.name and not self._loading.locked():
            threading.Thread(target=self._reload, name="cqo-reload", daemon=True).start()

    def _reload(self) -> None:
        with self._loading:
            try:
                if current_dir(self.settings.index_dir) == self.assistant.index.root:
                    return
                fresh = Assistant.load(self.settings)
                fresh.ask("首席质量官的职责是什么？")  # warm, as at start, before it serves
            except CQOError as e:
                self.reload_error = str(e)
                return
            self.assistant, self.reload_error = fresh, ""

    def index_state(self) -> tuple[str, str]:
        """("ok" | "stale" | "damaged" | "missing", problem) of the index on disk: the files
        checked against the manifest's checksums (cached for a few seconds). Answers come from
        the index loaded in memory, so a damaged disk copy does not change them; it fails the
        next start, and `cqo index` heals it."""
        when, state, problem = self._state
        if time.monotonic() - when > STATE_SECONDS:
            try:
                check_index(self.settings)
                state, problem = "ok", ""
            except IndexMissingError as e:
                state, problem = "missing", str(e)
            except IndexDamagedError as e:
                state, problem = "damaged", str(e)
            except CQOError as e:
                state, problem = "stale", str(e)
            self._state = (time.monotonic(), state, problem)
        return state, problem

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


class CachedAssistant:
    """An ``Assistant`` whose ``ask`` goes through an answer cache; the rest is the assistant's."""

    def __init__(self, assistant: Assistant, answers: AnswerCache) -> None:
        self._assistant, self._answers = assistant, answers

    def ask(self, question: str, history: list[str] | None = None) -> Answer:
        return self._answers.ask(self._assistant, question, history)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._assistant, name)


RECHECK_SECONDS = 1.0  # how often a request looks whether a rebuilt index is current
STATE_SECONDS = 5.0  # how long /healthz reuses its check of the index files


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    service.refresh()
    return service


def get_assistant(request: Request) -> Assistant:
    return get_service(request).assistant  # taken once: the request keeps this one


def get_settings(request: Request) -> Settings:
    return get_service(request).settings


ServiceDep = Annotated[Service, Depends(get_service)]
AssistantDep = Annotated[Assistant, Depends(get_assistant)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

# The Bearer scheme, for the OpenAPI document: the key itself is checked by the guard
# middleware, before the body is read, so a refused request costs nothing and is not counted
# against the caller's rate limit.
bearer = HTTPBearer(auto_error=False, description="one of CQO_API_KEYS (when set)")
