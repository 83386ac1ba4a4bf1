"""A stand-in for WeChat's and WeCom's server APIs on loopback (the real ones cannot be reached
from here): a real HTTP server that issues access tokens, accepts text messages, records every
request as it arrived, and fails on demand (5xx, an expired token)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# what the stand-in accepts as credentials (the app's settings must match)
APPID, APP_SECRET = "wx1234567890abcdef", "wechat-app-secret"
CORP, CORP_SECRET = "ww1234567890abcdef", "wecom-app-secret"

TOKEN_PATHS = {"/cgi-bin/token", "/cgi-bin/gettoken"}
SEND_PATHS = {"/cgi-bin/message/custom/send", "/cgi-bin/message/send"}


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: Any  # the JSON body, or None
    status: int  # what the stand-in answered
    errcode: int  # 0 = accepted


@dataclass
class StandIn:
    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    fail_5xx: dict[str, int] = field(default_factory=dict)  # path → how many 503s to answer
    valid: set[str] = field(default_factory=set)  # access tokens accepted now
    expired: set[str] = field(default_factory=set)  # tokens that get 42001
    refuse_tokens: bool = False  # every send gets 40001, whatever its token
    issued: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def expire_tokens(self) -> None:
        """Every token issued so far expires: a send with one gets 42001."""
        with self.lock:
            self.expired |= self.valid
            self.valid.clear()

    def seen(self, path: str) -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def delivered(self, path: str) -> list[Any]:
        """The bodies of the messages accepted on ``path``."""
        return [r.body for r in self.seen(path) if r.status == 200 and r.errcode == 0]

    def reset(self) -> None:
        """Forget everything: requests, failures to come, tokens issued."""
        with self.lock:
            self.requests.clear()
            self.fail_5xx.clear()
            self.refuse_tokens = False
            self.valid.clear()
            self.expired.clear()
            self.issued = 0

    def handle(self, method: str, path: str, query: dict[str, str], raw: bytes) -> tuple[int, Any]:
        body = json.loads(raw) if raw else None
        with self.lock:
            status, answer = self._answer(method, path, query, body)
            errcode = answer.get("errcode", 0) if isinstance(answer, dict) else -1
            self.requests.append(Seen(method, path, query, body, status, errcode))
        return status, answer

    def _answer(self, method: str, path: str, q: dict[str, str], body: Any) -> tuple[int, Any]:
        if self.fail_5xx.get(path, 0) > 0:
            self.fail_5xx[path] -= 1
            return 503, "Service Unavailable"
        if path == "/cgi-bin/token" and method == "GET":
            ok = (q.get("grant_type"), q.get("appid"), q.get("secret")) == (
                "client_credential", APPID, APP_SECRET,
            )  # fmt: skip
            return 200, self._token() if ok else {"errcode": 40125, "errmsg": "invalid appsecret"}
        if path == "/cgi-bin/gettoken" and method == "GET":
            ok = (q.get("corpid"), q.get("corpsecret")) == (CORP, CORP_SECRET)
            return 200, self._token() if ok else {"errcode": 40001, "errmsg": "invalid secret"}
        if path in SEND_PATHS and method == "POST":
            token = q.get("access_token", "")
            if self.refuse_tokens:
                return 200, {"errcode": 40001, "errmsg": "invalid credential"}
            if token in self.expired:
                return 200, {"errcode": 42001, "errmsg": "access_token expired"}
            if token not in self.valid:
                return 200, {"errcode": 40014, "errmsg": "invalid access_token"}
            if not (isinstance(body, dict) and body.get("touser") and body.get("msgtype")):
                return 200, {"errcode": 44002, "errmsg": "empty post data"}
            return 200, {"errcode": 0, "errmsg": "ok"}
        return 404, {"errcode": 404, "errmsg": "no such API in the stand-in"}

    def _token(self) -> dict[str, Any]:
        self.issued += 1
        token = f"TOKEN-{self.issued}"
        self.valid.add(token)
        return {"access_token": token, "expires_in": 7200}


@contextmanager
def standin() -> Iterator[StandIn]:
    """The stand-in, serving on a free loopback port until the block ends."""
    api = StandIn()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, answer = api.handle(method, parts.path, query, raw)
            data = (answer if isinstance(answer, str) else json.dumps(answer)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
