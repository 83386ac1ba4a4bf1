"""One error shape for every refusal: ``{"error": {"message", "type", …}}`` (OpenAI's shape),
whatever the status — 400, 401, 403, 404, 405, 413, 422, 429, 431 or 500.

Also the body checks FastAPI leaves to a bare 400: a body that is not UTF-8, or not JSON, is a
422 whose message says what is wrong with it (``JSONBodyRoute``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..errors import InputError

log = logging.getLogger("cqo.access")

# status → the error's "type" (OpenAI's names where OpenAI has one)
KINDS = {
    400: "invalid_request_error",
    401: "auth",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit",
    431: "headers_too_large",
    500: "server_error",
}


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    message: str = Field(..., description="中文 / English")
    type: str = Field(..., description="invalid_request_error, auth, not_found, rate_limit, …")
    param: str | None = Field(None, description="the request field at fault, when there is one")
    nearest: list[str] | None = Field(None, description="404 of a clause: the nearest ids")


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_response(
    status: int,
    message: str,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {"message": message, "type": kind or KINDS.get(status, "error"), **extra}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


class ApiError(HTTPException):
    """A refusal raised from a route or dependency, rendered in the one error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status, message, headers)
        self.kind, self.extra = kind, extra


def _documented(status: int, what: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": what}


# For the OpenAPI document: what each surface can answer besides 200.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _documented(401, "API keys are set (CQO_API_KEYS) and none was sent, or a wrong one"),
    413: _documented(413, "body over CQO_MAX_BODY_BYTES"),
    429: _documented(429, "over CQO_RATE_LIMIT_PER_MIN for this address; see Retry-After"),
    431: _documented(431, "request line and headers over CQO_MAX_HEADER_BYTES"),
}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    **COMMON_ERRORS,
    422: _documented(422, "body not UTF-8, not JSON, or a field missing or invalid"),
}


def _problems(exc: RequestValidationError) -> tuple[str, str | None]:
    """A readable message for pydantic's errors, and the first field at fault."""
    parts, param = [], None
    for e in exc.errors():
        loc = [str(x) for x in e.get("loc", ()) if x != "body"]
        if e.get("type") == "json_invalid":  # loc holds a character offset, not a field
            what, at = e["ctx"]["error"], e["loc"][-1]
            where = f"character {at}" if what.endswith(" at") else f"at character {at}"
            parts.append(f"请求体不是合法的 JSON / body is not valid JSON: {what} {where}")
            continue
        if e.get("type") == "missing" and not loc:
            parts.append("请求体为空 / the body is empty: a JSON object is expected")
            continue
        if e.get("type") == "utf8":
            parts.append(str(e["msg"]))
            continue
        param = param or ".".join(loc) or None
        parts.append(f"{'.'.join(loc) or 'body'}: {e['msg']}")
    return "; ".join(parts), param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> Response:
        message, param = _problems(exc)
        extra = {"param": param} if param else {}
        return error_response(422, f"请求格式错误 / invalid request: {message}", **extra)

    @app.exception_handler(InputError)
    async def bad_input(_request: Request, exc: InputError) -> Response:
        return error_response(422, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        kind, extra = getattr(exc, "kind", None), getattr(exc, "extra", {})
        return error_response(exc.status_code, str(exc.detail), kind, exc.headers, **extra)

    @app.exception_handler(ClientDisconnect)
    async def gone(_request: Request, _exc: ClientDisconnect) -> Response:
        # the caller hung up mid-body (WeChat after its 5 s): nobody reads this; log it as 499
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def crashed(_request: Request, exc: Exception) -> Response:
        log.error(json.dumps({"event": "unhandled", "error": type(exc).__name__}))
        return error_response(500, "服务器内部错误 / internal server error")


class JSONBodyRoute(APIRoute):
    """Checks a JSON route's body is UTF-8 before FastAPI parses it: FastAPI answers any body
    it cannot decode with a bare 400 ``{"detail": …}``; here it is a 422 naming the byte."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            body = await request.body()  # cached: FastAPI's own parse reads the same bytes
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as e:
                message = (
                    f"请求体不是 UTF-8 编码（第 {e.start} 字节）/ body is not UTF-8 "
                    f"(byte {e.start}: {body[e.start : e.start + 1]!r})"
                )
                raise RequestValidationError(
                    [{"type": "utf8", "loc": ("body",), "msg": message, "input": None}]
                ) from None
            return await handler(request)

        return checked
