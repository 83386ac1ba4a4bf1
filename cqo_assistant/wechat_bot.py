"""WeChat Official Account and WeCom (企业微信) callbacks, on top of wechatpy.

wechatpy does the protocol (signature check, XML parse, reply build, AES crypto); this module
adds what the assistant needs around it:

- ``fit_reply``: WeChat's passive text reply holds at most 2048 bytes (UTF-8). A long answer
  is cut at a clause boundary and ends by naming the clauses left out ("回复条款号查看").
- ``MessageCache``: WeChat drops the connection after 5 s without a reply and delivers the
  message again (same MsgId, three deliveries in all). The first delivery starts the
  computation in the background; retries wait for, or reuse, the same result, so no work is
  done twice. The first two deliveries that run out of time stay silent (WeChat has hung up and
  will retry); the last one answers ``SLOW`` rather than let WeChat show "无法提供服务".
- ``clause_reply``: a bare clause number ("9.5", "第9章", "7.1") shows that clause with
  everything under it (its items, its sections' text), not only its heading.
- ``safe_xml``: rejects DTDs and entities before wechatpy's xmltodict sees the body.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from defusedxml import ElementTree as SafeET

from .errors import CQOError, InputError

WECHAT_TEXT_LIMIT = 2048  # bytes of UTF-8 in a passive text reply
WELCOME = (
    "欢迎关注！我可以回答《企业首席质量官制度实施指南》(DB1302/T 589—2024) 的问题，"
    "每个回答都注明依据条款。试试：\n"
    "· 首席质量官需要什么学历？\n"
    "· 首席质量官有哪些职权？\n"
    "· 什么情况下企业宜解除首席质量官的聘任？\n"
    "也可以直接发送条款号，如 “8.1 d)”。"
)
NON_TEXT = "请发送文字问题，例如：首席质量官的任职资格有哪些？"
SLOW = "这个问题的回答还在生成，请稍后再发送一次同样的问题。"
TOO_FAST = "提问太频繁了，请一分钟后再试。"


class BadXML(CQOError):
    exit_code = 2


def safe_xml(body: bytes) -> str:
    """The body as text, if it is well-formed XML without DTD or entities; else BadXML."""
    try:
        text = body.decode("utf-8")
        SafeET.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except Exception as e:  # defusedxml raises several kinds; all mean "refuse"
        raise BadXML(f"malformed or unsafe XML: {type(e).__name__}") from None
    return text


def _utf8_len(s: str) -> int:
    return len(s.encode("utf-8"))


def fit_reply(text: str, limit: int = WECHAT_TEXT_LIMIT) -> str:
    """Cut an answer to ``limit`` bytes at a line (clause) boundary, keeping its last line
    (依据：…) and saying which clause to send for the rest."""
    if _utf8_len(text) <= limit:
        return text
    lines = text.split("\n")
    tail = [lines.pop()] if lines[-1].startswith("依据") else []

    def note(i: int) -> str:
        pid = _plain_id(lines, i)
        return "（篇幅所限，其余内容请回复条款号查看" + (f"，如 “{pid}”）" if pid else "）")

    kept: list[str] = []
    for i, line in enumerate(lines):
        if _utf8_len("\n".join([*kept, line, note(i + 1), *tail])) > limit:
            break
        kept.append(line)
    if not kept:  # the first line alone is too long: cut it by bytes
        budget = limit - _utf8_len("\n".join([note(0), *tail])) - 8
        kept = [lines[0].encode("utf-8")[:budget].decode("utf-8", errors="ignore") + "…"]
    return "\n".join([*kept, note(len(kept)), *tail])


def _plain_id(lines: list[str], start: int) -> str:
    """The clause id (as users type it) of the first line not shown: "6.5", "5.1 c)"."""
    if start >= len(lines):
        return ""
    m = re.search(r"第([\d.]+)条(?:（[^）]*）)? ?([a-z]\))?", lines[start])
    if m:
        return " ".join(x for x in m.groups() if x)
    item = re.match(r"\s+([a-z]\))", lines[start])
    parent = next(
        (h.group(1) for ln in reversed(lines[:start]) if (h := re.search(r"第([\d.]+)条", ln))),
        "",
    )
    return f"{parent} {item.group(1)}" if item and parent else parent


class MessageCache:
    """MsgId → Future of the reply. Retries of a message share its first computation.

    ``start`` never blocks: the first delivery submits the computation to a small thread pool
    and every delivery (first or retry) gets the same future plus its attempt number, so the
    caller can wait for it only as long as WeChat waits for a reply.
    """

    def __init__(self, size: int = 2048, ttl: float = 300.0, threads: int = 4) -> None:
        self._items: OrderedDict[str, tuple[float, Future[str], list[int]]] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cqo-wechat")
        self.size, self.ttl = size, ttl
        self.computed = 0  # how many replies were actually computed (for tests/metrics)

    def seen(self, key: str) -> bool:
        with self._lock:
            return key in self._items

    def start(self, key: str, compute: Callable[[], str]) -> tuple[Future[str], int]:
        """The reply's future and which delivery of ``key`` this is (1 = first)."""
        with self._lock:
            now = time.monotonic()
            while self._items and next(iter(self._items.values()))[0] < now - self.ttl:
                self._items.popitem(last=False)
            if key in self._items:
                _, fut, attempts = self._items[key]
                attempts[0] += 1
                return fut, attempts[0]
            fut = self._pool.submit(compute)  # a failure is kept: retries get it, not a rerun
            self._items[key] = (now, fut, [1])
            if len(self._items) > self.size:
                self._items.popitem(last=False)
            self.computed += 1
            return fut, 1


def clause_reply(assistant: Any, text: str) -> str | None:
    """A bare clause number ("9.5", "第9章", "7.1", "8.1 d)") as that clause with everything
    under it, quoted verbatim; None when ``text`` is not one."""
    if not re.fullmatch(r"\s*(第?\s*[\d.]+\s*[章条]?\s*(?:[a-zA-Z][)）]?)?|前言|引言)\s*", text):
        return None
    try:
        top = assistant.clause(text)
    except InputError:
        return None
    clauses = assistant.clause_map
    lines = ["根据标准："]

    def walk(c: Any, depth: int) -> None:
        pad, title = "  " * depth, f"（{c.title}）" if c.title else ""
        if c.is_item and depth:
            lines.append(f"{pad}{c.number.split(' ')[-1]} “{c.text}”")
        elif c.is_item:  # the item asked for: named with its list, as in an answer
            parent = clauses[c.parent]
            ptitle = f"（{parent.title}）" if parent.title else ""
            base, item = c.number.split(" ", 1)
            lines.append(f"第{base}条{ptitle} {item}：“{c.text}”")
        else:
            lines.append(f"{pad}{c.label}{title}" + (f"：“{c.text}”" if c.text else ""))
        for k in c.children:
            walk(clauses[k], depth + 1)

    walk(top, 0)
    lines.append(f"依据：{top.standard} {top.label}")
    return "\n".join(lines)


def reply_text(assistant: Any, message: Any) -> str:
    """The text to send back for one parsed wechatpy message or event."""
    mtype = getattr(message, "type", "")
    if mtype == "event":
        if getattr(message, "event", "") == "subscribe":
            return WELCOME
        return ""
    if mtype == "text":
        content = (message.content or "").strip()
    elif mtype == "voice" and (getattr(message, "recognition", None) or "").strip():
        content = message.recognition.strip()  # WeChat's speech recognition of the voice
    else:
        return NON_TEXT
    try:
        return fit_reply(clause_reply(assistant, content) or assistant.ask(content).text)
    except InputError as e:
        return e.chinese
