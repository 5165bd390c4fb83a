"""Errors as JSON over HTTP: one shape for both apps (the protocol routes and the docs).

A kind of errors.py becomes its status code and `{"error": message}`, with Retry-After
when the kind says when to come back; whatever else escapes is a 500 that names the
request id and is logged once.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Awaitable, Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from modelops_runtime.errors import ServingError


def error(status: int, message: str,
          headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def retry_after(exc: ServingError) -> dict[str, str] | None:
    return None if exc.retry_after is None else {"Retry-After": f"{exc.retry_after:g}"}


async def _serving_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServingError)
    return error(int(exc.code), exc.message, retry_after(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    return error(exc.status_code, message, exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    traceback.print_exception(exc, file=sys.stderr)
    return error(500, f"internal error (request id {request.scope['state']['request_id']})")


HANDLERS: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
    ServingError: _serving_error, HTTPException: _http_error, Exception: _unexpected}
"""The exception handlers of both apps."""
